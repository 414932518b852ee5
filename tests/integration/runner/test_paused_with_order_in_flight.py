"""A strategy paused while its live order is in flight still gets that order settled and its entry protected.

A live turn claims its order and sends it; Binance fills it, but the answer is lost and the lookups keep
failing, so the order stays ``pending`` on the strategy. The user pauses the strategy meanwhile
(PATCH /strategies/{id} status paused, which nothing refuses). A paused strategy has no turn to trade, but
the order it already sent is Binance's fact: its fill must reach the strategy's position and the entry must
get its stop-loss / take-profit, whether the message is redelivered or the reconciler finds the order
after a dead letter. Nothing is ever sent again for it, and a paused strategy places no new order.
Real dispatcher, worker, reconciler and PATCH route on moto and the simulator.
"""

from __future__ import annotations

import time
from decimal import Decimal

from klineo.binance import get_client
from klineo.services import orders as order_core
from klineo.services.protective_siblings import protective_client_algo_id
from klineo.store.orders import get_order_record

from local.scheduler import sqs_event
from tests.helpers import response_json
from tests.integration.runner.conftest import ORDER_PATH, algo_orders
from tests.integration.runner.test_exchange_truth import ALWAYS_LONG, SL_TP
from tests.integration.runner.test_strategies_api import Api

USER = "user-paused-in-flight"
HOUR_MS = 3_600_000
MINUTE_MS = 60_000


def _in_flight(runner, sid: str, tick_ms: int, *, receives: int) -> tuple[dict, str]:
    """The strategy's turn at ``tick_ms`` sends its order (Binance fills it, the answer is lost) and fails
    ``receives`` receives on lookups that keep failing; the SQS event and the order's clientOrderId."""
    runner.sim.faults.add("http_503_unknown", method="POST", path=ORDER_PATH, count=1)
    runner.sim.faults.add("http_503_unavailable", method="GET", path=ORDER_PATH, count=10_000)
    runner.tick(tick_ms)
    messages = runner.receive()
    assert len(messages) == 1
    event = sqs_event(messages, runner.queue_arn, runner.aws.region)
    for _ in range(receives):  # each lease ends at once, as after a worker timed out
        assert len(runner.work_event(event, remaining_ms=1)["batchItemFailures"]) == 1
    pending = runner.stored(USER, sid).pending
    assert pending is not None
    return event, pending.client_order_id


def _paused_by_user(runner, sid: str) -> None:
    """PATCH /strategies/{id} {"status": "paused"} answers 200 paused."""
    response = Api(runner.invoke).update(USER, sid, {"status": "paused"})
    assert response["statusCode"] == 200, response["body"]
    assert response_json(response)["status"] == "paused"


def _settled_and_protected(runner, sid: str, entry: str) -> None:
    """The fill is on the paused strategy's position, its pending order cleared, its stops armed on
    Binance, the order sent once and the strategy still paused."""
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason) == ("paused", "paused by user")
    assert stored.pending is None and stored.live_position == Decimal("0.004")
    assert stored.protective and stored.protective["armed"] is True
    algos = algo_orders(runner, "futures-full")
    assert [algos[protective_client_algo_id(entry, role)].status for role in SL_TP] == ["NEW", "NEW"]
    assert runner.runs(sid)[0].order["client_order_id"] == entry
    assert len(runner.journal("POST", ORDER_PATH)) == 1  # sent once, never again, nothing new


def test_a_redelivered_message_settles_the_fill_of_a_strategy_paused_meanwhile(runner) -> None:
    """GIVEN a live strategy with SL/TP whose filled order's answer was lost WHEN the user pauses it and the
    message comes again with Binance answering THEN the fill is on its position and the entry's stops are
    armed, nothing sent again (before: the turn ended "inactive or deleted", the position unprotected on
    Binance and absent from the strategy until a resume)."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long", size="0.004", stop_loss_pct="2", take_profit_pct="3")
    event, entry = _in_flight(runner, sid, int(time.time() * 1000), receives=1)
    _paused_by_user(runner, sid)

    runner.sim.faults.clear()  # Binance answers again
    assert runner.work_event(event, remaining_ms=60_000)["batchItemFailures"] == []

    _settled_and_protected(runner, sid, entry)


def test_a_paused_strategys_fill_is_settled_and_protected_past_a_kill_switch(runner) -> None:
    """GIVEN the same lost answer of a filled entry WHEN the user pauses the strategy and turns the kill
    switch on before the message comes again THEN the fill is still settled and its stops (which only reduce)
    armed, and nothing else is sent."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long", size="0.004", stop_loss_pct="2", take_profit_pct="3")
    event, entry = _in_flight(runner, sid, int(time.time() * 1000), receives=1)
    _paused_by_user(runner, sid)
    runner.kill_switch(USER)

    runner.sim.faults.clear()
    assert runner.work_event(event, remaining_ms=60_000)["batchItemFailures"] == []

    _settled_and_protected(runner, sid, entry)


def test_a_paused_strategys_order_lost_before_binance_is_settled_as_never_placed_not_sent(runner) -> None:
    """GIVEN a live strategy whose order request died before reaching Binance WHEN the user pauses it and the
    message comes again past recvWindow, on the order's own candle THEN nothing is sent: the order is settled
    as never placed (record REJECTED, run skipped order_not_placed), the strategy still paused and flat
    (before: left pending, its record unsettled, until a resume)."""
    sid = runner.strategy(USER, runner.connection(USER))
    event = runner.dispatched_event()
    runner.sim.faults.add("drop_connection", method="POST", path=ORDER_PATH, count=1)
    assert len(runner.work_event(event, remaining_ms=1)["batchItemFailures"]) == 1
    cid = runner.stored(USER, sid).pending.client_order_id
    _paused_by_user(runner, sid)
    window_ms = int(get_client("futures", "production").recv_window) + order_core.SETTLE_MARGIN_MS

    assert runner.work_event(event, later_ms=window_ms + 1_000)["batchItemFailures"] == []

    assert [r for r in runner.journal("POST", ORDER_PATH) if r.status == 200] == []
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.pending, stored.live_position) == ("paused", None, 0)
    assert get_order_record(USER, cid).status == "REJECTED"
    assert (runner.runs(sid)[0].status, runner.runs(sid)[0].skip_reason) == ("skipped", "order_not_placed")


def test_the_reconciler_settles_a_dead_lettered_fill_of_a_strategy_paused_meanwhile(runner, reconcile):
    """GIVEN a 1h strategy's filled order whose message was dead-lettered WHEN the user pauses it, Binance
    answers again and the reconciler and the next minutes' ticks run THEN the fill is on its position and
    its stops are armed (before: no settle turn was queued for a paused strategy)."""
    sid = runner.strategy(USER, runner.connection(USER), interval="1h", type="rsi_threshold",
                          parameters=ALWAYS_LONG, direction="long", size="0.004",
                          stop_loss_pct="2", take_profit_pct="3")
    hour_ms = int(time.time() * 1000) // HOUR_MS * HOUR_MS - HOUR_MS  # a past hour: its ticks are not clamped
    _, entry = _in_flight(runner, sid, hour_ms + 1_000, receives=3)
    _paused_by_user(runner, sid)

    runner.sim.faults.clear()
    summary = reconcile()
    assert get_order_record(USER, entry).status == "FILLED"
    assert summary.get("settle_turns_queued") == 1
    for minute in range(20, 25):
        runner.run_tick(hour_ms + minute * MINUTE_MS + 1_000)

    _settled_and_protected(runner, sid, entry)
