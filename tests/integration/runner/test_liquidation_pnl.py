"""A live position Binance liquidated counts in the strategy's PnL: the loss is Binance's, from its fills.

Real dispatcher and worker handlers, moto, and the Binance simulator over loopback. The signal is pinned
with RSI levels no price path crosses (oversold 99.99: always long).
"""

from __future__ import annotations

import time
from decimal import Decimal

from klineo.store.events import list_events
from klineo.store.strategies import PendingOrder

from tests.helpers import load_event, response_json, with_user
from tests.integration.api.conftest import at_path
from tests.integration.runner.conftest import tick_times
from tests.integration.runner.test_fills_booked import _set_pending
from tests.integration.runner.test_hedge_mode import HEDGE_ACCOUNT, hedge_connection

USER = "user-runner-liquidated"
ALWAYS_LONG = {"period": 14, "oversold": 99.99, "overbought": 99.999}
PLACES = Decimal("0.00000001")


def _user_trades(runner) -> list[dict]:
    """The simulator's BTCUSDT userTrades rows of the demo account (what Binance says was filled and paid)."""
    state = runner.sim.state.futures.state_for(runner.sim.account("futures-full"), time.time() * 1000)
    return [t.as_dict() for t in state.trades if t.order.symbol == "BTCUSDT"]


def _pnl(runner, sid: str) -> dict:
    """The ``pnl`` of GET /strategies/{id}."""
    event = at_path(load_event("strategy_get"), f"/strategies/{sid}", id=sid)
    response = runner.invoke("strategy_get", with_user(event, USER))
    assert response["statusCode"] == 200, response["body"]
    return response_json(response)["pnl"]


def _long_entered(runner, tick: int) -> tuple[str, Decimal]:
    """A live long (stop-loss 2 %) entered by the tick at ``tick``: (strategy id, BTCUSDT's mark then)."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          stop_loss_pct="2")
    runner.run_tick(tick)
    return sid, Decimal(str(runner.sim.mark_price("BTCUSDT")))


def test_a_liquidated_live_position_books_binances_loss_in_the_strategys_pnl(runner) -> None:
    """The turn that finds a live long liquidated books the liquidation's realised PnL and fee in the PnL."""
    ticks = tick_times(2)
    sid, mark = _long_entered(runner, ticks[0])
    runner.sim.inject_trade("futures-full", "liquidation", "BTCUSDT", price=str(mark * Decimal("0.9")))

    runner.run_tick(ticks[1])

    trades = _user_trades(runner)
    assert len(trades) == 2  # the entry's fill and the liquidation's
    fees = sum(Decimal(t["commission"]) for t in trades)
    realised = sum(Decimal(t["realizedPnl"]) for t in trades) - fees
    assert realised < -10  # a 10 % fall on 0.002 BTC
    pnl = _pnl(runner, sid)
    assert Decimal(pnl["realised_pnl"]) == realised.quantize(PLACES), "the liquidation's loss is not counted"
    assert Decimal(pnl["fees"]) == fees.quantize(PLACES)
    assert Decimal(pnl["unrealised_pnl"]) == 0 and pnl["entry_price"] is None
    assert pnl["estimated_fills"] == 0  # Binance's own figures, read from the liquidation's fills


def _liquidated_beside_a_trade_by_hand(runner, side: str, quantity: str, fall: Decimal) -> str:
    """A live long (stop-loss 2 %) entered, the user's own ``side`` of ``quantity`` in Binance's app, then the
    account's position liquidated at the mark times ``fall``, and the turn that found it played: its id."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          stop_loss_pct="2")
    ticks = tick_times(2)
    runner.run_tick(ticks[0])
    runner.sim.inject_trade("futures-full", "manual", "BTCUSDT", side=side, quantity=quantity)
    mark = Decimal(str(runner.sim.mark_price("BTCUSDT")))
    runner.sim.inject_trade("futures-full", "liquidation", "BTCUSDT", price=str(mark * fall))
    runner.run_tick(ticks[1])
    return sid


def test_a_liquidation_of_more_than_the_strategys_position_books_only_its_share(runner) -> None:
    """A liquidation that also closed the user's own 0.002 beside the strategy's 0.002 books half of it."""
    sid = _liquidated_beside_a_trade_by_hand(runner, "BUY", "0.002", Decimal("0.9"))

    entry, _by_hand, liquidation = _user_trades(runner)
    assert Decimal(liquidation["qty"]) == Decimal("0.004")
    own = Decimal(entry["realizedPnl"]) - Decimal(entry["commission"])
    share = (Decimal(liquidation["realizedPnl"]) - Decimal(liquidation["commission"])) / 2
    pnl = _pnl(runner, sid)
    assert Decimal(pnl["realised_pnl"]) == (own + share).quantize(PLACES)
    assert runner.stored(USER, sid).live_position == 0


def test_a_liquidation_of_the_users_own_short_is_not_booked_to_a_strategys_long(runner) -> None:
    """GIVEN a strategy's live long and the user's sale in Binance's app that turned the account short WHEN
    Binance liquidates that short (a BUY) THEN the strategy's long reads closed, not by that liquidation, its
    PnL only its own entry's: the liquidation closed the user's short, never the strategy's long."""
    sid = _liquidated_beside_a_trade_by_hand(runner, "SELL", "0.004", Decimal("1.1"))

    entry, _by_hand, liquidation = _user_trades(runner)
    assert (liquidation["side"], Decimal(liquidation["qty"])) == ("BUY", Decimal("0.002"))
    own = Decimal(entry["realizedPnl"]) - Decimal(entry["commission"])
    assert Decimal(_pnl(runner, sid)["realised_pnl"]) == own.quantize(PLACES), "the user's loss is booked"
    [closed] = [e for e in list_events(sid, 100).events if e.kind == "position_closed"]
    assert closed.details["cause"] != "liquidation" and runner.stored(USER, sid).live_position == 0


def _liquidated_unlisted(runner, by_hand: str | None = None) -> tuple[str, dict]:
    """A live long (beside ``by_hand`` BTC the user bought in Binance's app) liquidated while userTrades does
    not list the liquidation's fills yet, the turn that found it played: (strategy id, its pnl then)."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          stop_loss_pct="2")
    ticks = tick_times(2)
    runner.run_tick(ticks[0])
    if by_hand:
        runner.sim.inject_trade("futures-full", "manual", "BTCUSDT", side="BUY", quantity=by_hand)
    mark = Decimal(str(runner.sim.mark_price("BTCUSDT")))
    runner.sim.inject_trade("futures-full", "liquidation", "BTCUSDT", price=str(mark * Decimal("0.9")),
                            listed=False)
    runner.run_tick(ticks[1])
    assert runner.stored(USER, sid).live_position == 0
    return sid, _pnl(runner, sid)


def test_a_liquidation_estimated_before_binance_lists_its_fills_becomes_binances_after_the_reconciler(
    runner, reconcile,
) -> None:
    """A liquidation the turn estimated (its fills not listed yet) is booked exact by the reconciler, once."""
    sid, estimated = _liquidated_unlisted(runner)
    assert estimated["estimated_fills"] == 1
    assert "fills_booked" not in reconcile() and _pnl(runner, sid) == estimated  # still not listed
    runner.sim.list_trades()

    summary = reconcile()

    trades = _user_trades(runner)
    fees = sum(Decimal(t["commission"]) for t in trades)
    realised = sum(Decimal(t["realizedPnl"]) for t in trades) - fees
    assert Decimal(estimated["realised_pnl"]) != realised.quantize(PLACES)  # an estimate, not Binance's
    pnl = _pnl(runner, sid)
    assert Decimal(pnl["realised_pnl"]) == realised.quantize(PLACES), "the liquidation stays an estimate"
    assert Decimal(pnl["fees"]) == fees.quantize(PLACES)
    assert pnl["estimated_fills"] == 0 and summary.get("fills_booked") == 1

    again = reconcile()

    assert "fills_booked" not in again and _pnl(runner, sid) == pnl


def test_an_estimated_liquidation_of_more_than_the_strategys_position_books_only_its_share(
    runner, reconcile,
) -> None:
    """The reconciler books half of a liquidation estimated at the turn that also closed the user's 0.002."""
    sid, _ = _liquidated_unlisted(runner, by_hand="0.002")
    runner.sim.list_trades()

    reconcile()

    entry, _by_hand, liquidation = _user_trades(runner)
    own = Decimal(entry["realizedPnl"]) - Decimal(entry["commission"])
    share = (Decimal(liquidation["realizedPnl"]) - Decimal(liquidation["commission"])) / 2
    pnl = _pnl(runner, sid)
    assert Decimal(pnl["realised_pnl"]) == (own + share).quantize(PLACES)
    assert Decimal(pnl["fees"]) == (Decimal(entry["commission"]) + Decimal(liquidation["commission"]) / 2
                                    ).quantize(PLACES)
    assert pnl["estimated_fills"] == 0


def test_an_estimated_liquidation_not_booked_while_an_order_is_pending_is_booked_by_a_later_run(
    runner, reconcile,
) -> None:
    """A run that cannot book the liquidation (the strategy has an order pending) leaves it for the next:
    its reading of the symbol's trades does not settle the record with the estimate still on it."""
    sid, _ = _liquidated_unlisted(runner)
    runner.sim.list_trades()
    held = Decimal("0.002")
    _set_pending(sid, PendingOrder(close_time=1, client_order_id="pending-elsewhere", side="BUY",
                                   quantity=held, reduce_only=False, position_before=Decimal(0),
                                   claimed_at_ms=1, lease_until_ms=1), user=USER)

    assert reconcile().get("fills_not_booked_yet") == 1

    _set_pending(sid, None, user=USER)
    assert reconcile().get("fills_booked") == 1, "the estimate is left on a settled record"
    assert _pnl(runner, sid)["estimated_fills"] == 0


def _partly_liquidated(runner, ticks: list[int], *, listed: bool = True) -> tuple[str, Decimal]:
    """A live long of about 0.010 BTC (quote sizing: the turn after keeps what is left, buys nothing) that
    Binance liquidated down to 0.004 (its fills in userTrades unless not ``listed``), the turn that found it
    played: (strategy id, the position it had)."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          size=None, quote_size_usdt="700", stop_loss_pct="2")
    runner.run_tick(ticks[0])
    held = runner.stored(USER, sid).live_position
    assert held > Decimal("0.006")
    mark = Decimal(str(runner.sim.mark_price("BTCUSDT")))
    runner.sim.inject_trade("futures-full", "liquidation", "BTCUSDT", price=str(mark * Decimal("0.95")),
                            quantity=str(held - Decimal("0.004")), listed=listed)
    runner.run_tick(ticks[1])
    assert runner.stored(USER, sid).live_position == Decimal("0.004")
    return sid, held


def _binances_pnl(runner) -> tuple[Decimal, Decimal]:
    """(realised PnL after fees, fees) of every BTCUSDT fill userTrades lists for the account."""
    trades = _user_trades(runner)
    fees = sum(Decimal(t["commission"]) for t in trades)
    realised = sum(Decimal(t["realizedPnl"]) for t in trades) - fees
    return realised.quantize(PLACES), fees.quantize(PLACES)


def _causes(sid: str) -> list[str]:
    """The causes of the strategy's position_closed events, oldest first."""
    return [e.details["cause"] for e in reversed(list_events(sid, 100).events) if e.kind == "position_closed"]


def test_a_second_forced_close_after_a_partial_liquidation_counts_each_forced_order_once(runner) -> None:
    """A liquidation of part of the position booked by one turn, then an ADL of the rest found by a later
    turn: the strategy's PnL and fees are Binance's fills of the entry and of both forced orders, each
    once."""
    ticks = tick_times(3)
    sid, _ = _partly_liquidated(runner, ticks)
    runner.sim.inject_trade("futures-full", "adl", "BTCUSDT")

    runner.run_tick(ticks[2])

    assert len(_user_trades(runner)) == 3  # the entry's fill, the liquidation's and the ADL's
    realised, fees = _binances_pnl(runner)
    pnl = _pnl(runner, sid)
    assert Decimal(pnl["realised_pnl"]) == realised, "a forced order is counted twice"
    assert Decimal(pnl["fees"]) == fees
    assert pnl["estimated_fills"] == 0 and runner.stored(USER, sid).live_position == 0
    assert _causes(sid) == ["liquidation", "adl"]


def test_a_close_by_hand_after_a_partial_liquidation_is_not_the_liquidation_again(runner) -> None:
    """After a partial liquidation booked by one turn, the rest closed by hand is not taken for that
    liquidation: its fills are not booked again (a trade by hand is the user's own, not counted) and the
    cause is the one of a close without a forced order (its stop-loss armed but unfired: manual)."""
    ticks = tick_times(3)
    sid, _ = _partly_liquidated(runner, ticks)
    booked = _pnl(runner, sid)
    runner.sim.inject_trade("futures-full", "manual", "BTCUSDT", side="SELL", quantity="0.004")

    runner.run_tick(ticks[2])

    entry, liquidation, _by_hand = _user_trades(runner)
    fees = Decimal(entry["commission"]) + Decimal(liquidation["commission"])
    realised = Decimal(entry["realizedPnl"]) + Decimal(liquidation["realizedPnl"]) - fees
    pnl = _pnl(runner, sid)
    assert Decimal(booked["realised_pnl"]) == realised.quantize(PLACES)
    assert Decimal(pnl["realised_pnl"]) == realised.quantize(PLACES), "the liquidation is booked again"
    assert Decimal(pnl["fees"]) == fees.quantize(PLACES)
    assert _causes(sid) == ["liquidation", "manual"]


def test_two_forced_closes_estimated_at_two_turns_are_booked_by_the_reconciler_each_once(
    runner, reconcile,
) -> None:
    """A partial liquidation and then an ADL of the rest, each found by a turn before Binance lists its fills:
    each turn estimates only its own order (the ADL all the strategy's, not a share of both), and the
    reconciler then books Binance's fills of both, each once."""
    ticks = tick_times(3)
    sid, _ = _partly_liquidated(runner, ticks, listed=False)
    runner.sim.inject_trade("futures-full", "adl", "BTCUSDT", listed=False)
    runner.run_tick(ticks[2])
    assert _pnl(runner, sid)["estimated_fills"] == 2
    runner.sim.list_trades()

    assert reconcile().get("fills_booked") == 2

    realised, fees = _binances_pnl(runner)
    pnl = _pnl(runner, sid)
    assert (Decimal(pnl["realised_pnl"]), Decimal(pnl["fees"])) == (realised, fees)
    assert pnl["estimated_fills"] == 0 and _causes(sid) == ["liquidation", "adl"]
    assert "fills_booked" not in reconcile() and _pnl(runner, sid) == pnl


def test_a_hedge_long_closed_by_hand_is_not_the_liquidation_of_the_users_short(runner) -> None:
    """On a hedge account, a liquidation of the user's own SHORT on the symbol since the strategy's entry is
    not what closed its LONG by hand: nothing of that liquidation is booked and the cause is the close's own
    (its stop-loss armed but unfired: manual), not "liquidation"."""
    sid = runner.strategy(USER, hedge_connection(runner, USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long", stop_loss_pct="50")
    ticks = tick_times(2)
    runner.run_tick(ticks[0])
    runner.sim.inject_trade(HEDGE_ACCOUNT, "manual", "BTCUSDT", side="SELL", positionSide="SHORT",
                            quantity="0.005")
    mark = Decimal(str(runner.sim.mark_price("BTCUSDT")))
    short_gone = runner.sim.inject_trade(HEDGE_ACCOUNT, "liquidation", "BTCUSDT", positionSide="SHORT",
                                         price=str(mark * Decimal("1.1")))
    assert short_gone["positionSide"] == "SHORT"
    runner.sim.inject_trade(HEDGE_ACCOUNT, "manual", "BTCUSDT", side="SELL", positionSide="LONG",
                            quantity="0.002")

    runner.run_tick(ticks[1])

    state = runner.sim.state.futures.state_for(runner.sim.account(HEDGE_ACCOUNT), time.time() * 1000)
    assert state.trades[0].order.client_order_id.startswith("ks")  # the strategy's entry, its only fill
    entry = state.trades[0].as_dict()
    pnl = _pnl(runner, sid)
    own = Decimal(entry["realizedPnl"]) - Decimal(entry["commission"])
    assert Decimal(pnl["realised_pnl"]) == own.quantize(PLACES), "the user's SHORT liquidation is booked"
    assert Decimal(pnl["fees"]) == Decimal(entry["commission"]).quantize(PLACES)
    assert runner.stored(USER, sid).live_position == 0 and _causes(sid) == ["manual"]


def _estimated_then_booked_exact(runner, reconcile, sid: str) -> None:
    """The strategy's PnL counts one fill estimated, then, after a reconciler run, Binance's fills exactly."""
    assert _pnl(runner, sid)["estimated_fills"] == 1
    assert reconcile().get("fills_booked") == 1
    realised, fees = _binances_pnl(runner)
    pnl = _pnl(runner, sid)
    assert (Decimal(pnl["realised_pnl"]), Decimal(pnl["fees"])) == (realised, fees)
    assert pnl["estimated_fills"] == 0


def test_a_liquidation_found_in_a_minute_without_weight_to_spare_is_estimated_not_read(
    runner, reconcile,
) -> None:
    """A turn that finds a liquidation after other clients spent the minute's weight down under
    FILLS_READ_RESERVE reads none of its fills (the weight is kept for orders, as for the strategy's own
    fills): it estimates them, and the reconciler books Binance's in the estimate's place."""
    ticks = tick_times(2)
    sid, mark = _long_entered(runner, ticks[0])
    runner.sim.inject_trade("futures-full", "liquidation", "BTCUSDT", price=str(mark * Decimal("0.9")))
    runner.sim.faults.add("weight_spent", method="GET", path="/fapi/v1/forceOrders", weight=1500)
    read_before = len(runner.journal("GET", "/fapi/v1/userTrades"))

    runner.run_tick(ticks[1])

    assert len(runner.journal("GET", "/fapi/v1/userTrades")) == read_before, "fills read past the reserve"
    _estimated_then_booked_exact(runner, reconcile, sid)


def test_a_liquidation_whose_fills_read_fails_is_corrected_now_with_an_estimate(runner, reconcile) -> None:
    """A turn that finds a liquidation while userTrades fails (503 on every try) is not failed for it: the
    position is corrected in that turn (position_closed, flat) with the fills estimated, as a strategy
    order's failed read is, and the reconciler books Binance's fills in the estimate's place."""
    ticks = tick_times(2)
    sid, mark = _long_entered(runner, ticks[0])
    runner.sim.inject_trade("futures-full", "liquidation", "BTCUSDT", price=str(mark * Decimal("0.9")))
    runner.sim.faults.add("http_503_unavailable", method="GET", path="/fapi/v1/userTrades", count=50)

    tick = runner.run_tick(ticks[1])

    runner.sim.faults.clear()
    assert tick.failures == [], "the turn failed on the liquidation's fills read"
    assert runner.stored(USER, sid).live_position == 0 and _causes(sid) == ["liquidation"]
    _estimated_then_booked_exact(runner, reconcile, sid)


def test_a_liquidation_whose_fills_read_is_refused_for_the_key_fails_the_turn_counting_it_once(
    runner,
) -> None:
    """A turn that finds a liquidation while userTrades refuses the key (-2015, e.g. the IP left the key's
    allow-list) is not estimated past it: the turn fails, its key failure counted once on the connection (as
    a refused read of the position would be), the position left as it was; the next turn, the key working
    again, corrects it."""
    from klineo.store.connections import get_connection

    ticks = tick_times(3)
    sid, mark = _long_entered(runner, ticks[0])
    connection_id = runner.stored(USER, sid).connection_id
    runner.sim.inject_trade("futures-full", "liquidation", "BTCUSDT", price=str(mark * Decimal("0.9")))
    runner.sim.faults.add("http_401_invalid_key", method="GET", path="/fapi/v1/userTrades")

    tick = runner.run_tick(ticks[1])

    assert tick.failures == [] and runner.runs(sid)[0].status == "failed"
    assert get_connection(USER, connection_id).consecutive_failures == 1
    assert (runner.stored(USER, sid).live_position, _causes(sid)) == (Decimal("0.002"), [])
    runner.run_tick(ticks[2])
    assert runner.stored(USER, sid).live_position == 0 and _causes(sid) == ["liquidation"]


def test_one_liquidation_of_two_strategies_positions_estimated_by_both_is_booked_exact_for_each(
    runner, reconcile,
) -> None:
    """Two strategies of one connection long on one symbol, liquidated together by one forced order before
    Binance lists its fills: each turn estimates its half, and the reconciler books each strategy's half of
    Binance's fills in place of its own estimate, each once (before: the later estimate replaced the earlier
    on the order's record, and the first strategy's PnL stayed an estimate for good)."""
    connection = runner.connection(USER)
    sids = [runner.strategy(USER, connection, type="rsi_threshold", parameters=ALWAYS_LONG, stop_loss_pct="2")
            for _ in range(2)]
    ticks = tick_times(2)
    runner.run_tick(ticks[0])
    mark = Decimal(str(runner.sim.mark_price("BTCUSDT")))
    runner.sim.inject_trade("futures-full", "liquidation", "BTCUSDT", price=str(mark * Decimal("0.9")),
                            listed=False)
    runner.run_tick(ticks[1])
    assert [_pnl(runner, sid)["estimated_fills"] for sid in sids] == [1, 1]
    runner.sim.list_trades()

    reconcile()

    *entries, liquidation = _user_trades(runner)
    assert Decimal(liquidation["qty"]) == Decimal("0.004") and len(entries) == 2
    half = (Decimal(liquidation["realizedPnl"]) - Decimal(liquidation["commission"])) / 2
    booked = {sid: _pnl(runner, sid) for sid in sids}
    for sid, entry in zip(sids, _entries_by_strategy(runner, sids, entries), strict=True):
        own = Decimal(entry["realizedPnl"]) - Decimal(entry["commission"])
        assert booked[sid]["estimated_fills"] == 0, "a strategy's liquidation stays an estimate"
        assert Decimal(booked[sid]["realised_pnl"]) == (own + half).quantize(PLACES)
    assert "fills_booked" not in reconcile() and {sid: _pnl(runner, sid) for sid in sids} == booked


def _entries_by_strategy(runner, sids: list[str], entries: list[dict]) -> list[dict]:
    """The entry fill of each strategy of ``sids`` among ``entries`` (userTrades rows), by its order."""
    by_order = {int(t["orderId"]): t for t in entries}
    return [by_order[int(runner.runs(sid)[-1].order["order_id"])] for sid in sids]
