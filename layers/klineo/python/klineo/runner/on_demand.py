"""POST /strategies/{id}/run: the strategy's turn on its latest closed candle, now, exactly once; and the
settle of a strategy's live order in flight before DELETE /strategies/{id} (``settle_now``).

The on-demand run is the scheduled tick's own code (``run_strategy`` on a one-strategy message),
so it shares everything that makes a candle run once: the run record (a conditional put per
(strategy, candle)), ``last_close``, the pending-order claim and the clientOrderId
``client_order_id(S, C)``. Whichever of the on-demand call and the scheduled tick for candle C comes
second finds C done and changes nothing; the call then answers with the run C already has.
The turn runs inside a ``call_deadline`` at the invocation's end: no POST is signed after it, and the stops
it arms record it (``klineo.services.protective``: a lost one is sent again recvWindow + margin after it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from klineo.binance import call_deadline
from klineo.errors import KlineoError
from klineo.runner.candles import closed_candles, ends_the_tick
from klineo.runner.execution import StrategyResult, TickContext, run_strategy, settle_in_flight
from klineo.runner.messages import StrategyRef, WorkMessage
from klineo.runner.worker import strategy_lookback
from klineo.store.runs import Run, extend_lease, get_run
from klineo.store.strategies import Strategy
from klineo.strategies import INTERVALS_MS

__all__ = ["CLOCK", "OnDemandResult", "latest_close", "run_now", "settle_now"]

# The on-demand run's wall clock (epoch seconds); tests pin it to one minute.
CLOCK: Callable[[], float] = time.time


def latest_close(interval: str, now_ms: int) -> int:
    """Close time (epoch ms) of the latest closed candle of ``interval`` at ``now_ms``."""
    length = INTERVALS_MS[interval]
    return now_ms // length * length - 1


@dataclass(frozen=True)
class OnDemandResult:
    """The candle evaluated, how this call's turn ended, and its run (this call's or the first's)."""

    close_time: int
    result: StrategyResult
    run: Run | None


def _message(strategy: Strategy, now_ms: int, close_time: int) -> WorkMessage:
    """The one-strategy work message of ``strategy``'s turn on the candle closing at ``close_time``."""
    ref = StrategyRef(user_id=strategy.user_id, strategy_id=strategy.strategy_id)
    return WorkMessage(
        tick=now_ms, environment=strategy.environment, symbol=strategy.symbol, interval=strategy.interval,
        close_time=close_time, strategies=[ref],
    )


def run_now(
    strategy: Strategy, deadline_ms: int, *, clock: Callable[[], float] | None = None,
) -> OnDemandResult:
    """Run ``strategy`` (read strongly consistent) on its latest closed candle; see the module doc."""
    clock = clock or CLOCK
    now_ms = int(clock() * 1000)
    close_time = latest_close(strategy.interval, now_ms)
    message = _message(strategy, now_ms, close_time)
    try:
        group = closed_candles(strategy.environment, strategy.symbol, strategy.interval, close_time,
                               strategy_lookback(strategy), clock=clock)
        ctx = TickContext(message=message, group=group, deadline_ms=deadline_ms, clock=clock)
    except KlineoError as exc:
        if not ends_the_tick(exc):
            raise
        ctx = TickContext(message=message, group=None, deadline_ms=deadline_ms, group_error=exc, clock=clock)
    with call_deadline(deadline_ms / 1000):
        result = run_strategy(strategy, ctx)
    return OnDemandResult(close_time, result, get_run(strategy.strategy_id, close_time))


def settle_now(
    strategy: Strategy, deadline_ms: int, *, clock: Callable[[], float] | None = None,
) -> StrategyResult:
    """Settle ``strategy``'s live order in flight now, alone, on the order's candle (``settle_in_flight``:
    never sent again, nothing else traded; no candles read), its lease until ``deadline_ms``, after which no
    POST is signed. Binance refusing the key (or the key unreadable) on its lookup is raised (a KlineoError of
    that category), the strategy left as it was: the caller (a DELETE) answers it, unlike a turn, which
    pauses the strategy."""
    pending = strategy.pending
    assert pending is not None
    clock = clock or CLOCK
    message = _message(strategy, int(clock() * 1000), pending.close_time)
    ctx = TickContext(message=message, group=None, deadline_ms=deadline_ms, clock=clock,
                      raises_key_refusals=True)
    try:
        with call_deadline(deadline_ms / 1000):
            return settle_in_flight(strategy, ctx)
    finally:
        # Left pending (not settled now), the lease its lookup took is given back: this attempt sent nothing,
        # so the next one may settle it at once and counts any resend wait from the earlier attempts' lease.
        extend_lease(strategy.user_id, strategy.strategy_id, replace(pending, lease_until_ms=deadline_ms),
                     pending.lease_until_ms)
