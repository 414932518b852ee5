"""Futures orders: fills at the mark price, resting limits, filters, margin, ids, cancel, leverage."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import pytest

from local.binance_sim.testing import SignedClient


@pytest.fixture
def full(binance_sim):
    return SignedClient(binance_sim.url, binance_sim.account("futures-full"))


def resting_buy_price(binance_sim, symbol="BTCUSDT", tick="0.10", below=Decimal("0.97")) -> str:
    """A LIMIT BUY price on the tick grid, below the mark price (so it rests)."""
    mark = Decimal(str(binance_sim.mark_price(symbol)))
    step = Decimal(tick)
    return str((mark * below / step).to_integral_value(rounding=ROUND_DOWN) * step)


def test_market_order_fills_at_mark_and_updates_position_and_wallet(binance_sim, full):
    """A MARKET BUY fills at the mark price, opens a position and charges the fee."""
    # GIVEN the full-rights key with 10000 USDT
    # WHEN it buys 0.01 BTC at market asking for the RESULT
    response = full.signed(
        "POST",
        "/fapi/v1/order",
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "MARKET",
            "quantity": "0.01",
            "newOrderRespType": "RESULT",
        },
    )
    # THEN the order is FILLED at about the mark price
    assert response.status_code == 200, response.text
    order = response.json()
    assert order["status"] == "FILLED" and order["executedQty"] == "0.01"
    mark = binance_sim.mark_price("BTCUSDT")
    assert abs(float(order["avgPrice"]) - mark) / mark < 0.01
    # AND the position and wallet reflect the fill
    position = full.signed("GET", "/fapi/v3/positionRisk", {"symbol": "BTCUSDT"}).json()
    assert position[0]["positionAmt"] == "0.010"
    wallet = Decimal(full.signed("GET", "/fapi/v2/account").json()["totalWalletBalance"])
    assert wallet < Decimal("10000")  # the taker fee
    assert any(p["symbol"] == "BTCUSDT" for p in full.signed("GET", "/fapi/v3/account").json()["positions"])


def test_new_order_answers_ack_by_default(full):
    """Without newOrderRespType the answer is the ACK (status NEW, nothing executed yet)."""
    # WHEN a market order is sent without newOrderRespType
    ack = full.signed(
        "POST",
        "/fapi/v1/order",
        {
            "symbol": "ETHUSDT",
            "side": "SELL",
            "type": "MARKET",
            "quantity": "0.1",
            "newClientOrderId": "ack-test-1",
        },
    ).json()
    # THEN the ACK has the documented fields, and a query shows it FILLED
    assert ack["status"] == "NEW" and ack["executedQty"] == "0" and ack["clientOrderId"] == "ack-test-1"
    assert {
        "orderId",
        "symbol",
        "side",
        "type",
        "origQty",
        "price",
        "avgPrice",
        "cumQuote",
        "timeInForce",
        "reduceOnly",
        "closePosition",
        "positionSide",
        "stopPrice",
        "workingType",
        "priceProtect",
        "origType",
        "priceMatch",
        "selfTradePreventionMode",
        "goodTillDate",
        "updateTime",
    } <= ack.keys()
    queried = full.signed("GET", "/fapi/v1/order", {"symbol": "ETHUSDT", "orderId": ack["orderId"]}).json()
    assert queried["status"] == "FILLED" and "time" in queried


def test_limit_order_away_from_mark_rests_in_open_orders_and_cancels(binance_sim, full):
    """A LIMIT BUY below the mark is NEW in openOrders; DELETE cancels it; a second cancel is -2011."""
    # GIVEN a resting limit buy
    price = resting_buy_price(binance_sim)
    placed = full.signed(
        "POST",
        "/fapi/v1/order",
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "timeInForce": "GTC",
            "quantity": "0.002",
            "price": price,
            "newClientOrderId": "rest-1",
        },
    ).json()
    # WHEN open orders are listed, then the order is cancelled twice
    listed = full.signed("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"}).json()
    cancelled = full.signed("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": placed["orderId"]})
    again = full.signed("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": placed["orderId"]})
    # THEN it was listed, is CANCELED, and the second cancel is unknown
    assert placed["status"] == "NEW" and placed["price"] == price.rstrip("0").rstrip(".")
    assert [o["clientOrderId"] for o in listed] == ["rest-1"]
    assert cancelled.json()["status"] == "CANCELED"
    assert full.signed("GET", "/fapi/v1/openOrders").json() == []
    assert again.json() == {"code": -2011, "msg": "Unknown order sent."}


def test_marketable_limit_order_fills_immediately(binance_sim, full):
    """A LIMIT BUY at or above the mark fills at once."""
    # GIVEN a buy price 1% above the mark
    price = resting_buy_price(binance_sim, "ETHUSDT", "0.01", Decimal("1.01"))
    # WHEN it is placed
    order = full.signed(
        "POST",
        "/fapi/v1/order",
        {
            "symbol": "ETHUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "timeInForce": "GTC",
            "quantity": "0.05",
            "price": price,
            "newOrderRespType": "RESULT",
        },
    ).json()
    # THEN it is FILLED
    assert order["status"] == "FILLED"


@pytest.mark.parametrize(
    ("overrides", "code", "msg"),
    [
        ({"quantity": "0"}, -4003, "Quantity less than zero."),
        ({"price": "100.00"}, -4013, "Price less than min price."),
        ({"price": "60000.15"}, -4014, "Price not increased by tick size."),
        ({"price": "60000.123"}, -1111, "Precision is over the maximum defined for this asset."),
        ({"quantity": "0.0015"}, -1111, "Precision is over the maximum defined for this asset."),
        (
            {"quantity": "0.001"},
            -4164,
            "Order's notional must be no smaller than 100 (unless you choose reduce only)",
        ),
        (
            {"type": "STOP_MARKET"},
            -4120,
            "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.",
        ),
        (
            {"type": "TAKE_PROFIT"},
            -4120,
            "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.",
        ),
    ],
)
def test_btc_order_filter_failures_use_futures_codes(binance_sim, full, overrides, code, msg):
    """Each futures filter failure answers its own code and text (no spot -1013)."""
    # GIVEN an otherwise valid resting BTCUSDT limit buy with one bad field
    params = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.002",
        "price": resting_buy_price(binance_sim),
    }
    params.update(overrides)
    # WHEN it is placed
    response = full.signed("POST", "/fapi/v1/order", params)
    # THEN the documented error comes back with HTTP 400
    assert response.status_code == 400
    assert response.json() == {"code": code, "msg": msg}


def test_quantity_off_the_step_grid_is_minus_4023(binance_sim, full):
    """BNBUSDT stepSize 0.01: a quantity of 10.015 is not on the grid."""
    # WHEN a BNB market order has a quantity off the step grid
    response = full.signed(
        "POST", "/fapi/v1/order", {"symbol": "BNBUSDT", "side": "BUY", "type": "MARKET", "quantity": "10.015"}
    )
    # THEN -4023
    assert response.json() == {"code": -4023, "msg": "Qty not increased by step size."}


def test_order_beyond_available_margin_is_minus_2019(full):
    """Notional / leverage above the available balance: -2019."""
    # GIVEN leverage 1 on a 10000 USDT wallet
    full.signed("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 1})
    # WHEN 1 BTC (tens of thousands USDT) is bought at market
    response = full.signed(
        "POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"}
    )
    # THEN the margin is insufficient and nothing was filled
    assert response.json() == {"code": -2019, "msg": "Margin is insufficient."}
    assert full.signed("GET", "/fapi/v3/positionRisk").json() == []


def test_duplicate_client_order_id_among_open_orders_is_minus_4116(binance_sim, full):
    """A second order reusing an open order's newClientOrderId is refused."""
    # GIVEN a resting order with a chosen id
    params = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.002",
        "price": resting_buy_price(binance_sim),
        "newClientOrderId": "klneo_dup_1",
    }
    first = full.signed("POST", "/fapi/v1/order", params)
    # WHEN the same id is sent again
    second = full.signed("POST", "/fapi/v1/order", params)
    # THEN -4116 and only one order is open
    assert first.status_code == 200
    assert second.status_code == 400
    assert second.json() == {"code": -4116, "msg": "ClientOrderId is duplicated."}
    assert len(full.signed("GET", "/fapi/v1/openOrders").json()) == 1


def test_filled_order_is_queryable_by_client_order_id(full):
    """GET /fapi/v1/order?origClientOrderId= finds a filled order."""
    # GIVEN a filled market order with a client id
    full.signed(
        "POST",
        "/fapi/v1/order",
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "MARKET",
            "quantity": "0.002",
            "newClientOrderId": "klneo_1700000000000_ab",
        },
    )
    # WHEN it is queried by that id
    response = full.signed(
        "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "klneo_1700000000000_ab"}
    )
    # THEN it is found, FILLED
    assert response.status_code == 200
    assert response.json()["status"] == "FILLED"
    assert response.json()["clientOrderId"] == "klneo_1700000000000_ab"


def test_unknown_order_is_minus_2013_and_missing_ids_minus_1102(full):
    """Querying an order that does not exist is -2013; sending neither id is -1102."""
    # WHEN an unknown id and no id at all are queried
    unknown = full.signed("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "never-sent"})
    neither = full.signed("GET", "/fapi/v1/order", {"symbol": "BTCUSDT"})
    # THEN the documented codes
    assert unknown.status_code == 400
    assert unknown.json() == {"code": -2013, "msg": "Order does not exist."}
    assert neither.json() == {
        "code": -1102,
        "msg": "Param 'orderId' or 'origClientOrderId' must be sent, but both were empty/null!",
    }


def test_invalid_client_order_id_is_minus_4015(full):
    """newClientOrderId must match ^[.A-Z:/a-z0-9_-]{1,36}$."""
    # WHEN ids with a bad character and 37 characters are sent
    bad_char = full.signed(
        "POST",
        "/fapi/v1/order",
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "MARKET",
            "quantity": "0.002",
            "newClientOrderId": "bad id!",
        },
    )
    too_long = full.signed(
        "POST",
        "/fapi/v1/order",
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "MARKET",
            "quantity": "0.002",
            "newClientOrderId": "x" * 37,
        },
    )
    # THEN -4015
    assert bad_char.json()["code"] == -4015 and too_long.json()["code"] == -4015


def test_selling_closes_the_position_and_realises_pnl(full):
    """A SELL of the held quantity closes the position and moves the wallet by PnL and fees."""
    # GIVEN a 0.01 BTC long
    full.signed(
        "POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}
    )
    # WHEN it is sold back with reduceOnly
    sold = full.signed(
        "POST",
        "/fapi/v1/order",
        {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.01", "reduceOnly": "true"},
    )
    # THEN the position is flat again
    assert sold.status_code == 200, sold.text
    assert full.signed("GET", "/fapi/v3/positionRisk").json() == []
    # AND a further reduceOnly sell is rejected
    again = full.signed(
        "POST",
        "/fapi/v1/order",
        {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.01", "reduceOnly": "true"},
    )
    assert again.json()["code"] == -2022


def test_a_reduce_only_order_larger_than_the_position_is_2022_and_never_flips_it(full):
    """One-way: a reduceOnly SELL of 0.02 against a 0.015 long is -2022 and the long stays as it was."""
    full.signed(
        "POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.015"}
    )
    oversized = full.signed(
        "POST",
        "/fapi/v1/order",
        {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.02", "reduceOnly": "true"},
    )
    assert oversized.json() == {"code": -2022, "msg": "ReduceOnly Order is rejected."}
    (position,) = full.signed("GET", "/fapi/v3/positionRisk").json()
    assert position["positionAmt"] == "0.015"


def test_leverage_change_and_invalid_leverage(full):
    """POST /fapi/v1/leverage answers leverage/maxNotionalValue/symbol; 0 or 200 is -4028."""
    # WHEN leverage is set to 21, then to an invalid value
    ok = full.signed("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 21}).json()
    bad = full.signed("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 200}).json()
    # THEN the documented shapes
    assert ok == {"leverage": 21, "maxNotionalValue": "1000000", "symbol": "BTCUSDT"}
    assert bad == {"code": -4028, "msg": "Leverage 200 is not valid"}
    risk = full.signed("GET", "/fapi/v2/positionRisk", {"symbol": "BTCUSDT"}).json()
    assert risk[0]["leverage"] == "21"


def test_invalid_symbol_is_minus_1121(full):
    """An order on an unknown symbol is -1121."""
    # WHEN an unknown symbol is traded
    response = full.signed(
        "POST", "/fapi/v1/order", {"symbol": "FOOUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"}
    )
    # THEN -1121
    assert response.json() == {"code": -1121, "msg": "Invalid symbol."}


def test_limit_price_outside_percent_price_band_is_rejected(binance_sim, full):
    """PERCENT_PRICE: a BUY above mark x 1.05 is -4016, a SELL below mark x 0.95 is -4024 (docs' codes)."""
    # GIVEN prices 10% away from the mark on the wrong side
    high = resting_buy_price(binance_sim, below=Decimal("1.10"))
    low = resting_buy_price(binance_sim, below=Decimal("0.90"))
    base = {"symbol": "BTCUSDT", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.002"}
    # WHEN they are placed
    buy = full.signed("POST", "/fapi/v1/order", {**base, "side": "BUY", "price": high}).json()
    sell = full.signed("POST", "/fapi/v1/order", {**base, "side": "SELL", "price": low}).json()
    # THEN the band codes come back
    assert buy["code"] == -4016 and buy["msg"].startswith("Limit price can't be higher than ")
    assert sell["code"] == -4024 and sell["msg"].startswith("Limit price can't be lower than ")


def test_limit_price_above_max_price_is_4002(full):
    """PRICE_FILTER maxPrice: BTCUSDT at 4600000 is -4002 "Price greater than max price."."""
    # WHEN a BUY is priced above the symbol's maxPrice (4529764)
    response = full.signed(
        "POST",
        "/fapi/v1/order",
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "timeInForce": "GTC",
            "quantity": "0.002",
            "price": "4600000",
        },
    )
    # THEN the documented code and text come back
    assert response.json() == {"code": -4002, "msg": "Price greater than max price."}


def test_fok_that_cannot_fill_is_5021_and_leaves_no_order(binance_sim, full):
    """A FOK BUY below the mark is -5021 and is not recorded; a marketable FOK fills."""
    # GIVEN a price below the mark (cannot fill now) and one above it (fills at once)
    low = resting_buy_price(binance_sim)
    high = resting_buy_price(binance_sim, below=Decimal("1.01"))
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "FOK", "quantity": "0.002"}
    # WHEN both are sent
    refused = full.signed("POST", "/fapi/v1/order", {**base, "price": low, "newClientOrderId": "fok-1"})
    filled = full.signed("POST", "/fapi/v1/order", {**base, "price": high, "newOrderRespType": "RESULT"})
    lookup = full.signed("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "fok-1"})
    # THEN the first is -5021 and unknown afterwards, the second filled
    assert refused.json() == {
        "code": -5021,
        "msg": "Due to the order could not be filled immediately, the FOK order has been rejected.",
    }
    assert lookup.json()["code"] == -2013
    assert filled.json()["status"] == "FILLED"


def test_ioc_that_cannot_fill_expires(binance_sim, full):
    """An IOC BUY below the mark is accepted and ends EXPIRED with nothing filled."""
    # WHEN an IOC below the mark is sent
    response = full.signed(
        "POST",
        "/fapi/v1/order",
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "timeInForce": "IOC",
            "quantity": "0.002",
            "price": resting_buy_price(binance_sim),
            "newOrderRespType": "RESULT",
        },
    )
    # THEN it expired unfilled
    assert (response.json()["status"], response.json()["executedQty"]) == ("EXPIRED", "0")


def test_thin_liquidity_fills_a_market_order_in_part_and_expires_the_rest(binance_sim, full):
    """set_market_depth: a MARKET order larger than the depth fills the depth and expires the rest (EXPIRED,
    executedQty < origQty, the position moved by the fill only); a query says the same; None ends it."""
    binance_sim.set_market_depth("BTCUSDT", "0.004")
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01",
             "newClientOrderId": "thin-1", "newOrderRespType": "RESULT"}

    response = full.signed("POST", "/fapi/v1/order", order)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["origQty"], body["executedQty"]) == ("EXPIRED", "0.01", "0.004")
    assert Decimal(body["avgPrice"]) > 0
    queried = full.signed("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": body["orderId"]}).json()
    assert (queried["status"], queried["executedQty"]) == ("EXPIRED", "0.004")
    position = full.signed("GET", "/fapi/v3/positionRisk", {"symbol": "BTCUSDT"}).json()
    assert Decimal(position[0]["positionAmt"]) == Decimal("0.004")
    binance_sim.set_market_depth("BTCUSDT", None)
    again = full.signed("POST", "/fapi/v1/order", {**order, "newClientOrderId": "thin-2"}).json()
    assert (again["status"], again["executedQty"]) == ("FILLED", "0.01")


def test_no_market_depth_expires_a_market_order_with_nothing_executed(binance_sim, full):
    """set_market_depth "0": a MARKET order ends EXPIRED with executedQty 0, no trade, position unmoved."""
    binance_sim.set_market_depth("BTCUSDT", "0")
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01",
             "newClientOrderId": "thin-none", "newOrderRespType": "RESULT"}

    body = full.signed("POST", "/fapi/v1/order", order).json()

    assert (body["status"], body["origQty"], body["executedQty"]) == ("EXPIRED", "0.01", "0")
    queried = full.signed("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": body["orderId"]}).json()
    assert (queried["status"], queried["executedQty"]) == ("EXPIRED", "0")
    trades = full.signed("GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT", "orderId": body["orderId"]})
    assert trades.json() == []
    position = full.signed("GET", "/fapi/v3/positionRisk", {"symbol": "BTCUSDT"}).json()
    assert all(Decimal(row["positionAmt"]) == 0 for row in position)


def test_a_hedge_close_below_the_minimum_notional_is_exempt_as_a_reduce_only_order(binance_sim):
    """Hedge mode: with the mark fallen so that 0.002 BTC is worth 40 USDT (minimum 100), a BUY LONG of 0.002
    is -4164, and a SELL LONG closing the LONG of 0.002 is taken: Binance books a hedge close reduce-only,
    and -4164 exempts reduce-only orders (docs/binance-facts.md §4)."""
    # GIVEN a hedge account holding a LONG of 0.002, then the mark at 20,000
    hedge = SignedClient(binance_sim.url, binance_sim.account("futures-hedge"))
    base = {"symbol": "BTCUSDT", "type": "MARKET", "quantity": "0.002"}
    opened = hedge.signed("POST", "/fapi/v1/order", {**base, "side": "BUY", "positionSide": "LONG"})
    assert opened.status_code == 200, opened.text
    binance_sim.set_mark_price("BTCUSDT", 20000.0)
    # WHEN it is grown, then closed, by orders of that value
    grown = hedge.signed("POST", "/fapi/v1/order", {**base, "side": "BUY", "positionSide": "LONG"})
    closed = hedge.signed("POST", "/fapi/v1/order", {**base, "side": "SELL", "positionSide": "LONG"})
    # THEN the opening order is refused and the close goes through
    assert grown.json()["code"] == -4164
    assert closed.status_code == 200, closed.text
    assert hedge.signed("GET", "/fapi/v3/positionRisk", {"symbol": "BTCUSDT"}).json() == []


@pytest.mark.parametrize("status", ["TRADING_HALT", "TRADING_CANCEL_ONLY", "SETTLING"])
def test_a_symbol_not_trading_refuses_new_orders_and_still_cancels_resting_ones(binance_sim, full, status):
    """A symbol Binance stopped (set_symbol_status) refuses a new order as Binance does (400, -4140, facts
    §15) and places nothing; a resting order is still cancelled (a cancel-only market's very point)."""
    # GIVEN a LIMIT BUY resting on BTCUSDT, then the symbol stopped
    resting = full.signed("POST", "/fapi/v1/order", {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01",
        "price": resting_buy_price(binance_sim)}).json()
    binance_sim.set_symbol_status("BTCUSDT", status)
    # WHEN a MARKET order is sent on it
    refused = full.signed("POST", "/fapi/v1/order",
                          {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"})
    # THEN Binance's refusal, and no order placed
    assert refused.status_code == 400
    assert refused.json() == {"code": -4140, "msg": "Invalid symbol status for opening position."}
    open_ids = [o["orderId"] for o in full.signed("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"}).json()]
    assert open_ids == [resting["orderId"]]
    # AND the resting order still cancels
    cancelled = full.signed("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": resting["orderId"]})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELED"


def test_an_order_type_the_symbol_no_longer_lists_is_refused(binance_sim, full):
    """A symbol whose exchangeInfo orderTypes lack MARKET (set_order_types) refuses a MARKET order as Binance
    refuses a type it does not take (400, -1116) and places nothing; a LIMIT order, still listed, rests; the
    usual list (None) takes MARKET again."""
    # GIVEN BTCUSDT listed as taking LIMIT orders only
    binance_sim.set_order_types("BTCUSDT", ["LIMIT"])
    market = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}
    # WHEN a MARKET order is sent on it
    refused = full.signed("POST", "/fapi/v1/order", market)
    # THEN Binance's refusal of the type, and no position
    assert refused.status_code == 400
    assert refused.json() == {"code": -1116, "msg": "Invalid orderType."}
    assert full.signed("GET", "/fapi/v3/positionRisk", {"symbol": "BTCUSDT"}).json() == []
    # AND a LIMIT order is still taken
    resting = full.signed("POST", "/fapi/v1/order", {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01",
        "price": resting_buy_price(binance_sim)})
    assert resting.status_code == 200, resting.text
    # AND once the usual list is back, MARKET fills again
    binance_sim.set_order_types("BTCUSDT", None)
    assert full.signed("POST", "/fapi/v1/order", market).status_code == 200
