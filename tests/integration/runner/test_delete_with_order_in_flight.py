"""A strategy is not deleted while its live order is in flight: the order is settled first, its stops placed.

A live turn claims its order and sends it; Binance fills it, but the answer is lost and the lookups keep
failing, so the order stays ``pending`` on the strategy after its lease ran out. Deleting the strategy then
would leave Binance's fill off every book and the entry without its stop-loss / take-profit for good (the
redelivered message and the reconciler find no strategy to settle it). DELETE /strategies/{id} settles the
order first (looked up, never sent again), then deletes; when it cannot be settled now, it answers 409
naming the order, before its invocation ends however slowly Binance answers. A strategy whose connection is
gone or being deleted (whose wind-down handles its orders) stays deletable. Real dispatcher, worker and DELETE
route on moto and the simulator.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from klineo.services.protective_siblings import protective_client_algo_id
from klineo.store.connections import delete_connection, disable_connection, mark_deleting

from tests.helpers import load_event, response_json, with_user
from tests.integration.api.conftest import at_path
from tests.integration.runner.conftest import ORDER_PATH, ShortContext, algo_orders
from tests.integration.runner.test_exchange_truth import ALWAYS_LONG, SL_TP
from tests.integration.runner.test_paused_with_order_in_flight import USER, _in_flight
from tests.integration.runner.test_strategies_api import Api


def _live_with_stops(runner) -> str:
    """A live long strategy with SL/TP that enters on its first turn; its id."""
    return runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                           direction="long", size="0.004", stop_loss_pct="2", take_profit_pct="3")


def _delete_with(runner, sid: str, remaining_ms: int) -> tuple[dict[str, Any], float]:
    """DELETE /strategies/{id} through its handler in an invocation with ``remaining_ms`` left (Lambda stops
    it then): its answer and how long it took (s)."""
    from functions.strategy_delete import app

    event = with_user(at_path(load_event("strategy_delete"), f"/strategies/{sid}", id=sid), USER)
    context = ShortContext(function_name="strategy_delete", remaining_ms=remaining_ms)
    started = time.monotonic()
    with runner.iam.acting_as("strategy_delete"):
        answer = app.lambda_handler(event, context)
    return answer, time.monotonic() - started


def test_a_delete_settles_the_filled_order_in_flight_first_and_places_its_stops(runner) -> None:
    """GIVEN a live strategy with SL/TP whose filled order's answer was lost, its lease run out WHEN it is
    deleted with Binance answering again THEN 204 once the order is settled: its run records the fill, the
    entry's stop-loss / take-profit are on Binance and nothing is sent again (before: 204 with the fill on
    no books and the entry never protected)."""
    sid = _live_with_stops(runner)
    _, entry = _in_flight(runner, sid, int(time.time() * 1000), receives=1)
    runner.sim.faults.clear()  # Binance answers again

    deleted = Api(runner.invoke).delete(USER, sid)

    algos = algo_orders(runner, "futures-full")
    assert [algos[protective_client_algo_id(entry, role)].status for role in SL_TP] == ["NEW", "NEW"]
    assert deleted["statusCode"] == 204, deleted["body"]
    assert runner.stored(USER, sid) is None
    assert runner.runs(sid)[0].order["client_order_id"] == entry
    assert len(runner.journal("POST", ORDER_PATH)) == 1


def test_a_delete_whose_order_in_flight_cannot_be_settled_now_is_a_409_naming_it(runner) -> None:
    """GIVEN a live strategy's filled order in flight, its lease run out, Binance still failing its lookups
    WHEN it is deleted THEN 409 naming the order and saying to send the DELETE again, the strategy kept
    pending; once the message came again with Binance answering, the fill is on its position with its stops
    and a repeated DELETE deletes it (never a 500, never deleted unsettled)."""
    sid = _live_with_stops(runner)
    event, entry = _in_flight(runner, sid, int(time.time() * 1000), receives=1)
    api = Api(runner.invoke)

    refused = api.delete(USER, sid)

    assert refused["statusCode"] == 409, refused["body"]
    error = response_json(refused)["error"]
    assert entry in error["message"] and "DELETE again" in error["message"]
    assert runner.stored(USER, sid).pending.client_order_id == entry
    runner.sim.faults.clear()
    assert runner.work_event(event, remaining_ms=60_000)["batchItemFailures"] == []
    stored = runner.stored(USER, sid)
    assert stored.pending is None and stored.live_position == Decimal("0.004")
    assert stored.protective and stored.protective["armed"] is True
    assert api.delete(USER, sid)["statusCode"] == 204


def test_a_delete_whose_connection_is_disabled_is_a_409_naming_its_order_in_flight(runner) -> None:
    """GIVEN a live strategy's filled order in flight, its lease run out, Binance answering again WHEN its
    connection is disabled (its keys cannot look the order up) and the strategy is deleted THEN 409 naming
    the order, the strategy kept with it pending, nothing placed on Binance."""
    sid = _live_with_stops(runner)
    _, entry = _in_flight(runner, sid, int(time.time() * 1000), receives=1)
    runner.sim.faults.clear()
    disable_connection(USER, runner.stored(USER, sid).connection_id, "connection_disabled:permission")

    refused = Api(runner.invoke).delete(USER, sid)

    assert refused["statusCode"] == 409, refused["body"]
    assert entry in response_json(refused)["error"]["message"]
    assert runner.stored(USER, sid).pending.client_order_id == entry
    assert algo_orders(runner, "futures-full") == {}


@pytest.mark.parametrize("change", [mark_deleting, delete_connection], ids=["deleting_since", "deleted"])
def test_a_strategy_whose_connection_is_going_away_is_deleted_with_its_order_in_flight(
        runner, change: Any) -> None:
    """GIVEN a live strategy's order in flight, its lease run out WHEN its connection is being deleted (its
    wind-down handles the connection's orders) or gone, and the strategy is deleted THEN 204, it is gone."""
    sid = _live_with_stops(runner)
    _in_flight(runner, sid, int(time.time() * 1000), receives=1)
    change(USER, runner.stored(USER, sid).connection_id)

    assert Api(runner.invoke).delete(USER, sid)["statusCode"] == 204
    assert runner.stored(USER, sid) is None


def test_a_delete_whose_settle_binance_answers_too_slowly_is_a_409_before_its_invocation_ends(runner) -> None:
    """GIVEN a live strategy's filled order in flight, its lease run out, Binance answering slower than the
    delete's invocation has left WHEN it is deleted with 4 s left THEN 409 naming the order with at least 1 s
    to spare before Lambda stops the invocation, the strategy kept pending (before: its settle's lookup ran to
    the invocation's very end, so the caller got API Gateway's error instead of an answer)."""
    sid = _live_with_stops(runner)
    _, entry = _in_flight(runner, sid, int(time.time() * 1000), receives=1)
    runner.sim.faults.clear()
    runner.sim.configure(latency_ms=6_000)  # every Binance answer comes after the invocation's end

    refused, took = _delete_with(runner, sid, remaining_ms=4_000)

    runner.sim.configure(latency_ms=0)
    assert took < 3.0, f"answered {took:.2f} s into an invocation of 4 s"
    assert refused["statusCode"] == 409, refused["body"]
    assert entry in response_json(refused)["error"]["message"]
    assert runner.stored(USER, sid).pending.client_order_id == entry



def test_a_delete_whose_settle_binance_refuses_the_key_is_a_409_saying_so_the_strategy_unchanged(
        runner) -> None:
    """GIVEN a live strategy's filled order in flight, its lease run out, Binance refusing the connection's
    key on the order's lookup (401 -2015) WHEN it is deleted THEN 409 naming the order and saying Binance
    refused the key, the strategy kept as it was: active, its order pending (before: the refused delete paused
    it for a key failure and answered that Binance was not answering)."""
    sid = _live_with_stops(runner)
    _, entry = _in_flight(runner, sid, int(time.time() * 1000), receives=1)
    runner.sim.faults.clear()
    runner.sim.faults.add("http_401_invalid_key", method="GET", path=ORDER_PATH, count=10)

    refused = Api(runner.invoke).delete(USER, sid)

    assert refused["statusCode"] == 409, refused["body"]
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason) == ("active", None)
    assert stored.pending.client_order_id == entry
    message = response_json(refused)["error"]["message"]
    assert entry in message and "refused the connection's API key" in message, message
