"""A change of stop-loss / take-profit / trailing percent re-prices the open position (klineo.runner.reprice).

Live: the real PATCH handler, then the real dispatcher and worker on the Binance simulator; the
candles are played by dispatching past minutes' ticks (at second 1), as test_exchange_truth does.
Signals are pinned with RSI levels no price path crosses (always long). Paper: ``run_strategy`` on
made-up candles, so that a candle reaches exactly the level the test wants.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from decimal import Decimal
from typing import Any

import pytest
from klineo.binance import Candle, Market, get_client, get_symbol_rules, listed_symbol_rules
from klineo.runner import reprice as reprice_module
from klineo.runner.candles import CandleGroup
from klineo.runner.execution import TickContext, run_strategy
from klineo.runner.messages import StrategyRef, WorkMessage
from klineo.runner.schedule import MINUTE_MS
from klineo.services.open_orders import list_open_orders
from klineo.services.orders import PURGE_AFTER_MS
from klineo.services.protective_siblings import protective_client_algo_id
from klineo.store import strategies as strategy_store
from klineo.store.connections import get_connection
from klineo.store.events import list_events
from klineo.store.orders import get_order_record
from klineo.strategies.simulation import protective_prices, slipped

from local.scheduler import sqs_event
from tests.helpers import (
    load_event,
    put_paper_strategy,
    response_json,
    status_after_the_fill,
    with_body,
    with_user,
)
from tests.integration.api.conftest import at_path
from tests.integration.futures.helpers import age_record
from tests.integration.runner.test_strategies_api import Api

USER = "user-runner-reprice"
ALWAYS_LONG = {"period": 14, "oversold": 99.99, "overbought": 99.999}
ALWAYS_SHORT = {"period": 14, "oversold": 0.001, "overbought": 0.01}
ALGO_PATH = "/fapi/v1/algoOrder"
ROLES = ("stop_loss", "take_profit", "trailing_stop")
FIRED = ("TRIGGERED", "FINISHED")
D = Decimal


def _events(sid: str, kind: str) -> list:
    return [e for e in list_events(sid, 100).events if e.kind == kind]


def _patch(runner, sid: str, body: dict[str, Any]) -> None:
    """PATCH /strategies/{id} through its handler."""
    event = at_path(load_event("strategy_update"), f"/strategies/{sid}", id=sid)
    response = runner.invoke("strategy_update", with_user(with_body(event, body), USER))
    assert response["statusCode"] == 200, response_json(response)


def _algos(runner) -> dict[str, Any]:
    """The simulator's algo orders of the account, by clientAlgoId."""
    state = runner.sim.state.futures.state_for(runner.sim.account("futures-full"), time.time() * 1000)
    return {a.client_algo_id: a for a in state.algo_orders.values()}


def _open(runner) -> list[Any]:
    return [a for a in _algos(runner).values() if a.status == "NEW"]


def _ticks(runner, count: int) -> list[int]:
    """The tick times (second 1 of the last ``count`` minutes, oldest first)."""
    now = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS + 1000
    return [now - back * MINUTE_MS for back in range(count - 1, -1, -1)]


def _guarded_long(runner, tick_ms: int, **settings: str) -> tuple[str, str, Decimal]:
    """A live long entered on ``tick_ms``'s candle with ``settings``: (strategy, entry id, fill price)."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          **settings)
    runner.run_tick(tick_ms)
    run = runner.runs(sid)[0]
    assert run.status == "ordered" and run.order["side"] == "BUY"
    return sid, run.order["client_order_id"], D(run.order["average_price"])


def _tick_price(runner, price: Decimal, role: str = "stop_loss") -> Decimal:
    """``price`` on BTCUSDT's tick grid as a long's protective order is placed: rounded toward the entry
    (a stop-loss up, a take-profit down), so neither fires later than its percent asks."""
    rules = get_symbol_rules(get_client(Market.FUTURES, "production"), "BTCUSDT")
    return rules.round_price(price, up=role == "stop_loss")


def test_a_tighter_stop_and_take_profit_move_the_open_positions_orders(runner) -> None:
    """GIVEN a live long with SL 2 % / TP 3 % armed WHEN the PATCH sets SL 1 % / TP 5 % THEN the next turn
    leaves exactly the new pair open at the new prices (new clientAlgoIds), the old pair cancelled, the
    records, ``protective`` and a protective_repriced event updated."""
    first, second = _ticks(runner, 2)
    sid, entry, fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"stop_loss_pct": "1", "take_profit_pct": "5"})

    runner.run_tick(second)

    sl, tp = protective_prices("BUY", fill, D(1), D(5))
    new_ids = [protective_client_algo_id(entry, role, 1) for role in ("stop_loss", "take_profit")]
    assert sorted(a.client_algo_id for a in _open(runner)) == sorted(new_ids)
    algos = _algos(runner)
    assert [(algos[i].order_type, algos[i].trigger_price, algos[i].quantity, algos[i].reduce_only)
            for i in new_ids] == [("STOP_MARKET", _tick_price(runner, sl), D("0.002"), True),
                                  ("TAKE_PROFIT_MARKET", _tick_price(runner, tp, "take_profit"), D("0.002"),
                                   True)]
    assert [algos[protective_client_algo_id(entry, r)].status for r in ("stop_loss", "take_profit")] == [
        "CANCELED"] * 2
    assert all(len(i) <= 36 for i in new_ids)
    records = [get_order_record(USER, i) for i in new_ids]
    assert [(r.role, r.parent_client_order_id, r.origin, r.status) for r in records] == [
        ("stop_loss", entry, sid, "NEW"), ("take_profit", entry, sid, "NEW")]
    assert get_order_record(USER, protective_client_algo_id(entry, "stop_loss")).status == "CANCELED"
    stored = runner.stored(USER, sid).protective
    assert (D(str(stored["stop_loss"])), D(str(stored["take_profit"]))) == (sl, tp)
    assert (stored["orders"], stored["parent_client_order_id"], stored["armed"]) == (
        {"stop_loss": 1, "take_profit": 1}, entry, True)
    [event] = _events(sid, "protective_repriced")
    assert D(event.details["old_stop_loss"]) == protective_prices("BUY", fill, D(2), None)[0]
    assert D(event.details["new_stop_loss"]) == sl and D(event.details["new_take_profit"]) == tp
    assert _events(sid, "error") == []


def test_an_entry_without_an_order_record_is_repriced_all_the_same(runner, caplog) -> None:
    """GIVEN a live long with SL 2 % whose entry has no order record (claimed by an older version) WHEN the
    PATCH sets SL 1 % THEN the next turn still moves the stop (generation 1), the old one cancelled, and a
    warning says the generations could not be counted on the entry."""
    from klineo.settings import get_settings
    from klineo.store import aws as aws_clients

    first, second = _ticks(runner, 2)
    sid, entry, fill = _guarded_long(runner, first, stop_loss_pct="2")
    aws_clients.dynamodb().delete_item(TableName=get_settings().data_table, Key={
        "pk": {"S": f"USER#{USER}"}, "sk": {"S": f"ORDER#{entry}"}})
    _patch(runner, sid, {"stop_loss_pct": "1"})

    runner.run_tick(second)

    stop = _only_open(runner, protective_client_algo_id(entry, "stop_loss", 1))
    assert stop.trigger_price == _tick_price(runner, protective_prices("BUY", fill, D(1), None)[0])
    assert _algos(runner)[protective_client_algo_id(entry, "stop_loss")].status == "CANCELED"
    assert runner.stored(USER, sid).protective["orders"] == {"stop_loss": 1}
    assert get_order_record(USER, entry) is None
    assert "protective generations not counted on the entry's record" in caplog.text


def test_a_redelivered_turn_does_not_place_the_repriced_orders_again(runner) -> None:
    """GIVEN a re-priced turn that ran (only the stop-loss moved) WHEN SQS delivers its message again THEN
    no algo order is sent again and exactly one stop-loss (the new one) and one take-profit are open."""
    first, second = _ticks(runner, 2)
    sid, entry, _fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"stop_loss_pct": "1.5"})
    runner.tick(second)
    messages = runner.receive()
    event = sqs_event(messages, runner.queue_arn, runner.aws.region)
    runner.work_event(event)
    sent = len(runner.journal("POST", ALGO_PATH))

    runner.work_event(event)

    assert len(runner.journal("POST", ALGO_PATH)) == sent == 3  # the entry's pair, then the re-priced stop
    assert sorted(a.client_algo_id for a in _open(runner)) == sorted(
        [protective_client_algo_id(entry, "stop_loss", 1), protective_client_algo_id(entry, "take_profit")])
    assert len(_events(sid, "protective_repriced")) == 1


def test_clearing_the_take_profit_removes_it_and_keeps_the_stop(runner) -> None:
    """GIVEN a live long with SL 2 % / TP 3 % WHEN the PATCH clears take_profit_pct (null) THEN the next turn
    leaves only the stop-loss at 2 % open (its original order), no take-profit."""
    first, second = _ticks(runner, 2)
    sid, entry, fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"take_profit_pct": None})

    runner.run_tick(second)

    [left] = _open(runner)
    sl = protective_prices("BUY", fill, D(2), None)[0]
    assert (left.client_algo_id, left.order_type, left.trigger_price) == (
        protective_client_algo_id(entry, "stop_loss"), "STOP_MARKET", _tick_price(runner, sl))
    stored = runner.stored(USER, sid).protective
    assert "take_profit" not in stored and D(str(stored["stop_loss"])) == sl


def test_clearing_every_percent_cancels_the_orders_and_forgets_them(runner) -> None:
    """GIVEN a live long with SL and TP WHEN the PATCH clears both THEN the next turn cancels both, sends no
    new one, and ``protective`` is gone."""
    first, second = _ticks(runner, 2)
    sid, _entry, _fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"stop_loss_pct": None, "take_profit_pct": None})

    runner.run_tick(second)

    assert _open(runner) == [] and len(runner.journal("POST", ALGO_PATH)) == 2
    assert runner.stored(USER, sid).protective is None
    assert len(_events(sid, "protective_repriced")) == 1


def test_a_failed_placement_keeps_the_old_orders_and_the_next_turn_finishes(runner) -> None:
    """GIVEN a PATCH to SL 1 % WHEN Binance is unavailable for the new stop THEN the old pair stays open
    with an error event; WHEN the next turn runs THEN the new stop replaces the old (never unprotected)."""
    first, second, third = _ticks(runner, 3)
    sid, entry, _fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"stop_loss_pct": "1"})
    runner.sim.faults.add("http_503_unavailable", count=50, method="POST", path=ALGO_PATH)

    runner.run_tick(second)

    old_ids = sorted(protective_client_algo_id(entry, role) for role in ("stop_loss", "take_profit"))
    assert sorted(a.client_algo_id for a in _open(runner)) == old_ids
    [error] = _events(sid, "error")
    assert error.details["what"] == "protective_not_repriced"
    assert "orders" not in runner.stored(USER, sid).protective
    runner.sim.faults.clear()

    runner.run_tick(third)

    assert sorted(a.client_algo_id for a in _open(runner)) == sorted(
        [protective_client_algo_id(entry, "stop_loss", 1), protective_client_algo_id(entry, "take_profit")])
    assert runner.stored(USER, sid).protective["orders"] == {"stop_loss": 1, "take_profit": 0}


def test_a_placement_binance_could_not_take_now_tells_the_trader_the_next_run_tries_again(runner) -> None:
    """GIVEN a PATCH to SL 1 % WHEN Binance is unavailable for the new stop (503) THEN the strategy's
    protective_not_repriced event says the stop-loss is tried again on the strategy's next run, and never
    asks to repeat a request with an Idempotency-Key (before: the API route's advice; none to repeat)."""
    first, second = _ticks(runner, 2)
    sid, entry, _fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"stop_loss_pct": "1"})
    runner.sim.faults.add("http_503_unavailable", count=50, method="POST", path=ALGO_PATH)

    runner.run_tick(second)

    [error] = _events(sid, "error")
    assert (error.details["what"], error.details["category"]) == ("protective_not_repriced",
                                                                   "upstream_unavailable")
    message = error.details["message"]
    assert "Idempotency-Key" not in message and "request" not in message and "retry" not in message
    assert message.startswith(f"The entry {entry} is FILLED, but its stop_loss could not be placed yet: ")
    assert message.endswith(". It is tried again on the strategy's next run.")


# A re-priced stop-loss Binance could not take, or whose answer was lost: (the faults on the algo service, the
# event's category, the end of its message: what the runner does about it, never an API caller's advice).
UNPLACED_STOPS = {
    "waf_403": ([("waf_403", {"method": "POST"})], "rate_limit",
                " It is tried again on the strategy's next run."),
    "unknown_outcome": ([("timeout_1007", {"method": "POST", "execute": False, "count": 1}),
                         ("http_503_unavailable", {"method": "GET"})], "unknown_outcome",
                        " It is looked up on the strategy's next run and placed only if Binance does not "
                        "have it."),
}


@pytest.mark.parametrize("case", UNPLACED_STOPS)
def test_a_stop_not_placed_tells_the_trader_what_the_runner_does_next_not_an_api_callers_advice(runner,
                                                                                               case) -> None:
    """GIVEN a PATCH to SL 1 % WHEN Binance's firewall refuses the new stop (403: "retry later"), or its
    answer is lost and the lookups fail (unknown outcome) THEN the protective_not_repriced event ends with
    what the runner does (tries again / looks it up on the next run), never with advice to retry or to
    repeat a request with an Idempotency-Key (a strategy has no request)."""
    faults, category, then = UNPLACED_STOPS[case]
    first, second = _ticks(runner, 2)
    sid, entry, _fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"stop_loss_pct": "1"})
    for name, options in faults:
        runner.sim.faults.add(name, **{"count": 50, **options, "path": ALGO_PATH})

    runner.run_tick(second)

    [error] = _events(sid, "error")
    assert (error.details["what"], error.details["category"]) == ("protective_not_repriced", category)
    message = error.details["message"]
    assert "Idempotency-Key" not in message and "retry" not in message.lower(), message
    assert message.startswith(f"The entry {entry} is FILLED, but "), message
    assert message.endswith(then), message
    assert message.count("stop_loss") == 1, message


def test_stops_kept_from_an_entry_by_binance_being_unavailable_are_placed_on_the_next_turn(runner) -> None:
    """GIVEN a live entry with SL 2 % / TP 3 % whose take-profit Binance could not take (503) WHEN the next
    turn runs THEN only the missing take-profit is placed, under the entry's own id, and the record armed;
    a further turn sends nothing more."""
    first, second, third = _ticks(runner, 3)
    runner.sim.faults.add("http_503_unavailable", count=50, method="POST", path=ALGO_PATH, after=1)
    sid, entry, fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    runner.sim.faults.clear()
    sl, tp = (protective_client_algo_id(entry, role) for role in ("stop_loss", "take_profit"))
    assert [a.client_algo_id for a in _open(runner)] == [sl]
    stored = runner.stored(USER, sid).protective
    assert (stored["armed"], stored["parent_client_order_id"], "refused" in stored) == (False, entry, False)
    assert [e.details["what"] for e in _events(sid, "error")] == ["protective_not_armed"]
    sent = len(runner.journal("POST", ALGO_PATH))

    runner.run_tick(second)

    assert sorted(a.client_algo_id for a in _open(runner)) == sorted([sl, tp])
    assert len(runner.journal("POST", ALGO_PATH)) == sent + 1  # the take-profit only
    take_profit = _algos(runner)[tp]
    assert take_profit.trigger_price == _tick_price(runner, protective_prices("BUY", fill, None, D(3))[1],
                                                       "take_profit")
    assert runner.stored(USER, sid).protective["armed"] is True
    assert len(_events(sid, "protective_placed")) == 1  # none at entry: it was not armed

    runner.run_tick(third)

    assert len(runner.journal("POST", ALGO_PATH)) == sent + 1


def test_a_stop_lost_past_binances_retention_is_placed_again_once_while_the_position_stands(runner,
                                                                                          reconcile) -> None:
    """GIVEN a live long with SL 2 % / TP 3 % whose stop-loss POST at entry was lost unsent, and whose lookups
    failed until its record was older than Binance's retention WHEN the next turns and the reconciler find no
    such algo order while the position stands THEN the stop-loss (UNKNOWN_PURGED: it cannot be standing) is
    placed again once, at its level for the position, under generation 1's id, the take-profit untouched, a
    protective_placed event names it, and later turns and runs send nothing more."""
    first, second, third, fourth = _ticks(runner, 4)
    runner.sim.faults.add("timeout_1007", 1, method="POST", path=ALGO_PATH, execute=False)
    sid, entry, fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    stop, take_profit = (protective_client_algo_id(entry, role) for role in ("stop_loss", "take_profit"))
    again = protective_client_algo_id(entry, "stop_loss", 1)
    runner.sim.faults.add("http_503_unavailable", count=50, method="GET", path=ALGO_PATH)
    runner.run_tick(second)
    runner.sim.faults.clear()
    age_record(stop, PURGE_AFTER_MS + 60_000, user_id=USER)

    runner.run_tick(third)
    reconcile()
    runner.run_tick(fourth)
    reconcile()

    assert get_order_record(USER, stop).status == "UNKNOWN_PURGED"
    assert sorted(a.client_algo_id for a in _open(runner)) == sorted([again, take_profit])
    placed = _algos(runner)[again]
    assert (placed.trigger_price, placed.quantity, placed.reduce_only) == (
        _tick_price(runner, protective_prices("BUY", fill, D(2), None)[0]), D("0.002"), True)
    assert len(runner.journal("POST", ALGO_PATH)) == 3  # the lost stop-loss, the take-profit, the stop again
    stored = runner.stored(USER, sid).protective
    assert (stored["armed"], stored["orders"], "refused" in stored) == (
        True, {"stop_loss": 1, "take_profit": 0}, False)
    assert [e.details.get("lost") for e in _events(sid, "protective_placed")] == [["stop_loss"]]


def test_a_lost_stops_re_placing_whose_answer_is_lost_too_is_resumed_under_its_id_never_a_third(
        runner, monkeypatch) -> None:
    """GIVEN a live long whose entry's stop-loss was lost past Binance's retention WHEN its re-placing's POST
    (generation 1) is lost unsent too THEN the next turn past recvWindow resumes that claim: generation 1 is
    sent again under its own id (no generation 2 claimed), one stop-loss stands, later turns send none."""
    from klineo.services import orders as order_core

    first, second, third, fourth = _ticks(runner, 4)
    runner.sim.faults.add("timeout_1007", 1, method="POST", path=ALGO_PATH, execute=False)
    sid, entry, _fill = _guarded_long(runner, first, stop_loss_pct="2")
    stop = protective_client_algo_id(entry, "stop_loss")
    again = protective_client_algo_id(entry, "stop_loss", 1)
    age_record(stop, PURGE_AFTER_MS + 60_000, user_id=USER)
    runner.sim.faults.add("timeout_1007", 1, method="POST", path=ALGO_PATH, execute=False)
    runner.run_tick(second)
    lost_again = get_order_record(USER, again).status
    monkeypatch.setattr(order_core, "SETTLE_MARGIN_MS", -10**9)  # as if recvWindow + margin had passed

    runner.run_tick(third)
    runner.run_tick(fourth)

    assert lost_again == "UNKNOWN" and get_order_record(USER, stop).status == "UNKNOWN_PURGED"
    assert [a.client_algo_id for a in _open(runner)] == [again]
    assert len(runner.journal("POST", ALGO_PATH)) == 3  # the lost one, generation 1's lost one, its resend
    assert get_order_record(USER, entry).protective_generations == 2
    stored = runner.stored(USER, sid).protective
    assert (stored["armed"], stored["orders"], "repricing" in stored) == (True, {"stop_loss": 1}, False)
    assert [e.details.get("lost") for e in _events(sid, "protective_placed")] == [["stop_loss"]]


def test_a_lost_stops_re_placing_lost_past_binances_retention_too_is_placed_in_a_third_generation(
        runner) -> None:
    """GIVEN a live long whose entry's stop-loss was lost past Binance's retention WHEN its re-placing
    (generation 1) is lost unsent too and its lookups fail until that record is past the retention as well
    THEN the next turn places it again under generation 2's id, with a protective_placed event naming it lost
    and nothing remembered as refused (before: counted refused for good, no stop-loss at all, never tried
    again until the percents change); a further turn sends nothing."""
    first, second, third, fourth = _ticks(runner, 4)
    runner.sim.faults.add("timeout_1007", 1, method="POST", path=ALGO_PATH, execute=False)
    sid, entry, _fill = _guarded_long(runner, first, stop_loss_pct="2")
    age_record(protective_client_algo_id(entry, "stop_loss"), PURGE_AFTER_MS + 60_000, user_id=USER)
    runner.sim.faults.add("timeout_1007", 1, method="POST", path=ALGO_PATH, execute=False)
    runner.run_tick(second)
    age_record(protective_client_algo_id(entry, "stop_loss", 1), PURGE_AFTER_MS + 60_000, user_id=USER)

    runner.run_tick(third)
    runner.run_tick(fourth)

    again = protective_client_algo_id(entry, "stop_loss", 2)
    assert [a.client_algo_id for a in _open(runner)] == [again]
    assert len(runner.journal("POST", ALGO_PATH)) == 3  # the entry's lost one, generation 1's, then 2's
    stored = runner.stored(USER, sid).protective
    assert (stored["armed"], stored["orders"], "refused" in stored) == (True, {"stop_loss": 2}, False)
    assert [e.details.get("lost") for e in _events(sid, "protective_placed")] == [["stop_loss"]]


def test_a_lost_stop_placed_again_and_refused_for_good_is_not_tried_again_every_turn(runner) -> None:
    """GIVEN a live long whose entry's stop-loss was lost past Binance's retention and the mark since fell
    through its level WHEN the next turns run THEN generation 1 is sent once, Binance refuses it (-2021), an
    error event says so and no later turn sends another (no generation claimed a turn)."""
    first, second, third, fourth = _ticks(runner, 4)
    runner.sim.faults.add("timeout_1007", 1, method="POST", path=ALGO_PATH, execute=False)
    sid, entry, fill = _guarded_long(runner, first, stop_loss_pct="2")
    age_record(protective_client_algo_id(entry, "stop_loss"), PURGE_AFTER_MS + 60_000, user_id=USER)
    runner.sim.set_mark_price("BTCUSDT", float(fill * D("0.97")))

    runner.run_tick(second)
    runner.run_tick(third)
    runner.run_tick(fourth)

    assert _open(runner) == [] and len(runner.journal("POST", ALGO_PATH)) == 2
    assert get_order_record(USER, protective_client_algo_id(entry, "stop_loss", 1)).status == "REJECTED"
    assert get_order_record(USER, entry).protective_generations == 2
    [refusal] = [e for e in _events(sid, "error") if e.details["what"] == "protective_not_repriced"]
    assert "stop-loss placed again after its first order was lost" in refusal.details["message"]
    assert _events(sid, "protective_placed") == []


def test_a_re_priced_stop_lost_past_binances_retention_is_placed_again_at_its_new_level_not_refused(
        runner) -> None:
    """GIVEN a live long with SL 2 % moved to 1 % by a PATCH, whose re-priced stop-loss POST (generation 1)
    was lost unsent and whose lookups failed until its record was older than Binance's retention WHEN the next
    turns resume that claim THEN the stop-loss is placed again at 1 % under generation 2's id and the 2 % one
    cancelled, the record armed at 1 % with nothing remembered as refused and no error event calling it
    refused (before: it counted as refused for good: ``refused`` kept 1 %, an order_rejected error, the 2 %
    stop stayed and 1 % was never tried again until the percents change); a further turn sends nothing."""
    first, second, third, fourth = _ticks(runner, 4)
    sid, entry, fill = _guarded_long(runner, first, stop_loss_pct="2")
    _patch(runner, sid, {"stop_loss_pct": "1"})
    runner.sim.faults.add("timeout_1007", 1, method="POST", path=ALGO_PATH, execute=False)
    runner.run_tick(second)
    moved = protective_client_algo_id(entry, "stop_loss", 1)
    assert get_order_record(USER, moved).status == "UNKNOWN"
    age_record(moved, PURGE_AFTER_MS + 60_000, user_id=USER)

    runner.run_tick(third)
    runner.run_tick(fourth)

    again = protective_client_algo_id(entry, "stop_loss", 2)
    assert get_order_record(USER, moved).status == "UNKNOWN_PURGED"
    assert [a.client_algo_id for a in _open(runner)] == [again]
    level = protective_prices("BUY", fill, D(1), None)[0]
    assert _algos(runner)[again].trigger_price == _tick_price(runner, level)
    assert _algos(runner)[protective_client_algo_id(entry, "stop_loss")].status == "CANCELED"
    assert len(runner.journal("POST", ALGO_PATH)) == 3  # the entry's stop, generation 1's lost one, then 2's
    stored = runner.stored(USER, sid).protective
    assert (stored["armed"], stored["orders"], "refused" in stored, "repricing" in stored) == (
        True, {"stop_loss": 2}, False, False)
    assert D(str(stored["stop_loss"])) == level
    assert [e.details["category"] for e in _events(sid, "error")] == ["unknown_outcome"]  # generation 1's
    assert len(_events(sid, "protective_repriced")) == 1


def test_a_stop_refused_while_the_account_is_liquidated_is_placed_on_the_next_turn(runner, monkeypatch):
    """GIVEN a live entry with SL 2 % whose stop Binance refuses while the account is being liquidated (-2023)
    WHEN the next turn runs, the liquidation over and the position still open THEN the stop-loss is placed
    and the record armed: a liquidation is waited out, never taken as a refusal for good."""
    from local.binance_sim.errors import ApiError

    first, second = _ticks(runner, 2)
    algo = runner.sim.state.algo
    place = algo.place

    def in_liquidation(*_args: object) -> None:
        raise ApiError(400, -2023, "User in liquidation mode now.")

    monkeypatch.setattr(algo, "place", in_liquidation)
    sid, entry, _fill = _guarded_long(runner, first, stop_loss_pct="2")
    stored = runner.stored(USER, sid).protective
    assert (stored["armed"], "refused" in stored) == (False, False)
    monkeypatch.setattr(algo, "place", place)

    runner.run_tick(second)

    assert [a.client_algo_id for a in _open(runner)] == [protective_client_algo_id(entry, "stop_loss")]
    assert runner.stored(USER, sid).protective["armed"] is True


@pytest.mark.parametrize("forget", [True, False], ids=["status_read", "algo_refusal"])
def test_stops_kept_from_an_entry_by_a_halt_are_placed_once_the_symbol_trades_again(runner, monkeypatch,
                                                                                      forget):
    """GIVEN a live entry with SL 2 % / TP 3 % whose symbol Binance halts right after the fill (the arming
    reads the halt; or, the container's exchangeInfo still saying TRADING, the algo service refuses them,
    -4140) WHEN the next turn runs with the symbol trading again THEN both stops are placed under the entry's
    own ids: a halt is not a refusal for good."""
    first, second = _ticks(runner, 2)
    client = get_client(Market.FUTURES, "production")
    undo = status_after_the_fill(runner.sim, monkeypatch, "TRADING_HALT", forget=forget)
    sid, entry, _fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    undo()
    assert _open(runner) == []
    stored = runner.stored(USER, sid).protective
    assert (stored["armed"], stored["parent_client_order_id"], "refused" in stored) == (False, entry, False)
    runner.sim.set_symbol_status("BTCUSDT", "TRADING")
    assert listed_symbol_rules(client, "BTCUSDT", max_age_s=0.0).status == "TRADING"

    runner.run_tick(second)

    assert sorted(a.client_algo_id for a in _open(runner)) == sorted(
        protective_client_algo_id(entry, role) for role in ("stop_loss", "take_profit"))
    assert runner.stored(USER, sid).protective["armed"] is True


def test_stops_kept_from_an_entry_by_its_contract_ending_are_refused_for_good(runner, monkeypatch):
    """GIVEN a live entry with SL 2 % / TP 3 % whose symbol's contract Binance ends right after the fill
    (SETTLING: it never trades again) WHEN the entry's turn arms its stops THEN nothing is placed and the
    record keeps the levels as refused: they are not tried again."""
    first = _ticks(runner, 1)[0]
    status_after_the_fill(runner.sim, monkeypatch, "SETTLING")
    sid, entry, _fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")

    assert _open(runner) == [] and runner.journal("POST", ALGO_PATH) == []
    stored = runner.stored(USER, sid).protective
    assert (stored["armed"], stored["parent_client_order_id"], "refused" in stored) == (False, entry, True)


def _revoke_futures(runner, account_id: str = "futures-full") -> None:
    """The account's key loses its futures right on Binance (the user edited it): signed futures calls
    answer -2015 from now on."""
    account = runner.sim.account(account_id)
    permissions = dataclasses.replace(account.permissions, futures=False)
    runner.sim.state.accounts_by_key[account.api_key] = dataclasses.replace(account, permissions=permissions)


def test_a_revoked_key_keeping_a_stop_off_disables_the_connection_not_a_failed_run_a_minute(runner) -> None:
    """GIVEN a live entry whose take-profit Binance could not take (503), then a key that lost its futures
    right WHEN the next turns read the position to place it THEN each refusal counts on the connection, the
    third disables it and pauses the strategy, and no turn after that sends anything."""
    ticks = _ticks(runner, 5)
    runner.sim.faults.add("http_503_unavailable", count=50, method="POST", path=ALGO_PATH, after=1)
    sid, _entry, _fill = _guarded_long(runner, ticks[0], stop_loss_pct="2", take_profit_pct="3")
    runner.sim.faults.clear()
    connection_id = runner.stored(USER, sid).connection_id
    _revoke_futures(runner)

    for tick in ticks[1:4]:
        runner.run_tick(tick)

    connection = get_connection(USER, connection_id, consistent=True)
    disabled = "connection_disabled:permission"
    assert (connection.consecutive_failures, connection.disabled_reason) == (3, disabled)
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason) == ("paused", disabled)
    sent = len(runner.signed_calls())

    runner.run_tick(ticks[4])

    assert len(runner.signed_calls()) == sent


def test_a_stop_refused_at_entry_is_not_tried_again_every_turn(runner, monkeypatch) -> None:
    """GIVEN a live entry whose stop Binance refuses for good (-2021: the mark fell through it between the
    fill and the stop) WHEN the next turns run THEN nothing more is sent; the refusal is told once."""
    first, second, third = _ticks(runner, 3)
    algo, moved = runner.sim.state.algo, []
    place = algo.place

    def mark_falls_first(*args: Any) -> Any:
        if not moved:
            moved.append(runner.sim.mark_price("BTCUSDT") * 0.9)
            runner.sim.set_mark_price("BTCUSDT", moved[0])
        return place(*args)

    monkeypatch.setattr(algo, "place", mark_falls_first)
    sid, _entry, _fill = _guarded_long(runner, first, stop_loss_pct="2")
    stored = runner.stored(USER, sid).protective
    assert (stored["armed"], "refused" in stored) == (False, True)
    sent = len(runner.journal("POST", ALGO_PATH))

    runner.run_tick(second)
    runner.run_tick(third)

    assert sent == 1 and len(runner.journal("POST", ALGO_PATH)) == sent
    assert [e.details["what"] for e in _events(sid, "error")] == ["protective_not_armed"]


def test_a_stop_binance_answers_invalid_at_entry_is_not_tried_again_every_turn(runner) -> None:
    """GIVEN a live entry with SL 99.9 % (a trigger under the symbol's minimum price: Binance answers
    invalid_request) WHEN the next turn runs THEN nothing more is sent; the refusal is recorded once."""
    first, second = _ticks(runner, 2)
    sid, entry, _fill = _guarded_long(runner, first, stop_loss_pct="99.9")
    stored = runner.stored(USER, sid).protective
    assert (stored["armed"], stored["parent_client_order_id"], "refused" in stored) == (False, entry, True)
    sent = len(runner.journal("POST", ALGO_PATH))

    runner.run_tick(second)

    assert sent == 1 and len(runner.journal("POST", ALGO_PATH)) == sent
    assert [e.details["what"] for e in _events(sid, "error")] == ["protective_not_armed"]


def test_a_new_stop_the_mark_already_crossed_is_refused_and_the_old_orders_stay(runner) -> None:
    """GIVEN a live long with SL 2 % / TP 3 % and the mark 1 % below the fill WHEN the PATCH sets SL 0.5 %
    (already crossed: Binance -2021) and TP 5 % THEN the old pair stays, the new take-profit placed
    meanwhile is cancelled, an error event says so, and the next turn does not try the same levels again."""
    first, second, third = _ticks(runner, 3)
    sid, entry, fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    runner.sim.set_mark_price("BTCUSDT", float(fill * D("0.99")))
    _patch(runner, sid, {"stop_loss_pct": "0.5", "take_profit_pct": "5"})

    runner.run_tick(second)

    old_ids = sorted(protective_client_algo_id(entry, role) for role in ("stop_loss", "take_profit"))
    assert sorted(a.client_algo_id for a in _open(runner)) == old_ids
    assert _algos(runner)[protective_client_algo_id(entry, "take_profit", 1)].status == "CANCELED"
    assert [e.details["category"] for e in _events(sid, "error")] == ["order_rejected"]
    sent = len(runner.journal("POST", ALGO_PATH))

    runner.run_tick(third)

    assert len(runner.journal("POST", ALGO_PATH)) == sent
    assert sorted(a.client_algo_id for a in _open(runner)) == old_ids


def test_a_fired_repriced_stop_cancels_the_entrys_take_profit_of_another_generation(runner) -> None:
    """GIVEN a re-priced stop-loss (generation 1) beside the entry's first take-profit (generation 0) WHEN the
    stop fires THEN a read of the open orders cancels the take-profit (siblings of every generation)."""
    first, second = _ticks(runner, 2)
    sid, entry, fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"stop_loss_pct": "1"})
    runner.run_tick(second)
    runner.sim.set_mark_price("BTCUSDT", float(fill * D("0.985")))  # the new 1 % stop fires
    tp = protective_client_algo_id(entry, "take_profit")
    assert _algos(runner)[tp].status == "NEW"

    list_open_orders(USER, runner.stored(USER, sid).connection_id, "BTCUSDT")  # cancels fired siblings

    assert _algos(runner)[tp].status == "CANCELED"


def _guarded_with_trail(runner, tick_ms: int) -> tuple[str, str, Decimal]:
    """A live long with SL 2 %, TP 3 % and a 4 % trailing stop armed (generation 0)."""
    sid, entry, fill = _guarded_long(runner, tick_ms, stop_loss_pct="2", take_profit_pct="3",
                                     trailing_stop_pct="4")
    assert sorted(a.client_algo_id for a in _open(runner)) == sorted(
        protective_client_algo_id(entry, role) for role in ROLES)
    return sid, entry, fill


def _reprice_one_role(runner, changes: dict[str, str], role: str) -> tuple[str, str, Decimal, dict[str, Any]]:
    """A live long with SL, TP and a trailing stop, PATCHed with ``changes`` and ticked: (strategy id, entry,
    fill, the simulator's algo orders), having checked that only ``role`` got a new order (generation 1),
    its old one cancelled, the other two roles' ORIGINAL orders still open, and one POST more than the
    entry's three."""
    first, second = _ticks(runner, 2)
    sid, entry, fill = _guarded_with_trail(runner, first)
    _patch(runner, sid, changes)

    runner.run_tick(second)

    new = protective_client_algo_id(entry, role, 1)
    kept = [protective_client_algo_id(entry, other) for other in ROLES if other != role]
    assert sorted(a.client_algo_id for a in _open(runner)) == sorted([new, *kept])
    algos = _algos(runner)
    assert algos[protective_client_algo_id(entry, role)].status == "CANCELED"
    assert len(runner.journal("POST", ALGO_PATH)) == 4  # the entry's three, then the new one only
    return sid, entry, fill, algos


def test_moving_only_the_stop_keeps_the_trailing_stop_and_take_profit_orders(runner) -> None:
    """GIVEN a live long with SL, TP and a trailing stop WHEN the PATCH moves only stop_loss_pct THEN the next
    turn places only a new stop-loss at the new price, cancels the old one, and leaves the ORIGINAL
    trailing stop (its trail kept) and take-profit orders open."""
    sid, entry, fill, algos = _reprice_one_role(runner, {"stop_loss_pct": "1"}, "stop_loss")

    new_sl = protective_client_algo_id(entry, "stop_loss", 1)
    sl = protective_prices("BUY", fill, D(1), None)[0]
    assert (algos[new_sl].order_type, algos[new_sl].trigger_price) == ("STOP_MARKET", _tick_price(runner, sl))
    stored = runner.stored(USER, sid).protective
    assert stored["orders"] == {"stop_loss": 1, "take_profit": 0, "trailing_stop": 0}


def test_moving_only_the_trailing_percent_replaces_only_the_trailing_stop(runner) -> None:
    """GIVEN a live long with SL, TP and a 4 % trailing stop WHEN the PATCH sets trailing_stop_pct 2 THEN only
    the trailing stop is replaced (callbackRate 2); the stop-loss and take-profit keep their orders."""
    _sid, entry, _fill, algos = _reprice_one_role(runner, {"trailing_stop_pct": "2"}, "trailing_stop")

    new_ts = protective_client_algo_id(entry, "trailing_stop", 1)
    assert (algos[new_ts].order_type, algos[new_ts].callback_rate) == ("TRAILING_STOP_MARKET", D(2))


def test_a_fired_generation_1_stop_cancels_the_generation_0_take_profit_and_trailing_stop(runner) -> None:
    """GIVEN SL re-priced (generation 1) beside the entry's TP and trailing stop (generation 0) WHEN the new
    stop fires THEN a read of the open orders cancels the generation-0 take-profit and trailing stop."""
    first, second = _ticks(runner, 2)
    sid, entry, fill = _guarded_with_trail(runner, first)
    _patch(runner, sid, {"stop_loss_pct": "1"})
    runner.run_tick(second)
    others = [protective_client_algo_id(entry, role) for role in ("take_profit", "trailing_stop")]
    assert [_algos(runner)[i].status for i in others] == ["NEW"] * 2
    runner.sim.set_mark_price("BTCUSDT", float(fill * D("0.985")))  # the new 1 % stop fires, not the trail
    assert _algos(runner)[protective_client_algo_id(entry, "stop_loss", 1)].status in FIRED

    list_open_orders(USER, runner.stored(USER, sid).connection_id, "BTCUSDT")

    assert [_algos(runner)[i].status for i in others] == ["CANCELED"] * 2
    assert _open(runner) == []


def test_a_fired_generation_0_take_profit_cancels_the_generation_1_stop(runner) -> None:
    """GIVEN SL re-priced (generation 1) beside the entry's TP and trailing stop (generation 0) WHEN the
    generation-0 take-profit fires THEN a read of the open orders cancels the generation-1 stop-loss and the
    trailing stop."""
    first, second = _ticks(runner, 2)
    sid, entry, fill = _guarded_with_trail(runner, first)
    _patch(runner, sid, {"stop_loss_pct": "1"})
    runner.run_tick(second)
    others = [protective_client_algo_id(entry, "stop_loss", 1),
              protective_client_algo_id(entry, "trailing_stop")]
    assert [_algos(runner)[i].status for i in others] == ["NEW"] * 2
    runner.sim.set_mark_price("BTCUSDT", float(fill * D("1.035")))  # the 3 % take-profit fires
    assert _algos(runner)[protective_client_algo_id(entry, "take_profit")].status in FIRED

    list_open_orders(USER, runner.stored(USER, sid).connection_id, "BTCUSDT")

    assert [_algos(runner)[i].status for i in others] == ["CANCELED"] * 2
    assert _open(runner) == []


def test_a_redelivered_turn_after_a_partial_reprice_sends_nothing_again(runner) -> None:
    """GIVEN a turn that re-priced only the stop-loss of an SL / TP / trailing-stop position WHEN SQS delivers
    its message again THEN nothing is sent to Binance again (no order, no cancel) and the same three
    orders stay open."""
    first, second = _ticks(runner, 2)
    sid, entry, _fill = _guarded_with_trail(runner, first)
    _patch(runner, sid, {"stop_loss_pct": "1.5"})
    runner.tick(second)
    event = sqs_event(runner.receive(), runner.queue_arn, runner.aws.region)
    runner.work_event(event)
    posts, deletes = len(runner.journal("POST", ALGO_PATH)), len(runner.journal("DELETE", ALGO_PATH))
    left = sorted(a.client_algo_id for a in _open(runner))

    runner.work_event(event)

    assert (len(runner.journal("POST", ALGO_PATH)), len(runner.journal("DELETE", ALGO_PATH))) == (
        posts, deletes) == (4, 1)
    assert sorted(a.client_algo_id for a in _open(runner)) == left == sorted(
        [protective_client_algo_id(entry, "stop_loss", 1),
         *(protective_client_algo_id(entry, role) for role in ("take_profit", "trailing_stop"))])
    assert len(_events(sid, "protective_repriced")) == 1


def test_a_flip_after_a_partial_reprice_cancels_every_order_of_every_generation(runner) -> None:
    """GIVEN SL re-priced (generation 1) beside the entry's TP and trailing stop (generation 0) WHEN the
    signal turns short THEN the long's orders of both generations are cancelled, only the short's open."""
    first, second, third = _ticks(runner, 3)
    sid, entry, _fill = _guarded_with_trail(runner, first)
    _patch(runner, sid, {"stop_loss_pct": "1"})
    runner.run_tick(second)
    strategy_store.update_settings(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_SHORT})

    runner.run_tick(third)

    long_orders = [protective_client_algo_id(entry, "stop_loss", 1),
                   *(protective_client_algo_id(entry, role) for role in ROLES)]
    assert [_algos(runner)[i].status for i in long_orders] == ["CANCELED"] * 4
    short = runner.runs(sid)[0].order["client_order_id"]
    assert short != entry and sorted(a.client_algo_id for a in _open(runner)) == sorted(
        protective_client_algo_id(short, role) for role in ROLES)


# ---------------------------------------------------------- percents added to a position entered without any
def _unguarded_long(runner, tick_ms: int) -> tuple[str, str, Decimal]:
    """A live long entered on ``tick_ms``'s candle with no percents: (strategy, entry id, average entry)."""
    sid, entry, _fill = _guarded_long(runner, tick_ms)
    stored = runner.stored(USER, sid)
    assert stored.protective is None and _algos(runner) == {}
    return sid, entry, D(str(stored.live_book["entry_price"]))


def _only_open(runner, client_algo_id: str) -> Any:
    """The one open algo order, checked to be ``client_algo_id``, reduce-only for the whole position."""
    [order] = _open(runner)
    assert (order.client_algo_id, order.quantity, order.reduce_only) == (client_algo_id, D("0.002"), True)
    return order


def test_a_stop_added_to_a_position_entered_without_one_is_placed_once(runner) -> None:
    """GIVEN a live long entered with no percents WHEN the PATCH adds stop_loss_pct 1 THEN the next turn
    places one reduce-only stop for the whole position at 1 % under the average entry, records it armed
    under the entry, with a protective_repriced event from no levels; a further turn sends nothing more."""
    first, second, third = _ticks(runner, 3)
    sid, entry, price = _unguarded_long(runner, first)
    _patch(runner, sid, {"stop_loss_pct": "1"})

    runner.run_tick(second)

    sl = protective_prices("BUY", price, D(1), None)[0]
    stop = _only_open(runner, protective_client_algo_id(entry, "stop_loss", 1))
    assert (stop.order_type, stop.trigger_price) == ("STOP_MARKET", _tick_price(runner, sl))
    stored = runner.stored(USER, sid).protective
    assert (stored["parent_client_order_id"], stored["armed"], stored["orders"]) == (
        entry, True, {"stop_loss": 1})
    assert D(str(stored["stop_loss"])) == sl
    assert get_order_record(USER, entry).protective_generations == 2
    [event] = _events(sid, "protective_repriced")
    assert D(event.details["new_stop_loss"]) == sl and not any(k.startswith("old_") for k in event.details)
    assert _events(sid, "error") == []
    sent = len(runner.journal("POST", ALGO_PATH))

    runner.run_tick(third)

    assert len(runner.journal("POST", ALGO_PATH)) == sent == 1
    assert len(_events(sid, "protective_repriced")) == 1
    assert runner.stored(USER, sid).live_book["entry_client_order_id"] == entry  # recorded at the fill


def test_a_trailing_stop_added_to_a_position_entered_without_one_is_placed(runner) -> None:
    """GIVEN a live long entered with no percents WHEN the PATCH adds trailing_stop_pct 2 THEN the next turn
    places exactly one reduce-only TRAILING_STOP_MARKET (callbackRate 2) for the whole position."""
    first, second = _ticks(runner, 2)
    sid, entry, _price = _unguarded_long(runner, first)
    _patch(runner, sid, {"trailing_stop_pct": "2"})

    runner.run_tick(second)

    trail = _only_open(runner, protective_client_algo_id(entry, "trailing_stop", 1))
    assert (trail.order_type, trail.callback_rate) == ("TRAILING_STOP_MARKET", D(2))
    assert runner.stored(USER, sid).protective["orders"] == {"trailing_stop": 1}
    assert len(_events(sid, "protective_repriced")) == 1


def test_a_stop_cleared_then_added_back_uses_a_generation_never_used(runner) -> None:
    """GIVEN a stop added to a position entered without one (generation 1) WHEN every percent is cleared, then
    a stop added again THEN the new stop is generation 2 (never a clientAlgoId used before), the first one
    cancelled."""
    first, second, third, fourth = _ticks(runner, 4)
    sid, entry, price = _unguarded_long(runner, first)
    _patch(runner, sid, {"stop_loss_pct": "1"})
    runner.run_tick(second)
    _patch(runner, sid, {"stop_loss_pct": None})
    runner.run_tick(third)
    assert _open(runner) == [] and runner.stored(USER, sid).protective is None

    _patch(runner, sid, {"stop_loss_pct": "2"})
    runner.run_tick(fourth)

    stop = _only_open(runner, protective_client_algo_id(entry, "stop_loss", 2))
    assert stop.trigger_price == _tick_price(runner, protective_prices("BUY", price, D(2), None)[0])
    assert _algos(runner)[protective_client_algo_id(entry, "stop_loss", 1)].status == "CANCELED"
    assert runner.stored(USER, sid).protective["orders"] == {"stop_loss": 2}
    assert get_order_record(USER, entry).protective_generations == 3


def test_stops_armed_at_entry_cleared_then_added_back_use_generation_1(runner) -> None:
    """GIVEN a live long whose entry armed SL 2 % (generation 0) WHEN every percent is cleared, then SL 1 %
    set THEN the next turn places a generation-1 stop (the entry's own id is not reused)."""
    first, second, third = _ticks(runner, 3)
    sid, entry, _fill = _guarded_long(runner, first, stop_loss_pct="2")
    _patch(runner, sid, {"stop_loss_pct": None})
    runner.run_tick(second)
    assert _open(runner) == [] and runner.stored(USER, sid).protective is None

    _patch(runner, sid, {"stop_loss_pct": "1"})
    runner.run_tick(third)

    _only_open(runner, protective_client_algo_id(entry, "stop_loss", 1))
    assert _algos(runner)[protective_client_algo_id(entry, "stop_loss")].status == "CANCELED"


def _crossed_stop_added(runner, tick_ms: int) -> tuple[str, str, Decimal]:
    """A live long entered with no percents on ``tick_ms``'s candle, the mark then 1 % below its entry, and
    a PATCH adding SL 0.5 % (already crossed: Binance answers -2021): (strategy, entry id, average entry)."""
    sid, entry, price = _unguarded_long(runner, tick_ms)
    runner.sim.set_mark_price("BTCUSDT", float(price * D("0.99")))
    _patch(runner, sid, {"stop_loss_pct": "0.5"})
    return sid, entry, price


def test_an_added_stop_the_mark_already_crossed_is_refused_once(runner) -> None:
    """GIVEN a live long entered with no percents and the mark 1 % below the entry WHEN the PATCH adds SL
    0.5 % (already crossed: Binance -2021) THEN nothing stays open, one error event says so, the position
    is as it was, and the next turn does not try the same level again."""
    first, second, third = _ticks(runner, 3)
    sid, _entry, _price = _crossed_stop_added(runner, first)

    runner.run_tick(second)

    assert _open(runner) == []
    [error] = _events(sid, "error")
    assert (error.details["what"], error.details["category"]) == ("protective_not_repriced", "order_rejected")
    stored = runner.stored(USER, sid)
    assert stored.live_position == D("0.002") and stored.protective.get("armed") is not True
    sent = len(runner.journal("POST", ALGO_PATH))

    runner.run_tick(third)

    assert len(runner.journal("POST", ALGO_PATH)) == sent
    assert len(_events(sid, "error")) == 1 and _open(runner) == []


def test_an_added_stop_refused_then_widened_is_placed_in_the_next_generation(runner) -> None:
    """GIVEN an added SL 0.5 % refused (the mark 1 % below the entry) WHEN the PATCH widens it to 2 % THEN the
    next turn places the 2 % stop as generation 2 (the refused claim's generation 1 is not reused)."""
    first, second, third = _ticks(runner, 3)
    sid, entry, price = _crossed_stop_added(runner, first)
    runner.run_tick(second)
    assert _open(runner) == []

    _patch(runner, sid, {"stop_loss_pct": "2"})
    runner.run_tick(third)

    stop = _only_open(runner, protective_client_algo_id(entry, "stop_loss", 2))
    assert stop.trigger_price == _tick_price(runner, protective_prices("BUY", price, D(2), None)[0])
    stored = runner.stored(USER, sid).protective
    assert (stored["armed"], stored["orders"], "refused" in stored) == (True, {"stop_loss": 2}, False)


def _crossed_take_profit_added(runner, tick_ms: int) -> tuple[str, str, Decimal]:
    """A live long entered with no percents on ``tick_ms``'s candle, the mark then 4 % above its entry, and a
    PATCH adding SL 1 % and TP 3 % (the take-profit already crossed: Binance answers -2021, the stop is
    accepted): (strategy, entry id, average entry)."""
    sid, entry, price = _unguarded_long(runner, tick_ms)
    runner.sim.set_mark_price("BTCUSDT", float(price * D("1.04")))
    _patch(runner, sid, {"stop_loss_pct": "1", "take_profit_pct": "3"})
    return sid, entry, price


def test_an_added_take_profit_the_mark_already_crossed_keeps_the_added_stop(runner) -> None:
    """GIVEN a live long entered with no percents and the mark 4 % above the entry WHEN the PATCH adds SL 1 %
    and TP 3 % (the take-profit already crossed: Binance -2021) THEN the stop Binance accepted stays open (not
    cancelled for the refused take-profit), the record names it and remembers the levels as refused, an error
    event names the take-profit; the next turn sends nothing again."""
    first, second, third = _ticks(runner, 3)
    sid, entry, price = _crossed_take_profit_added(runner, first)

    runner.run_tick(second)

    stop = _only_open(runner, protective_client_algo_id(entry, "stop_loss", 1))
    assert stop.trigger_price == _tick_price(runner, protective_prices("BUY", price, D(1), None)[0])
    stored = runner.stored(USER, sid).protective
    assert (stored["armed"], stored["orders"], "repricing" in stored) == (True, {"stop_loss": 1}, False)
    levels = reprice_module.levels(stored)
    assert "take_profit" in levels and reprice_module.levels(stored["refused"]) == levels  # tried once
    [error] = _events(sid, "error")
    assert (error.details["what"], error.details["category"]) == ("protective_not_repriced", "order_rejected")
    assert "take-profit" in error.details["message"] and "stop-loss" in error.details["message"]
    [repriced] = _events(sid, "protective_repriced")
    assert D(repriced.details["new_stop_loss"]) == D(str(stored["stop_loss"]))
    sent = len(runner.journal("POST", ALGO_PATH))

    runner.run_tick(third)

    assert len(runner.journal("POST", ALGO_PATH)) == sent == 2  # the stop, the refused take-profit
    assert len(_events(sid, "error")) == 1
    _only_open(runner, protective_client_algo_id(entry, "stop_loss", 1))


def test_an_added_take_profit_refused_is_tried_again_when_only_the_stop_percent_changes(runner) -> None:
    """GIVEN an added SL 1 % placed beside a refused TP 3 % WHEN the mark falls back and the PATCH moves only
    the stop to 2 % THEN the next turn places the take-profit too (it has no order to keep), beside the moved
    stop, the first stop cancelled."""
    first, second, third = _ticks(runner, 3)
    sid, entry, price = _crossed_take_profit_added(runner, first)
    runner.run_tick(second)
    runner.sim.set_mark_price("BTCUSDT", float(price))

    _patch(runner, sid, {"stop_loss_pct": "2"})
    runner.run_tick(third)

    moved = [protective_client_algo_id(entry, role, 2) for role in ("stop_loss", "take_profit")]
    assert sorted(a.client_algo_id for a in _open(runner)) == sorted(moved)
    assert _algos(runner)[protective_client_algo_id(entry, "stop_loss", 1)].status == "CANCELED"
    stored = runner.stored(USER, sid).protective
    assert (stored["orders"], "refused" in stored) == ({"stop_loss": 2, "take_profit": 2}, False)


def _crossed_take_profit_moved_beside_an_added_stop(runner, tick_ms: int, **settings: str) -> tuple[str, str]:
    """A live long entered with ``settings`` (a take-profit of 5 %) on ``tick_ms``'s candle, the mark then 2 %
    above its fill, and a PATCH setting SL 1 % and moving the TP to 1.5 % (already crossed: Binance answers
    -2021, the stop is accepted): (strategy, entry id)."""
    sid, entry, fill = _guarded_long(runner, tick_ms, take_profit_pct="5", **settings)
    runner.sim.set_mark_price("BTCUSDT", float(fill * D("1.02")))
    _patch(runner, sid, {"stop_loss_pct": "1", "take_profit_pct": "1.5"})
    return sid, entry


def test_a_moved_take_profit_refused_keeps_a_stop_added_beside_it(runner) -> None:
    """GIVEN a live long armed with only a TP 5 % and the mark 2 % above the fill WHEN the PATCH adds SL 1 %
    and moves the TP to 1.5 % (already crossed: Binance -2021) THEN the new stop Binance accepted stays open
    beside the earlier take-profit (the earlier orders had no stop to keep), both for the whole position; the
    record names both orders at their own levels and remembers the wanted ones as refused, the events say
    so; the next turn sends nothing again."""
    first, second, third = _ticks(runner, 3)
    sid, entry = _crossed_take_profit_moved_beside_an_added_stop(runner, first)
    before = runner.stored(USER, sid).protective

    runner.run_tick(second)

    stop, take_profit = protective_client_algo_id(entry, "stop_loss", 1), protective_client_algo_id(
        entry, "take_profit")
    assert sorted((a.client_algo_id, a.quantity, a.reduce_only) for a in _open(runner)) == sorted(
        [(stop, D("0.002"), True), (take_profit, D("0.002"), True)])
    stored = runner.stored(USER, sid).protective
    assert (stored["armed"], stored["orders"], "repricing" in stored) == (
        True, {"stop_loss": 1, "take_profit": 0}, False)
    recorded, refused = reprice_module.levels(stored), reprice_module.levels(stored["refused"])
    assert recorded["take_profit"] == D(str(before["take_profit"]))  # the order that stands, not the refused
    assert recorded["stop_loss"] == refused["stop_loss"] and refused["take_profit"] < recorded["take_profit"]
    assert _algos(runner)[stop].trigger_price == _tick_price(runner, recorded["stop_loss"])
    [error] = _events(sid, "error")
    assert (error.details["what"], error.details["category"]) == ("protective_not_repriced", "order_rejected")
    assert "take-profit" in error.details["message"] and "stop-loss" in error.details["message"]
    [repriced] = _events(sid, "protective_repriced")
    assert D(repriced.details["new_stop_loss"]) == recorded["stop_loss"]
    assert D(repriced.details["new_take_profit"]) == recorded["take_profit"]
    sent = len(runner.journal("POST", ALGO_PATH))

    runner.run_tick(third)

    assert len(runner.journal("POST", ALGO_PATH)) == sent == 3  # the entry's TP, the stop, the refused TP
    assert len(_events(sid, "error")) == 1
    assert sorted(a.client_algo_id for a in _open(runner)) == sorted([stop, take_profit])


def test_a_moved_take_profit_refused_beside_an_added_stop_is_moved_when_the_percent_changes(runner) -> None:
    """GIVEN an added SL 1 % placed beside the earlier TP 5 % kept when its move to 1.5 % was refused WHEN the
    PATCH moves the take-profit to 3 % THEN the next turn places it (generation 2), cancels the earlier one,
    and keeps the added stop untouched."""
    first, second, third = _ticks(runner, 3)
    sid, entry = _crossed_take_profit_moved_beside_an_added_stop(runner, first)
    runner.run_tick(second)

    _patch(runner, sid, {"take_profit_pct": "3"})
    runner.run_tick(third)

    kept, moved = protective_client_algo_id(entry, "stop_loss", 1), protective_client_algo_id(
        entry, "take_profit", 2)
    assert sorted(a.client_algo_id for a in _open(runner)) == sorted([kept, moved])
    assert _algos(runner)[protective_client_algo_id(entry, "take_profit")].status == "CANCELED"
    stored = runner.stored(USER, sid).protective
    assert (stored["orders"], "refused" in stored) == ({"stop_loss": 1, "take_profit": 2}, False)


def test_a_moved_take_profit_refused_beside_a_moved_stop_keeps_the_earlier_pair(runner) -> None:
    """GIVEN a live long armed with SL 2 % and TP 5 % and the mark 2 % above the fill WHEN the PATCH moves the
    SL to 1 % and the TP to 1.5 % (already crossed: Binance -2021) THEN the earlier pair stays (the position
    keeps its earlier stop), the new stop placed meanwhile is cancelled."""
    first, second = _ticks(runner, 2)
    sid, entry = _crossed_take_profit_moved_beside_an_added_stop(runner, first, stop_loss_pct="2")

    runner.run_tick(second)

    assert sorted(a.client_algo_id for a in _open(runner)) == sorted(
        protective_client_algo_id(entry, role) for role in ("stop_loss", "take_profit"))
    assert _algos(runner)[protective_client_algo_id(entry, "stop_loss", 1)].status == "CANCELED"
    stored = runner.stored(USER, sid).protective
    assert reprice_module.armed_orders(stored) == {"stop_loss": 0, "take_profit": 0}


def test_a_moved_take_profit_refused_beside_an_added_stop_and_a_moved_trail_keeps_both(runner) -> None:
    """GIVEN a live long armed with TP 5 % and a 4 % trailing stop, the mark 2 % above the fill, WHEN the
    PATCH adds SL 1 %, moves the trail to 3 % and the TP to 1.5 % (already crossed: Binance -2021) THEN the
    new stop and the moved trail Binance accepted stay open, the earlier trail is cancelled, the earlier
    take-profit stays; the record arms exactly those three at their own levels, remembers the wanted levels
    as refused, the error event names the take-profit; the next turn sends nothing again."""
    first, second, third = _ticks(runner, 3)
    sid, entry, fill = _guarded_long(runner, first, take_profit_pct="5", trailing_stop_pct="4")
    before = runner.stored(USER, sid).protective
    runner.sim.set_mark_price("BTCUSDT", float(fill * D("1.02")))
    _patch(runner, sid, {"stop_loss_pct": "1", "take_profit_pct": "1.5", "trailing_stop_pct": "3"})

    runner.run_tick(second)

    stop, trail = (protective_client_algo_id(entry, role, 1) for role in ("stop_loss", "trailing_stop"))
    take_profit = protective_client_algo_id(entry, "take_profit")
    assert _armed_is_open(runner, sid) == {stop, trail, take_profit}
    assert _algos(runner)[protective_client_algo_id(entry, "trailing_stop")].status == "CANCELED"
    assert _algos(runner)[trail].callback_rate == D(3)
    stored = runner.stored(USER, sid).protective
    assert (stored["orders"], "repricing" in stored) == (
        {"stop_loss": 1, "take_profit": 0, "trailing_stop": 1}, False)
    recorded, refused = reprice_module.levels(stored), reprice_module.levels(stored["refused"])
    assert recorded["take_profit"] == D(str(before["take_profit"])) and refused["take_profit"] < recorded[
        "take_profit"]
    assert (recorded["stop_loss"], recorded["trailing_stop_pct"]) == (refused["stop_loss"], D(3))
    [error] = _events(sid, "error")
    assert (error.details["what"], error.details["category"]) == ("protective_not_repriced", "order_rejected")
    assert "take-profit" in error.details["message"]
    sent = len(runner.journal("POST", ALGO_PATH))

    runner.run_tick(third)

    assert len(runner.journal("POST", ALGO_PATH)) == sent
    assert _armed_is_open(runner, sid) == {stop, trail, take_profit}


# ------------------------------------------------ a change of levels beside entry orders Binance did not take
def _kept_off_at_entry(runner, monkeypatch, suffix: str, code: int) -> None:
    """Binance answers ``code`` to the entry's own order ending in ``suffix`` (generation 0, e.g. ``-tp``):
    -2021 refuses it for good (it would trigger at once), -2023 (in liquidation) keeps it off for now."""
    from local.binance_sim.errors import ApiError

    algo = runner.sim.state.algo
    place = algo.place

    def kept_off(account: Any, params: dict[str, Any], now_ms: float) -> Any:
        if str(params.get("clientAlgoId", "")).endswith(suffix):
            raise ApiError(400, code, "Would immediately trigger." if code == -2021 else "In liquidation.")
        return place(account, params, now_ms)

    monkeypatch.setattr(algo, "place", kept_off)


def _armed_is_open(runner, sid: str) -> set[str]:
    """The clientAlgoIds open on Binance, checked to be exactly the ones the record says are armed."""
    open_ids = {a.client_algo_id for a in _open(runner)}
    assert set(reprice_module.armed_ids(runner.stored(USER, sid).protective).values()) == open_ids
    return open_ids


@pytest.mark.parametrize("code", [-2021, -2023], ids=["refused_at_entry", "kept_off_at_entry"])
def test_a_stop_added_beside_an_unarmed_take_profit_refused_again_arms_only_the_stop(runner, monkeypatch,
                                                                                    code) -> None:
    """GIVEN a live long with TP 3 % whose take-profit Binance did not take at entry (refused for good, or
    kept off for now) and the mark then 4 % above the fill WHEN the PATCH adds SL 1 % (the take-profit
    unchanged, refused again: -2021) THEN the added stop stays open and the record arms it alone: it never
    names the entry's take-profit, which is not on Binance, as armed; the next turn sends nothing again."""
    first, second, third = _ticks(runner, 3)
    _kept_off_at_entry(runner, monkeypatch, "-tp", code)
    sid, entry, fill = _guarded_long(runner, first, take_profit_pct="3")
    stored = runner.stored(USER, sid).protective
    assert (_open(runner), stored["armed"], "refused" in stored) == ([], False, code == -2021)
    runner.sim.set_mark_price("BTCUSDT", float(fill * D("1.04")))
    _patch(runner, sid, {"stop_loss_pct": "1"})

    runner.run_tick(second)

    assert _armed_is_open(runner, sid) == {protective_client_algo_id(entry, "stop_loss", 1)}
    sent = len(runner.journal("POST", ALGO_PATH))

    runner.run_tick(third)

    assert len(runner.journal("POST", ALGO_PATH)) == sent
    assert _armed_is_open(runner, sid) == {protective_client_algo_id(entry, "stop_loss", 1)}


@pytest.mark.parametrize("code", [-2021, -2023], ids=["refused_at_entry", "kept_off_at_entry"])
def test_a_stop_moved_from_one_binance_did_not_take_at_entry_keeps_the_accepted_stop(runner, monkeypatch,
                                                                                     code) -> None:
    """GIVEN a live long with SL 2 % / TP 5 % whose stop Binance did not take at entry (refused for good, or
    kept off for now), its take-profit armed, and the mark then 2 % above the fill WHEN the PATCH moves the SL
    to 1 % and the TP to 1.5 % (already crossed: -2021) THEN the new stop Binance accepted stays open (no
    earlier stop remains to keep) beside the entry's take-profit, and the record arms exactly those two."""
    first, second = _ticks(runner, 2)
    _kept_off_at_entry(runner, monkeypatch, "-sl", code)
    sid, entry, fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="5")
    assert [a.client_algo_id for a in _open(runner)] == [protective_client_algo_id(entry, "take_profit")]
    stored = runner.stored(USER, sid).protective
    assert (stored["armed"], "refused" in stored) == (False, code == -2021)
    runner.sim.set_mark_price("BTCUSDT", float(fill * D("1.02")))
    _patch(runner, sid, {"stop_loss_pct": "1", "take_profit_pct": "1.5"})

    runner.run_tick(second)

    stop = protective_client_algo_id(entry, "stop_loss", 1)
    assert _algos(runner)[stop].status == "NEW"  # Binance accepted it: never cancelled by our hand
    assert _armed_is_open(runner, sid) == {stop, protective_client_algo_id(entry, "take_profit")}
    stored = runner.stored(USER, sid).protective
    assert reprice_module.levels(stored)["stop_loss"] == reprice_module.levels(stored["refused"])["stop_loss"]


def test_a_take_profit_kept_off_at_entry_is_placed_after_a_refused_change(runner) -> None:
    """GIVEN a live long with SL 2 % / TP 5 % whose take-profit Binance could not take at entry (503: a
    transient failure, not a refusal) and the mark then 2 % above the fill WHEN the PATCH moves the SL to 1 %
    and the TP to 1.5 % (already crossed: -2021, the earlier pair stays) THEN the next turn still places the
    entry's take-profit at its recorded 5 %, never treated as refused, and the record arms it; the refused
    levels are not sent again."""
    first, second, third, fourth = _ticks(runner, 4)
    runner.sim.faults.add("http_503_unavailable", count=50, method="POST", path=ALGO_PATH, after=1)
    sid, entry, fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="5")
    runner.sim.faults.clear()
    stop, take_profit = (protective_client_algo_id(entry, role) for role in ("stop_loss", "take_profit"))
    assert [a.client_algo_id for a in _open(runner)] == [stop]
    runner.sim.set_mark_price("BTCUSDT", float(fill * D("1.02")))
    _patch(runner, sid, {"stop_loss_pct": "1", "take_profit_pct": "1.5"})

    runner.run_tick(second)
    runner.run_tick(third)

    assert _armed_is_open(runner, sid) == {stop, take_profit}
    assert _algos(runner)[take_profit].trigger_price == _tick_price(
        runner, protective_prices("BUY", fill, None, D(5))[1], "take_profit")
    stored = runner.stored(USER, sid).protective
    recorded, refused = reprice_module.levels(stored), reprice_module.levels(stored["refused"])
    assert refused["take_profit"] < recorded["take_profit"]  # the change stays refused, not sent again
    sent = len(runner.journal("POST", ALGO_PATH))

    runner.run_tick(fourth)

    assert len(runner.journal("POST", ALGO_PATH)) == sent
    assert _armed_is_open(runner, sid) == {stop, take_profit}


def test_a_take_profit_kept_off_at_entry_then_refused_after_a_refused_change_is_sent_once(runner) -> None:
    """GIVEN a live long with SL 2 % / TP 5 % whose take-profit a 503 kept off at entry, and the mark then 6 %
    above the fill WHEN the PATCH moves the SL to 1 % and the TP to 1.5 % (refused: -2021) and the entry's
    take-profit, tried again, is refused too THEN the earlier stop stays, and the further turns send nothing
    (neither the change nor the entry's take-profit) and tell nothing more."""
    first, second, third, fourth = _ticks(runner, 4)
    runner.sim.faults.add("http_503_unavailable", count=50, method="POST", path=ALGO_PATH, after=1)
    sid, entry, fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="5")
    runner.sim.faults.clear()
    runner.sim.set_mark_price("BTCUSDT", float(fill * D("1.06")))
    _patch(runner, sid, {"stop_loss_pct": "1", "take_profit_pct": "1.5"})

    runner.run_tick(second)
    runner.run_tick(third)

    assert [a.client_algo_id for a in _open(runner)] == [protective_client_algo_id(entry, "stop_loss")]
    sent, told = len(runner.journal("POST", ALGO_PATH)), len(_events(sid, "error"))

    runner.run_tick(fourth)

    assert (len(runner.journal("POST", ALGO_PATH)), len(_events(sid, "error"))) == (sent, told)
    assert [a.client_algo_id for a in _open(runner)] == [protective_client_algo_id(entry, "stop_loss")]


def _forget_entry_order(sid: str) -> None:
    """The live book as an older version left it: no ``entry_client_order_id``."""
    from klineo.settings import get_settings
    from klineo.store import aws as aws_clients

    aws_clients.dynamodb().update_item(
        TableName=get_settings().data_table, Key=strategy_store.strategy_key(USER, sid),
        UpdateExpression="REMOVE live_book.entry_client_order_id")


def test_a_stop_added_to_a_position_of_an_older_version_is_refused_once(runner) -> None:
    """GIVEN a live long whose entry order was never recorded (an older version's) WHEN the PATCH adds SL 1 %
    THEN no order is sent, one error event (entry_not_recorded) says why, not repeated next turn; WHEN the
    percent changes again THEN one more event."""
    first, second, third, fourth = _ticks(runner, 4)
    sid, _entry, _price = _unguarded_long(runner, first)
    _forget_entry_order(sid)
    _patch(runner, sid, {"stop_loss_pct": "1"})

    runner.run_tick(second)
    runner.run_tick(third)

    assert runner.journal("POST", ALGO_PATH) == [] and runner.stored(USER, sid).live_position == D("0.002")
    [error] = _events(sid, "error")
    assert (error.details["what"], error.details["category"], error.details["stop_loss_pct"]) == (
        "protective_not_repriced", "entry_not_recorded", "1")

    _patch(runner, sid, {"stop_loss_pct": "2"})
    runner.run_tick(fourth)

    assert runner.journal("POST", ALGO_PATH) == [] and len(_events(sid, "error")) == 2


def test_a_note_left_beside_a_recorded_entry_does_not_block_its_stop(runner) -> None:
    """GIVEN a live long whose entry is recorded but whose record is still an older entry's note (a crash
    between the settle and the arming) WHEN the PATCH adds SL 1 % THEN the next turn places the stop."""
    from klineo.settings import get_settings
    from klineo.store import aws as aws_clients
    from klineo.store.dynamo import to_attr

    first, second = _ticks(runner, 2)
    sid, entry, _price = _unguarded_long(runner, first)
    aws_clients.dynamodb().update_item(
        TableName=get_settings().data_table, Key=strategy_store.strategy_key(USER, sid),
        UpdateExpression="SET protective = :note",
        ExpressionAttributeValues={
            ":note": to_attr({"mode": "live", "unrecorded_entry": {"stop_loss_pct": "5"}})})
    _patch(runner, sid, {"stop_loss_pct": "1"})

    runner.run_tick(second)

    _only_open(runner, protective_client_algo_id(entry, "stop_loss", 1))
    stored = runner.stored(USER, sid).protective
    assert (stored["parent_client_order_id"], stored["armed"]) == (entry, True)
    assert "unrecorded_entry" not in stored


def test_a_fired_added_stop_cancels_its_added_take_profit(runner) -> None:
    """GIVEN SL 1 % and TP 3 % added to a position entered without any WHEN the stop fires THEN a read of the
    open orders cancels the take-profit (the sibling rule through the entry's record)."""
    first, second = _ticks(runner, 2)
    sid, entry, price = _unguarded_long(runner, first)
    _patch(runner, sid, {"stop_loss_pct": "1", "take_profit_pct": "3"})
    runner.run_tick(second)
    tp = protective_client_algo_id(entry, "take_profit", 1)
    assert sorted(a.client_algo_id for a in _open(runner)) == sorted(
        [protective_client_algo_id(entry, "stop_loss", 1), tp])
    runner.sim.set_mark_price("BTCUSDT", float(price * D("0.985")))  # the added 1 % stop fires
    assert _algos(runner)[protective_client_algo_id(entry, "stop_loss", 1)].status in FIRED

    list_open_orders(USER, runner.stored(USER, sid).connection_id, "BTCUSDT")

    assert _algos(runner)[tp].status == "CANCELED" and _open(runner) == []


# ---------------------------------------------------------------------------------------------- paper
PAPER_USER = "e5e5e5e5-0000-4000-8000-00000000000e"
PAPER_CONNECTION = "e" * 32
START = int(dt.datetime(2025, 1, 5, tzinfo=dt.UTC).timestamp() * 1000)
# Warm-up flat at 100; a LONG entry on the first candle (close 101, filled at about 101.02); the next
# candle dips to 99: below a 1 % stop-loss (about 100.01), above a 5 % one (about 95.97); the one after
# never goes below 101.5 (no stop of either percent).
ROWS = [("100", "100", "100", "100")] * 3 + [
    ("100", "101", "100", "101"), ("101", "102", "99", "102"), ("102", "103", "101.5", "103")]


def _candles() -> list[Candle]:
    first = START - 3 * 60_000
    return [Candle(first + i * 60_000, D(o), D(h), D(lo), D(c), D(1), first + i * 60_000 + 59_999)
            for i, (o, h, lo, c) in enumerate(ROWS)]


def _paper_tick(candles: list[Candle], index: int, sid: str) -> Any:
    candle = candles[index]
    message = WorkMessage(tick=candle.close_time + 1, environment="production", symbol="BTCUSDT",
                          interval="1m", close_time=candle.close_time,
                          strategies=[StrategyRef(user_id=PAPER_USER, strategy_id=sid)])
    group = CandleGroup("production", "BTCUSDT", "1m", candle.close_time, tuple(candles[:index + 1]))
    seen_at = (candle.close_time + 1_000) / 1000
    ctx = TickContext(message, group, deadline_ms=int(seen_at * 1000) + 60_000, clock=lambda: seen_at)
    return run_strategy(strategy_store.get_strategy(PAPER_USER, sid, consistent=True), ctx)


def _paper_long(stop_loss_pct: str) -> tuple[str, list[Candle]]:
    """A paper long (SMA 1/2) entered on the first candle after the warm-up with ``stop_loss_pct``."""
    sid = put_paper_strategy(PAPER_USER, PAPER_CONNECTION, symbol="BTCUSDT", interval="1m",
                             parameters={"fast": 1, "slow": 2, "allow_short": False}, size=D("2"))
    stored = strategy_store.get_strategy(PAPER_USER, sid, consistent=True)
    strategy_store.update_settings(PAPER_USER, sid, stored, changes={"stop_loss_pct": D(stop_loss_pct)})
    candles = _candles()
    assert _paper_tick(candles, 3, sid).outcome == "simulated"
    return sid, candles


def _change(sid: str, **changes: Any) -> None:
    """What PATCH /strategies/{id} stores (``update_strategy``'s store write)."""
    stored = strategy_store.get_strategy(PAPER_USER, sid, consistent=True)
    strategy_store.update_settings(PAPER_USER, sid, stored, changes=changes)


def test_paper_a_candle_reaching_the_new_tighter_stop_closes_the_position_at_it(sim_env) -> None:
    """GIVEN a paper long with a 5 % stop WHEN the percent becomes 1 % and the next candle dips below the new
    level only THEN the position closes at the new level (slipped), with a protective_repriced event."""
    sid, candles = _paper_long("5")
    entry = D(str(strategy_store.get_strategy(PAPER_USER, sid, consistent=True).paper_book["entry_price"]))
    _change(sid, stop_loss_pct=D("1"))

    _paper_tick(candles, 4, sid)

    stored = strategy_store.get_strategy(PAPER_USER, sid, consistent=True)
    new_stop = protective_prices("BUY", entry, D(1), None)[0]
    [closed] = _events(sid, "protective_triggered")
    assert stored.paper_position == 0 and D(closed.details["price"]) == slipped("SELL", new_stop)
    [repriced] = _events(sid, "protective_repriced")
    assert D(repriced.details["new_stop_loss"]) == new_stop


def test_paper_a_candle_reaching_only_the_old_stop_leaves_the_position_open(sim_env) -> None:
    """GIVEN a paper long with a 1 % stop WHEN the percent becomes 5 % and the next candle dips below the old
    level only THEN the position stays open, its record at the new level."""
    sid, candles = _paper_long("1")
    entry = D(str(strategy_store.get_strategy(PAPER_USER, sid, consistent=True).paper_book["entry_price"]))
    _change(sid, stop_loss_pct=D("5"))

    _paper_tick(candles, 4, sid)

    stored = strategy_store.get_strategy(PAPER_USER, sid, consistent=True)
    assert stored.paper_position == D("2") and _events(sid, "protective_triggered") == []
    level = D(str(stored.paper_book["protective"]["stop_loss"]))
    assert level == protective_prices("BUY", entry, D(5), None)[0]


def test_paper_a_tighter_stop_set_after_a_dip_does_not_fire_on_that_earlier_candle(sim_env) -> None:
    """GIVEN a paper long with a 5 % stop that held through a candle dipping to 99 WHEN the percent becomes
    1 % and the next candle stays above it THEN the position stays open: the earlier candle, still in the
    turn's window, keeps the old level."""
    sid, candles = _paper_long("5")
    assert _paper_tick(candles, 4, sid).outcome == "no_change"  # the dip to 99 is above the 5 % stop
    _change(sid, stop_loss_pct=D("1"))

    _paper_tick(candles, 5, sid)

    stored = strategy_store.get_strategy(PAPER_USER, sid, consistent=True)
    assert stored.paper_position == D("2") and _events(sid, "protective_triggered") == []
    assert len(_events(sid, "protective_repriced")) == 1


def _crash_on_finish(monkeypatch: Any) -> dict[str, int]:
    """The re-pricing's final record write (the one with its protective_repriced event) is lost once, as a
    container lost (or a TransactionConflict raised) right after the replaced orders were cancelled."""
    real = reprice_module.replace_protective
    seen = {"n": 0}

    def crash_once(*args: Any, **kwargs: Any) -> Any:
        kinds = [e.kind for e in kwargs.get("events") or ()]
        if "protective_repriced" in kinds and seen["n"] == 0:
            seen["n"] += 1
            raise RuntimeError("container lost")
        return real(*args, **kwargs)

    monkeypatch.setattr(reprice_module, "replace_protective", crash_once)
    return seen


def test_a_record_write_lost_after_placing_then_a_revert_keeps_a_stop_open(runner, monkeypatch) -> None:
    """GIVEN a re-pricing whose final record write is lost WHEN the user goes back to the old percent THEN the
    open long still has a stop-loss on Binance (the replaced order is cancelled only once recorded)."""
    first, second, third = _ticks(runner, 3)
    sid, entry, _fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"stop_loss_pct": "1"})
    seen = _crash_on_finish(monkeypatch)

    runner.run_tick(second)  # gen-1 stop placed, gen-0 stop cancelled, then the record write is lost
    assert seen["n"] == 1
    assert _algos(runner)[protective_client_algo_id(entry, "stop_loss", 1)].status == "NEW"

    _patch(runner, sid, {"stop_loss_pct": "2"})  # the user goes back to the original stop
    runner.run_tick(third)

    stops = [a.client_algo_id for a in _open(runner) if a.order_type == "STOP_MARKET"]
    assert runner.stored(USER, sid).live_position > 0
    assert stops, f"open long left without any stop-loss; open: {[a.client_algo_id for a in _open(runner)]}"


def test_a_record_write_lost_then_another_level_moved_keeps_a_stop_open(runner, monkeypatch) -> None:
    """GIVEN a re-pricing whose final record write is lost WHEN the stop's percent is restored and the
    take-profit moved THEN a stop-loss is open on Binance, not a cancelled one recorded as armed."""
    first, second, third = _ticks(runner, 3)
    sid, _entry, _fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"stop_loss_pct": "1"})
    _crash_on_finish(monkeypatch)
    runner.run_tick(second)

    _patch(runner, sid, {"stop_loss_pct": "2", "take_profit_pct": "5"})
    runner.run_tick(third)

    stops = [a.client_algo_id for a in _open(runner) if a.order_type == "STOP_MARKET"]
    stored = runner.stored(USER, sid).protective
    assert stops, (f"open long left without any stop-loss while protective says armed with "
                   f"orders={stored.get('orders')}; open: {[a.client_algo_id for a in _open(runner)]}")


def _other_turn(connection: Any, sid: str, close_time: int) -> None:
    """Another attempt's re-pricing (an on-demand run racing the tick), played from a fresh read."""
    from klineo.runner.reprice import LiveReprice
    from klineo.store import strategies as strategy_store
    from klineo.store.events import StrategyEvent

    def make_event(kind: str, at: int | None = None, *, tag: str = "", **details: Any) -> StrategyEvent:
        plain = {k: str(v) if isinstance(v, Decimal) else v for k, v in details.items() if v is not None}
        return StrategyEvent(sid, USER, kind, close_time, plain, close_time=close_time, tag=tag)

    LiveReprice(strategy_store.get_strategy(USER, sid, consistent=True), connection, make_event).play()


def test_a_reprice_superseded_by_a_racing_one_ends_at_the_newest_percent(runner, monkeypatch) -> None:
    """GIVEN a re-pricing superseded mid-placement by a racing attempt after a second PATCH WHEN both end and
    the percent changes again THEN exactly one stop is open, at the percent the strategy says."""
    from klineo.services import strategy_protection

    first, second, third = _ticks(runner, 3)
    sid, entry, fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"stop_loss_pct": "1"})
    real_arm = strategy_protection.arm_strategy_protection
    raced = {"n": 0}

    def arm_while_another_turn_runs(connection: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("generation") and raced["n"] == 0:
            raced["n"] += 1
            _patch(runner, sid, {"stop_loss_pct": "1.5"})  # the user changes it again meanwhile
            _other_turn(connection, sid, second - 1000 - 60_000)  # POST /run plays the earlier candle
        return real_arm(connection, *args, **kwargs)

    monkeypatch.setattr(strategy_protection, "arm_strategy_protection", arm_while_another_turn_runs)
    runner.run_tick(second)
    assert raced["n"] == 1
    monkeypatch.setattr(strategy_protection, "arm_strategy_protection", real_arm)

    _patch(runner, sid, {"stop_loss_pct": "3"})
    runner.run_tick(third)

    want = _tick_price(runner, protective_prices("BUY", fill, D(3), None)[0])
    stops = sorted((a.client_algo_id, a.trigger_price) for a in _open(runner)
                   if a.order_type == "STOP_MARKET")
    stored = runner.stored(USER, sid).protective
    armed_stop = protective_client_algo_id(entry, "stop_loss", int(stored["orders"]["stop_loss"]))
    assert stops == [(armed_stop, want)], (
        f"want one stop at {want}; open stops {stops}; record sl={stored.get('stop_loss')} "
        f"orders={stored.get('orders')} generations={stored.get('generations')}")


# What each way of a refused change tells and records (pinned before ``LiveReprice``'s refusal was read
# again as one decision).
def test_a_change_refused_outright_tells_one_error_and_records_no_repricing(runner) -> None:
    """A change every role of which Binance refused or whose placed roles all had an earlier order standing
    (SL 0.5 % crossed, TP 5 % placed beside the earlier pair) writes one error event with its message, no
    protective_repriced event, and keeps the record's earlier orders and levels, the wanted ones refused."""
    first, second = _ticks(runner, 2)
    sid, _entry, fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    before = runner.stored(USER, sid).protective
    runner.sim.set_mark_price("BTCUSDT", float(fill * D("0.99")))
    _patch(runner, sid, {"stop_loss_pct": "0.5", "take_profit_pct": "5"})

    runner.run_tick(second)

    [error] = _events(sid, "error")
    assert error.details["message"] == ("Binance refused a re-priced protective order (a level the mark "
                                        "price already crossed?); the earlier orders stay.")
    assert _events(sid, "protective_repriced") == []
    stored = runner.stored(USER, sid).protective
    assert {k: v for k, v in stored.items() if k not in ("refused", "generations")} == {
        k: v for k, v in before.items() if k != "generations"}
    assert reprice_module.levels(stored["refused"]) == {
        "stop_loss": D(error.details["new_stop_loss"]), "take_profit": D(error.details["new_take_profit"])}


def test_an_added_take_profit_refused_tells_which_role_was_placed(runner) -> None:
    """A take-profit refused beside an added stop (no earlier order) is told as the take-profit refused and
    the stop-loss placed, tried again once the percents change."""
    first, second = _ticks(runner, 2)
    sid, _entry, _price = _crossed_take_profit_added(runner, first)

    runner.run_tick(second)

    [error] = _events(sid, "error")
    assert error.details["message"] == (
        "Binance refused the take-profit (a level the mark price already crossed?); the stop-loss was "
        "placed. The take-profit is tried again once the percents change.")


def test_a_moved_take_profit_refused_beside_an_added_stop_tells_the_earlier_one_stays(runner) -> None:
    """A moved take-profit refused beside an added stop is told as the stop-loss placed and the earlier
    take-profit staying."""
    first, second = _ticks(runner, 2)
    sid, _entry = _crossed_take_profit_moved_beside_an_added_stop(runner, first)

    runner.run_tick(second)

    [error] = _events(sid, "error")
    assert error.details["message"] == (
        "Binance refused the take-profit (a level the mark price already crossed?); the stop-loss was "
        "placed, the earlier take-profit stays. The take-profit is tried again once the percents change.")


def _stop_moved_and_its_old_cancel_failed(runner) -> tuple[str, str]:
    """A live long with SL 2 % / TP 3 % whose stop moved to 1 % while Binance answered the old stop's cancel
    503: (strategy, the old stop's clientAlgoId, kept in ``superseded``)."""
    first, second = _ticks(runner, 2)
    sid, entry, _fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"stop_loss_pct": "1"})
    runner.sim.faults.add("http_503_unavailable", count=50, method="DELETE", path=ALGO_PATH)
    runner.run_tick(second)
    runner.sim.faults.clear()
    old = protective_client_algo_id(entry, "stop_loss")
    assert runner.stored(USER, sid).protective["superseded"] == [old] and _algos(runner)[old].status == "NEW"
    return sid, entry


def test_a_deleted_strategy_cancels_the_stop_its_repricing_could_not_and_keeps_the_current_ones(
        runner) -> None:
    """GIVEN a live long whose re-priced stop's old order could not be cancelled (``superseded``) WHEN the
    strategy is deleted THEN 204, the old stop is cancelled on Binance and the current stop-loss and
    take-profit stay armed on the open position (before: the old stop stayed armed, nobody cancelling it)."""
    sid, entry = _stop_moved_and_its_old_cancel_failed(runner)

    deleted = Api(runner.invoke).delete(USER, sid)

    assert deleted["statusCode"] == 204, deleted["body"]
    algos = _algos(runner)
    assert algos[protective_client_algo_id(entry, "stop_loss")].status == "CANCELED"
    assert sorted(a.client_algo_id for a in _open(runner)) == sorted(
        [protective_client_algo_id(entry, "stop_loss", 1), protective_client_algo_id(entry, "take_profit")])
    assert runner.stored(USER, sid) is None


def test_a_delete_whose_superseded_stop_cannot_be_cancelled_now_is_a_409_naming_it(runner) -> None:
    """GIVEN a live long whose re-priced stop's old order could not be cancelled WHEN it is deleted while
    Binance still fails the cancel THEN 409 naming the order, the strategy kept; once Binance answers, a
    repeated DELETE cancels it (sent once more, never again) and deletes."""
    sid, entry = _stop_moved_and_its_old_cancel_failed(runner)
    old = protective_client_algo_id(entry, "stop_loss")
    api = Api(runner.invoke)
    runner.sim.faults.add("http_503_unavailable", count=50, method="DELETE", path=ALGO_PATH)

    refused = api.delete(USER, sid)

    runner.sim.faults.clear()
    assert refused["statusCode"] == 409, refused["body"]
    assert old in response_json(refused)["error"]["message"]
    assert runner.stored(USER, sid) is not None and _algos(runner)[old].status == "NEW"
    cancels = len(runner.journal("DELETE", ALGO_PATH))
    assert api.delete(USER, sid)["statusCode"] == 204
    assert _algos(runner)[old].status == "CANCELED"
    assert len(runner.journal("DELETE", ALGO_PATH)) == cancels + 1


def test_a_live_entrys_own_stops_refused_for_the_key_count_on_the_connection(runner) -> None:
    """GIVEN a key whose stops Binance refuses (401 -2015 on the algo service) WHEN a live entry is placed
    and its turn arms its stop-loss and take-profit (generation 0) THEN the connection's key failures count
    1, once for the arming (before: 0, the strategy's own first arming named no connection to count on)."""
    tick = _ticks(runner, 1)[0]
    runner.sim.faults.add("http_401_invalid_key", count=50, method="POST", path=ALGO_PATH)
    sid, _entry, _fill = _guarded_long(runner, tick, stop_loss_pct="2", take_profit_pct="3")

    assert len(runner.journal("POST", ALGO_PATH)) == 2 and _open(runner) == []
    connection = get_connection(USER, runner.stored(USER, sid).connection_id, consistent=True)
    assert connection.consecutive_failures == 1
