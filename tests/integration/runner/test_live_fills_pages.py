"""A live strategy's turn books every fill of its order, however many, from Binance's paged userTrades.

Real dispatcher and worker handlers, moto, and the Binance simulator over loopback. ``userTrades`` answers
at most 1000 rows a request (docs/binance-facts.md §8, §14); the simulator's ``set_trade_size`` makes an
order matched against many resting orders: the strategy's 0.002 BTC fills as 2000 trades of 0.000001.
"""

from __future__ import annotations

from decimal import Decimal

from tests.integration.runner.test_exchange_truth import ALWAYS_LONG, USER, _get, _user_trades

PLACES = Decimal("0.00000001")


def test_a_live_order_with_more_fills_than_a_page_books_all_their_fees(runner) -> None:
    """GIVEN a live long entry of 0.002 BTC filled as 2000 trades WHEN its turn settles it THEN the PnL's
    fees are Binance's commission of all 2000, read in pages, none estimated (before: 1000 of them, half)."""
    runner.sim.state.futures.set_trade_size("BTCUSDT", Decimal("0.000001"))
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long")

    runner.run_tick()

    trades = _user_trades(runner)
    fees = sum((Decimal(t["commission"]) for t in trades), Decimal(0))
    pnl = _get(runner, sid)["pnl"]
    assert len(trades) == 2000 and pnl["estimated_fills"] == 0
    assert Decimal(pnl["fees"]) == fees.quantize(PLACES)
    assert len(runner.journal("GET", "/fapi/v1/userTrades")) == 3  # 1000, 1000, then an empty page
