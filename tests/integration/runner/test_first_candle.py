"""A strategy's first candle is the first one to close after it was created or resumed.

The real dispatcher and worker on moto and the simulator. The ticks are dispatched at second 1 of their
minute, as the Scheduler does; a strategy created (or resumed) between a minute's boundary and its tick
did not exist when that candle closed, so the tick's own look leaves it out, as a catch-up look does, and
its first turn is the next minute's candle.
"""

from __future__ import annotations

from klineo.store import strategies as strategy_store
from klineo.timestamps import utc_iso

from tests.integration.runner.conftest import ORDER_PATH, tick_times

USER = "user-first-candle-1"


def test_a_strategy_created_after_the_boundary_first_trades_on_the_next_candle(runner) -> None:
    """GIVEN a live 1m strategy created half a second after a minute's boundary, before that minute's tick
    WHEN that tick runs THEN it is not dispatched, has no run and sends no order; WHEN the next minute's
    tick runs THEN it is dispatched on that minute's candle and trades on it."""
    earlier, later = tick_times(2)
    sid = runner.strategy(USER, runner.connection(USER), created_at=utc_iso(earlier - 500))
    first = runner.run_tick(earlier)
    assert (first.dispatch["strategies"], first.dispatch["active_after_close"], first.bodies) == (0, 1, [])
    assert runner.runs(sid) == [] and runner.journal("POST", ORDER_PATH) == []
    second = runner.run_tick(later)
    assert second.dispatch["strategies"] == 1 and second.failures == []
    assert [(r.status, r.close_time) for r in runner.runs(sid)] == [("ordered", later - 1_000 - 1)]
    assert len(runner.journal("POST", ORDER_PATH)) == 1


def test_a_strategy_resumed_after_the_boundary_is_not_run_on_that_minutes_candle(runner) -> None:
    """GIVEN a live 1m strategy that existed long before, paused and resumed after this minute's boundary
    WHEN this minute's tick runs THEN it is not dispatched and sends no order: a resume decides from the
    candles that close after it."""
    [tick] = tick_times(1)
    sid = runner.strategy(USER, runner.connection(USER), created_at=utc_iso(tick - 86_400_000))
    paused = strategy_store.update_settings(USER, sid, runner.stored(USER, sid), changes={"status": "paused"})
    strategy_store.update_settings(USER, sid, paused, changes={"status": "active", "status_reason": None})
    ticked = runner.run_tick(tick)
    assert (ticked.dispatch["strategies"], ticked.dispatch["active_after_close"], ticked.bodies) == (0, 1, [])
    assert runner.runs(sid) == [] and runner.journal("POST", ORDER_PATH) == []
