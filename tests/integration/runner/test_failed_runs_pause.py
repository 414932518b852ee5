"""A strategy whose runs keep failing pauses itself (klineo.runner.failures), on the simulator and moto.

The strategies here are RSI ones whose levels make the signal fixed whatever the prices: "always long"
(oversold 99.99: RSI is nearly always under it) and "always hold" (levels at the extremes), so every turn
wants the same thing. An order of 100 BTC (the connection's notional limit lifted) is one Binance refuses
every minute: -2019, margin is insufficient.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

import pytest
from klineo.runner import execution
from klineo.runner.failures import FAILED_RUN_LIMIT
from klineo.store import strategies as strategy_store
from klineo.store.connections import update_settings
from klineo.store.events import list_events

from local.binance_sim import brackets as sim_brackets
from local.binance_sim import endpoints as sim_endpoints
from tests.helpers import load_event, response_json, with_body, with_user
from tests.integration.api.conftest import at_path
from tests.integration.runner.conftest import ORDER_PATH
from tests.integration.runner.test_protective_reprice import _revoke_futures

USER = "user-failing-runs"
MINUTE_MS = 60_000
ALWAYS_LONG = {"type": "rsi_threshold", "parameters": {"period": 14, "oversold": 99.99, "overbought": 99.999}}
ALWAYS_HOLD = {"type": "rsi_threshold", "parameters": {"period": 14, "oversold": 0.001, "overbought": 99.999}}
MARGIN_REFUSED = "Margin is insufficient for this order."


def minute_start() -> int:
    """A time one second into the current minute (epoch ms): ticks go back whole minutes from it."""
    return int(time.time() * 1000) // MINUTE_MS * MINUTE_MS + 1000


def refused_strategy(runner, **changes) -> str:
    """A live always-long strategy of 100 BTC, past the risk gate: Binance refuses its every order."""
    connection = runner.connection(USER)
    update_settings(USER, connection, {"max_notional_usdt": Decimal("100000000")})
    return runner.strategy(USER, connection, size="100", **{**ALWAYS_LONG, **changes})


def ticks(runner, count: int, last: int) -> None:
    """``count`` ticks, one a minute, the last at ``last``."""
    for back in range(count - 1, -1, -1):
        runner.run_tick(last - back * MINUTE_MS)


def patch_status(runner, strategy_id: str, status: str) -> dict:
    """PATCH /strategies/{id} with a new status, as the user."""
    return patch(runner, strategy_id, {"status": status})


def patch(runner, strategy_id: str, body: dict[str, Any]) -> dict:
    """PATCH /strategies/{id} with ``body``, as the user."""
    event = at_path(load_event("strategy_update"), f"/strategies/{strategy_id}", id=strategy_id)
    return runner.invoke("strategy_update", with_user(with_body(event, body), USER))


def test_five_refused_orders_in_a_row_pause_the_strategy_and_the_next_tick_sends_nothing(runner) -> None:
    """Five runs in a row failed by Binance's refusal pause the strategy in the fifth run's write, with an
    event naming the count and the reason; the sixth tick sends nothing to Binance."""
    sid = refused_strategy(runner)
    now = minute_start()

    ticks(runner, FAILED_RUN_LIMIT, now - MINUTE_MS)

    runs = runner.runs(sid)
    assert [(r.status, r.error["category"]) for r in runs] == [("failed", "insufficient_balance")] * 5
    assert len(runner.journal("POST", ORDER_PATH)) == 5
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason) == ("paused", "repeated_failures:insufficient_balance")
    assert (stored.failed_runs, stored.key_failures) == (5, 0)
    paused = [e for e in list_events(sid, 50).events if e.kind == "paused"]
    assert [(e.close_time, e.details["message"]) for e in paused] == [
        (runs[0].close_time, f"Paused after 5 consecutive failed runs. Last error: {MARGIN_REFUSED}")]
    runner.sim.clear_journal()

    runner.run_tick(now)

    assert runner.sim.journal == [] and len(runner.runs(sid)) == 5


def test_four_failed_runs_then_an_order_placed_reset_the_count(runner) -> None:
    """Four refused runs count 4, and a turn whose order Binance takes resets the count: no pause later."""
    sid = refused_strategy(runner)
    now = minute_start()
    ticks(runner, 4, now - MINUTE_MS)
    stored = runner.stored(USER, sid)
    assert (stored.failed_runs, stored.status) == (4, "active")
    strategy_store.update_settings(USER, sid, stored, changes={"size": Decimal("0.002")})

    runner.run_tick(now)

    assert runner.runs(sid)[0].status == "ordered"
    assert (runner.stored(USER, sid).failed_runs, runner.stored(USER, sid).status) == (0, "active")


def test_a_hold_after_failed_runs_resets_the_count_in_its_one_write(runner) -> None:
    """A hold (no order wanted) after four failed runs writes its run and the count's reset to 0."""
    sid = runner.strategy(USER, runner.connection(USER), failed_runs=4, **ALWAYS_HOLD)

    runner.run_tick()

    assert runner.runs(sid)[0].status == "no_change"
    stored = runner.stored(USER, sid)
    assert (stored.failed_runs, stored.status, stored.last_close) == (0, "active", runner.tick_close)


def test_transient_503s_for_ten_turns_neither_count_nor_pause(runner) -> None:
    """Binance answering 503 (outcome unknown) to the symbol's leverage for ten turns fails ten runs, but
    an outage is no refusal: the count of failed runs stays where it was and the strategy stays active."""
    connection = runner.connection(USER)
    sid = runner.strategy(USER, connection, leverage=5, failed_runs=4, **ALWAYS_LONG)
    runner.sim.faults.add("http_503_unknown", method="POST", path="/fapi/v1/leverage", count=10,
                          execute=False)

    ticks(runner, 10, minute_start())

    runs = runner.runs(sid)
    assert [(r.status, r.error["category"]) for r in runs] == [("failed", "unknown_outcome")] * 10
    stored = runner.stored(USER, sid)
    assert (stored.failed_runs, stored.status) == (4, "active")
    assert runner.journal("POST", ORDER_PATH) == []


def test_key_refusals_still_pause_through_the_key_count_and_are_not_counted_again(runner) -> None:
    """A key that lost its futures right pauses the strategy after three refusals (key_failure:permission),
    as before; those runs are not also counted as failed runs."""
    sid = runner.strategy(USER, runner.connection(USER, "spot-only"), **ALWAYS_LONG)

    ticks(runner, 3, minute_start())

    assert [r.error["category"] for r in runner.runs(sid)] == ["permission"] * 3
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason) == ("paused", "key_failure:permission")
    assert (stored.key_failures, stored.failed_runs) == (3, 0)


def test_key_refusals_of_the_symbol_settings_count_as_key_failures(runner) -> None:
    """A key without the futures right refused at the symbol's settings (before any order) three times
    pauses the strategy through its key count (key_failure:permission), as an order's refusal would; those
    runs are not also counted as failed runs, and no order reached Binance."""
    sid = runner.strategy(USER, runner.connection(USER, "spot-only"), leverage=5, **ALWAYS_LONG)

    ticks(runner, 3, minute_start())

    assert [r.error["category"] for r in runner.runs(sid)] == ["permission"] * 3
    assert runner.journal("POST", ORDER_PATH) == [] and runner.journal("GET", "/fapi/v1/symbolConfig")
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason) == ("paused", "key_failure:permission")
    assert (stored.key_failures, stored.failed_runs) == (3, 0)


def test_resuming_a_strategy_paused_by_failed_runs_starts_a_fresh_count(runner) -> None:
    """The fifth failed run pauses; PATCH status active clears the count, so the next refusal counts 1."""
    sid = refused_strategy(runner, failed_runs=4)
    now = minute_start()
    runner.run_tick(now - MINUTE_MS)
    assert runner.stored(USER, sid).status == "paused"

    response = patch_status(runner, sid, "active")

    assert response["statusCode"] == 200, response["body"]
    assert response_json(response)["status"] == "active"
    assert (runner.stored(USER, sid).failed_runs, runner.stored(USER, sid).status_reason) == (0, None)
    runner.active_before(USER, sid)  # resumed before the candle the next tick plays
    runner.run_tick(now)
    stored = runner.stored(USER, sid)
    assert (runner.runs(sid)[0].status, stored.failed_runs, stored.status) == ("failed", 1, "active")


def _pause_and_resume_while_sending(runner, monkeypatch: pytest.MonkeyPatch, sid: str,
                                    then: Any = None) -> None:
    """Make the first order send of the turn wait for the user to pause and resume the strategy (PATCH
    status paused, then active: the resume clears both counts) after the order was claimed; ``then``
    runs after that, still before the send."""
    real = execution.submit_futures_order

    def resumed_first(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(execution, "submit_futures_order", real)
        assert runner.stored(USER, sid).pending is not None  # claimed: the order is in flight
        for status in ("paused", "active"):
            assert patch_status(runner, sid, status)["statusCode"] == 200
        if then is not None:
            then()
        return real(*args, **kwargs)

    monkeypatch.setattr(execution, "submit_futures_order", resumed_first)


def test_a_resume_while_a_refused_order_is_in_flight_is_not_undone_by_its_settle(runner, monkeypatch) -> None:
    """GIVEN four failed runs and a fifth order claimed WHEN the user pauses and resumes the strategy before
    Binance refuses that order THEN its settle counts 1 from the resume's 0, not 5: no pause, and no paused
    event but the user's own."""
    sid = refused_strategy(runner, failed_runs=4)
    _pause_and_resume_while_sending(runner, monkeypatch, sid)

    runner.run_tick(minute_start())

    assert len(runner.journal("POST", ORDER_PATH)) == 1
    stored = runner.stored(USER, sid)
    assert (runner.runs(sid)[0].status, stored.failed_runs, stored.status) == ("failed", 1, "active")
    assert stored.pending is None
    assert [e.details for e in list_events(sid, 50).events if e.kind == "paused"] == [{"by": "user"}]


def test_a_resume_while_a_key_refused_order_is_in_flight_is_not_undone_by_its_settle(
    runner, monkeypatch
) -> None:
    """GIVEN two key failures and an order claimed WHEN the user pauses and resumes the strategy, then the key
    loses its futures right before the send THEN the refusal counts 1 key failure from the resume's 0, not
    3: the strategy stays active."""
    sid = runner.strategy(USER, runner.connection(USER), key_failures=2, **ALWAYS_LONG)
    _pause_and_resume_while_sending(runner, monkeypatch, sid, then=lambda: _revoke_futures(runner))

    runner.run_tick(minute_start())

    assert runner.runs(sid)[0].error["category"] == "permission"
    stored = runner.stored(USER, sid)
    assert (stored.key_failures, stored.status, stored.pending) == (1, "active", None)


def test_a_pause_a_resume_dropped_meanwhile_is_not_logged_as_a_pause(runner, monkeypatch, caplog) -> None:
    """GIVEN four failed runs and a fifth order claimed WHEN the user pauses and resumes the strategy before
    Binance refuses that order THEN the settle stores no pause and the log says so (not paused, counted from
    the resume), never that the strategy is pausing."""
    sid = refused_strategy(runner, failed_runs=4)
    _pause_and_resume_while_sending(runner, monkeypatch, sid)

    with caplog.at_level(logging.INFO):
        runner.run_tick(minute_start())

    assert runner.stored(USER, sid).status == "active"
    said = [record.getMessage() for record in caplog.records if "paus" in record.getMessage()]
    assert said == ["strategy not paused: resumed while its order was in flight, counted from the resume"]


def test_a_pause_the_settle_stores_is_logged_as_a_pause(runner, caplog) -> None:
    """GIVEN four failed runs WHEN Binance refuses the fifth order THEN the strategy is paused and the log
    says it was paused (a guard of the stored pause's log line, unchanged in substance)."""
    sid = refused_strategy(runner, failed_runs=4)

    with caplog.at_level(logging.INFO):
        runner.run_tick(minute_start())

    assert runner.stored(USER, sid).status == "paused"
    said = [record.getMessage() for record in caplog.records if "paus" in record.getMessage()]
    assert said == ["strategy paused: its runs or its keys keep failing"]


def test_a_leverage_above_the_symbols_maximum_pauses_at_once_naming_it(runner) -> None:
    """A live strategy at 100x on BNBUSDT (its bracket allows 75x; max_leverage 125 let it be stored)
    pauses on its first refused run (leverage_above_symbol_max, failed_runs untouched), its paused event
    naming the leverage, the symbol's maximum and what to change; nothing sent but the bracket read (before:
    five failed runs, five missed signals, then repeated_failures:order_rejected)."""
    connection = runner.connection(USER)
    update_settings(USER, connection, {"max_leverage": 125})
    sid = runner.strategy(USER, connection, symbol="BNBUSDT", size="0.1", leverage=100, **ALWAYS_LONG)

    tick = runner.run_tick()

    assert tick.failures == []
    assert runner.journal("POST", ORDER_PATH) == [] and runner.journal("POST", "/fapi/v1/leverage") == []
    run, = runner.runs(sid)
    assert run.status == "failed" and "above BNBUSDT's maximum of 75x" in run.error["message"], run.error
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason, stored.failed_runs) == (
        "paused", "leverage_above_symbol_max", 0)
    paused, = [e for e in list_events(sid, 20).events if e.kind == "paused"]
    assert paused.details["reason"] == "leverage_above_symbol_max"
    message = paused.details["message"]
    assert all(said in message for said in ("100x", "BNBUSDT", "75x", "leverage")), message


def test_a_leverage_binance_refuses_as_not_valid_pauses_at_once_naming_it(runner, monkeypatch) -> None:
    """GIVEN a live strategy at 100x on BNBUSDT whose bracket read lists 125x (a table that allows it: our
    check passes) WHEN Binance refuses the leverage itself, -4028 "Leverage 100 is not valid" (facts: above
    the symbol's maximum) THEN the strategy pauses on that first run (leverage_above_symbol_max, failed_runs
    untouched), its paused event naming the leverage and what to lower; nothing ordered (before: a failed run
    counted, five of them, five missed signals, then repeated_failures)."""
    real_rows = sim_brackets.bracket_rows

    def allowing_125x(symbol):
        rows = real_rows(symbol)
        for row in rows if isinstance(rows, list) else [rows]:
            for bracket in row["brackets"]:
                bracket["initialLeverage"] = 125
        return rows

    monkeypatch.setattr(sim_endpoints, "bracket_rows", allowing_125x)
    connection = runner.connection(USER)
    update_settings(USER, connection, {"max_leverage": 125})
    sid = runner.strategy(USER, connection, symbol="BNBUSDT", size="0.1", leverage=100, **ALWAYS_LONG)

    tick = runner.run_tick()

    assert tick.failures == [] and runner.journal("POST", ORDER_PATH) == []
    assert len(runner.journal("POST", "/fapi/v1/leverage")) == 1
    run, = runner.runs(sid)
    assert run.status == "failed" and run.error["category"] == "order_rejected", run.error
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason, stored.failed_runs) == (
        "paused", "leverage_above_symbol_max", 0)
    paused, = [e for e in list_events(sid, 20).events if e.kind == "paused"]
    message = paused.details["message"]
    assert all(said in message for said in ("100x", "BNBUSDT", "leverage", "resume")), message
    refused = patch(runner, sid, {"status": "active"})  # resumed at the leverage Binance refused
    assert refused["statusCode"] == 422 and response_json(refused)["error"]["field"] == "leverage", refused
    assert "below 100x" in response_json(refused)["error"]["message"]


def test_resuming_a_leverage_pause_without_lowering_it_is_refused_naming_leverage(runner) -> None:
    """GIVEN a live strategy paused at 100x on BNBUSDT (leverage_above_symbol_max: its bracket allows 75x)
    WHEN the user resumes it with the same leverage THEN 422 naming ``leverage`` and the 75x maximum, the
    strategy still paused (before: 200, then the next candle's run failed again, no order, and paused it
    again); WHEN resumed with leverage 75 THEN it runs and orders."""
    connection = runner.connection(USER)
    update_settings(USER, connection, {"max_leverage": 125})
    sid = runner.strategy(USER, connection, symbol="BNBUSDT", size="0.1", leverage=100, **ALWAYS_LONG)
    last = minute_start()
    runner.run_tick(last - MINUTE_MS)
    assert runner.stored(USER, sid).status_reason == "leverage_above_symbol_max"

    refused = patch(runner, sid, {"status": "active"})

    assert refused["statusCode"] == 422, refused["body"]
    error = response_json(refused)["error"]
    assert error["field"] == "leverage" and "75x" in error["message"], error
    assert runner.stored(USER, sid).status == "paused"
    resumed = patch(runner, sid, {"status": "active", "leverage": 75})
    assert resumed["statusCode"] == 200, resumed["body"]
    runner.active_before(USER, sid)  # resumed before the candle the next tick plays

    runner.run_tick(last)

    assert runner.runs(sid)[0].status == "ordered"
    assert len(runner.journal("POST", ORDER_PATH)) == 1
