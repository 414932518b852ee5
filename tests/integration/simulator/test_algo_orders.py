"""Algo (conditional) orders on the simulator, fired by a mark price the test moves.

Shapes and codes follow docs/binance-facts.md §7 (and shared facts "Trading surface" D).
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_UP, Decimal

import pytest
import requests

from local.binance_sim.testing import SignedClient

ALGO_PATH = "/fapi/v1/algoOrder"


@pytest.fixture
def full(binance_sim) -> SignedClient:
    return SignedClient(binance_sim.url, binance_sim.account("futures-full"))


def _price(binance_sim, factor: str, symbol: str = "BTCUSDT") -> str:
    """The mark times `factor`, on BTCUSDT's 0.10 tick."""
    mark = Decimal(str(binance_sim.mark_price(symbol)))
    return str(
        (mark * Decimal(factor) / Decimal("0.1")).to_integral_value(rounding=ROUND_DOWN) * Decimal("0.1")
    )


def _algo(client: SignedClient, **params):
    return client.signed("POST", ALGO_PATH, {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", **params})


def _buy(client: SignedClient, quantity: str = "0.01") -> None:
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": quantity}
    assert client.signed("POST", "/fapi/v1/order", order).status_code == 200


def _position(client: SignedClient) -> str:
    rows = client.signed("GET", "/fapi/v3/positionRisk", {"symbol": "BTCUSDT"}).json()
    return rows[0]["positionAmt"] if rows else "0"


def _query(client: SignedClient, client_algo_id: str) -> dict:
    return client.signed("GET", ALGO_PATH, {"clientAlgoId": client_algo_id}).json()


def test_stop_market_is_accepted_listed_as_open_algo_and_absent_from_open_orders(binance_sim, full):
    """A STOP_MARKET answers the documented algo fields and lives only in openAlgoOrders."""
    # GIVEN a long position
    _buy(full)
    # WHEN a closePosition stop below the mark is placed
    response = _algo(
        full,
        side="SELL",
        type="STOP_MARKET",
        triggerPrice=_price(binance_sim, "0.97"),
        closePosition="true",
        clientAlgoId="sl-1",
    )
    body = response.json()
    # THEN it waits as NEW, in the algo list only
    assert response.status_code == 200
    assert body["algoStatus"] == "NEW" and body["orderType"] == "STOP_MARKET" and "type" not in body
    assert (body["algoType"], body["clientAlgoId"], body["closePosition"]) == ("CONDITIONAL", "sl-1", True)
    assert body["triggerTime"] == 0 and len(str(body["algoId"])) == 16
    assert [a["clientAlgoId"] for a in full.signed("GET", "/fapi/v1/openAlgoOrders").json()] == ["sl-1"]
    assert full.signed("GET", "/fapi/v1/openOrders").json() == []


@pytest.mark.parametrize(
    ("order_type", "side", "factor"),
    [("STOP_MARKET", "SELL", "1.02"), ("STOP_MARKET", "BUY", "0.98"), ("TAKE_PROFIT_MARKET", "SELL", "0.98")],
)
def test_trigger_already_crossed_is_2021(binance_sim, full, order_type, side, factor):
    """A trigger the mark has already crossed is -2021 "Order would immediately trigger."."""
    # WHEN the trigger is on the wrong side of the mark
    response = _algo(
        full, side=side, type=order_type, triggerPrice=_price(binance_sim, factor), quantity="0.01"
    )
    # THEN it is refused and nothing waits
    assert response.json() == {"code": -2021, "msg": "Order would immediately trigger."}
    assert full.signed("GET", "/fapi/v1/openAlgoOrders").json() == []


def test_take_profit_fires_when_the_mark_reaches_it_and_the_stop_stays(binance_sim, full):
    """Mark at the take-profit: a MARKET child named by clientAlgoId closes the long; the stop waits."""
    # GIVEN a long guarded by a take-profit and a stop-loss
    _buy(full)
    take_profit = _price(binance_sim, "1.02")
    _algo(
        full,
        side="SELL",
        type="TAKE_PROFIT_MARKET",
        triggerPrice=take_profit,
        closePosition="true",
        clientAlgoId="tp-1",
    )
    _algo(
        full,
        side="SELL",
        type="STOP_MARKET",
        triggerPrice=_price(binance_sim, "0.98"),
        closePosition="true",
        clientAlgoId="sl-1",
    )
    # WHEN the mark moves past the take-profit
    binance_sim.set_mark_price("BTCUSDT", float(Decimal(take_profit) + 5))
    fired = _query(full, "tp-1")
    child = full.signed("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "tp-1"}).json()
    # THEN the take-profit finished through a filled child, the position is flat, the stop still waits
    assert fired["algoStatus"] == "FINISHED" and fired["triggerTime"] > 0
    assert fired["actualOrderId"] == str(child["orderId"])
    assert (child["status"], child["type"], child["side"], child["origQty"]) == (
        "FILLED",
        "MARKET",
        "SELL",
        "0.01",
    )
    assert _position(full) == "0"
    assert _query(full, "sl-1")["algoStatus"] == "NEW"


def test_close_position_stop_with_nothing_to_close_ends_rejected(binance_sim, full):
    """A closePosition stop firing on a flat account is REJECTED and places no order."""
    # GIVEN a stop on a flat account
    _algo(
        full,
        side="SELL",
        type="STOP_MARKET",
        triggerPrice=_price(binance_sim, "0.97"),
        closePosition="true",
        clientAlgoId="sl-flat",
    )
    # WHEN the mark falls through it
    binance_sim.set_mark_price("BTCUSDT", float(_price(binance_sim, "0.95")))
    # THEN it is rejected without a child
    fired = _query(full, "sl-flat")
    assert (fired["algoStatus"], fired["actualOrderId"]) == ("REJECTED", "")
    assert (
        full.signed("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "sl-flat"}).json()[
            "code"
        ]
        == -2013
    )


def test_a_reduce_only_stop_larger_than_the_position_left_is_rejected_when_it_fires(binance_sim, full):
    """A reduce-only stop for more than the position holds when it fires is refused as its order would be
    (-2022), never trimmed: the algo ends REJECTED and the position stays (docs/binance-facts.md §7)."""
    # GIVEN a long of 0.01 protected by a reduce-only stop for 0.01, then half of it sold
    _buy(full)
    _algo(full, side="SELL", type="STOP_MARKET", triggerPrice=_price(binance_sim, "0.97"), quantity="0.01",
          reduceOnly="true", clientAlgoId="sl-stale")
    half = {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.005", "reduceOnly": "true"}
    assert full.signed("POST", "/fapi/v1/order", half).status_code == 200
    # WHEN the mark falls through the stop
    binance_sim.set_mark_price("BTCUSDT", float(_price(binance_sim, "0.95")))
    # THEN it is refused, the 0.005 left still open
    assert _query(full, "sl-stale")["algoStatus"] == "REJECTED"
    assert Decimal(_position(full)) == Decimal("0.005")


def test_stop_limit_fires_a_resting_limit_child(binance_sim, full):
    """A STOP (limit) BUY fires a LIMIT child at its price: TRIGGERED while it rests, FINISHED once filled."""
    # GIVEN a STOP BUY triggering above the mark with a limit price further up
    trigger, limit = _price(binance_sim, "1.01"), _price(binance_sim, "1.015")
    _algo(
        full,
        side="BUY",
        type="STOP",
        triggerPrice=trigger,
        price=limit,
        quantity="0.002",
        clientAlgoId="stop-limit",
    )
    # WHEN the mark reaches the trigger but stays above the limit price, then drops below it
    binance_sim.set_mark_price("BTCUSDT", float(Decimal(limit) + 10))
    resting = _query(full, "stop-limit")
    binance_sim.set_mark_price("BTCUSDT", float(trigger))
    filled = _query(full, "stop-limit")
    # THEN the child rested first and filled later
    assert resting["algoStatus"] == "TRIGGERED" and resting["actualOrderId"]
    assert filled["algoStatus"] == "FINISHED"
    assert _position(full) == "0.002"


@pytest.mark.parametrize(("side", "trigger", "limit", "code", "bound"), [
    ("SELL", "0.98", "1.04", -4183, "higher"), ("BUY", "1.02", "0.96", -4184, "lower"),
    ("BUY", "1.01", "1.065", -4183, "higher"), ("SELL", "0.99", "0.935", -4184, "lower"),
], ids=["sell-far-above", "buy-far-below", "buy-far-above", "sell-far-below"])
def test_a_stop_limit_price_outside_the_band_around_its_trigger_is_refused(
        binance_sim, full, side, trigger, limit, code, bound):
    """PERCENT_PRICE around the trigger (facts §6): a STOP's limit price above trigger x 1.05 is -4183, below
    trigger x 0.95 -4184, whichever its side; nothing is placed."""
    # GIVEN a STOP on the side where it rests, its limit price over 5% away from its trigger
    trigger_price = _price(binance_sim, trigger)
    limit_price = str(Decimal(trigger_price) * Decimal(limit) / Decimal(trigger))
    limit_price = _on_tick(limit_price)
    # WHEN it is placed
    response = _algo(full, side=side, type="STOP", triggerPrice=trigger_price, price=limit_price,
                     quantity="0.002", clientAlgoId="stop-band")
    # THEN the band's code, with the bound on the tick grid; no algo order exists
    band = Decimal(trigger_price) * Decimal("1.05" if bound == "higher" else "0.95")
    body = response.json()
    assert (response.status_code, body["code"]) == (400, code)
    text, number = body["msg"].rsplit(" ", 1)
    assert text == f"Limit price can't be {bound} than"
    assert Decimal(number) == Decimal(_on_tick(str(band), up=bound == "lower"))
    assert _query(full, "stop-band")["code"] == -2013


def test_a_stop_limit_price_at_the_band_edge_is_accepted(binance_sim, full):
    """A STOP SELL whose limit price is trigger x 0.95 on the tick grid (the band's lowest) is placed (a
    guard: the edge stays valid)."""
    # GIVEN a STOP SELL below the mark, its limit price at the band's floor rounded up to the tick
    trigger = _price(binance_sim, "0.98")
    floor = _on_tick(str(Decimal(trigger) * Decimal("0.95")), up=True)
    # WHEN it is placed
    response = _algo(full, side="SELL", type="STOP", triggerPrice=trigger, price=floor, quantity="0.002")
    # THEN it is accepted
    assert response.status_code == 200, response.text


def _on_tick(value: str, up: bool = False) -> str:
    """``value`` on BTCUSDT's 0.10 tick, down (``up``: up)."""
    rounding = ROUND_UP if up else ROUND_DOWN
    return str((Decimal(value) / Decimal("0.1")).to_integral_value(rounding=rounding) * Decimal("0.1"))


def test_trailing_stop_fires_on_the_pullback_from_the_best_mark(binance_sim, full):
    """TRAILING_STOP_MARKET SELL 1%: the mark rises 3%, then falls 1% from there, and the long closes."""
    # GIVEN a long and a 1% trailing stop
    _buy(full)
    _algo(
        full,
        side="SELL",
        type="TRAILING_STOP_MARKET",
        callbackRate="1",
        quantity="0.01",
        reduceOnly="true",
        clientAlgoId="trail",
    )
    start = Decimal(str(binance_sim.mark_price("BTCUSDT")))
    # WHEN the mark rises 3%, dips 0.5% (not enough), then 1.5% below the peak
    binance_sim.set_mark_price("BTCUSDT", float(start * Decimal("1.03")))
    binance_sim.set_mark_price("BTCUSDT", float(start * Decimal("1.03") * Decimal("0.995")))
    waiting = _query(full, "trail")["algoStatus"]
    binance_sim.set_mark_price("BTCUSDT", float(start * Decimal("1.03") * Decimal("0.985")))
    # THEN only the full pullback fired it
    assert waiting == "NEW"
    assert _query(full, "trail")["algoStatus"] == "FINISHED"
    assert _position(full) == "0"


def test_trailing_stop_takes_a_callback_rate_up_to_20(full):
    """callbackRate 20 is accepted and echoed (Binance's maximum since 2026-10-23; 20.1 stays -1130)."""
    # GIVEN a long
    _buy(full)
    # WHEN a 20% trailing stop is placed
    response = _algo(full, side="SELL", type="TRAILING_STOP_MARKET", callbackRate="20", quantity="0.01",
                     reduceOnly="true", clientAlgoId="trail-20")
    # THEN it rests with that rate
    assert response.status_code == 200, response.json()
    assert response.json()["callbackRate"] == "20"
    assert _query(full, "trail-20")["algoStatus"] == "NEW"


def test_cancel_answers_a_string_code_and_a_second_cancel_is_2011(binance_sim, full):
    """DELETE algoOrder answers {"code": "200"} once; a second cancel is -2011; an unknown query -2013."""
    # GIVEN a waiting stop
    placed = _algo(
        full,
        side="BUY",
        type="STOP_MARKET",
        triggerPrice=_price(binance_sim, "1.05"),
        quantity="0.01",
        clientAlgoId="cx-1",
    ).json()
    # WHEN it is cancelled twice, by algoId then by clientAlgoId
    first = full.signed("DELETE", ALGO_PATH, {"algoId": placed["algoId"]})
    second = full.signed("DELETE", ALGO_PATH, {"clientAlgoId": "cx-1"})
    unknown = full.signed("GET", ALGO_PATH, {"algoId": 42})
    # THEN one cancel succeeded and the rest are Binance's refusals
    assert first.json() == {
        "algoId": placed["algoId"],
        "clientAlgoId": "cx-1",
        "code": "200",
        "msg": "success",
    }
    assert second.json() == {"code": -2011, "msg": "Unknown order sent."}
    assert unknown.json() == {"code": -2013, "msg": "Order does not exist."}
    assert _query(full, "cx-1")["algoStatus"] == "CANCELED"


def test_cancel_all_algo_orders_clears_one_symbol_only(binance_sim, full):
    """DELETE algoOpenOrders?symbol=BTCUSDT cancels BTCUSDT's algo orders and leaves ETHUSDT's."""
    # GIVEN one waiting stop on each of two symbols
    _algo(full, side="BUY", type="STOP_MARKET", triggerPrice=_price(binance_sim, "1.05"), quantity="0.01")
    eth = {"symbol": "ETHUSDT", "triggerPrice": _price(binance_sim, "1.05", "ETHUSDT")}
    _algo(full, side="BUY", type="STOP_MARKET", quantity="0.01", **eth)
    # WHEN BTCUSDT's are cancelled
    answer = full.signed("DELETE", "/fapi/v1/algoOpenOrders", {"symbol": "BTCUSDT"}).json()
    # THEN only ETHUSDT's remains
    assert answer == {"code": 200, "msg": "The operation of cancel all open order is done."}
    assert [a["symbol"] for a in full.signed("GET", "/fapi/v1/openAlgoOrders").json()] == ["ETHUSDT"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"algoType": "VP", "type": "STOP_MARKET"}, -1130),
        ({"type": "LIMIT"}, -1116),
        ({"type": "STOP_MARKET"}, -1102),
        ({"type": "TRAILING_STOP_MARKET", "quantity": "0.01", "callbackRate": "20.1"}, -1130),
        ({"type": "STOP", "triggerPrice": "1", "closePosition": "true"}, -1106),
        ({"type": "STOP_MARKET", "triggerPrice": "1", "closePosition": "true", "reduceOnly": "true"}, -1106),
    ],
)
def test_malformed_algo_orders_are_refused(full, params, code):
    """Bad algoType, non-conditional type, no triggerPrice, callbackRate over 20, closePosition on STOP."""
    # WHEN a malformed algo order is sent
    response = full.signed(
        "POST", ALGO_PATH, {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", **params}
    )
    # THEN it is refused with the expected code
    assert response.status_code == 400 and response.json()["code"] == code


def test_hedge_mode_stop_closes_only_its_side(binance_sim):
    """Hedge mode: a SELL LONG stop closes the long and leaves the short untouched."""
    # GIVEN a hedge account holding a long and a short
    hedge = SignedClient(binance_sim.url, binance_sim.account("futures-hedge"))
    base = {"symbol": "BTCUSDT", "type": "MARKET", "quantity": "0.01"}
    hedge.signed("POST", "/fapi/v1/order", {**base, "side": "BUY", "positionSide": "LONG"})
    hedge.signed("POST", "/fapi/v1/order", {**base, "side": "SELL", "positionSide": "SHORT"})
    _algo(
        hedge,
        side="SELL",
        positionSide="LONG",
        type="STOP_MARKET",
        triggerPrice=_price(binance_sim, "0.97"),
        closePosition="true",
        clientAlgoId="long-sl",
    )
    # WHEN the mark falls through the stop
    binance_sim.set_mark_price("BTCUSDT", float(_price(binance_sim, "0.95")))
    # THEN the long is gone and the short remains
    rows = hedge.signed("GET", "/fapi/v3/positionRisk", {"symbol": "BTCUSDT"}).json()
    assert {r["positionSide"]: r["positionAmt"] for r in rows} == {"SHORT": "-0.010"}


def test_hedge_mode_stop_below_the_minimum_notional_closes_its_side(binance_sim):
    """Hedge mode: a SELL LONG stop for a LONG of 0.002 that fires where 0.002 is worth less than the minimum
    notional (100) closes it: its order is a hedge close, reduce-only in Binance's books (no -4164)."""
    # GIVEN a hedge account holding a LONG of 0.002 and a SELL LONG stop for it far below the mark
    hedge = SignedClient(binance_sim.url, binance_sim.account("futures-hedge"))
    entry = {"symbol": "BTCUSDT", "type": "MARKET", "quantity": "0.002", "side": "BUY",
             "positionSide": "LONG"}
    assert hedge.signed("POST", "/fapi/v1/order", entry).status_code == 200
    _algo(hedge, side="SELL", positionSide="LONG", type="STOP_MARKET", triggerPrice="40000.0",
          quantity="0.002", clientAlgoId="dust-sl")
    # WHEN the mark falls through it, to 39,000 (0.002 is worth 78 USDT)
    binance_sim.set_mark_price("BTCUSDT", 39000.0)
    # THEN the LONG is closed and the stop FINISHED
    assert hedge.signed("GET", "/fapi/v3/positionRisk", {"symbol": "BTCUSDT"}).json() == []
    assert _query(hedge, "dust-sl")["algoStatus"] == "FINISHED"


def test_algo_orders_weigh_nothing_but_count_as_orders_and_are_journaled(binance_sim, full):
    """POST algoOrder: weight 0, ORDER-COUNT headers, one journal record on its own path."""
    # WHEN one algo order is placed
    response = _algo(
        full, side="BUY", type="STOP_MARKET", triggerPrice=_price(binance_sim, "1.05"), quantity="0.01"
    )
    # THEN the headers and the journal say so, and nothing reached /fapi/v1/order
    assert response.headers["X-MBX-USED-WEIGHT-1M"] == "0"
    assert response.headers["X-MBX-ORDER-COUNT-1M"] == "1"
    paths = [(r.method, r.path) for r in binance_sim.journal]
    assert ("POST", ALGO_PATH) in paths and ("POST", "/fapi/v1/order") not in paths


def test_the_mark_can_be_pinned_and_released_over_http(binance_sim, full):
    """POST /__sim__/mark pins the mark everywhere (premiumIndex, ticker); price null releases it."""
    # WHEN the mark is pinned, read, and released
    control = f"{binance_sim.url}/__sim__/mark"
    pinned = requests.post(control, json={"symbol": "ETHUSDT", "price": "2500.5"}, timeout=5)
    premium = requests.get(f"{binance_sim.url}/fapi/v1/premiumIndex", params={"symbol": "ETHUSDT"}, timeout=5)
    requests.post(control, json={"symbol": "ETHUSDT", "price": None}, timeout=5)
    bad = requests.post(control, json={"symbol": "NOPE", "price": 1}, timeout=5)
    # THEN the public mark followed the pin and the release cleared it
    assert pinned.json() == {"marks": {"ETHUSDT": 2500.5}}
    assert premium.json()["markPrice"] == "2500.50000000"
    assert requests.get(control, timeout=5).json() == {"marks": {}}
    assert bad.status_code == 400


def test_a_resting_limit_crossed_by_a_brief_mark_move_fills(binance_sim, full):
    """A mark move that is undone at once still fills the resting LIMIT it crossed."""
    # GIVEN a resting BUY 3% below the mark
    price = _price(binance_sim, "0.97")
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.002"}
    placed = full.signed("POST", "/fapi/v1/order", {**order, "price": price}).json()
    # WHEN the mark dips to the price and comes back
    binance_sim.set_mark_price("BTCUSDT", float(price))
    binance_sim.set_mark_price("BTCUSDT", None)
    # THEN the order filled at its price
    status = full.signed("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": placed["orderId"]}).json()
    assert (status["status"], status["avgPrice"].rstrip("0").rstrip(".")) == (
        "FILLED",
        price.rstrip("0").rstrip("."),
    )


def test_hedge_close_position_must_close_the_named_side(binance_sim):
    """Hedge mode: closePosition with BUY+LONG (it would open, not close) is -4061."""
    # GIVEN the hedge account
    hedge = SignedClient(binance_sim.url, binance_sim.account("futures-hedge"))
    # WHEN a closePosition stop names the side it would grow
    response = _algo(
        hedge,
        side="BUY",
        positionSide="LONG",
        type="STOP_MARKET",
        triggerPrice=_price(binance_sim, "1.05"),
        closePosition="true",
    )
    # THEN it is refused
    assert response.json()["code"] == -4061
