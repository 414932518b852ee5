"""An entry's protective record is written only for the position it was armed for (``klineo.store.runs``).

The turn that settles an entry arms its stop-loss / take-profit after the settle, then records them on the
strategy (``set_protective``). The settle clears the pending order, so a newer turn (the next candle, or
POST /run) may trade meanwhile: its own entry arms and records its own stops. The late write of the first
turn must then write nothing, and cancel what it placed: recorded over the newer entry's, it would hide
the newer stops from the strategy (never cancelled on its exit: a stale stop that may close a later
position) and keep stops for a position that is gone. Real dispatcher and worker on the simulator and
moto; the interleaving forced by running the newer turn from inside the first turn's arming.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from klineo.runner import execution
from klineo.services.protective_siblings import protective_client_algo_id
from klineo.store.strategies import update_settings as update_strategy

from tests.integration.runner.conftest import algo_orders, current_close, tick_times, worker_event_from
from tests.integration.runner.test_exchange_truth import ALWAYS_LONG, ALWAYS_SHORT, SL_TP
from tests.integration.runner.test_hedge_mode import HEDGE_ACCOUNT, hedge_connection

USER = "user-runner-protective-race"
ONE_WAY = "futures-full"
MODES = pytest.mark.parametrize("account", [ONE_WAY, HEDGE_ACCOUNT], ids=["one_way", "hedge"])


def _entry_ids(runner, sid: str) -> list[str]:
    """The clientOrderIds of the strategy's entries, oldest first (a hedge flip's entry: its second leg)."""
    return [run.order["client_order_id"] for run in reversed(runner.runs(sid)) if run.order]


def _newer_turn(runner, sid: str, tick_ms: int) -> None:
    """The worker's turn on the candle before ``tick_ms`` (as its tick would queue it), run to its end now."""
    assert _turn(runner, sid, tick_ms)["batchItemFailures"] == []


def _turn(runner, sid: str, tick_ms: int, **timing: int) -> dict[str, Any]:
    """The worker's turn on the candle before ``tick_ms``, with ``timing`` (remaining_ms, later_ms)."""
    runner.pinned["tick_ms"] = tick_ms
    body = {"v": 1, "tick": tick_ms, "environment": "production", "symbol": "BTCUSDT", "interval": "1m",
            "close_time": current_close(tick_ms), "strategies": [{"user_id": USER, "strategy_id": sid}]}
    return runner.work_event(worker_event_from([body], runner.queue_arn), **timing)


@MODES
def test_a_late_record_of_an_entrys_stops_never_overwrites_a_newer_entrys(runner, monkeypatch,
                                                                          account: str) -> None:
    """GIVEN a live long with SL/TP whose turn is between its entry's settle and the record of its stops WHEN
    a newer turn flips the strategy short and records the short's stops first THEN the late record writes
    nothing: the record names the short's entry and its stops, the long's stops are cancelled, and only the
    short's stay open."""
    first, second = tick_times(2)
    connection = hedge_connection(runner, USER) if account == HEDGE_ACCOUNT else runner.connection(USER)
    sid = runner.strategy(USER, connection, type="rsi_threshold", parameters=ALWAYS_LONG, direction="both",
                          stop_loss_pct="2", take_profit_pct="3")
    real_arm = execution.arm_entry_orders
    raced = {"n": 0}

    def newer_turn_first(*args: Any, **kwargs: Any) -> bool:
        if raced["n"] == 0:  # the long's arming: the next candle's turn runs to its end before it
            raced["n"] += 1
            update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_SHORT})
            _newer_turn(runner, sid, second)
        return real_arm(*args, **kwargs)

    monkeypatch.setattr(execution, "arm_entry_orders", newer_turn_first)
    runner.run_tick(first)

    assert raced["n"] == 1
    stored = runner.stored(USER, sid)
    long_entry, short_entry = _entry_ids(runner, sid)
    assert stored.live_position == Decimal("-0.002")
    record = stored.protective
    assert (record["parent_client_order_id"], record["entry_side"]) == (short_entry, "SELL")
    algos = algo_orders(runner, account)
    short_stops = sorted(protective_client_algo_id(short_entry, role) for role in SL_TP)
    assert sorted(i for i, a in algos.items() if a.status == "NEW") == short_stops
    assert [algos[protective_client_algo_id(long_entry, role)].status for role in SL_TP] == ["CANCELED"] * 2


def test_a_flip_whose_late_record_is_refused_gets_stops_of_its_own_entry(runner, monkeypatch) -> None:
    """GIVEN a live long with SL/TP flipped short, whose turn is between the flip's settle and the record of
    the short's stops WHEN a newer turn claims an order back to long (its record then refused: the short's
    stops cancelled; the order never placed) and the next turn holds the short THEN the short gets stops of
    its own entry, priced from its fill, the long's record forgotten (never re-priced from the long's
    entry)."""
    t0, t1, t2, _t3, t4 = tick_times(5)
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="both", stop_loss_pct="2", take_profit_pct="3")
    runner.run_tick(t0)
    real_arm = execution.arm_entry_orders

    def newer_turn_claims_first(*args: Any, **kwargs: Any) -> bool:
        monkeypatch.setattr(execution, "arm_entry_orders", real_arm)
        update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_LONG})
        runner.sim.faults.add("drop_connection", method="POST", path="/fapi/v1/order", count=1)
        assert len(_turn(runner, sid, t2, remaining_ms=1)["batchItemFailures"]) == 1  # its order in flight
        return real_arm(*args, **kwargs)

    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_SHORT})
    monkeypatch.setattr(execution, "arm_entry_orders", newer_turn_claims_first)
    _turn(runner, sid, t1)
    stored = runner.stored(USER, sid)
    long_entry, short_entry = _entry_ids(runner, sid)
    assert stored.pending is not None and stored.protective["parent_client_order_id"] == long_entry
    update_strategy(USER, sid, stored, changes={"parameters": ALWAYS_SHORT})

    _turn(runner, sid, t4, later_ms=180_000)  # the lost order settled never placed, then a hold

    stored = runner.stored(USER, sid)
    assert (stored.live_position, stored.pending) == (Decimal("-0.002"), None)
    record = stored.protective
    assert (record["parent_client_order_id"], record["entry_side"]) == (short_entry, "SELL")
    assert record["entry_price"] == stored.live_book["entry_price"]
    algos = algo_orders(runner, ONE_WAY)
    assert sorted(i for i, a in algos.items() if a.status == "NEW") == sorted(
        protective_client_algo_id(short_entry, role, 1) for role in SL_TP)


def test_a_flip_whose_turn_ended_before_recording_its_stops_keeps_one_set_of_its_own(runner, monkeypatch):
    """GIVEN a live long with SL/TP flipped short whose turn ended (a crash) right after the short's stops
    were placed, before they were recorded WHEN the next turn holds the short THEN exactly one set of the
    short's own stops is open (the unrecorded ones replaced once the new ones are recorded), the record
    names the short's entry."""
    t0, t1, t2 = tick_times(3)
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="both", stop_loss_pct="2", take_profit_pct="3")
    runner.run_tick(t0)
    real_arm = execution.arm_entry_orders

    def crash_after_arming(*args: Any, **kwargs: Any) -> bool:
        real_arm(*args, **kwargs)
        raise RuntimeError("the invocation ended here")

    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_SHORT})
    monkeypatch.setattr(execution, "arm_entry_orders", crash_after_arming)
    _turn(runner, sid, t1)
    monkeypatch.setattr(execution, "arm_entry_orders", real_arm)
    long_entry, short_entry = _entry_ids(runner, sid)
    assert runner.stored(USER, sid).protective["parent_client_order_id"] == long_entry

    _turn(runner, sid, t2)

    stored = runner.stored(USER, sid)
    assert stored.protective["parent_client_order_id"] == short_entry
    algos = algo_orders(runner, ONE_WAY)
    assert sorted(i for i, a in algos.items() if a.status == "NEW") == sorted(
        protective_client_algo_id(short_entry, role, 1) for role in SL_TP)
