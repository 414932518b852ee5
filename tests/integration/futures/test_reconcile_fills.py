"""The reconciler reads every fill of an order, however many, against moto and the simulator over loopback.

``userTrades`` answers at most 1000 rows a request (docs/binance-facts.md §8, §14): an order matched against
many resting orders can have more fills than that, and a watched symbol's page can end inside an order's
fills. The simulator's ``set_trade_size`` makes such orders: each fill is made as trades of 1 DOGE.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from klineo.store.orders import OrderRecord, get_order_record, put_new_record

from tests.integration.api.conftest import USER_A
from tests.integration.futures.helpers import body_of, new_key, order_body, order_event

SYMBOL = "DOGEUSDT"  # cheap: 1001 of it stays under the connection's notional limit
TRADES = 1001  # one more than a userTrades page holds
QUANTITY = "1001"  # TRADES trades of 1


def _many_trades(sim: Any) -> None:
    sim.state.futures.set_trade_size(SYMBOL, Decimal("1"))


def _quantities(fills: list[dict[str, Any]]) -> tuple[int, Decimal]:
    return len(fills), sum((Decimal(f["qty"]) for f in fills), Decimal(0))


def test_our_order_with_more_fills_than_a_page_is_settled_with_all_of_them(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN an API MARKET order filled in 1001 trades WHEN a run settles it THEN its record holds all 1001
    fills, 1001 in all (before: the first 1000, 1 short, its fee and price wrong)."""
    _many_trades(sim_env)
    body = order_body(futures_connection.id, symbol=SYMBOL, type="MARKET", price=None, timeInForce=None,
                      quantity=QUANTITY)
    placed = invoke("futures_order", order_event(body, key=new_key()))
    assert placed["statusCode"] == 200, placed["body"]

    reconcile()

    record = get_order_record(USER_A, body_of(placed)["client_order_id"])
    assert record.settled and _quantities(record.fills) == (TRADES, Decimal(QUANTITY))


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
    assert record.settled and _quantities(record.fills) == (TRADES, Decimal(QUANTITY))


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
    assert record.origin == "manual" and _quantities(record.fills) == (TRADES, Decimal(QUANTITY))
