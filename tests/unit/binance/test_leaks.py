"""No secret leaves: sentinel credentials driven through successes and every failure kind never show up in
log output, metrics output or exception text, and neither does any signature or signed URL."""

from __future__ import annotations

import io
import logging
import traceback

import pytest
import requests
from klineo.binance import Credentials, KeyType, KlineoError, Market, signature

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


def test_secrets_signatures_and_signed_urls_never_reach_logs_or_exceptions(
    rsps, make_client, creds, clock, captured_logs, capsys, caplog
):
    """GIVEN sentinel credentials WHEN calls succeed and fail every way
    THEN no secret, signature or URL leaks."""
    caplog.set_level(logging.DEBUG)
    add_time(rsps, SPOT, SERVER_MS)
    add_time(rsps, FUTURES, SERVER_MS, Market.FUTURES)
    spot, futures = make_client(Market.SPOT), make_client(Market.FUTURES)
    scenarios = [
        (ACCOUNT, "GET", {"json": {"balances": []}}),
        (
            ACCOUNT,
            "GET",
            {"status": 400, "json": {"code": -1102, "msg": "Mandatory parameter 'x' was not sent."}},
        ),
        (
            ACCOUNT,
            "GET",
            {
                "status": 401,
                "json": {
                    "code": -2015,
                    "msg": "Invalid API-key, IP, or permissions for action, request ip: 203.0.113.5",
                },
            },
        ),
        (
            ACCOUNT,
            "GET",
            {"status": 400, "json": {"code": -1022, "msg": "Signature for this request is not valid."}},
        ),
        (
            ACCOUNT,
            "GET",
            {"status": 400, "json": {"code": -1021, "msg": "Timestamp for this request is outside."}},
        ),
        (ACCOUNT, "GET", {"status": 403, "body": f"<html>blocked {SENTINEL_API_KEY}</html>"}),
        (ACCOUNT, "GET", {"status": 500, "body": ""}),
        (ACCOUNT, "GET", {"body": requests.exceptions.ReadTimeout("read timed out")}),
        (ACCOUNT, "GET", {"body": requests.exceptions.ConnectTimeout("connect timed out")}),
        (
            ACCOUNT,
            "GET",
            {
                "status": 429,
                "json": {"code": -1003, "msg": "Too many requests."},
                "headers": {"Retry-After": "1"},
            },
        ),
        (ORDER, "POST", {"status": 400, "json": {"code": -2019, "msg": "Margin is insufficient."}}),
        (ORDER, "POST", {"body": requests.exceptions.ReadTimeout("read timed out")}),
        (ORDER, "POST", {"callback": _echo_url_error}),
        (ORDER, "POST", {"status": 200, "body": "{truncated"}),
        (
            ORDER,
            "POST",
            {"status": 503, "json": {"msg": "Unknown error, please check your request or try again later."}},
        ),
        (
            ORDER,
            "POST",
            {
                "status": 418,
                "json": {"code": -1003, "msg": "Way too many requests; IP banned until 1."},
                "headers": {"Retry-After": "30"},
            },
        ),
        (ORDER, "POST", {"json": {"orderId": 1}}),  # never sent: the ban holds it back
    ]
    errors: list[BaseException] = []
    for url, method, answer in scenarios:
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
    # A private key that cannot be read, and a malformed key: the error must not quote them.
    bad_pem = f"-----BEGIN PRIVATE KEY-----\n{SENTINEL_SECRET}\n-----END PRIVATE KEY-----"
    for make in (
        lambda: signature("a=1", Credentials(SENTINEL_API_KEY, bad_pem, KeyType.RSA)),
        lambda: Credentials(SENTINEL_API_KEY + " \n", SENTINEL_SECRET, KeyType.HMAC),
    ):
        with pytest.raises(KlineoError) as caught:
            make()
        errors.append(caught.value)

    assert len(errors) >= 15
    signed_urls = [c.request.url for c in rsps.calls if "signature=" in c.request.url]
    signatures = [u.rsplit("signature=", 1)[1] for u in signed_urls]
    assert len(signatures) >= 15
    out = capsys.readouterr()
    haystacks = [captured_logs.getvalue(), out.out, out.err, caplog.text, repr(creds), str(creds)]
    for error in errors:
        haystacks += _exception_texts(error)
    assert "binance call failed" in captured_logs.getvalue()  # the logs were really captured
    for text in haystacks:
        assert SENTINEL_SECRET not in text
        assert SENTINEL_API_KEY not in text
        assert "signature=" not in text and "timestamp=" not in text
        for value in signatures:
            assert value not in text
        for url in signed_urls:
            assert url not in text
        assert "203.0.113.5" not in text
