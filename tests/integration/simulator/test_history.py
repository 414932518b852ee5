"""What Binance did without the client (liquidation, ADL, app trades) and what it forgets (retention).

Facts: docs/binance-facts.md §8 (forced orders, userTrades, allOrders) and §9 (retention).
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import pytest
import requests

from local.binance_sim.testing import SignedClient

DAY_MS = 86_400_000
BUY = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}


@pytest.fixture
def full(binance_sim) -> SignedClient:
    return SignedClient(binance_sim.url, binance_sim.account("futures-full"))


def _position(client: SignedClient) -> str:
    rows = client.signed("GET", "/fapi/v3/positionRisk", {"symbol": "BTCUSDT"}).json()
    return rows[0]["positionAmt"] if rows else "0"


def _client_ids(client: SignedClient) -> list[str]:
    orders = client.signed("GET", "/fapi/v1/allOrders", {"symbol": "BTCUSDT"}).json()
    return [o["clientOrderId"] for o in orders]


def test_all_orders_without_a_symbol_lists_every_symbol(full):
    """GET /fapi/v1/allOrders takes no symbol since 2026-08-25: the account's orders of every symbol."""
    # GIVEN orders on two symbols
    assert full.signed("POST", "/fapi/v1/order", BUY).status_code == 200
    eth = {**BUY, "symbol": "ETHUSDT", "quantity": "0.1"}
    assert full.signed("POST", "/fapi/v1/order", eth).status_code == 200
    # WHEN all orders are asked for without a symbol, and with one
    every = full.signed("GET", "/fapi/v1/allOrders")
    one = full.signed("GET", "/fapi/v1/allOrders", {"symbol": "ETHUSDT"}).json()
    # THEN both symbols come back, and the symbol still narrows
    assert every.status_code == 200, every.json()
    assert sorted(row["symbol"] for row in every.json()) == ["BTCUSDT", "ETHUSDT"]
    assert [row["symbol"] for row in one] == ["ETHUSDT"]


def test_injected_liquidation_closes_the_position_and_shows_as_a_forced_order(binance_sim, full):
    """A liquidation closes the long by an autoclose- LIMIT IOC seen in forceOrders/allOrders/userTrades."""
    # GIVEN a long
    full.signed("POST", "/fapi/v1/order", BUY)
    # WHEN Binance liquidates it at 60000
    forced = binance_sim.inject_trade("futures-full", "liquidation", "BTCUSDT", price="60000")
    # THEN the position is flat and every history view shows the liquidation
    force_orders = full.signed("GET", "/fapi/v1/forceOrders", {"symbol": "BTCUSDT"}).json()
    adl_only = full.signed("GET", "/fapi/v1/forceOrders", {"autoCloseType": "ADL"}).json()
    trades = full.signed("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"}).json()
    assert _position(full) == "0"
    assert forced["clientOrderId"].startswith("autoclose-")
    assert (forced["type"], forced["timeInForce"], forced["status"], forced["side"]) == (
        "LIMIT",
        "IOC",
        "FILLED",
        "SELL",
    )
    assert [o["orderId"] for o in force_orders] == [forced["orderId"]] and adl_only == []
    assert forced["clientOrderId"] in _client_ids(full)
    closing = next(t for t in trades if t["orderId"] == forced["orderId"])
    assert closing["price"] == "60000" and Decimal(closing["realizedPnl"]) < 0


def test_injected_adl_can_take_part_of_the_position(binance_sim, full):
    """An ADL of 0.004 out of 0.01 leaves 0.006 and is labelled adl_autoclose."""
    # GIVEN a long of 0.01
    full.signed("POST", "/fapi/v1/order", BUY)
    # WHEN 0.004 is auto-deleveraged
    forced = binance_sim.inject_trade("futures-full", "adl", "BTCUSDT", quantity="0.004")
    # THEN the rest remains and forceOrders lists it as ADL
    assert forced["clientOrderId"] == "adl_autoclose"
    assert _position(full) == "0.006"
    listed = full.signed("GET", "/fapi/v1/forceOrders", {"autoCloseType": "ADL"}).json()
    assert [o["orderId"] for o in listed] == [forced["orderId"]]


def test_force_orders_name_the_position_side_they_closed(binance_sim, full):
    """forceOrders names the positionSide each order closed, as Binance's does: BOTH one-way, SHORT hedge."""
    # GIVEN a one-way long and a hedge account holding a long and a short
    full.signed("POST", "/fapi/v1/order", BUY)
    hedge = SignedClient(binance_sim.url, binance_sim.account("futures-hedge"))
    hedge.signed("POST", "/fapi/v1/order", {**BUY, "positionSide": "LONG"})
    hedge.signed("POST", "/fapi/v1/order", {**BUY, "side": "SELL", "positionSide": "SHORT"})
    # WHEN the one-way long and the hedge SHORT side are liquidated
    binance_sim.inject_trade("futures-full", "liquidation", "BTCUSDT")
    binance_sim.inject_trade("futures-hedge", "liquidation", "BTCUSDT", positionSide="SHORT")
    # THEN each forced order names the side it closed, and the hedge LONG is left
    one_way = full.signed("GET", "/fapi/v1/forceOrders", {"symbol": "BTCUSDT"}).json()
    hedged = hedge.signed("GET", "/fapi/v1/forceOrders", {"symbol": "BTCUSDT"}).json()
    assert [(o["side"], o["positionSide"]) for o in one_way] == [("SELL", "BOTH")]
    assert [(o["side"], o["positionSide"]) for o in hedged] == [("BUY", "SHORT")]
    rows = hedge.signed("GET", "/fapi/v3/positionRisk", {"symbol": "BTCUSDT"}).json()
    held = {(r["positionSide"], Decimal(r["positionAmt"])) for r in rows if Decimal(r["positionAmt"])}
    assert held == {("LONG", Decimal("0.01"))}


def test_injected_manual_trade_looks_like_an_app_order(binance_sim, full):
    """A "manual" trade is a MARKET order with a web_ client id that moves the position."""
    # WHEN a manual SELL is injected on a flat account
    manual = binance_sim.inject_trade("futures-full", "manual", "BTCUSDT", side="SELL", quantity="0.002")
    # THEN it is an ordinary filled order the client never sent
    assert manual["clientOrderId"].startswith("web_") and manual["type"] == "MARKET"
    assert _position(full) == "-0.002"
    assert _client_ids(full) == [manual["clientOrderId"]]


def test_user_trades_without_a_time_window_are_the_last_seven_days_even_by_order_id(binance_sim, full):
    """userTrades sent neither startTime nor endTime answers the last 7 days, by orderId too (Binance's page
    states that default with no exception for orderId); a window of the order's days has its old trades."""
    # GIVEN an order filled 8 days ago and one filled now
    old = full.signed("POST", "/fapi/v1/order", {**BUY, "newClientOrderId": "eight-days"}).json()
    binance_sim.age_orders(8 * DAY_MS)
    new = full.signed("POST", "/fapi/v1/order", BUY).json()
    old_id, placed = old["orderId"], old["updateTime"] - 8 * DAY_MS
    # WHEN the trades are asked for with no time, by either order, and by the old one within its days
    every = full.signed("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"}).json()
    by_old = full.signed("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT", "orderId": old_id}).json()
    by_new = full.signed("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT", "orderId": new["orderId"]})
    by_new = by_new.json()
    window = {"symbol": "BTCUSDT", "orderId": old_id, "startTime": placed - 1, "endTime": placed + DAY_MS}
    in_window = full.signed("GET", "/fapi/v1/userTrades", window).json()
    # THEN only the new order's trade is in the default window; the old one's needs its time
    assert [t["orderId"] for t in every] == [new["orderId"]]
    assert (by_old, [t["orderId"] for t in by_new]) == ([], [new["orderId"]])
    assert [t["orderId"] for t in in_window] == [old_id]


def test_user_trades_refuses_what_the_page_forbids_and_forgets_trades_over_three_months(binance_sim, full):
    """userTrades refuses a startTime-endTime span over 7 days (-1127) and fromId with a time (-1128), as
    Binance's page forbids both; a trade over 3 months old is no longer answered (change log 2026-08-26)."""
    # GIVEN a trade filled 91 days ago and one filled now
    full.signed("POST", "/fapi/v1/order", BUY)
    binance_sim.age_orders(91 * DAY_MS)
    new = full.signed("POST", "/fapi/v1/order", BUY).json()
    now = new["updateTime"]
    # WHEN a span of 7 days and 1 ms is asked for, fromId with a time, and the old trade's days
    too_long = full.signed("GET", "/fapi/v1/userTrades",
                           {"symbol": "BTCUSDT", "startTime": now - 7 * DAY_MS - 1, "endTime": now})
    mixed = full.signed("GET", "/fapi/v1/userTrades",
                        {"symbol": "BTCUSDT", "fromId": 1, "startTime": now - 1})
    old_days = {"symbol": "BTCUSDT", "startTime": now - 92 * DAY_MS, "endTime": now - 86 * DAY_MS}
    old = full.signed("GET", "/fapi/v1/userTrades", old_days)
    # THEN both requests are refused, and the old trade is gone while the week's span is still answered
    assert (too_long.status_code, too_long.json()["code"]) == (400, -1127), too_long.json()
    assert (mixed.status_code, mixed.json()["code"]) == (400, -1128), mixed.json()
    assert (old.status_code, old.json()) == (200, [])
    week = {"symbol": "BTCUSDT", "startTime": now - 7 * DAY_MS, "endTime": now}
    assert [t["orderId"] for t in full.signed("GET", "/fapi/v1/userTrades", week).json()] == [new["orderId"]]


def test_user_trades_sent_only_a_start_answer_at_most_the_seven_days_after_it(binance_sim, full):
    """userTrades sent startTime alone answers at most its 7 days (the stricter of the two readings of the
    page, which does not say: a klineo read that holds under it holds under the other, facts §14)."""
    # GIVEN a trade filled 10 days ago and one filled now
    old = full.signed("POST", "/fapi/v1/order", BUY).json()
    binance_sim.age_orders(10 * DAY_MS)
    new = full.signed("POST", "/fapi/v1/order", BUY).json()
    # WHEN the trades are asked for from just before the old one, and from 3 days ago
    from_old = {"symbol": "BTCUSDT", "startTime": old["updateTime"] - 10 * DAY_MS - 1}
    early = full.signed("GET", "/fapi/v1/userTrades", from_old).json()
    recent = {"symbol": "BTCUSDT", "startTime": new["updateTime"] - 3 * DAY_MS}
    late = full.signed("GET", "/fapi/v1/userTrades", recent).json()
    # THEN the first answers only the old trade's week, the second up to now
    assert [t["orderId"] for t in early] == [old["orderId"]]
    assert [t["orderId"] for t in late] == [new["orderId"]]


def test_injection_over_http_refuses_what_cannot_happen(binance_sim):
    """POST /__sim__/trades: a liquidation without a position, or an unknown kind, is a 400."""
    # WHEN impossible injections are asked for
    control = f"{binance_sim.url}/__sim__/trades"
    flat = requests.post(
        control, json={"account": "futures-full", "kind": "liquidation", "symbol": "BTCUSDT"}, timeout=5
    )
    unknown = requests.post(
        control, json={"account": "futures-full", "kind": "gift", "symbol": "BTCUSDT"}, timeout=5
    )
    # THEN both are refused
    assert flat.status_code == 400 and "no position" in flat.json()["error"]
    assert unknown.status_code == 400


def _resting_buy(binance_sim, client: SignedClient, client_id: str) -> dict:
    mark = Decimal(str(binance_sim.mark_price("BTCUSDT")))
    price = str(
        (mark * Decimal("0.97") / Decimal("0.1")).to_integral_value(rounding=ROUND_DOWN) * Decimal("0.1")
    )
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.002"}
    return client.signed(
        "POST", "/fapi/v1/order", {**order, "price": price, "newClientOrderId": client_id}
    ).json()


def _lookup(client: SignedClient, client_id: str) -> dict:
    return client.signed(
        "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": client_id}
    ).json()


def test_unfilled_cancelled_orders_are_forgotten_after_three_days_filled_ones_after_ninety(binance_sim, full):
    """Retention: a cancelled unfilled order is -2013 after 3 days; a filled one lasts until 90 days."""
    # GIVEN a cancelled resting order and a filled market order
    cancelled = _resting_buy(binance_sim, full, "old-cancel")
    full.signed("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": cancelled["orderId"]})
    full.signed("POST", "/fapi/v1/order", {**BUY, "newClientOrderId": "old-fill"})
    # WHEN they are 3 days and a minute old
    first = binance_sim.age_orders(3 * DAY_MS + 60_000)
    after_three_days = (_lookup(full, "old-cancel"), _lookup(full, "old-fill"))
    # AND then 91 days old
    binance_sim.age_orders(88 * DAY_MS)
    after_ninety_one_days = _lookup(full, "old-fill")
    # THEN the cancelled one went first, the filled one later
    assert first["purged"] == 1
    assert after_three_days[0] == {"code": -2013, "msg": "Order does not exist."}
    assert after_three_days[1]["status"] == "FILLED"
    assert after_ninety_one_days["code"] == -2013


def test_young_or_open_orders_survive_and_purged_ones_cannot_be_cancelled(binance_sim, full):
    """Under 3 days nothing goes; an open order survives 3 days; a purged order's cancel is -2011."""
    # GIVEN an open resting order and a cancelled one
    _resting_buy(binance_sim, full, "still-open")
    gone = _resting_buy(binance_sim, full, "gone-soon")
    full.signed("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": gone["orderId"]})
    # WHEN they age 2 days, then 2 more
    young = binance_sim.age_orders(2 * DAY_MS)
    binance_sim.age_orders(2 * DAY_MS)
    # THEN only the cancelled one is forgotten, after the second step
    assert young["purged"] == 0
    assert _lookup(full, "still-open")["status"] == "NEW"
    again = full.signed("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "gone-soon"})
    assert again.json()["code"] == -2011


def test_cancelled_algo_orders_are_forgotten_after_three_days(binance_sim, full):
    """A cancelled algo order queries as -2013 once it is over 3 days old (POST /__sim__/age)."""
    # GIVEN a cancelled stop
    mark = Decimal(str(binance_sim.mark_price("BTCUSDT")))
    trigger = str((mark * Decimal("1.05")).quantize(Decimal("0.1"), rounding=ROUND_DOWN))
    algo = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "BUY", "type": "STOP_MARKET"}
    full.signed(
        "POST",
        "/fapi/v1/algoOrder",
        {**algo, "triggerPrice": trigger, "quantity": "0.01", "clientAlgoId": "old-stop"},
    )
    full.signed("DELETE", "/fapi/v1/algoOrder", {"clientAlgoId": "old-stop"})
    # WHEN it ages 4 days over HTTP
    aged = requests.post(f"{binance_sim.url}/__sim__/age", json={"ms": 4 * DAY_MS}, timeout=5)
    # THEN it is gone
    assert aged.json() == {"aged_ms": 4 * DAY_MS, "purged": 1}
    assert full.signed("GET", "/fapi/v1/algoOrder", {"clientAlgoId": "old-stop"}).json()["code"] == -2013
