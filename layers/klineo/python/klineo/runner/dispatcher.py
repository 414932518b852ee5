"""The every-minute dispatcher: query due strategies from the sparse index and fan them out onto SQS.

Per due interval (see ``klineo.runner.schedule``) it runs ONE paged Query on ``gsi1`` (never a
Scan; the index projects the whole item), keeps the strategies not yet run on the target candle,
groups them by (environment, symbol) so each group shares one klines request, and puts each
strategy's snapshot in the message (``klineo.runner.messages``, version 2): the worker decides
from it instead of reading the strategy again. A group is split over several messages beyond
``MAX_STRATEGIES_PER_MESSAGE`` strategies or ``MAX_MESSAGE_BYTES`` of encoded JSON, and the
messages go out with SendMessageBatch (10 a call, a few calls in parallel). It does no exchange
call and reads no secret: the cost of a tick is a handful of Query pages plus one SQS call per 10
messages, so it is never the runner's bottleneck.

The catch-up look (``klineo.runner.schedule``: a candle of 3m and up is due again one minute after
its close) runs only when the tick of the close's minute did not complete. Once every message is
queued, a tick that queued a candle the next tick would look at again records its minute
(``klineo.store.ticks``: at most one Put a minute for the whole system, none on a minute of 1m
candles alone), and the next tick reads that record (one GetItem) before it looks again; no record
(a lost tick, or nothing to look at again) lets the look run, as before. Without it, every strategy
that held on the candle (a hold writes its run only, not ``last_close``) was dispatched a second
time, and its turn's run Put refused: twice a hold's cost for every interval but 1m.

A strategy's first candle is the first one to close after it became active: every look, the tick's own
as a catch-up, leaves out one created or resumed after the candle closed (``ActiveStrategy.active_from``),
and it decides first on the next candle. A 1m strategy created at 12:00:03 is not sent the candle that
closed at 12:00 by the 12:00 tick that runs a few seconds later, and a 5m one created at 12:00:30 is not
sent it by the 12:01 catch-up look (whether or not another 5m strategy made the 12:00 tick leave its
record): neither existed when that candle closed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from klineo.errors import ErrorCategory, KlineoError
from klineo.observability import logger, metrics
from klineo.runner.messages import (
    MAX_MESSAGE_BYTES,
    MAX_STRATEGIES_PER_MESSAGE,
    StrategyRef,
    WorkMessage,
    encoded,
)
from klineo.runner.schedule import due_candles, tick_time_ms
from klineo.settings import get_settings
from klineo.store.queue import batches_of, send_batch
from klineo.store.strategies import ActiveStrategy, query_active_snapshots
from klineo.store.ticks import record_tick, tick_completed

__all__ = ["DispatchSummary", "dispatch_tick", "plan_messages", "send_messages", "split_by_size"]

_SEND_THREADS = 4


@dataclass
class DispatchSummary:
    """What one tick did (returned by the function, and logged)."""

    tick: int
    due: dict[str, int] = field(default_factory=dict)
    # Intervals whose catch-up look was left out: the tick of their candle's close completed.
    dispatched_before: list[str] = field(default_factory=list)
    strategies: int = 0
    already_ran: int = 0
    # Left out: created or resumed after the candle it was due on closed.
    active_after_close: int = 0
    groups: int = 0
    messages: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return asdict(self)


def _ref(strategy: ActiveStrategy) -> StrategyRef:
    """The strategy's entry in a message (built from our own index read: nothing to validate)."""
    return StrategyRef.model_construct(user_id=strategy.user_id, strategy_id=strategy.strategy_id,
                                       snapshot=strategy.snapshot)


def split_by_size(header: WorkMessage, refs: list[StrategyRef]) -> list[list[StrategyRef]]:
    """``refs`` in runs of at most MAX_STRATEGIES_PER_MESSAGE, each message within MAX_MESSAGE_BYTES.

    Sizes are measured on the encoded JSON (``WorkMessage.body``). A strategy whose snapshot
    alone would not fit goes without it (the worker reads that one itself).
    """
    base = len(header.body().encode()) - len(encoded(header.strategies[0].as_json()))
    runs: list[list[StrategyRef]] = []
    current: list[StrategyRef] = []
    size = base
    for ref in refs:
        cost = len(encoded(ref.as_json()).encode()) + 1  # the entry and its comma
        if base + cost > MAX_MESSAGE_BYTES:
            ref = ref.model_copy(update={"snapshot": None})
            cost = len(encoded(ref.as_json()).encode()) + 1
        if current and (len(current) == MAX_STRATEGIES_PER_MESSAGE or size + cost > MAX_MESSAGE_BYTES):
            runs.append(current)
            current, size = [], base
        current.append(ref)
        size += cost
    if current:
        runs.append(current)
    return runs


def _group_messages(tick_ms: int, interval: str, close_time: int, market: tuple[str, str],
                    refs: list[StrategyRef]) -> list[WorkMessage]:
    """One group's messages: its strategies split by count and by encoded size."""
    environment, symbol = market
    header = WorkMessage.model_construct(v=2, tick=tick_ms, environment=environment, symbol=symbol,
                                         interval=interval, close_time=close_time, strategies=refs[:1])
    return [header.model_copy(update={"strategies": run}) for run in split_by_size(header, refs)]


def _looks_to_make(tick_ms: int, completed: Callable[[int], bool],
                   summary: DispatchSummary) -> dict[str, int]:
    """This tick's due candles, without the catch-up looks at a candle whose close's tick completed."""
    due = due_candles(tick_ms)
    earlier = {close + 1 for close in due.values() if close + 1 < tick_ms}  # catch-up looks' close minutes
    done = {minute for minute in sorted(earlier) if completed(minute)}
    summary.dispatched_before = [interval for interval, close in due.items() if close + 1 in done]
    return {interval: close for interval, close in due.items() if close + 1 not in done}


def _active_after(strategy: ActiveStrategy, close_time: int) -> bool:
    """True when the strategy became active (created or resumed) after the candle closing at close_time."""
    since = strategy.active_from()
    return since is not None and since > close_time


def plan_messages(
    tick_ms: int,
    query: Callable[[str], Iterable[ActiveStrategy]] = query_active_snapshots,
    summary: DispatchSummary | None = None,
    completed: Callable[[int], bool] = tick_completed,
) -> list[WorkMessage]:
    """The messages for one tick: due strategies not yet run on their candle, grouped by market.

    ``completed(minute)``: whether that minute's tick queued all its messages (its catch-up is left out).
    """
    summary = summary if summary is not None else DispatchSummary(tick=tick_ms)
    summary.due = _looks_to_make(tick_ms, completed, summary)
    messages: list[WorkMessage] = []
    for interval, close_time in summary.due.items():
        groups: dict[tuple[str, str], list[StrategyRef]] = defaultdict(list)
        for strategy in query(interval):
            if strategy.last_close is not None and strategy.last_close >= close_time:
                summary.already_ran += 1
                continue
            if _active_after(strategy, close_time):
                summary.active_after_close += 1
                continue
            groups[(strategy.environment, strategy.symbol)].append(_ref(strategy))
        for market, refs in sorted(groups.items()):
            summary.groups += 1
            summary.strategies += len(refs)
            messages.extend(_group_messages(tick_ms, interval, close_time, market, refs))
    summary.messages = len(messages)
    return messages


def send_messages(messages: list[WorkMessage], queue_url: str | None = None) -> None:
    """Send every message (SendMessageBatch of 10, a few batches at a time); raise if any were lost."""
    queue_url = queue_url or get_settings().strategy_queue_url
    if not queue_url:
        raise KlineoError(ErrorCategory.OTHER, "STRATEGY_QUEUE_URL is not set")
    batches = batches_of([message.body() for message in messages])
    if not batches:
        return
    if len(batches) == 1:
        lost = send_batch(queue_url, batches[0])
    else:
        with ThreadPoolExecutor(max_workers=_SEND_THREADS) as pool:
            lost = sum(pool.map(lambda batch: send_batch(queue_url, batch), batches))
    if lost:
        # The next tick's catch-up look dispatches these strategies again (nothing ran for them).
        raise KlineoError(ErrorCategory.UPSTREAM_UNAVAILABLE, f"{lost} strategy messages could not be queued")


def _looked_at_again(messages: list[WorkMessage], tick_ms: int) -> bool:
    """True when the next tick's catch-up look would dispatch again a candle this tick queued: only then is
    its record worth a write (none on a minute of 1m candles alone)."""
    again = due_candles(tick_ms + 60_000)
    return any(again.get(message.interval) == message.close_time for message in messages)


def dispatch_tick(event: Mapping[str, Any] | None, now_ms: int | None = None) -> dict[str, Any]:
    """Entry point for the Scheduler event: plan this tick's messages and queue them."""
    started, started_ms = time.monotonic(), int(time.time() * 1000) if now_ms is None else now_ms
    tick = tick_time_ms(event, started_ms)
    summary = DispatchSummary(tick=tick)
    messages = plan_messages(tick, summary=summary)
    send_messages(messages)
    if _looked_at_again(messages, tick):
        record_tick(tick)  # only once all are queued: a tick that lost one leaves its catch-up to the next
    metrics.add_metric(name="StrategiesDispatched", unit="Count", value=summary.strategies)
    metrics.add_metric(name="StrategyMessagesSent", unit="Count", value=summary.messages)
    metrics.add_metric(name="RunnerTicks", unit="Count", value=1)
    metrics.add_metric(name="RunnerTickLag", unit="Milliseconds", value=max(0, started_ms - tick))
    duration_ms = (time.monotonic() - started) * 1000
    metrics.add_metric(name="RunnerTickDuration", unit="Milliseconds", value=duration_ms)
    logger.info("strategy tick dispatched", extra=summary.as_dict())
    return summary.as_dict()
