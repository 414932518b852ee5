"""Request weight per IP per minute, weight and order-count headers, 429 then 418."""

from __future__ import annotations

import time

import requests

from local.binance_sim.testing import SignedClient


def test_every_response_carries_used_weight(binance_sim):
    """X-MBX-USED-WEIGHT-1M is on successes and errors, spot and futures, counted separately."""
    # WHEN spot exchangeInfo (20), a spot error, and futures time (1) are called
    info = requests.get(f"{binance_sim.url}/api/v3/exchangeInfo", timeout=5)
    error = requests.get(
        f"{binance_sim.url}/api/v3/klines", params={"symbol": "NOPE", "interval": "1m"}, timeout=5
    )
    futures = requests.get(f"{binance_sim.url}/fapi/v1/time", timeout=5)
    # THEN each carries the running total of its own API
    assert info.headers["X-MBX-USED-WEIGHT-1M"] == "20"
    assert error.status_code == 400 and error.headers["X-MBX-USED-WEIGHT-1M"] == "22"
    assert futures.headers["X-MBX-USED-WEIGHT-1M"] == "1"


def _two_orders_inside_one_window(simulator) -> tuple[requests.Response, requests.Response] | None:
    """Two MARKET orders; None when a 10 s counting window (so maybe a minute's) closed between them."""
    client = SignedClient(simulator.url, simulator.account("futures-full"))
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002"}
    window_before = time.time() // 10
    first = client.signed("POST", "/fapi/v1/order", order)
    second = client.signed("POST", "/fapi/v1/order", order)
    return (first, second) if time.time() // 10 == window_before else None


def test_futures_order_costs_no_ip_weight_but_counts_orders(binance_sim_factory):
    """POST /fapi/v1/order adds 0 weight and returns X-MBX-ORDER-COUNT-10S/-1M."""
    # GIVEN the full-rights key on a fresh simulator
    # WHEN two market orders are placed inside one counting window (a pair that straddles a
    # window's edge is counted by Binance in two windows, so it is placed again on a new simulator)
    pair = None
    while pair is None:
        pair = _two_orders_inside_one_window(binance_sim_factory())
    first, second = pair
    # THEN weight stays 0 and the order counters go 1, 2
    assert first.headers["X-MBX-USED-WEIGHT-1M"] == "0"
    assert (first.headers["X-MBX-ORDER-COUNT-10S"], first.headers["X-MBX-ORDER-COUNT-1M"]) == ("1", "1")
    assert (second.headers["X-MBX-ORDER-COUNT-10S"], second.headers["X-MBX-ORDER-COUNT-1M"]) == ("2", "2")


def test_weight_over_the_limit_is_429_with_retry_after(binance_sim_factory):
    """Past the per-minute weight limit the answer is 429 -1003 with Retry-After seconds."""
    # GIVEN a futures weight limit of 3
    simulator = binance_sim_factory(futures_weight_limit=3)
    # WHEN four weight-1 calls are made
    answers = [requests.get(f"{simulator.url}/fapi/v1/time", timeout=5) for _ in range(4)]
    # THEN the fourth is 429 with Retry-After within the minute
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert limited.json()["code"] == -1003
    assert limited.json()["msg"].startswith("Too many requests; current limit is 3 requests per minute.")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60


def test_calls_during_a_429_window_get_banned_with_418(binance_sim_factory):
    """Ignoring 429s leads to 418 -1003 'banned until' with Retry-After = ban length."""
    # GIVEN a spot limit of 2, a ban after 1 ignored 429, bans of 7 s
    simulator = binance_sim_factory(spot_weight_limit=2, rejections_before_ban=1, ban_seconds=7)
    # WHEN calls keep coming
    answers = [requests.get(f"{simulator.url}/api/v3/ping", timeout=5) for _ in range(5)]
    # THEN 200, 200, 429, then 418 bans
    assert [a.status_code for a in answers] == [200, 200, 429, 418, 418]
    banned = answers[3]
    assert banned.json()["code"] == -1003 and "IP banned until" in banned.json()["msg"]
    assert banned.headers["Retry-After"] == "7"
    assert 1 <= int(answers[4].headers["Retry-After"]) <= 7


def test_spot_and_futures_limits_are_separate(binance_sim_factory):
    """Exhausting futures weight leaves spot usable."""
    # GIVEN a futures limit of 1
    simulator = binance_sim_factory(futures_weight_limit=1)
    # WHEN futures is exhausted and spot is called
    requests.get(f"{simulator.url}/fapi/v1/ping", timeout=5)
    futures = requests.get(f"{simulator.url}/fapi/v1/ping", timeout=5)
    spot = requests.get(f"{simulator.url}/api/v3/ping", timeout=5)
    # THEN futures is 429 and spot 200
    assert (futures.status_code, spot.status_code) == (429, 200)


def test_limits_can_be_lowered_at_runtime(binance_sim):
    """configure() (and POST /__sim__/config) change the weight limit of a running simulator."""
    # GIVEN a running simulator whose spot limit is lowered over HTTP to 20
    requests.post(f"{binance_sim.url}/__sim__/config", json={"spot_weight_limit": 20}, timeout=5)
    # WHEN exchangeInfo (20) is called twice
    first = requests.get(f"{binance_sim.url}/api/v3/exchangeInfo", timeout=5)
    second = requests.get(f"{binance_sim.url}/api/v3/exchangeInfo", timeout=5)
    # THEN the second is over the limit
    assert (first.status_code, second.status_code) == (200, 429)
    assert binance_sim.configure(spot_weight_limit=6000)["spot_weight_limit"] == 6000


def test_order_count_limit_is_429_minus_1015(binance_sim_factory):
    """Too many orders per 10 s for one account: 429 -1015."""
    # GIVEN an order limit of 1 per 10 s
    simulator = binance_sim_factory(futures_orders_10s_limit=1)
    client = SignedClient(simulator.url, simulator.account("futures-full"))
    # WHEN two orders are sent
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002"}
    first, second = (
        client.signed("POST", "/fapi/v1/order", params),
        client.signed("POST", "/fapi/v1/order", params),
    )
    # THEN the second is refused
    assert first.status_code == 200
    assert second.status_code == 429 and second.json()["code"] == -1015
