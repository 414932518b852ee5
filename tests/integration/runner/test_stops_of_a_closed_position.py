"""A live position its own stop closed between two turns: the turn that finds it flat takes down the rest.

Real dispatcher and worker handlers, moto, and the Binance simulator over loopback. Signals are pinned
with RSI levels no price path crosses (oversold 99.99: always long; overbought 0.01: always short).
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from klineo.services.protective_siblings import protective_client_algo_id
from klineo.store.events import list_events
from klineo.store.strategies import update_settings as update_strategy

from tests.integration.runner.conftest import algo_orders, tick_times
from tests.integration.runner.test_protective_reprice import _crash_on_finish, _kept_off_at_entry

USER = "user-runner-stopped-out"
ALWAYS_LONG = {"period": 14, "oversold": 99.99, "overbought": 99.999}
ALWAYS_SHORT = {"period": 14, "oversold": 0.001, "overbought": 0.01}
ALGO_PATH = "/fapi/v1/algoOrder"


def _exchange_position(runner) -> Decimal:
    """The simulator's one-way BTCUSDT position of the demo account (read without a request)."""
    state = runner.sim.state.futures.state_for(runner.sim.account("futures-full"), time.time() * 1000)
    return sum((p.amount for (name, _), p in state.positions.items() if name == "BTCUSDT"), Decimal(0))


def test_a_stop_loss_fired_between_turns_leaves_no_take_profit_to_close_the_next_position(runner) -> None:
    """A stop that fired between turns has its siblings cancelled: they cannot close the next position."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long", stop_loss_pct="2", take_profit_pct="3")
    ticks = tick_times(4)
    runner.run_tick(ticks[0])
    first_entry = runner.runs(sid)[0].order["client_order_id"]
    mark = Decimal(str(runner.sim.mark_price("BTCUSDT")))
    runner.sim.set_mark_price("BTCUSDT", float(mark * Decimal("0.97")))  # the stop-loss fires
    assert _exchange_position(runner) == 0

    runner.run_tick(ticks[1])  # finds the position closed by its stop

    old_tp = algo_orders(runner, "futures-full")[protective_client_algo_id(first_entry, "take_profit")]
    assert old_tp.status == "CANCELED", "the closed position's take-profit is still armed on Binance"
    assert runner.stored(USER, sid).protective is None  # nothing left to cancel: the record is forgotten
    # The signal changes (short: flat under direction long), then turns long again: a new long with a
    # take-profit of 10 % this time.
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_SHORT})
    runner.run_tick(ticks[2])
    update_strategy(USER, sid, runner.stored(USER, sid),
                    changes={"parameters": ALWAYS_LONG, "take_profit_pct": Decimal(10)})
    runner.run_tick(ticks[3])
    assert runner.stored(USER, sid).live_position == Decimal("0.002") == _exchange_position(runner)

    runner.sim.set_mark_price("BTCUSDT", float(mark * Decimal("1.04")))  # past the old 3 %, not the new 10 %

    assert _exchange_position(runner) == Decimal("0.002"), "the new long was closed by the old take-profit"


def test_a_take_profit_whose_cancel_failed_stays_recorded_and_the_next_entry_cancels_it(runner) -> None:
    """A sibling whose cancel failed when the position was found gone is kept; the next entry cancels it."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long", stop_loss_pct="2", take_profit_pct="3")
    ticks = tick_times(4)
    runner.run_tick(ticks[0])
    old_tp = protective_client_algo_id(runner.runs(sid)[0].order["client_order_id"], "take_profit")
    mark = Decimal(str(runner.sim.mark_price("BTCUSDT")))
    runner.sim.set_mark_price("BTCUSDT", float(mark * Decimal("0.97")))  # the stop-loss fires
    runner.sim.faults.add("http_503_unavailable", count=50, method="DELETE", path="/fapi/v1/algoOrder")
    runner.run_tick(ticks[1])
    runner.sim.faults.clear()
    kept = runner.stored(USER, sid).protective
    assert kept["armed"] is False and old_tp in kept["superseded"]
    assert runner.stored(USER, sid).live_position == 0
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_SHORT})
    runner.run_tick(ticks[2])
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_LONG})

    runner.run_tick(ticks[3])

    assert _exchange_position(runner) == Decimal("0.002")
    assert algo_orders(runner, "futures-full")[old_tp].status == "CANCELED"
    assert "superseded" not in runner.stored(USER, sid).protective


@pytest.mark.parametrize("reconciled", [False, True], ids=["seen_first", "reconciled_first"])
@pytest.mark.parametrize("code", [-2021, -2023], ids=["refused_at_entry", "kept_off_at_entry"])
def test_a_stop_loss_beside_a_take_profit_binance_did_not_take_closes_as_protective(
        runner, reconcile, monkeypatch, code, reconciled) -> None:
    """GIVEN a live long with SL 2 % / TP 3 % whose take-profit Binance did not take at entry (refused for
    good, or kept off for now: the record not armed) WHEN the stop-loss it did place fires between turns THEN
    the turn that finds the position gone (the reconciler having recorded the stop's firing first, or not)
    says a protective order closed it (before: "manual", as if the user had closed it by hand while the
    strategy's stop stood)."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long", stop_loss_pct="2", take_profit_pct="3")
    ticks = tick_times(2)
    _kept_off_at_entry(runner, monkeypatch, "-tp", code)
    runner.run_tick(ticks[0])
    entry = runner.runs(sid)[0].order["client_order_id"]
    assert runner.stored(USER, sid).protective["armed"] is False
    stop_loss = algo_orders(runner, "futures-full")[protective_client_algo_id(entry, "stop_loss")]
    assert stop_loss.status == "NEW"
    mark = Decimal(str(runner.sim.mark_price("BTCUSDT")))
    runner.sim.set_mark_price("BTCUSDT", float(mark * Decimal("0.97")))  # the stop-loss fires
    assert _exchange_position(runner) == 0
    if reconciled:
        reconcile()

    runner.run_tick(ticks[1])

    closed = [e for e in list_events(sid, 50).events if e.kind == "position_closed"]
    assert [e.details["cause"] for e in closed] == ["protective"]


def test_a_position_closed_by_hand_while_its_stops_stood_unfired_is_manual_not_protective(runner) -> None:
    """GIVEN a live long with SL 2 % / TP 3 % armed on Binance WHEN the user closes it by hand (neither stop
    fires) THEN the turn that finds it gone says "manual", as Binance's algo orders show (both still NEW until
    that turn cancels them), not "protective" because the stops stood."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long", stop_loss_pct="2", take_profit_pct="3")
    ticks = tick_times(2)
    runner.run_tick(ticks[0])
    entry = runner.runs(sid)[0].order["client_order_id"]
    runner.sim.inject_trade("futures-full", "manual", "BTCUSDT", side="SELL", quantity="0.002")
    assert _exchange_position(runner) == 0

    runner.run_tick(ticks[1])

    closed = [e for e in list_events(sid, 50).events if e.kind == "position_closed"]
    assert [e.details["cause"] for e in closed] == ["manual"]
    stops = algo_orders(runner, "futures-full")
    roles = ("stop_loss", "take_profit")
    assert [stops[protective_client_algo_id(entry, role)].status for role in roles] == ["CANCELED"] * 2


def test_a_position_gone_while_its_stops_cannot_be_read_is_unknown(runner) -> None:
    """GIVEN a live long with SL 2 % / TP 3 % armed WHEN it is closed by hand and Binance fails every read of
    its algo orders (503) THEN the cause is "unknown": neither a stop's fill nor its absence is known."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long", stop_loss_pct="2", take_profit_pct="3")
    ticks = tick_times(2)
    runner.run_tick(ticks[0])
    runner.sim.inject_trade("futures-full", "manual", "BTCUSDT", side="SELL", quantity="0.002")
    runner.sim.faults.add("http_503_unavailable", count=50, method="GET", path="/fapi/v1/algoOrder")

    runner.run_tick(ticks[1])

    runner.sim.faults.clear()
    closed = [e for e in list_events(sid, 50).events if e.kind == "position_closed"]
    assert [e.details["cause"] for e in closed] == ["unknown"]
    assert runner.stored(USER, sid).live_position == 0


def test_an_old_stop_kept_after_its_failed_cancel_that_fires_closes_as_protective(runner) -> None:
    """GIVEN a live long with SL 2 % / TP 3 % whose stop moved to 5 %, Binance failing the old stop's cancel
    (kept in ``superseded``, still armed) WHEN that old stop fires THEN the turn that finds the position gone
    says a protective order closed it (before: "manual", the old stop not among the stops read)."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long", stop_loss_pct="2", take_profit_pct="3")
    ticks = tick_times(3)
    runner.run_tick(ticks[0])
    old_stop = protective_client_algo_id(runner.runs(sid)[0].order["client_order_id"], "stop_loss")
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"stop_loss_pct": Decimal(5)})
    runner.sim.faults.add("http_503_unavailable", count=50, method="DELETE", path="/fapi/v1/algoOrder")
    runner.run_tick(ticks[1])  # the stop re-priced to 5 %, the old one's cancel failed
    runner.sim.faults.clear()
    assert runner.stored(USER, sid).protective["superseded"] == [old_stop]
    mark = Decimal(str(runner.sim.mark_price("BTCUSDT")))
    runner.sim.set_mark_price("BTCUSDT", float(mark * Decimal("0.97")))  # past the old 2 %, not the new 5 %
    assert _exchange_position(runner) == 0
    assert algo_orders(runner, "futures-full")[old_stop].status != "NEW"

    runner.run_tick(ticks[2])

    closed = [e for e in list_events(sid, 50).events if e.kind == "position_closed"]
    assert [e.details["cause"] for e in closed] == ["protective"]



def test_a_stop_an_unfinished_repricing_placed_that_fires_closes_as_protective(runner, monkeypatch) -> None:
    """GIVEN a live long with SL 2 % / TP 3 % whose stop moved to 1 %, the turn lost right after the new stop
    was placed (claimed in ``protective.repricing``, never recorded) WHEN that new stop fires THEN the turn
    that finds the position gone says a protective order closed it (before: "manual", the claimed stop not
    among the stops read)."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long", stop_loss_pct="2", take_profit_pct="3")
    ticks = tick_times(3)
    runner.run_tick(ticks[0])
    entry = runner.runs(sid)[0].order["client_order_id"]
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"stop_loss_pct": Decimal(1)})
    _crash_on_finish(monkeypatch)
    runner.run_tick(ticks[1])
    assert runner.stored(USER, sid).protective["repricing"]["roles"] == ["stop_loss"]
    mark = Decimal(str(runner.sim.mark_price("BTCUSDT")))
    runner.sim.set_mark_price("BTCUSDT", float(mark * Decimal("0.985")))  # past the new 1 %, not the old 2 %
    assert _exchange_position(runner) == 0
    assert algo_orders(runner, "futures-full")[protective_client_algo_id(entry, "stop_loss")].status == "NEW"

    runner.run_tick(ticks[2])

    closed = [e for e in list_events(sid, 50).events if e.kind == "position_closed"]
    assert [e.details["cause"] for e in closed] == ["protective"]

def _stopped_out_unread(runner) -> tuple[str, list[int]]:
    """A live long (SL 2 % / TP 3 %) its stop-loss closed, found gone by a turn for which Binance failed every
    read of its algo orders (the cause "unknown"): (the strategy, the next ticks, 6 of them)."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long", stop_loss_pct="2", take_profit_pct="3")
    ticks = tick_times(8)
    runner.run_tick(ticks[0])
    mark = Decimal(str(runner.sim.mark_price("BTCUSDT")))
    runner.sim.set_mark_price("BTCUSDT", float(mark * Decimal("0.97")))  # the stop-loss fires
    runner.sim.faults.add("http_503_unavailable", count=50, method="GET", path=ALGO_PATH, delay_ms=0)
    runner.run_tick(ticks[1])
    runner.sim.faults.clear()
    return sid, ticks[2:]


def test_an_unknown_closing_cause_is_settled_once_by_the_next_turn_that_reads_the_stops(runner) -> None:
    """GIVEN a live long closed by its stop-loss, found gone while Binance failed every read of its stops (the
    position_closed cause "unknown") WHEN the next turn reads them THEN one close_cause_settled event says
    "protective", naming that close, and no later turn reads or tells it again (before: unknown for good)."""
    sid, ticks = _stopped_out_unread(runner)
    [closed] = [e for e in list_events(sid, 50).events if e.kind == "position_closed"]
    assert closed.details["cause"] == "unknown"

    runner.run_tick(ticks[0])
    reads = runner.sim.faults.add("http_503_unavailable", count=50, method="GET", path="/fapi/v1/algoOrder",
                                  delay_ms=0)
    runner.run_tick(ticks[1])

    settled = [e for e in list_events(sid, 50).events if e.kind == "close_cause_settled"]
    assert [(e.details["cause"], e.details["position_closed_at"]) for e in settled] == [
        ("protective", closed.at_ms)]
    assert reads.count == 50, "a settled cause was read again"
    assert runner.stored(USER, sid).unknown_close is None


def test_an_unknown_closing_cause_binance_never_answers_for_is_read_a_bounded_number_of_turns(runner) -> None:
    """GIVEN a live long whose close's cause is "unknown" WHEN Binance keeps failing every read of its stops
    THEN the next UNKNOWN_CLOSE_READS turns read them, and no turn after: the cause stays unknown, nothing is
    told, nothing kept to read."""
    from klineo.runner.positions import UNKNOWN_CLOSE_READS

    sid, ticks = _stopped_out_unread(runner)
    reads = runner.sim.faults.add("http_503_unavailable", count=500, method="GET", path="/fapi/v1/algoOrder",
                                  delay_ms=0)
    for tick in ticks[:UNKNOWN_CLOSE_READS]:
        before = reads.count
        runner.run_tick(tick)
        assert reads.count < before, "a turn did not read the stops of the unknown close"
    assert runner.stored(USER, sid).unknown_close is None
    read = reads.count
    for tick in ticks[UNKNOWN_CLOSE_READS:]:
        runner.run_tick(tick)
    runner.sim.faults.clear()

    assert reads.count == read, "the stops were read past the bound"
    assert [e for e in list_events(sid, 50).events if e.kind == "close_cause_settled"] == []
