"""A live position Binance liquidated counts in the strategy's PnL: the loss is Binance's, from its fills.

Real dispatcher and worker handlers, moto, and the Binance simulator over loopback. The signal is pinned
with RSI levels no price path crosses (oversold 99.99: always long).
"""

from __future__ import annotations

import time
from decimal import Decimal

from klineo.store.strategies import PendingOrder

from tests.helpers import load_event, response_json, with_user
from tests.integration.api.conftest import at_path
from tests.integration.runner.conftest import tick_times
from tests.integration.runner.test_fills_booked import _set_pending

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


def test_a_liquidated_live_position_books_binances_loss_in_the_strategys_pnl(runner) -> None:
    """The turn that finds a live long liquidated books the liquidation's realised PnL and fee in the PnL."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          stop_loss_pct="2")
    ticks = tick_times(2)
    runner.run_tick(ticks[0])
    mark = Decimal(str(runner.sim.mark_price("BTCUSDT")))
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


def test_a_liquidation_of_more_than_the_strategys_position_books_only_its_share(runner) -> None:
    """A liquidation that also closed the user's own 0.002 beside the strategy's 0.002 books half of it."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          stop_loss_pct="2")
    ticks = tick_times(2)
    runner.run_tick(ticks[0])
    runner.sim.inject_trade("futures-full", "manual", "BTCUSDT", side="BUY", quantity="0.002")
    mark = Decimal(str(runner.sim.mark_price("BTCUSDT")))
    runner.sim.inject_trade("futures-full", "liquidation", "BTCUSDT", price=str(mark * Decimal("0.9")))

    runner.run_tick(ticks[1])

    entry, _by_hand, liquidation = _user_trades(runner)
    assert Decimal(liquidation["qty"]) == Decimal("0.004")
    own = Decimal(entry["realizedPnl"]) - Decimal(entry["commission"])
    share = (Decimal(liquidation["realizedPnl"]) - Decimal(liquidation["commission"])) / 2
    pnl = _pnl(runner, sid)
    assert Decimal(pnl["realised_pnl"]) == (own + share).quantize(PLACES)
    assert runner.stored(USER, sid).live_position == 0



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
