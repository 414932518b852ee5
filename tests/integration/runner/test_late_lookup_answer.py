"""A lost attempt looked up again: "does not exist" is as old as the lookup's request, not its answer.

The first attempt's order request is still on its way to Binance (held by the simulator, executed once it
arrives: within recvWindow of its timestamp, as Binance takes it) when the next attempt, past the first's
lease, looks it up by clientOrderId. Binance answers -2013 at once, but the answer reaches the runner late.
Counted from the late answer, recvWindow and the settle margin have passed since the first attempt; counted
from the lookup's request, they have not, and the first attempt's order can still land (and does): the
order must not be sent again. The truth asserted is the simulator's own orders and position.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

from klineo.binance.client import clear_client_cache
from klineo.runner.schedule import client_order_id
from klineo.services import orders as order_core

from tests.helpers import wait_until
from tests.integration.runner.conftest import ORDER_PATH

USER = "user-late-lookup"
# The runner's recvWindow here (BINANCE_RECV_WINDOW_MS) and the settle margin: a short window keeps the
# test short; the sequence is the same at the default 10 s and the margin's 5 s (an answer > 4 s late).
RECV_WINDOW_MS = 3_000
MARGIN_MS = 1_000
# The first attempt's request reaches the matching engine this late (inside its recvWindow: executed).
REQUEST_IN_FLIGHT_MS = 2_500
# The lookup's answer (computed at once) reaches the runner this late: past recvWindow + margin.
ANSWER_LATE_MS = 4_500


def _exchange_orders(runner, cid: str) -> list:
    """The simulator's orders of the demo account under clientOrderId ``cid`` (read without a request)."""
    state = runner.sim.state.futures.state_for(runner.sim.account("futures-full"), time.time() * 1000)
    return [order for order in state.orders.values() if order.client_order_id == cid]


def _exchange_position(runner, symbol: str = "BTCUSDT") -> Decimal:
    """The simulator's one-way position on ``symbol``."""
    state = runner.sim.state.futures.state_for(runner.sim.account("futures-full"), time.time() * 1000)
    return sum((p.amount for (name, _), p in state.positions.items() if name == symbol), Decimal(0))


def test_a_late_does_not_exist_answer_never_sends_a_lost_attempt_again(runner, monkeypatch) -> None:
    """GIVEN a first attempt's request still in flight when the next attempt looks it up WHEN the lookup's
    -2013 arrives past recvWindow + margin THEN nothing is sent again: one order, the position its fill."""
    monkeypatch.setenv("BINANCE_RECV_WINDOW_MS", str(RECV_WINDOW_MS))
    monkeypatch.setattr(order_core, "SETTLE_MARGIN_MS", MARGIN_MS)
    clear_client_cache()
    sid = runner.strategy(USER, runner.connection(USER))
    event = runner.dispatched_event()
    runner.sim.faults.add("delay_before", method="POST", path=ORDER_PATH, count=1,
                          delay_ms=REQUEST_IN_FLIGHT_MS)
    runner.sim.faults.add("delay_after", method="GET", path=ORDER_PATH, count=1, delay_ms=ANSWER_LATE_MS)
    # The first attempt: its lease ends at once (its invocation timed out as its request left).
    first = threading.Thread(target=runner.work_event, args=(event,), kwargs={"remaining_ms": 1})
    first.start()
    assert wait_until(lambda: runner.stored(USER, sid).pending is not None)

    runner.work_event(event)  # the message again: the lease ran out, the order is looked up
    first.join(timeout=30)

    cid = client_order_id(sid, runner.tick_close)
    placed = _exchange_orders(runner, cid)
    assert len(placed) == 1, f"Binance holds {len(placed)} orders under {cid}"
    stored = runner.stored(USER, sid)
    assert stored.pending is None and abs(stored.live_position) == Decimal("0.002")
    assert stored.live_position == _exchange_position(runner)
    assert runner.runs(sid)[0].status == "ordered"
