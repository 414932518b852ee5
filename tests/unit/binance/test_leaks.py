"""No secret leaves: sentinel credentials driven through successes and every failure kind never show up in
log output, metrics output or exception text, and neither does any signature or signed URL."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
import traceback
from collections.abc import Iterator

import pytest
import requests
from klineo.binance import (
    BinanceClient,
    Credentials,
    Environment,
    KeyType,
    KlineoError,
    Market,
    RateLimiter,
    clear_all_caches,
    signature,
)

from tests.unit.binance.conftest import FUTURES, SENTINEL_API_KEY, SENTINEL_SECRET, SPOT, START, add_time

SERVER_MS = int(START * 1000)
ACCOUNT = SPOT + "/api/v3/account"
ORDER = FUTURES + "/fapi/v1/order"


def _echo_url_error(request):
    """A transport error whose text carries the signed URL
    , as urllib3's "Max retries exceeded with url" does."""
    raise requests.exceptions.ConnectionError(
        f"Max retries exceeded with url: {request.url} (Caused by reset)"
    )


def _exception_texts(error: BaseException) -> list[str]:
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    seen = error
    while seen is not None:
        texts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return texts


@pytest.fixture
def captured_logs(monkeypatch: pytest.MonkeyPatch):
    """Every record the Powertools logger emits, rendered by its own JSON formatter, at DEBUG."""
    from klineo.observability import logger

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    previous = logger.log_level
    logger.setLevel(logging.DEBUG)
    yield stream
    logger.setLevel(previous)
    logger.removeHandler(handler)


def _invocation_ends() -> None:
    """What ``@metrics.log_metrics`` does when the invocation ends: the tally's failure lines and the
    metrics are written (the client writes no line per failed call)."""
    from klineo.observability import metrics

    metrics.flush_metrics()


def _refusal(code: int, msg: str) -> dict:
    """A 400 answer carrying a Binance error code and message."""
    return {"status": 400, "json": {"code": code, "msg": msg}}


_ERROR_429 = {
    "status": 429, "json": {"code": -1003, "msg": "Too many requests."}, "headers": {"Retry-After": "1"},
}
_BAN_418 = {
    "status": 418,
    "json": {"code": -1003, "msg": "Way too many requests; IP banned until 1."},
    "headers": {"Retry-After": "30"},
}
_KEY_REFUSED = {
    "status": 401,
    "json": {
        "code": -2015, "msg": "Invalid API-key, IP, or permissions for action, request ip: 203.0.113.5",
    },
}
# Each case: the calls made in turn (url, method, answer); every call but a plain success raises.
SCENARIOS: dict[str, list[tuple[str, str, dict]]] = {
    "success": [(ACCOUNT, "GET", {"json": {"balances": []}})],
    "missing_parameter": [
        (ACCOUNT, "GET", _refusal(-1102, "Mandatory parameter 'x' was not sent.")),
    ],
    "key_refused_with_ip": [(ACCOUNT, "GET", _KEY_REFUSED)],
    "bad_signature": [
        (ACCOUNT, "GET", _refusal(-1022, "Signature for this request is not valid.")),
    ],
    "timestamp": [
        (ACCOUNT, "GET", _refusal(-1021, "Timestamp for this request is outside.")),
    ],
    "html_echoing_the_key": [
        (ACCOUNT, "GET", {"status": 403, "body": f"<html>blocked {SENTINEL_API_KEY}</html>"}),
    ],
    "empty_500": [(ACCOUNT, "GET", {"status": 500, "body": ""})],
    "read_timeout_on_get": [(ACCOUNT, "GET", {"body": requests.exceptions.ReadTimeout("read timed out")})],
    "connect_timeout": [(ACCOUNT, "GET", {"body": requests.exceptions.ConnectTimeout("connect timed out")})],
    "rate_limited": [(ACCOUNT, "GET", _ERROR_429)],
    "margin_insufficient": [
        (ORDER, "POST", _refusal(-2019, "Margin is insufficient.")),
    ],
    "read_timeout_on_order": [(ORDER, "POST", {"body": requests.exceptions.ReadTimeout("read timed out")})],
    "transport_error_quoting_the_url": [(ORDER, "POST", {"callback": _echo_url_error})],
    "truncated_answer": [(ORDER, "POST", {"status": 200, "body": "{truncated"})],
    "unknown_503": [
        (ORDER, "POST", {
            "status": 503, "json": {"msg": "Unknown error, please check your request or try again later."},
        }),
    ],
    # The order after the ban is never sent: the ban holds it back.
    "ip_ban_then_held_back": [(ORDER, "POST", _BAN_418), (ORDER, "POST", {"json": {"orderId": 1}})],
}


def _haystacks(captured_logs, capsys, caplog, creds, errors: list[BaseException]) -> list[str]:
    """Everything a secret could leak into: logs, stdout/stderr, the credentials' repr, exception texts."""
    out = capsys.readouterr()
    haystacks = [captured_logs.getvalue(), out.out, out.err, caplog.text, repr(creds), str(creds)]
    for error in errors:
        haystacks += _exception_texts(error)
    return haystacks


def _assert_nothing_leaks(haystacks: list[str], signed_urls: list[str]) -> None:
    signatures = [u.rsplit("signature=", 1)[1] for u in signed_urls]
    for text in haystacks:
        assert SENTINEL_SECRET not in text
        assert SENTINEL_API_KEY not in text
        assert "signature=" not in text and "timestamp=" not in text
        for value in signatures:
            assert value not in text
        for url in signed_urls:
            assert url not in text
        assert "203.0.113.5" not in text


@pytest.mark.parametrize("steps", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_secrets_signatures_and_signed_urls_never_reach_logs_or_exceptions(
    steps, rsps, make_client, creds, clock, captured_logs, capsys, caplog
):
    """GIVEN sentinel credentials WHEN a signed call succeeds or fails this way
    THEN no secret, signature or URL leaks."""
    caplog.set_level(logging.DEBUG)
    add_time(rsps, SPOT, SERVER_MS)
    add_time(rsps, FUTURES, SERVER_MS, Market.FUTURES)
    spot, futures = make_client(Market.SPOT), make_client(Market.FUTURES)
    errors: list[BaseException] = []
    for url, method, answer in steps:
        rsps.remove(method, url)
        if "callback" in answer:
            rsps.add_callback(method, url, callback=answer["callback"])
        else:
            rsps.add(method, url, **answer)
        client = spot if url == ACCOUNT else futures
        path = "/api/v3/account" if url == ACCOUNT else "/fapi/v1/order"
        try:
            client.signed(method, path, {"symbol": "BTCUSDT"}, creds)
        except KlineoError as error:
            errors.append(error)
    assert len(errors) == (0 if steps == SCENARIOS["success"] else len(steps))
    _invocation_ends()
    signed_urls = [c.request.url for c in rsps.calls if "signature=" in c.request.url]
    assert signed_urls
    if errors:
        assert "binance call failed" in captured_logs.getvalue()  # the logs were really captured
    _assert_nothing_leaks(_haystacks(captured_logs, capsys, caplog, creds, errors), signed_urls)


BAD_PEM = f"-----BEGIN PRIVATE KEY-----\n{SENTINEL_SECRET}\n-----END PRIVATE KEY-----"


@pytest.mark.parametrize("make", [
    lambda: signature("a=1", Credentials(SENTINEL_API_KEY, BAD_PEM, KeyType.RSA)),
    lambda: Credentials(SENTINEL_API_KEY + " \n", SENTINEL_SECRET, KeyType.HMAC),
], ids=["unreadable_private_key", "malformed_api_key"])
def test_key_errors_never_quote_the_key(make, creds, captured_logs, capsys, caplog):
    """GIVEN a private key that cannot be read, or a malformed key WHEN used THEN the error quotes neither."""
    with pytest.raises(KlineoError) as caught:
        make()
    _assert_nothing_leaks(_haystacks(captured_logs, capsys, caplog, creds, [caught.value]), [])


class _MalformedHeaderServer:
    """A loopback HTTP server answering every request with valid JSON but one header line without a colon
    (what a proxy, a WAF error page or a misbehaving edge can send): http.client parses the answer,
    urllib3 reports the header defect."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests: list[bytes] = []
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                while True:
                    try:
                        head = b""
                        while b"\r\n\r\n" not in head:
                            chunk = conn.recv(65536)
                            if not chunk:
                                raise ConnectionError
                            head += chunk
                    except (OSError, ConnectionError):
                        break
                    self.requests.append(head)
                    body = json.dumps({"serverTime": int(time.time() * 1000), "balances": []}).encode()
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(body)}\r\n".encode()
                        + b"X-Edge this line has no colon\r\n\r\n" + body
                    )

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.fixture
def malformed_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[_MalformedHeaderServer]:
    """The server above, and fresh Binance client caches (the container's shared Session is used)."""
    monkeypatch.delenv("BINANCE_HTTPS_PROXY", raising=False)
    clear_all_caches()
    server = _MalformedHeaderServer()
    yield server
    server.close()
    clear_all_caches()


def test_signed_url_never_logged_when_an_answer_has_a_malformed_header(malformed_server, caplog):
    """GIVEN an answer whose header block has a defect WHEN a signed call is made THEN no log line holds
    the signed query string (urllib3 warns "Failed to parse headers (url=...)" with the full URL)."""
    caplog.set_level(logging.INFO)  # Lambda's root logger with LogFormat JSON: INFO and above
    client = BinanceClient(Market.SPOT, Environment.PRODUCTION, base_url=malformed_server.url,
                           rate_limiter=RateLimiter(), recv_window_ms=10000)
    creds = Credentials(SENTINEL_API_KEY, SENTINEL_SECRET, KeyType.HMAC)

    client.signed("GET", "/api/v3/account", {"omitZeroBalances": "true"}, creds)

    signed = [r for r in malformed_server.requests if b"signature=" in r]
    assert signed, "the signed call never reached the server: the check below would prove nothing"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    signed_query_logged = "signature=" in logged or "timestamp=" in logged
    assert not signed_query_logged, "a log line holds the signed query string"
