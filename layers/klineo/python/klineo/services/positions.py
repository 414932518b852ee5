"""Positions of a connection, read from Binance, and closing one of them.

The view (``list_positions``) is what Binance says now, never our records: /fapi/v3/positionRisk
(weight 5) for the positions, /fapi/v1/symbolConfig (weight 5, every symbol in one call) for
leverage and margin type (v3 has neither, facts §11), and /fapi/v1/openAlgoOrders per held symbol
(weight 1 each) for the protective orders, each labelled with its ``role`` when it is one of our
stop-loss / take-profit orders (one BatchGetItem). A liquidation, an ADL or a trade made in Binance's app
shows here at once because nothing is cached.

Closing (``close_position``) is an ordinary order through ``klineo.services.futures``: a MARKET
order for the whole position, reduceOnly in one-way mode, positionSide in hedge mode (where Binance
refuses reduceOnly). It passes the same risk gate (a close passes under a kill switch) and the same
exactly-once machinery; the Idempotency-Key is required (428 without it). A retry with the same key
does not read the position again (it may be 0 by then): the order the key placed is found from its
record and repeated with the same body, so the idempotency layer answers with the first outcome.
After the close, the open algo orders that close that position side (our stop-loss / take-profit
and any other reduce-only or closePosition ones) are cancelled (``klineo.services.protective``).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from klineo.binance import call_deadline, endpoints
from klineo.errors import ErrorCategory, KlineoError
from klineo.models.futures import FuturesOrderRequest, FuturesOrderResponse
from klineo.models.positions import ForeignTrade, FuturesPosition, FuturesPositionsResponse, ProtectiveOrder
from klineo.observability import logger
from klineo.services.futures import IDEMPOTENCY_HEADER, place_futures_order
from klineo.services.futures_account import futures_client
from klineo.services.key_health import note_key_outcome
from klineo.services.orders import Deadline, idempotent_client_order_id
from klineo.services.protective import cancel_protective_orders
from klineo.services.reconcile import recent_foreign_fills
from klineo.store.connections import Connection, connection_credentials, require_connection
from klineo.store.orders import OrderRecord, get_order_record, get_order_records
from klineo.validation import SYMBOL_PATTERN

__all__ = ["close_position", "list_positions"]

_MARGIN_TYPES = {"ISOLATED": "isolated", "CROSSED": "cross"}
_ZERO = Decimal(0)


def _unreadable() -> KlineoError:
    return KlineoError(ErrorCategory.UPSTREAM_UNAVAILABLE, "Binance returned an unreadable position.")


def _number(row: dict[str, Any], key: str) -> Decimal:
    try:
        value = Decimal(str(row.get(key)))
    except (InvalidOperation, ValueError):
        raise _unreadable() from None
    if not value.is_finite():
        raise _unreadable()
    return value


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def _protective(row: dict[str, Any], record: OrderRecord | None) -> ProtectiveOrder:
    algo_id = row.get("algoId")
    trigger, quantity = row.get("triggerPrice"), row.get("quantity")
    return ProtectiveOrder(
        client_algo_id=str(row.get("clientAlgoId", "")),
        algo_id=int(algo_id) if isinstance(algo_id, int | str) and str(algo_id).isdigit() else None,
        type=str(row.get("orderType") or row.get("type") or ""),
        side=str(row.get("side", "")),
        position_side=str(row.get("positionSide") or "BOTH"),
        trigger_price=str(trigger) if trigger not in (None, "") else None,
        quantity=str(quantity) if quantity not in (None, "") else None,
        close_position=row.get("closePosition") is True,
        reduce_only=row.get("reduceOnly") is True,
        status=str(row.get("algoStatus", "")),
        role=record.role if record is not None else None,
    )


def _guards(position_side: str, side: str, algo: ProtectiveOrder) -> bool:
    """True when the algo order acts on this position: same positionSide, and on its closing side."""
    closing_side = "SELL" if side == "LONG" else "BUY"
    return algo.position_side == position_side and algo.side == closing_side


def _position(row: dict[str, Any], config: dict[str, Any], algos: list[ProtectiveOrder]) -> FuturesPosition:
    amount = _number(row, "positionAmt")
    position_side = str(row.get("positionSide") or "BOTH")
    side = position_side if position_side in ("LONG", "SHORT") else ("LONG" if amount > 0 else "SHORT")
    liquidation = _number(row, "liquidationPrice")
    leverage = config.get("leverage")
    return FuturesPosition(
        symbol=str(row.get("symbol", "")),
        side=side,
        position_side=position_side if position_side in ("LONG", "SHORT") else "BOTH",
        amount=_text(abs(amount)),
        entry_price=_text(_number(row, "entryPrice")),
        mark_price=_text(_number(row, "markPrice")),
        unrealized_pnl=_text(_number(row, "unRealizedProfit")),
        leverage=int(leverage) if str(leverage).isdigit() else None,
        margin_type=_MARGIN_TYPES.get(str(config.get("marginType", "")).upper()),
        liquidation_price=_text(liquidation) if liquidation > 0 else None,
        notional=_text(abs(_number(row, "notional"))),
        update_time=int(row["updateTime"]) if isinstance(row.get("updateTime"), int) else None,
        protective_orders=[a for a in algos if _guards(position_side, side, a)],
    )


def _open_rows(connection: Connection, symbol: str | None = None) -> list[dict[str, Any]]:
    """positionRisk rows with a non-zero amount (v3 also lists symbols that only hold open orders)."""
    client, creds = futures_client(connection), connection_credentials(connection)
    try:
        rows = endpoints.futures_position_risk(client, creds, symbol)
    except KlineoError as exc:
        note_key_outcome(connection, exc)
        raise
    if not isinstance(rows, list):
        raise KlineoError(ErrorCategory.UPSTREAM_UNAVAILABLE, "Binance returned unreadable positions.")
    return [r for r in rows if isinstance(r, dict) and _number(r, "positionAmt") != _ZERO]


def list_positions(user_id: str, connection_id: str) -> FuturesPositionsResponse:
    """The connection's open positions with leverage, margin type and protective orders (module docstring)."""
    connection = require_connection(user_id, connection_id)
    rows = _open_rows(connection)
    positions: list[FuturesPosition] = []
    if rows:
        client, creds = futures_client(connection), connection_credentials(connection)
        configs = {str(c.get("symbol")): c for c in endpoints.futures_symbol_configs(client, creds)}
        listed = {symbol: endpoints.futures_open_algo_orders(client, creds, symbol)
                  for symbol in sorted({str(r.get("symbol")) for r in rows})}
        ids = [str(algo.get("clientAlgoId")) for algos_ in listed.values() for algo in algos_]
        ours = get_order_records(user_id, ids)
        algos = {symbol: [_protective(algo, ours.get(str(algo.get("clientAlgoId", "")))) for algo in algos_]
                 for symbol, algos_ in listed.items()}
        positions = [_position(r, configs.get(str(r.get("symbol")), {}), algos[str(r.get("symbol"))])
                     for r in rows]
    note_key_outcome(connection, None)
    positions.sort(key=lambda p: (p.symbol, p.position_side))
    foreign = [_foreign_trade(r) for r in recent_foreign_fills(user_id, connection.connection_id)]
    return FuturesPositionsResponse(connection_id=connection.connection_id, positions=positions,
                                    recent_trades_not_ours=foreign)


def _foreign_trade(record: OrderRecord) -> ForeignTrade:
    """A fill we did not place, with its label (the reconciler recorded it from userTrades)."""
    result = record.result or {}
    return ForeignTrade(
        client_order_id=record.client_order_id, symbol=record.symbol, origin=record.origin,
        side=result.get("side") or record.params.get("side"), status=record.status,
        executed_quantity=_optional_text(result.get("executed_quantity")),
        average_price=_optional_text(result.get("average_price")), created_at=record.created_at,
    )


def _optional_text(value: object) -> str | None:
    return None if value is None else str(value)


# ---------------------------------------------------------------- close


def _closing_order(connection: Connection, symbol: str, position_side: str | None) -> FuturesOrderRequest:
    """A MARKET order for the whole position: reduceOnly in one-way mode, positionSide in hedge mode."""
    rows = _open_rows(connection, symbol)
    if position_side is not None:
        rows = [r for r in rows if str(r.get("positionSide") or "BOTH") == position_side]
    if not rows:
        message = f"There is no open position on {symbol} on this connection."
        raise KlineoError(ErrorCategory.NOT_FOUND, message, field="symbol")
    if len(rows) > 1:
        raise KlineoError(
            ErrorCategory.INVALID_REQUEST,
            "This symbol holds both a LONG and a SHORT position: choose one with position_side.",
            field="position_side",
        )
    amount = _number(rows[0], "positionAmt")
    held_side = str(rows[0].get("positionSide") or "BOTH")
    hedge = held_side in ("LONG", "SHORT")
    long = held_side == "LONG" or (not hedge and amount > 0)
    return FuturesOrderRequest(
        connection_id=connection.connection_id,
        symbol=symbol,
        side="SELL" if long else "BUY",
        type="MARKET",
        quantity=abs(amount),
        reduceOnly=not hedge,
        positionSide=held_side,
    )


def _same_close(order: FuturesOrderRequest, connection_id: str, symbol: str) -> bool:
    closes = order.reduceOnly or (order.side, order.positionSide) in (("SELL", "LONG"), ("BUY", "SHORT"))
    same_place = order.connection_id == connection_id and order.symbol == symbol
    return closes and same_place and order.type == "MARKET"


def close_position(
    user_id: str,
    connection_id: str,
    symbol: str,
    idempotency_key: str | None,
    position_side: str | None = None,
    lambda_context: Any = None,
) -> FuturesOrderResponse:
    """Close the whole position on ``symbol`` with one MARKET order, exactly once per Idempotency-Key."""
    if idempotency_key is None:
        raise KlineoError(
            ErrorCategory.PRECONDITION_REQUIRED,
            f"Closing a position needs an {IDEMPOTENCY_HEADER} header: with it, a retry after a timeout or "
            "a lost answer returns the first close instead of sending a second order.",
            field=IDEMPOTENCY_HEADER,
        )
    if not isinstance(symbol, str) or re.fullmatch(SYMBOL_PATTERN, symbol) is None:
        raise KlineoError(ErrorCategory.INVALID_REQUEST, "symbol must be 2 to 20 capital letters or digits",
                          field="symbol")
    record = get_order_record(user_id, idempotent_client_order_id(user_id, idempotency_key))
    if record is not None:
        order = FuturesOrderRequest.model_validate(record.request)
        if not _same_close(order, connection_id, symbol):
            raise KlineoError(
                ErrorCategory.CONFLICT,
                f"This {IDEMPOTENCY_HEADER} was already used for a different order; use a new key.",
                field=IDEMPOTENCY_HEADER,
            )
    else:
        # The position read is under the route's deadline too (the order then takes a fresh one).
        with call_deadline(Deadline.of_invocation(lambda_context).at):
            order = _closing_order(require_connection(user_id, connection_id), symbol, position_side)
    closed = place_futures_order(user_id, order, idempotency_key, lambda_context)
    _cancel_guards(user_id, connection_id, symbol, order.positionSide)
    return closed


def _cancel_guards(user_id: str, connection_id: str, symbol: str, position_side: str) -> None:
    """After a close, no protective order may stay armed on that side: a stale stop must never close a
    later position. A failure here never hides the close's outcome (the reconciler cleans up later)."""
    try:
        cancel_protective_orders(user_id, require_connection(user_id, connection_id), symbol, position_side)
    except KlineoError as exc:
        logger.warning("protective orders not cancelled after a close",
                       extra={"symbol": symbol, "category": str(exc.category)})
