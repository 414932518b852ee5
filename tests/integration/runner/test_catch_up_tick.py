"""The catch-up look one minute after a candle's close: only when that close's tick was really lost.

The real dispatcher and worker on moto and the simulator, on ticks of a past 5m boundary B (second 1 of
B, then of B + 1 minute). DynamoDB requests are counted on the layer's client as moto receives them
(``dynamodb_requests``); the dispatcher's index Query and its tick record are the whole system's, one a
minute whatever the number of strategies, so they are left out of a strategy's count.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from klineo.runner import dispatcher
from klineo.runner.schedule import MINUTE_MS
from klineo.settings import get_settings
from klineo.store import strategies as strategy_store
from klineo.timestamps import utc_iso

FIVE_MINUTES_MS = 5 * MINUTE_MS
USER = "user-catch-up-1"
# RSI levels that are never crossed: the strategy holds on every candle.
HOLDING = {"type": "rsi_threshold", "parameters": {"period": 14, "oversold": 0.0001, "overbought": 99.9999}}


def _boundary() -> int:
    """A past 5m boundary B whose catch-up minute (B + 1 minute, second 1) has begun."""
    now = int(time.time() * 1000)
    boundary = now // FIVE_MINUTES_MS * FIVE_MINUTES_MS
    return boundary if now - boundary > MINUTE_MS + 1_000 else boundary - FIVE_MINUTES_MS


def _created_before(boundary: int) -> str:
    """A ``created_at`` well before the boundary's candle closed (the strategy existed for it)."""
    return utc_iso(boundary - 3 * FIVE_MINUTES_MS)


def _strategy_requests(requests: list[tuple[str, dict[str, Any]]]) -> Counter:
    """Requests on the data table that touch a strategy's or a user's items (runs, strategies, gates), by
    operation: the dispatcher's index Query and its tick record are left out."""
    table = get_settings().data_table
    counted: Counter = Counter()
    for name, params in requests:
        batch = params.get("RequestItems", {}).get(table, {})
        keys = [params.get("Key") or params.get("Item") or {}, *batch.get("Keys", [])]
        if any(key.get("pk", {}).get("S", "").startswith(("STRAT#", "USER#")) for key in keys):
            counted[name] += 1
    return counted


def test_a_holding_5m_strategy_costs_one_turn_per_candle(runner, dynamodb_requests) -> None:
    """GIVEN a live 5m strategy that holds WHEN the ticks of its close and of the minute after both run
    THEN it is dispatched once: one gate read and one run Put for the candle, nothing at the catch-up."""
    sid = runner.strategy(USER, runner.connection(USER), interval="5m", **HOLDING)
    boundary = _boundary()
    dynamodb_requests.clear()
    first = runner.run_tick(boundary + 1_000)
    catch_up = runner.run_tick(boundary + MINUTE_MS + 1_000)
    assert _strategy_requests(dynamodb_requests) == Counter({"BatchGetItem": 1, "PutItem": 1})
    assert first.dispatch["strategies"] == 1 and first.failures == []
    assert (catch_up.dispatch["strategies"], catch_up.bodies) == (0, [])
    assert [(r.status, r.close_time) for r in runner.runs(sid)] == [("no_change", boundary - 1)]


def test_a_lost_tick_is_still_caught_up_a_minute_later(runner) -> None:
    """GIVEN a 5m strategy whose close's tick never ran WHEN the tick of the minute after runs THEN that
    tick dispatches it on the candle and it holds there."""
    boundary = _boundary()
    sid = runner.strategy(USER, runner.connection(USER), interval="5m", created_at=_created_before(boundary),
                          **HOLDING)
    catch_up = runner.run_tick(boundary + MINUTE_MS + 1_000)
    assert catch_up.dispatch["strategies"] == 1 and catch_up.failures == []
    assert [b["close_time"] for b in catch_up.bodies] == [boundary - 1]
    assert [(r.status, r.close_time) for r in runner.runs(sid)] == [("no_change", boundary - 1)]


def test_a_catch_up_of_a_tick_still_in_flight_runs_the_hold_once(runner, monkeypatch) -> None:
    """GIVEN the tick of a 5m close not recorded yet (still queueing when the next minute's tick starts) WHEN
    the next tick looks again THEN the strategy is dispatched again and its repeated turn is refused: one
    run on the candle, as before the tick record."""
    boundary = _boundary()
    sid = runner.strategy(USER, runner.connection(USER), interval="5m", created_at=_created_before(boundary),
                          **HOLDING)
    with monkeypatch.context() as in_flight:
        in_flight.setattr(dispatcher, "record_tick", lambda tick_ms: False)
        first = runner.tick(boundary + 1_000)
    catch_up = runner.run_tick(boundary + MINUTE_MS + 1_000)
    assert (first["strategies"], catch_up.dispatch["strategies"]) == (1, 1)
    assert runner.work(runner.receive()) == [] and catch_up.failures == []
    assert [(r.status, r.close_time) for r in runner.runs(sid)] == [("no_change", boundary - 1)]


def test_a_strategy_created_after_its_candle_closed_is_not_run_on_it_by_the_catch_up_look(runner) -> None:
    """GIVEN a 5m strategy created 30 s after its candle's close, whose close's tick left no record WHEN the
    tick of the minute after looks again THEN it is not dispatched on that candle: no run on a candle that
    closed before the strategy existed."""
    boundary = _boundary()
    sid = runner.strategy(USER, runner.connection(USER), interval="5m", created_at=utc_iso(boundary + 30_000),
                          **HOLDING)
    catch_up = runner.run_tick(boundary + MINUTE_MS + 1_000)
    assert (catch_up.dispatch["strategies"], catch_up.bodies) == (0, [])
    assert runner.runs(sid) == []


def test_a_strategy_resumed_after_its_candle_closed_is_not_run_on_it_by_the_catch_up_look(runner) -> None:
    """GIVEN a 5m strategy that existed before its candle's close, paused, and resumed after that close
    WHEN the catch-up look of the candle runs THEN it is not dispatched on it: a resume decides from the
    candles that close after it."""
    boundary = _boundary()
    sid = runner.strategy(USER, runner.connection(USER), interval="5m", created_at=_created_before(boundary),
                          **HOLDING)
    paused = strategy_store.update_settings(USER, sid, runner.stored(USER, sid), changes={"status": "paused"})
    strategy_store.update_settings(USER, sid, paused, changes={"status": "active", "status_reason": None})
    catch_up = runner.run_tick(boundary + MINUTE_MS + 1_000)
    assert (catch_up.dispatch["strategies"], catch_up.bodies) == (0, [])
    assert runner.runs(sid) == []
