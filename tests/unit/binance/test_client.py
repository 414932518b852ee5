"""BinanceClient: server-time signing, retry policy, unknown outcomes, usage headers and client caching."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses
from klineo.binance import ErrorCategory, KlineoError, Market, get_client
from klineo.binance.client import FIREWALL_RETRY_AFTER_S, clear_client_cache

from tests.unit.binance.conftest import FUTURES, SENTINEL_SECRET, SPOT, START, add_time

SERVER_MS = int(START * 1000)
ACCOUNT = SPOT + "/api/v3/account"
ORDER = FUTURES + "/fapi/v1/order"


def _query(call) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(call.request.url).query))


def _raw_query(call) -> str:
    return urlsplit(call.request.url).query


def _signed_calls(rsps, path: str) -> list:
    return [c for c in rsps.calls if urlsplit(c.request.url).path == path]


def test_signed_call_uses_binance_server_time_not_local_time(rsps, make_client, creds, clock):
    """GIVEN Binance's clock 30 s ahead of ours WHEN a signed call is made
    THEN its timestamp is server time."""
    add_time(rsps, SPOT, SERVER_MS + 30_000)
    rsps.get(ACCOUNT, json={"balances": []})
    client = make_client()
    client.signed("GET", "/api/v3/account", None, creds)
    (call,) = _signed_calls(rsps, "/api/v3/account")
    assert abs(int(_query(call)["timestamp"]) - (SERVER_MS + 30_000)) <= 1
    assert client.server_time_offset_ms() == pytest.approx(30_000, abs=1)


def test_query_is_percent_encoded_once_and_sent_exactly_as_signed(rsps, make_client, creds):
    """GIVEN params needing encoding WHEN signed THEN the bytes on the wire are the bytes the HMAC covers."""
    add_time(rsps, SPOT, SERVER_MS)
    rsps.get(ACCOUNT, json={})
    make_client().signed("GET", "/api/v3/account", {"symbol": "\u8fd9\u662f456", "note": "a b+c"}, creds)
    (call,) = _signed_calls(rsps, "/api/v3/account")
    raw = _raw_query(call)
    payload, _, sig = raw.rpartition("&signature=")
    assert payload.startswith("symbol=%E8%BF%99%E6%98%AF456&note=a%20b%2Bc&recvWindow=10000&timestamp=")
    assert sig == hmac.new(SENTINEL_SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
    assert call.request.headers["X-MBX-APIKEY"] == creds.api_key


def test_recv_window_defaults_to_10000_and_follows_the_environment(rsps, make_client, creds, monkeypatch):
    """GIVEN no setting, then BINANCE_RECV_WINDOW_MS=5000 WHEN signing
    THEN recvWindow is explicit each time."""
    add_time(rsps, SPOT, SERVER_MS)
    rsps.get(ACCOUNT, json={})
    make_client(recv_window_ms=None).signed("GET", "/api/v3/account", None, creds)
    monkeypatch.setenv("BINANCE_RECV_WINDOW_MS", "5000")
    make_client(recv_window_ms=None).signed("GET", "/api/v3/account", None, creds)
    windows = [_query(c)["recvWindow"] for c in _signed_calls(rsps, "/api/v3/account")]
    assert windows == ["10000", "5000"]


@pytest.mark.parametrize("value", [0, -1, 60001])
def test_recv_window_outside_binance_bounds_is_refused(make_client, value):
    """GIVEN a recvWindow outside (0, 60000] WHEN a client is built THEN it is refused."""
    with pytest.raises(ValueError, match="recv_window_ms"):
        make_client(recv_window_ms=value)


def test_429_honours_retry_after_and_each_retry_is_freshly_signed(rsps, make_client, creds, clock):
    """GIVEN two 429s with Retry-After 3 WHEN called
    THEN it waits 3 s twice, re-signs each time, then succeeds."""
    add_time(rsps, SPOT, SERVER_MS)
    limited = {
        "code": -1003,
        "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE.",
    }
    rsps.get(ACCOUNT, status=429, json=limited, headers={"Retry-After": "3"})
    rsps.get(ACCOUNT, status=429, json=limited, headers={"Retry-After": "3"})
    rsps.get(ACCOUNT, json={"ok": True})
    assert make_client().signed("GET", "/api/v3/account", None, creds) == {"ok": True}
    calls = _signed_calls(rsps, "/api/v3/account")
    assert len(calls) == 3
    assert clock.sleeps == [3.0, 3.0]
    stamps = [int(_query(c)["timestamp"]) for c in calls]
    assert stamps[1] - stamps[0] == 3000 and stamps[2] - stamps[1] == 3000
    assert len({_query(c)["signature"] for c in calls}) == 3


def test_429_without_retry_after_backs_off_1_then_2_seconds_then_fails(rsps, make_client, creds, clock):
    """GIVEN 429s without Retry-After WHEN called
    THEN it waits 1 s then 2 s and raises rate_limit after 3 tries."""
    add_time(rsps, SPOT, SERVER_MS)
    rsps.get(ACCOUNT, status=429, json={"code": -1003, "msg": "Too many requests queued."})
    with pytest.raises(KlineoError) as caught:
        make_client().signed("GET", "/api/v3/account", None, creds)
    assert caught.value.category is ErrorCategory.RATE_LIMIT
    assert caught.value.retry_after is not None
    assert clock.sleeps == [1.0, 2.0]
    assert len(_signed_calls(rsps, "/api/v3/account")) == 3


def test_retry_count_is_configurable(rsps, make_client, creds, clock):
    """GIVEN max_retries=0 WHEN a 429 comes THEN no retry is made."""
    add_time(rsps, SPOT, SERVER_MS)
    rsps.get(ACCOUNT, status=429, json={"code": -1003, "msg": "Too many requests queued."})
    with pytest.raises(KlineoError):
        make_client(max_retries=0).signed("GET", "/api/v3/account", None, creds)
    assert len(_signed_calls(rsps, "/api/v3/account")) == 1 and clock.sleeps == []


def test_long_retry_after_fails_fast_and_blocks_the_host(rsps, make_client, creds, clock):
    """GIVEN a 429 asking to wait 45 s WHEN called
    THEN it raises at once and the next call does not go out."""
    add_time(rsps, SPOT, SERVER_MS)
    rsps.get(
        ACCOUNT, status=429, json={"code": -1003, "msg": "Too many requests."}, headers={"Retry-After": "45"}
    )
    client = make_client()
    with pytest.raises(KlineoError) as caught:
        client.signed("GET", "/api/v3/account", None, creds)
    assert (caught.value.category, caught.value.retry_after) == (ErrorCategory.RATE_LIMIT, 45)
    with pytest.raises(KlineoError) as again:
        client.signed("GET", "/api/v3/account", None, creds)
    assert again.value.category is ErrorCategory.RATE_LIMIT and again.value.retry_after <= 45
    assert len(_signed_calls(rsps, "/api/v3/account")) == 1 and clock.sleeps == []


def test_418_is_never_retried_and_its_ban_holds_back_every_call_until_it_ends(
    rsps, make_client, creds, clock
):
    """GIVEN a 418 with Retry-After 120 WHEN called THEN no retry, no call for 120 s, then calls resume."""
    add_time(rsps, SPOT, SERVER_MS)
    rsps.get(
        ACCOUNT,
        status=418,
        json={"code": -1003, "msg": "Way too much request weight used; IP banned until x."},
        headers={"Retry-After": "120"},
    )
    client = make_client()
    with pytest.raises(KlineoError) as caught:
        client.signed("GET", "/api/v3/account", None, creds)
    assert (caught.value.category, caught.value.status, caught.value.retry_after) == (
        ErrorCategory.IP_BANNED,
        418,
        120,
    )
    clock.advance(60)
    with pytest.raises(KlineoError) as blocked:
        client.public("GET", "/api/v3/time")
    assert blocked.value.category is ErrorCategory.IP_BANNED and blocked.value.retry_after == 60
    assert len(_signed_calls(rsps, "/api/v3/account")) == 1 and clock.sleeps == []
    clock.advance(61)
    rsps.replace(responses.GET, ACCOUNT, json={"ok": True})
    assert client.signed("GET", "/api/v3/account", None, creds) == {"ok": True}


def test_ban_end_is_read_from_the_message_when_no_retry_after(rsps, make_client, creds, limiter):
    """GIVEN -1003 "IP banned until <ms>" without Retry-After WHEN received
    THEN that instant is remembered."""
    add_time(rsps, SPOT, SERVER_MS)
    until = SERVER_MS + 300_000
    rsps.get(
        ACCOUNT, status=418, json={"code": -1003, "msg": f"Way too many requests; IP banned until {until}."}
    )
    with pytest.raises(KlineoError) as caught:
        make_client().signed("GET", "/api/v3/account", None, creds)
    assert caught.value.category is ErrorCategory.IP_BANNED
    assert limiter.blocked_until_ms("spot.binance.test") == until


def test_minus_1021_resyncs_server_time_and_retries_once(rsps, make_client, creds, clock):
    """GIVEN a stale offset and a -1021 WHEN called
    THEN time is resynced and the call retried once, freshly."""
    rsps.get(SPOT + "/api/v3/time", json={"serverTime": SERVER_MS})
    rsps.get(SPOT + "/api/v3/time", json={"serverTime": SERVER_MS + 5_000})
    rsps.get(
        ACCOUNT,
        status=400,
        json={"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."},
    )
    rsps.get(ACCOUNT, json={"ok": True})
    assert make_client().signed("GET", "/api/v3/account", None, creds) == {"ok": True}
    calls = _signed_calls(rsps, "/api/v3/account")
    assert len(_signed_calls(rsps, "/api/v3/time")) == 2
    assert int(_query(calls[1])["timestamp"]) - int(_query(calls[0])["timestamp"]) == 5_000
    assert clock.sleeps == []


def test_minus_1021_twice_raises_timestamp_after_a_single_retry(rsps, make_client, creds):
    """GIVEN -1021 on every try WHEN called
    THEN exactly one resynced retry, then a timestamp error saying retry."""
    add_time(rsps, SPOT, SERVER_MS)
    rsps.get(
        ACCOUNT,
        status=400,
        json={"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."},
    )
    with pytest.raises(KlineoError) as caught:
        make_client().signed("GET", "/api/v3/account", None, creds)
    assert caught.value.category is ErrorCategory.TIMESTAMP and "retry" in caught.value.message
    assert len(_signed_calls(rsps, "/api/v3/account")) == 2


def test_minus_1021_on_an_order_is_retried_because_binance_rejected_it(rsps, make_client, creds):
    """GIVEN an order answered -1021 WHEN sent
    THEN it is resent once after resync (a -1021 order never existed)."""
    add_time(rsps, FUTURES, SERVER_MS, Market.FUTURES)
    rsps.post(
        ORDER,
        status=400,
        json={"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."},
    )
    rsps.post(ORDER, json={"orderId": 1, "status": "NEW"})
    result = make_client(Market.FUTURES).signed("POST", "/fapi/v1/order", {"symbol": "BTCUSDT"}, creds)
    assert result["orderId"] == 1


@pytest.mark.parametrize(
    "failure",
    [
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ConnectionError("Connection aborted."),
    ],
)
def test_order_is_never_resent_after_a_read_timeout_or_lost_connection(
    rsps, make_client, creds, clock, failure
):
    """GIVEN an order whose answer is lost WHEN sent THEN unknown_outcome is raised and nothing is re-sent."""
    add_time(rsps, FUTURES, SERVER_MS, Market.FUTURES)
    rsps.post(ORDER, body=failure)
    with pytest.raises(KlineoError) as caught:
        make_client(Market.FUTURES).signed("POST", "/fapi/v1/order", {"symbol": "BTCUSDT"}, creds)
    assert caught.value.category is ErrorCategory.UNKNOWN_OUTCOME and not caught.value.retryable
    assert len(_signed_calls(rsps, "/fapi/v1/order")) == 1 and clock.sleeps == []


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, {"code": -1000, "msg": "Unknown error, please check your request or try again later."}),
        (500, None),
        (502, "<html>bad gateway</html>"),
        (408, None),
        (
            503,
            {"code": -1007, "msg": "Timeout waiting for response from backend server. Send status unknown."},
        ),
        (400, {"code": -1000, "msg": "An unknown error occurred while processing the request."}),
        (500, {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}),
        (503, {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}),
        (400, {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}),
        (504, {"msg": "Gateway Timeout"}),
        (503, {"msg": "Internal error; unable to process your request. Please try again."}),
    ],
)
def test_order_with_unknown_execution_status_raises_unknown_outcome_without_resending(
    rsps, make_client, creds, clock, status, body
):
    """GIVEN an order answered 5xx/408/-1000/-1007 WHEN sent
    THEN unknown_outcome, and it is sent only once."""
    add_time(rsps, FUTURES, SERVER_MS, Market.FUTURES)
    if isinstance(body, dict):
        rsps.post(ORDER, status=status, json=body)
    else:
        rsps.post(ORDER, status=status, body=body or "")
    with pytest.raises(KlineoError) as caught:
        make_client(Market.FUTURES).signed("POST", "/fapi/v1/order", {"symbol": "BTCUSDT"}, creds)
    assert caught.value.category is ErrorCategory.UNKNOWN_OUTCOME
    assert len(_signed_calls(rsps, "/fapi/v1/order")) == 1 and clock.sleeps == []


@pytest.mark.parametrize(
    "body",
    [
        {
            "code": -1008,
            "msg": "Request throttled by system-level protection. Reduce-only/close-position orders are "
            "exempt. Please try again.",
        },
        {"msg": "Service Unavailable."},
        {"code": -1001, "msg": "Service Unavailable."},
    ],
)
def test_order_answered_with_a_definite_503_failure_is_upstream_unavailable(rsps, make_client, creds, body):
    """GIVEN an order answered 503 throttled / Service Unavailable WHEN sent
    THEN upstream_unavailable, sent once."""
    add_time(rsps, FUTURES, SERVER_MS, Market.FUTURES)
    rsps.post(ORDER, status=503, json=body)
    with pytest.raises(KlineoError) as caught:
        make_client(Market.FUTURES).signed("POST", "/fapi/v1/order", {"symbol": "BTCUSDT"}, creds)
    assert caught.value.category is ErrorCategory.UPSTREAM_UNAVAILABLE and caught.value.retryable
    assert len(_signed_calls(rsps, "/fapi/v1/order")) == 1


def test_order_2xx_with_an_unreadable_body_is_unknown_outcome(rsps, make_client, creds):
    """GIVEN an order answered 200 with a truncated body WHEN sent
    THEN unknown_outcome (it may well exist)."""
    add_time(rsps, FUTURES, SERVER_MS, Market.FUTURES)
    rsps.post(ORDER, status=200, body='{"orderId": 12')
    with pytest.raises(KlineoError) as caught:
        make_client(Market.FUTURES).signed("POST", "/fapi/v1/order", {"symbol": "BTCUSDT"}, creds)
    assert caught.value.category is ErrorCategory.UNKNOWN_OUTCOME


def test_connect_timeout_is_retried_even_for_an_order_because_nothing_was_sent(
    rsps, make_client, creds, clock
):
    """GIVEN a connect timeout WHEN an order is sent
    THEN it is retried (1 s back-off) with a fresh signature."""
    add_time(rsps, FUTURES, SERVER_MS, Market.FUTURES)
    rsps.post(ORDER, body=requests.exceptions.ConnectTimeout("connect timed out"))
    rsps.post(ORDER, json={"orderId": 7})
    assert (
        make_client(Market.FUTURES).signed("POST", "/fapi/v1/order", {"symbol": "BTCUSDT"}, creds)["orderId"]
        == 7
    )
    calls = _signed_calls(rsps, "/fapi/v1/order")
    assert clock.sleeps == [1.0] and _query(calls[0])["signature"] != _query(calls[1])["signature"]


@pytest.mark.parametrize(
    ("first", "kwargs"),
    [
        ("status", {"status": 502, "body": "<html>Bad gateway</html>"}),
        ("status", {"status": 503, "json": {"msg": "Service Unavailable."}}),
        ("timeout", {"body": requests.exceptions.ReadTimeout("read timed out")}),
    ],
)
def test_reads_are_retried_after_5xx_and_timeouts(rsps, make_client, creds, clock, first, kwargs):
    """GIVEN a GET failing once with 5xx or a read timeout WHEN called
    THEN it is retried after 1 s and succeeds."""
    add_time(rsps, SPOT, SERVER_MS)
    rsps.get(ACCOUNT, **kwargs)
    rsps.get(ACCOUNT, json={"ok": True})
    assert make_client().signed("GET", "/api/v3/account", None, creds) == {"ok": True}
    assert clock.sleeps == [1.0]


def test_read_failing_every_time_ends_as_upstream_unavailable(rsps, make_client, creds, clock):
    """GIVEN a GET answered 500 every time WHEN called
    THEN 3 tries, then upstream_unavailable (never unknown)."""
    add_time(rsps, SPOT, SERVER_MS)
    rsps.get(ACCOUNT, status=500, body="")
    with pytest.raises(KlineoError) as caught:
        make_client().signed("GET", "/api/v3/account", None, creds)
    assert caught.value.category is ErrorCategory.UPSTREAM_UNAVAILABLE
    assert len(_signed_calls(rsps, "/api/v3/account")) == 3 and clock.sleeps == [1.0, 2.0]


def test_network_failure_of_a_read_is_classified_network(rsps, make_client, creds):
    """GIVEN a host that cannot be reached WHEN read THEN network after the retries."""
    add_time(rsps, SPOT, SERVER_MS)
    rsps.get(ACCOUNT, body=requests.exceptions.ConnectTimeout("connect timed out"))
    with pytest.raises(KlineoError) as caught:
        make_client().signed("GET", "/api/v3/account", None, creds)
    assert caught.value.category is ErrorCategory.NETWORK and caught.value.retryable


def test_waf_html_403_is_classified_without_raising_anything_else(rsps, make_client):
    """GIVEN a 403 HTML page from the WAF WHEN a public call gets it
    THEN a rate_limit KlineoError, not a crash."""
    rsps.get(SPOT + "/api/v3/klines", status=403, body="<html><body>Request blocked</body></html>")
    with pytest.raises(KlineoError) as caught:
        make_client().public("GET", "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"})
    assert caught.value.category is ErrorCategory.RATE_LIMIT and caught.value.status == 403
    assert caught.value.retry_after == FIREWALL_RETRY_AFTER_S


def test_firewall_403_on_an_order_is_rate_limit_with_a_retry_after(rsps, make_client, creds, clock):
    """GIVEN Binance's firewall answering an order 403 with no Retry-After WHEN sent
    THEN rate_limit with a Retry-After (a 403 is refused before the order is processed), sent once."""
    add_time(rsps, FUTURES, SERVER_MS, Market.FUTURES)
    rsps.post(ORDER, status=403, body="<html><body>Request blocked</body></html>")
    with pytest.raises(KlineoError) as caught:
        make_client(Market.FUTURES).signed("POST", "/fapi/v1/order", {"symbol": "BTCUSDT"}, creds)
    assert caught.value.category is ErrorCategory.RATE_LIMIT and caught.value.status == 403
    assert caught.value.retry_after == FIREWALL_RETRY_AFTER_S
    assert len(_signed_calls(rsps, "/fapi/v1/order")) == 1


def test_binance_rejection_carries_code_status_and_field(rsps, make_client, creds):
    """GIVEN -1102 naming a parameter WHEN returned THEN the error has status, code and field, no retry."""
    add_time(rsps, FUTURES, SERVER_MS, Market.FUTURES)
    rsps.post(ORDER, status=400, json={"code": -1102, "msg": "Mandatory parameter 'quantity' was not sent."})
    with pytest.raises(KlineoError) as caught:
        make_client(Market.FUTURES).signed("POST", "/fapi/v1/order", {"symbol": "BTCUSDT"}, creds)
    err = caught.value
    assert (err.category, err.status, err.code, err.field) == (
        ErrorCategory.INVALID_REQUEST,
        400,
        -1102,
        "quantity",
    )
    assert len(_signed_calls(rsps, "/fapi/v1/order")) == 1


def test_usage_headers_are_read_from_every_response(rsps, make_client, creds):
    """GIVEN weight and order-count headers WHEN a call returns THEN client.usage exposes them."""
    add_time(rsps, FUTURES, SERVER_MS, Market.FUTURES)
    rsps.post(
        ORDER,
        json={"orderId": 1},
        headers={"X-MBX-USED-WEIGHT-1M": "17", "X-MBX-ORDER-COUNT-10S": "3", "X-MBX-ORDER-COUNT-1M": "9"},
    )
    client = make_client(Market.FUTURES)
    client.signed("POST", "/fapi/v1/order", {"symbol": "BTCUSDT"}, creds)
    assert client.usage == {"x-mbx-used-weight-1m": 17, "x-mbx-order-count-10s": 3, "x-mbx-order-count-1m": 9}


def test_time_offset_is_kept_then_refreshed_when_older_than_the_bound(rsps, make_client, creds, clock):
    """GIVEN a synced client WHEN calls follow within 300 s and then after
    THEN time is fetched once, then again."""
    add_time(rsps, SPOT, SERVER_MS)
    rsps.get(ACCOUNT, json={})
    client = make_client()
    for _ in range(3):
        client.signed("GET", "/api/v3/account", None, creds)
        clock.advance(10)
    assert len(_signed_calls(rsps, "/api/v3/time")) == 1
    clock.advance(300)
    client.signed("GET", "/api/v3/account", None, creds)
    assert len(_signed_calls(rsps, "/api/v3/time")) == 2


def test_public_calls_send_no_api_key_and_no_signature(rsps, make_client):
    """GIVEN a public endpoint WHEN called THEN no key header, timestamp or signature is sent."""
    rsps.get(SPOT + "/api/v3/klines", json=[])
    make_client().public("GET", "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"})
    (call,) = rsps.calls
    assert "X-MBX-APIKEY" not in call.request.headers
    assert _raw_query(call) == "symbol=BTCUSDT&interval=1m"


def test_deadline_stops_retrying_before_the_lambda_would_time_out(rsps, make_client, creds, clock):
    """GIVEN a 4 s deadline and 5xx answers WHEN a read is retried THEN no back-off crosses the deadline."""
    add_time(rsps, SPOT, SERVER_MS)
    rsps.get(ACCOUNT, status=500, body="")
    with pytest.raises(KlineoError):
        make_client(deadline_s=2.5).signed("GET", "/api/v3/account", None, creds)
    assert clock.sleeps == [1.0]


def test_get_client_is_cached_per_market_and_environment_and_follows_overrides(monkeypatch):
    """GIVEN get_client WHEN asked twice THEN the same client; after a URL override
    THEN a client for the new URL."""
    first = get_client("spot", "production")
    assert get_client(Market.SPOT, "production") is first
    assert first.base_url == "https://api.binance.com"
    monkeypatch.setenv("BINANCE_SPOT_URL", "http://127.0.0.1:9/")
    moved = get_client("spot", "production")
    assert moved is not first and moved.base_url == "http://127.0.0.1:9"
    futures_testnet = get_client("futures", "testnet")
    assert futures_testnet.base_url == "https://demo-fapi.binance.com"
    assert futures_testnet._session is get_client("futures", "demo")._session  # one Session per base URL
    clear_client_cache()
    assert get_client("futures", "testnet") is not futures_testnet


def test_signed_requires_credentials_object(make_client):
    """GIVEN a dict instead of Credentials WHEN signing
    THEN a TypeError (a programming error, caught in tests)."""
    with pytest.raises(TypeError):
        make_client().signed("GET", "/api/v3/account", None, {"api_key": "k", "secret": "s"})


def test_json_answers_are_returned_parsed(rsps, make_client):
    """GIVEN a JSON list WHEN a public call returns it THEN it is parsed as is."""
    rsps.get(SPOT + "/api/v3/ping", body=json.dumps([1, {"a": "b"}]))
    assert make_client().public("GET", "/api/v3/ping") == [1, {"a": "b"}]
