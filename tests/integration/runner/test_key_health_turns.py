"""A strategy turn's signed read clears the key refusals a read disproves, never a trading one, on the real
worker against moto and the simulator: a hold whose position read Binance answered writes the connection's
count only when its item holds one to clear, and a key that reads but cannot trade is still disabled on its
third refused order whatever holds read between (klineo.services.key_health, klineo.runner.positions)."""

from __future__ import annotations

from collections import Counter

from klineo.store.connections import add_key_failure, get_connection

from tests.integration.futures.helpers import ORDER_PATH, new_key, order_body, order_event
from tests.integration.runner.test_protective_reprice import USER, _guarded_long, _ticks
from tests.integration.runner.test_runner_writes import _Writes


def _held_once(runner, tick: int, writes: _Writes) -> Counter:
    """A hold's turn of the guarded long on ``tick`` (its position read from Binance): its write requests."""
    reads = len(runner.journal("GET", "/fapi/v3/positionRisk"))
    writes.clear()
    runner.run_tick(tick)
    assert len(runner.journal("GET", "/fapi/v3/positionRisk")) == reads + 1
    return writes.counts


def test_a_hold_whose_position_read_works_clears_a_count_a_read_disproves_and_writes_nothing_more_after(
    runner
) -> None:
    """GIVEN a live long with a stop-loss and two key failures counted that a read disproves (a signature or
    IP refusal) WHEN a hold turn reads its position from Binance THEN the count is 0, in one write of the
    connection besides the run's put, and WHEN the next hold reads it again THEN the run's put is its only
    write (before: holds cleared nothing)."""
    first, second, third = _ticks(runner, 3)
    sid, _entry, _fill = _guarded_long(runner, first, stop_loss_pct="2")
    connection_id = runner.stored(USER, sid).connection_id
    add_key_failure(USER, connection_id)
    add_key_failure(USER, connection_id)
    writes = _Writes()

    cleared = _held_once(runner, second, writes)
    count = get_connection(USER, connection_id, consistent=True).consecutive_failures
    quiet = _held_once(runner, third, writes)

    assert [r.status for r in runner.runs(sid)][:2] == ["no_change", "no_change"]
    assert (count, cleared, quiet) == (0, Counter({"PutItem": 1, "UpdateItem": 1}), Counter({"PutItem": 1}))


def test_a_key_that_reads_but_cannot_trade_is_disabled_on_its_third_refused_order_whatever_holds_read(
    runner
) -> None:
    """GIVEN a live long with a stop-loss and a key Binance refuses every order for (401 -2015 on POST
    /fapi/v1/order) but answers reads WHEN two orders are refused, a hold turn reads the position (answered),
    and a third order is refused THEN the connection is disabled on the third and the strategy paused: a read
    never clears what only a trade disproves."""
    first, second = _ticks(runner, 2)
    sid, _entry, _fill = _guarded_long(runner, first, stop_loss_pct="2")
    connection_id = runner.stored(USER, sid).connection_id
    runner.sim.faults.add("http_401_invalid_key", count=50, method="POST", path=ORDER_PATH)

    def refused() -> int:
        order = order_event(order_body(connection_id), user=USER, key=new_key())
        return runner.invoke("futures_order", order)["statusCode"]

    answers = [refused(), refused()]
    runner.run_tick(second)
    held = get_connection(USER, connection_id, consistent=True).consecutive_failures
    answers.append(refused())

    after = get_connection(USER, connection_id, consistent=True)
    assert (answers, held) == ([403, 403, 403], 2)
    assert after.disabled_reason == "connection_disabled:permission"
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason) == ("paused", after.disabled_reason)
