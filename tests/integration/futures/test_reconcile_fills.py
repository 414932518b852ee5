"""The reconciler reads every fill of an order, however many, against moto and the simulator over loopback.

``userTrades`` answers at most 1000 rows a request (docs/binance-facts.md §8, §14): an order matched against
many resting orders can have more fills than that, and a watched symbol's page can end inside an order's
fills. The simulator's ``set_trade_size`` makes such orders: each fill is made as trades of 1 DOGE. An order
that began filling before a newly watched symbol's first window (the last 7 days) has its first trades moved
back in the simulator's state (``_backdate_first_trades``, as its ``age`` moves every record).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from klineo.store.order_fills import FILLS_KEPT, fill_totals
from klineo.store.order_history import WATCH_IDLE_MS, list_unsettled
from klineo.store.orders import OrderRecord, get_order_record, is_settled, put_new_record

from tests.helpers import load_event, with_user
from tests.integration.api.conftest import USER_A, aws_refusing
from tests.integration.futures.helpers import body_of, new_key, order_body, order_event

SYMBOL = "DOGEUSDT"  # cheap: 1001 of it stays under the connection's notional limit
TRADES = 1001  # one more than a userTrades page holds
QUANTITY = "1001"  # TRADES trades of 1
DAY_MS = 86_400_000


def _many_trades(sim: Any) -> None:
    sim.state.futures.set_trade_size(SYMBOL, Decimal("1"))


def _market_order(sim: Any, invoke: Any, connection_id: str, quantity: str) -> str:
    """An API MARKET order of ``quantity`` DOGE filled as trades of 1 each: its clientOrderId."""
    _many_trades(sim)
    body = order_body(connection_id, symbol=SYMBOL, type="MARKET", price=None, timeInForce=None,
                      quantity=quantity)
    placed = invoke("futures_order", order_event(body, key=new_key()))
    assert placed["statusCode"] == 200, placed["body"]
    return body_of(placed)["client_order_id"]


def _quantities(record: OrderRecord) -> tuple[int, Decimal]:
    """(how many fills, their quantity) of a record: all of them, listed or only totalled."""
    totals = fill_totals(record.fills or [], record.fills_summary)
    return totals.count, totals.quantity


def test_our_order_with_more_fills_than_a_page_is_settled_with_all_of_them(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN an API MARKET order filled in 1001 trades WHEN a run settles it THEN its record holds all 1001
    fills, 1001 in all (before: the first 1000, 1 short, its fee and price wrong)."""
    cid = _market_order(sim_env, invoke, futures_connection.id, QUANTITY)

    reconcile()

    record = get_order_record(USER_A, cid)
    assert record.settled and _quantities(record) == (TRADES, Decimal(QUANTITY))


def test_foreign_order_read_by_id_with_more_fills_than_a_page_gets_all_of_them(
    sim_env, futures_connection, reconcile
):
    """GIVEN a manual order recorded while it was open (unsettled) that then filled in 1001 trades WHEN a run
    reads it by orderId THEN its record holds all 1001 fills."""
    _many_trades(sim_env)
    placed = sim_env.inject_trade(futures_connection.account.id, "manual", SYMBOL, side="BUY",
                                  quantity=QUANTITY)
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    assert put_new_record(OrderRecord(
        user_id=USER_A, client_order_id=f"manual-{placed['orderId']}", connection_id=futures_connection.id,
        symbol=SYMBOL, request={}, params={}, status="NEW", attempt_ms=int(time.time() * 1000),
        created_at=now, updated_at=now, order_id=int(placed["orderId"]), origin="manual"))

    reconcile()

    record = get_order_record(USER_A, f"manual-{placed['orderId']}")
    assert record.settled and _quantities(record) == (TRADES, Decimal(QUANTITY))


def test_foreign_order_whose_fills_span_two_pages_of_a_watched_symbol_keeps_both_pages(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a watched symbol WHEN a manual order fills in 1001 trades, so one run's page of its trades ends
    inside them, and two runs go THEN the manual record holds all 1001 fills (before: the second run took
    the last trade for one of ours, by the manual record's own orderId, and dropped it)."""
    entry = order_body(futures_connection.id, symbol=SYMBOL, type="MARKET", price=None, timeInForce=None,
                       quantity="100")
    assert invoke("futures_order", order_event(entry, key=new_key()))["statusCode"] == 200
    reconcile()  # the entry settled: its symbol is watched from its trade on
    _many_trades(sim_env)
    placed = sim_env.inject_trade(futures_connection.account.id, "manual", SYMBOL, side="BUY",
                                  quantity=QUANTITY)

    reconcile()
    reconcile()

    record = get_order_record(USER_A, f"manual-{placed['orderId']}")
    assert record.origin == "manual" and _quantities(record) == (TRADES, Decimal(QUANTITY))



def _sim_trades(sim: Any, order_id: int) -> list[dict[str, Any]]:
    """The simulator's userTrades rows of one order (what Binance says it filled and charged)."""
    state = sim.state.futures.state_for(sim.account("futures-full"), time.time() * 1000)
    return [t.as_dict() for t in state.trades if t.order.order_id == order_id]


def _history_item(invoke: Any, client_order_id: str) -> dict[str, Any]:
    """The order as GET /futures/orders answers it."""
    event = with_user(load_event("futures_orders"), USER_A)
    event["queryStringParameters"], event["rawQueryString"] = None, ""
    answer = invoke("futures_orders", event)
    assert answer["statusCode"] == 200, answer["body"]
    return next(o for o in body_of(answer)["orders"] if o["client_order_id"] == client_order_id)


def test_our_order_with_more_fills_than_an_item_holds_settles_with_exact_totals(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN an API MARKET order filled in 4000 trades (their fills over DynamoDB's 400 KB item limit, which
    moto enforces) WHEN a run settles it THEN it is settled, its record lists the first FILLS_KEPT and the
    exact totals of all 4000, and the order history says so with Binance's figures; a second run changes
    nothing (before: every run raised, the write refused with ValidationException, the order unsettled)."""
    cid = _market_order(sim_env, invoke, futures_connection.id, "4000")

    reconcile()
    reconcile()

    record = get_order_record(USER_A, cid)
    trades = _sim_trades(sim_env, record.order_id)
    commission = sum((Decimal(t["commission"]) for t in trades), Decimal(0))
    assert is_settled(record.status, record.fills)
    assert cid not in {r.client_order_id for r in list_unsettled()}
    assert [f["trade_id"] for f in record.fills] == [t["id"] for t in trades[:FILLS_KEPT]]
    assert _quantities(record) == (4000, Decimal(4000))
    item = _history_item(invoke, cid)
    assert (item["fills_count"], item["fills_shortened"], len(item["fills"])) == (4000, True, FILLS_KEPT)
    assert item["executed_quantity"] == "4000" and item["fill_totals"]["quantity"] == "4000"
    assert Decimal(item["fill_totals"]["commission"]["USDT"]) == commission
    assert Decimal(item["fill_totals"]["average_price"]) == Decimal(item["average_price"])


def test_an_order_with_few_fills_lists_them_all_and_is_not_shortened(sim_env, invoke, futures_connection,
                                                                     reconcile):
    """GIVEN an API MARKET order filled in 100 trades WHEN settled THEN the history lists all 100, not
    shortened, with no separate totals, and its record holds no summary."""
    cid = _market_order(sim_env, invoke, futures_connection.id, "100")

    reconcile()

    item = _history_item(invoke, cid)
    assert (item["fills_count"], item["fills_shortened"], item["fill_totals"], len(item["fills"])) == (
        100, False, None, 100)
    assert get_order_record(USER_A, cid).fills_summary is None


def _backdate_first_trades(sim: Any, order_id: int, count: int, ms: int) -> None:
    """Make the order, and its first ``count`` trades, ``ms`` older: an order that began filling then."""
    with sim.state.futures.lock:
        state = next(s for s in sim.state.futures.accounts() if order_id in s.orders)
        state.orders[order_id].time -= ms
        for trade in [t for t in state.trades if t.order.order_id == order_id][:count]:
            trade.time -= ms


@pytest.mark.parametrize(("trades", "before"), [(1500, 600), (100, 40)])
def test_foreign_order_that_began_filling_before_the_first_window_is_recorded_with_all_its_fills(
    sim_env, invoke, futures_connection, reconcile, trades, before
):
    """GIVEN a manual order of ``trades`` trades, the first ``before`` of them 8 days ago (past the first
    window a newly watched symbol is read from, the last 7 days) WHEN its symbol becomes watched and a run
    records it THEN its record's fills total Binance's trades exactly: count, quantity, commission and
    realized PnL (before: only the trades in the window, 900 of 1500, and 60 of 100)."""
    _many_trades(sim_env)
    placed = sim_env.inject_trade(futures_connection.account.id, "manual", SYMBOL, side="BUY",
                                  quantity=str(trades))
    _backdate_first_trades(sim_env, int(placed["orderId"]), before, WATCH_IDLE_MS + DAY_MS)
    sim_env.state.futures.set_trade_size(SYMBOL, None)
    entry = order_body(futures_connection.id, symbol=SYMBOL, type="MARKET", price=None, timeInForce=None,
                       quantity="100")
    assert invoke("futures_order", order_event(entry, key=new_key()))["statusCode"] == 200

    reconcile()  # the entry settled, its symbol watched and read from 7 days ago: the manual order recorded
    reconcile()

    record = get_order_record(USER_A, f"manual-{placed['orderId']}")
    expected = _sim_trades(sim_env, int(placed["orderId"]))
    totals = fill_totals(record.fills or [], record.fills_summary)
    assert len(expected) == trades
    assert (totals.count, totals.quantity) == (trades, Decimal(trades))
    assert totals.commission == {"USDT": sum((Decimal(t["commission"]) for t in expected), Decimal(0))}
    assert totals.realized_pnl == sum((Decimal(t["realizedPnl"]) for t in expected), Decimal(0))
    assert record.client_order_id not in {r.client_order_id for r in list_unsettled()}


def _backdate_spread(sim: Any, order_id: int, ms: int) -> None:
    """Make the order and its trades ``ms`` older, its trades one millisecond apart (filled over a while)."""
    with sim.state.futures.lock:
        state = next(s for s in sim.state.futures.accounts() if order_id in s.orders)
        state.orders[order_id].time -= ms + 10_000
        trades = [t for t in state.trades if t.order.order_id == order_id]
        for i, trade in enumerate(trades):
            trade.time -= ms - i


def test_our_order_that_filled_over_a_week_ago_is_settled_with_all_its_fills(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN an API order whose 1001 trades, a millisecond apart, were made 8 days before a run settles it
    (as a GTC order that filled days before it was final; userTrades sent no time answers only the last 7
    days, by orderId too) WHEN the run settles it THEN its record holds all 1001 fills, read in windows of
    the order's own days, paged by time (before: none of them, read by orderId alone)."""
    cid = _market_order(sim_env, invoke, futures_connection.id, QUANTITY)
    sim_env.state.futures.set_trade_size(SYMBOL, None)
    _backdate_spread(sim_env, get_order_record(USER_A, cid).order_id, WATCH_IDLE_MS + DAY_MS)

    reconcile()

    record = get_order_record(USER_A, cid)
    assert record.settled and _quantities(record) == (TRADES, Decimal(QUANTITY))


# A run's budget that reads an order back (weight 1) and one page of its trades (weight 5): 1001 trades by
# orderId take two; two pages, for one 8 days old read in windows (its first window's two, then the last).
@pytest.mark.parametrize(("days_ago", "weight"), [(0, 6), (8, 11)])
def test_an_order_with_more_pages_of_fills_than_a_run_can_read_is_settled_by_the_next_run(
    sim_env, invoke, futures_connection, reconcile, days_ago, weight
):
    """GIVEN an API order of 1001 trades (read by orderId, or in windows when made 8 days ago) and runs whose
    budget stops before its last page WHEN two runs go THEN the first keeps what it read, the second reads
    on from there and settles the order with all 1001 fills once each, and no run spends more than its
    budget (before: each run read the same first pages again and stopped, the order never settled)."""
    cid = _market_order(sim_env, invoke, futures_connection.id, QUANTITY)
    if days_ago:
        sim_env.state.futures.set_trade_size(SYMBOL, None)
        _backdate_spread(sim_env, get_order_record(USER_A, cid).order_id, days_ago * DAY_MS)

    first = reconcile(weight=weight)
    second = reconcile(weight=weight)

    record = get_order_record(USER_A, cid)
    assert (first["weight_left"], second["weight_left"]) == (0, 0)
    assert is_settled(record.status, record.fills), (first, second)
    assert record.fills_progress is None and _quantities(record) == (TRADES, Decimal(QUANTITY))
    trades = _sim_trades(sim_env, record.order_id)
    assert [f["trade_id"] for f in record.fills] == [t["id"] for t in trades[:FILLS_KEPT]]


def test_a_run_whose_write_of_the_fills_read_fails_still_stops_on_its_budget(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN an API order of 1001 trades, a run whose budget reads one page of them, and DynamoDB refusing the
    write that keeps that page (throttled) WHEN the run goes THEN it ends as a spent budget does (no error
    raised), nothing kept, and a later run with its full budget settles the order with all 1001 fills."""
    cid = _market_order(sim_env, invoke, futures_connection.id, QUANTITY)

    with aws_refusing("UpdateItem", "dynamodb", when=lambda p: "fills_progress" in str(p)):
        first = reconcile(weight=6)

    assert first["stopped_on_budget"] == 1 and get_order_record(USER_A, cid).fills_progress is None
    reconcile()
    record = get_order_record(USER_A, cid)
    assert is_settled(record.status, record.fills) and _quantities(record) == (TRADES, Decimal(QUANTITY))
