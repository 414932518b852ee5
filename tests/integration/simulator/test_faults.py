"""Fault injection through the Python API and the /__sim__ HTTP control interface."""

from __future__ import annotations

import time

import pytest
import requests

from local.binance_sim.testing import SignedClient
from tests.helpers import wait_until

ORDER = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002"}


@pytest.fixture
def full(binance_sim):
    return SignedClient(binance_sim.url, binance_sim.account("futures-full"))


@pytest.mark.parametrize(
    ("kind", "status", "code", "msg_start"),
    [
        ("http_429", 429, -1003, "Too many requests"),
        ("http_418", 418, -1003, "Way too many requests; IP banned until"),
        ("http_500", 500, -1000, "An unknown error occured"),
        ("http_503_unknown", 503, -1000, "Unknown error, please check your request or try again later."),
        ("http_503_unavailable", 503, -1001, "Service Unavailable."),
        (
            "http_503_internal",
            503,
            -1001,
            "Internal error; unable to process your request. Please try again.",
        ),
        ("http_503_throttled", 503, -1008, "Request throttled by system-level protection."),
        ("timeout_1007", 408, -1007, "Timeout waiting for response from backend server."),
        ("http_401_invalid_key", 401, -2015, "Invalid API-key, IP, or permissions for action"),
        ("http_401_key_format", 401, -2014, "API-key format invalid."),
    ],
)
def test_answering_faults_hit_only_the_next_matching_requests(binance_sim, kind, status, code, msg_start):
    """A fault armed for 1 matching request answers it once, then the API is normal again."""
    # GIVEN one fault on GET /fapi/v1/time
    binance_sim.faults.add(kind, count=1, method="GET", path="/fapi/v1/time")
    # WHEN an unmatched call, then the matched one twice, are made
    other = requests.get(f"{binance_sim.url}/api/v3/time", timeout=5)
    faulted = requests.get(f"{binance_sim.url}/fapi/v1/time", timeout=5)
    normal = requests.get(f"{binance_sim.url}/fapi/v1/time", timeout=5)
    # THEN only the first matching call misbehaves
    assert other.status_code == 200 and normal.status_code == 200
    assert faulted.status_code == status
    assert faulted.json()["code"] == code and faulted.json()["msg"].startswith(msg_start)
    if status in (429, 418):
        assert faulted.headers["Retry-After"] == "1"


def test_waf_403_is_an_html_page(binance_sim):
    """waf_403 answers 403 with an HTML body, not JSON."""
    # GIVEN a WAF block on every /api path
    binance_sim.faults.add("waf_403", path="/api/*")
    # WHEN spot time is read
    response = requests.get(f"{binance_sim.url}/api/v3/time", timeout=5)
    # THEN 403 HTML
    assert response.status_code == 403
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Request blocked" in response.text


def test_503_unknown_executes_the_order(full, binance_sim):
    """An 'unknown outcome' 503 on POST order still places the order (query proves it)."""
    # GIVEN a 503-unknown on the next order
    binance_sim.faults.add("http_503_unknown", method="POST", path="/fapi/v1/order")
    # WHEN an order with a client id is sent
    response = full.signed("POST", "/fapi/v1/order", {**ORDER, "newClientOrderId": "unknown-1"})
    # THEN the answer is 503 but the order exists
    assert response.status_code == 503
    found = full.signed("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "unknown-1"})
    assert found.status_code == 200 and found.json()["status"] == "FILLED"


def test_503_unavailable_does_not_execute(full, binance_sim):
    """A 'failed' 503 leaves no order behind."""
    # GIVEN a service-unavailable on the next order
    binance_sim.faults.add("http_503_unavailable", method="POST", path="/fapi/v1/order")
    # WHEN an order is sent
    full.signed("POST", "/fapi/v1/order", {**ORDER, "newClientOrderId": "failed-1"})
    # THEN no such order exists
    found = full.signed("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "failed-1"})
    assert found.json()["code"] == -2013


def test_weight_spent_raises_the_used_weight_the_answer_reports_and_still_answers(full, binance_sim):
    """weight_spent counts weight spent by others just before the request, which answers as usual."""
    # GIVEN 1000 weight spent by others just before the second time request
    binance_sim.faults.add("weight_spent", method="GET", path="/fapi/v1/time", after=1, weight=1000)
    first = full.public("GET", "/fapi/v1/time")
    # WHEN the second is sent
    second = full.public("GET", "/fapi/v1/time")
    # THEN it answers, its used weight 1000 more than the first's and its own
    used = [int(answer.headers["X-MBX-USED-WEIGHT-1M"]) for answer in (first, second)]
    assert second.status_code == 200 and used[1] == used[0] + 1000 + 1


def test_delay_before_times_the_client_out_without_executing_in_time(full, binance_sim):
    """delay_before sleeps before executing: the client times out first."""
    # GIVEN a 1.5 s delay before the next order executes
    binance_sim.faults.add("delay_before", method="POST", path="/fapi/v1/order", delay_ms=1500)
    # WHEN the client waits only 0.5 s
    with pytest.raises(requests.exceptions.ReadTimeout):
        full.signed("POST", "/fapi/v1/order", {**ORDER, "newClientOrderId": "late-1"}, timeout=0.5)
    # THEN right after the timeout the order does not exist yet, and it does once the delay has passed
    early = full.signed("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "late-1"})
    assert early.json()["code"] == -2013
    def executed() -> bool:
        query = {"symbol": "BTCUSDT", "origClientOrderId": "late-1"}
        return full.signed("GET", "/fapi/v1/order", query).status_code == 200

    assert wait_until(executed, timeout_s=5.0)


def test_delay_after_loses_the_answer_but_the_order_exists(full, binance_sim):
    """delay_after executes first: the client times out, yet the order is there."""
    # GIVEN a 1 s delay after the next order executes
    binance_sim.faults.add("delay_after", method="POST", path="/fapi/v1/order", delay_ms=1000)
    # WHEN the client waits only 0.3 s
    with pytest.raises(requests.exceptions.ReadTimeout):
        full.signed("POST", "/fapi/v1/order", {**ORDER, "newClientOrderId": "lost-1"}, timeout=0.3)
    # THEN a lookup by client id finds the order
    found = full.signed("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "lost-1"})
    assert found.status_code == 200 and found.json()["status"] == "FILLED"


def test_drop_connection_closes_without_answer_and_without_executing(full, binance_sim):
    """drop_connection closes the socket unanswered; the order is not placed."""
    # GIVEN a dropped connection on the next order
    binance_sim.faults.add("drop_connection", method="POST", path="/fapi/v1/order")
    # WHEN the order is sent
    with pytest.raises(requests.exceptions.ConnectionError):
        full.signed("POST", "/fapi/v1/order", {**ORDER, "newClientOrderId": "dropped-1"})
    # THEN nothing was placed
    found = full.signed("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "dropped-1"})
    assert found.json()["code"] == -2013


def test_faults_count_and_environment_matching(binance_sim):
    """count=N hits N requests; env restricts a fault to one environment."""
    # GIVEN two 500s on testnet paths only
    binance_sim.faults.add("http_500", count=2, path="/fapi/*", env="testnet")
    # WHEN production and testnet futures time are called
    production = requests.get(f"{binance_sim.url}/fapi/v1/time", timeout=5)
    testnet = [
        requests.get(f"{binance_sim.testnet_url}/fapi/v1/time", timeout=5).status_code for _ in range(3)
    ]
    # THEN production is untouched and the testnet sees exactly two 500s
    assert production.status_code == 200
    assert testnet == [500, 500, 200]
    assert binance_sim.faults.pending() == []


def test_a_fault_armed_after_n_requests_lets_those_through_first(binance_sim):
    """after=N answers the first N matching requests normally, then misbehaves for `count` of them."""
    # GIVEN a 429 armed after one request on futures time
    binance_sim.faults.add("http_429", count=1, after=1, path="/fapi/v1/time", retry_after_s=30)
    # WHEN futures time is read three times
    statuses = [requests.get(f"{binance_sim.url}/fapi/v1/time", timeout=5) for _ in range(3)]
    # THEN only the second is refused, with its Retry-After
    assert [r.status_code for r in statuses] == [200, 429, 200]
    assert statuses[1].headers["Retry-After"] == "30"
    assert binance_sim.faults.pending() == []


def test_http_control_interface_arms_faults_skews_clock_and_resets(binance_sim, full):
    """POST /__sim__/faults, /__sim__/clock, /__sim__/reset and GET /__sim__/accounts work over HTTP."""
    control = f"{binance_sim.url}/__sim__"
    # GIVEN a fault armed over HTTP
    armed = requests.post(
        f"{control}/faults",
        json={"kind": "http_503_throttled", "count": 1, "match": {"method": "GET", "path": "/api/v3/ping"}},
        timeout=5,
    )
    listed = requests.get(f"{control}/faults", timeout=5).json()["faults"]
    # WHEN ping is called, the clock skewed, and the simulator reset
    throttled = requests.get(f"{binance_sim.url}/api/v3/ping", timeout=5)
    requests.post(f"{control}/clock", json={"skew_ms": -20000}, timeout=5)
    skewed = requests.get(f"{binance_sim.url}/api/v3/time", timeout=5).json()["serverTime"]
    full.signed("POST", "/fapi/v1/order", ORDER)
    requests.post(f"{control}/reset", timeout=5)
    accounts = requests.get(f"{control}/accounts", timeout=5).json()["accounts"]
    # THEN each took effect
    assert armed.status_code == 200 and listed[0]["kind"] == "http_503_throttled"
    assert throttled.status_code == 503 and throttled.json()["code"] == -1008
    assert skewed < time.time() * 1000 - 19000
    assert binance_sim.journal == []  # reset cleared the journal
    assert {a["id"] for a in accounts} >= {
        "futures-full",
        "spot-only",
        "read-only",
        "ip-restricted",
        "ed25519-futures",
        "rsa-futures",
        "testnet-futures",
    }
    assert all("secret" not in a for a in accounts)


def test_unknown_fault_kind_is_refused(binance_sim):
    """Arming an unknown kind fails loudly (ValueError, or 400 over HTTP)."""
    # WHEN an unknown kind is armed both ways
    with pytest.raises(ValueError):
        binance_sim.faults.add("http_999")
    response = requests.post(f"{binance_sim.url}/__sim__/faults", json={"kind": "http_999"}, timeout=5)
    # THEN both refuse
    assert response.status_code == 400


def test_added_latency_delays_every_api_call(binance_sim_factory):
    """latency_ms adds a delay to each Binance-API request (not to control calls)."""
    # GIVEN 50 ms latency
    simulator = binance_sim_factory(latency_ms=50)
    # WHEN ping is timed
    started = time.perf_counter()
    requests.get(f"{simulator.url}/api/v3/ping", timeout=5)
    elapsed = time.perf_counter() - started
    # THEN it took at least 50 ms
    assert elapsed >= 0.05
