"""A live strategy's turn books every fill of its order, however many, from Binance's paged userTrades.

Real dispatcher and worker handlers, moto, and the Binance simulator over loopback. ``userTrades`` answers
at most 1000 rows a request (docs/binance-facts.md §8, §14); the simulator's ``set_trade_size`` makes an
order matched against many resting orders: the strategy's 0.002 BTC fills as 2000 trades of 0.000001.
"""

from __future__ import annotations

from decimal import Decimal

from klineo.runner import execution
from klineo.store.order_fills import FILLS_KEPT
from klineo.store.order_history import list_recent_records, list_unsettled
from klineo.store.orders import get_order_record

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


def test_a_fills_read_whose_spare_weight_runs_out_midway_sends_no_more_pages_and_estimates(runner) -> None:
    """GIVEN a live entry filled as 2000 trades (three userTrades pages) and other clients spending 1500 of
    the IP's weight just as its first page is read WHEN its turn settles it THEN no later page is sent (the
    weight left is under FILLS_READ_RESERVE, kept for orders) and the fill is estimated, not booked from the
    first page alone (before: all three pages sent, past the reserve)."""
    runner.sim.state.futures.set_trade_size("BTCUSDT", Decimal("0.000001"))
    runner.sim.faults.add("weight_spent", method="GET", path="/fapi/v1/userTrades", weight=1500)
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long")

    runner.run_tick()

    assert len(runner.journal("GET", "/fapi/v1/userTrades")) == 1
    assert _get(runner, sid)["pnl"]["estimated_fills"] == 1
    record = get_order_record(USER, runner.runs(sid)[0].order["client_order_id"])
    assert record.booked_estimate is not None


def test_an_estimated_order_with_more_fills_than_its_record_lists_is_booked_exactly(runner, reconcile,
                                                                                   monkeypatch) -> None:
    """GIVEN a live entry filled as 4000 trades, its fills estimated at settle (no weight to spare) WHEN the
    reconciler settles its record (the first FILLS_KEPT fills listed, totals of all) THEN the PnL books
    Binance's commission of all 4000, none estimated (before: the record's write was refused,
    ValidationException, and the estimate stayed)."""
    monkeypatch.setattr(execution, "FILLS_READ_RESERVE", 10**9)
    runner.sim.state.futures.set_trade_size("BTCUSDT", Decimal("0.0000005"))
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long")
    runner.run_tick()
    assert _get(runner, sid)["pnl"]["estimated_fills"] == 1

    summary = reconcile()

    trades = _user_trades(runner)
    fees = sum((Decimal(t["commission"]) for t in trades), Decimal(0))
    pnl = _get(runner, sid)["pnl"]
    record = get_order_record(USER, runner.runs(sid)[0].order["client_order_id"])
    assert len(trades) == 4000 and summary["fills_booked"] == 1 and pnl["estimated_fills"] == 0
    assert Decimal(pnl["fees"]) == fees.quantize(PLACES)
    assert len(record.fills) == FILLS_KEPT and record.fills_summary["count"] == 4000


def _entry(runner) -> tuple[str, str]:
    """A live long-only strategy's entry placed and settled by one tick: (strategy id, client order id)."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long")
    runner.run_tick()
    return sid, runner.runs(sid)[0].order["client_order_id"]


def _trades_read_by_order(runner, monkeypatch) -> list[str]:
    """The orderId of every userTrades read by order from now on (a watched symbol's read names none)."""
    history, by_order = runner.sim.state.history, []
    listed = history.user_trades

    def read(account, params, now_ms):
        if params.get("orderId") is not None:
            by_order.append(params["orderId"])
        return listed(account, params, now_ms)

    monkeypatch.setattr(history, "user_trades", read)
    return by_order


def test_a_live_order_settles_with_the_fills_its_turn_read_and_the_reconciler_reads_it_no_more(
    runner, reconcile, monkeypatch
) -> None:
    """GIVEN a live entry whose turn read its fills WHEN the reconciler runs THEN the order's record already
    lists Binance's fills and is settled, and nothing of the order is read again (before: the record stayed
    unsettled and the reconciler read the order and its trades a second time, weight 6)."""
    sid, cid = _entry(runner)
    record = get_order_record(USER, cid)
    orders_read = len(runner.journal("GET", "/fapi/v1/order"))
    trades_read = _trades_read_by_order(runner, monkeypatch)

    summary = reconcile()

    trades = _user_trades(runner)
    assert [(f["trade_id"], f["qty"], f["commission"]) for f in record.fills or []] == [
        (int(t["id"]), t["qty"], t["commission"]) for t in trades]
    assert record.booked_estimate is None and cid not in [r.client_order_id for r in list_unsettled()]
    assert len(runner.journal("GET", "/fapi/v1/order")) == orders_read and trades_read == []
    assert "fills_booked" not in summary
    assert _get(runner, sid)["pnl"]["estimated_fills"] == 0


def test_a_fills_read_listing_less_than_the_order_executed_is_estimated_and_booked_by_the_reconciler(
    runner, reconcile, monkeypatch
) -> None:
    """GIVEN a live entry whose fills Binance does not list yet when its turn reads them WHEN the turn
    settles THEN the fill is estimated (not booked as exact with no fee) and the record left to the
    reconciler; WHEN the reconciler runs THEN it books Binance's fills in the estimate's place."""
    history = runner.sim.state.history
    listed, reads = history.user_trades, []

    def not_listed_yet(*args):
        reads.append(args)
        return [] if len(reads) == 1 else listed(*args)

    monkeypatch.setattr(history, "user_trades", not_listed_yet)
    sid, cid = _entry(runner)

    assert _get(runner, sid)["pnl"]["estimated_fills"] == 1
    assert get_order_record(USER, cid).booked_estimate is not None
    assert cid in [r.client_order_id for r in list_unsettled()]

    summary = reconcile()

    trades = _user_trades(runner)
    fees = sum((Decimal(t["commission"]) for t in trades), Decimal(0))
    pnl = _get(runner, sid)["pnl"]
    assert summary["fills_booked"] == 1 and pnl["estimated_fills"] == 0
    assert Decimal(pnl["fees"]) == fees.quantize(PLACES)


def test_a_trade_we_did_not_place_on_a_symbol_a_strategy_trades_is_recorded_by_the_reconciler(
    runner, reconcile
) -> None:
    """GIVEN a live entry settled with the fills its turn read (the reconciler never settles it) and a
    manual trade on the same symbol at Binance WHEN the reconciler runs THEN it records that trade as the
    user's own (its symbol is watched: the settle marks it, as the reconciler's settle of an order does)."""
    _entry(runner)
    runner.sim.inject_trade("futures-full", "manual", "BTCUSDT", side="BUY", quantity="0.002")

    summary = reconcile()

    foreign = [r for r in list_recent_records(USER, 0) if r.origin == "manual"]
    assert summary.get("foreign_manual") == 1
    assert [(r.symbol, sum(Decimal(f["qty"]) for f in r.fills)) for r in foreign] == [
        ("BTCUSDT", Decimal("0.002"))]
