"""Base URLs per market/environment, their environment overrides, and BINANCE_HTTPS_PROXY on every call."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from klineo.binance import Environment, Market, base_url, get_client, https_proxy, server_time

DEFAULTS = [
    (Market.SPOT, Environment.PRODUCTION, "https://api.binance.com"),
    (Market.SPOT, Environment.TESTNET, "https://testnet.binance.vision"),
    (Market.SPOT, Environment.DEMO, "https://demo-api.binance.com"),
    (Market.FUTURES, Environment.PRODUCTION, "https://fapi.binance.com"),
    (Market.FUTURES, Environment.TESTNET, "https://demo-fapi.binance.com"),
    (Market.FUTURES, Environment.DEMO, "https://demo-fapi.binance.com"),
]

OVERRIDES = [
    (Market.SPOT, Environment.PRODUCTION, "BINANCE_SPOT_URL"),
    (Market.SPOT, Environment.TESTNET, "BINANCE_SPOT_TESTNET_URL"),
    (Market.SPOT, Environment.DEMO, "BINANCE_SPOT_DEMO_URL"),
    (Market.FUTURES, Environment.PRODUCTION, "BINANCE_FUTURES_URL"),
    (Market.FUTURES, Environment.TESTNET, "BINANCE_FUTURES_TESTNET_URL"),
    (Market.FUTURES, Environment.DEMO, "BINANCE_FUTURES_DEMO_URL"),
]


@pytest.mark.parametrize(("market", "environment", "url"), DEFAULTS)
def test_default_base_urls_follow_the_audit(market, environment, url):
    """GIVEN no override WHEN a base URL is asked
    THEN the audited default (futures testnet = demo-fapi) is used."""
    assert base_url(market, environment) == url
    assert base_url(market.value, environment.value) == url


@pytest.mark.parametrize(("market", "environment", "variable"), OVERRIDES)
def test_every_base_url_is_overridable_from_the_environment(monkeypatch, market, environment, variable):
    """GIVEN its environment variable WHEN a base URL is asked
    THEN the override wins (trailing slash dropped)."""
    monkeypatch.setenv(variable, "http://127.0.0.1:8765/testnet/")
    assert base_url(market, environment) == "http://127.0.0.1:8765/testnet"
    others = [(m, e) for m, e, _ in OVERRIDES if (m, e) != (market, environment)]
    assert all(base_url(m, e).startswith("https://") for m, e in others)


def test_override_without_a_scheme_is_refused(monkeypatch):
    """GIVEN an override without http(s):// WHEN used THEN a clear configuration error."""
    monkeypatch.setenv("BINANCE_FUTURES_TESTNET_URL", "demo-fapi.binance.com")
    with pytest.raises(ValueError, match="BINANCE_FUTURES_TESTNET_URL"):
        base_url("futures", "testnet")


class _RecordingProxy(BaseHTTPRequestHandler):
    """A forward proxy for plain-HTTP targets: records the absolute request line and answers server time."""

    seen: list[str] = []

    def do_GET(self) -> None:
        type(self).seen.append(self.path)
        body = json.dumps({"serverTime": 1_700_000_000_000}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        return


@pytest.fixture
def proxy() -> Iterator[str]:
    """A recording proxy on 127.0.0.1; yields its URL."""
    _RecordingProxy.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingProxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_every_call_goes_through_binance_https_proxy(monkeypatch, proxy):
    """GIVEN BINANCE_HTTPS_PROXY WHEN a client calls Binance THEN the request goes through that proxy."""
    monkeypatch.setenv("BINANCE_HTTPS_PROXY", proxy)
    monkeypatch.setenv("BINANCE_SPOT_URL", "http://binance.example.invalid")
    assert https_proxy() == proxy
    assert server_time(get_client("spot", "production")) == 1_700_000_000_000
    assert _RecordingProxy.seen == ["http://binance.example.invalid/api/v3/time"]


def test_no_proxy_and_ambient_proxy_variables_are_ignored(monkeypatch):
    """GIVEN no BINANCE_HTTPS_PROXY but HTTPS_PROXY set WHEN a client is made THEN it connects directly."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    client = get_client("futures", "production")
    assert https_proxy() is None
    assert client._session.trust_env is False and not client._session.proxies
