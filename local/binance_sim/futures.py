"""USDT-M futures accounts: wallet, positions, settings and orders, with Binance's order rules.

Position mode per account (one-way: positionSide BOTH; hedge: LONG and SHORT positions side by
side), margin type and leverage per symbol (margin is computed the same way for both margin
types: the simulator does not model isolated wallets). MARKET orders fill at the mark price;
a LIMIT BUY at or above the mark (SELL at or below) fills at the mark at once, otherwise it rests
as NEW and fills when the mark later crosses its price (checked lazily whenever the account is
read or traded). Filter checks and error codes follow facts §4 and §6 (shared spec) and
docs/binance-facts.md (position mode, margin type, leverage, hedge-mode order rules).
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from collections.abc import Callable
from decimal import ROUND_DOWN, ROUND_UP, Decimal, InvalidOperation
from typing import Any

from klineo.validation import CLIENT_ORDER_ID_RE

from . import errors
from .accounts import DemoAccount
from .brackets import max_notional
from .errors import ApiError
from .market import FUTURES_MULTIPLIER_DOWN, FUTURES_MULTIPLIER_UP, SYMBOLS, SymbolSpec, get_symbol

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
ONE_WAY_SIDES = ("BOTH",)
HEDGE_SIDES = ("LONG", "SHORT")
HEDGE_CLOSES = frozenset({("SELL", "LONG"), ("BUY", "SHORT")})  # (side, positionSide) closing that side
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


def plain(value: Decimal) -> str:
    """A decimal as Binance echoes order numbers: no exponent, no needless trailing zeros."""
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _fixed(value: Decimal, places: int) -> str:
    return f"{value:.{places}f}"


def decimal_param(params: dict, name: str) -> Decimal:
    """A required finite decimal parameter (-1102 when missing or malformed)."""
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


def position_side_for(state: FuturesAccount, params: dict) -> str:
    """The order's positionSide, checked against the account's position mode.

    One-way: absent or BOTH. Hedge: LONG or SHORT, and `reduceOnly` may not be sent at all.
    """
    position_side = params.get("positionSide") or "BOTH"
    allowed = state.sides
    if position_side not in allowed:
        raise ApiError(400, -4061, "Order's position side does not match user's setting.")
    if state.dual_side and params.get("reduceOnly") is not None:
        raise ApiError(400, -1106, "Parameter 'reduceonly' sent when not required.")
    return position_side


def check_price_filter(spec: SymbolSpec, price: Decimal) -> None:
    """PRICE_FILTER: minPrice -4013, maxPrice -4002, tick -4014."""
    min_price, max_price, tick = (spec.futures_decimal(n) for n in ("min_price", "max_price", "tick"))
    if min_price and price < min_price:
        raise ApiError(400, -4013, "Price less than min price.")
    if max_price and price > max_price:
        raise ApiError(400, -4002, "Price greater than max price.")
    if tick and (price - min_price) % tick != 0:
        raise ApiError(400, -4014, "Price not increased by tick size.")


def check_lot_size(spec: SymbolSpec, quantity: Decimal, order_type: str) -> None:
    """LOT_SIZE / MARKET_LOT_SIZE: below min -4004, above max -4005, step -4023."""
    market = order_type == "MARKET"
    min_qty = spec.futures_decimal("market_min_qty" if market and spec.futures_market_min_qty else "min_qty")
    step = spec.futures_decimal("market_step" if market and spec.futures_market_step else "step")
    max_qty = spec.futures_decimal("market_max_qty" if market else "max_qty")
    if quantity < min_qty:
        raise ApiError(400, -4004, "Quantity less than min quantity.")
    if quantity > max_qty:
        raise ApiError(400, -4005, "Quantity greater than max quantity.")
    if step and (quantity - min_qty) % step != 0:
        raise ApiError(400, -4023, "Qty not increased by step size.")


def _limit_terms(spec: SymbolSpec, params: dict, order_type: str) -> tuple[str, Decimal]:
    """(timeInForce, price) of a LIMIT order, checked; ("GTC", 0) for MARKET, which may not send a price."""
    if order_type != "LIMIT":
        if params.get("price") not in (None, ""):
            raise ApiError(400, -1106, "Parameter 'price' sent when not required.")
        return "GTC", ZERO
    time_in_force = params.get("timeInForce") or ""
    if not time_in_force:
        raise errors.mandatory("timeInForce")
    if time_in_force not in TIME_IN_FORCE:
        raise ApiError(400, -1115, "Invalid timeInForce.")
    price = decimal_param(params, "price")
    if price <= 0:
        raise ApiError(400, -4001, "Price less than 0.")
    if _places(price) > spec.price_precision:
        raise ApiError(400, -1111, "Precision is over the maximum defined for this asset.")
    check_price_filter(spec, price)
    return time_in_force, price


def check_price_band(spec: SymbolSpec, side: str | None, price: Decimal, reference: Decimal,
                     codes: tuple[int, int] = (-4016, -4024)) -> None:
    """PERCENT_PRICE (facts §6): a LIMIT's price against the mark, a BUY above mark x multiplierUp is
    -4016 and a SELL below mark x multiplierDown -4024; ``side`` None (a stop-limit's price against its
    trigger) holds either side to both bounds, with ``codes`` -4183 / -4184."""
    up, down = Decimal(FUTURES_MULTIPLIER_UP), Decimal(FUTURES_MULTIPLIER_DOWN)
    if side in ("BUY", None) and price > reference * up:
        limit = _on_tick(reference * up, spec.futures_decimal("tick"), ROUND_DOWN)
        raise ApiError(400, codes[0], f"Limit price can't be higher than {limit}")
    if side in ("SELL", None) and price < reference * down:
        limit = _on_tick(reference * down, spec.futures_decimal("tick"), ROUND_UP)
        raise ApiError(400, codes[1], f"Limit price can't be lower than {limit}")


def _exposure_increase(state: FuturesAccount, checked: dict) -> Decimal:
    """How much the order would add to its position; -2022 for a reduce that cannot reduce.

    One-way: a reduceOnly order must shrink an open position, never past zero (larger than the
    position is -2022, facts E). Hedge: an order closing LONG
    (SELL) or SHORT (BUY) may not exceed the position on that side.
    """
    position = state.positions[(checked["spec"].symbol, checked["position_side"])]
    delta = checked["quantity"] if checked["side"] == "BUY" else -checked["quantity"]
    increase = max(ZERO, abs(position.amount + delta) - abs(position.amount))
    crosses = (position.amount + delta) * position.amount < 0  # it would flip the position
    if checked["reduce_only"] and (increase > 0 or position.amount == 0 or crosses):
        raise ApiError(400, -2022, "ReduceOnly Order is rejected.")
    direction = {"LONG": 1, "SHORT": -1}.get(checked["position_side"])
    if direction is not None and (position.amount + delta) * direction < 0:
        raise ApiError(400, -2022, "ReduceOnly Order is rejected.")
    return increase


def _isolated_figures(state: FuturesAccount, symbol: str, figures: dict) -> tuple[Decimal, Decimal]:
    """(isolatedWallet, isolatedMargin) of a position: zero under cross margin.

    Isolated: the wallet is the position's initial margin, the margin adds its unrealized PnL.
    """
    if state.margin_type[symbol] != "ISOLATED" or not figures["initial"]:
        return ZERO, ZERO
    return figures["initial"], figures["initial"] + figures["unrealized"]


def _on_tick(value: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return (value / tick).to_integral_value(rounding=rounding) * tick


def _places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent)


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
            "price": plain(self.price),
            "avgPrice": _fixed(average, 5) if not average else _fixed(average, spec.price_precision + 3),
            "origQty": plain(self.orig_qty),
            "executedQty": plain(self.executed_qty),
            "cumQty": plain(self.executed_qty),
            "cumQuote": plain(self.cum_quote),
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
class Trade:
    """One fill, as GET /fapi/v1/userTrades lists it."""

    trade_id: int
    order: FuturesOrder
    quantity: Decimal
    price: Decimal
    realized_pnl: Decimal
    commission: Decimal
    maker: bool
    time: int

    def as_dict(self) -> dict:
        """Binance's userTrades row."""
        return {
            "buyer": self.order.side == "BUY",
            "commission": _money(self.commission),
            "commissionAsset": "USDT",
            "id": self.trade_id,
            "maker": self.maker,
            "orderId": self.order.order_id,
            "price": plain(self.price),
            "qty": plain(self.quantity),
            "quoteQty": plain(self.quantity * self.price),
            "realizedPnl": _money(self.realized_pnl),
            "side": self.order.side,
            "positionSide": self.order.position_side,
            "symbol": self.order.symbol,
            "time": self.time,
        }


@dataclasses.dataclass
class Position:
    """One position of a symbol: BOTH in one-way mode, LONG (amount ≥ 0) or SHORT (≤ 0) in hedge mode."""

    amount: Decimal = ZERO
    entry_price: Decimal = ZERO
    update_time: int = 0


class FuturesAccount:
    """The futures state of one demo account."""

    def __init__(self, account: DemoAccount, default_leverage: int):
        self.account = account
        self.assets = {asset: Decimal(amount) for asset, amount in account.futures_balances.items()}
        self.assets.setdefault("USDT", ZERO)
        self.dual_side = account.dual_side_position
        self.positions = self._flat_positions()
        self.leverage = {symbol: default_leverage for symbol in SYMBOLS}
        self.margin_type = {symbol: "CROSSED" for symbol in SYMBOLS}
        self.orders: dict[int, FuturesOrder] = {}
        self.open_by_id: dict[int, FuturesOrder] = {}
        self.orders_by_client_id: dict[tuple[str, str], int] = {}
        self.algo_orders: dict[int, Any] = {}  # algoId -> algo.AlgoOrder
        self.trades: list[Trade] = []
        self.update_time = 0

    @property
    def sides(self) -> tuple[str, ...]:
        """The position sides of the account's position mode."""
        return HEDGE_SIDES if self.dual_side else ONE_WAY_SIDES

    def _flat_positions(self) -> dict[tuple[str, str], Position]:
        return {(symbol, side): Position() for symbol in SYMBOLS for side in self.sides}

    def set_dual_side(self, dual_side: bool) -> None:
        """Switch position mode (callers check first that nothing is open)."""
        self.dual_side = dual_side
        self.positions = self._flat_positions()

    def holds(self, symbol: str | None = None) -> bool:
        """True when a position is open (in `symbol`, or in any symbol)."""
        return any(p.amount for (name, _), p in self.positions.items() if symbol in (None, name))

    @property
    def wallet(self) -> Decimal:
        """USDT wallet balance."""
        return self.assets["USDT"]

    def open_orders(self, symbol: str | None = None, side: str | None = None) -> list[FuturesOrder]:
        """Open orders, optionally for one symbol (and position side), oldest first."""
        return [
            o
            for o in self.open_by_id.values()
            if symbol in (None, o.symbol) and side in (None, o.position_side)
        ]

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
        self._next_trade_id = 690_000_000
        # Called as hook(state, now_ms) under the lock each time an account is settled (algo triggers).
        self.settle_hooks: list[Callable[[FuturesAccount, float], None]] = []
        # Thin liquidity (``set_market_depth``): symbol -> the most one MARKET order fills; the rest expires.
        self.market_depth: dict[str, Decimal] = {}
        # Many small fills (``set_trade_size``): symbol -> the most one trade fills; an order's fill is made
        # as that many trades as it takes, each its own userTrades row.
        self.trade_size: dict[str, Decimal] = {}

    @property
    def lock(self) -> threading.Lock:
        """The lock every account change happens under (shared with the algo service)."""
        return self._lock

    def share_state(self, key: DemoAccount, account: DemoAccount) -> None:
        """Make ``key`` (another API key of ``account``) see and change the account's own futures state."""
        with self._lock:
            self._accounts[key.api_key] = self._accounts[account.api_key]

    def settings(self, account: DemoAccount, symbol: str) -> dict:
        """The account's position mode and the symbol's margin type and leverage (for test assertions)."""
        with self._lock:
            state = self._accounts[account.api_key]
            return {
                "dual_side_position": state.dual_side,
                "margin_type": state.margin_type[symbol],
                "leverage": state.leverage[symbol],
            }

    def set_market_depth(self, symbol: str, quantity: Decimal | None) -> None:
        """Thin liquidity on ``symbol``: each later MARKET order fills at most ``quantity`` and the rest
        expires (status EXPIRED, executedQty < origQty, as Binance's MARKET order that only partly fills; 0:
        nothing executed); None: full fills again. ``reset`` clears it."""
        with self._lock:
            if quantity is None:
                self.market_depth.pop(get_symbol(symbol).symbol, None)
            else:
                self.market_depth[get_symbol(symbol).symbol] = Decimal(quantity)

    def set_trade_size(self, symbol: str, quantity: Decimal | None) -> None:
        """Fills on ``symbol`` made as trades of at most ``quantity`` each (an order matched against many
        resting orders: one userTrades row per trade); None: one trade per fill again."""
        with self._lock:
            if quantity is None:
                self.trade_size.pop(get_symbol(symbol).symbol, None)
            else:
                self.trade_size[get_symbol(symbol).symbol] = Decimal(quantity)

    def accounts(self) -> list[FuturesAccount]:
        """Every account's futures state (call under the lock)."""
        return list(self._accounts.values())

    def next_order_id(self) -> int:
        """A fresh orderId (call under the lock)."""
        self._next_order_id += 1
        return self._next_order_id

    def place_internal(self, state: FuturesAccount, params: dict, now_ms: float) -> FuturesOrder:
        """Place an order for the exchange itself (a triggered algo order); caller holds the lock."""
        return self._place(state, params, now_ms)[0]

    def record_filled(self, state: FuturesAccount, order: FuturesOrder, price: Decimal, now_ms: int) -> None:
        """Record an order the exchange itself executed (liquidation, ADL) and fill it whole at `price`."""
        state.orders[order.order_id] = order
        state.orders_by_client_id[(order.symbol, order.client_order_id)] = order.order_id
        self._apply_fill(state, order, order.orig_qty, price, TAKER_FEE, now_ms)

    # ----- prices and margin -------------------------------------------------------------------
    def mark(self, symbol: str, now_ms: float) -> Decimal:
        """The mark price as a Decimal."""
        return Decimal(repr(self._mark_price(symbol, now_ms)))

    def _position_figures(self, state: FuturesAccount, key: tuple[str, str], now_ms: float) -> dict:
        """Margin figures of one (symbol, side); `mark` is None when there is neither position nor order."""
        symbol, side = key
        position = state.positions[key]
        orders = state.open_orders(symbol, side)
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
        figures = {key: self._position_figures(state, key, now_ms) for key in state.positions}
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
        """Fill ``quantity`` of ``order`` as one trade, or as trades of at most ``set_trade_size``'s."""
        size = self.trade_size.get(order.symbol)
        while size is not None and quantity > size:
            self._trade(state, order, size, price, fee_rate, now_ms)
            quantity -= size
        self._trade(state, order, quantity, price, fee_rate, now_ms)

    def _trade(
        self, state: FuturesAccount, order: FuturesOrder, quantity: Decimal, price: Decimal,
        fee_rate: Decimal, now_ms: int,
    ) -> None:
        position = state.positions[(order.symbol, order.position_side)]
        delta = quantity if order.side == "BUY" else -quantity
        current = position.amount
        realized = ZERO
        if current == 0 or (current > 0) == (delta > 0):
            total = abs(current) + quantity
            position.entry_price = (abs(current) * position.entry_price + quantity * price) / total
            position.amount = current + delta
        else:
            closing = min(abs(current), quantity)
            direction = 1 if current > 0 else -1
            realized = closing * (price - position.entry_price) * direction
            state.assets["USDT"] += realized
            position.amount = current + delta
            if position.amount == 0:
                position.entry_price = ZERO
            elif quantity > closing:
                position.entry_price = price
        fee = quantity * price * fee_rate
        state.assets["USDT"] -= fee
        self._next_trade_id += 1
        state.trades.append(
            Trade(self._next_trade_id, order, quantity, price, realized, fee, fee_rate == MAKER_FEE, now_ms)
        )
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

    def sweep(self, now_ms: float) -> None:
        """Match resting orders and fire algo triggers on every account (after a mark move)."""
        with self._lock:
            for state in self._accounts.values():
                self._settle(state, now_ms)

    def _settle(self, state: FuturesAccount, now_ms: float) -> None:
        self._match_resting(state, now_ms)
        for hook in self.settle_hooks:
            hook(state, now_ms)

    def state_for(self, account: DemoAccount, now_ms: float) -> FuturesAccount:
        """The account's futures state with resting orders matched up to now (call under lock)."""
        state = self._accounts[account.api_key]
        self._settle(state, now_ms)
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
        position_side = position_side_for(state, params)
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
        quantity = decimal_param(params, "quantity")
        if quantity <= 0:
            raise ApiError(400, -4003, "Quantity less than zero.")
        if _places(quantity) > spec.quantity_precision:
            raise ApiError(400, -1111, "Precision is over the maximum defined for this asset.")
        mark = self.mark(spec.symbol, now_ms)
        time_in_force, price = _limit_terms(spec, params, order_type)
        check_lot_size(spec, quantity, order_type)
        if order_type == "LIMIT":
            check_price_band(spec, side, price, mark)
        reference = price if order_type == "LIMIT" else mark
        # -4164 exempts reduce-only orders; a hedge-mode close (SELL LONG, BUY SHORT) is one in Binance's
        # books (its answers say reduceOnly true), though reduceOnly may not be sent (facts §4).
        closing = reduce_only or (side, position_side) in HEDGE_CLOSES
        if not closing and quantity * reference < spec.futures_decimal("min_notional"):
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

    def place_order(self, account: DemoAccount, params: dict, now_ms: float) -> dict:
        """POST /fapi/v1/order: validate, margin-check, fill or rest; returns the response body."""
        with self._lock:
            state = self.state_for(account, now_ms)
            order, acknowledgement = self._place(state, params, now_ms)
            if params.get("newOrderRespType", "ACK") == "RESULT":
                return order.as_dict(with_time=False)
            return acknowledgement

    def _place(self, state: FuturesAccount, params: dict, now_ms: float) -> tuple[FuturesOrder, dict]:
        """Validate, admit, record, then fill or rest one order (caller holds the lock).

        Returns the order and its acknowledgement (the order as it was before any fill).
        """
        checked = self._validate_order(state, params, now_ms)
        client_order_id = self._client_order_id(state, checked)
        marketable = self._admit(state, checked, now_ms)
        now = int(now_ms)
        order = FuturesOrder(
            order_id=self.next_order_id(),
            client_order_id=client_order_id,
            symbol=checked["spec"].symbol,
            side=checked["side"],
            type=checked["type"],
            time_in_force=checked["time_in_force"],
            orig_qty=checked["quantity"],
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
        state.orders_by_client_id[(order.symbol, client_order_id)] = order.order_id
        if marketable:
            fills = order.orig_qty
            if order.type == "MARKET":
                fills = min(fills, self.market_depth.get(order.symbol, fills))
            if fills > 0:
                self._apply_fill(state, order, fills, checked["mark"], TAKER_FEE, now)
            if fills < order.orig_qty:  # thin liquidity: the rest of a MARKET order expires
                order.status = "EXPIRED"
        elif checked["time_in_force"] == "IOC":
            order.status = "EXPIRED"
        state.track(order)
        return order, acknowledgement

    @staticmethod
    def _client_order_id(state: FuturesAccount, checked: dict) -> str:
        """The sent newClientOrderId (-4116 while an open order has it) or a generated one."""
        client_order_id = checked["client_order_id"]
        if client_order_id is None:
            return secrets.token_urlsafe(16).replace("-", "x").replace("_", "y")[:22]
        existing = state.orders_by_client_id.get((checked["spec"].symbol, client_order_id))
        if existing is not None and state.orders[existing].is_open:
            raise ApiError(400, -4116, "ClientOrderId is duplicated.")
        return client_order_id

    def _admit(self, state: FuturesAccount, checked: dict, now_ms: float) -> bool:
        """Time-in-force, reduce-only and margin checks; True when the order fills at once."""
        mark, side, quantity = checked["mark"], checked["side"], checked["quantity"]
        marketable = checked["type"] == "MARKET" or (
            checked["price"] >= mark if side == "BUY" else checked["price"] <= mark
        )
        if checked["time_in_force"] == "FOK" and not marketable:
            raise ApiError(
                400,
                -5021,
                "Due to the order could not be filled immediately, the FOK order has been rejected.",
            )
        if checked["time_in_force"] == "GTX" and marketable:
            raise ApiError(
                400,
                -5022,
                "Due to the order could not be executed as maker, the Post Only "
                "order will be rejected. The order will not be recorded in the "
                "order history",
            )
        increase = _exposure_increase(state, checked)
        reference = mark if marketable else checked["price"]
        required = increase * reference / Decimal(state.leverage[checked["spec"].symbol])
        if marketable:
            required += quantity * mark * TAKER_FEE
        if increase > 0 and required > self._totals(state, now_ms)["available"]:
            raise ApiError(400, -2019, "Margin is insufficient.")
        return marketable

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

    def with_state(self, account: DemoAccount, now_ms: float, action: Callable, *args) -> object:
        """Run `action(state, *args)` on the account's futures state under the lock (settings calls)."""
        with self._lock:
            return action(self.state_for(account, now_ms), *args)

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

    def _position_row(self, state: FuturesAccount, key: tuple[str, str], figures: dict, version: int) -> dict:
        symbol, side = key
        position = state.positions[key]
        isolated_wallet, isolated_margin = _isolated_figures(state, symbol, figures)
        row = {
            "symbol": symbol,
            "initialMargin": _money(figures["initial"] + figures["open_order_initial"]),
            "maintMargin": _money(figures["maint"]),
            "unrealizedProfit": _money(figures["unrealized"]),
            "positionInitialMargin": _money(figures["initial"]),
            "openOrderInitialMargin": _money(figures["open_order_initial"]),
            "positionSide": side,
            "positionAmt": _fixed(position.amount, SYMBOLS[symbol].quantity_precision),
            "notional": _money(figures["notional"]),
            "isolatedWallet": plain(isolated_wallet),
            "isolatedMargin": plain(isolated_margin),
            "updateTime": position.update_time,
            "bidNotional": _money(figures["bid"]),
            "askNotional": _money(figures["ask"]),
        }
        if version == 2:
            row.update(
                {
                    "leverage": str(state.leverage[symbol]),
                    "isolated": state.margin_type[symbol] == "ISOLATED",
                    "entryPrice": _money(position.entry_price),
                    "breakEvenPrice": _money(position.entry_price),
                    "maxNotional": max_notional(SYMBOLS[symbol], state.leverage[symbol]),
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
            for key, figures in totals["figures"].items():
                if version == 3 and figures["mark"] is None:
                    continue
                positions.append(self._position_row(state, key, figures, version))
            body["positions"] = positions
            return body

    def account_config(self, account: DemoAccount, now_ms: float) -> dict:
        """GET /fapi/v1/accountConfig."""
        with self._lock:
            dual_side = self.state_for(account, now_ms).dual_side
        return {
            "feeTier": 0,
            "canTrade": account.permissions.futures,
            "canDeposit": True,
            "canWithdraw": account.permissions.withdrawals,
            "dualSidePosition": dual_side,
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
        """GET /fapi/v2/positionRisk (every symbol and side), /fapi/v3/positionRisk (held or ordered only)."""
        if symbol:
            get_symbol(symbol)
        with self._lock:
            state = self.state_for(account, now_ms)
            totals = self._totals(state, now_ms)
            return [
                self._risk_row(state, key, figures, totals, now_ms, version)
                for key, figures in totals["figures"].items()
                if symbol in (None, key[0]) and not (version == 3 and figures["mark"] is None)
            ]

    def _risk_row(
        self,
        state: FuturesAccount,
        key: tuple[str, str],
        figures: dict,
        totals: dict,
        now_ms: float,
        version: int,
    ) -> dict:
        name, side = key
        position = state.positions[key]
        liquidation = ZERO
        if position.amount:
            cushion = totals["margin_balance"] - totals["maint"]
            liquidation = max(ZERO, figures["mark"] - cushion / position.amount)
        isolated_wallet, isolated_margin = _isolated_figures(state, name, figures)
        row = {
            "symbol": name,
            "positionSide": side,
            "positionAmt": _fixed(position.amount, SYMBOLS[name].quantity_precision),
            "entryPrice": _money(position.entry_price),
            "breakEvenPrice": _money(position.entry_price),
            "markPrice": _money(figures["mark"] or self.mark(name, now_ms)),
            "unRealizedProfit": _money(figures["unrealized"]),
            "liquidationPrice": _money(liquidation),
            "isolatedMargin": _money(isolated_margin),
            "notional": _money(figures["notional"]),
            "isolatedWallet": plain(isolated_wallet),
            "updateTime": position.update_time,
        }
        if version == 2:
            isolated = state.margin_type[name] == "ISOLATED"
            row.update(
                {
                    "leverage": str(state.leverage[name]),
                    "maxNotionalValue": max_notional(SYMBOLS[name], state.leverage[name]),
                    "marginType": "isolated" if isolated else "cross",
                    "isAutoAddMargin": "false",
                }
            )
            return row
        row.update(
            {
                "marginAsset": "USDT",
                "initialMargin": _money(figures["initial"] + figures["open_order_initial"]),
                "maintMargin": _money(figures["maint"]),
                "positionInitialMargin": _money(figures["initial"]),
                "openOrderInitialMargin": _money(figures["open_order_initial"]),
                "adl": 0,
                "bidNotional": _money(figures["bid"]),
                "askNotional": _money(figures["ask"]),
            }
        )
        return row
