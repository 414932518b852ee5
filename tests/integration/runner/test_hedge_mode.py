"""Live strategies on a hedge-mode connection (Binance dualSidePosition true), on the simulator and moto.

Every order carries positionSide (LONG for a long position, SHORT for a short one) and never reduceOnly;
the simulator's futures-hedge account refuses anything else as Binance does (-4061, -1106, and -2022 for
a close larger than its side). A flip is two orders, the old side's close then the new side's entry,
each exactly once (``klineo.runner.execution``, "Hedge-mode flips"). Signals are pinned with RSI levels
no price path crosses; a long-only (short-only) strategy goes flat on the other signal. Two candles are
played by dispatching the previous minute's tick, then the current one.
"""

from __future__ import annotations

import dataclasses
import time
from decimal import Decimal
from typing import Any

import pytest
from klineo.errors import ErrorCategory, KlineoError
from klineo.runner import execution
from klineo.runner import flip as flip_module
from klineo.runner.schedule import MINUTE_MS, client_order_id
from klineo.services.protective_siblings import protective_client_algo_id
from klineo.store.connections import delete_connection, get_connection, mark_deleting, update_settings
from klineo.store.events import list_events
from klineo.store.orders import get_order_record
from klineo.store.strategies import update_settings as update_strategy

from local.binance_sim import market as sim_market
from local.binance_sim.errors import ApiError
from tests.integration.runner.conftest import ORDER_PATH, crash_first_call
from tests.integration.runner.test_exchange_truth import ALWAYS_LONG, ALWAYS_SHORT, SL_TP, _two_candles
from tests.integration.runner.test_order_attempts_runner import _attempts, lower_limit_before_the_claim
from tests.integration.runner.test_worker import _past_recv_window_ms

USER = "user-runner-hedge"
HEDGE_ACCOUNT = "futures-hedge"


def hedge_connection(runner, user: str = USER) -> str:
    """A futures-enabled connection on the hedge-mode demo account, recorded in hedge mode (as futures
    enable records it)."""
    connection = runner.connection(user, HEDGE_ACCOUNT)
    update_settings(user, connection, {"position_mode": "hedge"})
    return connection


def account_state(runner, account: str = HEDGE_ACCOUNT) -> Any:
    """The simulator's futures state of a demo account."""
    return runner.sim.state.futures.state_for(runner.sim.account(account), time.time() * 1000)


def placed(runner, account: str = HEDGE_ACCOUNT) -> list[tuple[str, str, bool, str]]:
    """(side, positionSide, reduceOnly, quantity) of every regular order the account holds, in order."""
    orders = sorted(account_state(runner, account).orders.values(), key=lambda o: o.order_id)
    return [(o.side, o.position_side, o.reduce_only, str(o.orig_qty)) for o in orders]


def sides(runner, symbol: str = "BTCUSDT", account: str = HEDGE_ACCOUNT) -> dict[str, Decimal]:
    """The account's position on each side of ``symbol`` (LONG, SHORT in hedge mode; BOTH in one-way)."""
    return {side: p.amount for (name, side), p in account_state(runner, account).positions.items()
            if name == symbol}


def order_posts(runner) -> list[Any]:
    """The journal's POST /fapi/v1/order requests (accepted or refused)."""
    return runner.journal("POST", ORDER_PATH)


def events(sid: str, kind: str | None = None) -> list[Any]:
    """The strategy's events (oldest first), optionally of one kind."""
    found = list(reversed(list_events(sid, 100).events))
    return [e for e in found if kind is None or e.kind == kind]


def test_a_hedge_long_opens_buy_long_and_a_flat_signal_closes_it_with_sell_long(runner) -> None:
    """GIVEN a long-only live strategy on a hedge-mode connection WHEN its signal is long THEN BUY LONG
    (no reduceOnly) opens the simulator's LONG side; WHEN it turns short (flat for long-only) THEN SELL LONG
    closes it: the journal holds exactly those two orders, and the runs and order records say so."""
    sid = runner.strategy(USER, hedge_connection(runner), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long")
    play_current = _two_candles(runner)
    assert placed(runner) == [("BUY", "LONG", False, "0.002")]
    assert sides(runner) == {"LONG": Decimal("0.002"), "SHORT": 0}
    assert runner.stored(USER, sid).live_position == Decimal("0.002")
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_SHORT})

    play_current()

    assert [r.status for r in order_posts(runner)] == [200, 200]
    assert placed(runner) == [("BUY", "LONG", False, "0.002"), ("SELL", "LONG", False, "0.002")]
    assert sides(runner) == {"LONG": 0, "SHORT": 0}
    stored = runner.stored(USER, sid)
    assert stored.live_position == 0 and stored.pending is None
    runs = list(reversed(runner.runs(sid)))
    assert [(r.status, r.order["side"], r.order["reduce_only"]) for r in runs] == [
        ("ordered", "BUY", False), ("ordered", "SELL", False)]
    for run in runs:
        params = get_order_record(USER, run.order["client_order_id"]).params
        assert params["positionSide"] == "LONG" and "reduceOnly" not in params
    submits = [(e.details["side"], e.details["position_side"]) for e in events(sid, "order_submit")]
    assert submits == [("BUY", "LONG"), ("SELL", "LONG")]
    assert events(sid, "position_closed") == [] and events(sid, "error") == []


def test_a_hedge_short_opens_sell_short_and_a_flat_signal_closes_it_with_buy_short(runner) -> None:
    """GIVEN a short-only live strategy on a hedge-mode connection WHEN short THEN SELL SHORT; WHEN the
    signal turns long (flat for short-only) THEN BUY SHORT closes the SHORT side, nothing else sent."""
    sid = runner.strategy(USER, hedge_connection(runner), type="rsi_threshold", parameters=ALWAYS_SHORT,
                          direction="short")
    play_current = _two_candles(runner)
    assert sides(runner) == {"LONG": 0, "SHORT": Decimal("-0.002")}
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_LONG})

    play_current()

    assert placed(runner) == [("SELL", "SHORT", False, "0.002"), ("BUY", "SHORT", False, "0.002")]
    assert len(order_posts(runner)) == 2
    assert sides(runner) == {"LONG": 0, "SHORT": 0} and runner.stored(USER, sid).live_position == 0


def test_a_hedge_entrys_protective_orders_carry_its_position_side_and_no_reduce_only(runner, reconcile):
    """GIVEN a long-only live strategy with SL 2 % / TP 3 % on a hedge-mode connection WHEN it enters THEN
    its stop-loss and take-profit are SELL with positionSide LONG and no reduceOnly (Binance refuses it in
    hedge mode), recorded so; WHEN the LONG side is closed by hand THEN the reconciler, reading the LONG
    row, cancels both."""
    sid = runner.strategy(USER, hedge_connection(runner), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long", stop_loss_pct="2", take_profit_pct="3")

    runner.run_tick()

    entry_id = runner.runs(sid)[0].order["client_order_id"]
    algos = {a.client_algo_id: a for a in account_state(runner).algo_orders.values()}
    armed = [algos[protective_client_algo_id(entry_id, role)] for role in SL_TP]
    assert [(a.order_type, a.side, a.position_side, a.reduce_only, a.quantity, a.status) for a in armed] == [
        ("STOP_MARKET", "SELL", "LONG", False, Decimal("0.002"), "NEW"),
        ("TAKE_PROFIT_MARKET", "SELL", "LONG", False, Decimal("0.002"), "NEW"),
    ]
    for role in SL_TP:
        params = get_order_record(USER, protective_client_algo_id(entry_id, role)).params
        assert params["positionSide"] == "LONG" and "reduceOnly" not in params
    assert [e.kind for e in events(sid)] == ["signal", "order_submit", "order_fill", "protective_placed"]
    runner.sim.inject_trade(HEDGE_ACCOUNT, "manual", "BTCUSDT", side="SELL", positionSide="LONG",
                            quantity="0.002")

    reconcile()

    assert [a.status for a in armed] == ["CANCELED", "CANCELED"]


def test_a_hedge_position_is_checked_on_its_own_side(runner) -> None:
    """GIVEN a hedge long with stops (its position is read every turn) and the user's own SHORT on the same
    symbol WHEN the next candle holds THEN the LONG row is the strategy's: nothing is taken for closed;
    WHEN the LONG side is closed by hand THEN the next turn records position_closed (manual) and sends
    nothing."""
    connection = hedge_connection(runner)
    sid = runner.strategy(USER, connection, type="rsi_threshold", parameters=ALWAYS_LONG, direction="long",
                          stop_loss_pct="50")
    now = int(time.time() * 1000) // 60_000 * 60_000 + 1000
    runner.run_tick(now - 2 * 60_000)
    runner.sim.inject_trade(HEDGE_ACCOUNT, "manual", "BTCUSDT", side="SELL", positionSide="SHORT",
                            quantity="0.005")

    runner.run_tick(now - 60_000)

    assert runner.runs(sid)[0].status == "no_change" and events(sid, "position_closed") == []
    assert runner.stored(USER, sid).live_position == Decimal("0.002")
    runner.sim.inject_trade(HEDGE_ACCOUNT, "manual", "BTCUSDT", side="SELL", positionSide="LONG",
                            quantity="0.002")

    runner.run_tick(now)

    closed = [(e.details["cause"], e.details["position_before"]) for e in events(sid, "position_closed")]
    assert closed == [("manual", "0.002")]  # its stops stood, unfired: Binance's algo orders say so
    assert runner.stored(USER, sid).live_position == 0
    assert len(order_posts(runner)) == 1  # the entry only: no close sent into nothing
    assert sides(runner) == {"LONG": 0, "SHORT": Decimal("-0.005")}


def test_an_account_switched_to_one_way_behind_a_hedge_connection_fails_once_and_says_what_to_do(runner):
    """GIVEN a hedge-mode connection whose account was switched to one-way outside KLINEO WHEN a long-only
    strategy enters THEN Binance refuses BUY LONG (-4061) once: a failed run counted towards the pause,
    an error event saying to switch the account back or PATCH position_mode one_way, nothing placed,
    nothing sent again for the candle."""
    sid = runner.strategy(USER, hedge_connection(runner), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long")
    account_state(runner).set_dual_side(False)
    event = runner.dispatched_event()

    assert runner.work_event(event)["batchItemFailures"] == []
    assert runner.work_event(event)["batchItemFailures"] == []  # the message again: nothing more

    assert [(r.status, r.code) for r in order_posts(runner)] == [(400, -4061)]
    assert placed(runner) == []
    run = runner.runs(sid)[0]
    assert (run.status, run.error["category"]) == ("failed", "invalid_request")
    message = run.error["message"]
    assert "no longer in hedge mode" in message and "position_mode one_way" in message
    assert [e.details["message"] for e in events(sid, "error")] == [message]
    stored = runner.stored(USER, sid)
    assert (stored.failed_runs, stored.live_position, stored.pending) == (1, 0, None)


def test_an_account_switched_to_hedge_behind_a_one_way_connection_fails_once_and_says_what_to_do(runner):
    """GIVEN a one-way connection whose account was switched to hedge mode outside KLINEO WHEN a strategy
    enters THEN Binance refuses the BOTH order (-4061) once: a failed run whose error says to switch the
    account back or PATCH position_mode hedge, nothing placed."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG)
    account_state(runner, "futures-full").set_dual_side(True)

    runner.run_tick()

    assert [(r.status, r.code) for r in order_posts(runner)] == [(400, -4061)]
    assert placed(runner, "futures-full") == []
    run = runner.runs(sid)[0]
    assert run.status == "failed"
    assert "no longer in one-way mode" in run.error["message"]
    assert "position_mode hedge" in run.error["message"]
    assert runner.stored(USER, sid).failed_runs == 1


# ---------------------------------------------------------------- flips: two orders, each exactly once

SHORT = ("SELL", "SHORT", False, "0.002")
CLOSE_SHORT = ("BUY", "SHORT", False, "0.002")
OPEN_LONG = ("BUY", "LONG", False, "0.002")


def _short_then_long(runner, **settings: Any) -> tuple[str, int]:
    """A live strategy (both directions) on a hedge connection that went short on the previous minute's
    candle, its signal now long; returns (its id, the current tick's time: second 1 of this minute)."""
    sid = runner.strategy(USER, hedge_connection(runner), type="rsi_threshold", parameters=ALWAYS_SHORT,
                          **settings)
    now = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS + 1000
    runner.run_tick(now - MINUTE_MS)
    assert placed(runner) == [SHORT]
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_LONG})
    return sid, now


def _dispatched_at(runner, now_ms: int) -> dict[str, Any]:
    """The SQS event of the tick at ``now_ms`` (its messages taken off the queue)."""
    from local.scheduler import sqs_event

    runner.tick(now_ms)
    messages = runner.receive()
    for message in messages:
        runner.sqs.delete_message(QueueUrl=runner.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return sqs_event(messages, runner.queue_arn, runner.aws.region)


def _crash_call(monkeypatch, owner: Any, name: str, number: int) -> None:
    """Make call ``number`` of ``owner.name`` raise, as a container lost there; the others behave."""
    real = getattr(owner, name)
    calls = {"n": 0}

    def crash(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == number:
            raise RuntimeError("container lost")
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, crash)


def _assert_flipped_once(runner, sid: str) -> None:
    """The flip is done, each of its orders once: the short closed (BUY SHORT), a long opened (BUY LONG),
    the candle's one run naming both, the events of each order once."""
    assert placed(runner) == [SHORT, CLOSE_SHORT, OPEN_LONG]
    assert [r.status for r in order_posts(runner) if r.status == 200] == [200, 200, 200]
    assert sides(runner) == {"LONG": Decimal("0.002"), "SHORT": 0}
    stored = runner.stored(USER, sid)
    assert (stored.live_position, stored.pending) == (Decimal("0.002"), None)
    run = runner.runs(sid)[0]
    assert (run.status, run.position_before, run.target_position) == ("ordered", Decimal("-0.002"),
                                                                      Decimal("0.002"))
    assert (run.close_order["side"], run.close_order["position_side"]) == ("BUY", "SHORT")
    assert (run.order["side"], run.order["position_side"]) == ("BUY", "LONG")
    assert run.order["client_order_id"] == "kf" + run.close_order["client_order_id"][2:]
    flip = [e for e in events(sid) if e.close_time == run.close_time]
    assert sorted((e.kind, e.details.get("position_side")) for e in flip if e.kind.startswith("order_")) == [
        ("order_fill", "LONG"), ("order_fill", "SHORT"), ("order_submit", "LONG"), ("order_submit", "SHORT")]
    for cid in (run.close_order["client_order_id"], run.order["client_order_id"]):
        assert get_order_record(USER, cid).status == "FILLED"


def test_a_hedge_short_flips_to_long_by_closing_the_short_then_opening_the_long(runner) -> None:
    """GIVEN a live short on a hedge-mode connection WHEN the signal turns long THEN BUY SHORT closes the
    short, then BUY LONG opens the long (never a long beside the short): one run for the candle, from
    -0.002 to +0.002, with both orders; the PnL book counts both fills."""
    sid, now = _short_then_long(runner)

    runner.run_tick(now)

    _assert_flipped_once(runner, sid)
    assert events(sid, "error") == [] and events(sid, "risk_block") == []
    book = runner.stored(USER, sid).live_book
    assert book["entry_client_order_id"] == runner.runs(sid)[0].order["client_order_id"]


def test_a_flip_survives_a_crash_after_the_close_filled_and_before_its_hand_over(runner, monkeypatch):
    """GIVEN a worker lost after Binance filled the close and before the write that settles it and claims
    the entry WHEN the message comes again THEN the close is found by its clientOrderId (never sent again),
    then the entry is placed once: three orders in all, never a fourth."""
    sid, now = _short_then_long(runner)
    event = _dispatched_at(runner, now)
    crash_first_call(monkeypatch, flip_module, "hand_over_live_order")

    first = runner.work_event(event, remaining_ms=1)

    assert len(first["batchItemFailures"]) == 1 and placed(runner) == [SHORT, CLOSE_SHORT]
    second = runner.work_event(event)
    assert second["batchItemFailures"] == []
    _assert_flipped_once(runner, sid)
    assert runner.runs(sid)[0].close_order["source"] == "existing"
    assert runner.work_event(event)["batchItemFailures"] == []  # redelivered once more: nothing
    _assert_flipped_once(runner, sid)


def test_a_flip_survives_a_crash_between_its_two_orders(runner, monkeypatch) -> None:
    """GIVEN a worker lost after the close settled and claimed the entry, before the entry was sent WHEN
    the message comes again while the entry could still be in flight THEN nothing is sent; past recvWindow
    the entry, proven never placed, is placed once; a redelivery after that sends nothing."""
    sid, now = _short_then_long(runner)
    event = _dispatched_at(runner, now)
    _crash_call(monkeypatch, execution, "submit_futures_order", 2)  # the close goes out, the entry does not

    first = runner.work_event(event, remaining_ms=1)

    assert len(first["batchItemFailures"]) == 1 and placed(runner) == [SHORT, CLOSE_SHORT]
    pending = runner.stored(USER, sid).pending
    assert pending is not None and pending.client_order_id.startswith("kf")
    assert (pending.side, pending.position_side, runner.stored(USER, sid).live_position) == ("BUY", "LONG", 0)
    assert get_order_record(USER, pending.client_order_id).status == "PENDING"
    assert runner.runs(sid)[0].close_time < pending.close_time  # no run for the flip's candle yet
    too_soon = runner.work_event(event, remaining_ms=1, later_ms=1_000)
    assert len(too_soon["batchItemFailures"]) == 1 and placed(runner) == [SHORT, CLOSE_SHORT]
    second = runner.work_event(event, later_ms=_past_recv_window_ms(1_000))
    assert second["batchItemFailures"] == []
    _assert_flipped_once(runner, sid)
    assert runner.work_event(event, later_ms=_past_recv_window_ms(2_000))["batchItemFailures"] == []
    _assert_flipped_once(runner, sid)


def test_a_flip_survives_a_crash_after_its_entry_was_sent_and_before_it_settled(runner, monkeypatch):
    """GIVEN a worker lost after Binance filled the entry (the flip's second order) and before its settle
    WHEN the message comes again THEN the entry is found by its own clientOrderId and settled once."""
    sid, now = _short_then_long(runner)
    event = _dispatched_at(runner, now)
    crash_first_call(monkeypatch, execution, "settle_live_order")  # the entry's settle (the close hands over)

    first = runner.work_event(event, remaining_ms=1)

    assert len(first["batchItemFailures"]) == 1 and placed(runner) == [SHORT, CLOSE_SHORT, OPEN_LONG]
    assert runner.work_event(event)["batchItemFailures"] == []
    _assert_flipped_once(runner, sid)
    assert runner.runs(sid)[0].order["source"] == "existing"


def test_two_workers_on_the_same_flip_send_each_order_once(runner) -> None:
    """GIVEN the flip's message delivered twice at once WHEN two workers run it together THEN the claim,
    then the hand-over, let one of them through: three orders in all."""
    sid, now = _short_then_long(runner)
    event = _dispatched_at(runner, now)
    runner.work_event_at_once(event)
    runner.work_event(event)  # whatever the first two left (a lease held by the other) is done now

    _assert_flipped_once(runner, sid)


def test_a_flip_whose_entry_binance_refuses_records_the_close_alone(runner) -> None:
    """GIVEN a short WHEN the flip's entry is refused by Binance (-2019, margin) after the close filled
    THEN the run is the close's (flat), its error and an error event say why the long was not opened, the
    failed runs count is not raised by a close that went through, and nothing is sent again."""
    sid, now = _short_then_long(runner)
    account_state(runner).assets["USDT"] = Decimal("1")  # the close needs no margin, a long does

    runner.run_tick(now)

    assert placed(runner) == [SHORT, CLOSE_SHORT]
    assert [(r.status, r.code) for r in order_posts(runner)][1:] == [(200, None), (400, -2019)]
    run = runner.runs(sid)[0]
    assert (run.status, run.target_position, run.order["side"]) == ("ordered", 0, "BUY")
    assert run.close_order is None
    assert run.order["position_side"] == "SHORT" and run.error["category"] == "insufficient_balance"
    errors = [e.details for e in events(sid, "error")]
    assert [e["what"] for e in errors] == ["new_side_not_opened"]
    stored = runner.stored(USER, sid)
    assert (stored.live_position, stored.pending, stored.failed_runs) == (0, None, 0)
    assert sides(runner) == {"LONG": 0, "SHORT": 0}


def test_a_flip_whose_entry_binance_refuses_for_the_cooling_off_period_pauses_at_once(runner,
                                                                                       monkeypatch) -> None:
    """A hedge flip's entry refused in a cooling-off period (-4192) pauses at once, its run the close's."""
    real_place = runner.sim.state.futures.place_order

    def long_refused(account: Any, params: dict, now_ms: float) -> dict:  # the period began after the close
        if params.get("positionSide") == "LONG":
            raise ApiError(400, -4192, "Trade forbidden due to Cooling-off Period.")
        return real_place(account, params, now_ms)

    sid, now = _short_then_long(runner)
    monkeypatch.setattr(runner.sim.state.futures, "place_order", long_refused)

    runner.run_tick(now)

    assert placed(runner) == [SHORT, CLOSE_SHORT]
    assert [(r.status, r.code) for r in order_posts(runner)][1:] == [(200, None), (400, -4192)]
    run = runner.runs(sid)[0]
    assert (run.status, run.target_position, run.order["position_side"]) == ("ordered", 0, "SHORT")
    assert "cooling-off period" in run.error["message"]
    assert get_order_record(USER, run.order["client_order_id"]).status == "FILLED"
    assert get_order_record(USER, "kf" + run.order["client_order_id"][2:]).status == "REJECTED"
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason, stored.failed_runs) == ("paused", "cooling_off_period", 0)
    assert (stored.live_position, stored.pending) == (0, None)
    paused, = events(sid, "paused")
    assert paused.details["reason"] == "cooling_off_period"
    assert "resume the strategy once the period has ended" in paused.details["message"]
    assert "stays open" not in paused.details["message"]  # flat: the close filled, no position left


def test_a_flip_whose_entry_a_limit_refuses_only_closes_the_old_side(runner) -> None:
    """GIVEN a short and max_notional_usdt between one position's value and nothing WHEN the signal turns
    long and the long's entry is over the limit THEN only BUY SHORT goes out (a limit never traps a
    position), a risk_block names the limit, the run is flat."""
    sid, now = _short_then_long(runner)
    connection = runner.stored(USER, sid).connection_id
    update_settings(USER, connection, {"max_notional_usdt": Decimal("10")})

    runner.run_tick(now)

    assert placed(runner) == [SHORT, CLOSE_SHORT]
    run = runner.runs(sid)[0]
    assert (run.status, run.target_position, run.order["side"]) == ("ordered", 0, "BUY")
    assert [e.details["gate"] for e in events(sid, "risk_block")] == ["max_notional_usdt"]
    assert runner.stored(USER, sid).live_position == 0
    _assert_entry_refused(runner, run.order["client_order_id"], "max_notional_usdt")


def _assert_entry_refused(runner, close_id: str, gate: str) -> None:
    """The flip's entry (BUY LONG 0.002) is the one refused order attempt, under the id it would have had
    (its own ``kf...``, never its close's), naming ``gate``."""
    [attempt] = [a for a in _attempts(runner, USER) if a["outcome"] == "refused"]
    assert attempt["client_order_id"] == "kf" + close_id[2:]
    assert (attempt["side"], attempt["position_side"], attempt["quantity"]) == ("BUY", "LONG", "0.002")
    assert attempt["refusal"]["field"] == gate


def _refused_by_id(runner) -> dict[str, str]:
    """Each refused attempt's client order id -> the field its refusal names."""
    return {a["client_order_id"]: a["refusal"]["field"] for a in _attempts(runner, USER)
            if a["outcome"] == "refused"}


def test_a_flip_whose_entry_a_limit_refuses_and_whose_close_a_gate_refuses_lists_both_once(
        runner, monkeypatch) -> None:
    """GIVEN a short, a limit refusing the long's entry, and the user's kill switch turned on before the
    close is claimed WHEN the claim refuses the close THEN nothing is sent, the run is skipped naming the
    switch, and both refused orders are listed: the close under the candle's id (the switch) and the entry
    under its own (the limit); the same message delivered again lists neither a second time."""
    sid, now = _short_then_long(runner)
    update_settings(USER, runner.stored(USER, sid).connection_id, {"max_notional_usdt": Decimal("10")})
    real_prepare = execution.prepare_symbol

    def switch_on_first(*args: Any, **kwargs: Any) -> Any:
        runner.kill_switch(USER, True)
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(execution, "prepare_symbol", switch_on_first)

    runner.run_tick(now)
    runner.run_tick(now)  # the same candle's message again

    assert placed(runner) == [SHORT]
    run = runner.runs(sid)[0]
    assert (run.status, run.skip_reason) == ("skipped", "user_kill_switch")
    close_id = client_order_id(sid, run.close_time)
    assert _refused_by_id(runner) == {close_id: "user_kill_switch", "kf" + close_id[2:]: "max_notional_usdt"}
    assert len([a for a in _attempts(runner, USER) if a["outcome"] == "refused"]) == 2


def test_a_flip_whose_entry_a_limit_refuses_closes_without_asking_for_the_symbols_settings(
        runner, monkeypatch) -> None:
    """GIVEN a short and a limit refusing the long's entry WHEN the close goes out alone THEN the symbol's
    margin type and leverage are not asked for (a close needs neither: a refusal of them could trap the
    position), and the entry the limit refused is listed under its own id."""
    sid, now = _short_then_long(runner)
    update_settings(USER, runner.stored(USER, sid).connection_id, {"max_notional_usdt": Decimal("10")})
    asked: list[str] = []

    def refused(*args: Any, reduces: bool) -> Any:  # as Binance would answer any change of the settings
        if reduces:
            return False
        asked.append(args[3])
        raise KlineoError(ErrorCategory.CONFLICT, "Margin type cannot be changed.", code=-4048)

    monkeypatch.setattr(execution, "prepare_symbol", refused)

    runner.run_tick(now)

    assert (asked, placed(runner)) == ([], [SHORT, CLOSE_SHORT])
    run = runner.runs(sid)[0]
    assert (run.status, run.target_position) == ("ordered", 0)
    _assert_entry_refused(runner, run.order["client_order_id"], "max_notional_usdt")


def test_a_flip_whose_symbol_settings_fail_on_the_key_sends_nothing_and_counts_the_key_once(
        runner, monkeypatch) -> None:
    """GIVEN a short WHEN applying the symbol's settings for the long is refused for the key (permission), not
    for the settings THEN no close goes out alone (the key would fail it too): a failed run naming the key,
    the short still open, one key failure counted on the connection and one on the strategy."""
    sid, now = _short_then_long(runner)

    def key_refused(*_: Any, **__: Any) -> Any:
        raise KlineoError(ErrorCategory.PERMISSION, "This API key has no futures permission.", code=-2015)

    monkeypatch.setattr(execution, "prepare_symbol", key_refused)

    runner.run_tick(now)

    assert placed(runner) == [SHORT]
    run = runner.runs(sid)[0]
    assert (run.status, run.error["category"]) == ("failed", "permission")
    stored = runner.stored(USER, sid)
    assert (stored.live_position, stored.key_failures, stored.failed_runs) == (Decimal("-0.002"), 1, 0)
    assert get_connection(USER, stored.connection_id).consecutive_failures == 1


def test_a_flip_whose_margin_type_binance_refuses_closes_the_old_side_alone(runner) -> None:
    """GIVEN a cross short WHEN the connection's default turns isolated and the signal long THEN Binance's
    refusal to change the margin type with the short open refuses the long only: BUY SHORT goes out, the
    run is flat, an error event says why, and the long is listed refused naming margin_type; the next
    candle, from flat, applies isolated and opens the long."""
    connection = hedge_connection(runner)
    sid = runner.strategy(USER, connection, type="rsi_threshold", parameters=ALWAYS_SHORT)
    now = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS + 1000
    runner.run_tick(now - 2 * MINUTE_MS)
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_LONG})
    update_settings(USER, connection, {"margin_type": "isolated"})

    runner.run_tick(now - MINUTE_MS)

    assert placed(runner) == [SHORT, CLOSE_SHORT]
    run = runner.runs(sid)[0]
    assert (run.status, run.target_position, run.order["side"]) == ("ordered", 0, "BUY")
    assert [(e.details["category"], e.details["what"]) for e in events(sid, "error")] == [
        ("conflict", "new_side_not_opened")]
    _assert_entry_refused(runner, run.order["client_order_id"], "margin_type")

    runner.run_tick(now)

    assert placed(runner) == [SHORT, CLOSE_SHORT, OPEN_LONG]
    margin_type = account_state(runner).margin_type["BTCUSDT"]
    assert (margin_type, runner.stored(USER, sid).live_position) == ("ISOLATED", Decimal("0.002"))


def test_a_kill_switch_turned_on_between_the_close_and_the_entry_stops_the_entry(runner, monkeypatch):
    """GIVEN the user's kill switch turned on after the flip's close was sent WHEN the close settles THEN the
    hand-over's gate check refuses the entry: the close alone, a risk_block naming the switch, flat."""
    sid, now = _short_then_long(runner)
    real = execution.submit_futures_order

    def switch_on_after_the_close(*args: Any, **kwargs: Any) -> Any:
        answer = real(*args, **kwargs)
        runner.kill_switch(USER, True)
        return answer

    monkeypatch.setattr(execution, "submit_futures_order", switch_on_after_the_close)

    runner.run_tick(now)

    assert placed(runner) == [SHORT, CLOSE_SHORT]
    run = runner.runs(sid)[0]
    assert (run.status, run.target_position, run.error["category"]) == ("ordered", 0, "user_kill_switch")
    assert [e.details["gate"] for e in events(sid, "risk_block")] == ["user_kill_switch"]
    assert (runner.stored(USER, sid).live_position, runner.stored(USER, sid).pending) == (0, None)
    _assert_entry_refused(runner, run.order["client_order_id"], "user_kill_switch")


def test_a_hedge_flip_moves_the_protective_orders_to_the_new_side(runner) -> None:
    """GIVEN a hedge short with SL/TP armed (BUY SHORT) WHEN it flips to long THEN the short's stops are
    cancelled and the long's are armed as SELL LONG without reduceOnly, for the new entry."""
    sid, now = _short_then_long(runner, stop_loss_pct="2", take_profit_pct="3")
    short_entry = runner.runs(sid)[0].order["client_order_id"]

    runner.run_tick(now)

    _assert_flipped_once(runner, sid)
    long_entry = runner.runs(sid)[0].order["client_order_id"]
    algos = {a.client_algo_id: a for a in account_state(runner).algo_orders.values()}
    old = [algos[protective_client_algo_id(short_entry, role)] for role in SL_TP]
    assert [(a.side, a.position_side, a.status) for a in old] == [("BUY", "SHORT", "CANCELED")] * 2
    new = [algos[protective_client_algo_id(long_entry, role)] for role in SL_TP]
    assert [(a.side, a.position_side, a.reduce_only, a.status) for a in new] == [
        ("SELL", "LONG", False, "NEW")] * 2
    assert runner.stored(USER, sid).protective["parent_client_order_id"] == long_entry


def test_a_one_way_flip_is_still_one_order(runner) -> None:
    """GIVEN the same strategy on a one-way connection WHEN it flips THEN one SELL/BUY of twice the size
    with positionSide BOTH, as before hedge mode existed: no second order, no close_order."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_SHORT)
    play_current = _two_candles(runner)
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_LONG})

    play_current()

    assert placed(runner, "futures-full") == [("SELL", "BOTH", False, "0.002"),
                                              ("BUY", "BOTH", False, "0.004")]
    run = runner.runs(sid)[0]
    assert run.close_order is None and "position_side" not in run.order


def test_a_flip_whose_close_settles_after_its_candle_opens_the_new_side_on_the_next_candle_only(
        runner, monkeypatch) -> None:
    """GIVEN a flip's close filled and its worker lost before the hand-over WHEN the next candle's message
    settles it THEN the new side is not opened on the stale candle (its run is the close's, flat, saying
    why) and the next candle opens the long with its own order: one long, never two."""
    sid = runner.strategy(USER, hedge_connection(runner), type="rsi_threshold", parameters=ALWAYS_SHORT)
    now = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS + 1000
    runner.run_tick(now - 2 * MINUTE_MS)
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_LONG})
    event = _dispatched_at(runner, now - MINUTE_MS)
    crash_first_call(monkeypatch, flip_module, "hand_over_live_order")
    assert len(runner.work_event(event, remaining_ms=1)["batchItemFailures"]) == 1

    runner.run_tick(now)

    assert placed(runner) == [SHORT, CLOSE_SHORT, OPEN_LONG]
    flip, entry = runner.runs(sid)[1], runner.runs(sid)[0]
    assert (flip.status, flip.target_position, flip.order["side"], flip.error["category"]) == (
        "ordered", 0, "BUY", "stale_candle")
    assert flip.order["position_side"] == "SHORT"
    assert (entry.close_time, entry.position_before, entry.order["side"]) == (runner.tick_close, 0, "BUY")
    assert entry.order["client_order_id"].startswith("ks") and entry.close_order is None
    assert runner.stored(USER, sid).live_position == Decimal("0.002")
    assert sides(runner) == {"LONG": Decimal("0.002"), "SHORT": 0}


def test_a_flip_whose_entry_was_lost_past_its_candle_records_the_close_and_disarms_the_old_stops(
        runner, monkeypatch) -> None:
    """GIVEN a flip whose close settled and handed over, and whose entry never reached Binance (worker lost)
    WHEN only the next candle comes, past recvWindow THEN the entry is never sent for the stale candle: its
    run is the close's (order_not_placed), the short's stops are cancelled, and the next candle opens the
    long once with its own order. The lost entry's record is settled as never placed (REJECTED)."""
    sid = runner.strategy(USER, hedge_connection(runner), type="rsi_threshold", parameters=ALWAYS_SHORT,
                          stop_loss_pct="2")
    now = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS + 1000
    runner.run_tick(now - 2 * MINUTE_MS)
    short_entry = runner.runs(sid)[0].order["client_order_id"]
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_LONG})
    event = _dispatched_at(runner, now - MINUTE_MS)
    _crash_call(monkeypatch, execution, "submit_futures_order", 2)
    assert len(runner.work_event(event, remaining_ms=1)["batchItemFailures"]) == 1
    lost = runner.stored(USER, sid).pending.client_order_id

    answer = runner.work_event(_dispatched_at(runner, now), later_ms=_past_recv_window_ms(1_000))

    assert answer["batchItemFailures"] == []
    assert placed(runner) == [SHORT, CLOSE_SHORT, OPEN_LONG]
    flip, entry = runner.runs(sid)[1], runner.runs(sid)[0]
    assert (flip.status, flip.target_position, flip.error["category"]) == ("ordered", 0, "order_not_placed")
    assert flip.order["side"] == "BUY" and flip.order["position_side"] == "SHORT"
    assert entry.order["client_order_id"] != lost and entry.position_before == 0
    stop = next(a for a in account_state(runner).algo_orders.values()
                if a.client_algo_id == protective_client_algo_id(short_entry, "stop_loss"))
    assert stop.status == "CANCELED"
    assert runner.stored(USER, sid).live_position == Decimal("0.002")
    assert "new side" in flip.error["message"]
    assert (get_order_record(USER, lost).status, get_order_record(USER, lost).error["category"]) == (
        "REJECTED", "order_not_placed")


def test_the_api_shows_a_hedge_flips_two_orders(runner) -> None:
    """GIVEN a hedge flip WHEN its strategy is read (GET /strategies/{id}) THEN its run shows the close as
    close_order and the entry as order, each with its positionSide."""
    from tests.helpers import load_event, response_json, with_user
    from tests.integration.api.conftest import at_path

    sid, now = _short_then_long(runner)
    runner.run_tick(now)

    event = at_path(load_event("strategy_get"), f"/strategies/{sid}", id=sid)
    response = runner.invoke("strategy_get", with_user(event, USER))

    assert response["statusCode"] == 200, response["body"]
    run = response_json(response)["runs"][0]
    assert (run["close_order"]["side"], run["close_order"]["position_side"]) == ("BUY", "SHORT")
    assert (run["order"]["side"], run["order"]["position_side"]) == ("BUY", "LONG")
    assert (run["position_before"], run["target_position"]) == ("-0.002", "0.002")


def test_a_kill_switch_stops_the_second_send_of_a_lost_flip_entry(runner, monkeypatch) -> None:
    """GIVEN a flip whose entry never reached Binance (worker lost after the hand-over) WHEN the message
    comes again past recvWindow and the user's kill switch is turned on right after that batch read its
    gates THEN the entry is not sent: the run is the close's, flat, its error naming the switch, with a
    risk_block event."""
    from klineo.runner.gates import GateBook

    sid, now = _short_then_long(runner)
    event = _dispatched_at(runner, now)
    _crash_call(monkeypatch, execution, "submit_futures_order", 2)
    assert len(runner.work_event(event, remaining_ms=1)["batchItemFailures"]) == 1
    read_gates = GateBook.load

    def switch_on_after_the_read(pairs: Any) -> Any:
        book = read_gates(pairs)
        runner.kill_switch(USER, True)
        return book

    monkeypatch.setattr(GateBook, "load", switch_on_after_the_read)

    assert runner.work_event(event, later_ms=_past_recv_window_ms(1_000))["batchItemFailures"] == []

    assert placed(runner) == [SHORT, CLOSE_SHORT]
    run = runner.runs(sid)[0]
    assert (run.status, run.target_position, run.error["category"]) == ("ordered", 0, "user_kill_switch")
    assert (run.order["side"], run.order["position_side"]) == ("BUY", "SHORT")
    assert [e.details["gate"] for e in events(sid, "risk_block")] == ["user_kill_switch"]
    assert (runner.stored(USER, sid).live_position, runner.stored(USER, sid).pending) == (0, None)


def test_a_limit_lowered_before_the_second_send_of_a_lost_close_still_lets_the_close_out(runner) -> None:
    """GIVEN a flip whose close (BUY SHORT) never reached Binance WHEN max_notional_usdt is lowered below an
    order's value and the message comes again past recvWindow THEN the close is still sent (a limit never
    traps a position) and only the long's entry is refused, naming the limit."""
    sid, now = _short_then_long(runner)
    event = _dispatched_at(runner, now)
    runner.sim.faults.add("drop_connection", method="POST", path=ORDER_PATH, count=1)
    assert len(runner.work_event(event, remaining_ms=1)["batchItemFailures"]) == 1
    update_settings(USER, runner.stored(USER, sid).connection_id, {"max_notional_usdt": Decimal("10")})

    assert runner.work_event(event, later_ms=_past_recv_window_ms(1_000))["batchItemFailures"] == []

    assert placed(runner) == [SHORT, CLOSE_SHORT]
    assert (runner.stored(USER, sid).live_position, runner.stored(USER, sid).pending) == (0, None)
    assert [e.details["gate"] for e in events(sid, "risk_block")] == ["max_notional_usdt"]


# ---------------------------------------------------------------- flips: the branches between the legs


def test_a_flip_whose_close_fills_only_in_part_keeps_the_rest_and_its_stops_and_opens_nothing(runner):
    """GIVEN a hedge short of 0.002 with a stop-loss armed WHEN the flip's close (BUY SHORT 0.002) fills only
    0.001 and expires the rest (thin liquidity) THEN the long is never sent; the run records the close's
    actual fill and the 0.001 short left (not flat), its error saying why; the position is -0.001 with no
    pending order; and the rest of the short keeps a stop-loss at the same level, re-placed for 0.001 (the
    stop for 0.002 cancelled)."""
    sid, now = _short_then_long(runner, stop_loss_pct="2")
    short_entry = runner.runs(sid)[0].order["client_order_id"]
    runner.sim.set_market_depth("BTCUSDT", "0.001")

    runner.run_tick(now)

    assert placed(runner) == [SHORT, CLOSE_SHORT] and len(order_posts(runner)) == 2
    assert sides(runner) == {"LONG": 0, "SHORT": Decimal("-0.001")}
    stored = runner.stored(USER, sid)
    assert (stored.live_position, stored.pending) == (Decimal("-0.001"), None)
    run = runner.runs(sid)[0]
    assert (run.status, run.position_before, run.target_position) == ("ordered", Decimal("-0.002"),
                                                                      Decimal("-0.001"))
    assert (run.order["status"], run.order["quantity"], run.order["executed_quantity"]) == (
        "EXPIRED", "0.002", "0.001")
    assert run.close_order is None and run.error["category"] == "close_incomplete"
    assert get_order_record(USER, run.order["client_order_id"]).status == "EXPIRED"
    assert [e.details["what"] for e in events(sid, "error")] == ["new_side_not_opened"]
    assert [e.details["position_side"] for e in events(sid, "order_submit")][-1] == "SHORT"
    algos = {a.client_algo_id: a for a in account_state(runner).algo_orders.values()}
    old, stop = (algos[protective_client_algo_id(short_entry, "stop_loss", g)] for g in (0, 1))
    assert (old.status, stop.status, stop.position_side, stop.quantity) == (
        "CANCELED", "NEW", "SHORT", Decimal("0.001"))
    assert stop.trigger_price == old.trigger_price
    stored = runner.stored(USER, sid)
    assert (stored.protective["parent_client_order_id"], stored.protective["orders"]) == (
        short_entry, {"stop_loss": 1})


def _between_the_legs(runner, monkeypatch, function: str, change: Any) -> None:
    """Run ``change()`` once as the API function ``function`` would (its IAM policy), right after Binance
    answered the flip's first order (the close)."""
    real, done = execution.submit_futures_order, []

    def after_the_close(*args: Any, **kwargs: Any) -> Any:
        answer = real(*args, **kwargs)
        if not done:
            with runner.iam.acting_as(function):
                done.append(change())
        return answer

    monkeypatch.setattr(execution, "submit_futures_order", after_the_close)


def _assert_closed_alone(runner, sid: str, category: str) -> None:
    """The flip stopped after its close: BUY SHORT alone went out and settled (flat, FILLED, no pending
    order), the candle's one run is the close's with ``category`` as its error, the entry never recorded."""
    assert placed(runner) == [SHORT, CLOSE_SHORT] and len(order_posts(runner)) == 2
    assert sides(runner) == {"LONG": 0, "SHORT": 0}
    run = runner.runs(sid)[0]
    assert (run.status, run.position_before, run.target_position) == ("ordered", Decimal("-0.002"), 0)
    assert (run.order["side"], run.order["position_side"], run.order["executed_quantity"]) == (
        "BUY", "SHORT", "0.002")
    assert run.close_order is None and run.error["category"] == category
    assert len(runner.runs(sid)) == 2  # the short's candle and this one: the run written once
    close_id = run.order["client_order_id"]
    assert get_order_record(USER, close_id).status == "FILLED"
    assert get_order_record(USER, "kf" + close_id[2:]) is None
    stored = runner.stored(USER, sid)
    assert (stored.live_position, stored.pending) == (0, None)


def test_a_strategy_paused_between_the_close_and_the_entry_settles_the_close_and_opens_nothing(
        runner, monkeypatch) -> None:
    """GIVEN a hedge flip WHEN the user pauses the strategy (PATCH status paused) after its close was sent
    THEN the close is settled exactly (flat, FILLED, its run written once, its error strategy_inactive), the
    long is never sent nor recorded, nothing is left pending, the strategy stays paused; the message again
    sends nothing."""
    sid, now = _short_then_long(runner)
    event = _dispatched_at(runner, now)
    _between_the_legs(runner, monkeypatch, "strategy_update", lambda: update_strategy(
        USER, sid, runner.stored(USER, sid), changes={"status": "paused"}))

    assert runner.work_event(event)["batchItemFailures"] == []

    _assert_closed_alone(runner, sid, "strategy_inactive")
    assert runner.stored(USER, sid).status == "paused"
    assert [e.details["what"] for e in events(sid, "error")] == ["new_side_not_opened"]
    assert runner.work_event(event)["batchItemFailures"] == []
    _assert_closed_alone(runner, sid, "strategy_inactive")


@pytest.mark.parametrize(("change", "category", "kind", "detail"), [
    (mark_deleting, "connection_deleting", "risk_block", "gate"),
    (delete_connection, "connection_not_found", "error", "category"),
], ids=["deleting_since", "deleted"])
def test_a_connection_deleted_between_the_close_and_the_entry_stops_the_entry(
        runner, monkeypatch, change: Any, category: str, kind: str, detail: str) -> None:
    """GIVEN a hedge flip WHEN its connection is marked for deletion (deleting_since: the hand-over's gate
    refuses the entry, a risk_block) or deleted (the hand-over finds it gone, an error event) after the close
    was sent THEN the close alone, settled, its error naming why, the entry never sent nor recorded."""
    sid, now = _short_then_long(runner)
    connection = runner.stored(USER, sid).connection_id
    _between_the_legs(runner, monkeypatch, "connection_delete", lambda: change(USER, connection))

    runner.run_tick(now)

    _assert_closed_alone(runner, sid, category)
    assert [e.details[detail] for e in events(sid, kind)] == [category]
    if kind == "risk_block":  # refused by the gate: a refused attempt (a connection gone is not one)
        _assert_entry_refused(runner, runner.runs(sid)[0].order["client_order_id"], category)


@pytest.mark.parametrize("account", ["futures-full", HEDGE_ACCOUNT], ids=["one_way", "hedge"])
def test_a_position_worth_less_than_the_minimum_order_value_is_still_closed(runner, monkeypatch,
                                                                            account: str) -> None:
    """GIVEN a long-only live strategy whose close filled in part, leaving 0.002 worth less than the symbol's
    minimum order value (200 USDT here) at the candle's close WHEN the next candle is still flat THEN the
    rest is closed, never refused by our own check (one-way: SELL reduceOnly; hedge: SELL LONG, which cannot
    carry reduceOnly, and which Binance exempts as it does a reduce-only order)."""
    spec = dataclasses.replace(sim_market.SYMBOLS["BTCUSDT"], futures_min_notional="200")
    monkeypatch.setitem(sim_market.SYMBOLS, "BTCUSDT", spec)
    now = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS + 1000
    connection = hedge_connection(runner) if account == HEDGE_ACCOUNT else runner.connection(USER, account)
    sid = runner.strategy(USER, connection, type="rsi_threshold", parameters=ALWAYS_LONG, direction="long",
                          size="0.004")
    runner.run_tick(now - 2 * MINUTE_MS)
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_SHORT})
    runner.sim.set_market_depth("BTCUSDT", "0.002")  # thin liquidity: the close fills 0.002 of 0.004
    runner.run_tick(now - MINUTE_MS)
    runner.sim.set_market_depth("BTCUSDT", None)
    partial = runner.runs(sid)[0]
    assert runner.stored(USER, sid).live_position == Decimal("0.002")
    assert Decimal("0.002") * Decimal(partial.order["average_price"]) < 200  # the rest: under the minimum

    runner.run_tick(now)

    run = runner.runs(sid)[0]
    assert run.status == "ordered", run.error  # not refused before sending
    assert (run.order["side"], run.order["status"], run.order["executed_quantity"]) == (
        "SELL", "FILLED", "0.002")
    assert runner.stored(USER, sid).live_position == 0
    side = "LONG" if account == HEDGE_ACCOUNT else "BOTH"
    assert sides(runner, account=account).get(side, Decimal(0)) == 0


def test_a_limit_lowered_between_the_gates_read_and_the_flips_claim_refuses_its_entry(runner, monkeypatch):
    """GIVEN a short on a hedge-mode connection whose signal turns long WHEN max_notional_usdt is lowered
    (below one position's value) between the turn's gate read and its claim THEN the long's entry is refused
    naming the limit (a risk_block, a refused attempt) and only BUY SHORT goes out: the hand-over judges the
    entry by the connection the claim refreshed, not by the turn's older read (before: BUY LONG went out
    above the lowered limit)."""
    sid, now = _short_then_long(runner)
    lower_limit_before_the_claim(monkeypatch, USER, runner.stored(USER, sid).connection_id, Decimal("10"))
    runner.run_tick(now)

    assert placed(runner) == [SHORT, CLOSE_SHORT]
    assert [e.details["gate"] for e in events(sid, "risk_block")] == ["max_notional_usdt"]
    assert runner.stored(USER, sid).live_position == 0
    _assert_entry_refused(runner, runner.runs(sid)[0].order["client_order_id"], "max_notional_usdt")
