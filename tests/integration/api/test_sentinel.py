"""The sentinel: a unique secret sent through every route, content type and error path never comes back.

It goes in every body field, as a key, as a whole (broken) body, in a form, a multipart body, a
text body, base64, an oversized body, every query parameter (value and name), every path
parameter and a few headers, on all routes of the real handlers (moto + the Binance simulator),
and through a crash. Afterwards no response, no log line (formatted, extras and tracebacks
included) and no DynamoDB item holds it. Secrets Manager is where a secret is meant to be.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from klineo.observability import logger
from klineo.store import aws as aws_clients

from tests.helpers import EVENTS_DIR, load_event, with_body
from tests.integration.api.conftest import USER_A

# Not a field name (a hyphen), and a Binance-shaped 64-character secret that would be one.
SENTINEL = f"S3ntinel-{uuid.uuid4().hex}"
KEY_SHAPED = uuid.uuid4().hex + uuid.uuid4().hex
ROUTES = sorted(p.stem for p in EVENTS_DIR.glob("*.json")
                if "routeKey" in json.loads(p.read_text(encoding="utf-8")))
BODY_FIELDS = ["label", "environment", "key_type", "api_key", "secret", "connection_id", "symbol", "side",
               "type", "quantity", "price", "timeInForce", "positionSide", "interval", "size", "mode",
               "status", "enabled", "parameters"]


def _event(route: str, content_type: str | None, body: str | None, *,
           encoded: bool = False) -> dict[str, Any]:
    event = load_event(route)
    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = USER_A
    if body is not None:
        event = with_body(event, body, base64_encoded=encoded)
    if content_type is None:
        event["headers"].pop("content-type", None)
    else:
        event["headers"]["content-type"] = content_type
    return event


def _body_variants(secret: str) -> Iterator[tuple[str | None, str, bool]]:
    """(content type, body, base64?) pairs carrying ``secret`` in every way a body can."""
    keys = {"environment": "testnet", "api_key": secret, "secret": secret}
    for field in BODY_FIELDS:
        yield "application/json", json.dumps({**keys, field: secret}), False
    yield "application/json", json.dumps({field: {"nested": [secret]} for field in BODY_FIELDS}), False
    for key in (secret, KEY_SHAPED):
        yield "application/json", json.dumps({key: secret, "parameters": {key: secret}}), False
    yield "application/json", json.dumps({"type": "sma_crossover", "parameters": {"fast": secret}}), False
    yield "application/json", json.dumps(keys), True
    yield "application/json", secret, False
    yield "application/json", '{"secret": "' + secret, False
    yield "application/json", "[" * 1000 + json.dumps(secret) + "]" * 1000, False
    yield "application/json", json.dumps({"secret": secret, "pad": "x" * 20_000}), False
    yield "application/x-www-form-urlencoded", json.dumps(keys), False
    yield "application/x-www-form-urlencoded", f"secret={secret}&api_key={secret}&{secret}=1", False
    yield "multipart/form-data", json.dumps(keys), False
    multipart = f'--b\r\nContent-Disposition: form-data; name="secret"\r\n\r\n{secret}\r\n--b--\r\n'
    yield "multipart/form-data; boundary=b", multipart, True
    yield "text/plain", secret, False
    yield f"application/{secret}", json.dumps(keys), False
    yield None, json.dumps(keys), False


def _elsewhere_variants(route: str, secret: str) -> Iterator[dict[str, Any]]:
    """Events carrying ``secret`` in the query, the path parameters and headers."""
    event = _event(route, "application/json", None)
    query = {"symbol": secret, "interval": secret, "limit": secret, "market": secret,
             "environment": secret, "connection_id": secret, secret: secret, KEY_SHAPED: secret}
    queried = copy.deepcopy(event)
    queried["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    queried["queryStringParameters"] = query
    yield queried
    twice = copy.deepcopy(event)
    twice["rawQueryString"] = f"{secret}=1&{secret}=2&limit={secret}&limit=1"
    twice["queryStringParameters"] = {secret: "1,2", "limit": f"{secret},1"}
    yield twice
    if event.get("pathParameters"):
        pathed = copy.deepcopy(event)
        pathed["pathParameters"] = {name: secret for name in event["pathParameters"]}
        for value in event["pathParameters"].values():
            pathed["rawPath"] = pathed["rawPath"].replace(value, secret)
        pathed["requestContext"]["http"]["path"] = pathed["rawPath"]
        yield pathed
    headed = copy.deepcopy(event)
    headed["headers"].update({"idempotency-key": secret, "x-api-key": secret, "origin": secret})
    yield headed


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every log line the layer and anything else writes, formatted as they would ship."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    loggers = [logging.getLogger(logger.name), logging.getLogger()]
    for each in loggers:
        each.addHandler(handler)
    yield stream
    for each in loggers:
        each.removeHandler(handler)


def _dynamodb_text(aws) -> str:
    client = aws_clients.dynamodb()
    items = [client.scan(TableName=name)["Items"] for name in client.list_tables()["TableNames"]]
    return json.dumps(items, default=str)


def _response_text(response: dict[str, Any]) -> str:
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", errors="replace")
    return json.dumps(response) + body


def test_sentinel_secret_never_leaves_through_any_route_or_error(
    sim_env, invoke, aws, create_connection, captured_logs, caplog, capsys, monkeypatch
):
    """GIVEN a unique secret in every input of every route WHEN each is sent THEN it is nowhere after."""
    create_connection(USER_A)  # routes on a connection then find one: their deeper paths run too
    statuses: set[int] = set()
    for route in ROUTES:
        events = [_event(route, ct, body, encoded=encoded) for ct, body, encoded in _body_variants(SENTINEL)]
        for event in [*events, *_elsewhere_variants(route, SENTINEL)]:
            response = invoke(route, event)
            statuses.add(response["statusCode"])
            text = _response_text(response)
            assert SENTINEL not in text and KEY_SHAPED not in text, (route, event.get("headers"))
    monkeypatch.setattr("functions.kill_switch_get.app.get_kill_switch",
                        lambda _user: (_ for _ in ()).throw(ValueError(f"broken near {SENTINEL}")))
    crashed = invoke("kill_switch_get", _event("kill_switch_get", None, None))
    assert crashed["statusCode"] == 500 and SENTINEL not in _response_text(crashed)

    printed = capsys.readouterr()
    logged = "\n".join([captured_logs.getvalue(), printed.out, printed.err,
                        *(json.dumps(r.__dict__, default=str) for r in caplog.records)])
    assert "unhandled error" in logged  # the crash was logged, without its text
    for secret in (SENTINEL, KEY_SHAPED):
        assert secret not in logged
        assert secret not in _dynamodb_text(aws)
    assert {400, 404, 413, 415, 422} <= statuses
