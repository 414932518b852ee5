"""USDT-M algo (conditional) orders: POST/GET/DELETE /fapi/v1/algoOrder and their lists.

Since 2025-12-09 Binance takes STOP, STOP_MARKET, TAKE_PROFIT, TAKE_PROFIT_MARKET and
TRAILING_STOP_MARKET only here (`/fapi/v1/order` answers -4120). An algo order waits without
margin; when the mark price crosses its trigger it places a regular child order (MARKET, or
LIMIT at `price`) whose clientOrderId is the clientAlgoId, and reports it as `actualOrderId`.
Triggers are checked whenever the account is settled: on every call for that account and at
once when a test moves the mark price (`SimulatorState.set_mark_price`). Facts: docs/binance-facts.md §7.
"""

from __future__ import annotations

import dataclasses
import secrets
from decimal import Decimal

from . import errors
from .accounts import DemoAccount
from .errors import ApiError
from .futures import (
    CLIENT_ORDER_ID,
    CONDITIONAL_TYPES,
    TIME_IN_FORCE,
    ZERO,
    FuturesAccount,
    FuturesExchange,
    check_lot_size,
    check_price_band,
    check_price_filter,
    decimal_param,
    plain,
    position_side_for,
)
from .market import get_symbol

__all__ = ["AlgoOrder", "AlgoService"]

OPEN_ALGO = frozenset({"NEW"})
MARKET_CHILD = {"STOP_MARKET": "MARKET", "TAKE_PROFIT_MARKET": "MARKET", "TRAILING_STOP_MARKET": "MARKET"}
FIRST_ALGO_ID = 1_000_000_033_000_000
CANCEL_ALL_DONE = {"code": 200, "msg": "The operation of cancel all open order is done."}


@dataclasses.dataclass
class AlgoOrder:
    """One conditional algo order and, once fired, the regular order it placed."""

    algo_id: int
    client_algo_id: str
    order_type: str
    symbol: str
    side: str
    position_side: str
    time_in_force: str
    quantity: Decimal
    price: Decimal
    trigger_price: Decimal
    working_type: str
    close_position: bool
    reduce_only: bool
    price_protect: bool
    activate_price: Decimal | None
    callback_rate: Decimal | None
    create_time: int
    good_till_date: int
    self_trade_prevention_mode: str
    status: str = "NEW"
    update_time: int = 0
    trigger_time: int = 0
    actual_order_id: int | None = None
    actual_price: Decimal = ZERO
    extreme: Decimal | None = None  # trailing: best mark since activation
    reject_reason: str = ""

    @property
    def is_open(self) -> bool:
        """Waiting for its trigger."""
        return self.status in OPEN_ALGO

    def as_dict(self, query: bool = False) -> dict:
        """Binance's algo order fields (queries add the child order's id and price)."""
        body = {
            "algoId": self.algo_id,
            "clientAlgoId": self.client_algo_id,
            "algoType": "CONDITIONAL",
            "orderType": self.order_type,
            "symbol": self.symbol,
            "side": self.side,
            "positionSide": self.position_side,
            "timeInForce": self.time_in_force,
            "quantity": plain(self.quantity),
            "algoStatus": self.status,
            "triggerPrice": plain(self.trigger_price),
            "price": plain(self.price),
            "icebergQuantity": None,
            "selfTradePreventionMode": self.self_trade_prevention_mode,
            "workingType": self.working_type,
            "priceMatch": "NONE",
            "closePosition": self.close_position,
            "priceProtect": self.price_protect,
            "reduceOnly": self.reduce_only,
            "activatePrice": plain(self.activate_price) if self.activate_price is not None else "",
            "callbackRate": plain(self.callback_rate) if self.callback_rate is not None else "",
            "createTime": self.create_time,
            "updateTime": self.update_time or self.create_time,
            "triggerTime": self.trigger_time,
            "goodTillDate": self.good_till_date,
        }
        if query:
            body["actualOrderId"] = str(self.actual_order_id) if self.actual_order_id else ""
            body["actualPrice"] = f"{self.actual_price:.5f}"
        return body


def _flag(params: dict, name: str) -> bool:
    text = str(params.get(name, "false")).lower()
    if text not in ("true", "false"):
        raise errors.illegal_characters(name, "true, false")
    return text == "true"


def _crossed(algo: AlgoOrder, mark: Decimal) -> bool:
    """STOP*: BUY at mark ≥ trigger, SELL at mark ≤ trigger; TAKE_PROFIT*: the reverse."""
    rising = mark >= algo.trigger_price
    falling = mark <= algo.trigger_price
    if algo.order_type.startswith("STOP"):
        return rising if algo.side == "BUY" else falling
    return falling if algo.side == "BUY" else rising


def _trail(algo: AlgoOrder, mark: Decimal) -> bool:
    """Trailing stop: activate at activatePrice (or at once), then fire on a callbackRate pullback."""
    if algo.extreme is None:
        if algo.activate_price is not None:
            reached = mark >= algo.activate_price if algo.side == "SELL" else mark <= algo.activate_price
            if not reached:
                return False
        algo.extreme = mark
    rate = algo.callback_rate / Decimal(100)
    if algo.side == "SELL":
        algo.extreme = max(algo.extreme, mark)
        return mark <= algo.extreme * (1 - rate)
    algo.extreme = min(algo.extreme, mark)
    return mark >= algo.extreme * (1 + rate)


def _fires(algo: AlgoOrder, mark: Decimal) -> bool:
    if algo.order_type == "TRAILING_STOP_MARKET":
        return _trail(algo, mark)
    return _crossed(algo, mark)


class AlgoService:
    """The algo order endpoints of one simulator, sharing the futures exchange's accounts and lock."""

    def __init__(self, exchange: FuturesExchange):
        self._exchange = exchange
        self._next_algo_id = FIRST_ALGO_ID
        exchange.settle_hooks.append(self._fire_due)

    # ----- placing -----------------------------------------------------------------------------
    def place(self, account: DemoAccount, params: dict, now_ms: float) -> dict:
        """POST /fapi/v1/algoOrder (algoType=CONDITIONAL)."""
        with self._exchange.lock:
            state = self._exchange.state_for(account, now_ms)
            algo = self._parse(state, params, now_ms)
            if algo.order_type != "TRAILING_STOP_MARKET" and _crossed(algo, self._mark(algo, now_ms)):
                raise ApiError(400, -2021, "Order would immediately trigger.")
            if algo.order_type == "TRAILING_STOP_MARKET" and algo.activate_price is not None:
                mark = self._mark(algo, now_ms)
                wrong = algo.activate_price <= mark if algo.side == "SELL" else algo.activate_price >= mark
                if wrong:
                    raise ApiError(400, -2021, "Order would immediately trigger.")
            state.algo_orders[algo.algo_id] = algo
            return algo.as_dict()

    def _parse(self, state: FuturesAccount, params: dict, now_ms: float) -> AlgoOrder:
        algo_type = params.get("algoType")
        if not algo_type:
            raise errors.mandatory("algoType")
        if algo_type != "CONDITIONAL":
            raise ApiError(400, -1130, "Data sent for parameter 'algoType' is not valid.")
        spec = get_symbol(params.get("symbol")) if params.get("symbol") else None
        if spec is None:
            raise errors.mandatory("symbol")
        side = params.get("side")
        if side not in ("BUY", "SELL"):
            raise errors.mandatory("side") if not side else ApiError(400, -1117, "Invalid side.")
        order_type = params.get("type")
        if not order_type:
            raise errors.mandatory("type")
        if order_type not in CONDITIONAL_TYPES:
            raise ApiError(400, -1116, "Invalid orderType.")
        close_position = self._close_position(state, order_type, side, params)
        prices = self._prices(spec, order_type, params)
        return AlgoOrder(
            algo_id=self._new_algo_id(),
            client_algo_id=self._client_algo_id(state, params),
            order_type=order_type,
            symbol=spec.symbol,
            side=side,
            position_side=position_side_for(state, params),
            time_in_force=self._time_in_force(order_type, params),
            quantity=self._quantity(spec, order_type, close_position, params),
            close_position=close_position,
            reduce_only=_flag(params, "reduceOnly"),
            price_protect=_flag(params, "priceProtect"),
            working_type=params.get("workingType") or "CONTRACT_PRICE",
            create_time=int(now_ms),
            good_till_date=int(params.get("goodTillDate") or 0),
            self_trade_prevention_mode=params.get("selfTradePreventionMode") or "EXPIRE_MAKER",
            **prices,
        )

    @staticmethod
    def _close_position(state: FuturesAccount, order_type: str, side: str, params: dict) -> bool:
        """closePosition: STOP_MARKET/TAKE_PROFIT_MARKET only, never with reduceOnly, and in hedge
        mode only SELL+LONG or BUY+SHORT (docs' rules; the codes are the simulator's choice)."""
        if not _flag(params, "closePosition"):
            return False
        if order_type not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
            raise ApiError(400, -1106, "Parameter 'closePosition' sent when not required.")
        if params.get("reduceOnly") is not None:
            raise ApiError(400, -1106, "Parameter 'reduceOnly' sent when not required.")
        if state.dual_side and (params.get("positionSide"), side) in (("LONG", "BUY"), ("SHORT", "SELL")):
            raise ApiError(400, -4061, "Order's position side does not match user's setting.")
        return True

    @staticmethod
    def _prices(spec, order_type: str, params: dict) -> dict:
        """triggerPrice (not trailing), price (STOP/TAKE_PROFIT), activatePrice/callbackRate (trailing)."""
        prices = {"price": ZERO, "trigger_price": ZERO, "activate_price": None, "callback_rate": None}
        if order_type == "TRAILING_STOP_MARKET":
            rate = decimal_param(params, "callbackRate")
            if not Decimal("0.1") <= rate <= Decimal(20):  # max 20 since 2026-10-23
                raise ApiError(400, -1130, "Data sent for parameter 'callbackRate' is not valid.")
            prices["callback_rate"] = rate
            if params.get("activatePrice") not in (None, ""):
                prices["activate_price"] = decimal_param(params, "activatePrice")
                check_price_filter(spec, prices["activate_price"])
            return prices
        prices["trigger_price"] = decimal_param(params, "triggerPrice")
        check_price_filter(spec, prices["trigger_price"])
        if order_type in ("STOP", "TAKE_PROFIT"):
            prices["price"] = decimal_param(params, "price")
            check_price_filter(spec, prices["price"])
            # The limit price within PERCENT_PRICE's band around the trigger, either side (facts §6).
            check_price_band(spec, None, prices["price"], prices["trigger_price"], codes=(-4183, -4184))
        return prices

    @staticmethod
    def _quantity(spec, order_type: str, close_position: bool, params: dict) -> Decimal:
        if close_position:
            if params.get("quantity") not in (None, ""):
                raise ApiError(400, -4137, "Quantity must be zero with closePosition equals true")
            return ZERO
        quantity = decimal_param(params, "quantity")
        if quantity <= 0:
            raise ApiError(400, -4003, "Quantity less than zero.")
        check_lot_size(spec, quantity, "MARKET" if order_type in MARKET_CHILD else "LIMIT")
        return quantity

    @staticmethod
    def _time_in_force(order_type: str, params: dict) -> str:
        time_in_force = params.get("timeInForce") or "GTC"
        if time_in_force not in TIME_IN_FORCE:
            raise ApiError(400, -1115, "Invalid timeInForce.")
        return time_in_force

    @staticmethod
    def _client_algo_id(state: FuturesAccount, params: dict) -> str:
        client_algo_id = params.get("clientAlgoId")
        if client_algo_id is None:
            return secrets.token_urlsafe(16).replace("-", "x").replace("_", "y")[:22]
        if not CLIENT_ORDER_ID.match(client_algo_id):
            raise ApiError(400, -4015, "Client order id is not valid.")
        if any(a.client_algo_id == client_algo_id and a.is_open for a in state.algo_orders.values()):
            raise ApiError(400, -4116, "ClientOrderId is duplicated.")
        return client_algo_id

    def _new_algo_id(self) -> int:
        self._next_algo_id += 1
        return self._next_algo_id

    def _mark(self, algo: AlgoOrder, now_ms: float) -> Decimal:
        return self._exchange.mark(algo.symbol, now_ms)

    # ----- firing ------------------------------------------------------------------------------
    def _fire_due(self, state: FuturesAccount, now_ms: float) -> None:
        """Settle hook: fire open algo orders whose trigger the mark crossed; finish settled ones."""
        for algo in list(state.algo_orders.values()):
            if algo.status == "TRIGGERED":
                child = state.orders.get(algo.actual_order_id)
                if child is not None and not child.is_open:
                    algo.status, algo.update_time = "FINISHED", int(now_ms)
            elif algo.is_open and _fires(algo, self._mark(algo, now_ms)):
                self._trigger(state, algo, now_ms)

    def _trigger(self, state: FuturesAccount, algo: AlgoOrder, now_ms: float) -> None:
        """Place the child order; a refusal (no position to close, margin) ends the algo REJECTED."""
        algo.trigger_time = algo.update_time = int(now_ms)
        params = self._child_params(state, algo)
        if params is None:
            algo.status, algo.reject_reason = "REJECTED", "Reduce Only reject"
            return
        try:
            child = self._exchange.place_internal(state, params, now_ms)
        except ApiError as refusal:
            algo.status, algo.reject_reason = "REJECTED", refusal.msg
            return
        algo.actual_order_id = child.order_id
        if child.executed_qty:
            algo.actual_price = child.cum_quote / child.executed_qty
        algo.status = "TRIGGERED" if child.is_open else "FINISHED"

    def _child_params(self, state: FuturesAccount, algo: AlgoOrder) -> dict | None:
        """The regular order an algo places; None when a closing algo finds nothing to close.

        A closing algo's order is for its own quantity, never trimmed to the position: one larger than
        what is left is refused as the order placed directly would be (-2022), and the algo ends REJECTED
        (the strict reading; docs/binance-facts.md §7). closePosition closes whatever is held."""
        quantity = algo.quantity
        closing = algo.close_position or algo.reduce_only or self._closes_hedge_side(algo)
        if closing:
            held = abs(state.positions[(algo.symbol, algo.position_side)].amount)
            if held == 0:
                return None
            if algo.close_position:
                quantity = held
        params = {
            "symbol": algo.symbol,
            "side": algo.side,
            "type": MARKET_CHILD.get(algo.order_type, "LIMIT"),
            "quantity": plain(quantity),
            "newClientOrderId": algo.client_algo_id,
            "selfTradePreventionMode": algo.self_trade_prevention_mode,
        }
        if algo.position_side != "BOTH":
            params["positionSide"] = algo.position_side
        elif closing:
            params["reduceOnly"] = "true"
        if params["type"] == "LIMIT":
            params.update({"price": plain(algo.price), "timeInForce": algo.time_in_force})
        return params

    @staticmethod
    def _closes_hedge_side(algo: AlgoOrder) -> bool:
        return (algo.position_side, algo.side) in (("LONG", "SELL"), ("SHORT", "BUY"))

    # ----- reading and cancelling --------------------------------------------------------------
    @staticmethod
    def _find(state: FuturesAccount, params: dict) -> AlgoOrder | None:
        algo_id, client_algo_id = params.get("algoId"), params.get("clientAlgoId")
        if not algo_id and not client_algo_id:
            raise errors.one_of_mandatory("algoId", "clientAlgoId")
        if algo_id:
            try:
                return state.algo_orders.get(int(algo_id))
            except ValueError:
                raise errors.mandatory("algoId") from None
        matches = [a for a in state.algo_orders.values() if a.client_algo_id == client_algo_id]
        open_matches = [a for a in matches if a.is_open]
        return (open_matches or matches or [None])[-1]

    def query(self, account: DemoAccount, params: dict, now_ms: float) -> dict:
        """GET /fapi/v1/algoOrder by algoId or clientAlgoId; unknown → -2013."""
        with self._exchange.lock:
            algo = self._find(self._exchange.state_for(account, now_ms), params)
            if algo is None:
                raise ApiError(400, -2013, "Order does not exist.")
            return algo.as_dict(query=True)

    def cancel(self, account: DemoAccount, params: dict, now_ms: float) -> dict:
        """DELETE /fapi/v1/algoOrder; not open (fired, cancelled, unknown) → -2011."""
        with self._exchange.lock:
            algo = self._find(self._exchange.state_for(account, now_ms), params)
            if algo is None or not algo.is_open:
                raise ApiError(400, -2011, "Unknown order sent.")
            algo.status, algo.update_time = "CANCELED", int(now_ms)
            return {
                "algoId": algo.algo_id,
                "clientAlgoId": algo.client_algo_id,
                "code": "200",
                "msg": "success",
            }

    def open_orders(self, account: DemoAccount, params: dict, now_ms: float) -> list[dict]:
        """GET /fapi/v1/openAlgoOrders (`symbol`, `algoType`, `algoId` optional)."""
        symbol = params.get("symbol")
        if symbol:
            get_symbol(symbol)
        with self._exchange.lock:
            state = self._exchange.state_for(account, now_ms)
            return [
                algo.as_dict()
                for algo in state.algo_orders.values()
                if algo.is_open
                and symbol in (None, "", algo.symbol)
                and params.get("algoId") in (None, "", str(algo.algo_id))
            ]

    def cancel_all(self, account: DemoAccount, params: dict, now_ms: float) -> dict:
        """DELETE /fapi/v1/algoOpenOrders (`symbol` required)."""
        symbol = params.get("symbol")
        if not symbol:
            raise errors.mandatory("symbol")
        get_symbol(symbol)
        with self._exchange.lock:
            state = self._exchange.state_for(account, now_ms)
            for algo in state.algo_orders.values():
                if algo.is_open and algo.symbol == symbol:
                    algo.status, algo.update_time = "CANCELED", int(now_ms)
        return dict(CANCEL_ALL_DONE)

    def history(self, account: DemoAccount, params: dict, now_ms: float) -> list[dict]:
        """GET /fapi/v1/allAlgoOrders (`symbol` required; `algoId` ≥, `limit` ≤ 1000)."""
        symbol = params.get("symbol")
        if not symbol:
            raise errors.mandatory("symbol")
        get_symbol(symbol)
        from_id = int(params.get("algoId") or 0)
        limit = min(int(params.get("limit") or 500), 1000)
        with self._exchange.lock:
            state = self._exchange.state_for(account, now_ms)
            rows = [a for a in state.algo_orders.values() if a.symbol == symbol and a.algo_id >= from_id]
            return [algo.as_dict(query=True) for algo in rows[:limit]]
