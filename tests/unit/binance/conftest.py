"""Fixtures for the Binance layer's unit tests: an injected clock and sleep, fresh clients, HTTP mocks."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests
import responses
from klineo.binance import (
    BinanceClient,
    Credentials,
    Environment,
    InMemoryRateLimitStore,
    KeyType,
    Market,
    RateLimiter,
    clear_all_caches,
)
from klineo.settings import get_settings

SPOT = "https://spot.binance.test"
FUTURES = "https://futures.binance.test"
START = 1_700_000_000.0  # a fixed local wall clock (epoch seconds); 13:33:20 UTC, 20 s into a minute

# Sentinel credentials: the leak tests assert these strings never show up anywhere.
SENTINEL_API_KEY = "SENTINELAPIKEYdo0not0leak0AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
SENTINEL_SECRET = "SENTINELSECRETdo0not0leak0BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"


class FakeClock:
    """A wall clock tests move by hand; ``sleep`` records the delay and advances the clock (never sleeps)."""

    def __init__(self, now: float = START) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def _clean_caches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts without cached clients, sessions, exchangeInfo, settings or URL/proxy overrides."""
    for name in (
        "BINANCE_SPOT_URL",
        "BINANCE_SPOT_TESTNET_URL",
        "BINANCE_SPOT_DEMO_URL",
        "BINANCE_FUTURES_URL",
        "BINANCE_FUTURES_TESTNET_URL",
        "BINANCE_FUTURES_DEMO_URL",
        "BINANCE_HTTPS_PROXY",
        "RATE_LIMIT_TABLE",
        "BINANCE_RECV_WINDOW_MS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "klineo")
    clear_all_caches()
    get_settings.cache_clear()
    yield
    clear_all_caches()
    get_settings.cache_clear()


@pytest.fixture
def clock() -> FakeClock:
    """The injected clock (also the injected sleep, via ``clock.sleep``)."""
    return FakeClock()


@pytest.fixture
def store() -> InMemoryRateLimitStore:
    """An in-memory shared rate-limit store that counts its loads and writes."""
    return InMemoryRateLimitStore()


@pytest.fixture
def limiter(clock: FakeClock, store: InMemoryRateLimitStore) -> RateLimiter:
    """A rate limiter on the fake clock."""
    return RateLimiter(store, clock=clock, sleep=clock.sleep)


@pytest.fixture
def make_client(clock: FakeClock, limiter: RateLimiter) -> Callable[..., BinanceClient]:
    """Build a client on the fake clock with its own Session (spot by default)."""

    def make(market: Market = Market.SPOT, **kwargs) -> BinanceClient:
        kwargs.setdefault("base_url", SPOT if market is Market.SPOT else FUTURES)
        kwargs.setdefault("session", requests.Session())
        kwargs.setdefault("rate_limiter", limiter)
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("sleep", clock.sleep)
        kwargs.setdefault("recv_window_ms", 10000)
        return BinanceClient(market, Environment.PRODUCTION, **kwargs)

    return make


@pytest.fixture
def creds() -> Credentials:
    """HMAC credentials with sentinel values."""
    return Credentials(SENTINEL_API_KEY, SENTINEL_SECRET, KeyType.HMAC)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    """HTTP mocked with `responses`; unmatched requests fail the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def add_time(rsps: responses.RequestsMock, base: str, server_ms: int, market: Market = Market.SPOT) -> None:
    """Answer the server-time endpoint of ``base`` with ``server_ms``."""
    path = "/api/v3/time" if market is Market.SPOT else "/fapi/v1/time"
    rsps.get(base + path, json={"serverTime": server_ms})
