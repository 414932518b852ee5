"""Fixtures for the HTTP routes: moto + the Binance simulator over loopback, and the real handlers.

Reusable by every route test (the futures routes too):
- ``sim_env``: every Binance base URL pointed at a fresh simulator (production = ``.url``, testnet
  and demo = ``.testnet_url``), AWS under moto, every layer cache cleared; yields the simulator.
- ``invoke``: ``invoke("balance", event)`` runs ``functions.balance.app.lambda_handler`` with a
  Lambda context and returns the proxy response. Every AWS call the handler makes is checked against
  the function's policy in template.yaml (``iam``, ``tests.iam_policy``): a call AWS would deny
  fails as AWS fails it, and fails the test even when the code catches it.
- ``create_connection``: ``create_connection(user, account_id="futures-full", environment=None)``
  creates a connection through the real create handler; returns a ``StoredConnection``.
- ``stored_connection``: a connection of ``USER_A`` on the simulator's production "futures-full" key.
- helpers: ``at_path(event, path, **path_parameters)`` moves an event to another concrete path,
  ``credentials_body(account, environment)`` is the JSON body for a demo account's keys,
  ``aws_refusing(operation, service)`` makes AWS refuse one operation while inside (a write that fails).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from botocore.exceptions import ClientError
from klineo.binance import clear_all_caches
from klineo.settings import get_settings
from klineo.store import aws as aws_clients
from klineo.store import secrets as secret_store

from local.binance_sim.accounts import DemoAccount
from local.binance_urls import binance_environment
from tests.helpers import load_event, response_json, with_body, with_user
from tests.iam_policy import PolicyGuard

USER_A = "a1a1a1a1-0000-4000-8000-00000000000a"
USER_B = "b2b2b2b2-0000-4000-8000-00000000000b"



@dataclasses.dataclass(frozen=True)
class LambdaContext:
    """The attributes Powertools reads from a Lambda context."""

    function_name: str = "klineo-test"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:ap-northeast-1:123456789012:function:klineo-test"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    log_group_name: str = "/aws/lambda/klineo-test"
    log_stream_name: str = "test"

    def get_remaining_time_in_millis(self) -> int:
        """Plenty."""
        return 20_000


@dataclasses.dataclass(frozen=True)
class StoredConnection:
    """A connection created through the create handler."""

    id: str
    user_id: str
    account: DemoAccount
    body: dict[str, Any] = dataclasses.field(repr=False)  # its key material: never in a failure's output


def _clear_layer_caches() -> None:
    clear_all_caches()
    secret_store.clear_cache()
    get_settings.cache_clear()


@pytest.fixture
def sim_env(aws, binance_sim, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Every Binance base URL on the simulator, AWS under moto; yields the simulator."""
    for name, value in binance_environment(binance_sim.url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BINANCE_HTTPS_PROXY", raising=False)
    _clear_layer_caches()
    yield binance_sim
    _clear_layer_caches()


@pytest.fixture
def iam(monkeypatch: pytest.MonkeyPatch) -> Iterator[PolicyGuard]:
    """The running handlers' AWS calls checked against their template.yaml policies (moto checks none);
    at the end of the test, no call may have been denied."""
    guard = PolicyGuard()
    guard.install(monkeypatch)
    yield guard
    assert not guard.denied, f"AWS calls IAM would deny:\n{guard.report()}"


@pytest.fixture
def reconcile(iam: PolicyGuard) -> Callable[..., dict[str, Any]]:
    """``reconcile(**options)``: one ``Reconciler(**options).run()`` acting as the order-reconciler
    function, so each AWS call it makes is checked against that function's template policy."""
    from klineo.services.reconcile import Reconciler

    def run(**options: Any) -> dict[str, Any]:
        with iam.acting_as("order_reconciler"):
            return Reconciler(**options).run()

    return run


@pytest.fixture
def invoke(aws, iam: PolicyGuard) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    """Run one function's lambda_handler (imported as ``functions.<name>.app``) on an event, under its
    IAM policy."""
    def run(function: str, event: dict[str, Any]) -> dict[str, Any]:
        module = importlib.import_module(f"functions.{function}.app")
        with iam.acting_as(function):
            return module.lambda_handler(copy.deepcopy(event), LambdaContext(function_name=function))

    return run


def at_path(event: dict[str, Any], path: str, **path_parameters: str) -> dict[str, Any]:
    """The event moved to concrete ``path`` (stage prefix kept), with these path parameters."""
    event = copy.deepcopy(event)
    stage = event["requestContext"].get("stage", "$default")
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    event["rawPath"] = raw_path
    event["requestContext"]["http"]["path"] = raw_path
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    return event


@contextmanager
def aws_refusing(operation: str, service: str,
                 when: Callable[[dict[str, Any]], bool] | None = None) -> Iterator[None]:
    """AWS refusing every ``operation`` call (throttled) while inside, or only those whose parameters
    ``when`` accepts: a delete that stops at that write."""
    client = aws_clients.secretsmanager() if service == "secrets-manager" else aws_clients.dynamodb()
    event = f"before-parameter-build.{service}.{operation}"

    def refuse(params: dict[str, Any], **_: object) -> None:
        if when is None or when(params):
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, operation)

    client.meta.events.register(event, refuse)
    try:
        yield
    finally:
        client.meta.events.unregister(event, refuse)


# How long a request ``dynamodb_requests`` holds waits for the others to be in flight with it (seconds).
IN_FLIGHT_WAIT = 3


@contextmanager
def dynamodb_requests(operation: str, subject: Callable[[dict[str, Any]], str | None],
                      parties: int | None = None) -> Iterator[list[str]]:
    """The subjects of the DynamoDB ``operation`` requests sent while inside (``subject`` of a request's
    parameters; None: not one of them); with ``parties``, each of them waits (in the thread sending it)
    until that many are in flight at once: one after another, the first waits alone until IN_FLIGHT_WAIT
    runs out and the barrier breaks (BrokenBarrierError from the call)."""
    sent: list[str] = []
    barrier = threading.Barrier(parties, timeout=IN_FLIGHT_WAIT) if parties else None

    def meet(params: dict[str, Any], **_: object) -> None:
        name = subject(params)
        if name is not None:
            sent.append(name)
            if barrier is not None:
                barrier.wait()

    client, event = aws_clients.dynamodb(), f"before-parameter-build.dynamodb.{operation}"
    client.meta.events.register(event, meet)
    try:
        yield sent
    finally:
        client.meta.events.unregister(event, meet)


def connection_event(name: str, connection_id: str, user: str, suffix: str = "") -> dict[str, Any]:
    """``events/<name>.json`` for one connection id and user."""
    return with_user(at_path(load_event(name), f"/exchange-connections/{connection_id}{suffix}",
                             id=connection_id), user)


def credentials_body(account: DemoAccount, environment: str | None = None) -> dict[str, Any]:
    """The JSON body with a demo account's keys (HMAC secret or PEM private key)."""
    secret = account.secret if account.key_type == "HMAC" else account.private_key_pem
    return {"environment": environment or account.environment, "key_type": account.key_type.lower(),
            "api_key": account.api_key, "secret": secret}


@pytest.fixture
def create_connection(sim_env, invoke) -> Callable[..., StoredConnection]:
    """Create a connection through the real create handler (fails the test if it is not 201)."""

    def create(user: str = USER_A, account_id: str = "futures-full", environment: str | None = None,
               label: str = "test key") -> StoredConnection:
        account = sim_env.account(account_id)
        body = {"label": label, **credentials_body(account, environment)}
        event = with_user(with_body(load_event("connection_create"), body), user)
        response = invoke("connection_create", event)
        assert response["statusCode"] == 201, response["body"]
        return StoredConnection(id=response_json(response)["id"], user_id=user, account=account, body=body)

    return create


@pytest.fixture
def stored_connection(create_connection) -> StoredConnection:
    """USER_A's connection on the simulator's production "futures-full" key (spot + futures)."""
    return create_connection(USER_A, "futures-full")
