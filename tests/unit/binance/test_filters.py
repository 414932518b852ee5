"""Symbol rules: Decimal rounding to the tick/step grid (spot plain, futures offset by the minimum)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from klineo.binance import ErrorCategory, KlineoError, Market, get_symbol_rules
from klineo.binance.filters import parse_symbol_rules

from tests.unit.binance.conftest import FUTURES, SPOT

D = Decimal

SPOT_BTC = {
    "symbol": "BTCUSDT",
    "status": "TRADING",
    "baseAsset": "BTC",
    "quoteAsset": "USDT",
    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
    "filters": [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": "0.01000000",
            "maxPrice": "1000000.00000000",
            "tickSize": "0.01000000",
        },
        {
            "filterType": "LOT_SIZE",
            "minQty": "0.00001000",
            "maxQty": "9000.00000000",
            "stepSize": "0.00001000",
        },
        {
            "filterType": "MARKET_LOT_SIZE",
            "minQty": "0.00000000",
            "maxQty": "120.00000000",
            "stepSize": "0.00000000",
        },
        {
            "filterType": "NOTIONAL",
            "minNotional": "5.00000000",
            "applyMinToMarket": True,
            "maxNotional": "9000000.00000000",
            "applyMaxToMarket": False,
            "avgPriceMins": 5,
        },
    ],
}

FUT_BTC = {
    "symbol": "BTCUSDT",
    "status": "TRADING",
    "baseAsset": "BTC",
    "quoteAsset": "USDT",
    "orderTypes": [
        "LIMIT",
        "MARKET",
        "STOP",
        "STOP_MARKET",
        "TAKE_PROFIT",
        "TAKE_PROFIT_MARKET",
        "TRAILING_STOP_MARKET",
    ],
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "556.80", "maxPrice": "4529764", "tickSize": "0.10"},
        {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "120", "stepSize": "0.001"},
        {"filterType": "MIN_NOTIONAL", "notional": "100"},
        {"filterType": "MAX_NUM_ORDERS", "limit": 200},
    ],
}

# Futures grid offset by the minimum: minPrice 0.05/tick 0.1 -> prices 0.05, 0.15 ...; minQty 0.5/step 1.
FUT_OFFSET = {
    "symbol": "ODDUSDT",
    "status": "TRADING",
    "baseAsset": "ODD",
    "quoteAsset": "USDT",
    "orderTypes": ["LIMIT", "MARKET"],
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.05", "maxPrice": "1000", "tickSize": "0.1"},
        {"filterType": "LOT_SIZE", "minQty": "0.5", "maxQty": "100000", "stepSize": "1"},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.5", "maxQty": "5000", "stepSize": "1"},
        {"filterType": "MIN_NOTIONAL", "notional": "5"},
    ],
}


def _invalid(field: str, call) -> KlineoError:
    with pytest.raises(KlineoError) as caught:
        call()
    assert caught.value.category is ErrorCategory.INVALID_REQUEST
    assert caught.value.field == field
    return caught.value


def test_spot_limit_order_rounds_down_to_tick_and_step():
    """GIVEN spot BTCUSDT WHEN a limit order has too many decimals THEN price and quantity round down."""
    rules = parse_symbol_rules(SPOT_BTC, Market.SPOT)
    qty, price = rules.prepare_order("BUY", "LIMIT", D("0.123456789"), D("65000.129"), D("65000"))
    assert (qty, price) == (D("0.12345"), D("65000.12"))
    assert str(qty) == "0.12345" and str(price) == "65000.12"


def test_futures_limit_order_rounds_on_the_grid_offset_by_the_minimum():
    """GIVEN futures minPrice 0.05/tick 0.1 and minQty 0.5/step 1 WHEN rounding
    THEN the offset grid is used."""
    rules = parse_symbol_rules(FUT_OFFSET, Market.FUTURES)
    qty, price = rules.prepare_order("SELL", "LIMIT", D("7.9"), D("1.23"), D("1.2"))
    assert (qty, price) == (D("7.5"), D("1.15"))
    assert rules.round_price(D("0.05")) == D("0.05") and rules.round_quantity(D("0.5")) == D("0.5")


def test_spot_grid_is_not_offset():
    """GIVEN a spot symbol with a non-zero minimum WHEN rounding
    THEN the plain multiple of the step is used."""
    entry = {**FUT_OFFSET, "filters": FUT_OFFSET["filters"][:2]}
    rules = parse_symbol_rules(entry, Market.SPOT)
    assert rules.round_price(D("1.23")) == D("1.2") and rules.round_quantity(D("7.9")) == D("7")


def test_futures_market_order_uses_market_lot_size_and_mark_price_for_notional():
    """GIVEN a futures MARKET order WHEN prepared THEN price is None and notional uses the reference price."""
    rules = parse_symbol_rules(FUT_BTC, Market.FUTURES)
    assert rules.prepare_order("BUY", "MARKET", D("0.0029"), None, D("60000")) == (D("0.002"), None)
    err = _invalid("quantity", lambda: rules.prepare_order("BUY", "MARKET", D("0.001"), None, D("60000")))
    assert "100" in err.message
    _invalid("quantity", lambda: rules.prepare_order("BUY", "MARKET", D("121"), None, D("60000")))


def test_futures_reduce_only_orders_skip_the_minimum_notional():
    """GIVEN a tiny reduce-only futures order WHEN prepared THEN the notional minimum does not apply."""
    rules = parse_symbol_rules(FUT_BTC, Market.FUTURES)
    assert rules.prepare_order("SELL", "MARKET", D("0.001"), None, D("60000"), reduce_only=True) == (
        D("0.001"),
        None,
    )


@pytest.mark.parametrize(("side", "position_side", "exempt"), [
    ("SELL", "LONG", True), ("BUY", "SHORT", True), ("BUY", "LONG", False), ("SELL", "SHORT", False),
    ("SELL", "BOTH", False),
])
def test_futures_hedge_closes_skip_the_minimum_notional_as_reduce_only_orders_do(side, position_side, exempt):
    """GIVEN a futures order worth 60 USDT, under the minimum 100, in hedge mode (no reduceOnly there) WHEN
    prepared THEN a close of its side (SELL LONG, BUY SHORT) passes as a reduce-only one does; an order
    that opens (BUY LONG, SELL SHORT), or one-way without reduceOnly, is refused naming quantity."""
    rules = parse_symbol_rules(FUT_BTC, Market.FUTURES)
    prepare = lambda: rules.prepare_order(side, "MARKET", D("0.001"), None, D("60000"),  # noqa: E731
                                          position_side=position_side)
    if exempt:
        assert prepare() == (D("0.001"), None)
        assert not rules.min_notional_applies(True, False, side, position_side)
    else:
        _invalid("quantity", prepare)
        assert rules.min_notional_applies(True, False, side, position_side)


def test_spot_market_notional_respects_apply_min_to_market():
    """GIVEN NOTIONAL with applyMinToMarket false WHEN a tiny market order is prepared THEN it passes."""
    entry = {
        **SPOT_BTC,
        "filters": [*SPOT_BTC["filters"][:3], {**SPOT_BTC["filters"][3], "applyMinToMarket": False}],
    }
    rules = parse_symbol_rules(entry, Market.SPOT)
    assert rules.prepare_order("BUY", "MARKET", D("0.00002"), None, D("60000")) == (D("0.00002"), None)
    strict = parse_symbol_rules(SPOT_BTC, Market.SPOT)
    _invalid("quantity", lambda: strict.prepare_order("BUY", "MARKET", D("0.00002"), None, D("60000")))


def test_spot_legacy_min_notional_is_understood():
    """GIVEN only a legacy MIN_NOTIONAL filter WHEN a small limit order is prepared THEN it is refused."""
    entry = {
        **SPOT_BTC,
        "filters": [
            *SPOT_BTC["filters"][:2],
            {"filterType": "MIN_NOTIONAL", "minNotional": "10", "applyToMarket": True},
        ],
    }
    rules = parse_symbol_rules(entry, Market.SPOT)
    _invalid("quantity", lambda: rules.prepare_order("BUY", "LIMIT", D("0.0001"), D("60000"), D("60000")))


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("HOLD", "LIMIT", D("1"), D("60000"), D("60000")), "side"),
        (("BUY", "OCO", D("1"), D("60000"), D("60000")), "type"),
        (("BUY", "LIMIT", D("0"), D("60000"), D("60000")), "quantity"),
        (("BUY", "LIMIT", D("-1"), D("60000"), D("60000")), "quantity"),
        (("BUY", "LIMIT", "abc", D("60000"), D("60000")), "quantity"),
        (("BUY", "LIMIT", D("NaN"), D("60000"), D("60000")), "quantity"),
        (("BUY", "LIMIT", D("0.0001"), D("60000"), D("60000")), "quantity"),  # below minQty
        (
            ("BUY", "LIMIT", D("0.0015"), D("60000"), D("60000")),
            "quantity",
        ),  # rounds to 0.001 -> notional 60 < 100
        (("BUY", "LIMIT", D("1001"), D("60000"), D("60000")), "quantity"),  # above maxQty
        (("BUY", "LIMIT", D("1"), None, D("60000")), "price"),
        (("BUY", "LIMIT", D("1"), D("500"), D("60000")), "price"),  # below minPrice
        (("BUY", "LIMIT", D("1"), D("5000000"), D("60000")), "price"),  # above maxPrice
        (("BUY", "MARKET", D("1"), None, None), "reference_price"),
    ],
)
def test_futures_checks_fail_before_sending_and_name_the_field(args, field):
    """GIVEN an order outside the futures rules WHEN prepared
    THEN invalid_request names the offending field."""
    rules = parse_symbol_rules(FUT_BTC, Market.FUTURES)
    _invalid(field, lambda: rules.prepare_order(*args))


def test_get_symbol_rules_reads_exchange_info_once_per_ttl(rsps, make_client, clock):
    """GIVEN futures exchangeInfo WHEN rules are asked repeatedly
    THEN exchangeInfo is fetched once per hour."""
    rsps.get(
        FUTURES + "/fapi/v1/exchangeInfo", json={"symbols": [FUT_BTC, {**FUT_OFFSET, "status": "SETTLING"}]}
    )
    client = make_client(Market.FUTURES)
    assert get_symbol_rules(client, "btcusdt").tick_size == D("0.10")
    assert get_symbol_rules(client, "BTCUSDT").min_notional == D("100")
    assert len(rsps.calls) == 1
    clock.advance(3601)
    get_symbol_rules(client, "BTCUSDT")
    assert len(rsps.calls) == 2
    _invalid("symbol", lambda: get_symbol_rules(client, "ODDUSDT"))  # not TRADING
    _invalid("symbol", lambda: get_symbol_rules(client, "NOPEUSDT"))


def test_a_status_other_than_trading_is_read_again_once_a_minute_old_before_it_refuses(
    rsps, make_client, clock,
):
    """GIVEN a futures symbol cached as halted WHEN its rules are asked within a minute, then after it
    THEN the first refuses without a request, the later reads exchangeInfo again and finds it trading."""
    halted = rsps.get(FUTURES + "/fapi/v1/exchangeInfo",
                      json={"symbols": [{**FUT_BTC, "status": "TRADING_HALT"}]})
    client = make_client(Market.FUTURES)
    _invalid("symbol", lambda: get_symbol_rules(client, "BTCUSDT"))
    clock.advance(30)
    _invalid("symbol", lambda: get_symbol_rules(client, "BTCUSDT"))
    assert halted.call_count == 1
    rsps.replace("GET", FUTURES + "/fapi/v1/exchangeInfo", json={"symbols": [FUT_BTC]})
    clock.advance(31)
    assert get_symbol_rules(client, "BTCUSDT").status == "TRADING" and len(rsps.calls) == 2


def test_a_spot_status_is_read_again_for_its_symbol_only(rsps, make_client, clock):
    """GIVEN a spot symbol cached in a BREAK WHEN asked again a minute later THEN exchangeInfo?symbol= is
    read again, never the whole spot document (several MB)."""
    url = SPOT + "/api/v3/exchangeInfo?symbol=BTCUSDT"
    rsps.get(url, json={"symbols": [{**SPOT_BTC, "status": "BREAK"}]})
    client = make_client(Market.SPOT)
    _invalid("symbol", lambda: get_symbol_rules(client, "BTCUSDT"))
    clock.advance(61)
    _invalid("symbol", lambda: get_symbol_rules(client, "BTCUSDT"))
    assert [call.request.url for call in rsps.calls] == [url, url]


def test_spot_rules_come_from_the_per_symbol_exchange_info(rsps, make_client):
    """GIVEN spot WHEN rules are asked
    THEN exchangeInfo?symbol= is used; an unknown symbol is invalid symbol."""
    rsps.get(SPOT + "/api/v3/exchangeInfo?symbol=BTCUSDT", json={"symbols": [SPOT_BTC]})
    rsps.get(
        SPOT + "/api/v3/exchangeInfo?symbol=NOPE", status=400, json={"code": -1121, "msg": "Invalid symbol."}
    )
    client = make_client(Market.SPOT)
    assert get_symbol_rules(client, "BTCUSDT").step_size == D("0.00001")
    assert rsps.calls[0].request.url.endswith("/api/v3/exchangeInfo?symbol=BTCUSDT")
    _invalid("symbol", lambda: get_symbol_rules(client, "NOPE"))


# FUT_BTC with Binance's documented PERCENT_PRICE example (multiplierUp 1.15, multiplierDown 0.85).
BAND = {"filterType": "PERCENT_PRICE", "multiplierUp": "1.1500", "multiplierDown": "0.8500",
        "multiplierDecimal": 4}
FUT_BTC_BAND = {**FUT_BTC, "filters": [*FUT_BTC["filters"], BAND]}


def test_percent_price_is_parsed_for_futures_and_absent_means_no_band():
    """GIVEN futures exchangeInfo with and without PERCENT_PRICE, and a spot one with it WHEN parsed THEN
    only the futures filter gives multipliers; without them no price is ever refused by the band."""
    banded = parse_symbol_rules(FUT_BTC_BAND, Market.FUTURES)
    assert (banded.multiplier_up, banded.multiplier_down) == (D("1.15"), D("0.85"))
    bare = parse_symbol_rules(FUT_BTC, Market.FUTURES)
    assert (bare.multiplier_up, bare.multiplier_down) == (0, 0)
    bare.check_price_band("BUY", D("4000000"), D("60000"))
    bare.check_price_band("SELL", D("600"), D("60000"))
    spot = parse_symbol_rules({**SPOT_BTC, "filters": [BAND]}, Market.SPOT)
    assert (spot.multiplier_up, spot.multiplier_down) == (0, 0)


def test_a_limit_price_is_held_to_its_sides_bound_of_the_band_around_the_mark():
    """GIVEN mark 60000.05 and multipliers 1.15 / 0.85 WHEN a BUY or SELL limit price is checked THEN a BUY
    above 69000.05 (its cap, on the tick) and a SELL below 51000.05 are refused naming price and stating
    the band; the other bound does not bind (a BUY far below, a SELL far above pass), the ends pass."""
    rules = parse_symbol_rules(FUT_BTC_BAND, Market.FUTURES)
    mark = D("60000.05")
    buy = _invalid("price", lambda: rules.check_price_band("BUY", D("69000.1"), mark))
    sell = _invalid("price", lambda: rules.check_price_band("SELL", D("51000"), mark))

    assert buy.message == ("price must be at most 69000 for a BUY on BTCUSDT now: Binance's price band is "
                           "51000.1 to 69000 USDT (0.85 to 1.15 times the mark price 60000.05)")
    assert sell.message.startswith("price must be at least 51000.1 for a SELL on BTCUSDT now: ")
    for side, price in (("BUY", "69000"), ("BUY", "600"), ("SELL", "51000.1"), ("SELL", "4000000")):
        rules.check_price_band(side, D(price), mark)


def test_a_stop_limit_price_is_held_to_both_bounds_around_its_trigger():
    """GIVEN multipliers 1.15 / 0.85 and a trigger of 60000 WHEN a stop-limit's price is checked with both
    bounds THEN a SELL above 69000 and a BUY below 51000 are refused too, naming the trigger price without
    quoting it (the caller typed it)."""
    rules = parse_symbol_rules(FUT_BTC_BAND, Market.FUTURES)
    check = rules.check_price_band
    around = {"against": "trigger price", "both_bounds": True, "typed": True}
    sell = _invalid("price", lambda: check("SELL", D("69000.1"), D("60000"), **around))
    _invalid("price", lambda: check("BUY", D("50999.9"), D("60000"), **around))

    assert sell.message == ("price must be at most 69000 on BTCUSDT now: Binance's price band is 51000 to "
                            "69000 USDT (0.85 to 1.15 times the trigger price)")
    check("BUY", D("51000"), D("60000"), **around)


def test_a_futures_symbols_onboard_date_is_parsed_and_absent_is_zero():
    """GIVEN futures exchangeInfo with onboardDate, one without it, and a spot entry WHEN parsed THEN
    onboard_ms is the listing's epoch ms, else 0 (no known listing: no period is cut)."""
    listed = parse_symbol_rules({**FUT_BTC, "onboardDate": 1569398400000}, Market.FUTURES)
    assert listed.onboard_ms == 1569398400000
    unlisted = {k: v for k, v in FUT_BTC.items() if k != "onboardDate"}
    assert parse_symbol_rules(unlisted, Market.FUTURES).onboard_ms == 0
    assert parse_symbol_rules({**FUT_BTC, "onboardDate": 1569398400000}, Market.SPOT).onboard_ms == 0
