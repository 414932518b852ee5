"""Endpoint helpers: paths, parameters and typed parsing of the answers."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest
from klineo.binance import (
    Candle,
    ErrorCategory,
    KlineoError,
    Market,
    endpoints,
    exchange_info,
    futures_cancel_order,
    futures_new_order,
    futures_query_order,
    klines,
    server_time,
    spot_account,
)

from tests.unit.binance.conftest import FUTURES, SPOT, START, add_time

SERVER_MS = int(START * 1000)
ROW = [
    1700000000000,
    "100.1",
    "101.0",
    "99.5",
    "100.7",
    "12.5",
    1700000059999,
    "1250.0",
    42,
    "6.0",
    "600.0",
    "0",
]


def _params(call) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(call.request.url).query))


def test_klines_are_parsed_into_decimal_candles(rsps, make_client):
    """GIVEN a klines answer WHEN fetched THEN Candle tuples with ints and Decimals come back."""
    rsps.get(FUTURES + "/fapi/v1/klines", json=[ROW])
    (candle,) = klines(make_client(Market.FUTURES), "ethusdt", "1m", limit=2, start_time=1, end_time=2)
    assert candle == Candle(
        1700000000000,
        Decimal("100.1"),
        Decimal("101.0"),
        Decimal("99.5"),
        Decimal("100.7"),
        Decimal("12.5"),
        1700000059999,
    )
    assert _params(rsps.calls[0]) == {
        "symbol": "ETHUSDT",
        "interval": "1m",
        "limit": "2",
        "startTime": "1",
        "endTime": "2",
    }


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"interval": "2m"}, "interval"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"symbol": ""}, "symbol"),
    ],
)
def test_klines_input_is_checked_before_sending(rsps, make_client, kwargs, field):
    """GIVEN a bad interval, limit or symbol WHEN klines are asked
    THEN invalid_request names it; nothing is sent."""
    args = {"symbol": "BTCUSDT", "interval": "1m", "limit": 10, **kwargs}
    with pytest.raises(KlineoError) as caught:
        klines(make_client(Market.SPOT), **args)
    assert caught.value.field == field and not rsps.calls


def test_unreadable_klines_are_upstream_unavailable(rsps, make_client):
    """GIVEN rows that are not klines WHEN parsed THEN upstream_unavailable, not a crash."""
    rsps.get(SPOT + "/api/v3/klines", json=[["x"]])
    with pytest.raises(KlineoError) as caught:
        klines(make_client(Market.SPOT), "BTCUSDT", "1h", limit=1)
    assert caught.value.category is ErrorCategory.UPSTREAM_UNAVAILABLE


def test_spot_account_can_omit_zero_balances(rsps, make_client, creds):
    """GIVEN omit_zero_balances WHEN the spot account is read
    THEN omitZeroBalances=true is signed and sent."""
    add_time(rsps, SPOT, SERVER_MS)
    rsps.get(SPOT + "/api/v3/account", json={"balances": []})
    spot_account(make_client(), creds, omit_zero_balances=True)
    assert _params(rsps.calls[-1])["omitZeroBalances"] == "true"


def test_futures_order_helpers_send_the_client_order_id(rsps, make_client, creds):
    """GIVEN order helpers WHEN used THEN POST/GET/DELETE /fapi/v1/order carry the client order id."""
    add_time(rsps, FUTURES, SERVER_MS, Market.FUTURES)
    rsps.post(FUTURES + "/fapi/v1/order", json={"orderId": 1, "clientOrderId": "klneo_1_ab"})
    rsps.get(FUTURES + "/fapi/v1/order", json={"orderId": 1, "status": "NEW"})
    rsps.delete(FUTURES + "/fapi/v1/order", json={"orderId": 1, "status": "CANCELED"})
    client = make_client(Market.FUTURES)
    futures_new_order(
        client,
        creds,
        {
            "symbol": "btcusdt",
            "side": "BUY",
            "type": "MARKET",
            "quantity": Decimal("0.010"),
            "newClientOrderId": "klneo_1_ab",
        },
    )
    futures_query_order(client, creds, "BTCUSDT", "klneo_1_ab")
    futures_cancel_order(client, creds, "BTCUSDT", orig_client_order_id="klneo_1_ab")
    sent = [(c.request.method, _params(c)) for c in rsps.calls if "/fapi/v1/order" in c.request.url]
    assert sent[0][1]["newClientOrderId"] == "klneo_1_ab" and sent[0][1]["quantity"] == "0.010"
    assert sent[0][1]["symbol"] == "BTCUSDT"
    assert [m for m, _ in sent] == ["POST", "GET", "DELETE"]
    assert all(p.get("origClientOrderId") == "klneo_1_ab" for _, p in sent[1:])


@pytest.mark.parametrize("bad", ["", "x" * 37, "has space", "emoji\u2603"])
def test_invalid_client_order_ids_are_refused_before_sending(rsps, make_client, creds, bad):
    """GIVEN a client order id outside Binance's regex WHEN an order is sent
    THEN invalid_request, nothing sent."""
    with pytest.raises(KlineoError) as caught:
        futures_new_order(make_client(Market.FUTURES), creds, {"symbol": "BTCUSDT", "newClientOrderId": bad})
    assert caught.value.field == "newClientOrderId" and not rsps.calls


def test_endpoints_refuse_the_wrong_market(make_client, creds):
    """GIVEN a spot client WHEN a futures helper is used with it THEN a ValueError (a wiring bug)."""
    with pytest.raises(ValueError, match="futures"):
        endpoints.futures_account(make_client(Market.SPOT), creds)


def test_server_time_and_exchange_info_cache(rsps, make_client, clock):
    """GIVEN time and exchangeInfo WHEN asked twice THEN time is live and exchangeInfo cached per base URL."""
    add_time(rsps, FUTURES, SERVER_MS, Market.FUTURES)
    rsps.get(FUTURES + "/fapi/v1/exchangeInfo", json={"symbols": []})
    client = make_client(Market.FUTURES)
    assert server_time(client) == SERVER_MS
    assert exchange_info(client) is exchange_info(client)
    assert len([c for c in rsps.calls if "exchangeInfo" in c.request.url]) == 1


def test_mark_price_is_a_decimal(rsps, make_client):
    """GIVEN premiumIndex WHEN the mark price is asked THEN a Decimal comes back."""
    rsps.get(FUTURES + "/fapi/v1/premiumIndex", json={"symbol": "BTCUSDT", "markPrice": "60000.10000000"})
    assert endpoints.futures_mark_price(make_client(Market.FUTURES), "BTCUSDT") == Decimal("60000.1")


def test_futures_ticker_price_reads_v2_not_the_deprecated_v1(rsps, make_client):
    """GIVEN /fapi/v2/ticker/price only WHEN the last price is asked THEN v2 is read (v1 is deprecated)."""
    rsps.get(FUTURES + "/fapi/v2/ticker/price", json={"symbol": "BTCUSDT", "price": "60001.5", "time": 1})
    assert endpoints.futures_ticker_price(make_client(Market.FUTURES), "BTCUSDT") == Decimal("60001.5")
    assert [urlsplit(c.request.url).path for c in rsps.calls] == ["/fapi/v2/ticker/price"]
