"""GET /futures/order-attempts and the refused attempts POST /futures/order records (moto + simulator)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode

from botocore.exceptions import ClientError
from klineo.services.orders import idempotent_client_order_id
from klineo.store import aws as aws_clients
from klineo.store import flags
from klineo.store.connections import update_settings

from tests.helpers import load_event, with_user
from tests.integration.api.conftest import USER_A, USER_B
from tests.integration.futures.helpers import body_of, new_key, order_body, order_event, order_posts


def _attempts_event(user: str = USER_A, **query: Any) -> dict[str, Any]:
    """events/futures_order_attempts.json for ``user`` with exactly this query string."""
    event = with_user(load_event("futures_order_attempts"), user)
    raw = urlencode({k: str(v) for k, v in query.items()})
    event["rawQueryString"] = raw
    event["queryStringParameters"] = dict(parse_qsl(raw)) or None
    return event


def _attempts(invoke, user: str = USER_A, **query: Any) -> dict[str, Any]:
    """The listing's 200 body for ``user`` and ``query``."""
    response = invoke("futures_order_attempts", _attempts_event(user, **query))
    assert response["statusCode"] == 200, response["body"]
    return body_of(response)


def _refused_order(invoke, connection_id: str, key: str | None = None, **changes: Any) -> dict[str, Any]:
    """POST /futures/order of ``order_body(**changes)``: its 4xx error (asserted refused)."""
    event = order_event(order_body(connection_id, **changes), key=key or new_key())
    response = invoke("futures_order", event)
    assert 400 <= response["statusCode"] < 500, response["body"]
    return body_of(response)["error"]


def test_a_kill_switched_order_is_listed_as_refused_naming_its_gate(sim_env, invoke, futures_connection):
    """GIVEN the user's kill switch on WHEN an order is refused THEN the listing has it: refused, the gate
    and message the caller got, the order as asked, origin api and the id its key would have placed."""
    flags.set_user_kill_switch(USER_A, True)
    key = new_key()
    error = _refused_order(invoke, futures_connection.id, key)

    [attempt] = _attempts(invoke)["attempts"]

    assert attempt["outcome"] == "refused" and attempt["refusal"] == {
        "category": "conflict", "field": "user_kill_switch", "message": error["message"]}
    assert (attempt["side"], attempt["type"], attempt["quantity"], attempt["price"]) == (
        "BUY", "LIMIT", "0.01", "20000")
    assert (attempt["origin"], attempt["connection_id"], attempt["symbol"]) == (
        "api", futures_connection.id, "BTCUSDT")
    assert attempt["client_order_id"] == idempotent_client_order_id(USER_A, key) and attempt["order"] is None
    assert order_posts(sim_env) == []


def test_a_max_notional_refusal_is_listed_with_the_field_it_named_and_the_size_asked(
    sim_env, invoke, futures_connection
):
    """GIVEN max_notional_usdt 100 WHEN a quantity order and a quote_quantity order exceed it THEN both are
    listed naming max_notional_usdt, each with the size as it was asked (quote size: no quantity)."""
    update_settings(USER_A, futures_connection.id, {"max_notional_usdt": Decimal("100")})
    by_quantity = _refused_order(invoke, futures_connection.id)
    by_quote = _refused_order(invoke, futures_connection.id, quantity=None, quote_quantity="500")

    newest, oldest = _attempts(invoke, outcome="refused")["attempts"]

    assert by_quantity["field"] == by_quote["field"] == "max_notional_usdt"
    assert oldest["refusal"]["field"] == newest["refusal"]["field"] == "max_notional_usdt"
    assert (oldest["quantity"], oldest["quote_quantity"]) == ("0.01", None)
    assert (newest["quantity"], newest["quote_quantity"]) == (None, "500")
    assert newest["refusal"]["message"] == by_quote["message"]


def test_placed_and_refused_attempts_page_together_newest_first(sim_env, invoke, futures_connection):
    """GIVEN a refusal, a placed order, then a refusal WHEN listed one at a time THEN refused, placed,
    refused (newest first) across three pages, the placed one with its order; each filter keeps its own."""
    update_settings(USER_A, futures_connection.id, {"max_notional_usdt": Decimal("100")})
    _refused_order(invoke, futures_connection.id, quantity="0.02")
    update_settings(USER_A, futures_connection.id, {"max_notional_usdt": Decimal("100000")})
    placed = body_of(invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key())))
    flags.set_user_kill_switch(USER_A, True)
    _refused_order(invoke, futures_connection.id, symbol="ETHUSDT")

    pages, cursor = [], None
    for _ in range(4):
        page = _attempts(invoke, limit=1, **({"cursor": cursor} if cursor else {}))
        pages += page["attempts"]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert [a["outcome"] for a in pages] == ["refused", "placed", "refused"] and cursor is None
    assert [a["refusal"]["field"] for a in (pages[0], pages[2])] == ["user_kill_switch", "max_notional_usdt"]
    assert pages[1]["client_order_id"] == placed["client_order_id"] and pages[1]["refusal"] is None
    assert pages[1]["order"]["status"] == "NEW" and pages[1]["origin"] == "api"
    assert [a["outcome"] for a in _attempts(invoke, outcome="placed")["attempts"]] == ["placed"]
    assert [a["symbol"] for a in _attempts(invoke, symbol="ETHUSDT")["attempts"]] == ["ETHUSDT"]


def test_the_order_history_still_lists_orders_only(sim_env, invoke, futures_connection):
    """GIVEN a placed order and a refused one WHEN GET /futures/orders reads THEN the placed order alone."""
    placed = body_of(invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key())))
    flags.set_user_kill_switch(USER_A, True)
    _refused_order(invoke, futures_connection.id)

    history = invoke("futures_orders", with_user(load_event("futures_orders"), USER_A) | {
        "rawQueryString": "", "queryStringParameters": None})

    assert [o["client_order_id"] for o in body_of(history)["orders"]] == [placed["client_order_id"]]


def test_another_users_cursor_reads_only_the_callers_own_attempts(sim_env, invoke, futures_connection):
    """GIVEN two refusals of A and A's first page's cursor WHEN user B passes it THEN B's own (no) attempts,
    never A's second one."""
    flags.set_user_kill_switch(USER_A, True)
    _refused_order(invoke, futures_connection.id)
    _refused_order(invoke, futures_connection.id)
    cursor = _attempts(invoke, limit=1)["next_cursor"]
    assert cursor is not None

    assert _attempts(invoke, USER_B, cursor=cursor) == {"attempts": [], "next_cursor": None}
    assert len(_attempts(invoke, cursor=cursor)["attempts"]) == 1


def test_a_body_refused_for_its_shape_or_key_records_nothing(sim_env, invoke, futures_connection):
    """GIVEN a body that is not JSON, a LIMIT without price, a key refusal WHEN sent THEN 4xx and no
    attempt listed (nothing the gate judged)."""
    event = order_event(order_body(futures_connection.id), key=new_key())
    event["body"] = "{not json"
    bad_json = invoke("futures_order", event)
    no_price = invoke("futures_order",
                      order_event(order_body(futures_connection.id, price=None), key=new_key()))
    no_key = invoke("futures_order", order_event(order_body(futures_connection.id), key=None))

    assert [r["statusCode"] for r in (bad_json, no_price, no_key)] == [400, 422, 428]
    assert _attempts(invoke)["attempts"] == []


def test_a_failed_attempt_write_still_answers_the_refusal(sim_env, invoke, futures_connection, monkeypatch):
    """GIVEN the attempt's PutItem failing WHEN a kill-switched order comes THEN the same 409 refusal, not a
    500 (the failure is logged), and nothing listed."""
    flags.set_user_kill_switch(USER_A, True)
    dynamodb = aws_clients.dynamodb()
    put_item = dynamodb.put_item

    def failing(**request: Any) -> Any:
        if request["Item"]["sk"]["S"].startswith("ATTEMPT#"):
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "PutItem")
        return put_item(**request)

    monkeypatch.setattr(dynamodb, "put_item", failing)
    response = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))
    monkeypatch.setattr(dynamodb, "put_item", put_item)

    assert response["statusCode"] == 409, response["body"]
    assert json.loads(response["body"])["error"]["field"] == "user_kill_switch"
    assert _attempts(invoke)["attempts"] == []


def test_an_order_refused_after_its_claim_is_listed_each_time_its_key_is_sent(
    sim_env, invoke, futures_connection
):
    """GIVEN a quantity under the symbol's minimum (refused after its claim, which is given back) WHEN sent
    twice with the same key THEN both refusals are listed, naming quantity, under the id the key places."""
    key = new_key()
    first = _refused_order(invoke, futures_connection.id, key, quantity="0.0005")
    _refused_order(invoke, futures_connection.id, key, quantity="0.0005")

    attempts = _attempts(invoke)["attempts"]

    assert first["field"] == "quantity"
    assert [a["refusal"]["field"] for a in attempts] == ["quantity", "quantity"]
    assert {a["client_order_id"] for a in attempts} == {idempotent_client_order_id(USER_A, key)}
    assert order_posts(sim_env) == []
