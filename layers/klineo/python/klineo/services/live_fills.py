"""Binance's fills booked into a live strategy's PnL in place of the estimate its settle counted.

A live order settles in the runner's turn. Its fills (userTrades, weight 5) are read there only while the
minute's request weight leaves room for the orders themselves; otherwise its fill is counted in the
strategy's live book by estimate (the taker fee, the PnL from the strategy's own entry price), and what was
counted is kept on the order's record (``booked_estimate``, ``klineo.runner.pnl``), which is left unsettled
(the fills read in a turn are stored by its settle). The reconciler reads such an order's fills for its
order-history record: when it stores them, this books them into the live book in the estimate's place
(``klineo.runner.pnl.book_exact``), in the one write that stores them
(``klineo.store.runs.book_order_fills``), with a ``fills_booked`` event. No request to Binance of its own. A
strategy's own stop-loss, take-profit or trailing stop is booked the same way: its record carries
``NOTHING_COUNTED`` from its claim (no turn places or settles its fill), so once it fired its fills are
added to the live book; one that never fired books nothing. So is a liquidation or ADL that closed a
strategy's position while Binance did not list its fills yet: the turn that found the position gone kept its
estimate on the forced order's record (``klineo.runner.positions``), naming the strategy and its share; one
forced order that closed several strategies' positions (one connection, one symbol) keeps each one's
estimate (``klineo.store.orders.estimates_by_strategy``), and all are booked in the one write.

Only in full: fills that add up to less than Binance says the order executed (a liquidation read before
Binance lists all its fills) are not booked; the record stays in the index for a later run.
Once: the record's write requires its estimate still there, and removes it. Never against a book in
flight: the strategy's write requires no order pending (a turn's settle writes the book it read before
its claim) and the strategy unchanged since read here; refused, the record stays in the reconciler's index
and the next run books it. A strategy deleted meanwhile has no book to correct: its order's fills are
stored as for any order.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from klineo.runner.pnl import book_exact, fills_totalled
from klineo.store.events import StrategyEvent
from klineo.store.order_fills import fill_totals
from klineo.store.orders import BY_STRATEGY, OrderRecord, estimates_by_strategy, order_outcome_update
from klineo.store.runs import book_order_fills
from klineo.store.strategies import Strategy, get_strategy

__all__ = ["book_fills"]


def book_fills(order: OrderRecord, outcome: dict[str, Any], now_ms: int) -> bool | None:
    """Store ``outcome`` (the reconciler's, with the order's ``fills``) and book those fills into the live
    book of ``order``'s strategy in place of its ``booked_estimate`` (of each strategy whose estimate a forced
    order's record keeps), in one write. The reconciler calls it only for an order with both
    (``Reconciler._booked``).

    True when written; False when a strategy has an order pending or changed since read here, or when
    Binance lists fewer of the order's fills than it executed (nothing written: the record stays in the
    reconciler's index); None when there is nothing to book (the strategies or their books are gone, or
    another run booked them): the caller stores ``outcome`` as for any order.
    """
    estimate, fills = order.booked_estimate or {}, order.fills or []
    if not fills and estimate.get("counted") is False:
        return None  # a strategy's protective order that never fired: nothing was counted, nothing to book
    strategies = [(strategy, counted) for strategy, counted in _counted_by(order) if strategy is not None
                  and strategy.live_book]
    if not strategies:
        return None
    totals = fill_totals(fills, order.fills_summary)
    if any(strategy.pending is not None for strategy, _ in strategies) or totals.quantity < _executed(order):
        return False
    exact = fills_totalled(totals)
    books, events = [], []
    for strategy, counted in strategies:
        events.append(StrategyEvent(strategy.strategy_id, strategy.user_id, "fills_booked", now_ms, {
            "client_order_id": order.client_order_id, "realised_pnl": exact.realised, "fees": exact.fees,
            "estimated_realised_pnl": counted["realised"], "estimated_fees": counted["fees"],
        }, tag=order.client_order_id))
        booked = book_exact(strategy.live_book, counted, exact, order.client_order_id)
        books.append((strategy.strategy_id, booked, strategy.updated_at))
    record = order_outcome_update(order.user_id, order.client_order_id, estimate_replaced=estimate, **outcome)
    failed = book_order_fills(order.user_id, books, events=events, record=record)
    if "record" in failed:  # its estimate is no longer the one read: another run booked these fills
        return None
    return not failed


def _counted_by(order: OrderRecord) -> list[tuple[Strategy | None, dict[str, Any]]]:
    """Each strategy that counted ``order``'s fills by estimate (None when gone), with what it counted: a
    strategy's own order names it as its origin; a liquidation / ADL's record keeps the estimate of each
    strategy whose position it closed, by strategy id (``klineo.store.orders.estimates_by_strategy``)."""
    estimate = order.booked_estimate or {}
    if estimate.get("strategy_id") is None and BY_STRATEGY not in estimate:
        estimates = {str(order.origin): dict(estimate)}
    else:
        estimates = estimates_by_strategy(estimate)
    return [(get_strategy(order.user_id, strategy_id, consistent=True), counted)
            for strategy_id, counted in sorted(estimates.items())]


def _executed(order: OrderRecord) -> Decimal:
    """What Binance says the order executed (its ``result`` as just read), 0 when it does not say."""
    return Decimal(str((order.result or {}).get("executed_quantity") or 0))
