"""Binance settings read from the environment: base URLs per market and environment, proxy, recvWindow.

The one place ``klineo.binance`` reads ``os.environ``. Not through ``klineo.settings``: building that
pydantic model costs ~100 ms of cold start that a Binance-only caller would otherwise pay (a test
keeps pydantic out of ``import klineo.binance``).
"""

from __future__ import annotations

import os

from klineo.binance.enums import Environment, Market

__all__ = [
    "DEFAULT_BASE_URLS", "DEFAULT_RECV_WINDOW_MS", "PROXY_ENV", "RECV_WINDOW_ENV", "URL_ENV", "base_url",
    "default_recv_window_ms", "https_proxy",
]

# Facts §1. Spot paths carry their own /api prefix, so the hosts are given bare.
# Futures "testnet": the docs (May 2026) and the audit name demo-fapi.binance.com as the USDT-M testnet REST
# host; testnet.binancefuture.com serves coin-margined futures and its USDT-M status is unclear, so both
# TESTNET and DEMO point at demo-fapi (override with BINANCE_FUTURES_TESTNET_URL if Binance changes this).
DEFAULT_BASE_URLS: dict[tuple[Market, Environment], str] = {
    (Market.SPOT, Environment.PRODUCTION): "https://api.binance.com",
    (Market.SPOT, Environment.TESTNET): "https://testnet.binance.vision",
    (Market.SPOT, Environment.DEMO): "https://demo-api.binance.com",
    (Market.FUTURES, Environment.PRODUCTION): "https://fapi.binance.com",
    (Market.FUTURES, Environment.TESTNET): "https://demo-fapi.binance.com",
    (Market.FUTURES, Environment.DEMO): "https://demo-fapi.binance.com",
}

URL_ENV: dict[tuple[Market, Environment], str] = {
    (Market.SPOT, Environment.PRODUCTION): "BINANCE_SPOT_URL",
    (Market.SPOT, Environment.TESTNET): "BINANCE_SPOT_TESTNET_URL",
    (Market.SPOT, Environment.DEMO): "BINANCE_SPOT_DEMO_URL",
    (Market.FUTURES, Environment.PRODUCTION): "BINANCE_FUTURES_URL",
    (Market.FUTURES, Environment.TESTNET): "BINANCE_FUTURES_TESTNET_URL",
    (Market.FUTURES, Environment.DEMO): "BINANCE_FUTURES_DEMO_URL",
}

PROXY_ENV = "BINANCE_HTTPS_PROXY"
RECV_WINDOW_ENV = "BINANCE_RECV_WINDOW_MS"
DEFAULT_RECV_WINDOW_MS = 10000.0


def base_url(market: Market | str, environment: Environment | str) -> str:
    """The REST base URL (scheme and host, no trailing slash) for a market and environment."""
    key = (Market(market), Environment(environment))
    override = os.environ.get(URL_ENV[key], "").strip()
    if override:
        if not override.startswith(("https://", "http://")):
            raise ValueError(f"{URL_ENV[key]} must start with https:// or http://")
        return override.rstrip("/")
    return DEFAULT_BASE_URLS[key]


def https_proxy() -> str | None:
    """The proxy every Binance call goes through (BINANCE_HTTPS_PROXY), or None for a direct connection."""
    return os.environ.get(PROXY_ENV, "").strip() or None


def default_recv_window_ms() -> float:
    """BINANCE_RECV_WINDOW_MS (template parameter BinanceRecvWindowMs), else 10000; the client checks it."""
    raw = os.environ.get(RECV_WINDOW_ENV, "").strip()
    if not raw:
        return DEFAULT_RECV_WINDOW_MS
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{RECV_WINDOW_ENV} must be a number of milliseconds") from None
