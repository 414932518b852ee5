"""Rate limiting: the budget waits or fails fast before a 429; bans and weights are shared via a store."""

from __future__ import annotations

import pytest
from klineo.binance import (
    ErrorCategory,
    InMemoryRateLimitStore,
    KlineoError,
    Market,
    RateLimiter,
    endpoint_weight,
)
from klineo.binance.ratelimit import SharedState

from tests.unit.binance.conftest import SPOT, START, FakeClock, add_time

HOST = "spot.binance.test"
NOW_MS = START * 1000  # 20 s into a minute


def test_endpoint_weights_follow_the_published_table():
    """GIVEN endpoints of facts §3 WHEN weighed THEN the documented weights come back."""
    assert endpoint_weight("GET", "/api/v3/account") == 20
    assert endpoint_weight("GET", "/api/v3/exchangeInfo") == 20
    assert endpoint_weight("GET", "/api/v3/klines", {"limit": 1000}) == 2
    assert endpoint_weight("GET", "/fapi/v3/account") == 5
    assert endpoint_weight("POST", "/fapi/v1/order") == 0
    assert [
        endpoint_weight("GET", "/fapi/v1/klines", {"limit": n}) for n in (99, 100, 499, 500, 1000, 1500)
    ] == [
        1,
        2,
        2,
        5,
        5,
        10,
    ]
    assert endpoint_weight("GET", "/api/v3/somethingNew") == 1


@pytest.mark.parametrize(("method", "path", "params", "weight"), [
    ("GET", "/fapi/v1/positionSide/dual", None, 30),
    ("POST", "/fapi/v1/algoOrder", {"symbol": "BTCUSDT"}, 0),
    ("GET", "/fapi/v1/openOrders", {"symbol": "BTCUSDT"}, 1),
    ("GET", "/fapi/v1/openOrders", {}, 40),
    ("GET", "/fapi/v1/openAlgoOrders", {"symbol": "BTCUSDT"}, 1),
    ("GET", "/fapi/v1/openAlgoOrders", None, 40),
    ("GET", "/fapi/v1/forceOrders", {"symbol": "BTCUSDT"}, 20),
    ("GET", "/fapi/v1/forceOrders", {}, 50),
    ("GET", "/fapi/v2/ticker/price", {}, 2),
    ("GET", "/api/v3/ticker/price", {}, 4),
])
def test_heavy_futures_calls_are_budgeted_at_their_documented_weight(method, path, params, weight):
    """The limiter budgets positionSide/dual at 30 and the every-symbol lists at 40/50, not 1 (facts §3)."""
    assert endpoint_weight(method, path, params) == weight


def test_call_that_would_exceed_the_budget_waits_for_the_next_window_when_that_is_close():
    """GIVEN the budget nearly spent 1 s before the minute ends WHEN a call needs more THEN it sleeps ~1 s."""
    clock = FakeClock(START + 39)  # 59 s into the minute
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    limiter.observe(HOST, Market.SPOT, 5390, clock() * 1000)
    limiter.acquire(HOST, Market.SPOT, 20, clock() * 1000)
    assert clock.sleeps == [pytest.approx(1.0)]
    assert limiter.used_weight(HOST) == 20


def test_call_that_would_exceed_the_budget_fails_fast_when_the_window_is_far():
    """GIVEN the budget spent 40 s before the minute ends WHEN a call needs more
    THEN rate_limit, nothing sent."""
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    limiter.observe(HOST, Market.SPOT, 5395, NOW_MS)
    with pytest.raises(KlineoError) as caught:
        limiter.acquire(HOST, Market.SPOT, 20, NOW_MS)
    assert caught.value.category is ErrorCategory.RATE_LIMIT and caught.value.retry_after == 40
    assert clock.sleeps == []
    limiter.acquire(HOST, Market.SPOT, 0, NOW_MS)  # weight-0 calls (futures orders) still pass


def test_futures_budget_is_2400_and_spot_6000():
    """GIVEN both pools WHEN most of 2400 is used THEN futures blocks while the same use on spot passes."""
    limiter = RateLimiter()
    limiter.observe("f", Market.FUTURES, 2150, NOW_MS)
    limiter.observe("s", Market.SPOT, 2150, NOW_MS)
    limiter.acquire("s", Market.SPOT, 20, NOW_MS)
    with pytest.raises(KlineoError):
        limiter.acquire("f", Market.FUTURES, 20, NOW_MS)


def test_new_window_resets_the_budget():
    """GIVEN a spent budget WHEN the next minute starts THEN calls pass again."""
    limiter = RateLimiter()
    limiter.observe(HOST, Market.SPOT, 5990, NOW_MS)
    limiter.acquire(HOST, Market.SPOT, 20, NOW_MS + 60_000)


def test_spare_weight_is_the_budget_share_left_this_minute_and_none_while_blocked():
    """GIVEN 2000 of futures' 2400 used WHEN asked THEN 160 spare (90 % budget); the next minute all of
    it; while the host is blocked (429/418) nothing."""
    limiter = RateLimiter()
    limiter.observe("f", Market.FUTURES, 2000, NOW_MS)
    assert limiter.spare_weight("f", Market.FUTURES, NOW_MS) == 160
    assert limiter.spare_weight("f", Market.FUTURES, NOW_MS + 60_000) == 2160
    limiter.block("f", Market.FUTURES, NOW_MS + 30_000, 429, NOW_MS)
    assert limiter.spare_weight("f", Market.FUTURES, NOW_MS + 1_000) == 0


def test_client_fails_fast_before_provoking_a_429(rsps, make_client, creds, limiter):
    """GIVEN a response reporting 5390 weight used WHEN the next 20-weight call comes
    THEN no request is sent."""
    add_time(rsps, SPOT, int(START * 1000))
    rsps.get(SPOT + "/api/v3/account", json={}, headers={"X-MBX-USED-WEIGHT-1M": "5390"})
    client = make_client()
    client.signed("GET", "/api/v3/account", None, creds)
    with pytest.raises(KlineoError) as caught:
        client.signed("GET", "/api/v3/account", None, creds)
    assert caught.value.category is ErrorCategory.RATE_LIMIT
    assert len([c for c in rsps.calls if c.request.url.startswith(SPOT + "/api/v3/account")]) == 1


def test_ban_seen_by_one_container_stops_another_sharing_the_store():
    """GIVEN two containers sharing a store WHEN one records a 418 ban THEN the other refuses to call."""
    shared = InMemoryRateLimitStore()
    clock = FakeClock()
    first = RateLimiter(shared, clock=clock, sleep=clock.sleep)
    second = RateLimiter(shared, clock=clock, sleep=clock.sleep)
    first.block(HOST, Market.SPOT, NOW_MS + 120_000, 418)
    with pytest.raises(KlineoError) as caught:
        second.acquire(HOST, Market.SPOT, 1, NOW_MS)
    assert caught.value.category is ErrorCategory.IP_BANNED and caught.value.retry_after == 120


def test_quiet_warm_calls_cost_no_store_reads_even_after_long_idle():
    """GIVEN quiet usage WHEN calls come in a burst and after 20 min idle THEN one read (the first)."""
    store = InMemoryRateLimitStore()
    limiter = RateLimiter(store)
    for i in range(100):
        now = NOW_MS + i * 100
        limiter.acquire(HOST, Market.SPOT, 1, now)
        limiter.observe(HOST, Market.SPOT, 10 + i, now)
    limiter.acquire(HOST, Market.SPOT, 20, NOW_MS + 1_200_000)
    assert (store.loads, store.writes) == (1, 0)


def test_optional_quiet_refresh_reads_again_after_its_period():
    """GIVEN quiet_refresh_s=15 WHEN a call comes 16 s after the first THEN the store is read again."""
    store = InMemoryRateLimitStore()
    limiter = RateLimiter(store, quiet_refresh_s=15)
    limiter.acquire(HOST, Market.SPOT, 1, NOW_MS)
    limiter.acquire(HOST, Market.SPOT, 1, NOW_MS + 16_000)
    assert store.loads == 2


def test_elevated_usage_refreshes_the_shared_state_every_1_5_seconds():
    """GIVEN usage above 50 % WHEN calls keep coming THEN the store is re-read about every 1.5 s."""
    store = InMemoryRateLimitStore()
    limiter = RateLimiter(store)
    start = (NOW_MS // 60_000) * 60_000  # start of a minute
    limiter.acquire(HOST, Market.SPOT, 1, start)
    limiter.observe(HOST, Market.SPOT, 3100, start)
    for i in range(1, 31):  # 3 s of calls every 100 ms
        limiter.acquire(HOST, Market.SPOT, 1, start + i * 100)
    assert store.loads == 3


def test_weight_is_written_only_when_crossing_50_80_95_percent():
    """GIVEN rising usage WHEN headers report it THEN the store gets one write per threshold crossed."""
    store = InMemoryRateLimitStore()
    limiter = RateLimiter(store)
    for used in (100, 2000, 2999, 3000, 3500, 4800, 4900, 5700, 5800, 5900):
        limiter.observe(HOST, Market.SPOT, used, NOW_MS)
    assert store.writes == 3
    assert store.load(HOST) == SharedState(int(NOW_MS // 60_000), 5700, 0, 0)


def test_another_containers_weight_is_merged_for_the_same_window():
    """GIVEN another container recorded 5500 this minute WHEN we acquire THEN our budget check uses it."""
    store = InMemoryRateLimitStore()
    store.save_usage(HOST, int(NOW_MS // 60_000), 5500)
    limiter = RateLimiter(store)
    with pytest.raises(KlineoError):
        limiter.acquire(HOST, Market.SPOT, 20, NOW_MS)


def test_store_keeps_the_larger_weight_and_the_later_block():
    """GIVEN competing writes WHEN saved THEN a lower weight or earlier block never overwrites."""
    store = InMemoryRateLimitStore()
    store.save_usage(HOST, 10, 500)
    store.save_usage(HOST, 10, 300)
    store.save_block(HOST, 2_000, 418)
    store.save_block(HOST, 1_000, 429)
    assert store.load(HOST) == SharedState(10, 500, 2_000, 418)
    store.save_usage(HOST, 11, 5)
    assert store.load(HOST).used == 5
