"""The Binance layer against the local simulator: signatures, server time, faults, limits and filters."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from klineo.binance import (
    ErrorCategory,
    KlineoError,
    Market,
    RateLimiter,
    call_deadline,
    endpoints,
    get_client,
    get_symbol_rules,
)
from klineo.binance import ratelimit as ratelimit_module

from tests.integration.binance.conftest import creds_for

ORDER_PATH = "/fapi/v1/order"


def _posts(sim, settle_s: float = 1.0) -> list:
    """The order POSTs the simulator journaled; a dropped connection is journaled just after the drop."""
    deadline = time.monotonic() + settle_s
    while True:
        posts = [r for r in sim.journal if r.method == "POST" and r.path == ORDER_PATH]
        if posts or time.monotonic() > deadline:
            return posts
        time.sleep(0.01)


@pytest.mark.parametrize("account_id", ["futures-full", "ed25519-futures", "rsa-futures"])
def test_every_key_type_signs_requests_the_simulator_accepts(binance_sim, client_for, account_id):
    """GIVEN HMAC, Ed25519 and RSA demo keys WHEN spot and futures accounts are read THEN both succeed."""
    creds = creds_for(binance_sim, account_id)
    spot = endpoints.spot_account(client_for(Market.SPOT), creds, omit_zero_balances=True)
    futures = endpoints.futures_account(client_for(Market.FUTURES), creds)
    assert "balances" in spot and "assets" in futures


@pytest.mark.parametrize("skew_ms", [30_000, -5_000])
def test_signed_calls_use_server_time_when_the_server_clock_is_skewed(binance_sim, client_for, skew_ms):
    """GIVEN the server clock 30 s ahead / 5 s behind WHEN a signed call is made THEN it passes first time."""
    binance_sim.set_clock_skew_ms(skew_ms)
    client = client_for(Market.FUTURES)
    endpoints.futures_balance(client, creds_for(binance_sim, "futures-full"))
    assert client.server_time_offset_ms() == pytest.approx(skew_ms, abs=1000)
    statuses = [(r.path, r.status, r.code) for r in binance_sim.journal]
    assert statuses == [("/fapi/v1/time", 200, None), ("/fapi/v3/balance", 200, None)]


def test_skew_appearing_after_sync_is_healed_by_one_resync(binance_sim, client_for):
    """GIVEN a synced client WHEN the server clock jumps 20 s THEN -1021, one resync, one retry, success."""
    client = client_for(Market.SPOT)
    creds = creds_for(binance_sim, "spot-only")
    endpoints.spot_account(client, creds)
    binance_sim.set_clock_skew_ms(20_000)
    endpoints.spot_account(client, creds)
    codes = [(r.path, r.code) for r in binance_sim.journal]
    assert codes == [
        ("/api/v3/time", None),
        ("/api/v3/account", None),
        ("/api/v3/account", -1021),
        ("/api/v3/time", None),
        ("/api/v3/account", None),
    ]


def test_lost_order_answer_is_unknown_outcome_and_the_order_is_found_by_its_client_id(
    binance_sim, client_for
):
    """GIVEN the order's answer is lost (executed, then too slow) WHEN sent THEN unknown_outcome, one POST,
    and a query by origClientOrderId finds the order."""
    creds = creds_for(binance_sim, "futures-full")
    client = client_for(Market.FUTURES, read_timeout=0.5)
    binance_sim.faults.add("delay_after", method="POST", path=ORDER_PATH, delay_ms=1500)
    order = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "MARKET",
        "quantity": "0.002",
        "newClientOrderId": "klneo_it_lost_1",
    }
    with pytest.raises(KlineoError) as caught:
        endpoints.futures_new_order(client, creds, order)
    assert caught.value.category is ErrorCategory.UNKNOWN_OUTCOME
    assert len(_posts(binance_sim)) == 1
    found = endpoints.futures_query_order(client, creds, "BTCUSDT", "klneo_it_lost_1")
    assert found["clientOrderId"] == "klneo_it_lost_1"


@pytest.mark.parametrize("kind", ["http_503_unknown", "timeout_1007", "http_500", "drop_connection"])
def test_order_faults_with_unclear_outcome_are_never_resent(binance_sim, client_for, kind):
    """GIVEN a fault that leaves an order's outcome unclear WHEN sent THEN unknown_outcome after one POST."""
    creds = creds_for(binance_sim, "futures-full")
    binance_sim.faults.add(kind, method="POST", path=ORDER_PATH)
    with pytest.raises(KlineoError) as caught:
        endpoints.futures_new_order(
            client_for(Market.FUTURES),
            creds,
            {
                "symbol": "ETHUSDT",
                "side": "BUY",
                "type": "MARKET",
                "quantity": "0.01",
                "newClientOrderId": f"klneo_it_{kind}",
            },
        )
    assert caught.value.category is ErrorCategory.UNKNOWN_OUTCOME
    assert len(_posts(binance_sim)) == 1


@pytest.mark.parametrize("kind", ["http_503_unavailable", "http_503_throttled"])
def test_order_failing_with_a_definite_503_is_upstream_unavailable(binance_sim, client_for, kind):
    """GIVEN a definite 503 failure on an order WHEN sent THEN upstream_unavailable (retryable), sent once."""
    binance_sim.faults.add(kind, method="POST", path=ORDER_PATH)
    with pytest.raises(KlineoError) as caught:
        endpoints.futures_new_order(
            client_for(Market.FUTURES),
            creds_for(binance_sim, "futures-full"),
            {"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"},
        )
    assert caught.value.category is ErrorCategory.UPSTREAM_UNAVAILABLE and caught.value.retryable


def test_429_with_retry_after_is_retried_once_and_succeeds(binance_sim, client_for):
    """GIVEN one 429 with Retry-After 1 WHEN a read is made THEN it waits and succeeds on the second try."""
    binance_sim.faults.add("http_429", path="/fapi/v3/balance", retry_after_s=1)
    started = time.monotonic()
    endpoints.futures_balance(client_for(Market.FUTURES), creds_for(binance_sim, "futures-full"))
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in binance_sim.journal if r.path == "/fapi/v3/balance"] == [429, 200]


def _market_order(client_order_id: str) -> dict:
    return {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002",
            "newClientOrderId": client_order_id}


def test_an_order_is_never_signed_once_the_calls_deadline_has_passed(binance_sim, client_for):
    """GIVEN a call_deadline already passed (a route's second order after its first used the time up) WHEN
    an order is sent THEN upstream_unavailable and nothing reaches Binance: no POST of the call can land
    after deadline + recvWindow."""
    client, creds = client_for(Market.FUTURES), creds_for(binance_sim, "futures-full")
    client.sync_time()
    with call_deadline(time.time() - 0.01), pytest.raises(KlineoError) as caught:
        endpoints.futures_new_order(client, creds, _market_order("klneo_it_after_deadline"))
    assert caught.value.category is ErrorCategory.UPSTREAM_UNAVAILABLE
    assert [r for r in binance_sim.journal if r.path == ORDER_PATH] == []


def test_an_order_held_back_at_its_deadline_is_told_and_counted_as_never_sent(binance_sim, client_for):
    """GIVEN a call_deadline already passed WHEN an order is sent THEN the error (retryable) says it was not
    sent for lack of time and nothing reached Binance, and the call is counted held back, never as a Binance
    error or a Binance outage (BinanceErrors / BinanceUpstreamUnavailable count what Binance answered)."""
    from klineo.telemetry import tally

    counted: dict[str, float] = {}

    class Sink:
        def add_metric(self, name: str, unit: str, value: float) -> None:
            counted[name] = counted.get(name, 0) + value

    client, creds = client_for(Market.FUTURES), creds_for(binance_sim, "futures-full")
    client.sync_time()
    tally.clear()
    with call_deadline(time.time() - 0.01), pytest.raises(KlineoError) as caught:
        endpoints.futures_new_order(client, creds, _market_order("klneo_it_held_at_deadline"))
    tally.drain(Sink())
    assert counted.get("BinanceCallsHeldBack") == 1, counted
    assert "BinanceErrors" not in counted and "BinanceUpstreamUnavailable" not in counted, counted
    assert caught.value.retryable and caught.value.message == (
        "Not sent: this request ran out of time before the order was signed; nothing reached Binance. "
        "Please retry.")
    assert [r for r in binance_sim.journal if r.path == ORDER_PATH] == []


# A 429 asks this long a wait; the call's deadline is this far off when the order is sent, long enough for
# the wait (the client retries only then) but passed when the wait overran it by OVERSLEEP_S (a stalled
# container, a thread pool's CPU).
RETRY_AFTER_S = 1
DEADLINE_IN_S = 1.3
OVERSLEEP_S = 0.5


def test_an_orders_retry_after_a_429_is_never_signed_once_the_wait_overran_the_deadline(binance_sim,
                                                                                       client_for):
    """GIVEN an order refused with a 429 (Retry-After 1 s) 1.3 s before its call's deadline, and a wait that
    ends past that deadline WHEN the client would retry THEN it signs nothing more: upstream_unavailable,
    the one refused POST only."""
    client = client_for(Market.FUTURES, sleep=lambda s: time.sleep(s + OVERSLEEP_S))
    creds = creds_for(binance_sim, "futures-full")
    client.sync_time()
    binance_sim.faults.add("http_429", method="POST", path=ORDER_PATH, retry_after_s=RETRY_AFTER_S)
    with call_deadline(time.time() + DEADLINE_IN_S), pytest.raises(KlineoError) as caught:
        endpoints.futures_new_order(client, creds, _market_order("klneo_it_429_past_deadline"))
    assert caught.value.category is ErrorCategory.UPSTREAM_UNAVAILABLE
    assert [r.status for r in binance_sim.journal if r.path == ORDER_PATH] == [429]


def test_418_ban_is_remembered_and_nothing_is_sent_until_it_ends(binance_sim, client_for):
    """GIVEN a 418 with Retry-After 60 WHEN more calls follow THEN ip_banned, and none reaches Binance."""
    client = client_for(Market.FUTURES)
    creds = creds_for(binance_sim, "futures-full")
    binance_sim.faults.add("http_418", path="/fapi/v3/balance", retry_after_s=60)
    for _ in range(3):
        with pytest.raises(KlineoError) as caught:
            endpoints.futures_balance(client, creds)
        assert caught.value.category is ErrorCategory.IP_BANNED and 0 < caught.value.retry_after <= 60
    assert [r.status for r in binance_sim.journal if r.path == "/fapi/v3/balance"] == [418]


def test_budget_stops_calls_before_the_simulator_would_answer_429(binance_sim, client_for, monkeypatch):
    """GIVEN a 60-weight futures budget on both sides WHEN weight-5 calls loop THEN we stop first: no 429."""
    binance_sim.configure(futures_weight_limit=60)
    monkeypatch.setitem(ratelimit_module.DEFAULT_WEIGHT_LIMITS, Market.FUTURES, 60)
    client = client_for(Market.FUTURES, rate_limiter=RateLimiter(max_wait_s=0))
    creds = creds_for(binance_sim, "futures-full")
    with pytest.raises(KlineoError) as caught:
        for _ in range(20):
            endpoints.futures_balance(client, creds)
    assert caught.value.category is ErrorCategory.RATE_LIMIT and caught.value.retry_after >= 1
    assert all(r.status != 429 for r in binance_sim.journal)
    assert client.usage["x-mbx-used-weight-1m"] >= 45


def test_rounded_order_passes_the_simulators_filters(binance_sim, client_for):
    """GIVEN a quantity and price with too many decimals WHEN prepared by the rules THEN Binance accepts."""
    client = client_for(Market.FUTURES)
    creds = creds_for(binance_sim, "futures-full")
    rules = get_symbol_rules(client, "BTCUSDT")
    mark = endpoints.futures_mark_price(client, "BTCUSDT")
    quantity, price = rules.prepare_order(
        "BUY", "LIMIT", Decimal("0.0123456"), mark * Decimal("0.9") + Decimal("0.0371"), mark
    )
    answer = endpoints.futures_new_order(
        client,
        creds,
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "timeInForce": "GTC",
            "quantity": quantity,
            "price": price,
            "newClientOrderId": "klneo_it_rounded",
        },
    )
    assert answer["status"] in {"NEW", "FILLED"}
    assert Decimal(answer["origQty"]) == quantity


def test_candles_and_spot_rules_come_from_the_simulator(binance_sim, client_for):
    """GIVEN the simulator WHEN spot klines and rules are read THEN typed candles and rules come back."""
    client = client_for(Market.SPOT)
    candles = endpoints.klines(client, "ETHUSDT", "1m", limit=5)
    assert len(candles) == 5 and all(c.high >= c.low for c in candles)
    rules = get_symbol_rules(client, "ETHUSDT")
    assert rules.step_size > 0 and rules.tick_size > 0
    with pytest.raises(KlineoError) as caught:
        get_symbol_rules(client, "NOPEUSDT")
    assert caught.value.field == "symbol"


def test_get_client_reaches_the_simulator_through_url_overrides(binance_sim, monkeypatch):
    """GIVEN BINANCE_FUTURES_TESTNET_URL at the simulator's testnet WHEN get_client is used THEN it works."""
    monkeypatch.setenv("BINANCE_FUTURES_TESTNET_URL", binance_sim.testnet_url)
    client = get_client("futures", "testnet")
    balances = endpoints.futures_balance(client, creds_for(binance_sim, "testnet-futures"))
    assert isinstance(balances, list)
    assert {r.env for r in binance_sim.journal} == {"testnet"}
