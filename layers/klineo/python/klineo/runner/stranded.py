"""Settle turns for live orders the reconciler settled while their strategy still holds them pending.

A live turn claims its order, sends it, and settles it. When the settle cannot complete (the lookups
keep failing: Binance down, a rate limit), its message comes again and, after maxReceiveCount (3),
lands in the dead-letter queue. The dispatcher sends the strategy again only when its interval's next
candle is due: up to an hour on 1h, a day on 1d. All that time the fill is not on the strategy's
position and an entry has no stop-loss / take-profit (they are placed after the settle).

The order reconciler (every 5 minutes) reads such an order from its unsettled index once Binance
answers again. For each strategy order its run read final (``queue_settle_turns``), the strategy is
read (one strongly consistent GetItem) and, while it still holds that very order pending with its lease
run out (no turn is settling it now), its turn on the ORDER's candle is queued (paused meanwhile too: the
turn then only settles the order, ``klineo.runner.execution``'s ``settle_paused``):
a one-strategy work message (``klineo.runner.messages``, version 2, no snapshot: the worker reads a
strategy with a pending order itself) on the strategy queue. The worker settles the order as a
redelivery of the dead-lettered message would (``klineo.runner.execution``, step 3: looked up by
clientOrderId, never sent twice), records the candle's run and places the entry's stops.

Nothing rests on this message alone: a turn that finds the order taken or settled meanwhile changes
nothing, and if the message is lost the next candle's turn still settles the order, as before.
Cost: nothing per dispatcher tick; per reconciler run, one GetItem per strategy order record it read
final (only orders their own turn did not settle; those whose fills the turn estimated are skipped:
their turn did settle them) and one SendMessageBatch per 10 turns queued.
"""

from __future__ import annotations

from collections.abc import Iterable

from klineo.runner.dispatcher import send_messages
from klineo.runner.messages import StrategyRef, WorkMessage
from klineo.store.orders import FOREIGN_ORIGINS, KIND_ORDER, ORIGIN_API, OrderRecord
from klineo.store.strategies import get_strategy

__all__ = ["queue_settle_turns", "stranded_turns"]


def _strategy_order(record: OrderRecord) -> bool:
    """True for a strategy's own order (not a stop) read final that its turn did not settle."""
    return (record.kind == KIND_ORDER and record.final and record.booked_estimate is None
            and record.origin != ORIGIN_API and record.origin not in FOREIGN_ORIGINS)


def stranded_turns(records: Iterable[OrderRecord], now_ms: int) -> list[WorkMessage]:
    """The settle turns to queue: one per strategy (active or paused) still holding one of ``records``
    pending, its lease run out by ``now_ms``."""
    messages: list[WorkMessage] = []
    for record in records:
        if not _strategy_order(record):
            continue
        strategy = get_strategy(record.user_id, record.origin, consistent=True)
        pending = strategy.pending if strategy is not None else None
        if (strategy is None or pending is None
                or pending.client_order_id != record.client_order_id or pending.lease_until_ms > now_ms):
            continue
        messages.append(WorkMessage(
            tick=now_ms, environment=strategy.environment, symbol=strategy.symbol, interval=strategy.interval,
            close_time=pending.close_time,
            strategies=[StrategyRef(user_id=strategy.user_id, strategy_id=strategy.strategy_id)],
        ))
    return messages


def queue_settle_turns(records: Iterable[OrderRecord], now_ms: int) -> int:
    """Queue ``stranded_turns`` on the strategy queue; how many. Raises KlineoError when some were lost
    (their orders then wait for their strategies' next candle)."""
    messages = stranded_turns(records, now_ms)
    if messages:
        send_messages(messages)
    return len(messages)
