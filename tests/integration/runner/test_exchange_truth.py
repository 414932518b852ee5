"""Strategies on the exchange's truth (issue 13): protective levels, closes made elsewhere, the risk gate.

Real dispatcher and worker handlers, moto, and the Binance simulator over loopback. Two candles are
played by dispatching the previous minute's tick, then the current one. Signals are pinned with
RSI levels no price path crosses: oversold 99.99 = always long, overbought 0.01 = always short.
"""

from __future__ import annotations

import time
from decimal import Decimal

import boto3
from klineo.binance import endpoints, get_client, get_symbol_rules
from klineo.runner import execution
from klineo.runner.paper import paper_protective
from klineo.runner.schedule import MINUTE_MS
from klineo.runner.worker import DEFAULT_TIMEOUT_MS
from klineo.services.open_orders import list_open_orders
from klineo.services.protective_siblings import protective_client_algo_id
from klineo.settings import get_settings
from klineo.store import aws as aws_clients
from klineo.store.connections import update_settings
from klineo.store.events import list_events
from klineo.store.orders import get_order_record
from klineo.store.runs import set_protective
from klineo.store.strategies import strategy_key
from klineo.store.strategies import update_settings as update_strategy
from klineo.strategies.simulation import fee, protective_prices

from local.binance_sim import futures as sim_futures
from local.scheduler import sqs_event
from tests.helpers import load_event, response_json, with_user
from tests.integration.api.conftest import at_path
from tests.integration.runner.conftest import ORDER_PATH, crash_first_call

SL_TP = ("stop_loss", "take_profit")  # the roles a strategy arms without a trailing stop

USER = "user-runner-truth"
USER_TS = "user-runner-trailing"
ALWAYS_LONG = {"period": 14, "oversold": 99.99, "overbought": 99.999}
ALWAYS_SHORT = {"period": 14, "oversold": 0.001, "overbought": 0.01}


def _events(sid: str, kind: str) -> list:
    return [e for e in list_events(sid, 100).events if e.kind == kind]


def _orders(runner) -> list:
    return runner.journal("POST", ORDER_PATH)


def _two_candles(runner):
    """Play the previous minute's candle now; return a function that plays the current one.

    The ticks are dispatched at second 1 of their minute (as the scheduler does), so that the pinned
    stale-candle clock never sees a candle superseded, whatever second the test starts at.
    """
    now = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS + 1000
    runner.run_tick(now - MINUTE_MS)
    return lambda: runner.run_tick(now)


def _exchange_position(runner, symbol: str = "BTCUSDT") -> Decimal:
    """The simulator's one-way position on ``symbol`` (read without a request)."""
    state = runner.sim.state.futures.state_for(runner.sim.account("futures-full"), time.time() * 1000)
    return sum((p.amount for (name, _), p in state.positions.items() if name == symbol), Decimal(0))


def test_a_strategys_stops_say_they_are_signed_by_the_workers_invocation_end(runner) -> None:
    """GIVEN a live long with SL 2 % / TP 3 % WHEN the scheduled worker enters and arms its stops THEN each
    stop's record says its POST was signed by the worker invocation's end (``send_by_ms``): a lost one is sent
    again recvWindow + margin after that, not the longest Timeout after its stamp."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          stop_loss_pct="2", take_profit_pct="3")
    started_ms = time.time() * 1000
    runner.run_tick()
    ended_ms = time.time() * 1000

    entry_id = runner.runs(sid)[0].order["client_order_id"]
    records = [get_order_record(USER, protective_client_algo_id(entry_id, role)) for role in SL_TP]
    for record in records:
        assert record is not None and record.send_by_ms is not None, record
        assert started_ms + DEFAULT_TIMEOUT_MS - 1 <= record.send_by_ms <= ended_ms + DEFAULT_TIMEOUT_MS


def test_live_entry_with_sl_tp_records_its_protective_levels_from_the_fill(runner) -> None:
    """GIVEN a live long with SL 2 % / TP 3 % WHEN it enters THEN its protective levels come from the fill
    and both are armed on Binance's algo service, recorded with the strategy as origin."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          stop_loss_pct="2", take_profit_pct="3")
    runner.run_tick()

    run = runner.runs(sid)[0]
    assert run.status == "ordered" and run.order["side"] == "BUY"
    fill = Decimal(run.order["average_price"])
    protective = runner.stored(USER, sid).protective
    sl, tp = protective_prices("BUY", fill, Decimal(2), Decimal(3))
    assert Decimal(str(protective["stop_loss"])) == sl and Decimal(str(protective["take_profit"])) == tp
    assert protective["mode"] == "live" and Decimal(str(protective["quantity"])) == Decimal("0.002")
    kinds = [e.kind for e in reversed(list_events(sid, 50).events)]
    assert kinds[:3] == ["signal", "order_submit", "order_fill"]
    # Armed on Binance's algo service: a reduce-only stop-loss and take-profit for the filled quantity,
    # recorded as ours with the strategy as their origin and the entry as their parent.
    assert _events(sid, "error") == [] and len(_events(sid, "protective_placed")) == 1
    assert len(runner.journal("POST", "/fapi/v1/algoOrder")) == 2
    state = runner.sim.state.futures.state_for(runner.sim.account("futures-full"), time.time() * 1000)
    entry_id = run.order["client_order_id"]
    algos = {a.client_algo_id: a for a in state.algo_orders.values()}
    armed = [algos[protective_client_algo_id(entry_id, role)] for role in SL_TP]
    assert [(a.order_type, a.side, a.reduce_only, a.quantity) for a in armed] == [
        ("STOP_MARKET", "SELL", True, Decimal("0.002")),
        ("TAKE_PROFIT_MARKET", "SELL", True, Decimal("0.002")),
    ]
    records = [get_order_record(USER, protective_client_algo_id(entry_id, role)) for role in SL_TP]
    assert [(r.origin, r.parent_client_order_id, r.kind) for r in records] == [(sid, entry_id, "algo")] * 2
    entry = get_order_record(USER, entry_id)
    assert (entry.origin, entry.kind, entry.status) == (sid, "order", "FILLED")  # the order history's record


def test_live_trailing_stop_is_placed_and_its_firing_clears_the_pair(runner, reconcile) -> None:
    """GIVEN a live long with SL 2 %, TP 3 % and a 1.5 % trailing stop WHEN it enters THEN a reduce-only
    TRAILING_STOP_MARKET with callbackRate 1.5 is armed beside the pair; WHEN the mark rises 1 % then
    falls 2 % THEN the trailing stop closes the position and one reconciler run cancels the SL and TP."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          stop_loss_pct="2", take_profit_pct="3", trailing_stop_pct="1.5")
    runner.run_tick()
    entry_id = runner.runs(sid)[0].order["client_order_id"]
    state = runner.sim.state.futures.state_for(runner.sim.account("futures-full"), time.time() * 1000)
    algos = {a.client_algo_id: a for a in state.algo_orders.values()}
    trailing = algos[protective_client_algo_id(entry_id, "trailing_stop")]
    assert (trailing.order_type, trailing.side, trailing.reduce_only) == (
        "TRAILING_STOP_MARKET", "SELL", True)
    assert (trailing.callback_rate, trailing.quantity) == (Decimal("1.5"), Decimal("0.002"))
    assert get_order_record(USER, trailing.client_algo_id).role == "trailing_stop"

    mark = Decimal(str(runner.sim.mark_price("BTCUSDT")))
    runner.sim.set_mark_price("BTCUSDT", float(mark * Decimal("1.01")))
    runner.sim.set_mark_price("BTCUSDT", float(mark * Decimal("0.99")))
    assert _exchange_position(runner) == 0 and trailing.status in ("TRIGGERED", "FINISHED")
    reconcile()

    assert [algos[protective_client_algo_id(entry_id, r)].status for r in SL_TP] == ["CANCELED"] * 2


def test_a_flip_cancels_the_earlier_entrys_protective_orders_and_arms_the_new_ones(runner) -> None:
    """GIVEN a live long with SL/TP armed WHEN the signal turns short THEN the long's SL and TP are cancelled
    on Binance and the short's own pair is armed: no stale stop is left to close a later position."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          stop_loss_pct="2", take_profit_pct="3")
    play_current = _two_candles(runner)
    long_entry = runner.runs(sid)[-1].order["client_order_id"]
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_SHORT})

    play_current()

    short_entry = runner.runs(sid)[0].order["client_order_id"]
    state = runner.sim.state.futures.state_for(runner.sim.account("futures-full"), time.time() * 1000)
    algos = {a.client_algo_id: a for a in state.algo_orders.values()}
    assert [algos[protective_client_algo_id(long_entry, r)].status for r in SL_TP] == ["CANCELED"] * 2
    assert [(algos[protective_client_algo_id(short_entry, r)].status, algos[protective_client_algo_id(
        short_entry, r)].side) for r in SL_TP] == [("NEW", "BUY")] * 2
    assert _exchange_position(runner) == Decimal("-0.002")


def test_a_flip_into_an_entry_without_stops_forgets_the_cancelled_ones(runner) -> None:
    """GIVEN a live long with SL/TP armed WHEN the user clears SL/TP and the signal turns short THEN the
    long's pair is cancelled on Binance and no longer recorded as armed, so a later close by hand is
    not taken for a stop's work (the hold reads no position, as for any strategy without stops)."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          stop_loss_pct="2", take_profit_pct="3")
    now = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS + 1000
    runner.run_tick(now - 2 * MINUTE_MS)
    long_entry = runner.runs(sid)[-1].order["client_order_id"]
    update_strategy(USER, sid, runner.stored(USER, sid),
                    changes={"parameters": ALWAYS_SHORT, "stop_loss_pct": None, "take_profit_pct": None})
    runner.run_tick(now - MINUTE_MS)
    after_flip = runner.stored(USER, sid)
    runner.sim.inject_trade("futures-full", "manual", "BTCUSDT", side="BUY", quantity="0.002")

    runner.run_tick(now)

    state = runner.sim.state.futures.state_for(runner.sim.account("futures-full"), time.time() * 1000)
    algos = {a.client_algo_id: a for a in state.algo_orders.values()}
    assert [algos[protective_client_algo_id(long_entry, r)].status for r in SL_TP] == ["CANCELED"] * 2
    assert after_flip.live_position == Decimal("-0.002") and after_flip.protective is None
    assert [e.details["cause"] for e in _events(sid, "position_closed")] == []


def test_a_flip_whose_cancels_failed_cancels_the_old_stops_later_not_on_a_new_position(
    runner, reconcile,
) -> None:
    """GIVEN a live long with SL/TP WHEN it flips short while Binance answers the stops' cancels 503 THEN the
    short's record keeps them (``superseded``) and the next flip long cancels them: no stale stop is left
    open beside the new long."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          stop_loss_pct="2", take_profit_pct="3")
    now = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS + 1000
    runner.run_tick(now - 2 * MINUTE_MS)
    first_stops = [protective_client_algo_id(runner.runs(sid)[0].order["client_order_id"], r) for r in SL_TP]
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_SHORT})
    runner.sim.faults.add("http_503_unavailable", count=50, method="DELETE", path="/fapi/v1/algoOrder")
    runner.run_tick(now - MINUTE_MS)
    runner.sim.faults.clear()
    assert runner.runs(sid)[0].order["side"] == "SELL" and _exchange_position(runner) < 0
    assert sorted(runner.stored(USER, sid).protective["superseded"]) == sorted(first_stops)
    reconcile()  # the position reads short, not 0: the reconciler leaves the long's stops alone
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_LONG})

    runner.run_tick(now)

    assert runner.runs(sid)[0].order["side"] == "BUY" and _exchange_position(runner) > 0
    assert [_algos(runner)[i].status for i in first_stops] == ["CANCELED"] * 2
    assert "superseded" not in runner.stored(USER, sid).protective


def test_a_flip_into_an_entry_without_stops_whose_cancels_failed_cancels_them_next_turn(runner) -> None:
    """GIVEN a live long with SL/TP WHEN the user clears SL/TP and it flips short while Binance answers the
    stops' cancels 503 THEN they stay recorded (``superseded``, not armed) and the next turn cancels them
    and forgets the record."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          stop_loss_pct="2", take_profit_pct="3")
    now = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS + 1000
    runner.run_tick(now - 2 * MINUTE_MS)
    first_stops = [protective_client_algo_id(runner.runs(sid)[0].order["client_order_id"], r) for r in SL_TP]
    update_strategy(USER, sid, runner.stored(USER, sid),
                    changes={"parameters": ALWAYS_SHORT, "stop_loss_pct": None, "take_profit_pct": None})
    runner.sim.faults.add("http_503_unavailable", count=50, method="DELETE", path="/fapi/v1/algoOrder")
    runner.run_tick(now - MINUTE_MS)
    runner.sim.faults.clear()
    after_flip = runner.stored(USER, sid).protective
    assert after_flip["armed"] is False and sorted(after_flip["superseded"]) == sorted(first_stops)

    runner.run_tick(now)

    assert [_algos(runner)[i].status for i in first_stops] == ["CANCELED"] * 2
    assert runner.stored(USER, sid).protective is None and _exchange_position(runner) == Decimal("-0.002")


def test_after_a_liquidation_the_next_tick_records_it_and_sends_no_reduce_order(runner) -> None:
    """GIVEN a long live position WHEN Binance liquidates it THEN the next tick records position_closed
    (liquidation), sets the position to 0 and sends no order at all."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          stop_loss_pct="2")
    play_current = _two_candles(runner)
    assert len(_orders(runner)) == 1 and runner.stored(USER, sid).live_position == Decimal("0.002")
    runner.sim.inject_trade("futures-full", "liquidation", "BTCUSDT")

    play_current()

    assert len(_orders(runner)) == 1  # the entry only: no reduce order into nothing, no re-entry
    closed = _events(sid, "position_closed")
    seen = [(e.details["cause"], e.details["position_before"], e.details["position_after"]) for e in closed]
    assert seen == [("liquidation", "0.002", "0")]
    stored = runner.stored(USER, sid)
    assert stored.live_position == 0 and stored.protective is None and stored.reentry_block == "long"
    assert runner.runs(sid)[0].status == "no_change"


def test_after_a_manual_close_a_repeated_signal_does_not_open_again(runner) -> None:
    """GIVEN a long live position closed by hand WHEN the long signal repeats THEN no second order."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG)
    play_current = _two_candles(runner)
    runner.sim.inject_trade("futures-full", "manual", "BTCUSDT", side="SELL", quantity="0.002")

    play_current()

    assert len(_orders(runner)) == 1
    assert runner.runs(sid)[0].status == "no_change"
    assert _exchange_position(runner) == 0
    # Holding without protective orders reads nothing (the weight budget): the close is seen, and
    # recorded, before the strategy's next order.
    assert _events(sid, "position_closed") == []


def test_after_a_manual_close_a_flipped_signal_opens_once_not_double(runner) -> None:
    """GIVEN a long position closed by hand WHEN the signal turns short THEN position_closed (manual) and
    ONE sell of the size (not twice the size on the stale belief)."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG)
    play_current = _two_candles(runner)
    runner.sim.inject_trade("futures-full", "manual", "BTCUSDT", side="SELL", quantity="0.002")
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_SHORT})

    play_current()

    run = runner.runs(sid)[0]
    assert run.status == "ordered" and run.order["side"] == "SELL"
    assert run.order["executed_quantity"] == "0.002" and run.position_before == 0
    assert [e.details["cause"] for e in _events(sid, "position_closed")] == ["manual"]
    assert runner.stored(USER, sid).live_position == Decimal("-0.002")
    assert _exchange_position(runner) == Decimal("-0.002")


def test_an_over_limit_order_is_a_risk_block_event_with_nothing_sent(runner) -> None:
    """GIVEN max_notional_usdt 10 WHEN a live strategy wants ~140 USDT THEN a risk_block naming the gate."""
    connection = runner.connection(USER)
    update_settings(USER, connection, {"max_notional_usdt": Decimal("10")})
    sid = runner.strategy(USER, connection, type="rsi_threshold", parameters=ALWAYS_LONG)

    runner.run_tick()

    assert _orders(runner) == []
    blocks = _events(sid, "risk_block")
    assert [e.details["gate"] for e in blocks] == ["max_notional_usdt"]
    assert runner.runs(sid)[0].skip_reason == "max_notional_usdt"


def test_quote_sizing_and_long_only_direction(runner) -> None:
    """GIVEN quote_size_usdt 300 and direction long WHEN the signal is short THEN flat (nothing sent);
    WHEN long THEN the quantity is 300 USDT / close, rounded down to the step."""
    connection = runner.connection(USER)
    shorted = runner.strategy(USER, connection, type="rsi_threshold", parameters=ALWAYS_SHORT, size=None,
                              quote_size_usdt="300", direction="long")
    longed = runner.strategy(USER, connection, symbol="ETHUSDT", type="rsi_threshold", parameters=ALWAYS_LONG,
                             size=None, quote_size_usdt="300", direction="long")
    runner.run_tick()

    assert runner.runs(shorted)[0].status == "no_change" and runner.runs(shorted)[0].target_position == 0
    run = runner.runs(longed)[0]
    client = get_client("futures", "production")
    close = endpoints.klines(client, "ETHUSDT", "1m", limit=2, end_time=run.close_time)[-1].close
    expected = get_symbol_rules(client, "ETHUSDT").round_quantity(Decimal(300) / close, market_order=True)
    assert run.status == "ordered" and Decimal(run.order["executed_quantity"]) == expected
    assert len(_orders(runner)) == 1


def _user_trades(runner, symbol: str = "BTCUSDT") -> list[dict]:
    """The simulator's userTrades rows of the demo account (what Binance says was filled and paid)."""
    state = runner.sim.state.futures.state_for(runner.sim.account("futures-full"), time.time() * 1000)
    return [t.as_dict() for t in state.trades if t.order.symbol == symbol]


def _get(runner, sid: str) -> dict:
    event = at_path(load_event("strategy_get"), f"/strategies/{sid}", id=sid)
    response = runner.invoke("strategy_get", with_user(event, USER))
    assert response["statusCode"] == 200, response["body"]
    return response_json(response)


def test_live_pnl_is_binances_realised_pnl_net_of_its_commission(runner) -> None:
    """GIVEN a live long entry and its exit (long-only, signal turns short) WHEN GET THEN realised PnL =
    sum(realizedPnl) - sum(commission) of Binance's fills, fees = the commissions, nothing open."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long")
    play_current = _two_candles(runner)
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_SHORT})
    play_current()

    assert [r.order["side"] for r in reversed(runner.runs(sid))] == ["BUY", "SELL"]
    trades = _user_trades(runner)
    fees = sum(Decimal(t["commission"]) for t in trades)
    realised = sum(Decimal(t["realizedPnl"]) for t in trades) - fees
    pnl = _get(runner, sid)["pnl"]
    places = Decimal("0.00000001")
    assert Decimal(pnl["realised_pnl"]) == realised.quantize(places)
    assert Decimal(pnl["fees"]) == fees.quantize(places)
    assert Decimal(pnl["unrealised_pnl"]) == 0 and pnl["entry_price"] is None


def test_live_pnl_says_how_many_fees_were_paid_in_another_asset(runner, monkeypatch) -> None:
    """A live fill whose commission Binance took in BNB is shown as a fee left out of fees and realised."""
    as_dict = sim_futures.Trade.as_dict
    monkeypatch.setattr(sim_futures.Trade, "as_dict",
                        lambda trade: {**as_dict(trade), "commissionAsset": "BNB"})  # BNB fee burn on
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG)
    runner.run_tick()

    [trade] = _user_trades(runner)
    assert trade["commissionAsset"] == "BNB" and Decimal(trade["commission"]) > 0
    pnl = _get(runner, sid)["pnl"]
    assert Decimal(pnl["fees"]) == 0 and pnl["estimated_fills"] == 0
    assert pnl.get("fees_other_assets") == 1, "a BNB commission is hidden: realised PnL looks fee-free"


def test_paper_pnl_pays_the_taker_fee_and_marks_the_open_position(runner) -> None:
    """GIVEN a paper long entry WHEN GET THEN realised = -fee, unrealised = (mark - fill) x size."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          mode="paper")
    runner.run_tick()
    fill = Decimal(runner.runs(sid)[0].order["average_price"])
    runner.sim.set_mark_price("BTCUSDT", 70_000)

    pnl = _get(runner, sid)["pnl"]

    assert Decimal(pnl["fees"]) == fee(Decimal("0.002"), fill).quantize(Decimal("0.00000001"))
    assert Decimal(pnl["realised_pnl"]) == -Decimal(pnl["fees"])
    assert Decimal(pnl["entry_price"]) == fill.quantize(Decimal("0.00000001"))
    expected = ((Decimal(70_000) - fill) * Decimal("0.002")).quantize(Decimal("0.00000001"))
    assert Decimal(pnl["unrealised_pnl"]) == expected and Decimal(pnl["mark_price"]) == 70_000


def _seed_paper_position(user: str, sid: str, protective: dict) -> None:
    """Runner state as a paper entry at 60000 leaves it: 0.002 long, its book and protective levels."""
    from klineo.store.dynamo import Update
    from klineo.store.runs import set_protective
    from klineo.store.strategies import strategy_key

    book = {"entry_price": Decimal(60_000), "gross_pnl": Decimal(0), "fees": Decimal(0)}
    update = Update(sets={"paper_position": Decimal("0.002"), "paper_book": book})
    key = strategy_key(user, sid)
    boto3.client("dynamodb").update_item(TableName=get_settings().data_table, Key=key, **update.request())
    set_protective(user, sid, protective, held=Decimal(0), seen=None)


def test_a_paper_stop_reached_by_the_candle_closes_the_position_before_deciding(runner) -> None:
    """GIVEN a paper long whose stop-loss is above any price WHEN the next candle runs THEN
    protective_triggered, position_closed (stop_loss), flat with the exit fee booked, no re-entry."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          mode="paper")
    _seed_paper_position(USER, sid, {"mode": "paper", "stop_loss": Decimal(10**9), "entry_side": "BUY"})

    runner.run_tick()

    assert [e.details["reason"] for e in _events(sid, "protective_triggered")] == ["stop_loss"]
    assert [e.details["cause"] for e in _events(sid, "position_closed")] == ["stop_loss"]
    stored = runner.stored(USER, sid)
    assert stored.paper_position == 0 and stored.reentry_block == "long" and stored.protective is None
    assert Decimal(str(stored.paper_book["fees"])) > 0
    assert runner.runs(sid)[0].status == "no_change" and runner.journal("POST") == []


def test_percent_sizing_takes_the_percent_of_the_available_usdt_times_leverage(runner) -> None:
    """GIVEN size_pct 1 and leverage 2 WHEN a live long enters THEN quantity = 1 % of availableBalance x 2 /
    close, rounded down to the step, and 2x is set on the symbol."""
    from klineo.binance import Credentials, KeyType
    from klineo.binance.endpoints import futures_balance

    account = runner.sim.account("futures-full")
    creds = Credentials(api_key=account.api_key, secret=account.secret, key_type=KeyType.HMAC)
    client = get_client("futures", "production")
    usdt = next(row for row in futures_balance(client, creds) if row["asset"] == "USDT")
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          size=None, size_pct="1", leverage=2)

    runner.run_tick()

    run = runner.runs(sid)[0]
    close = endpoints.klines(client, "BTCUSDT", "1m", limit=2, end_time=run.close_time)[-1].close
    wanted = Decimal(usdt["availableBalance"]) * Decimal("0.01") * 2 / close
    expected = get_symbol_rules(client, "BTCUSDT").round_quantity(wanted, market_order=True)
    assert run.status == "ordered" and Decimal(run.order["executed_quantity"]) == expected
    state = runner.sim.state.futures.state_for(account, time.time() * 1000)
    assert state.leverage["BTCUSDT"] == 2


def test_strategies_of_one_connection_share_one_position_read_per_batch(runner) -> None:
    """GIVEN two protected live positions of one connection on two symbols WHEN the next tick runs in one
    worker batch THEN ONE positionRisk read (weight 5) serves both, and both positions stand."""
    connection = runner.connection(USER)
    sids = [runner.strategy(USER, connection, symbol=symbol, size=size, type="rsi_threshold",
                            parameters=ALWAYS_LONG, stop_loss_pct="5")
            for symbol, size in (("BTCUSDT", "0.002"), ("ETHUSDT", "0.05"))]
    play_current = _two_candles(runner)
    runner.sim.clear_journal()

    tick = play_current()

    assert len(tick.responses) == 1  # both messages in one worker invocation
    reads = runner.journal("GET", "/fapi/v3/positionRisk")
    assert len(reads) == 1 and reads[0].weight == 5
    assert [runner.stored(USER, sid).live_position for sid in sids] == [Decimal("0.002"), Decimal("0.05")]
    assert [_events(sid, "position_closed") for sid in sids] == [[], []]


def test_without_spare_request_weight_the_live_pnl_is_estimated_and_the_order_still_settles(
    runner, monkeypatch
) -> None:
    """GIVEN less request weight left this minute than the fills read needs WHEN a live order fills THEN no
    userTrades request is sent, the run is ordered, and the PnL counts the fill as estimated (taker fee)."""
    from klineo.runner import execution

    monkeypatch.setattr(execution, "FILLS_READ_RESERVE", 10**9)
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG)
    runner.run_tick()

    run = runner.runs(sid)[0]
    assert run.status == "ordered" and runner.journal("GET", "/fapi/v1/userTrades") == []
    pnl = _get(runner, sid)["pnl"]
    assert pnl["estimated_fills"] == 1
    expected_fee = fee(Decimal(run.order["executed_quantity"]), Decimal(run.order["average_price"]))
    assert Decimal(pnl["fees"]) == expected_fee.quantize(Decimal("0.00000001"))


def _algos(runner) -> dict:
    """The simulator's algo orders of the account, by clientAlgoId."""
    state = runner.sim.state.futures.state_for(runner.sim.account("futures-full"), time.time() * 1000)
    return {a.client_algo_id: a for a in state.algo_orders.values()}


def _guarded_long(runner, trailing_pct: str) -> tuple[str, str, Decimal]:
    """A live long entered with SL 2 %, TP 3 % and a trailing stop: (connection, entry id, mark at entry)."""
    connection = runner.connection(USER_TS)
    sid = runner.strategy(USER_TS, connection, type="rsi_threshold", parameters=ALWAYS_LONG,
                          stop_loss_pct="2", take_profit_pct="3", trailing_stop_pct=trailing_pct)
    runner.run_tick()
    entry = runner.runs(sid)[0].order["client_order_id"]
    return connection, entry, Decimal(str(runner.sim.mark_price("BTCUSDT")))


def test_open_orders_read_cancels_sl_and_tp_once_the_trailing_stop_fired(runner) -> None:
    """GIVEN a live long with SL, TP and a trailing stop WHEN the trailing stop fires THEN the next read of
    the open orders cancels the SL and TP (any fired sibling counts, not only the SL/TP pair)."""
    connection, entry, mark = _guarded_long(runner, "1.5")
    runner.sim.set_mark_price("BTCUSDT", float(mark * Decimal("1.01")))
    runner.sim.set_mark_price("BTCUSDT", float(mark * Decimal("0.99")))  # the trailing stop fires
    assert _exchange_position(runner) == 0

    listed = list_open_orders(USER_TS, connection, "BTCUSDT")

    algos = _algos(runner)
    left = [o.role for o in listed.orders]
    assert left == [], f"SL/TP of a position the trailing stop closed still listed open: {left}"
    assert [algos[protective_client_algo_id(entry, r)].status for r in ("stop_loss", "take_profit")] == [
        "CANCELED"] * 2


def test_open_orders_read_cancels_the_trailing_stop_once_the_take_profit_fired(runner) -> None:
    """GIVEN a live long with SL, TP and a trailing stop WHEN the take-profit fires THEN the next read of the
    open orders cancels the trailing stop too."""
    connection, entry, mark = _guarded_long(runner, "5")
    runner.sim.set_mark_price("BTCUSDT", float(mark * Decimal("1.05")))  # the take-profit fires
    algos = _algos(runner)
    assert _exchange_position(runner) == 0
    assert algos[protective_client_algo_id(entry, "take_profit")].status in ("TRIGGERED", "FINISHED")

    listed = list_open_orders(USER_TS, connection, "BTCUSDT")

    left = [o.role for o in listed.orders]
    assert left == [], f"orders of a position the take-profit closed still listed open: {left}"
    assert algos[protective_client_algo_id(entry, "trailing_stop")].status == "CANCELED"


def test_a_live_entry_keeps_an_older_items_paper_stop_loss(runner) -> None:
    """GIVEN an item written before paper stops moved to paper_book (an open paper long, its stop-loss in
    ``protective``) WHEN the strategy, now live, enters THEN the live write keeps the paper stop."""
    connection = runner.connection(USER_TS)
    sid = runner.strategy(USER_TS, connection, type="rsi_threshold", parameters=ALWAYS_LONG)
    # An item written before d56633d: an open paper long whose stop-loss sits in ``protective``.
    legacy = {"mode": "paper", "entry_side": "BUY", "entry_price": Decimal("100"), "armed": False,
              "stop_loss": Decimal("98")}
    set_protective(USER_TS, sid, legacy, held=Decimal(0), seen=None)
    aws_clients.dynamodb().update_item(
        TableName=get_settings().data_table, Key=strategy_key(USER_TS, sid),
        UpdateExpression="SET paper_position = :p", ExpressionAttributeValues={":p": {"N": "2"}})
    assert paper_protective(runner.stored(USER_TS, sid)) is not None

    runner.run_tick()  # the strategy, now live, enters (no stops of its own)

    stored = runner.stored(USER_TS, sid)
    assert stored.live_position == Decimal("0.002") and stored.paper_position == Decimal("2")
    assert paper_protective(stored) is not None, "the open paper long lost its stop-loss to a live fill"


def test_a_filled_entry_whose_settle_was_lost_is_settled_and_protected_while_a_kill_switch_is_on(
        runner, monkeypatch) -> None:
    """GIVEN a long entry Binance filled whose settle was lost (the worker died) WHEN the trader turns the
    kill switch on before the next candle THEN that turn still settles the order (recorded, the position
    as Binance holds it) and places its stop-loss (reducing only), then skips the candle naming the switch."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          stop_loss_pct="2")
    now = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS + 1000
    runner.pinned["tick_ms"] = now - MINUTE_MS
    runner.tick(now - MINUTE_MS)
    messages = runner.receive()
    crash_first_call(monkeypatch, execution, "settle_live_order")  # the worker dies after Binance filled
    runner.work_event(sqs_event(messages, runner.queue_arn, runner.aws.region), remaining_ms=1)
    assert runner.stored(USER, sid).pending is not None and _exchange_position(runner) > 0
    runner.kill_switch(USER, True)

    runner.run_tick(now)

    stored = runner.stored(USER, sid)
    assert (stored.pending, stored.live_position) == (None, _exchange_position(runner))
    assert stored.protective and stored.protective.get("armed"), stored.protective
    latest = runner.runs(sid)[0]
    assert (latest.status, latest.skip_reason) == ("skipped", "user_kill_switch")
    assert len(runner.journal("POST", ORDER_PATH)) == 1  # the entry only: nothing new went out
