"""GET /futures/order-attempts and the refused attempts POST /futures/order records (moto + simulator)."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode

from botocore.exceptions import ClientError
from klineo.services.orders import idempotent_client_order_id
from klineo.store import aws as aws_clients
from klineo.store import flags
from klineo.store.connections import update_settings
from klineo.store.orders import get_order_record

from tests.helpers import load_event, with_user
from tests.integration.api.conftest import USER_A, USER_B
from tests.integration.futures.helpers import (
    body_of,
    lease_run_out,
    new_key,
    order_body,
    order_event,
    order_posts,
)


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


def _unsettled_record(connection_id: str, key: str, body: dict[str, Any], status: str | None = "UNKNOWN",
                      with_params: bool = True) -> str:
    """The key's record of an attempt begun a minute ago that never reached Binance, as a crash or a lost
    answer leaves it: ``status`` recorded with its parameters (None: PENDING, no parameters: the claim's
    invocation died before its outcome). Its clientOrderId."""
    from klineo.models.futures import FuturesOrderRequest
    from klineo.store.orders import create_order_record, record_order_outcome

    client_order_id = idempotent_client_order_id(USER_A, key)
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": body["quantity"],
              "price": body["price"], "timeInForce": "GTC", "positionSide": "BOTH",
              "newClientOrderId": client_order_id}
    create_order_record(USER_A, client_order_id, connection_id=connection_id, symbol="BTCUSDT",
                        request=FuturesOrderRequest(**body).fingerprint(),
                        params=params if with_params else {}, attempt_ms=int(time.time() * 1000) - 60_000)
    if status is not None:
        record_order_outcome(USER_A, client_order_id, status=status, params=params,
                             error={"category": "order_rejected", "message": "margin is insufficient"}
                             if status == "REJECTED" else None)
    return client_order_id


def _outcomes(invoke) -> list[tuple[str, str | None]]:
    """Each listed attempt's outcome and the field its refusal named (None: no refusal), newest first."""
    return [(a["outcome"], (a["refusal"] or {}).get("field")) for a in _attempts(invoke)["attempts"]]


def test_a_gate_refusing_the_resume_of_a_keys_unsettled_order_is_listed(sim_env, invoke, futures_connection):
    """GIVEN a key whose order's outcome is unknown and the user's kill switch turned on WHEN the key comes
    again (the claim finds the record, its switch check fails) THEN 409 naming the switch, listed as refused
    under the key's id beside the unknown order, nothing sent, the record unchanged."""
    key = new_key()
    body = order_body(futures_connection.id)
    client_order_id = _unsettled_record(futures_connection.id, key, body)
    flags.set_user_kill_switch(USER_A, True)

    error = _refused_order(invoke, futures_connection.id, key)

    attempts = _attempts(invoke)["attempts"]
    assert error["field"] == "user_kill_switch"
    assert _outcomes(invoke) == [("refused", "user_kill_switch"), ("placed", None)]
    assert {a["client_order_id"] for a in attempts} == {client_order_id}
    assert attempts[0]["refusal"]["message"] == error["message"]
    assert attempts[1]["order"]["status"] == "UNKNOWN"
    assert order_posts(sim_env) == []


def test_a_gate_closing_between_the_claim_and_the_resume_is_listed(
    sim_env, invoke, futures_connection, monkeypatch
):
    """GIVEN a key's unknown order WHEN the user's kill switch is turned on by another writer between the
    claim (which found the record) and the resume's own transaction THEN the resume's refusal is listed."""
    from klineo.services import futures as futures_service

    key = new_key()
    _unsettled_record(futures_connection.id, key, order_body(futures_connection.id))
    resume = futures_service.claim_resume

    def switched_meanwhile(*args: Any, **kwargs: Any) -> Any:
        flags.set_user_kill_switch(USER_A, True)
        return resume(*args, **kwargs)

    monkeypatch.setattr(futures_service, "claim_resume", switched_meanwhile)
    error = _refused_order(invoke, futures_connection.id, key)

    assert error["field"] == "user_kill_switch"
    assert _outcomes(invoke) == [("refused", "user_kill_switch"), ("placed", None)]
    assert order_posts(sim_env) == []


def test_a_limit_refusing_the_resend_of_a_keys_unknown_order_is_listed(sim_env, invoke, futures_connection):
    """GIVEN a key's unknown order that never reached Binance and max_notional_usdt lowered under it WHEN the
    key comes again (the lookup finds nothing, so it would be sent again) THEN 422 naming the limit, listed
    as refused; the record keeps its UNKNOWN state (a later retry looks it up again), nothing sent."""
    key = new_key()
    client_order_id = _unsettled_record(futures_connection.id, key, order_body(futures_connection.id))
    update_settings(USER_A, futures_connection.id, {"max_notional_usdt": Decimal("100")})

    error = _refused_order(invoke, futures_connection.id, key)

    assert error["field"] == "max_notional_usdt"
    assert _outcomes(invoke) == [("refused", "max_notional_usdt"), ("placed", None)]
    assert get_order_record(USER_A, client_order_id).status == "UNKNOWN"
    assert order_posts(sim_env) == []


def test_the_symbols_rules_refusing_a_crashed_claims_order_on_resume_is_listed(
    sim_env, invoke, futures_connection
):
    """GIVEN a key whose claim's invocation died before its outcome (no parameters recorded) WHEN the key
    comes again and the order, rounded again from its request, is under the symbol's minimum quantity THEN
    400 naming quantity, listed as refused, nothing sent."""
    key = new_key()
    body = order_body(futures_connection.id, quantity="0.0005")
    _unsettled_record(futures_connection.id, key, body, status=None, with_params=False)

    error = _refused_order(invoke, futures_connection.id, key, quantity="0.0005")

    assert error["field"] == "quantity"
    assert _outcomes(invoke) == [("refused", "quantity"), ("placed", None)]
    assert order_posts(sim_env) == []


def test_a_crashed_claims_order_that_reached_binance_is_answered_though_the_market_now_refuses_it(
    sim_env, invoke, futures_connection, monkeypatch
):
    """GIVEN a MARKET BUY 0.002 whose invocation died after Binance filled it, before its outcome was recorded
    (no parameters), and a mark since fallen so far that 0.002 is under the minimum notional WHEN the key
    comes again THEN the filled order is answered (source existing) and recorded with what Binance holds:
    never a 400 for an order that exists, nothing sent again, no refused attempt listed."""
    from klineo.services import futures as futures_service

    key = new_key()
    body = order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None, quantity="0.002")
    with monkeypatch.context() as dying:
        dying.setattr(futures_service, "record_order_outcome_quietly", lambda *a, **k: None)  # dies here
        assert invoke("futures_order", order_event(body, key=key))["statusCode"] == 200
    client_order_id = idempotent_client_order_id(USER_A, key)
    assert get_order_record(USER_A, client_order_id).params == {}
    lease_run_out(client_order_id)
    sim_env.set_mark_price("BTCUSDT", 100.0)

    again = invoke("futures_order", order_event(body, key=key))

    assert again["statusCode"] == 200, again["body"]
    answer = body_of(again)
    assert (answer["client_order_id"], answer["status"]) == (client_order_id, "FILLED")
    assert answer["source"] == "existing"
    record = get_order_record(USER_A, client_order_id)
    assert (record.status, record.params["side"], record.params["quantity"]) == ("FILLED", "BUY", "0.002")
    assert _outcomes(invoke) == [("placed", None)]
    assert len(order_posts(sim_env)) == 1


def test_a_crashed_claims_order_binance_never_got_is_looked_up_once_and_sent_once(
    sim_env, invoke, futures_connection
):
    """GIVEN a key whose claim's invocation died a minute ago before its order reached Binance (no
    parameters recorded) WHEN the key comes again THEN Binance is asked for it ONCE (its absence is then
    final: older than recvWindow), the order is rounded and sent once, and answered."""
    key = new_key()
    body = order_body(futures_connection.id)
    client_order_id = _unsettled_record(futures_connection.id, key, body, status=None, with_params=False)
    lease_run_out(client_order_id)
    sim_env.journal.clear()

    placed = invoke("futures_order", order_event(body, key=key))

    assert placed["statusCode"] == 200, placed["body"]
    assert body_of(placed)["client_order_id"] == client_order_id
    calls = [(r.method, r.path) for r in sim_env.journal if r.path == "/fapi/v1/order"]
    assert calls == [("GET", "/fapi/v1/order"), ("POST", "/fapi/v1/order")]


def test_a_crashed_claims_conditional_order_is_found_and_recorded_as_binance_holds_it(
    sim_env, invoke, futures_connection, monkeypatch
):
    """Guard (passes before the change too, through the re-rounding): GIVEN a STOP_MARKET BUY placed at the
    algo service by an invocation that died before its outcome was recorded WHEN the key comes again THEN
    the open conditional order is answered, recorded with the trigger, quantity and clientAlgoId Binance
    holds (now read from Binance's order), and never placed twice."""
    from klineo.services import futures as futures_service

    key = new_key()
    trigger = str((Decimal(str(sim_env.mark_price("BTCUSDT"))) * Decimal("1.1")).quantize(Decimal("0.1")))
    body = order_body(futures_connection.id, type="STOP_MARKET", price=None, timeInForce=None,
                      quantity="0.002", triggerPrice=trigger)
    with monkeypatch.context() as dying:
        dying.setattr(futures_service, "record_order_outcome_quietly", lambda *a, **k: None)  # dies here
        assert invoke("futures_order", order_event(body, key=key))["statusCode"] == 200
    client_algo_id = idempotent_client_order_id(USER_A, key)
    lease_run_out(client_algo_id)

    again = invoke("futures_order", order_event(body, key=key))

    assert again["statusCode"] == 200, again["body"]
    assert (body_of(again)["status"], body_of(again)["source"]) == ("NEW", "existing")
    params = get_order_record(USER_A, client_algo_id).params
    assert (params["type"], params["quantity"]) == ("STOP_MARKET", "0.002")
    assert params["clientAlgoId"] == client_algo_id
    assert Decimal(params["triggerPrice"]) == Decimal(trigger)
    assert len([r for r in sim_env.journal if r.method == "POST" and r.path == "/fapi/v1/algoOrder"]) == 1


def test_a_limit_refusing_the_resend_of_a_rejected_order_is_told_by_its_record_alone(
    sim_env, invoke, futures_connection
):
    """Guard (passes before the change too): GIVEN a key whose order Binance rejected and max_notional_usdt
    lowered under it WHEN the key comes again THEN 422 naming the limit, told by the order's own record
    (REJECTED, the refusal its error): ONE listed attempt, no refused one written twice."""
    key = new_key()
    _unsettled_record(futures_connection.id, key, order_body(futures_connection.id), status="REJECTED")
    update_settings(USER_A, futures_connection.id, {"max_notional_usdt": Decimal("100")})

    error = _refused_order(invoke, futures_connection.id, key)

    assert error["field"] == "max_notional_usdt"
    assert _outcomes(invoke) == [("placed", "max_notional_usdt")]
    assert order_posts(sim_env) == []
