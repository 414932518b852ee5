"""A live strategy's stops follow what is left of its position (``klineo.runner.reprice``, "What is left").

When the strategy's own order leaves less of the position on the same side (a close or a one-way flip that
Binance filled only in part: ``set_market_depth``, a MARKET order filled in part and the rest EXPIRED), or a
turn finds less of it than its stops are for (part closed elsewhere), the stops are re-placed at the same
levels for what is left (a new generation), the old ones cancelled once the new ones are recorded. A stop
for more than the position is refused when it fires (-2022, the simulator's strict reading), leaving the
rest unprotected. Real dispatcher and worker on the simulator and moto; signals pinned by RSI levels no
price path crosses (a long-only strategy goes flat on the short signal).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from klineo.runner import reprice as reprice_module
from klineo.services.protective_siblings import protective_client_algo_id
from klineo.store.events import list_events
from klineo.store.strategies import update_settings as update_strategy

from local.scheduler import sqs_event
from tests.integration.futures.test_stops_follow_reductions import refuse_for_good
from tests.integration.runner.conftest import algo_orders, tick_times
from tests.integration.runner.test_exchange_truth import ALWAYS_LONG, ALWAYS_SHORT, SL_TP
from tests.integration.runner.test_hedge_mode import HEDGE_ACCOUNT, hedge_connection

USER = "user-runner-stops-follow"
ONE_WAY = "futures-full"
ALWAYS_HOLD = {"period": 14, "oversold": 0.001, "overbought": 99.999}
ALGO_PATH = "/fapi/v1/algoOrder"
D = Decimal
# Sizes whose rest is worth more than the minimum notional (a rest below it: test_hedge_mode).
FULL, REST = D("0.004"), D("0.002")
MODES = pytest.mark.parametrize("account", [ONE_WAY, HEDGE_ACCOUNT], ids=["one_way", "hedge"])


def _open(runner, account: str) -> list[str]:
    return sorted(i for i, a in algo_orders(runner, account).items() if a.status == "NEW")


def _position(runner, account: str) -> Decimal:
    """The account's BTCUSDT position (the LONG side in hedge mode, BOTH in one-way)."""
    state = runner.sim.state.futures.state_for(runner.sim.account(account), time.time() * 1000)
    side = "LONG" if account == HEDGE_ACCOUNT else "BOTH"
    return state.positions[("BTCUSDT", side)].amount


def _events(sid: str, kind: str) -> list[Any]:
    return [e for e in list_events(sid, 100).events if e.kind == kind]


def _long(runner, account: str, tick_ms: int, direction: str = "long",
          **percents: str) -> tuple[str, str, Decimal]:
    """A live long of 0.004 entered on ``tick_ms``'s candle with ``percents``: (strategy, entry, fill)."""
    hedge = account == HEDGE_ACCOUNT
    connection = hedge_connection(runner, USER) if hedge else runner.connection(USER, account)
    sid = runner.strategy(USER, connection, type="rsi_threshold", parameters=ALWAYS_LONG, direction=direction,
                          size=str(FULL), **percents)
    runner.run_tick(tick_ms)
    run = runner.runs(sid)[0]
    assert (run.status, run.order["side"], D(run.order["executed_quantity"])) == ("ordered", "BUY", FULL)
    return sid, run.order["client_order_id"], D(run.order["average_price"])


def _signal(runner, sid: str, parameters: dict[str, Any]) -> None:
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": parameters})


def _filled_in_part(runner, sid: str, tick_ms: int) -> None:
    """The signal turns short and Binance fills only 0.002 of the strategy's order (thin liquidity)."""
    _signal(runner, sid, ALWAYS_SHORT)
    runner.sim.set_market_depth("BTCUSDT", str(REST))
    runner.run_tick(tick_ms)
    runner.sim.set_market_depth("BTCUSDT", None)
    run = runner.runs(sid)[0]
    assert (run.order["side"], run.order["status"], D(run.order["executed_quantity"])) == (
        "SELL", "EXPIRED", REST)
    assert runner.stored(USER, sid).live_position == REST


def _assert_follows(runner, account: str, sid: str, entry: str, roles: tuple[str, ...] = SL_TP) -> None:
    """The position's stops are the entry's, re-placed at the same levels for 0.002 (generation 1), the
    ones for 0.004 cancelled, the record naming the new ones."""
    algos = algo_orders(runner, account)
    old = [algos[protective_client_algo_id(entry, role)] for role in roles]
    new = [algos[protective_client_algo_id(entry, role, 1)] for role in roles]
    assert [(a.status, a.quantity) for a in old] == [("CANCELED", FULL)] * len(roles)
    shape = [(a.order_type, a.trigger_price, a.side, a.position_side, a.reduce_only) for a in old]
    assert [(a.status, a.quantity, (a.order_type, a.trigger_price, a.side, a.position_side, a.reduce_only))
            for a in new] == [("NEW", REST, s) for s in shape]
    assert _open(runner, account) == sorted(a.client_algo_id for a in new)
    stored = runner.stored(USER, sid).protective
    assert (D(str(stored["quantity"])), stored["orders"], stored["armed"]) == (
        REST, dict.fromkeys(roles, 1), True)
    assert "repricing" not in stored and "superseded" not in stored


@MODES
def test_a_close_filled_in_part_re_places_the_stops_for_what_is_left(runner, account: str) -> None:
    """GIVEN a live long of 0.004 with SL 2 % / TP 3 % (one-way: reduce-only; hedge: SELL LONG) WHEN its
    close fills only 0.002 THEN the stop-loss and take-profit are re-placed at the same prices for 0.002,
    the ones for 0.004 cancelled, with one protective_repriced event saying so and no error."""
    first, second = tick_times(2)
    sid, entry, _fill = _long(runner, account, first, stop_loss_pct="2", take_profit_pct="3")

    _filled_in_part(runner, sid, second)

    _assert_follows(runner, account, sid, entry)
    [event] = _events(sid, "protective_repriced")
    details = event.details
    assert (D(details["quantity"]), D(details["old_quantity"]), event.tag) == (REST, FULL, "resize")
    assert details["old_stop_loss"] == details["new_stop_loss"]
    assert _events(sid, "error") == []


def test_a_one_way_flip_filled_short_of_zero_re_places_the_stops_for_what_is_left(runner) -> None:
    """GIVEN a live long of 0.004 (both directions) with SL 2 % and a trailing stop WHEN the signal turns
    short and its one-way flip (SELL 0.008) fills only 0.002 THEN the long of 0.002 left keeps both,
    re-placed for 0.002; no short's stops."""
    first, second = tick_times(2)
    sid, entry, _fill = _long(runner, ONE_WAY, first, direction="both", stop_loss_pct="2",
                              trailing_stop_pct="4")

    _filled_in_part(runner, sid, second)

    assert D(runner.runs(sid)[0].order["quantity"]) == 2 * FULL
    _assert_follows(runner, ONE_WAY, sid, entry, ("stop_loss", "trailing_stop"))
    trailing = algo_orders(runner, ONE_WAY)[protective_client_algo_id(entry, "trailing_stop", 1)]
    assert trailing.callback_rate == D(4)


@MODES
def test_a_stop_firing_after_a_close_filled_in_part_closes_exactly_the_rest(runner, account: str) -> None:
    """GIVEN a long whose close filled only 0.002 of 0.004 WHEN the mark falls through its 2 % stop THEN the
    stop fires and closes the 0.002 left (never refused for a quantity larger than the position: -2022)."""
    first, second = tick_times(2)
    sid, entry, fill = _long(runner, account, first, stop_loss_pct="2")
    _filled_in_part(runner, sid, second)

    runner.sim.set_mark_price("BTCUSDT", float(fill * D("0.97")))

    fired = [a for a in algo_orders(runner, account).values() if a.trigger_time]
    assert [(a.client_algo_id, a.status) for a in fired] == [
        (protective_client_algo_id(entry, "stop_loss", 1), "FINISHED")]
    assert _position(runner, account) == 0


def test_a_crash_between_placing_and_recording_the_new_stops_doubles_nothing(runner, monkeypatch) -> None:
    """GIVEN a close filled in part whose worker is lost after the stops for 0.002 were placed and before they
    were recorded WHEN the message comes again THEN nothing is sent; WHEN the next candle holds THEN the new
    stops are recorded without being sent again and the old ones cancelled, each exactly once."""
    first, second, third = tick_times(3)
    sid, entry, _fill = _long(runner, ONE_WAY, first, stop_loss_pct="2", take_profit_pct="3")
    real, lost = reprice_module.replace_protective, []

    def lost_once(*args: Any, **kwargs: Any) -> Any:
        if any(e.kind == "protective_repriced" for e in kwargs.get("events") or ()) and not lost:
            lost.append(True)
            raise RuntimeError("container lost")
        return real(*args, **kwargs)

    monkeypatch.setattr(reprice_module, "replace_protective", lost_once)
    _signal(runner, sid, ALWAYS_SHORT)
    runner.sim.set_market_depth("BTCUSDT", str(REST))
    runner.tick(second)
    event = sqs_event(runner.receive(), runner.queue_arn, runner.aws.region)
    assert runner.work_event(event)["batchItemFailures"]  # lost: SQS delivers it again
    runner.sim.set_market_depth("BTCUSDT", None)
    ids = {g: [protective_client_algo_id(entry, role, g) for role in SL_TP] for g in (0, 1)}
    assert _open(runner, ONE_WAY) == sorted(ids[0] + ids[1])  # both sets live: the claim names the new one
    assert runner.stored(USER, sid).protective["repricing"]["generation"] == 1
    sent = (len(runner.journal("POST", ALGO_PATH)), len(runner.journal("DELETE", ALGO_PATH)))

    runner.work_event(event)

    assert (len(runner.journal("POST", ALGO_PATH)), len(runner.journal("DELETE", ALGO_PATH))) == sent
    assert sent == (4, 0)  # the entry's pair, then the pair for 0.002; nothing cancelled yet
    _signal(runner, sid, ALWAYS_HOLD)

    runner.run_tick(third)

    _assert_follows(runner, ONE_WAY, sid, entry)
    assert len(runner.journal("POST", ALGO_PATH)) == 4
    assert len(runner.journal("DELETE", ALGO_PATH)) == 2  # the old pair's, once each (now CANCELED)
    assert len(_events(sid, "protective_repriced")) == 1


def test_a_failed_re_placing_keeps_the_old_stops_and_the_next_turn_finishes(runner) -> None:
    """GIVEN a close filled in part WHEN Binance is unavailable for the stops of what is left THEN the old
    stops stay open, an error event says so; WHEN the next candle holds THEN the stops for 0.002 replace
    them."""
    first, second, third = tick_times(3)
    sid, entry, _fill = _long(runner, ONE_WAY, first, stop_loss_pct="2", take_profit_pct="3")
    runner.sim.faults.add("http_503_unavailable", count=50, method="POST", path=ALGO_PATH)

    _filled_in_part(runner, sid, second)

    assert _open(runner, ONE_WAY) == sorted(protective_client_algo_id(entry, role) for role in SL_TP)
    [error] = _events(sid, "error")
    assert (error.details["what"], D(error.details["quantity"]), D(error.details["old_quantity"])) == (
        "protective_not_repriced", REST, FULL)
    assert runner.stored(USER, sid).protective["repricing"]["quantity"] == REST
    runner.sim.faults.clear()
    _signal(runner, sid, ALWAYS_HOLD)

    runner.run_tick(third)

    _assert_follows(runner, ONE_WAY, sid, entry)
    assert len(_events(sid, "protective_repriced")) == 1


def test_a_turn_finding_part_of_the_position_closed_elsewhere_re_places_its_stops(runner) -> None:
    """GIVEN a live long of 0.004 with SL 2 % / TP 3 % WHEN 0.002 of it is sold by hand and the next candle
    holds THEN the turn records the position left (0.002) and re-places the stops for it."""
    first, second = tick_times(2)
    sid, entry, _fill = _long(runner, ONE_WAY, first, stop_loss_pct="2", take_profit_pct="3")
    runner.sim.inject_trade(ONE_WAY, "manual", "BTCUSDT", side="SELL", quantity=str(REST))
    _signal(runner, sid, ALWAYS_HOLD)

    runner.run_tick(second)

    [closed] = _events(sid, "position_closed")
    assert D(closed.details["position_after"]) == REST
    _assert_follows(runner, ONE_WAY, sid, entry)


def test_stops_binance_refuses_for_what_is_left_are_not_tried_again_every_turn(runner, monkeypatch) -> None:
    """GIVEN a close filled in part WHEN Binance refuses the stop for what is left for good (-2021) THEN the
    old stop stays open, one error event says so; WHEN the next candle holds THEN nothing is sent again."""
    first, second, third = tick_times(3)
    sid, entry, _fill = _long(runner, ONE_WAY, first, stop_loss_pct="2")
    refuse_for_good(runner.sim, monkeypatch, protective_client_algo_id(entry, "stop_loss", 1))

    _filled_in_part(runner, sid, second)

    assert _open(runner, ONE_WAY) == [protective_client_algo_id(entry, "stop_loss")]
    [error] = _events(sid, "error")
    assert (error.details["what"], error.details["category"], D(error.details["quantity"])) == (
        "protective_not_repriced", "order_rejected", REST)
    stored = runner.stored(USER, sid).protective
    assert (D(str(stored["refused_quantity"])), "repricing" in stored) == (REST, False)
    sent = len(runner.journal("POST", ALGO_PATH))
    _signal(runner, sid, ALWAYS_HOLD)

    runner.run_tick(third)

    assert len(runner.journal("POST", ALGO_PATH)) == sent == 2  # the entry's stop, the refused one
    assert len(_events(sid, "error")) == 1


def test_a_take_profit_armed_beside_a_stop_refused_at_entry_follows_a_close_filled_in_part(runner) -> None:
    """GIVEN a live long of 0.004 whose stop Binance refused for good at entry (SL 99.9 %: invalid) and whose
    TP 3 % stands WHEN its close fills only 0.002 THEN the take-profit is re-placed for 0.002 (before: it
    stayed for 0.004, refused when it fires), the refused stop not sent again; WHEN the mark rises through
    the take-profit THEN it closes the 0.002 left."""
    first, second = tick_times(2)
    sid, entry, fill = _long(runner, ONE_WAY, first, stop_loss_pct="99.9", take_profit_pct="3")
    assert _open(runner, ONE_WAY) == [protective_client_algo_id(entry, "take_profit")]
    sent = len(runner.journal("POST", ALGO_PATH))

    _filled_in_part(runner, sid, second)

    resized = protective_client_algo_id(entry, "take_profit", 1)
    algos = algo_orders(runner, ONE_WAY)
    assert _open(runner, ONE_WAY) == [resized] and algos[resized].quantity == REST
    assert algos[protective_client_algo_id(entry, "take_profit")].status == "CANCELED"
    assert len(runner.journal("POST", ALGO_PATH)) == sent + 1
    stored = runner.stored(USER, sid).protective
    assert (stored["orders"], stored["armed"], D(str(stored["quantity"]))) == (
        {"stop_loss": 0, "take_profit": 1}, False, REST)
    runner.sim.set_mark_price("BTCUSDT", float(fill * D("1.04")))
    assert (algos[resized].status, _position(runner, ONE_WAY)) == ("FINISHED", 0)


def test_a_take_profit_refused_for_what_is_left_keeps_no_stop_sized_for_more(runner, monkeypatch) -> None:
    """A take-profit refused for what is left (-2021) keeps its own old order, never the stop for 0.004."""
    first, second, third = tick_times(3)
    sid, entry, fill = _long(runner, ONE_WAY, first, stop_loss_pct="2", take_profit_pct="3")
    refuse_for_good(runner.sim, monkeypatch, protective_client_algo_id(entry, "take_profit", 1))

    _filled_in_part(runner, sid, second)

    stop, old_take_profit = (protective_client_algo_id(entry, "stop_loss", 1),
                             protective_client_algo_id(entry, "take_profit"))
    algos = algo_orders(runner, ONE_WAY)
    assert {i: algos[i].quantity for i in _open(runner, ONE_WAY)} == {stop: REST, old_take_profit: FULL}
    assert algos[protective_client_algo_id(entry, "stop_loss")].status == "CANCELED"
    [error] = _events(sid, "error")
    assert (error.details["what"], error.details["category"], D(error.details["quantity"])) == (
        "protective_not_repriced", "order_rejected", REST)
    stored = runner.stored(USER, sid).protective
    assert (stored["orders"], D(str(stored["refused_quantity"])), "repricing" in stored) == (
        {"stop_loss": 1, "take_profit": 0}, REST, False)
    sent = (len(runner.journal("POST", ALGO_PATH)), len(runner.journal("DELETE", ALGO_PATH)))
    _signal(runner, sid, ALWAYS_HOLD)

    runner.run_tick(third)

    assert (len(runner.journal("POST", ALGO_PATH)), len(runner.journal("DELETE", ALGO_PATH))) == sent
    assert len(_events(sid, "error")) == 1
    runner.sim.set_mark_price("BTCUSDT", float(fill * D("0.97")))
    assert (algos[stop].status, _position(runner, ONE_WAY)) == ("FINISHED", 0)


def _moved_refused_as_half_is_sold(runner, monkeypatch,
                                   **percents: str) -> tuple[str, str, Decimal, Any, Any]:
    """A live long of 0.004 with TP 3 % and ``percents`` whose levels move to SL 1.5 % / TP 4 % (the new
    take-profit refused for good: -2021) in the turn finding half of it sold by hand: (strategy, entry, fill,
    the algo orders, the open ones), having checked every open stop is for the 0.002 left."""
    first, second = tick_times(2)
    sid, entry, fill = _long(runner, ONE_WAY, first, take_profit_pct="3", **percents)
    refuse_for_good(runner.sim, monkeypatch, protective_client_algo_id(entry, "take_profit", 1))
    runner.sim.inject_trade(ONE_WAY, "manual", "BTCUSDT", side="SELL", quantity=str(REST))
    update_strategy(USER, sid, runner.stored(USER, sid), changes={
        "parameters": ALWAYS_HOLD, "stop_loss_pct": "1.5", "take_profit_pct": "4"})

    runner.run_tick(second)

    algos, still = algo_orders(runner, ONE_WAY), _open(runner, ONE_WAY)
    assert sorted((algos[i].order_type, algos[i].quantity) for i in still) == [
        ("STOP_MARKET", REST), ("TAKE_PROFIT_MARKET", REST)]
    return sid, entry, fill, algos, still


def test_a_level_change_refused_in_part_as_part_is_closed_elsewhere_keeps_no_stop_sized_for_more(
        runner, monkeypatch) -> None:
    """A take-profit moved to a level refused (-2021) in the turn finding half the long sold by hand leaves
    every open stop sized for the 0.002 left (the earlier levels re-placed), the refusal told."""
    sid, entry, fill, algos, _still = _moved_refused_as_half_is_sold(runner, monkeypatch, stop_loss_pct="2")
    assert algos[protective_client_algo_id(entry, "stop_loss")].status == "CANCELED"
    [error] = _events(sid, "error")
    assert (error.details["what"], error.details["category"], "new_take_profit" in error.details) == (
        "protective_not_repriced", "order_rejected", True)
    [repriced] = _events(sid, "protective_repriced")
    assert (D(repriced.details["quantity"]), D(repriced.details["old_quantity"])) == (REST, FULL)
    runner.sim.set_mark_price("BTCUSDT", float(fill * D("0.97")))
    assert _position(runner, ONE_WAY) == 0


def test_a_stop_added_beside_a_refused_take_profit_as_part_is_closed_elsewhere_stays_sized_for_the_rest(
        runner, monkeypatch) -> None:
    """A stop-loss added (the earlier orders had none) beside a take-profit moved to a level refused (-2021),
    in the turn finding half the long sold by hand, stays: every open stop is for the 0.002 left, the
    take-profit at its earlier level, the refusal told."""
    sid, _entry, fill, algos, still = _moved_refused_as_half_is_sold(runner, monkeypatch)
    stored = runner.stored(USER, sid).protective
    levels = reprice_module.levels(stored)
    assert {algos[i].order_type: algos[i].trigger_price for i in still}["TAKE_PROFIT_MARKET"] <= levels[
        "take_profit"] < reprice_module.levels(stored["refused"])["take_profit"]  # the earlier 3 %
    assert (D(str(stored["quantity"])), "repricing" in stored, "superseded" in stored) == (REST, False, False)
    [error] = _events(sid, "error")
    assert (error.details["what"], error.details["category"]) == ("protective_not_repriced", "order_rejected")
    runner.sim.set_mark_price("BTCUSDT", float(fill * D("0.98")))
    assert _position(runner, ONE_WAY) == 0



def test_a_stop_added_beside_a_refused_take_profit_as_part_is_closed_elsewhere_is_placed_once(
        runner, monkeypatch) -> None:
    """A stop-loss added beside a take-profit moved to a level refused (-2021), in the turn finding half the
    long sold by hand, is placed once, for the 0.002 left: only the earlier take-profit (for 0.004) is
    re-placed for the rest, never the stop Binance just accepted (before: a second stop sent and the first
    cancelled)."""
    first, second = tick_times(2)
    sid, entry, _fill = _long(runner, ONE_WAY, first, take_profit_pct="3")
    refuse_for_good(runner.sim, monkeypatch, protective_client_algo_id(entry, "take_profit", 1))
    runner.sim.inject_trade(ONE_WAY, "manual", "BTCUSDT", side="SELL", quantity=str(REST))
    update_strategy(USER, sid, runner.stored(USER, sid), changes={
        "parameters": ALWAYS_HOLD, "stop_loss_pct": "1.5", "take_profit_pct": "4"})
    sent = (len(runner.journal("POST", ALGO_PATH)), len(runner.journal("DELETE", ALGO_PATH)))

    runner.run_tick(second)

    # Sent: the stop and the refused take-profit (generation 1), then the earlier take-profit for the rest.
    assert (len(runner.journal("POST", ALGO_PATH)) - sent[0], len(runner.journal("DELETE", ALGO_PATH))
            - sent[1]) == (3, 1)
    stop, take_profit = (protective_client_algo_id(entry, "stop_loss", 1),
                         protective_client_algo_id(entry, "take_profit", 2))
    algos = algo_orders(runner, ONE_WAY)
    assert {i: (algos[i].status, algos[i].quantity) for i in _open(runner, ONE_WAY)} == {
        stop: ("NEW", REST), take_profit: ("NEW", REST)}
    assert runner.stored(USER, sid).protective["orders"] == {"stop_loss": 1, "take_profit": 2}

# What a refusal for what is left tells and records (pinned before ``LiveReprice``'s refusal was read again
# as one decision).
def test_every_stop_refused_for_what_is_left_tells_one_error_and_records_no_repricing(runner, monkeypatch):
    """Every role refused for what is left writes one error event with its message, no protective_repriced
    event, and keeps the record for the old quantity, that quantity not tried again."""
    first, second = tick_times(2)
    sid, entry, _fill = _long(runner, ONE_WAY, first, stop_loss_pct="2")
    before = runner.stored(USER, sid).protective
    refuse_for_good(runner.sim, monkeypatch, protective_client_algo_id(entry, "stop_loss", 1))

    _filled_in_part(runner, sid, second)

    [error], stored = _events(sid, "error"), runner.stored(USER, sid).protective
    assert (error.details["message"], _events(sid, "protective_repriced")) == (
        "Binance refused the protective orders for what is left of the position; the earlier ones stay.", [])
    assert {k: v for k, v in stored.items() if k not in ("refused_quantity", "generations")} == {
        k: v for k, v in before.items() if k != "generations"}


def test_a_take_profit_refused_for_what_is_left_tells_the_others_were_re_placed(runner, monkeypatch) -> None:
    """A take-profit refused for what is left beside a re-placed stop is told by its own message, with a
    protective_repriced event for the quantity left."""
    first, second = tick_times(2)
    sid, entry, _fill = _long(runner, ONE_WAY, first, stop_loss_pct="2", take_profit_pct="3")
    refuse_for_good(runner.sim, monkeypatch, protective_client_algo_id(entry, "take_profit", 1))

    _filled_in_part(runner, sid, second)

    [error] = _events(sid, "error")
    assert error.details["message"] == ("Binance refused the take-profit for what is left of the position; "
                                        "its earlier order stays, the others were re-placed.")
    [repriced] = _events(sid, "protective_repriced")
    assert (D(repriced.details["quantity"]), D(repriced.details["old_quantity"])) == (REST, FULL)


def test_a_stop_added_beside_a_take_profit_refused_at_its_level_as_part_is_closed_elsewhere_keeps_none_big(
        runner, monkeypatch) -> None:
    """A stop-loss added beside an unchanged take-profit, in the turn finding half the long sold by hand, with
    the take-profit re-placed for the 0.002 left refused (-2021): the earlier take-profit (for 0.004) stays
    and is re-placed for the rest in the same turn, never kept sized for more than is left."""
    first, second = tick_times(2)
    sid, entry, fill = _long(runner, ONE_WAY, first, take_profit_pct="3")
    refuse_for_good(runner.sim, monkeypatch, protective_client_algo_id(entry, "take_profit", 1))
    runner.sim.inject_trade(ONE_WAY, "manual", "BTCUSDT", side="SELL", quantity=str(REST))
    update_strategy(USER, sid, runner.stored(USER, sid), changes={
        "parameters": ALWAYS_HOLD, "stop_loss_pct": "1.5"})

    runner.run_tick(second)

    algos, still = algo_orders(runner, ONE_WAY), _open(runner, ONE_WAY)
    assert sorted((algos[i].order_type, algos[i].quantity) for i in still) == [
        ("STOP_MARKET", REST), ("TAKE_PROFIT_MARKET", REST)]
    assert D(str(runner.stored(USER, sid).protective["quantity"])) == REST
    runner.sim.set_mark_price("BTCUSDT", float(fill * D("1.04")))
    assert _position(runner, ONE_WAY) == 0
