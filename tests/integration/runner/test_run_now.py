"""POST /strategies/{id}/run: the latest closed candle now, exactly once together with the scheduled tick."""

from __future__ import annotations

import time

import pytest
from klineo.runner import on_demand
from klineo.runner.schedule import MINUTE_MS, client_order_id
from klineo.runner.worker import DEFAULT_TIMEOUT_MS, handle_batch
from klineo.services.protective_siblings import protective_client_algo_id
from klineo.store import strategies as strategy_store
from klineo.store.orders import get_order_record

from local.scheduler import sqs_event
from tests.helpers import load_event, response_json, with_user
from tests.integration.api.conftest import at_path
from tests.integration.runner.conftest import ORDER_PATH, ShortContext
from tests.integration.runner.test_exchange_truth import ALWAYS_LONG

USER = "user-run-now-0000-4000-8000-00000000000a"
OTHER = "user-run-now-0000-4000-8000-00000000000b"


@pytest.fixture(autouse=True)
def one_minute(monkeypatch) -> int:
    """The on-demand clock starts at second 1 of the current minute and runs on from there, so every call
    of a test (and its tick, dispatched at that second) targets the same candle whenever the test starts."""
    started = time.time()
    tick_ms = int(started * 1000) // MINUTE_MS * MINUTE_MS + 1000
    monkeypatch.setattr(on_demand, "CLOCK", lambda: tick_ms / 1000 + (time.time() - started))
    return tick_ms


def _run_now(runner, strategy_id: str, user: str = USER) -> dict:
    event = at_path(load_event("strategy_run"), f"/strategies/{strategy_id}/run", id=strategy_id)
    return runner.invoke("strategy_run", with_user(event, user))


def test_run_now_then_the_scheduled_tick_for_the_same_candle_place_one_order(runner) -> None:
    """GIVEN a live strategy WHEN POST /run, the tick of that candle, then POST /run again THEN one order,
    its clientOrderId from (strategy, candle), and the second call answers with the first run."""
    sid = runner.strategy(USER, runner.connection(USER))
    first = _run_now(runner, sid)
    assert first["statusCode"] == 200, first["body"]
    body = response_json(first)
    close = body["close_time"]
    assert body["outcome"] == "ordered"
    assert body["run"]["order"]["client_order_id"] == client_order_id(sid, close)

    tick = runner.run_tick(close + 1)  # the scheduled tick for the same candle
    again = response_json(_run_now(runner, sid))

    assert tick.failures == [] and len(runner.journal("POST", ORDER_PATH)) == 1
    assert again == body
    assert [r.close_time for r in runner.runs(sid)] == [close]


def test_the_scheduled_tick_first_then_run_now_answers_with_the_ticks_run(runner, one_minute) -> None:
    """GIVEN the tick already ran candle C WHEN POST /run in the same minute THEN C's run, no second order."""
    sid = runner.strategy(USER, runner.connection(USER))
    runner.run_tick(one_minute)
    close = runner.tick_close
    response = _run_now(runner, sid)
    body = response_json(response)
    assert response["statusCode"] == 200 and body["close_time"] == close
    assert body["run"]["order"]["client_order_id"] == client_order_id(sid, close)
    assert len(runner.journal("POST", ORDER_PATH)) == 1


def test_run_now_on_a_paused_strategy_is_409_and_on_anothers_is_404(runner) -> None:
    """GIVEN a paused strategy WHEN POST /run THEN 409 naming status; another user's strategy is 404."""
    sid = runner.strategy(USER, runner.connection(USER), mode="paper")
    strategy_store.update_settings(USER, sid, runner.stored(USER, sid), changes={"status": "paused"})
    paused = _run_now(runner, sid)
    assert paused["statusCode"] == 409 and response_json(paused)["error"]["field"] == "status"
    assert _run_now(runner, sid, OTHER)["statusCode"] == 404
    assert runner.runs(sid) == []


def test_run_nows_lease_lasts_its_invocation_and_a_tick_within_it_leaves_the_order(runner, template) -> None:
    """GIVEN run-now's order answer lost (left pending) in an invocation with its function's Timeout WHEN the
    tick's turn on that candle comes 0.5 s before that invocation may end THEN the lease holds: untouched."""
    timeout_ms = template["Resources"]["StrategyRunFunction"]["Properties"]["Timeout"] * 1000
    sid = runner.strategy(USER, runner.connection(USER))
    runner.sim.faults.add("drop_connection", method="POST", path=ORDER_PATH, count=1)
    event = at_path(load_event("strategy_run"), f"/strategies/{sid}/run", id=sid)
    started_ms = time.time() * 1000
    with runner.iam.acting_as("strategy_run"):
        from functions.strategy_run import app

        body = response_json(app.lambda_handler(with_user(event, USER), ShortContext(
            function_name="strategy_run", remaining_ms=timeout_ms)))
    held = runner.stored(USER, sid).pending
    assert body["outcome"] == "pending" and held is not None
    # Until its invocation ends the holder may still send the order (a turn that ran late, a send's retry).
    assert held.lease_until_ms >= started_ms + timeout_ms

    runner.tick(body["close_time"] + 1)  # the scheduled tick for the same candle
    messages = runner.receive()
    order_calls = len(runner.journal(path=ORDER_PATH))  # its send and lookups
    with runner.iam.acting_as("strategy_worker"):
        handle_batch(sqs_event(messages, runner.queue_arn, runner.aws.region),
                     ShortContext(function_name="strategy_worker", remaining_ms=DEFAULT_TIMEOUT_MS),
                     clock=lambda: (started_ms + timeout_ms - 500) / 1000)

    assert runner.stored(USER, sid).pending == held
    assert len(runner.journal(path=ORDER_PATH)) == order_calls  # neither looked up nor sent again


def test_run_nows_stops_say_they_are_signed_by_its_invocations_end(runner, template) -> None:
    """GIVEN a live strategy with a stop-loss WHEN POST /run enters (a MARKET long) and arms its stop THEN the
    stop's record says its POST was signed by the invocation's end (``send_by_ms``, run-now's call_deadline):
    a lost one is sent again recvWindow + margin after that, not the longest Timeout after its stamp."""
    timeout_ms = template["Resources"]["StrategyRunFunction"]["Properties"]["Timeout"] * 1000
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          stop_loss_pct="2")
    event = at_path(load_event("strategy_run"), f"/strategies/{sid}/run", id=sid)
    started_ms = time.time() * 1000
    with runner.iam.acting_as("strategy_run"):
        from functions.strategy_run import app

        body = response_json(app.lambda_handler(with_user(event, USER), ShortContext(
            function_name="strategy_run", remaining_ms=timeout_ms)))
    ended_ms = time.time() * 1000

    entry = body["run"]["order"]["client_order_id"]
    stop = get_order_record(USER, protective_client_algo_id(entry, "stop_loss"))
    assert stop is not None and stop.status == "NEW", body
    assert started_ms + timeout_ms - 1 <= stop.send_by_ms <= ended_ms + timeout_ms
