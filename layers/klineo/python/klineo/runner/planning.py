"""The order a signal asks for: from a position to the signal's target, rounded to the symbol's rules.

Shared by the live runner (``klineo.runner.execution``) and the backtest (``klineo.services.backtest``),
so both size and round an order the same way. Pure: no AWS, no Binance call, and light to import
(the backtest routes load it without the runner's order machinery).

``order_legs`` (the live runner only) turns a plan into the orders Binance gets, by the account's
position mode. One-way: the plan's one order (positionSide BOTH, reduceOnly when it only reduces).
Hedge (Binance keeps a LONG and a SHORT position per symbol): every order names the side it moves,
LONG for a long position and SHORT for a short one, and never carries reduceOnly (Binance refuses it
there; SELL LONG and BUY SHORT are the closes). Opening, growing, reducing or closing one side is one
order; a flip is two: the old side's close (the order a flat signal would send), then the new side's
entry. One order BUY 2 in hedge mode would open a long beside the short instead of flipping it.

``sizing_refusal`` is the one rule of a sizing no entry can ever pass whatever the price: a ``size``
outside the symbol's MARKET lot (rounded down to its step: below the minimum quantity, or above the
maximum), a ``quote_size_usdt`` below its minimum order value where MARKET orders must meet it (the
quantity is quote / price rounded down, so its value never reaches the quote). A ``size`` below the
minimum order value, a quote size outside the lot, or a margin that does not fit depend on the price,
and are not refused: they may pass at another price. POST/PATCH /strategies, resuming, the backtest
and the runner (a strategy stored before the rule) all refuse with it.

``require_market_orders`` is the other: a symbol whose exchangeInfo ``orderTypes`` lack MARKET
(``SymbolRules.takes``) can never take an order planned here, every one of which is a MARKET order.
POST /strategies, resuming and the backtest refuse it, naming ``symbol``; the runner pauses a strategy
whose symbol stopped taking them on the first turn that plans an order (``NO_MARKET_ORDERS``), or whose
MARKET order Binance refuses for its type once the symbol's rules read again confirm it
(``klineo.runner.candles.type_refusal``: the container's cached rules may still list MARKET).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from klineo.binance.filters import SymbolRules
from klineo.errors import InvalidField, KlineoError
from klineo.strategies import Signal
from klineo.validation import plain_text

__all__ = [
    "NO_MARKET_ORDERS",
    "UNTRADABLE_SIZE",
    "OrderLeg",
    "OrderPlan",
    "is_flip",
    "no_market_orders",
    "order_legs",
    "plan_order",
    "position_side_of",
    "require_market_orders",
    "require_tradable_sizing",
    "sizing_refusal",
]

# The pause reason of a strategy stored with such a sizing (before the routes refused it): the runner
# pauses it on its first entry from flat (``klineo.runner.execution``).
UNTRADABLE_SIZE = "untradable_size"
# The pause reason of a strategy whose symbol stopped taking MARKET orders (``klineo.runner.execution``).
NO_MARKET_ORDERS = "no_market_orders"
# Why a symbol that takes no MARKET orders is refused a strategy (``require_market_orders``).
_STRATEGY_SENDS = "the only orders a strategy sends"


def sizing_refusal(
    rules: SymbolRules, size: Decimal | None, quote_size_usdt: Decimal | None,
) -> InvalidField | None:
    """The 422 naming ``size`` or ``quote_size_usdt`` when no entry of that sizing can ever pass the
    symbol's rules, whatever the price (the module doc); None when it can trade."""
    symbol = rules.symbol
    _, min_qty, max_qty = rules.lot_for(market_order=True)
    if size is not None:
        rounded = rules.round_quantity(size, market_order=True)
        if rounded <= 0 or rounded < min_qty:
            return InvalidField("size", f"size is below {symbol}'s minimum quantity {plain_text(min_qty)}")
        if max_qty > 0 and rounded > max_qty:
            return InvalidField("size", f"size is above {symbol}'s maximum quantity {plain_text(max_qty)}")
    if quote_size_usdt is not None and rules.apply_min_to_market and quote_size_usdt < rules.min_notional:
        return InvalidField("quote_size_usdt", f"quote_size_usdt is below {symbol}'s minimum order value "
                                               f"{plain_text(rules.min_notional)} {rules.quote_asset}")
    return None


def require_tradable_sizing(
    rules: SymbolRules, size: Decimal | None, quote_size_usdt: Decimal | None,
) -> None:
    """Raise ``sizing_refusal``'s 422 when the sizing can never trade on the symbol."""
    refusal = sizing_refusal(rules, size, quote_size_usdt)
    if refusal is not None:
        raise refusal


def no_market_orders(symbol: str, why: str = _STRATEGY_SENDS) -> str:
    """What a refusal of a symbol that takes no MARKET orders says, with ``why`` they are the ones needed."""
    return f"{symbol} takes no MARKET orders, {why}"


def require_market_orders(rules: SymbolRules, why: str = _STRATEGY_SENDS) -> None:
    """Raise the 422 naming ``symbol`` when the symbol takes no MARKET orders (exchangeInfo's ``orderTypes``),
    saying ``why`` they are the ones needed."""
    if not rules.takes("MARKET"):
        raise InvalidField("symbol", no_market_orders(rules.symbol, why))


@dataclass(frozen=True)
class OrderPlan:
    """Target position and, when it differs from the current one, the order that reaches it."""

    target: Decimal
    side: str | None = None
    quantity: Decimal | None = None
    reduce_only: bool = False


def plan_order(
    signal: Signal, size: Decimal, position: Decimal, rules: SymbolRules, reference_price: Decimal,
) -> OrderPlan:
    """The target for ``signal`` and the MARKET order from ``position`` to it, rounded to the symbol's rules.

    Raises KlineoError(INVALID_REQUEST) when the size or the difference is below the symbol's
    minimum quantity or order value. A flip the symbol's rules refuse still closes the position the
    signal left: the reduce-only close alone (target 0). That is a flip whose new side cannot be sized
    (below the minimum), or whose one order, the old side and the new together, is above a market
    order's maximum quantity (a long of 70 where a market order may carry 120): the new side is then an
    entry from flat on the next candle that still asks for it.
    """
    if signal is Signal.HOLD:
        return OrderPlan(target=position)
    try:
        return _plan_to_target(signal, size, position, rules, reference_price)
    except KlineoError:
        if signal is Signal.FLAT or position == 0 or (position > 0) == (signal is Signal.LONG):
            raise
        return _plan_to_target(Signal.FLAT, Decimal(0), position, rules, reference_price)


def _plan_to_target(
    signal: Signal, size: Decimal, position: Decimal, rules: SymbolRules, reference_price: Decimal,
) -> OrderPlan:
    """``plan_order`` for a LONG, SHORT or FLAT signal, without its fallback for a refused flip."""
    if signal is Signal.FLAT:
        target = Decimal(0)
    else:
        side = "BUY" if signal is Signal.LONG else "SELL"
        unit, _ = rules.prepare_order(side, "MARKET", size, None, reference_price)
        target = unit if signal is Signal.LONG else -unit
    delta = target - position
    if delta == 0:
        return OrderPlan(target=target)
    side = "BUY" if delta > 0 else "SELL"
    if position == 0:  # from flat the order IS the target, already rounded and checked just above
        return OrderPlan(target=target, side=side, quantity=abs(target))
    reduce_only = position != 0 and (delta > 0) != (position > 0) and abs(delta) <= abs(position)
    quantity, _ = rules.prepare_order(
        side, "MARKET", abs(delta), None, reference_price, reduce_only=reduce_only,
    )
    return OrderPlan(target=target, side=side, quantity=quantity, reduce_only=reduce_only)


@dataclass(frozen=True)
class OrderLeg:
    """One MARKET order of a plan as Binance gets it (``order_legs``)."""

    side: str
    quantity: Decimal
    position_side: str = "BOTH"
    reduce_only: bool = False


def is_flip(position: Decimal, target: Decimal) -> bool:
    """True when going from ``position`` to ``target`` turns a long into a short or back."""
    return position != 0 and target != 0 and (position > 0) != (target > 0)


def position_side_of(amount: Decimal) -> str:
    """The hedge-mode positionSide of a (non-zero) signed position: LONG above 0, SHORT below."""
    return "LONG" if amount > 0 else "SHORT"


def order_legs(
    plan: OrderPlan, position: Decimal, hedge: bool, rules: SymbolRules, reference_price: Decimal,
) -> tuple[OrderLeg, ...]:
    """The orders that carry ``plan`` out from ``position`` (the module docstring); () for none.

    Hedge mode: the side of the position the order moves (the held one, or the target's from flat);
    a flip's first leg closes the old side exactly as a flat signal would (``plan_order``'s rounding),
    its second opens the target (its size already rounded by ``plan_order``).
    """
    if plan.side is None or plan.quantity is None:
        return ()
    if not hedge:
        return (OrderLeg(plan.side, plan.quantity, "BOTH", plan.reduce_only),)
    if not is_flip(position, plan.target):
        return (OrderLeg(plan.side, plan.quantity, position_side_of(position or plan.target)),)
    close = plan_order(Signal.FLAT, Decimal(0), position, rules, reference_price)
    assert close.side is not None and close.quantity is not None
    return (OrderLeg(close.side, close.quantity, position_side_of(position)),
            OrderLeg(plan.side, abs(plan.target), position_side_of(plan.target)))
