"""A strategy is not deleted while its live order is in flight: the order is settled first, its stops placed.

A live turn claims its order and sends it; Binance fills it, but the answer is lost and the lookups keep
failing, so the order stays ``pending`` on the strategy after its lease ran out. Deleting the strategy then
would leave Binance's fill off every book and the entry without its stop-loss / take-profit for good (the
redelivered message and the reconciler find no strategy to settle it). DELETE /strategies/{id} answers 409
naming the order until the runner settled it; a strategy whose connection is gone or being deleted (whose
wind-down handles its orders) stays deletable. Real dispatcher, worker and DELETE route on moto and the
simulator.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from klineo.services.protective_siblings import protective_client_algo_id
from klineo.store.connections import delete_connection, mark_deleting

from tests.helpers import response_json
from tests.integration.runner.conftest import algo_orders
from tests.integration.runner.test_exchange_truth import ALWAYS_LONG, SL_TP
from tests.integration.runner.test_paused_with_order_in_flight import USER, _in_flight
from tests.integration.runner.test_strategies_api import Api


def _live_with_stops(runner) -> str:
    """A live long strategy with SL/TP that enters on its first turn; its id."""
    return runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                           direction="long", size="0.004", stop_loss_pct="2", take_profit_pct="3")


def test_a_delete_of_a_strategy_with_a_filled_order_in_flight_waits_for_its_stops(runner) -> None:
    """GIVEN a live strategy with SL/TP whose filled order's answer was lost, its lease run out WHEN it is
    deleted while the lookups fail, then the message comes again with Binance answering THEN the DELETE is
    a 409 naming the order, the fill is on the strategy's position with the entry's stops on Binance, and a
    repeated DELETE deletes it (before: 204, the fill on no books and the entry never protected)."""
    sid = _live_with_stops(runner)
    event, entry = _in_flight(runner, sid, int(time.time() * 1000), receives=1)
    api = Api(runner.invoke)

    refused = api.delete(USER, sid)
    runner.sim.faults.clear()  # Binance answers again
    assert runner.work_event(event, remaining_ms=60_000)["batchItemFailures"] == []

    algos = algo_orders(runner, "futures-full")
    assert [protective_client_algo_id(entry, role) in algos for role in SL_TP] == [True, True]
    assert refused["statusCode"] == 409, refused["body"]
    error = response_json(refused)["error"]
    assert entry in error["message"] and "again" in error["message"]
    stored = runner.stored(USER, sid)
    assert stored.pending is None and stored.live_position == Decimal("0.004")
    assert api.delete(USER, sid)["statusCode"] == 204


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
