"""A turn too late for its candle: the stale-candle rule judged on the clock when it is applied.

A turn may settle an older candle's order before its own (order lookup, fills, protective orders: several
Binance calls). The next candle can close meanwhile; the turn must then see its candle as superseded, as
the README promises ("the runner never trades a candle a newer one has superseded").
"""

from __future__ import annotations

import time

from klineo.runner import execution, worker
from klineo.runner.schedule import MINUTE_MS

from tests.integration.runner.conftest import (
    ORDER_PATH,
    ShortContext,
    crash_first_call,
    current_close,
    worker_event_from,
)

USER = "user-stale-candle"


def _body(strategy_id: str, close_time: int) -> dict:
    """A version 1 work message for ``strategy_id`` on the 1m BTCUSDT candle closing at ``close_time``."""
    return {"v": 1, "tick": close_time + 1, "environment": "production", "symbol": "BTCUSDT",
            "interval": "1m", "close_time": close_time,
            "strategies": [{"user_id": USER, "strategy_id": strategy_id}]}


def test_a_candle_superseded_while_an_older_order_was_settled_is_skipped_not_traded(runner, monkeypatch):
    """GIVEN a live strategy whose previous candle's order filled but was never recorded WHEN the next
    candle's turn starts while that candle is fresh and the candle after it closes while the old order is
    looked up THEN the old order is settled and the late candle is skipped (stale_candle), never traded."""
    sid = runner.strategy(USER, runner.connection(USER))
    older = current_close() - 10 * MINUTE_MS  # both candles closed on the simulator's (real) clock
    newer = older + MINUTE_MS
    runner.pinned["tick_ms"] = older + 1  # the first attempt runs within its candle's minute
    crash_first_call(monkeypatch, execution, "settle_live_order")
    first = runner.work_event(worker_event_from([_body(sid, older)], runner.queue_arn), remaining_ms=1,
                              later_ms=older + 1_000 - int(time.time() * 1000))
    assert len(first["batchItemFailures"]) == 1
    assert runner.stored(USER, sid).pending.close_time == older  # filled at Binance, not recorded
    runner.pinned.pop("tick_ms")  # the worker's own clock judges staleness from here on

    clock = {"ms": newer + 30_000}  # mid-candle: the newer candle is fresh when its turn starts
    real_query = execution.query_futures_order

    def slow_query(*args, **kwargs):
        clock["ms"] = newer + MINUTE_MS + 1_000  # the lookup ends after the next candle closed
        return real_query(*args, **kwargs)

    monkeypatch.setattr(execution, "query_futures_order", slow_query)
    context = ShortContext(function_name="strategy_worker", remaining_ms=60_000)
    delivered = runner.delivered(worker_event_from([_body(sid, newer)], runner.queue_arn))
    with runner.iam.acting_as("strategy_worker"):
        response = worker.handle_batch(delivered, context, clock=lambda: clock["ms"] / 1000)

    assert response["batchItemFailures"] == []
    runs = {run.close_time: run for run in runner.runs(sid)}
    assert runs[older].status == "ordered"
    assert (runs[newer].status, runs[newer].skip_reason) == ("skipped", "stale_candle")
    assert len([r for r in runner.journal("POST", ORDER_PATH) if r.status == 200]) == 1
    assert runner.stored(USER, sid).pending is None
