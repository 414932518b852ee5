"""Fixtures for the futures routes: the API fixtures (moto + simulator + real handlers) plus order helpers.

Reused from tests/integration/api/conftest.py: ``sim_env``, ``invoke``, ``reconcile``, ``create_connection``,
``stored_connection``, USER_A / USER_B. Added here:
- ``atomic_dynamodb``: moto's put/update/delete/transaction made atomic, as DynamoDB's conditional writes are
  (moto checks the condition and writes in two steps, so two threads could both pass);
- ``futures_connection``: USER_A's connection with futures enabled through the real enable route;
- ``futures_clients``: the futures service's Binance clients with other options (short read
  timeout, no retries);
- ``wait_until``: poll a predicate.
Event and exchange helpers live in tests/integration/futures/helpers.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any

import pytest
from klineo.binance import BinanceClient, Environment, Market
from klineo.services import futures as futures_service
from klineo.services import orders as order_core
from moto.dynamodb.models import DynamoDBBackend

from tests import helpers
from tests.integration.api import conftest as api_fixtures
from tests.integration.api.conftest import USER_A, StoredConnection, connection_event

# The API engineer's fixtures, made available to this folder's tests.
sim_env = api_fixtures.sim_env
iam = api_fixtures.iam
invoke = api_fixtures.invoke
reconcile = api_fixtures.reconcile
create_connection = api_fixtures.create_connection
stored_connection = api_fixtures.stored_connection


@pytest.fixture(autouse=True)
def atomic_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serialise moto's item writes: DynamoDB evaluates a condition and writes atomically, moto does not."""
    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)

        def locked(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return __original(*args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, wraps(original)(locked))


@pytest.fixture(autouse=True)
def no_conditional_type_on_the_order_endpoint(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every futures test on the simulator: its journal holds no -4120 on /fapi/v1/order.

    The simulator answers -4120 to any conditional type sent to /fapi/v1/order (as Binance does since
    2025-12-09, facts §7), so across the session's journals this proves none of ours ever went there.
    """
    if "sim_env" not in request.fixturenames:
        yield
        return
    sim = request.getfixturevalue("sim_env")  # set up now, so it is torn down after this check
    yield
    refused = [r for r in sim.journal if r.path == "/fapi/v1/order" and r.code == -4120]
    assert refused == [], "a conditional order type was sent to /fapi/v1/order"


@pytest.fixture(autouse=True)
def fast_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorter pauses between lookups after a lost answer (same number of tries)."""
    monkeypatch.setattr(order_core, "QUERY_DELAYS_S", (0.05, 0.1, 0.2, 0.4))


@pytest.fixture
def futures_connection(create_connection, invoke) -> StoredConnection:
    """USER_A's "futures-full" connection with futures enabled through POST .../futures/enable."""
    connection = create_connection(USER_A, "futures-full")
    response = invoke(
        "futures_enable", connection_event("futures_enable", connection.id, USER_A, "/futures/enable")
    )
    assert response["statusCode"] == 200, response["body"]
    return connection


@pytest.fixture
def futures_clients(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``futures_clients(read_timeout=0.5, max_retries=0)``: the futures service's clients so made.

    A short read timeout loses a delayed answer the way a real one is lost; max_retries=0 makes
    a failing lookup fail at once instead of after the client's 1 s + 2 s backoff.
    """

    def apply(**options: Any) -> None:
        clients: dict[tuple[Market, Environment], BinanceClient] = {}

        def get_client(market: Market, environment: Environment) -> BinanceClient:
            key = (Market(market), Environment(environment))
            if key not in clients:
                clients[key] = BinanceClient(market, environment, **options)
            return clients[key]

        monkeypatch.setattr(futures_service, "get_client", get_client)

    return apply


@pytest.fixture
def wait_until() -> Iterator[Callable[[Callable[[], bool], float], bool]]:
    """``wait_until(predicate, timeout_s)``: poll until true (for background simulator threads)."""

    yield helpers.wait_until
