"""USDT-M futures accounts: wallet, positions, leverage and orders, with Binance's order rules.

One-way position mode (positionSide BOTH), cross margin. MARKET orders fill at the mark price;
a LIMIT BUY at or above the mark (SELL at or below) fills at the mark at once, otherwise it rests
as NEW and fills when the mark later crosses its price (checked lazily whenever the account is
read or traded). Filter checks and error codes follow facts §4 and §6.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from collections.abc import Callable
from decimal import ROUND_DOWN, ROUND_UP, Decimal, InvalidOperation

from klineo.validation import CLIENT_ORDER_ID_RE

from . import errors
from .accounts import DemoAccount
from .errors import ApiError
from .market import SYMBOLS, SymbolSpec, get_symbol

__all__ = ["FuturesAccount", "FuturesExchange", "FuturesOrder"]

ZERO = Decimal(0)
TAKER_FEE = Decimal("0.0004")
MAKER_FEE = Decimal("0.0002")
MAINT_MARGIN_RATE = Decimal("0.004")
CLIENT_ORDER_ID = CLIENT_ORDER_ID_RE  # Binance's rule (facts §3), written once in the layer
CONDITIONAL_TYPES = frozenset(
    {"STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"}
)
TIME_IN_FORCE = frozenset({"GTC", "IOC", "FOK", "GTX", "GTD", "RPI"})
OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED"})
_FLAT_FIGURES = {
    "mark": None,
    "notional": ZERO,
    "unrealized": ZERO,
    "initial": ZERO,
    "maint": ZERO,
    "open_order_initial": ZERO,
    "bid": ZERO,
    "ask": ZERO,
}


def _money(value: Decimal) -> str:
    return f"{value:.8f}"


def _plain(value: Decimal) -> str:
    """A decimal as Binance echoes order numbers: no exponent, no needless trailing zeros."""
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _fixed(value: Decimal, places: int) -> str:
    return f"{value:.{places}f}"


def _decimal_param(params: dict, name: str) -> Decimal:
    text = params.get(name)
    if text is None or text == "":
        raise errors.mandatory(name)
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise errors.mandatory(name) from None
    if not value.is_finite():
        raise errors.mandatory(name)
    return value


def _on_tick(value: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return (value / tick).to_integral_value(rounding=rounding) * tick


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent)


def _max_notional_for(leverage: int) -> str:
    for floor, notional in (
        (101, "50000"),
        (51, "250000"),
        (21, "1000000"),
        (11, "10000000"),
        (6, "20000000"),
    ):
        if leverage >= floor:
            return notional
    return "80000000"


@dataclasses.dataclass
class FuturesOrder:
    """One order as /fapi/v1/order returns it."""

    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    orig_qty: Decimal
    price: Decimal
    reduce_only: bool
    position_side: str
    time: int
    update_time: int
    self_trade_prevention_mode: str
    good_till_date: int
    status: str = "NEW"
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO

    @property
    def is_open(self) -> bool:
        """NEW or PARTIALLY_FILLED."""
        return self.status in OPEN_STATUSES

    def as_dict(self, with_time: bool = True) -> dict:
        """Binance's order fields (the query form adds `time`)."""
        spec = SYMBOLS[self.symbol]
        average = self.cum_quote / self.executed_qty if self.executed_qty else ZERO
        body = {
            "orderId": self.order_id,
            "symbol": self.symbol,
            "status": self.status,
            "clientOrderId": self.client_order_id,
            "price": _plain(self.price),
            "avgPrice": _fixed(average, 5) if not average else _fixed(average, spec.price_precision + 3),
            "origQty": _plain(self.orig_qty),
            "executedQty": _plain(self.executed_qty),
            "cumQty": _plain(self.executed_qty),
            "cumQuote": _plain(self.cum_quote),
            "timeInForce": self.time_in_force,
            "type": self.type,
            "reduceOnly": self.reduce_only,
            "closePosition": False,
            "side": self.side,
            "positionSide": self.position_side,
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": self.type,
            "priceMatch": "NONE",
            "selfTradePreventionMode": self.self_trade_prevention_mode,
            "goodTillDate": self.good_till_date,
            "updateTime": self.update_time,
        }
        if with_time:
            body["time"] = self.time
        return body


@dataclasses.dataclass
class Position:
    """A one-way (BOTH) position in one symbol."""

    amount: Decimal = ZERO
    entry_price: Decimal = ZERO
    update_time: int = 0


class FuturesAccount:
    """The futures state of one demo account."""

    def __init__(self, account: DemoAccount, default_leverage: int):
        self.account = account
        self.assets = {asset: Decimal(amount) for asset, amount in account.futures_balances.items()}
        self.assets.setdefault("USDT", ZERO)
        self.positions = {symbol: Position() for symbol in SYMBOLS}
        self.leverage = {symbol: default_leverage for symbol in SYMBOLS}
        self.orders: dict[int, FuturesOrder] = {}
        self.open_by_id: dict[int, FuturesOrder] = {}
        self.orders_by_client_id: dict[tuple[str, str], int] = {}
        self.update_time = 0

    @property
    def wallet(self) -> Decimal:
        """USDT wallet balance."""
        return self.assets["USDT"]

    def open_orders(self, symbol: str | None = None) -> list[FuturesOrder]:
        """Open orders, optionally for one symbol, oldest first."""
        return [o for o in self.open_by_id.values() if symbol is None or o.symbol == symbol]

    def track(self, order: FuturesOrder) -> None:
        """Keep the open-order index in step with the order's status."""
        if order.is_open:
            self.open_by_id[order.order_id] = order
        else:
            self.open_by_id.pop(order.order_id, None)


class FuturesExchange:
    """All futures accounts plus the order logic; every public method is thread-safe."""

    def __init__(
        self,
        accounts: dict[str, DemoAccount],
        mark_price: Callable[[str, float], float],
        default_leverage: int,
    ):
        self._mark_price = mark_price
        self._lock = threading.Lock()
        self._default_leverage = default_leverage
        self._accounts = {a.api_key: FuturesAccount(a, default_leverage) for a in accounts.values()}
        self._next_order_id = 4_100_000_000

    # ----- prices and margin -------------------------------------------------------------------
    def mark(self, symbol: str, now_ms: float) -> Decimal:
        """The mark price as a Decimal."""
        return Decimal(repr(self._mark_price(symbol, now_ms)))

    def _position_figures(self, state: FuturesAccount, symbol: str, now_ms: float) -> dict:
        """Margin figures of one symbol; `mark` is None when there is neither position nor order."""
        position = state.positions[symbol]
        orders = state.open_orders(symbol)
        if not position.amount and not orders:
            return dict(_FLAT_FIGURES)
        mark = self.mark(symbol, now_ms)
        leverage = Decimal(state.leverage[symbol])
        notional = position.amount * mark
        bid = sum(((o.orig_qty - o.executed_qty) * o.price for o in orders if o.side == "BUY"), ZERO)
        ask = sum(((o.orig_qty - o.executed_qty) * o.price for o in orders if o.side == "SELL"), ZERO)
        return {
            "mark": mark,
            "notional": notional,
            "unrealized": position.amount * (mark - position.entry_price) if position.amount else ZERO,
            "initial": abs(notional) / leverage,
            "maint": abs(notional) * MAINT_MARGIN_RATE,
            "open_order_initial": (bid + ask) / leverage,
            "bid": bid,
            "ask": ask,
        }

    def _totals(self, state: FuturesAccount, now_ms: float) -> dict:
        figures = {symbol: self._position_figures(state, symbol, now_ms) for symbol in SYMBOLS}
        unrealized = sum((f["unrealized"] for f in figures.values()), ZERO)
        initial = sum((f["initial"] for f in figures.values()), ZERO)
        open_initial = sum((f["open_order_initial"] for f in figures.values()), ZERO)
        maint = sum((f["maint"] for f in figures.values()), ZERO)
        margin_balance = state.wallet + unrealized
        available = margin_balance - initial - open_initial
        return {
            "figures": figures,
            "unrealized": unrealized,
            "position_initial": initial,
            "open_initial": open_initial,
            "initial": initial + open_initial,
            "maint": maint,
            "wallet": state.wallet,
            "margin_balance": margin_balance,
            "available": available,
            "max_withdraw": max(ZERO, min(available, state.wallet)),
        }

    # ----- matching ----------------------------------------------------------------------------
    def _apply_fill(
        self,
        state: FuturesAccount,
        order: FuturesOrder,
        quantity: Decimal,
        price: Decimal,
        fee_rate: Decimal,
        now_ms: int,
    ) -> None:
        position = state.positions[order.symbol]
        delta = quantity if order.side == "BUY" else -quantity
        current = position.amount
        if current == 0 or (current > 0) == (delta > 0):
            total = abs(current) + quantity
            position.entry_price = (abs(current) * position.entry_price + quantity * price) / total
            position.amount = current + delta
        else:
            closing = min(abs(current), quantity)
            direction = 1 if current > 0 else -1
            state.assets["USDT"] += closing * (price - position.entry_price) * direction
            position.amount = current + delta
            if position.amount == 0:
                position.entry_price = ZERO
            elif quantity > closing:
                position.entry_price = price
        state.assets["USDT"] -= quantity * price * fee_rate
        position.update_time = now_ms
        order.executed_qty += quantity
        order.cum_quote += quantity * price
        order.status = "FILLED" if order.executed_qty >= order.orig_qty else "PARTIALLY_FILLED"
        order.update_time = now_ms
        state.update_time = now_ms
        state.track(order)

    def _match_resting(self, state: FuturesAccount, now_ms: float) -> None:
        """Fill resting LIMIT orders the mark price has crossed since they were placed."""
        for order in state.open_orders():
            mark = self.mark(order.symbol, now_ms)
            crossed = mark <= order.price if order.side == "BUY" else mark >= order.price
            if crossed:
                self._apply_fill(
                    state, order, order.orig_qty - order.executed_qty, order.price, MAKER_FEE, int(now_ms)
                )

    def state_for(self, account: DemoAccount, now_ms: float) -> FuturesAccount:
        """The account's futures state with resting orders matched up to now (call under lock)."""
        state = self._accounts[account.api_key]
        self._match_resting(state, now_ms)
        return state

    # ----- orders ------------------------------------------------------------------------------
    def _validate_order(self, state: FuturesAccount, params: dict, now_ms: float) -> dict:
        spec = get_symbol(params.get("symbol")) if params.get("symbol") else None
        if spec is None:
            raise errors.mandatory("symbol")
        side = params.get("side")
        if not side:
            raise errors.mandatory("side")
        if side not in ("BUY", "SELL"):
            raise ApiError(400, -1117, "Invalid side.")
        order_type = params.get("type")
        if not order_type:
            raise errors.mandatory("type")
        if order_type in CONDITIONAL_TYPES:
            raise ApiError(
                400,
                -4120,
                "Order type not supported for this endpoint. "
                "Please use the Algo Order API endpoints instead.",
            )
        if order_type not in ("LIMIT", "MARKET"):
            raise ApiError(400, -1116, "Invalid orderType.")
        position_side = params.get("positionSide", "BOTH") or "BOTH"
        if position_side != "BOTH":
            raise ApiError(400, -4061, "Order's position side does not match user's setting.")
        client_order_id = params.get("newClientOrderId")
        if client_order_id is not None:
            if len(client_order_id) > 36:
                raise ApiError(400, -4015, "Client order id length should not be more than 36 chars")
            if not CLIENT_ORDER_ID.match(client_order_id):
                raise ApiError(400, -4015, "Client order id is not valid.")
        reduce_only_text = params.get("reduceOnly", "false").lower()
        if reduce_only_text not in ("true", "false"):
            raise errors.illegal_characters("reduceOnly", "true, false")
        reduce_only = reduce_only_text == "true"
        if params.get("closePosition", "false").lower() == "true":
            raise ApiError(400, -1106, "Parameter 'closePosition' sent when not required.")
        quantity = _decimal_param(params, "quantity")
        if quantity <= 0:
            raise ApiError(400, -4003, "Quantity less than zero.")
        if _places(quantity) > spec.quantity_precision:
            raise ApiError(400, -1111, "Precision is over the maximum defined for this asset.")
        mark = self.mark(spec.symbol, now_ms)
        time_in_force = "GTC"
        price = ZERO
        if order_type == "LIMIT":
            time_in_force = params.get("timeInForce") or ""
            if not time_in_force:
                raise errors.mandatory("timeInForce")
            if time_in_force not in TIME_IN_FORCE:
                raise ApiError(400, -1115, "Invalid timeInForce.")
            price = _decimal_param(params, "price")
            if price <= 0:
                raise ApiError(400, -4001, "Price less than 0.")
            if _places(price) > spec.price_precision:
                raise ApiError(400, -1111, "Precision is over the maximum defined for this asset.")
            self._check_price_filter(spec, price)
        elif params.get("price") not in (None, ""):
            raise ApiError(400, -1106, "Parameter 'price' sent when not required.")
        self._check_lot_size(spec, quantity, order_type)
        if order_type == "LIMIT":
            if side == "BUY" and price > mark * Decimal("1.05"):
                limit = _on_tick(mark * Decimal("1.05"), spec.futures_decimal("tick"), ROUND_DOWN)
                raise ApiError(400, -4024, f"Limit price can't be higher than {limit}.")
            if side == "SELL" and price < mark * Decimal("0.95"):
                limit = _on_tick(mark * Decimal("0.95"), spec.futures_decimal("tick"), ROUND_UP)
                raise ApiError(400, -4025, f"Limit price can't be lower than {limit}.")
        reference = price if order_type == "LIMIT" else mark
        if not reduce_only and quantity * reference < spec.futures_decimal("min_notional"):
            raise ApiError(
                400,
                -4164,
                f"Order's notional must be no smaller than "
                f"{spec.futures_min_notional} (unless you choose reduce only)",
            )
        return {
            "spec": spec,
            "side": side,
            "type": order_type,
            "quantity": quantity,
            "price": price,
            "time_in_force": time_in_force,
            "reduce_only": reduce_only,
            "mark": mark,
            "client_order_id": client_order_id,
            "position_side": position_side,
        }

    @staticmethod
    def _check_price_filter(spec: SymbolSpec, price: Decimal) -> None:
        min_price, max_price, tick = (spec.futures_decimal(n) for n in ("min_price", "max_price", "tick"))
        if min_price and price < min_price:
            raise ApiError(400, -4013, "Price less than min price.")
        if max_price and price > max_price:
            raise ApiError(400, -4016, "Price more than max price.")
        if tick and (price - min_price) % tick != 0:
            raise ApiError(400, -4014, "Price not increased by tick size.")

    @staticmethod
    def _check_lot_size(spec: SymbolSpec, quantity: Decimal, order_type: str) -> None:
        min_qty, step = spec.futures_decimal("min_qty"), spec.futures_decimal("step")
        max_qty = spec.futures_decimal("market_max_qty" if order_type == "MARKET" else "max_qty")
        if quantity < min_qty:
            raise ApiError(400, -4004, "Quantity less than min quantity.")
        if quantity > max_qty:
            raise ApiError(400, -4005, "Quantity greater than max quantity.")
        if step and (quantity - min_qty) % step != 0:
            raise ApiError(400, -4023, "Qty not increased by step size.")

    def place_order(self, account: DemoAccount, params: dict, now_ms: float) -> dict:
        """POST /fapi/v1/order: validate, margin-check, fill or rest; returns the response body."""
        with self._lock:
            state = self.state_for(account, now_ms)
            checked = self._validate_order(state, params, now_ms)
            spec, side, quantity = checked["spec"], checked["side"], checked["quantity"]
            client_order_id = checked["client_order_id"]
            if client_order_id is not None:
                existing = state.orders_by_client_id.get((spec.symbol, client_order_id))
                if existing is not None and state.orders[existing].is_open:
                    raise ApiError(400, -4116, "ClientOrderId is duplicated.")
            else:
                client_order_id = secrets.token_urlsafe(16).replace("-", "x").replace("_", "y")[:22]
            mark = checked["mark"]
            marketable = checked["type"] == "MARKET" or (
                checked["price"] >= mark if side == "BUY" else checked["price"] <= mark
            )
            if checked["time_in_force"] == "GTX" and marketable:
                raise ApiError(
                    400,
                    -5022,
                    "Due to the order could not be executed as maker, the Post Only "
                    "order will be rejected. The order will not be recorded in the "
                    "order history",
                )
            position = state.positions[spec.symbol]
            delta = quantity if side == "BUY" else -quantity
            increase = max(ZERO, abs(position.amount + delta) - abs(position.amount))
            if checked["reduce_only"] and (increase > 0 or position.amount == 0):
                raise ApiError(400, -2022, "ReduceOnly Order is rejected.")
            reference = mark if marketable else checked["price"]
            leverage = Decimal(state.leverage[spec.symbol])
            required = increase * reference / leverage
            if marketable:
                required += quantity * mark * TAKER_FEE
            if increase > 0 and required > self._totals(state, now_ms)["available"]:
                raise ApiError(400, -2019, "Margin is insufficient.")
            now = int(now_ms)
            self._next_order_id += 1
            order = FuturesOrder(
                order_id=self._next_order_id,
                client_order_id=client_order_id,
                symbol=spec.symbol,
                side=side,
                type=checked["type"],
                time_in_force=checked["time_in_force"],
                orig_qty=quantity,
                price=checked["price"],
                reduce_only=checked["reduce_only"],
                position_side=checked["position_side"],
                time=now,
                update_time=now,
                self_trade_prevention_mode=params.get("selfTradePreventionMode") or "EXPIRE_MAKER",
                good_till_date=int(params.get("goodTillDate") or 0),
            )
            acknowledgement = order.as_dict(with_time=False)
            state.orders[order.order_id] = order
            state.orders_by_client_id[(spec.symbol, client_order_id)] = order.order_id
            if marketable:
                self._apply_fill(state, order, quantity, mark, TAKER_FEE, now)
            elif checked["time_in_force"] in ("IOC", "FOK"):
                order.status = "EXPIRED"
            state.track(order)
            if params.get("newOrderRespType", "ACK") == "RESULT":
                return order.as_dict(with_time=False)
            return acknowledgement

    def _find_order(self, state: FuturesAccount, params: dict) -> FuturesOrder | None:
        symbol = params.get("symbol")
        if not symbol:
            raise errors.mandatory("symbol")
        get_symbol(symbol)
        order_id, client_id = params.get("orderId"), params.get("origClientOrderId")
        if not order_id and not client_id:
            raise errors.one_of_mandatory("orderId", "origClientOrderId")
        if order_id:
            try:
                order = state.orders.get(int(order_id))
            except ValueError:
                raise errors.mandatory("orderId") from None
            if order is None or order.symbol != symbol:
                return None
            if client_id and order.client_order_id != client_id:
                return None
            return order
        found = state.orders_by_client_id.get((symbol, client_id))
        return state.orders.get(found) if found is not None else None

    def query_order(self, account: DemoAccount, params: dict, now_ms: float) -> dict:
        """GET /fapi/v1/order by orderId or origClientOrderId; unknown → -2013."""
        with self._lock:
            order = self._find_order(self.state_for(account, now_ms), params)
            if order is None:
                raise ApiError(400, -2013, "Order does not exist.")
            return order.as_dict()

    def cancel_order(self, account: DemoAccount, params: dict, now_ms: float) -> dict:
        """DELETE /fapi/v1/order; an order that is not open → -2011 Unknown order sent."""
        with self._lock:
            state = self.state_for(account, now_ms)
            order = self._find_order(state, params)
            if order is None or not order.is_open:
                raise ApiError(400, -2011, "Unknown order sent.")
            order.status = "CANCELED"
            order.update_time = int(now_ms)
            state.track(order)
            return order.as_dict(with_time=False)

    def cancel_all(self, account: DemoAccount, params: dict, now_ms: float) -> dict:
        """DELETE /fapi/v1/allOpenOrders."""
        symbol = params.get("symbol")
        if not symbol:
            raise errors.mandatory("symbol")
        get_symbol(symbol)
        with self._lock:
            state = self.state_for(account, now_ms)
            for order in state.open_orders(symbol):
                order.status = "CANCELED"
                order.update_time = int(now_ms)
                state.track(order)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def open_orders(self, account: DemoAccount, symbol: str | None, now_ms: float) -> list[dict]:
        """GET /fapi/v1/openOrders."""
        if symbol:
            get_symbol(symbol)
        with self._lock:
            return [o.as_dict() for o in self.state_for(account, now_ms).open_orders(symbol)]

    def set_leverage(self, account: DemoAccount, params: dict, now_ms: float) -> dict:
        """POST /fapi/v1/leverage."""
        symbol = params.get("symbol")
        if not symbol:
            raise errors.mandatory("symbol")
        spec = get_symbol(symbol)
        text = params.get("leverage")
        if not text:
            raise errors.mandatory("leverage")
        try:
            leverage = int(text)
        except ValueError:
            raise ApiError(400, -4028, f"Leverage {text} is not valid") from None
        if not 1 <= leverage <= spec.max_leverage:
            raise ApiError(400, -4028, f"Leverage {leverage} is not valid")
        with self._lock:
            self.state_for(account, now_ms).leverage[symbol] = leverage
        return {"leverage": leverage, "maxNotionalValue": _max_notional_for(leverage), "symbol": symbol}

    # ----- account views -----------------------------------------------------------------------
    def _asset_rows(self, state: FuturesAccount, totals: dict, now: int) -> list[dict]:
        rows = []
        for asset, balance in state.assets.items():
            is_usdt = asset == "USDT"
            unrealized = totals["unrealized"] if is_usdt else ZERO
            initial = totals["initial"] if is_usdt else ZERO
            available = totals["available"] if is_usdt else balance
            rows.append(
                {
                    "asset": asset,
                    "walletBalance": _money(balance),
                    "unrealizedProfit": _money(unrealized),
                    "marginBalance": _money(balance + unrealized),
                    "maintMargin": _money(totals["maint"] if is_usdt else ZERO),
                    "initialMargin": _money(initial),
                    "positionInitialMargin": _money(totals["position_initial"] if is_usdt else ZERO),
                    "openOrderInitialMargin": _money(totals["open_initial"] if is_usdt else ZERO),
                    "crossWalletBalance": _money(balance),
                    "crossUnPnl": _money(unrealized),
                    "availableBalance": _money(available),
                    "maxWithdrawAmount": _money(totals["max_withdraw"] if is_usdt else balance),
                    "marginAvailable": True,
                    "updateTime": state.update_time or now,
                }
            )
        return rows

    @staticmethod
    def _totals_fields(totals: dict) -> dict:
        return {
            "totalInitialMargin": _money(totals["initial"]),
            "totalMaintMargin": _money(totals["maint"]),
            "totalWalletBalance": _money(totals["wallet"]),
            "totalUnrealizedProfit": _money(totals["unrealized"]),
            "totalMarginBalance": _money(totals["margin_balance"]),
            "totalPositionInitialMargin": _money(totals["position_initial"]),
            "totalOpenOrderInitialMargin": _money(totals["open_initial"]),
            "totalCrossWalletBalance": _money(totals["wallet"]),
            "totalCrossUnPnl": _money(totals["unrealized"]),
            "availableBalance": _money(totals["available"]),
            "maxWithdrawAmount": _money(totals["max_withdraw"]),
        }

    def _position_row(self, state: FuturesAccount, symbol: str, figures: dict, version: int) -> dict:
        position = state.positions[symbol]
        row = {
            "symbol": symbol,
            "initialMargin": _money(figures["initial"] + figures["open_order_initial"]),
            "maintMargin": _money(figures["maint"]),
            "unrealizedProfit": _money(figures["unrealized"]),
            "positionInitialMargin": _money(figures["initial"]),
            "openOrderInitialMargin": _money(figures["open_order_initial"]),
            "positionSide": "BOTH",
            "positionAmt": _fixed(position.amount, SYMBOLS[symbol].quantity_precision),
            "notional": _money(figures["notional"]),
            "isolatedWallet": "0",
            "isolatedMargin": "0",
            "updateTime": position.update_time,
            "bidNotional": _money(figures["bid"]),
            "askNotional": _money(figures["ask"]),
        }
        if version == 2:
            row.update(
                {
                    "leverage": str(state.leverage[symbol]),
                    "isolated": False,
                    "entryPrice": _money(position.entry_price),
                    "breakEvenPrice": _money(position.entry_price),
                    "maxNotional": _max_notional_for(state.leverage[symbol]),
                }
            )
            del row["isolatedMargin"]
        return row

    def account(self, account: DemoAccount, now_ms: float, version: int) -> dict:
        """GET /fapi/v2/account and /fapi/v3/account."""
        with self._lock:
            state = self.state_for(account, now_ms)
            totals = self._totals(state, now_ms)
            now = int(now_ms)
            body: dict = {}
            if version == 2:
                body.update(
                    {
                        "feeTier": 0,
                        "feeBurn": True,
                        "canTrade": account.permissions.futures,
                        "canDeposit": True,
                        "canWithdraw": account.permissions.withdrawals,
                        "updateTime": 0,
                        "multiAssetsMargin": False,
                        "tradeGroupId": -1,
                    }
                )
            body.update(self._totals_fields(totals))
            body["assets"] = self._asset_rows(state, totals, now)
            positions = []
            for symbol, figures in totals["figures"].items():
                if version == 3 and not (state.positions[symbol].amount or state.open_orders(symbol)):
                    continue
                positions.append(self._position_row(state, symbol, figures, version))
            body["positions"] = positions
            return body

    def account_config(self, account: DemoAccount) -> dict:
        """GET /fapi/v1/accountConfig."""
        return {
            "feeTier": 0,
            "canTrade": account.permissions.futures,
            "canDeposit": True,
            "canWithdraw": account.permissions.withdrawals,
            "dualSidePosition": False,
            "updateTime": 0,
            "multiAssetsMargin": False,
            "tradeGroupId": -1,
        }

    def balances(self, account: DemoAccount, now_ms: float) -> list[dict]:
        """GET /fapi/v2/balance and /fapi/v3/balance."""
        with self._lock:
            state = self.state_for(account, now_ms)
            totals = self._totals(state, now_ms)
            alias = f"Sg{account.uid % 10000:04d}uX"
            return [
                {
                    "accountAlias": alias,
                    "asset": row["asset"],
                    "balance": row["walletBalance"],
                    "crossWalletBalance": row["crossWalletBalance"],
                    "crossUnPnl": row["crossUnPnl"],
                    "availableBalance": row["availableBalance"],
                    "maxWithdrawAmount": row["maxWithdrawAmount"],
                    "marginAvailable": True,
                    "updateTime": row["updateTime"],
                }
                for row in self._asset_rows(state, totals, int(now_ms))
            ]

    def position_risk(
        self, account: DemoAccount, symbol: str | None, now_ms: float, version: int
    ) -> list[dict]:
        """GET /fapi/v2/positionRisk (every symbol) and /fapi/v3/positionRisk (held or ordered only)."""
        if symbol:
            get_symbol(symbol)
        with self._lock:
            state = self.state_for(account, now_ms)
            totals = self._totals(state, now_ms)
            rows = []
            for name, figures in totals["figures"].items():
                if symbol and name != symbol:
                    continue
                position = state.positions[name]
                if version == 3 and not (position.amount or state.open_orders(name)):
                    continue
                liquidation = ZERO
                if position.amount:
                    cushion = totals["margin_balance"] - totals["maint"]
                    liquidation = max(ZERO, figures["mark"] - cushion / position.amount)
                row = {
                    "symbol": name,
                    "positionSide": "BOTH",
                    "positionAmt": _fixed(position.amount, SYMBOLS[name].quantity_precision),
                    "entryPrice": _money(position.entry_price),
                    "breakEvenPrice": _money(position.entry_price),
                    "markPrice": _money(figures["mark"] or self.mark(name, now_ms)),
                    "unRealizedProfit": _money(figures["unrealized"]),
                    "liquidationPrice": _money(liquidation),
                    "isolatedMargin": "0.00000000",
                    "notional": _money(figures["notional"]),
                    "marginAsset": "USDT",
                    "isolatedWallet": "0",
                    "initialMargin": _money(figures["initial"] + figures["open_order_initial"]),
                    "maintMargin": _money(figures["maint"]),
                    "positionInitialMargin": _money(figures["initial"]),
                    "openOrderInitialMargin": _money(figures["open_order_initial"]),
                    "adl": 0,
                    "bidNotional": _money(figures["bid"]),
                    "askNotional": _money(figures["ask"]),
                    "updateTime": position.update_time,
                }
                if version == 2:
                    for key in (
                        "marginAsset",
                        "initialMargin",
                        "maintMargin",
                        "positionInitialMargin",
                        "openOrderInitialMargin",
                        "adl",
                        "bidNotional",
                        "askNotional",
                    ):
                        del row[key]
                    row.update(
                        {
                            "leverage": str(state.leverage[name]),
                            "maxNotionalValue": _max_notional_for(state.leverage[name]),
                            "marginType": "cross",
                            "isAutoAddMargin": "false",
                        }
                    )
                rows.append(row)
            return rows
