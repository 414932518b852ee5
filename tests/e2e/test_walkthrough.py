"""The README walkthrough over real HTTP against the whole local stack, plus the authorizer and isolation."""

from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from local.template import REPO_ROOT

from .conftest import RunningStack

pytestmark = pytest.mark.e2e

DEMO_ACCOUNTS = json.loads((REPO_ROOT / "local" / "demo-accounts.json").read_text(encoding="utf-8"))[
    "accounts"
]
FUTURES_FULL = next(a for a in DEMO_ACCOUNTS if a["id"] == "futures-full")


def _create_connection(stack: RunningStack, token: str | None = None) -> dict:
    response = stack.call(
        "POST",
        "/exchange-connections",
        token=token,
        json={
            "label": "demo futures",
            "environment": "production",
            "key_type": "hmac",
            "api_key": FUTURES_FULL["api_key"],
            "secret": FUTURES_FULL["secret"],
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_readme_walkthrough_from_connection_to_strategy_run(stack: RunningStack) -> None:
    """Connection → test → balance → futures → idempotent order → paper strategy → tick → its run."""
    # GIVEN the demo user's token from the banner and the futures-full demo key
    # WHEN a connection is created with the demo key
    connection = _create_connection(stack)
    connection_id = connection["id"]
    # THEN it is stored with the key masked and the secret nowhere
    assert connection["api_key_masked"] != FUTURES_FULL["api_key"]
    assert FUTURES_FULL["secret"] not in json.dumps(connection)
    listed = stack.call("GET", "/exchange-connections").json()["connections"]
    assert connection_id in [c["id"] for c in listed]

    # WHEN it is tested (spot only) THEN the keys work
    tested = stack.call("POST", f"/exchange-connections/{connection_id}/test")
    assert tested.status_code == 200, tested.text
    assert tested.json()["ok"] is True

    # WHEN its balance is read THEN the demo account's spot balances come back
    balance = stack.call("GET", f"/exchange-connections/{connection_id}/balance")
    assert balance.status_code == 200, balance.text
    assets = {b["asset"]: b["free"] for b in balance.json()["balances"]}
    assert assets["USDT"] == "10000"  # trimmed as every amount the API answers
    assert "BNB" not in assets  # zero balances are left out

    # WHEN futures are enabled THEN the connection says so
    enabled = stack.call("POST", f"/exchange-connections/{connection_id}/futures/enable")
    assert enabled.status_code == 200, enabled.text
    assert enabled.json()["futures_enabled"] is True

    # WHEN an order is placed twice with the same Idempotency-Key
    key = f"e2e-{uuid.uuid4().hex[:12]}"
    order = {
        "connection_id": connection_id,
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "MARKET",
        "quantity": "0.005",
    }
    first = stack.call("POST", "/futures/order", json=order, headers={"Idempotency-Key": key})
    second = stack.call("POST", "/futures/order", json=order, headers={"Idempotency-Key": key})
    # THEN it was placed once: the second answer is the same order
    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert first.json()["source"] == "placed"
    assert second.json()["source"] == "existing"
    assert second.json()["order_id"] == first.json()["order_id"]
    assert second.json()["client_order_id"] == first.json()["client_order_id"]
    # AND Binance (the simulator) knows it by its client order id
    status = stack.call(
        "GET",
        f"/futures/order/{first.json()['client_order_id']}",
        params={"connection_id": connection_id, "symbol": "BTCUSDT"},
    )
    assert status.status_code == 200, status.text
    assert status.json()["order_id"] == first.json()["order_id"]

    # WHEN a paper strategy is created, a runner tick is triggered and the strategy is read
    created = stack.call(
        "POST",
        "/strategies",
        json={
            "connection_id": connection_id,
            "symbol": "BTCUSDT",
            "interval": "1m",
            "type": "sma_crossover",
            "parameters": {"fast": 5, "slow": 20},
            "size": "0.002",
            "mode": "paper",
        },
    )
    assert created.status_code in (200, 201), created.text
    strategy_id = created.json()["id"]
    # (a strategy decides first on the first candle that closes after its creation: the next minute's)
    time.sleep(60 - time.time() % 60 + 1)
    tick = requests.post(f"{stack.api}/__local__/scheduler/tick", timeout=120)
    assert tick.status_code == 200, tick.text
    detail = stack.call("GET", f"/strategies/{strategy_id}")
    # THEN the tick dispatched it, the worker ran it, and its run is visible right away
    assert detail.status_code == 200, detail.text
    summary = tick.json()
    assert summary["schedules"][0]["function"] == "StrategyDispatcherFunction"
    assert summary["queues"]["messages"] >= 1 and summary["queues"]["failed"] == 0, summary
    runs = detail.json()["runs"]
    assert runs, detail.json()
    assert runs[0]["mode"] == "paper"
    assert detail.json()["last_run_close_time"] == runs[0]["close_time"]


def test_another_users_connection_is_404(stack: RunningStack) -> None:
    """User B cannot see, test, read or delete user A's connection: 404, never A's data."""
    # GIVEN a connection of the demo user and a token for another user
    connection_id = _create_connection(stack)["id"]
    other = stack.token_for("other-user")
    # WHEN the other user reaches for it
    answers = [
        stack.call("GET", f"/exchange-connections/{connection_id}/balance", token=other),
        stack.call("POST", f"/exchange-connections/{connection_id}/test", token=other),
        stack.call("DELETE", f"/exchange-connections/{connection_id}", token=other),
    ]
    # THEN each is 404 and the connection is still the demo user's
    for answer in answers:
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["category"] == "not_found"
    assert connection_id not in [
        c["id"] for c in stack.call("GET", "/exchange-connections", token=other).json()["connections"]
    ]
    assert stack.call("GET", f"/exchange-connections/{connection_id}/balance").status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic ZGVtby11c2VyOnB3", "Bearer not-a-token"],
    ids=["missing", "not-bearer", "garbage"],
)
def test_requests_without_a_valid_token_are_401(stack: RunningStack, authorization: str | None) -> None:
    """Missing, non-Bearer or malformed Authorization: API Gateway's 401 body."""
    # GIVEN / WHEN
    headers = {"Authorization": authorization} if authorization else {}
    response = requests.get(f"{stack.api}/exchange-connections", headers=headers, timeout=10)
    # THEN
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}


def test_unsigned_expired_and_foreign_tokens_are_401(stack: RunningStack) -> None:
    """alg=none, a token signed by another key, and an expired dev token are all refused."""
    # GIVEN three bad tokens with the demo user's claims (the expired one signed by the stack's own key)
    claims = jwt.decode(stack.token, options={"verify_signature": False})
    header = {"kid": jwt.get_unverified_header(stack.token)["kid"]}
    stack_key = serialization.load_pem_private_key((stack.state_dir / "dev-jwt-key.pem").read_bytes(), None)
    unsigned = jwt.encode(claims, key=None, algorithm="none", headers=header)
    foreign = jwt.encode(
        claims,
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        algorithm="RS256",
        headers=header,
    )
    expired = jwt.encode(
        {**claims, "exp": int(time.time()) - 10}, stack_key, algorithm="RS256", headers=header
    )
    # WHEN each is used / THEN each is refused before any function runs
    for token in (unsigned, foreign, expired):
        response = requests.get(
            f"{stack.api}/exchange-connections", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert response.status_code == 401, token
        assert response.json() == {"message": "Unauthorized"}


def test_cors_preflight_is_answered_for_the_frontend_origin(stack: RunningStack) -> None:
    """The template's CorsConfiguration answers the frontend's preflight for an order with a key."""
    # GIVEN / WHEN
    response = requests.options(
        f"{stack.api}/futures/order",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,idempotency-key",
        },
        timeout=10,
    )
    # THEN
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "idempotency-key" in response.headers["access-control-allow-headers"]


def test_an_answers_request_id_finds_its_log_lines(stack: RunningStack) -> None:
    """GIVEN a failing request (404) WHEN its X-Request-Id is sought in the logs THEN its lines are there."""
    response = stack.call("GET", f"/strategies/{uuid.uuid4().hex}")
    request_id = response.headers["X-Request-Id"]
    assert response.status_code == 404
    assert response.json()["error"]["request_id"] == request_id

    deadline = time.monotonic() + 30
    while not (lines := _log_lines_of(stack, request_id)) and time.monotonic() < deadline:
        time.sleep(0.2)  # polling the console for the condition, not a fixed wait
    assert [line["message"] for line in lines] == ["request failed"]
    assert lines[0]["status"] == 404


def _log_lines_of(stack: RunningStack, request_id: str) -> list[dict]:
    lines = []
    for text in stack.console().splitlines():
        start = text.find("{")
        if start < 0:
            continue
        try:
            line = json.loads(text[start:])
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("correlation_id") == request_id:
            lines.append(line)
    return lines
