"""Conditional orders through Binance's algo order service, exactly once: place, look up, cancel.

Since 2025-12-09 Binance takes STOP, STOP_MARKET, TAKE_PROFIT, TAKE_PROFIT_MARKET and
TRAILING_STOP_MARKET only at ``POST /fapi/v1/algoOrder`` (``/fapi/v1/order`` answers -4120; facts
§7, §13). Nothing here ever sends them to ``/fapi/v1/order``.

Exactly once, by the very flow of regular orders (``klineo.services.orders.send_exactly_once`` at
the ``ALGO_SERVICE`` venue), keyed on the ``clientAlgoId`` (our derived id, the order record's
``client_order_id``):
- a lost answer is settled by looking the algo order up by clientAlgoId a few times, never by
  sending it again;
- a clientAlgoId already used by an open algo order is refused by Binance (-4116, facts §13): the
  existing order is looked up and returned;
- a retry (``earlier_attempt_ms``) looks the order up first and only sends it again once the earlier
  attempt is provably past recvWindow (the signed request can no longer be accepted) and absent.

What a fired algo order executed is its triggered order's: Binance's algo answer names that order
(``actualOrderId``, with ``actualPrice``; facts §D) but not its executed quantity in every version,
so ``query_algo_order`` reads the triggered order (``GET /fapi/v1/order`` by orderId, weight 1) and
the algo order shows that order's ``executedQty`` and ``avgPrice``: a take-profit that fired reads
as executed, as its fills say, on every route that reads or records it.

``submit_order`` is the single point where an order is sent: it routes an ``AlgoOrder`` here and a
``FuturesOrder`` to ``klineo.services.orders.submit_futures_order``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from klineo.binance import BinanceClient, Credentials, ErrorCategory, endpoints
from klineo.binance.filters import SymbolRules
from klineo.errors import KlineoError
from klineo.services.orders import (
    REGULAR_ORDERS,
    FuturesOrder,
    OrderResult,
    OrderVenue,
    count_earlier_found,
    find_earlier_attempt,
    send_exactly_once,
    submit_futures_order,
)
from klineo.store.orders import KIND_ALGO, OrderRecord
from klineo.validation import plain_text, positive_or_none

__all__ = [
    "ALGO_FINAL",
    "ALGO_SERVICE",
    "FIRED_ALGO",
    "AlgoOrder",
    "algo_result",
    "cancel_algo_order",
    "find_earlier_order",
    "prepare_algo_order",
    "query_algo_order",
    "recorded_order",
    "sent_params",
    "submit_algo_order",
    "submit_order",
    "triggered_order_id",
]

# algoStatus values after which the algo order can no longer fire (facts §7).
ALGO_FINAL = frozenset({"CANCELED", "EXPIRED", "REJECTED", "TRIGGERED", "FINISHED"})
# algoStatus values of an algo order that fired: it placed a regular order (``actualOrderId``).
FIRED_ALGO = frozenset({"TRIGGERED", "FINISHED"})
_ORDER_DOES_NOT_EXIST = -2013
_NOTHING_OPEN = -2011
_CLIENT_ID_DUPLICATED = -4116
_WOULD_IMMEDIATELY_TRIGGER = -2021


@dataclasses.dataclass(frozen=True)
class AlgoOrder:
    """One conditional order, on the symbol's grid, as ``POST /fapi/v1/algoOrder`` takes it."""

    symbol: str
    side: str
    type: str
    quantity: Decimal | None
    trigger_price: Decimal | None = None
    price: Decimal | None = None
    callback_rate: Decimal | None = None
    activation_price: Decimal | None = None
    time_in_force: str | None = None
    reduce_only: bool = False
    close_position: bool = False
    position_side: str = "BOTH"
    working_type: str | None = None
    price_protect: bool | None = None

    _PARAMS = (("quantity", "quantity"), ("trigger_price", "triggerPrice"), ("price", "price"),
               ("callback_rate", "callbackRate"), ("activation_price", "activatePrice"))

    def to_params(self, client_algo_id: str) -> dict[str, str]:
        """The POST /fapi/v1/algoOrder parameters (algoType added by the endpoint), all strings."""
        params = {"symbol": self.symbol, "side": self.side, "type": self.type,
                  "positionSide": self.position_side, "clientAlgoId": client_algo_id}
        for attribute, name in self._PARAMS:
            value = getattr(self, attribute)
            if value is not None:
                params[name] = plain_text(value)
        if self.time_in_force is not None:
            params["timeInForce"] = self.time_in_force
        if self.working_type is not None:
            params["workingType"] = self.working_type
        if self.price_protect is not None:
            params["priceProtect"] = "true" if self.price_protect else "false"
        # Binance refuses reduceOnly in hedge mode and with closePosition: only sent when true.
        if self.reduce_only:
            params["reduceOnly"] = "true"
        if self.close_position:
            params["closePosition"] = "true"
        return params

    @classmethod
    def from_params(cls, params: dict[str, str]) -> AlgoOrder:
        """Inverse of ``to_params`` (an algo order exactly as an earlier attempt sent it)."""
        values: dict[str, Any] = {a: positive_or_none(params.get(n)) for a, n in cls._PARAMS}
        return cls(symbol=params["symbol"], side=params["side"], type=params["type"],
                   time_in_force=params.get("timeInForce"), reduce_only=params.get("reduceOnly") == "true",
                   close_position=params.get("closePosition") == "true",
                   position_side=params.get("positionSide", "BOTH"), working_type=params.get("workingType"),
                   price_protect={"true": True, "false": False}.get(params.get("priceProtect", "")),
                   **values)


def _typed_price(rules: SymbolRules, order: Any, field: str) -> Decimal | None:
    """The request's price-like value ``field`` as typed (``FuturesOrderRequest.typed_value``), checked on
    the symbol's tick grid and price filter; refusals name ``field``."""
    value = order.typed_value(field)
    if value is None:
        return None
    return rules.prepare_price(value, "LIMIT", exact=True, field=field)


def prepare_algo_order(rules: SymbolRules, order: Any, mark_price: Callable[[], Decimal]) -> AlgoOrder:
    """The request's conditional order (a validated FuturesOrderRequest) checked against the symbol's
    rules: its quantity and prices are as typed, refused off the grid (Binance would refuse them too); a
    stop-limit's price within PERCENT_PRICE's band around its trigger (facts §6: -4183 / -4184).
    ``mark_price`` values a trailing stop without an activation price (Binance activates it at once)."""
    market_type = order.type.endswith("MARKET")
    quantity = None
    if not order.closePosition:
        quantity = rules.prepare_quantity(order.quantity, market_type, exact=True)
    trigger = _typed_price(rules, order, "triggerPrice")
    price = _typed_price(rules, order, "price")
    activation = _typed_price(rules, order, "activationPrice")
    if price is not None and trigger is not None:  # STOP / TAKE_PROFIT: the limit within the trigger's band
        rules.check_price_band(order.side, price, trigger, against="trigger price", both_bounds=True,
                               typed=True)
    closes = {"side": order.side, "position_side": order.positionSide}  # a hedge close is exempt too
    if quantity is not None and rules.min_notional_applies(market_type, order.reduceOnly, **closes):
        # Valued where it will execute: its limit price, else its trigger (trailing: its activation, or
        # the mark when it has none).
        reference = price or trigger or activation or mark_price()
        rules.check_notional(quantity, price, reference, market_type, order.reduceOnly, **closes)
    return AlgoOrder(
        symbol=order.symbol, side=order.side, type=order.type, quantity=quantity, trigger_price=trigger,
        price=price, callback_rate=order.callbackRate,
        activation_price=activation,
        time_in_force=order.timeInForce, reduce_only=order.reduceOnly, close_position=order.closePosition,
        position_side=order.positionSide, working_type=order.workingType, price_protect=order.priceProtect,
    )


def triggered_order_id(body: dict[str, Any]) -> int | None:
    """The orderId of the regular order a fired algo order placed (``actualOrderId``); None before."""
    child = str(body.get("actualOrderId") or "")
    return int(child) if str(body.get("algoStatus")) in FIRED_ALGO and child.isdigit() else None


def algo_result(body: dict[str, Any], source: str, triggered: dict[str, Any] | None = None) -> OrderResult:
    """Binance's algo order object (new, query or list answer) in the shape of an order result; with
    ``triggered`` (Binance's answer for the order it placed on firing), what that order executed."""
    algo_id = body.get("algoId")
    update_time = body.get("updateTime") or body.get("createTime")
    executed = OrderResult.from_binance(triggered, source) if triggered else None
    average = executed.average_price if executed else None
    return OrderResult(
        client_order_id=str(body.get("clientAlgoId", "")),
        order_id=int(algo_id) if str(algo_id).isdigit() else None,
        symbol=str(body.get("symbol", "")),
        side=str(body.get("side", "")),
        type=str(body.get("orderType") or body.get("type") or ""),
        status=str(body.get("algoStatus", "")),
        quantity=positive_or_none(body.get("quantity")) or Decimal(0),
        executed_quantity=executed.executed_quantity if executed else Decimal(0),
        price=positive_or_none(body.get("price")),
        average_price=average or positive_or_none(body.get("actualPrice")),
        time_in_force=body.get("timeInForce") or None,
        reduce_only=body.get("reduceOnly") is True,
        position_side=str(body.get("positionSide") or "BOTH"),
        update_time=int(update_time) if isinstance(update_time, int) else None,
        source=source,
        kind=KIND_ALGO,
        trigger_price=positive_or_none(body.get("triggerPrice")),
        close_position=body.get("closePosition") is True,
    )


def _triggered_order(client: BinanceClient, creds: Credentials, body: dict[str, Any],
                     ) -> dict[str, Any] | None:
    """Binance's answer for the order a fired algo order placed; None when it has not fired, or Binance
    no longer knows that order (the algo answer alone then)."""
    order_id = triggered_order_id(body)
    if order_id is None:
        return None
    try:
        return endpoints.futures_order_by_id(client, creds, str(body.get("symbol", "")), order_id)
    except KlineoError as exc:
        if exc.code == _ORDER_DOES_NOT_EXIST or exc.category == ErrorCategory.ORDER_NOT_FOUND:
            return None
        raise


def query_algo_order(
    client: BinanceClient, creds: Credentials, client_algo_id: str, *, source: str = "queried"
) -> OrderResult | None:
    """The algo order with this clientAlgoId (GET /fapi/v1/algoOrder), or None when Binance has none;
    once fired, with what its triggered order executed (module docstring)."""
    try:
        body = endpoints.futures_query_algo_order(client, creds, client_algo_id)
    except KlineoError as exc:
        if exc.code == _ORDER_DOES_NOT_EXIST or exc.category == ErrorCategory.ORDER_NOT_FOUND:
            return None
        raise
    return algo_result(body, source, _triggered_order(client, creds, body))


def _refused(exc: KlineoError) -> KlineoError:
    """Binance's refusal; -2021 (its trigger already crossed, ``klineo.binance.codes``) names the algo
    service's own parameter, triggerPrice."""
    if exc.code == _WOULD_IMMEDIATELY_TRIGGER:
        return KlineoError(exc.category, exc.message, status=exc.status, code=exc.code, field="triggerPrice")
    return exc


def _send_algo(client: BinanceClient, creds: Credentials, order: AlgoOrder, client_algo_id: str,
               ) -> dict[str, Any]:
    return endpoints.futures_new_algo_order(client, creds, order.to_params(client_algo_id))


def _lookup_algo(client: BinanceClient, creds: Credentials, symbol: str, client_algo_id: str,
                 source: str) -> OrderResult | None:
    return query_algo_order(client, creds, client_algo_id, source=source)


def _placed_algo(_client: BinanceClient, _creds: Credentials, body: dict[str, Any]) -> OrderResult:
    return algo_result(body, "placed")


# Conditional orders: POST/GET /fapi/v1/algoOrder, keyed on the clientAlgoId.
ALGO_SERVICE = OrderVenue(noun="conditional order", send=_send_algo, placed=_placed_algo, lookup=_lookup_algo,
                          refused=_refused)


def submit_algo_order(
    client: BinanceClient, creds: Credentials, order: AlgoOrder, client_algo_id: str, **options: Any
) -> OrderResult:
    """Place ``order`` under ``client_algo_id`` at most once per call; see the module docstring.

    The regular orders' flow (``klineo.services.orders.send_exactly_once``, same options) at the algo
    service: a failed lookup of an earlier attempt is UNKNOWN_OUTCOME, an attempt older than
    Binance's retention is purged and never sent again, a younger absent one is sent only once past
    recvWindow.
    """
    return send_exactly_once(ALGO_SERVICE, client, creds, order, client_algo_id, **options)


def submit_order(
    client: BinanceClient, creds: Credentials, order: FuturesOrder | AlgoOrder, client_order_id: str,
    **options: Any,
) -> OrderResult:
    """Where every order is sent: conditional types to the algo service, others to /fapi/v1/order."""
    if isinstance(order, AlgoOrder):
        return submit_algo_order(client, creds, order, client_order_id, **options)
    return submit_futures_order(client, creds, order, client_order_id, **options)


def recorded_order(record: OrderRecord) -> FuturesOrder | AlgoOrder:
    """The order exactly as the record's earlier attempt sent it."""
    if record.kind == KIND_ALGO:
        return AlgoOrder.from_params(record.params)
    return FuturesOrder.from_params(record.params)


def find_earlier_order(client: BinanceClient, creds: Credentials, record: OrderRecord) -> OrderResult | None:
    """The order the record's earlier attempt placed (regular or conditional, by its kind), counted as the
    exactly-once flow counts one it finds; None when Binance has none; a failed lookup is UNKNOWN_OUTCOME."""
    venue = ALGO_SERVICE if record.kind == KIND_ALGO else REGULAR_ORDERS
    found = find_earlier_attempt(venue, client, creds, record.symbol, record.client_order_id)
    if found is not None:
        count_earlier_found(found)
    return found


def sent_params(found: OrderResult) -> dict[str, str]:
    """The parameters of the order Binance holds under our id, as a record keeps them: for an attempt whose
    own were never recorded (what Binance holds is what was sent; a trailing stop's callback is not read)."""
    if found.kind == KIND_ALGO:
        limit = found.price if found.price else None
        return AlgoOrder(symbol=found.symbol, side=found.side, type=found.type,
                         quantity=None if found.close_position else found.quantity,
                         trigger_price=found.trigger_price, price=limit, reduce_only=found.reduce_only,
                         close_position=found.close_position, position_side=found.position_side,
                         ).to_params(found.client_order_id)
    limit = found.type == "LIMIT"
    return FuturesOrder(symbol=found.symbol, side=found.side, type=found.type, quantity=found.quantity,
                        price=found.price if limit else None,
                        time_in_force=found.time_in_force if limit else None,
                        reduce_only=found.reduce_only, position_side=found.position_side,
                        ).to_params(found.client_order_id)


def cancel_algo_order(client: BinanceClient, creds: Credentials, client_algo_id: str) -> OrderResult:
    """Cancel by clientAlgoId (DELETE /fapi/v1/algoOrder), then read Binance's final state of it.

    -2011 (nothing open under that id) or a lost answer: the order is read back; an algo order still
    open after that is UNKNOWN_OUTCOME (send the cancel again), one Binance no longer knows is
    ORDER_NOT_FOUND.
    """
    try:
        endpoints.futures_cancel_algo_order(client, creds, client_algo_id)
    except KlineoError as exc:
        settle = exc.code == _NOTHING_OPEN or exc.category in (ErrorCategory.ORDER_NOT_FOUND,
                                                                  ErrorCategory.UNKNOWN_OUTCOME)
        if not settle:
            raise
    found = query_algo_order(client, creds, client_algo_id)
    if found is None:
        raise KlineoError(ErrorCategory.ORDER_NOT_FOUND,
                          "Binance no longer knows this conditional order (it may have been purged).")
    if found.status not in ALGO_FINAL:
        raise KlineoError(ErrorCategory.UNKNOWN_OUTCOME,
                          "Binance did not confirm the cancel and the conditional order is still open; "
                          "send the cancel again.")
    return found
