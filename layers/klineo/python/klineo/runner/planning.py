"""The order a signal asks for: from a position to the signal's target, rounded to the symbol's rules.

Shared by the live runner (``klineo.runner.execution``) and the backtest (``klineo.services.backtest``),
so both size and round an order the same way. Pure: no AWS, no Binance call, and light to import
(the backtest routes load it without the runner's order machinery).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from klineo.binance.filters import SymbolRules
from klineo.errors import KlineoError
from klineo.strategies import Signal

__all__ = ["OrderPlan", "plan_order"]


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
    minimum quantity or order value. A flip whose new side cannot be sized (below the minimum)
    still closes the position the signal left: the reduce-only close alone (target 0).
    """
    if signal is Signal.HOLD:
        return OrderPlan(target=position)
    if signal is Signal.FLAT:
        target = Decimal(0)
    else:
        side = "BUY" if signal is Signal.LONG else "SELL"
        try:
            unit, _ = rules.prepare_order(side, "MARKET", size, None, reference_price)
        except KlineoError:
            if position == 0 or (position > 0) == (signal is Signal.LONG):
                raise
            return plan_order(Signal.FLAT, Decimal(0), position, rules, reference_price)
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
