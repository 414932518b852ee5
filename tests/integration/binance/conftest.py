"""Fixtures for the Binance layer against the local simulator over loopback (real HTTP, real clock)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
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


@pytest.fixture(autouse=True)
def _clean_caches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No cached clients, exchangeInfo or shared rate-limit state between tests; no proxy or table."""
    for name in ("BINANCE_HTTPS_PROXY", "RATE_LIMIT_TABLE", "BINANCE_RECV_WINDOW_MS"):
        monkeypatch.delenv(name, raising=False)
    clear_all_caches()
    get_settings.cache_clear()
    yield
    clear_all_caches()
    get_settings.cache_clear()


def creds_for(sim, account_id: str) -> Credentials:
    """Credentials of one of the simulator's demo accounts (fake keys for a fake exchange)."""
    account = sim.account(account_id)
    secret = account.secret if account.key_type == "HMAC" else account.private_key_pem
    return Credentials(account.api_key, secret, KeyType(account.key_type.lower()))


@pytest.fixture
def client_for(binance_sim) -> Callable[..., BinanceClient]:
    """A client for the simulator's production environment with its own in-memory rate limiter."""

    def make(market: Market = Market.FUTURES, **kwargs) -> BinanceClient:
        kwargs.setdefault("base_url", binance_sim.url)
        kwargs.setdefault("rate_limiter", RateLimiter())
        kwargs.setdefault("recv_window_ms", 10000)
        return BinanceClient(market, Environment.PRODUCTION, **kwargs)

    return make
