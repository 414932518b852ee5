"""A live order whose message was dead-lettered is settled, and its stops placed, within minutes.

A 1h strategy's turn claims and sends its order; Binance fills it but every lookup fails (Binance down, a
rate limit), so the message fails its three receives and goes to the dead-letter queue. The dispatcher
sends the strategy again only at its next candle, up to an hour away (a day on 1d). Once Binance answers
again, the order reconciler (every 5 minutes) settles the order's record; it then queues the strategy's
settle turn for the order's candle, so the fill reaches the strategy's position and the entry gets its
stop-loss / take-profit within minutes. Real dispatcher, worker and reconciler on moto and the simulator.
"""

from __future__ import annotations

import time
from decimal import Decimal

from klineo.services.protective_siblings import protective_client_algo_id
from klineo.store.orders import get_order_record

from local.scheduler import sqs_event
from tests.integration.runner.conftest import ORDER_PATH, algo_orders
from tests.integration.runner.test_exchange_truth import ALWAYS_LONG, SL_TP

USER = "user-runner-dead-letter"
HOUR_MS = 3_600_000
MINUTE_MS = 60_000


def _dead_lettered_order(runner, sid: str, hour_ms: int) -> str:
    """The strategy's turn on the 1h candle closing at ``hour_ms - 1`` sends its order (Binance fills it,
    its answer is lost) and fails three receives on lookups that keep failing; the clientOrderId."""
    runner.sim.faults.add("http_503_unknown", method="POST", path=ORDER_PATH, count=1)
    runner.sim.faults.add("http_503_unavailable", method="GET", path=ORDER_PATH, count=10_000)
    runner.tick(hour_ms + 1_000)
    messages = runner.receive()
    assert len(messages) == 1
    event = sqs_event(messages, runner.queue_arn, runner.aws.region)
    for _ in range(3):  # maxReceiveCount: each lease ends at once, as after a worker timed out
        assert len(runner.work_event(event, remaining_ms=1)["batchItemFailures"]) == 1
    runner.sqs.delete_message(QueueUrl=runner.queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
    pending = runner.stored(USER, sid).pending
    assert pending is not None and pending.close_time == hour_ms - 1
    assert len([r for r in runner.journal("POST", ORDER_PATH) if r.status != 200]) == 1
    return pending.client_order_id


def test_a_dead_lettered_fill_of_a_1h_strategy_is_settled_and_protected_within_minutes(runner, reconcile):
    """GIVEN a 1h strategy's filled order whose message was dead-lettered on failing lookups WHEN Binance
    answers again and the next minutes' reconciler run and dispatcher ticks go by (no 1h candle due) THEN
    the fill is on the strategy's position, its pending order cleared, and its stops armed on Binance."""
    sid = runner.strategy(USER, runner.connection(USER), interval="1h", type="rsi_threshold",
                          parameters=ALWAYS_LONG, direction="long", size="0.004",
                          stop_loss_pct="2", take_profit_pct="3")
    hour_ms = int(time.time() * 1000) // HOUR_MS * HOUR_MS - HOUR_MS  # a past hour: its ticks are not clamped
    entry = _dead_lettered_order(runner, sid, hour_ms)

    runner.sim.faults.clear()  # Binance answers again
    summary = reconcile()
    assert get_order_record(USER, entry).status == "FILLED"  # the record is settled: not yet the strategy
    assert summary.get("settle_turns_queued") == 1
    for minute in range(20, 25):  # the next few dispatcher ticks, no 1h candle due among them
        runner.run_tick(hour_ms + minute * MINUTE_MS + 1_000)

    stored = runner.stored(USER, sid)
    assert stored.pending is None and stored.live_position == Decimal("0.004")
    assert stored.protective and stored.protective["armed"] is True
    algos = algo_orders(runner, "futures-full")
    assert [algos[protective_client_algo_id(entry, role)].status for role in SL_TP] == ["NEW", "NEW"]
    run = runner.runs(sid)[0]
    assert (run.close_time, run.status, run.order["client_order_id"]) == (hour_ms - 1, "ordered", entry)
    assert len(runner.journal("POST", ORDER_PATH)) == 1  # sent once, never again


def test_no_settle_turn_is_queued_while_a_turn_still_holds_the_order(runner, reconcile):
    """GIVEN the same dead-lettered fill WHEN the reconciler settles its record while the strategy's order
    lease has not run out (a turn may be settling it now) THEN no turn is queued and the strategy is
    left to that turn."""
    sid = runner.strategy(USER, runner.connection(USER), interval="1h", type="rsi_threshold",
                          parameters=ALWAYS_LONG, direction="long", size="0.004")
    hour_ms = int(time.time() * 1000) // HOUR_MS * HOUR_MS - HOUR_MS
    entry = _dead_lettered_order(runner, sid, hour_ms)
    runner.sim.faults.clear()

    summary = reconcile(now_ms=runner.stored(USER, sid).pending.lease_until_ms - 1)

    assert get_order_record(USER, entry).status == "FILLED"
    assert "settle_turns_queued" not in summary and runner.receive() == []
    assert runner.stored(USER, sid).pending.client_order_id == entry
