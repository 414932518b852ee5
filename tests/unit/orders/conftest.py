"""Fixtures for the order core unit tests: a futures client on a fake clock, Binance mocked (`responses`)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests
import responses
from klineo.binance import (
    BinanceClient,
    Credentials,
    Environment,
    KeyType,
    Market,
    RateLimiter,
    clear_all_caches,
)
from klineo.settings import get_settings

FUTURES = "https://fapi.binance.test"
ORDER_URL = re.compile(re.escape(FUTURES + "/fapi/v1/order") + r"(\?.*)?$")
START = 1_700_000_000.0


class FakeClock:
    """Wall clock moved by hand; ``sleep`` records and advances it (never sleeps)."""

    def __init__(self, now: float = START) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No URL overrides, no shared rate-limit table, fresh caches."""
    for name in ("BINANCE_FUTURES_URL", "BINANCE_HTTPS_PROXY", "RATE_LIMIT_TABLE", "BINANCE_RECV_WINDOW_MS"):
        monkeypatch.delenv(name, raising=False)
    clear_all_caches()
    get_settings.cache_clear()
    yield
    clear_all_caches()
    get_settings.cache_clear()


@pytest.fixture
def clock() -> FakeClock:
    """The injected clock and sleep."""
    return FakeClock()


@pytest.fixture
def client(clock: FakeClock) -> BinanceClient:
    """A USDT-M futures client on the fake clock, recvWindow 10000 ms, no retries of reads."""
    return BinanceClient(
        Market.FUTURES,
        Environment.PRODUCTION,
        base_url=FUTURES,
        session=requests.Session(),
        rate_limiter=RateLimiter(clock=clock, sleep=clock.sleep),
        clock=clock,
        sleep=clock.sleep,
        recv_window_ms=10000,
        max_retries=0,
    )


@pytest.fixture
def creds() -> Credentials:
    """HMAC test credentials."""
    return Credentials("K" * 64, "S" * 64, KeyType.HMAC)


@pytest.fixture
def rsps(clock: FakeClock) -> Iterator[responses.RequestsMock]:
    """Binance mocked: server time answered; every other call must be registered by the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(FUTURES + "/fapi/v1/time", json={"serverTime": int(clock() * 1000)})
        yield mock
