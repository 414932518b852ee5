"""The reconciler's following of watched symbols, against moto and the simulator over loopback."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from klineo.services.reconcile import FORGOTTEN_ORDER_AFTER_MS
from klineo.store.orders import STATUS_UNKNOWN_PURGED, OrderRecord, get_order_record, put_new_record

from tests.helpers import load_event, with_user
from tests.integration.api.conftest import USER_A
from tests.integration.futures.helpers import body_of, new_key, order_body, order_event, status_event
from tests.integration.futures.test_reconcile import _at_connection, _open_long, _watch_older

DAY_MS = 86_400_000


def _forget_order(sim: Any, order_id: int, days: int) -> None:
    """Make the order (not its trades) ``days`` old, then let the simulator purge it as Binance does."""
    with sim.state.futures.lock:
        state = next(s for s in sim.state.futures.accounts() if order_id in s.orders)
        state.orders[order_id].time -= days * DAY_MS
    sim.age_orders(0)


def test_a_trade_of_an_order_binance_forgot_is_recorded_and_the_watch_reads_on(
    sim_env, invoke, futures_connection, reconcile
):
    """A manual trade of an order Binance forgot (placed 91 days ago) is recorded; the watch reads past it."""
    _open_long(invoke, futures_connection.id, quantity="0.004")
    reconcile()  # our entry settled, the symbol watched
    account_id = futures_connection.account.id
    manual = sim_env.inject_trade(account_id, "manual", "BTCUSDT", side="BUY", quantity="0.002")
    _forget_order(sim_env, int(manual["orderId"]), 91)
    liquidation = sim_env.inject_trade(account_id, "liquidation", "BTCUSDT", quantity="0.002")

    reconcile(now_ms=_after_the_wait())
    reconcile(now_ms=_after_the_wait())

    recorded = get_order_record(USER_A, f"manual-{manual['orderId']}")
    assert recorded is not None and recorded.origin == "manual"
    assert [Decimal(f["qty"]) for f in recorded.fills] == [Decimal("0.002")]
    assert get_order_record(USER_A, f"liquidation-{liquidation['orderId']}") is not None


def test_a_forgotten_orders_trade_shows_what_it_executed_beside_the_positions(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a manual trade of an order Binance forgot, recorded from its fill WHEN the positions are read
    THEN the trade not ours shows the quantity and price it executed (its fills'), as the order history
    does: not the "0" and null of an order Binance no longer answers for."""
    _open_long(invoke, futures_connection.id, quantity="0.004")
    reconcile()
    manual = sim_env.inject_trade(futures_connection.account.id, "manual", "BTCUSDT", side="BUY",
                                  quantity="0.002")
    _forget_order(sim_env, int(manual["orderId"]), 91)
    reconcile(now_ms=_after_the_wait())
    cid = f"manual-{manual['orderId']}"
    [fill] = get_order_record(USER_A, cid).fills
    event = with_user(load_event("futures_orders"), USER_A)
    event["rawQueryString"], event["queryStringParameters"] = "", {}
    history = body_of(invoke("futures_orders", event))["orders"]
    [listed] = [o for o in history if o["client_order_id"] == cid]

    positions = body_of(invoke("futures_positions", with_user(_at_connection(futures_connection.id), USER_A)))

    [trade] = positions["recent_trades_not_ours"]
    assert (trade["client_order_id"], trade["status"]) == (cid, STATUS_UNKNOWN_PURGED)
    assert (trade["executed_quantity"], trade["average_price"]) == ("0.002", fill["price"])
    assert (listed["executed_quantity"], listed["average_price"]) == ("0.002", fill["price"])


def test_a_trade_of_our_own_order_binance_forgot_is_not_recorded_as_manual(
    sim_env, invoke, futures_connection, reconcile
):
    """A trade of an order of ours that Binance forgot is not recorded as a manual one."""
    _open_long(invoke, futures_connection.id)
    reconcile()
    ours = sim_env.inject_trade(futures_connection.account.id, "manual", "BTCUSDT", side="BUY",
                                quantity="0.002")
    _forget_order(sim_env, int(ours["orderId"]), 91)
    placed_ms = int(time.time() * 1000) - 91 * DAY_MS
    placed = datetime.fromtimestamp(placed_ms / 1000, UTC).isoformat(timespec="milliseconds")
    assert put_new_record(OrderRecord(
        user_id=USER_A, client_order_id="ours-resting-long", connection_id=futures_connection.id,
        symbol="BTCUSDT", request={}, params={}, status=STATUS_UNKNOWN_PURGED, attempt_ms=placed_ms,
        created_at=placed.replace("+00:00", "Z"), updated_at=placed.replace("+00:00", "Z"),
        order_id=int(ours["orderId"]), fills=[]))

    summary = reconcile(now_ms=_after_the_wait())

    assert get_order_record(USER_A, f"manual-{ours['orderId']}") is None
    assert "errors" not in summary, summary


def test_a_fresh_trade_whose_order_is_not_found_yet_waits_before_it_is_taken_as_forgotten(
    sim_env, invoke, futures_connection, reconcile
):
    """A fresh trade whose order Binance does not find yet is recorded as manual only after the wait."""
    _open_long(invoke, futures_connection.id, quantity="0.004")
    reconcile()
    account_id = futures_connection.account.id
    liquidation = sim_env.inject_trade(account_id, "liquidation", "BTCUSDT", quantity="0.002")
    _forget_order(sim_env, int(liquidation["orderId"]), 91)  # as if Binance's order read lagged its fill

    early = reconcile()

    assert early.get("errors") == 1, early
    assert get_order_record(USER_A, f"manual-{liquidation['orderId']}") is None
    reconcile(now_ms=_after_the_wait())
    assert get_order_record(USER_A, f"manual-{liquidation['orderId']}") is not None


def _after_the_wait() -> int:
    """A reconciler clock (ms) past FORGOTTEN_ORDER_AFTER_MS after trades made now."""
    return int(time.time() * 1000) + FORGOTTEN_ORDER_AFTER_MS + 60_000


DOGE = "DOGEUSDT"


def _spread_trades(sim: Any, symbol: str) -> None:
    """Make the symbol's trades one millisecond apart (made over a while), oldest first."""
    with sim.state.futures.lock:
        for state in sim.state.futures.accounts():
            trades = [t for t in state.trades if t.order.symbol == symbol]
            for i, trade in enumerate(trades):
                trade.time = trades[0].time + i


def _open_long_doge(invoke: Any, connection_id: str) -> None:
    body = order_body(connection_id, symbol=DOGE, type="MARKET", price=None, timeInForce=None, quantity="50")
    response = invoke("futures_order", order_event(body, key=new_key()))
    assert response["statusCode"] == 200, body_of(response)


def test_a_watch_unread_for_a_week_with_more_pages_than_a_run_reads_is_recorded_over_runs(
    sim_env, invoke, futures_connection, reconcile
):
    """Runs too small for a stale watch's whole week of trades record them a page a run, not none ever."""
    _open_long_doge(invoke, futures_connection.id)
    reconcile()  # our entry settled, DOGEUSDT watched from its trade
    sim_env.state.futures.set_trade_size(DOGE, Decimal("1"))
    # Our entry's trade and the first order's fill the first page exactly; the others the second.
    manual = [sim_env.inject_trade(futures_connection.account.id, "manual", DOGE, side="BUY", quantity=qty)
              for qty in ("999", "400", "400")]
    _spread_trades(sim_env, DOGE)
    sim_env.age_orders(8 * DAY_MS)
    _watch_older(futures_connection.id, DOGE, 8 * DAY_MS)

    for _ in range(2):
        reconcile(weight=10)  # the window's pages (5 each) and the orders' reads (1 each) need 18

    records = [get_order_record(USER_A, f"manual-{order['orderId']}") for order in manual]
    assert [None if r is None else len(r.fills) for r in records] == [999, 400, 400]


def test_the_status_of_a_recorded_liquidation_is_binances_state_of_it(
    sim_env, invoke, futures_connection, reconcile
):
    """The status route of a liquidation the order history lists answers Binance's state of it, not 404."""
    _open_long(invoke, futures_connection.id, quantity="0.004")
    reconcile()
    liquidation = sim_env.inject_trade(futures_connection.account.id, "liquidation", "BTCUSDT",
                                       quantity="0.002")
    reconcile()
    client_order_id = f"liquidation-{liquidation['orderId']}"
    assert get_order_record(USER_A, client_order_id) is not None

    response = invoke("futures_order_status", status_event(client_order_id))

    assert response["statusCode"] == 200, response["body"]
    order = body_of(response)
    assert (order["order_id"], order["status"]) == (int(liquidation["orderId"]), "FILLED")


def test_an_old_order_that_filled_just_now_keeps_its_fill_when_binances_clock_is_ahead(
    sim_env, invoke, futures_connection, reconcile
):
    """An order placed 14 days ago that Binance filled a moment ago settles with its fill, clocks 10 s off."""
    sim_env.set_clock_skew_ms(10_000)
    cid = _open_long(invoke, futures_connection.id)["client_order_id"]
    order_id = get_order_record(USER_A, cid).order_id
    with sim_env.state.futures.lock:
        state = next(s for s in sim_env.state.futures.accounts() if order_id in s.orders)
        (trade,) = [t for t in state.trades if t.order.order_id == order_id]
        # Its last window, from 7 days after it was placed, then ends 5 s before the fill (Binance's time).
        state.orders[order_id].time = trade.time - 14 * DAY_MS - 5_000

    reconcile()

    record = get_order_record(USER_A, cid)
    assert record.settled and [Decimal(f["qty"]) for f in record.fills] == [Decimal("0.002")]
