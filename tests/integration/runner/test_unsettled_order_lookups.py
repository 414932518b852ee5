"""A strategy's order left unsettled (the worker died after Binance filled it), settled by a later turn that
may only look it up: Binance long past its retention, or the connection being deleted.

- Binance forgets every order 90 days after it was placed (facts §9, -2013 "Order does not exist."), a filled
  one too: the fill stays in the account's position. A strategy paused (or switched to paper) that long with
  its order pending must not settle that order as never placed: the order is UNKNOWN_PURGED, as the order
  route and the reconciler record one, and the strategy's position follows what Binance holds.
- A connection being deleted refuses every order (``connection_deleting``): a turn on the candle of its
  pending order still looks the order up and records what it did, and sends nothing.

The truth asserted is the simulator's own orders and position.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from klineo.binance import get_client
from klineo.runner import execution
from klineo.services import orders as order_core
from klineo.store.connections import mark_deleting
from klineo.store.orders import get_order_record
from klineo.store.strategies import update_settings

from tests.integration.runner.conftest import ORDER_PATH, crash_first_call

USER = "user-unsettled-lookups"
DAY_MS = 86_400_000
# Past Binance's longest retention (every order, filled ones too, is forgotten after 90 days).
FORGOTTEN_MS = 91 * DAY_MS


def _exchange_position(runner, symbol: str = "BTCUSDT") -> Decimal:
    """The simulator's one-way position on ``symbol`` (read without a request)."""
    state = runner.sim.state.futures.state_for(runner.sim.account("futures-full"), time.time() * 1000)
    return sum((p.amount for (name, _), p in state.positions.items() if name == symbol), Decimal(0))


def _filled_unsettled(runner, monkeypatch) -> tuple[str, str, str, dict]:
    """A live strategy whose order Binance filled while its worker died before the settle: (strategy id,
    connection id, the order's clientOrderId, the message again)."""
    connection = runner.connection(USER)
    sid = runner.strategy(USER, connection)
    event = runner.dispatched_event()
    crash_first_call(monkeypatch, execution, "settle_live_order")
    assert len(runner.work_event(event, remaining_ms=1)["batchItemFailures"]) == 1
    pending = runner.stored(USER, sid).pending
    assert pending is not None and abs(_exchange_position(runner)) == pending.quantity
    return sid, connection, pending.client_order_id, event


def _lost_before_binance(runner) -> tuple[str, str, str, dict]:
    """A live strategy whose order request died before reaching Binance, left pending: (strategy id,
    connection id, the order's clientOrderId, the message again)."""
    connection = runner.connection(USER)
    sid = runner.strategy(USER, connection)
    event = runner.dispatched_event()
    runner.sim.faults.add("drop_connection", method="POST", path=ORDER_PATH, count=1)
    assert len(runner.work_event(event, remaining_ms=1)["batchItemFailures"]) == 1
    return sid, connection, runner.stored(USER, sid).pending.client_order_id, event


@pytest.mark.parametrize("only_looked_up", ["candle_superseded", "switched_to_paper"])
def test_a_filled_order_binance_no_longer_knows_is_purged_not_settled_as_never_placed(
    runner, monkeypatch, only_looked_up,
) -> None:
    """GIVEN a strategy's filled order left pending and looked up again 91 days later (Binance answers
    -2013), its candle long past or the strategy switched to paper, WHEN its turn settles it THEN its record
    is UNKNOWN_PURGED, not REJECTED, the strategy's position is the fill Binance holds, nothing sent again."""
    sid, _, cid, event = _filled_unsettled(runner, monkeypatch)
    held = _exchange_position(runner)
    runner.sim.age_orders(FORGOTTEN_MS)
    if only_looked_up == "switched_to_paper":
        update_settings(USER, sid, runner.stored(USER, sid), changes={"mode": "paper"})
    else:
        runner.pinned["tick_ms"] += FORGOTTEN_MS  # its candle long superseded

    assert runner.work_event(event, later_ms=FORGOTTEN_MS)["batchItemFailures"] == []

    assert len(runner.journal("POST", ORDER_PATH)) == 1
    assert [r.code for r in runner.journal("GET", ORDER_PATH)][-1] == -2013
    stored = runner.stored(USER, sid)
    assert stored.pending is None
    assert stored.live_position == held == _exchange_position(runner)
    record = get_order_record(USER, cid)
    assert (record.status, record.error["category"]) == ("UNKNOWN_PURGED", "order_purged")
    assert (runner.runs(sid)[0].status, runner.runs(sid)[0].skip_reason) == ("skipped", "order_purged")


def test_a_filled_order_is_settled_on_its_candle_while_the_connection_is_being_deleted(
    runner, monkeypatch,
) -> None:
    """GIVEN a strategy's filled order left pending on its candle WHEN the connection's delete began and the
    message comes again THEN the order is looked up and recorded (run ordered, the position Binance's), not
    the candle skipped past it, and nothing is sent again."""
    sid, connection, cid, event = _filled_unsettled(runner, monkeypatch)
    mark_deleting(USER, connection)

    assert runner.work_event(event)["batchItemFailures"] == []

    assert len(runner.journal("POST", ORDER_PATH)) == 1
    run = runner.runs(sid)[0]
    assert (run.status, run.skip_reason) == ("ordered", None)
    assert run.order["client_order_id"] == cid
    stored = runner.stored(USER, sid)
    assert stored.pending is None and stored.live_position == _exchange_position(runner)
    assert get_order_record(USER, cid).status == "FILLED"


def test_an_order_lost_before_binance_is_never_sent_on_a_connection_being_deleted(runner) -> None:
    """GIVEN a strategy's order whose request died before reaching Binance WHEN the connection's delete began
    and the message comes again past recvWindow THEN nothing is sent: the order is settled as blocked (its
    run skipped naming connection_deleting, its record REJECTED), not left pending on the strategy."""
    sid, connection, cid, event = _lost_before_binance(runner)
    mark_deleting(USER, connection)
    window_ms = int(get_client("futures", "production").recv_window) + order_core.SETTLE_MARGIN_MS

    assert runner.work_event(event, later_ms=window_ms + 1_000)["batchItemFailures"] == []

    assert [r for r in runner.journal("POST", ORDER_PATH) if r.status == 200] == []
    run = runner.runs(sid)[0]
    assert (run.status, run.skip_reason) == ("skipped", "connection_deleting")
    assert runner.stored(USER, sid).pending is None
    assert get_order_record(USER, cid).status == "REJECTED"


def test_an_order_binance_does_not_know_within_its_retention_is_settled_as_never_placed(runner) -> None:
    """GIVEN a strategy's order whose request died before reaching Binance, looked up again 10 days later
    (past the 3 days Binance keeps an unfilled canceled order, within the 90 it keeps one that executed)
    WHEN its turn settles it THEN it is settled as never placed (REJECTED, run skipped order_not_placed), not
    UNKNOWN_PURGED: an order Binance does not know within 90 days never executed; nothing is sent again."""
    sid, _, cid, event = _lost_before_binance(runner)
    later_ms = 10 * DAY_MS
    runner.pinned["tick_ms"] += later_ms  # its candle long superseded: the turn only looks it up

    assert runner.work_event(event, later_ms=later_ms)["batchItemFailures"] == []

    assert [r for r in runner.journal("POST", ORDER_PATH) if r.status == 200] == []
    stored = runner.stored(USER, sid)
    assert stored.pending is None and stored.live_position == 0 == _exchange_position(runner)
    assert get_order_record(USER, cid).status == "REJECTED"
    assert (runner.runs(sid)[0].status, runner.runs(sid)[0].skip_reason) == ("skipped", "order_not_placed")
