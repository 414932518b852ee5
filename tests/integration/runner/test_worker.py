"""Dispatcher and worker end to end: Scheduler and SQS events, moto, and the simulator over loopback."""

from __future__ import annotations

import logging
import time
from decimal import Decimal

import pytest
from klineo.binance import Market, endpoints, filters, get_client, get_symbol_rules, listed_symbol_rules
from klineo.errors import ErrorCategory, KlineoError
from klineo.runner import execution, worker
from klineo.runner.gates import GateBook
from klineo.runner.schedule import MINUTE_MS, client_order_id
from klineo.services import orders as order_core
from klineo.store import flags
from klineo.store import strategies as strategy_store
from klineo.store.connections import update_settings
from klineo.store.events import list_events
from klineo.store.order_history import list_unsettled
from klineo.store.orders import get_order_record
from klineo.strategies.simulation import fee, market_fill

from tests.integration.runner.conftest import (
    KLINES_PATH,
    ORDER_PATH,
    crash_first_call,
    current_close,
    worker_event_from,
)

USER = "user-runner-1"
OTHER = "user-runner-2"


def test_live_strategy_places_one_order_with_the_derived_client_order_id(runner) -> None:
    """GIVEN a live SMA strategy WHEN a tick runs THEN one MARKET order, its id from (strategy, candle)."""
    sid = runner.strategy(USER, runner.connection(USER))
    tick = runner.run_tick()
    assert tick.failures == []
    run = runner.runs(sid)[0]
    assert run.status == "ordered" and run.close_time == runner.tick_close
    assert run.order["client_order_id"] == client_order_id(sid, run.close_time)
    assert run.order["status"] == "FILLED" and run.order["executed_quantity"] == "0.002"
    stored = runner.stored(USER, sid)
    side = 1 if run.signal == "long" else -1
    assert stored.live_position == side * Decimal("0.002") and stored.pending is None
    assert len(runner.journal("POST", ORDER_PATH)) == 1


def test_user_kill_switch_on_sends_no_order(runner) -> None:
    """GIVEN the user's kill switch on WHEN a tick runs THEN no order, and a skipped run says why."""
    sid = runner.strategy(USER, runner.connection(USER))
    paper = runner.strategy(USER, runner.connection(USER), mode="paper", symbol="ETHUSDT", size="0.01")
    runner.kill_switch(USER, True)
    runner.run_tick()
    assert runner.journal("POST", ORDER_PATH) == []
    for strategy_id in (sid, paper):
        run = runner.runs(strategy_id)[0]
        assert (run.status, run.skip_reason) == ("skipped", "user_kill_switch")


def test_global_kill_switch_on_sends_no_order_for_anyone(runner) -> None:
    """GIVEN the global kill switch on WHEN a tick runs THEN no user's strategy orders; runs say global."""
    mine = runner.strategy(USER, runner.connection(USER))
    theirs = runner.strategy(OTHER, runner.connection(OTHER), symbol="ETHUSDT", size="0.01")
    runner.kill_switch(None, True)
    runner.run_tick()
    assert runner.journal("POST", ORDER_PATH) == []
    assert [runner.runs(s)[0].skip_reason for s in (mine, theirs)] == ["global_kill_switch"] * 2


def test_futures_disabled_sends_no_order(runner) -> None:
    """GIVEN a live strategy on a connection without futures WHEN a tick runs THEN no order, a skip."""
    sid = runner.strategy(USER, runner.connection(USER, futures_enabled=False))
    runner.run_tick()
    assert runner.journal("POST", ORDER_PATH) == []
    assert (runner.runs(sid)[0].status, runner.runs(sid)[0].skip_reason) == ("skipped", "futures_disabled")
    assert runner.stored(USER, sid).live_position == 0


def test_kill_switch_turned_on_after_dispatch_still_stops_the_order(runner) -> None:
    """GIVEN a queued tick WHEN the user's kill switch goes on before the worker runs THEN no order."""
    sid = runner.strategy(USER, runner.connection(USER))
    event = runner.dispatched_event()
    runner.kill_switch(USER, True)
    runner.work_event(event)
    assert runner.journal("POST", ORDER_PATH) == []
    assert runner.runs(sid)[0].skip_reason == "user_kill_switch"


def test_the_same_message_delivered_twice_places_one_order(runner) -> None:
    """GIVEN one queued message WHEN the worker gets it twice THEN one order at the exchange and one run."""
    sid = runner.strategy(USER, runner.connection(USER))
    event = runner.dispatched_event()
    first, second = runner.work_event(event), runner.work_event(event)
    assert first["batchItemFailures"] == [] and second["batchItemFailures"] == []
    assert len(runner.journal("POST", ORDER_PATH)) == 1
    assert [r.status for r in runner.runs(sid)] == ["ordered"]


def test_the_same_message_delivered_twice_at_once_places_one_order(runner) -> None:
    """GIVEN one queued message WHEN two workers run it at the same moment THEN one order at the exchange."""
    sids = [runner.strategy(USER, runner.connection(USER), symbol=s, size=z)
            for s, z in (("BTCUSDT", "0.002"), ("ETHUSDT", "0.01"), ("BNBUSDT", "0.05"))]
    event = runner.dispatched_event()
    runner.work_event_at_once(event)
    assert len(runner.journal("POST", ORDER_PATH)) == 3
    for sid in sids:
        assert [r.status for r in runner.runs(sid)] == ["ordered"]


def test_a_re_run_after_a_crash_between_order_and_record_finds_the_order(runner, monkeypatch) -> None:
    """GIVEN the worker dies after Binance filled the order but before recording it WHEN redelivered THEN
    the order is found by its client order id, not sent again, and the position counts it once."""
    sid = runner.strategy(USER, runner.connection(USER))
    event = runner.dispatched_event()
    crash_first_call(monkeypatch, execution, "settle_live_order")
    first = runner.work_event(event, remaining_ms=1)  # the lease ends at once, as after a timeout
    assert len(first["batchItemFailures"]) == 1
    assert runner.stored(USER, sid).pending is not None
    second = runner.work_event(event)
    assert second["batchItemFailures"] == []
    assert len(runner.journal("POST", ORDER_PATH)) == 1
    stored = runner.stored(USER, sid)
    assert stored.pending is None and abs(stored.live_position) == Decimal("0.002")
    run = runner.runs(sid)[0]
    assert run.status == "ordered" and run.order["source"] == "existing"


def test_an_order_that_never_reached_binance_is_sent_once_after_recv_window(runner) -> None:
    """GIVEN the order request dies before Binance executes it WHEN redelivered before and after recvWindow
    THEN nothing is re-sent while it could still land, then exactly one order is placed."""
    sid = runner.strategy(USER, runner.connection(USER))
    event = runner.dispatched_event()
    runner.sim.faults.add("drop_connection", method="POST", path=ORDER_PATH, count=1)
    first = runner.work_event(event, remaining_ms=1)
    assert len(first["batchItemFailures"]) == 1
    assert runner.stored(USER, sid).pending is not None
    too_soon = runner.work_event(event, remaining_ms=1, later_ms=1_000)
    assert len(too_soon["batchItemFailures"]) == 1
    assert [r for r in runner.journal("POST", ORDER_PATH) if r.status == 200] == []
    second = runner.work_event(event, later_ms=_past_recv_window_ms(1_000))
    assert second["batchItemFailures"] == []
    placed = [r for r in runner.journal("POST", ORDER_PATH) if r.status == 200]
    assert len(placed) == 1
    assert runner.runs(sid)[0].status == "ordered"
    assert runner.stored(USER, sid).pending is None


def test_a_kill_switch_set_after_the_batch_read_stops_the_resend_of_a_lost_attempt(runner, monkeypatch):
    """GIVEN an order that never reached Binance WHEN its message comes again past recvWindow and the
    user's kill switch is turned on right after that batch read its gates THEN nothing is sent: the run
    is skipped naming user_kill_switch, a risk_block event says so, and the position is unchanged."""
    sid, event = _lost_attempt(runner)
    read_gates = GateBook.load

    def switch_on_after_the_read(pairs):
        book = read_gates(pairs)
        flags.set_user_kill_switch(USER, True)
        return book

    monkeypatch.setattr(GateBook, "load", switch_on_after_the_read)

    second = runner.work_event(event, later_ms=_past_recv_window_ms(1_000))

    assert second["batchItemFailures"] == []
    assert [r for r in runner.journal("POST", ORDER_PATH) if r.status == 200] == []
    run = runner.runs(sid)[0]
    assert (run.status, run.skip_reason) == ("skipped", "user_kill_switch")
    blocks = [e for e in list_events(sid, 20).events if e.kind == "risk_block"]
    assert [e.details["gate"] for e in blocks] == ["user_kill_switch"]
    stored = runner.stored(USER, sid)
    assert stored.pending is None and stored.live_position == 0


@pytest.mark.parametrize(("limit", "settings"), [
    ({"max_notional_usdt": Decimal("10")}, {}),
    ({"max_leverage": 5}, {"leverage": 10}),
])
def test_a_limit_lowered_before_the_resend_of_a_lost_attempt_stops_it(runner, limit, settings) -> None:
    """GIVEN an order that never reached Binance WHEN the connection's max_notional_usdt (or max_leverage)
    is lowered below it and its message comes again past recvWindow THEN the second send is refused as a
    first send would be: nothing sent, the run skipped naming the limit, a risk_block event, the position
    unchanged and the order's record REJECTED naming it."""
    sid, event = _lost_attempt(runner, **settings)
    lost = runner.stored(USER, sid).pending.client_order_id
    update_settings(USER, runner.stored(USER, sid).connection_id, limit)
    [gate] = limit

    assert runner.work_event(event, later_ms=_past_recv_window_ms(1_000))["batchItemFailures"] == []

    assert [r for r in runner.journal("POST", ORDER_PATH) if r.status == 200] == []
    run = runner.runs(sid)[0]
    assert (run.status, run.skip_reason) == ("skipped", gate)
    assert [e.details["gate"] for e in list_events(sid, 20).events if e.kind == "risk_block"] == [gate]
    stored = runner.stored(USER, sid)
    assert stored.pending is None and stored.live_position == 0
    record = get_order_record(USER, lost)
    assert (record.status, record.error["field"]) == ("REJECTED", gate)


def test_a_resend_without_its_candles_is_valued_at_the_mark_price_against_the_limit(runner, monkeypatch):
    """GIVEN an order that never reached Binance and max_notional_usdt lowered below it WHEN its message
    comes again past recvWindow and Binance refuses that tick's candles for good THEN the second send is
    still valued (at the mark price, read from Binance) and refused naming max_notional_usdt: nothing sent."""
    sid, event = _lost_attempt(runner)
    update_settings(USER, runner.stored(USER, sid).connection_id, {"max_notional_usdt": Decimal("10")})

    def no_candle(*_args, **_kwargs):
        raise KlineoError(ErrorCategory.NOT_FOUND, "no candle", field="close_time", retryable=False)

    monkeypatch.setattr(worker, "closed_candles", no_candle)

    assert runner.work_event(event, later_ms=_past_recv_window_ms(1_000))["batchItemFailures"] == []

    assert [r for r in runner.journal("POST", ORDER_PATH) if r.status == 200] == []
    assert len(runner.journal("GET", "/fapi/v1/premiumIndex")) == 1
    assert runner.runs(sid)[0].skip_reason == "max_notional_usdt"


def test_a_mark_price_outage_while_valuing_a_resend_leaves_the_order_pending_not_refused(runner, monkeypatch):
    """GIVEN an order that never reached Binance WHEN its message comes again past recvWindow without that
    tick's candles and Binance's mark price read is down (503) THEN nothing is sent and nothing is settled:
    no gate refused it, so no risk_block, its record stays PENDING and the strategy's order pending; once
    the mark reads again the next delivery sends it, once."""
    sid, event = _lost_attempt(runner)
    lost = runner.stored(USER, sid).pending.client_order_id

    def no_candle(*_args, **_kwargs):
        raise KlineoError(ErrorCategory.NOT_FOUND, "no candle", field="close_time", retryable=False)

    monkeypatch.setattr(worker, "closed_candles", no_candle)
    runner.sim.faults.add("http_503_unavailable", method="GET", path="/fapi/v1/premiumIndex", count=10_000)

    later_ms = _past_recv_window_ms(1_000)
    assert len(runner.work_event(event, later_ms=later_ms)["batchItemFailures"]) == 1

    assert [r for r in runner.journal("POST", ORDER_PATH) if r.status == 200] == []
    assert [e for e in list_events(sid, 20).events if e.kind == "risk_block"] == []
    assert runner.stored(USER, sid).pending.client_order_id == lost
    assert get_order_record(USER, lost).status == "PENDING"
    runner.sim.faults.clear()
    past_lease = _past_recv_window_ms(later_ms + worker.DEFAULT_TIMEOUT_MS)  # counted from that lease's end
    assert runner.work_event(event, later_ms=past_lease)["batchItemFailures"] == []
    assert len([r for r in runner.journal("POST", ORDER_PATH) if r.status == 200]) == 1
    assert runner.runs(sid)[0].status == "ordered"


def test_a_lost_attempt_is_not_sent_live_once_the_strategy_was_switched_to_paper(runner) -> None:
    """GIVEN a live order that never reached Binance WHEN the trader switches the strategy to paper and its
    message comes again past recvWindow THEN nothing is sent: the run is skipped (order_not_placed), the
    pending order cleared, the live position unchanged, its record REJECTED naming the switch."""
    sid, event = _lost_attempt(runner)
    lost = runner.stored(USER, sid).pending.client_order_id
    strategy_store.update_settings(USER, sid, runner.stored(USER, sid), changes={"mode": "paper"})

    assert runner.work_event(event, later_ms=_past_recv_window_ms(1_000))["batchItemFailures"] == []

    assert [r for r in runner.journal("POST", ORDER_PATH) if r.status == 200] == []
    run = runner.runs(sid)[0]
    assert (run.status, run.skip_reason) == ("skipped", "order_not_placed")
    stored = runner.stored(USER, sid)
    assert stored.pending is None and stored.live_position == 0 and stored.mode == "paper"
    record = get_order_record(USER, lost)
    assert record.status == "REJECTED" and "switched to paper" in record.error["message"]


def test_a_switch_to_paper_after_the_turn_read_the_strategy_stops_the_resend_of_a_lost_attempt(
    runner, monkeypatch,
) -> None:
    """GIVEN a live order that never reached Binance WHEN its message comes again past recvWindow and the
    strategy is switched to paper right after the batch read it THEN the check right before the second
    send stops it: nothing sent, the run skipped (order_not_placed), the live position unchanged."""
    sid, event = _lost_attempt(runner)
    read_gates = GateBook.load

    def switch_to_paper_after_the_read(pairs):
        strategy_store.update_settings(USER, sid, runner.stored(USER, sid), changes={"mode": "paper"})
        return read_gates(pairs)

    monkeypatch.setattr(GateBook, "load", switch_to_paper_after_the_read)

    assert runner.work_event(event, later_ms=_past_recv_window_ms(1_000))["batchItemFailures"] == []

    assert [r for r in runner.journal("POST", ORDER_PATH) if r.status == 200] == []
    run = runner.runs(sid)[0]
    assert (run.status, run.skip_reason) == ("skipped", "order_not_placed")
    stored = runner.stored(USER, sid)
    assert stored.pending is None and stored.live_position == 0


def test_an_order_absent_at_binance_after_its_candle_was_superseded_is_settled_not_placed(runner) -> None:
    """GIVEN a live order that never reached Binance WHEN its message comes again once a newer candle
    closed and recvWindow passed THEN the run is skipped (order_not_placed), the pending order is
    cleared with the position unchanged, nothing is sent, and the order's record is settled as never
    placed (REJECTED, out of the reconciler's index), not left PENDING until Binance's retention passed."""
    sid = runner.strategy(USER, runner.connection(USER))
    event = runner.dispatched_event()
    runner.sim.faults.add("drop_connection", method="POST", path=ORDER_PATH, count=1)
    first = runner.work_event(event, remaining_ms=1)
    assert len(first["batchItemFailures"]) == 1
    lost = runner.stored(USER, sid).pending.client_order_id
    runner.pinned["tick_ms"] += 120_000  # two candles later: the order's candle is superseded
    second = runner.work_event(event, later_ms=_past_recv_window_ms(120_000))
    assert second["batchItemFailures"] == []
    assert [r for r in runner.journal("POST", ORDER_PATH) if r.status == 200] == []
    run = runner.runs(sid)[0]
    assert (run.status, run.skip_reason) == ("skipped", "order_not_placed")
    stored = runner.stored(USER, sid)
    assert stored.pending is None and stored.live_position == 0
    assert stored.last_close == run.close_time
    record = get_order_record(USER, lost)
    assert (record.status, record.error["category"]) == ("REJECTED", "order_not_placed")
    assert "new side" not in record.error["message"]  # a flip's entry's message names its closed old side
    assert lost not in {r.client_order_id for r in list_unsettled()}


def _lost_attempt(runner, **settings) -> tuple[str, dict]:
    """A live strategy (``settings``: its trading settings) whose order's request died before reaching
    Binance: (its id, the message again)."""
    sid = runner.strategy(USER, runner.connection(USER), **settings)
    event = runner.dispatched_event()
    runner.sim.faults.add("drop_connection", method="POST", path=ORDER_PATH, count=1)
    assert len(runner.work_event(event, remaining_ms=1)["batchItemFailures"]) == 1
    return sid, event


def _past_recv_window_ms(after_ms: int) -> int:
    """A runner clock offset (ms) past recvWindow and the settle margin, counted from ``after_ms``."""
    window = float(get_client("futures", "production").recv_window)
    return after_ms + int(window) + order_core.SETTLE_MARGIN_MS + 1_000


def test_a_lost_answer_is_recovered_by_client_order_id(runner) -> None:
    """GIVEN Binance executes the order but answers 503 "unknown" WHEN the worker runs THEN it looks
    the order up, records it, and sends nothing twice."""
    sid = runner.strategy(USER, runner.connection(USER))
    runner.sim.faults.add("http_503_unknown", method="POST", path=ORDER_PATH, count=1)
    tick = runner.run_tick()
    assert tick.failures == []
    assert len(runner.journal("POST", ORDER_PATH)) == 1
    run = runner.runs(sid)[0]
    assert run.status == "ordered" and run.order["source"] == "recovered"


def test_two_hundred_strategies_over_five_symbols_fetch_klines_five_times(runner) -> None:
    """GIVEN 200 strategies (live and paper, 4 users) over 5 symbols WHEN a tick runs THEN 5 klines requests,
    one run per strategy, and one order per live strategy that trades."""
    symbols = {"BTCUSDT": "0.002", "ETHUSDT": "0.01", "BNBUSDT": "0.05", "X01USDT": "0.05", "X02USDT": "0.05"}
    users = [f"user-bulk-{n}" for n in range(4)]
    connections = {user: runner.connection(user) for user in users}
    made = []
    for index in range(200):
        symbol = list(symbols)[index % 5]
        user = users[index % 4]
        mode = "live" if index % 2 == 0 else "paper"
        made.append((runner.strategy(user, connections[user], symbol=symbol, size=symbols[symbol], mode=mode),
                     mode))
    runner.sim.clear_journal()
    dispatch = runner.tick()
    assert dispatch["strategies"] == 200 and dispatch["messages"] == 5
    messages = runner.receive()
    responses = runner.work(messages, batch_size=2)  # three worker invocations
    assert all(r["batchItemFailures"] == [] for r in responses)
    klines = runner.journal("GET", KLINES_PATH)
    assert len(klines) == 5
    runs = {sid: (mode, runner.runs(sid)) for sid, mode in made}
    assert all(len(found) == 1 for _, found in runs.values())
    live = [found[0] for mode, found in runs.values() if mode == "live"]
    paper = [found[0] for mode, found in runs.values() if mode == "paper"]
    # A market whose SMAs happen to be equal holds (no_change); every other strategy trades.
    reasons = {(r.status, r.skip_reason) for r in live + paper}
    assert {r.status for r in live} <= {"ordered", "no_change"}, reasons
    assert {r.status for r in paper} <= {"simulated", "no_change"}, reasons
    ordered = [r for r in live if r.status == "ordered"]
    assert len(ordered) >= 80 and len(runner.journal("POST", ORDER_PATH)) == len(ordered)
    assert len({r.order["client_order_id"] for r in ordered}) == len(ordered)


def test_paper_mode_sends_nothing_to_the_exchange(runner) -> None:
    """GIVEN paper strategies WHEN a tick runs THEN no order POST, no signed call; fills at close+slippage."""
    connection = runner.connection(USER)
    sids = [runner.strategy(USER, connection, symbol=s, size=z, mode="paper")
            for s, z in (("BTCUSDT", "0.002"), ("ETHUSDT", "0.01"))]
    runner.sim.clear_journal()
    runner.run_tick()
    assert runner.journal("POST") == [] and runner.signed_calls() == []
    run = runner.runs(sids[0])[0]
    candles = endpoints.klines(get_client("futures", "production"), "BTCUSDT", "1m", limit=5,
                               end_time=run.close_time)
    assert run.status == "simulated" and run.order["simulated"] is True
    # The paper model (klineo.strategies.simulation): the close moved SLIPPAGE_BPS against the taker.
    assert Decimal(run.order["average_price"]) == market_fill(run.order["side"], candles[-1].close)
    assert Decimal(run.order["fee"]) == fee(Decimal("0.002"), Decimal(run.order["average_price"]))
    assert abs(runner.stored(USER, sids[0]).paper_position) == Decimal("0.002")
    assert runner.stored(USER, sids[0]).live_position == 0


def test_repeated_key_failures_pause_the_strategy(runner) -> None:
    """GIVEN a connection whose key lost its futures right WHEN orders are refused THEN counted, and the third
    refusal in a row pauses the strategy with the reason and takes it off the active index."""
    connection = runner.connection(USER, "spot-only")  # futures marked enabled here, refused by Binance
    counting = runner.strategy(USER, connection)
    third = runner.strategy(USER, connection, symbol="ETHUSDT", size="0.01", key_failures=2)
    runner.run_tick()
    assert runner.runs(counting)[0].error["category"] == "permission"
    still = runner.stored(USER, counting)
    assert (still.key_failures, still.status) == (1, "active")
    paused = runner.stored(USER, third)
    assert (paused.status, paused.status_reason) == ("paused", "key_failure:permission")
    assert [s.strategy_id for s in strategy_store.query_active("1m")] == [counting]


def test_a_superseded_candle_is_skipped_not_traded(runner) -> None:
    """GIVEN a message for a candle two minutes old WHEN the worker runs THEN a stale_candle skip."""
    sid = runner.strategy(USER, runner.connection(USER))
    old = current_close() - 120_000
    body = {"v": 1, "tick": old + 1, "environment": "production", "symbol": "BTCUSDT", "interval": "1m",
            "close_time": old, "strategies": [{"user_id": USER, "strategy_id": sid}]}
    response = runner.work_event(worker_event_from([body], runner.queue_arn))
    assert response["batchItemFailures"] == []
    assert runner.journal("POST", ORDER_PATH) == []
    assert runner.runs(sid)[0].skip_reason == "stale_candle"


def test_a_strategy_paused_after_dispatch_is_not_run(runner) -> None:
    """GIVEN a queued message WHEN the user pauses the strategy before the worker THEN no run, no order."""
    sid = runner.strategy(USER, runner.connection(USER))
    event = runner.dispatched_event()
    current = runner.stored(USER, sid)
    strategy_store.update_settings(USER, sid, current, changes={"status": "paused"})
    assert runner.work_event(event)["batchItemFailures"] == []
    assert runner.journal("POST", ORDER_PATH) == [] and runner.runs(sid) == []


def test_an_unknown_symbol_pauses_the_strategy(runner) -> None:
    """GIVEN a symbol Binance does not list WHEN a tick runs THEN a failed run, paused invalid_symbol."""
    sid = runner.strategy(USER, runner.connection(USER), symbol="NOPEUSDT")
    tick = runner.run_tick()
    assert tick.failures == []
    assert runner.runs(sid)[0].status == "failed"
    assert runner.stored(USER, sid).status_reason == "invalid_symbol"


def test_an_unknown_symbol_pause_writes_a_paused_event_with_its_run(runner) -> None:
    """GIVEN a symbol Binance does not list WHEN the tick pauses the strategy THEN a paused event of the run's
    candle says why (reason invalid_symbol, a message naming the symbol), as the other automatic pauses do."""
    sid = runner.strategy(USER, runner.connection(USER), symbol="NOPEUSDT")

    runner.run_tick()

    run = runner.runs(sid)[0]
    paused = [e for e in list_events(sid, 50).events if e.kind == "paused"]
    assert [(e.close_time, e.details["reason"]) for e in paused] == [(run.close_time, "invalid_symbol")]
    assert "NOPEUSDT" in paused[0].details["message"] and "USDT-M futures" in paused[0].details["message"]


def test_a_symbol_binance_stopped_trading_pauses_its_strategies_rather_than_failing_every_tick(
    runner, monkeypatch,
) -> None:
    """GIVEN a symbol Binance delisted (SETTLING, no candle since) while the container's exchangeInfo still
    says TRADING WHEN a tick waits for its candle in vain THEN the status is read again: no message to
    redeliver (it would reach the dead-letter queue every tick), a failed run naming the status, paused."""
    sid = runner.strategy(USER, runner.connection(USER))
    get_symbol_rules(get_client(Market.FUTURES, "production"), "BTCUSDT")  # cached while it traded
    monkeypatch.setattr(filters, "STATUS_MAX_AGE_S", 0.0)  # that read is older than the limit
    runner.sim.set_symbol_status("BTCUSDT", "SETTLING", since_ms=current_close() - 3 * MINUTE_MS)

    tick = runner.run_tick()

    assert tick.failures == []
    run = runner.runs(sid)[0]
    assert run.status == "failed" and "status SETTLING" in run.error["message"]
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason) == ("paused", "invalid_symbol")
    assert runner.journal("POST", ORDER_PATH) == []


def test_a_pause_at_once_for_a_symbol_with_no_candle_is_logged_as_the_order_path_logs_it(
    runner, monkeypatch, caplog,
) -> None:
    """GIVEN a symbol Binance delisted (SETTLING, no candle since) WHEN the tick's wait for its candle pauses
    the strategy invalid_symbol at once THEN the log says the symbol no longer trades, once, as when Binance
    refuses an order for that status (not silently, nor as a pause by count)."""
    sid = runner.strategy(USER, runner.connection(USER))
    monkeypatch.setattr(filters, "STATUS_MAX_AGE_S", 0.0)
    runner.sim.set_symbol_status("BTCUSDT", "SETTLING", since_ms=current_close() - 3 * MINUTE_MS)

    with caplog.at_level(logging.INFO):
        runner.run_tick()

    assert runner.stored(USER, sid).status_reason == "invalid_symbol"
    said = [record.getMessage() for record in caplog.records if "paus" in record.getMessage()]
    assert said == ["strategy paused: Binance no longer lists or trades its symbol"]


def test_a_symbol_status_read_less_than_a_minute_ago_is_trusted_and_the_message_comes_again(runner) -> None:
    """GIVEN a delisted symbol the container read as TRADING seconds ago WHEN its candle never comes THEN the
    message is redelivered (a candle late on Binance is waited for), nothing recorded, nothing paused."""
    sid = runner.strategy(USER, runner.connection(USER))
    get_symbol_rules(get_client(Market.FUTURES, "production"), "BTCUSDT")
    runner.sim.set_symbol_status("BTCUSDT", "SETTLING", since_ms=current_close() - 3 * MINUTE_MS)

    tick = runner.run_tick()

    assert len(tick.failures) == 1 and runner.runs(sid) == []
    assert runner.stored(USER, sid).status == "active"


def test_a_halted_symbol_skips_the_tick_and_leaves_the_strategy_active(runner, monkeypatch) -> None:
    """GIVEN a symbol Binance halted (TRADING_HALT, no candle since) WHEN a tick waits for its candle in vain
    THEN its run is skipped no_candle: no message to redeliver, nothing paused (it trades with the market)."""
    sid = runner.strategy(USER, runner.connection(USER))
    monkeypatch.setattr(filters, "STATUS_MAX_AGE_S", 0.0)
    now_ms = int(time.time() * 1000)
    runner.sim.set_symbol_status("BTCUSDT", "TRADING_HALT", since_ms=current_close(now_ms) + 1 - MINUTE_MS)

    tick = runner.run_tick(now_ms)

    assert tick.failures == []
    assert [(run.status, run.skip_reason) for run in runner.runs(sid)] == [("skipped", "no_candle")]
    assert runner.stored(USER, sid).status == "active"


def test_a_halt_that_ended_does_not_pause_a_strategy_on_the_halt_the_container_cached(runner, monkeypatch):
    """GIVEN a container whose exchangeInfo (kept an hour) still shows a halt that has ended WHEN the next
    tick's candle is there THEN the status is read again before the turn refuses it: the strategy trades."""
    sid = runner.strategy(USER, runner.connection(USER))
    client = get_client(Market.FUTURES, "production")
    runner.sim.set_symbol_status("BTCUSDT", "TRADING_HALT")
    assert listed_symbol_rules(client, "BTCUSDT").status == "TRADING_HALT"  # cached during the halt
    runner.sim.set_symbol_status("BTCUSDT", "TRADING")
    monkeypatch.setattr(filters, "STATUS_MAX_AGE_S", 0.0)  # that read is older than the limit

    tick = runner.run_tick()

    assert tick.failures == [] and runner.runs(sid)[0].status == "ordered"
    assert runner.stored(USER, sid).status == "active"


def test_a_candle_binance_never_made_skips_that_tick_without_pausing(runner) -> None:
    """GIVEN a symbol halted over the tick's candle and trading again (a gap in its klines) WHEN the tick
    runs THEN its run is skipped no_candle, the strategy stays active, no message to redeliver."""
    sid = runner.strategy(USER, runner.connection(USER))
    now_ms = int(time.time() * 1000)
    close = current_close(now_ms)
    runner.sim.set_symbol_status("BTCUSDT", "TRADING_HALT", since_ms=close + 1 - MINUTE_MS)
    runner.sim.set_symbol_status("BTCUSDT", "TRADING", since_ms=close + 1)

    tick = runner.run_tick(now_ms)

    assert tick.failures == []
    run = runner.runs(sid)[0]
    assert (run.close_time, run.status, run.skip_reason) == (close, "skipped", "no_candle")
    assert runner.stored(USER, sid).status == "active"
    assert runner.journal("POST", ORDER_PATH) == []


@pytest.mark.parametrize("status", ["TRADING_HALT", "TRADING_CANCEL_ONLY"])
def test_a_symbol_halted_while_its_candles_are_there_skips_the_tick_without_pausing(runner, status) -> None:
    """GIVEN a symbol Binance halted (or let only cancel) after the tick's candle and the next one opened
    WHEN the tick runs THEN its turn skips the tick no_candle, as a missing candle does: nothing paused, no
    failed run counted, nothing sent (a halt ends; only an ended contract pauses its strategies)."""
    sid = runner.strategy(USER, runner.connection(USER))
    now_ms = int(time.time() * 1000)
    close = current_close(now_ms)
    runner.sim.set_symbol_status("BTCUSDT", status, since_ms=close + 1 + MINUTE_MS)  # both candles made

    tick = runner.run_tick(now_ms)

    assert tick.failures == []
    assert [(run.status, run.skip_reason) for run in runner.runs(sid)] == [("skipped", "no_candle")]
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.failed_runs) == ("active", 0)
    assert runner.journal("POST", ORDER_PATH) == []


@pytest.mark.parametrize(("status", "outcome"), [
    ("TRADING_HALT", ("skipped", "active", None)),
    ("SETTLING", ("failed", "paused", "invalid_symbol")),
])
def test_an_order_binance_refuses_for_the_symbols_status_follows_the_tick_rule(runner, status, outcome):
    """GIVEN a symbol the container read as TRADING seconds ago, then stopped by Binance while its candles are
    there WHEN the turn's order is refused for the status (-4140, facts §15) THEN the status is read again and
    the tick's one rule decides: a halt skips the tick (nothing counted), an ended contract pauses at once;
    the order is settled rejected and the message not redelivered."""
    sid = runner.strategy(USER, runner.connection(USER))
    get_symbol_rules(get_client(Market.FUTURES, "production"), "BTCUSDT")  # cached while it traded
    now_ms = int(time.time() * 1000)
    close = current_close(now_ms)
    runner.sim.set_symbol_status("BTCUSDT", status, since_ms=close + 1 + MINUTE_MS)  # both candles made

    tick = runner.run_tick(now_ms)

    assert tick.failures == []
    run = runner.runs(sid)[0]
    stored = runner.stored(USER, sid)
    assert (run.status, stored.status, stored.status_reason) == outcome
    assert stored.failed_runs == 0 and stored.pending is None
    record = get_order_record(USER, client_order_id(sid, close))
    assert record is not None and record.status == "REJECTED"
    assert len(runner.journal("POST", ORDER_PATH)) == 1


def test_a_pause_for_an_ended_contract_is_logged_as_such(runner, caplog) -> None:
    """GIVEN a symbol the container read as TRADING, then delisted (SETTLING) WHEN the turn's order is refused
    for its status THEN the strategy pauses invalid_symbol and the log says the symbol no longer trades, not
    that its runs or keys keep failing."""
    sid = runner.strategy(USER, runner.connection(USER))
    get_symbol_rules(get_client(Market.FUTURES, "production"), "BTCUSDT")  # cached while it traded
    now_ms = int(time.time() * 1000)
    runner.sim.set_symbol_status("BTCUSDT", "SETTLING", since_ms=current_close(now_ms) + 1 + MINUTE_MS)

    with caplog.at_level(logging.INFO):
        runner.run_tick(now_ms)

    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason) == ("paused", "invalid_symbol")
    said = [record.getMessage() for record in caplog.records if "paus" in record.getMessage()]
    assert said == ["strategy paused: Binance no longer lists or trades its symbol"]


def test_klines_unavailable_fails_the_message_for_redelivery(runner) -> None:
    """GIVEN Binance answering 503 to klines WHEN the worker runs THEN the message fails, no run."""
    sid = runner.strategy(USER, runner.connection(USER))
    runner.sim.faults.add("http_503_unavailable", method="GET", path=KLINES_PATH, count=10)
    tick = runner.run_tick()
    assert len(tick.failures) == 1
    assert runner.runs(sid) == [] and runner.journal("POST", ORDER_PATH) == []


def test_a_short_only_strategy_stored_with_a_type_that_never_shorts_is_paused_saying_why(runner) -> None:
    """GIVEN a strategy stored before the routes refused it with direction short and allow_short false (every
    signal flat) WHEN a tick runs THEN it is paused no_side_to_trade at once, its run skipped so, and the
    paused event tells what to change; nothing is sent."""
    sid = runner.strategy(USER, runner.connection(USER), direction="short",
                          parameters={"fast": 2, "slow": 3, "allow_short": False})

    runner.run_tick()

    assert [(run.status, run.skip_reason) for run in runner.runs(sid)] == [("skipped", "no_side_to_trade")]
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason) == ("paused", "no_side_to_trade")
    [paused] = [e for e in list_events(sid, 10).events if e.kind == "paused"]
    assert paused.details["reason"] == "no_side_to_trade"
    assert "leaves no side to trade" in paused.details["message"]
    assert runner.journal("POST", ORDER_PATH) == []


def test_a_strategy_stored_with_parameters_its_type_refuses_is_paused_naming_them(runner) -> None:
    """GIVEN a strategy stored straight into the table with parameters its type cannot parse (a word for
    fast, a key it does not take) WHEN a tick runs THEN it is paused invalid_parameters at once, its run
    skipped so, and the paused event names what to fix without repeating a stored value; nothing is sent."""
    sid = runner.strategy(USER, runner.connection(USER),
                          parameters={"fast": "seven-candles", "slow": 3, "pasted_key": "k3y-v4lue-9"})

    runner.run_tick()

    assert [(run.status, run.skip_reason) for run in runner.runs(sid)] == [("skipped", "invalid_parameters")]
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason) == ("paused", "invalid_parameters")
    [paused] = [e for e in list_events(sid, 10).events if e.kind == "paused"]
    message = paused.details["reason"], paused.details["message"]
    assert message[0] == "invalid_parameters" and "parameters.fast" in message[1], message
    assert "a parameter its type does not take" in message[1], message
    assert not any(value in message[1] for value in ("seven-candles", "pasted_key", "k3y-v4lue-9")), message
    assert runner.journal("POST", ORDER_PATH) == []


def test_a_strategy_stored_with_fast_not_below_slow_is_paused_naming_slow_and_why(runner) -> None:
    """GIVEN a strategy stored straight into the table with fast not below slow WHEN a tick runs THEN it is
    paused invalid_parameters, the paused event naming parameters.slow with the rule, no stored value."""
    sid = runner.strategy(USER, runner.connection(USER), parameters={"fast": 34, "slow": 21})

    runner.run_tick()

    [paused] = [e for e in list_events(sid, 10).events if e.kind == "paused"]
    message = paused.details["message"]
    assert "(parameters.slow: fast must be smaller than slow)" in message, message
    assert not any(value in message for value in ("34", "21")), message


@pytest.mark.parametrize("signal_then", ["rsi"])
def test_hold_records_no_change_without_orders(runner, signal_then) -> None:
    """GIVEN RSI levels that are never crossed WHEN a tick runs THEN a no_change run, no order."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold",
                          parameters={"period": 14, "oversold": 0.0001, "overbought": 99.9999})
    runner.run_tick()
    run = runner.runs(sid)[0]
    assert (run.status, run.signal) == ("no_change", "hold") and "rsi" in run.indicators
    assert runner.journal("POST", ORDER_PATH) == []
