"""Helpers of the futures route tests: events for the order routes, and what the simulated exchange saw."""

from __future__ import annotations

import copy
import importlib.util
import secrets as token_source
import time
import uuid
from decimal import Decimal
from typing import Any

from klineo.settings import get_settings
from klineo.store import aws as aws_clients
from klineo.store.connections import connection_sk, update_settings
from klineo.store.order_fills import FILLS_KEPT
from klineo.store.orders import OrderRecord, put_new_record

from local.binance_sim.accounts import DemoAccount, Permissions
from local.template import REPO_ROOT
from tests.helpers import load_event, response_json, with_body, with_user
from tests.integration.api.conftest import USER_A, at_path, connection_event, credentials_body

__all__ = [
    "ORDER_PATH",
    "age_record",
    "body_of",
    "exchange_orders",
    "fresh_handler",
    "hedge_long",
    "lease_run_out",
    "many_fill_orders",
    "new_key",
    "order_body",
    "order_event",
    "order_posts",
    "put_credentials",
    "raise_notional_limit",
    "second_key",
    "status_event",
]

ORDER_PATH = "/fapi/v1/order"
# A fill with each field at its longest (19-digit ids, 8-decimal amounts), as test_order_fills sizes them.
LONGEST_FILL = {"order_id": 9_223_372_036_854_775_807, "price": "123456.12345678", "qty": "123456789.123",
                "commission": "-1234.12345678", "commission_asset": "USDT",
                "realized_pnl": "-123456.12345678", "side": "SELL", "time": 9_999_999_999_999}


def order_body(connection_id: str, **changes: Any) -> dict[str, Any]:
    """A valid LIMIT BUY far below the mark (rests as NEW), with ``changes`` applied."""
    body = {
        "connection_id": connection_id,
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "0.010",
        "price": "20000",
        "timeInForce": "GTC",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def order_event(body: Any, user: str = USER_A, key: str | None = None) -> dict[str, Any]:
    """events/futures_order.json with this body and user, and the Idempotency-Key (None: no header)."""
    event = with_user(with_body(load_event("futures_order"), body), user)
    event["headers"].pop("content-length", None)
    if key is None:
        event["headers"].pop("idempotency-key", None)
    else:
        event["headers"]["idempotency-key"] = key
    return event


def status_event(client_order_id: str, user: str = USER_A, **query: str) -> dict[str, Any]:
    """events/futures_order_status.json for this clientOrderId, user and query string."""
    event = at_path(
        load_event("futures_order_status"), f"/futures/order/{client_order_id}", clientOrderId=client_order_id
    )
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    if query:
        event["queryStringParameters"] = dict(query)
    else:
        event.pop("queryStringParameters", None)
    return with_user(event, user)


def raise_notional_limit(connection_id: str, user: str = USER_A) -> None:
    """Lift the connection's max_notional_usdt far above any test order (the order then reaches Binance)."""
    update_settings(user, connection_id, {"max_notional_usdt": Decimal("100000000")})


def hedge_long(invoke: Any, create_connection: Any, quantity: str = "0.002") -> Any:
    """A connection on the hedge-mode demo account, futures enabled, its notional limit lifted, holding a
    LONG of ``quantity`` BTCUSDT bought through the order route; the connection."""
    connection = create_connection(USER_A, "futures-hedge")
    event = connection_event("futures_enable", connection.id, USER_A, "/futures/enable")
    enable = invoke("futures_enable", event)
    assert enable["statusCode"] == 200, enable["body"]
    raise_notional_limit(connection.id)
    entry = order_body(connection.id, type="MARKET", price=None, timeInForce=None, quantity=quantity,
                       positionSide="LONG")
    assert invoke("futures_order", order_event(entry, key=new_key()))["statusCode"] == 200
    return connection


def lease_run_out(client_order_id: str, user: str = USER_A) -> None:
    """The lease on the key's record has run out (the invocation holding it died or timed out)."""
    aws_clients.dynamodb().update_item(
        TableName=get_settings().data_table,
        Key={"pk": {"S": f"USER#{user}"}, "sk": {"S": f"ORDER#{client_order_id}"}},
        UpdateExpression="SET lease_until_ms = :past", ExpressionAttributeValues={":past": {"N": "1"}})


def new_key() -> str:
    """A fresh Idempotency-Key."""
    return str(uuid.uuid4())


def order_posts(sim: Any, account: DemoAccount | None = None) -> list[Any]:
    """Journal records of POST /fapi/v1/order (optionally for one account's key)."""
    return [
        r
        for r in sim.journal
        if r.method == "POST" and r.path == ORDER_PATH and (account is None or r.api_key == account.api_key)
    ]


def exchange_orders(sim: Any, account: DemoAccount) -> list[Any]:
    """Every futures order the simulated exchange holds for the account (open or not)."""
    state = sim.state.futures.state_for(account, time.time() * 1000)
    return list(copy.copy(state.orders).values())


def body_of(response: dict[str, Any]) -> Any:
    """The JSON body of a handler response."""
    return response_json(response)


def fresh_handler(function: str) -> Any:
    """A second, independent copy of ``functions/<function>/app.py`` (as another Lambda container would hold).

    Powertools' resolver keeps the current event on the module's ``app``; two containers never share
    it, so concurrent invocations in a test each get their own copy.
    """
    path = REPO_ROOT / "functions" / function / "app.py"
    spec = importlib.util.spec_from_file_location(f"functions.{function}.app_{uuid.uuid4().hex}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


def many_fill_orders(connection_id: str, count: int, *, status: str, params: dict[str, str]) -> list[str]:
    """``count`` records of USER_A in ``status``, each listing FILLS_KEPT fills at their longest, written
    straight to the store: their ids, oldest first."""
    ids = []
    for n in range(count):
        cid = f"many-fills-{n:03d}"
        created = f"2026-12-01T10:{n // 60:02d}:{n % 60:02d}.000Z"
        fills = [{**LONGEST_FILL, "trade_id": 9_000_000_000_000_000_000 + n * FILLS_KEPT + i}
                 for i in range(FILLS_KEPT)]
        assert put_new_record(OrderRecord(
            user_id=USER_A, client_order_id=cid, connection_id=connection_id, symbol="BTCUSDT", request={},
            params=params, status=status, attempt_ms=0, created_at=created, updated_at=created,
            order_id=LONGEST_FILL["order_id"], fills=fills))
        ids.append(cid)
    return ids


def forget_uid(connection_id: str) -> None:
    """GIVEN a connection stored before uids were recorded (its item has none): a key of another account is
    not recognised until it learns one."""
    aws_clients.dynamodb().update_item(
        TableName=get_settings().data_table,
        Key={"pk": {"S": f"USER#{USER_A}"}, "sk": {"S": connection_sk(connection_id)}},
        UpdateExpression="REMOVE binance_uid",
    )


def put_credentials(invoke, connection_id: str, account: DemoAccount) -> dict[str, Any]:
    """PUT /exchange-connections/{id}/credentials of USER_A with ``account``'s key: the answer."""
    event = connection_event("connection_credentials", connection_id, USER_A, "/credentials")
    return invoke("connection_credentials", with_body(event, credentials_body(account)))


def second_key(sim_env, account_id: str = "futures-full",
               permissions: Permissions | None = None) -> DemoAccount:
    """GIVEN another API key of the account, as its owner creates on Binance (same uid; the account's
    permissions unless given)."""
    api_key, secret = "K2" + token_source.token_hex(31), token_source.token_hex(32)
    return sim_env.add_key(account_id, api_key, secret, permissions)


def age_record(client_order_id: str, age_ms: int, *, send_by: bool = True, user_id: str = USER_A) -> None:
    """Make ``user_id``'s record an unsettled attempt started ``age_ms`` ago (its answer was never learned),
    whose POST had to be signed by then (``send_by_ms``: a protective order's), or (``send_by`` False) not
    saying by when (a record written before that was stored)."""
    send_by_ms = "send_by_ms = :at REMOVE #r" if send_by else "REMOVE #r, send_by_ms"
    aws_clients.dynamodb().update_item(
        TableName=get_settings().data_table,
        Key={"pk": {"S": f"USER#{user_id}"}, "sk": {"S": f"ORDER#{client_order_id}"}},
        UpdateExpression=f"SET #s = :unknown, attempt_ms = :at, {send_by_ms}",
        ExpressionAttributeNames={"#s": "status", "#r": "result"},
        ExpressionAttributeValues={":unknown": {"S": "UNKNOWN"},
                                   ":at": {"N": str(int(time.time() * 1000) - age_ms)}},
    )
