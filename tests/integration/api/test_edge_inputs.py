"""Requests at the edges of what JSON, datetime, DynamoDB and the routes take: a 4xx naming what is
wrong, never a 500, and never a request quietly read as another one (moto + simulator + real handlers)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl

import pytest
from botocore.exceptions import ClientError
from klineo.store import aws as aws_clients

from local.template import function_specs
from tests.helpers import load_event, response_json, with_body, with_user
from tests.integration.api.conftest import USER_A, at_path, connection_event


def _body_of(name: str) -> dict[str, Any]:
    event = load_event(name)
    raw = event["body"]
    if event.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return json.loads(raw)


def _with_query(event: dict[str, Any], raw: str) -> dict[str, Any]:
    event = json.loads(json.dumps(event))
    event["rawQueryString"] = raw
    event["queryStringParameters"] = dict(parse_qsl(raw, keep_blank_values=True)) or None
    return event


def _backtest_event(body: dict[str, Any]) -> dict[str, Any]:
    return with_user(with_body(load_event("strategy_backtest"), body), USER_A)


def _refused(response: dict[str, Any], field: str | None) -> None:
    """A 4xx whose error names ``field``."""
    assert 400 <= response["statusCode"] < 500, (response["statusCode"], response["body"])
    assert response_json(response)["error"].get("field") == field


@pytest.mark.parametrize("function", ["futures_order", "connection_create", "kill_switch_set",
                                      "strategy_create"])
def test_json_integer_over_4300_digits_is_bad_json_not_a_500(sim_env, invoke, function):
    """A JSON integer of 4,301 digits (past Python's int conversion limit) is a 400 naming the body."""
    raw = '{"quantity": ' + "1" * 4301 + "}"

    response = invoke(function, with_user(with_body(load_event(function), raw), USER_A))

    _refused(response, "body")


@pytest.mark.parametrize(("field", "value"), [("start", "0001-01-01T00:00:00+01:00"),
                                              ("end", "9999-12-31T23:59:59-01:00"),
                                              ("start", "2016-12-31T23:59:59Z")])
def test_backtest_time_outside_binances_years_is_refused_naming_it(sim_env, invoke, field, value):
    """A backtest start/end before 2017 or whose UTC time leaves datetime's years is a 422 naming it."""
    body = {**_body_of("strategy_backtest"), field: value}

    response = invoke("strategy_backtest", _backtest_event(body))

    _refused(response, field)


def test_backtest_in_year_one_is_refused_not_a_500(sim_env, invoke):
    """A backtest period in year 1 (its warm-up would reach year 0) is a 422 naming start."""
    body = {**_body_of("strategy_backtest"), "start": "0001-01-01T00:00:00Z", "end": "0001-02-01T00:00:00Z"}

    response = invoke("strategy_backtest", _backtest_event(body))

    _refused(response, "start")


def _dynamodb_between_rule(params: dict[str, Any], **_: Any) -> None:
    """Real DynamoDB's rule that moto does not check: a BETWEEN's lower bound above its upper one is a
    ValidationException."""
    if "BETWEEN :low AND :high" in params.get("KeyConditionExpression", ""):
        values = params["ExpressionAttributeValues"]
        if values[":low"]["S"] > values[":high"]["S"]:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": (
                "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound to be greater "
                "than or equal to lower bound")}}, "Query")


def test_order_history_cursor_older_than_from_is_refused_naming_cursor(sim_env, invoke):
    """GET /futures/orders?from=T with a cursor from before T is a 400 naming cursor, never a Query that
    DynamoDB refuses (a 500)."""
    events = aws_clients.dynamodb().meta.events
    events.register("before-parameter-build.dynamodb.Query", _dynamodb_between_rule)
    cursor = base64.urlsafe_b64encode(b"1700000000000#klneo_abc").decode().rstrip("=")
    query = f"from=1750000000000&cursor={cursor}"
    event = _with_query(with_user(load_event("futures_orders"), USER_A), query)

    response = invoke("futures_orders", event)

    _refused(response, "cursor")


def _strategy_raw(connection_id: str, parameters: str) -> str:
    """A strategy body as raw JSON text (so that a number keeps exactly the digits written)."""
    head = json.dumps({"connection_id": connection_id, "symbol": "BTCUSDT", "interval": "1h",
                       "type": "rsi_threshold", "size": "0.01"})
    return head[:-1] + f', "parameters": {parameters}}}'



@pytest.mark.parametrize("oversold", ["1e-200", "30.000000000000000000000000000000000000001"])
def test_strategy_threshold_dynamodb_cannot_hold_is_a_422(stored_connection, invoke, oversold):
    """An RSI threshold DynamoDB cannot store exactly (39+ digits, or below 1E-130) is a 422 naming it."""
    raw = _strategy_raw(stored_connection.id, f'{{"period": 14, "oversold": {oversold}, "overbought": 70}}')

    response = invoke("strategy_create", with_user(with_body(load_event("strategy_create"), raw), USER_A))

    _refused(response, "parameters.oversold")


def _rsi_strategy(connection_id: str, invoke: Any) -> str:
    """USER_A's RSI strategy (oversold 30) on ``connection_id``, created through the real handler; its id."""
    raw = _strategy_raw(connection_id, '{"period": 14, "oversold": 30, "overbought": 70}')
    created = invoke("strategy_create", with_user(with_body(load_event("strategy_create"), raw), USER_A))
    assert created["statusCode"] == 201, created["body"]
    return response_json(created)["id"]


def _strategy_event(name: str, strategy_id: str) -> dict[str, Any]:
    """``events/<name>.json`` for USER_A's strategy ``strategy_id``."""
    return with_user(at_path(load_event(name), f"/strategies/{strategy_id}", id=strategy_id), USER_A)


def test_strategy_update_threshold_dynamodb_cannot_hold_is_a_422(stored_connection, invoke):
    """PATCH /strategies/{id} with such a threshold is a 422 naming it too, and the strategy is unchanged."""
    strategy_id = _rsi_strategy(stored_connection.id, invoke)
    body = '{"type": "rsi_threshold", "parameters": {"period": 14, "oversold": 1e-200, "overbought": 70}}'

    response = invoke("strategy_update", with_body(_strategy_event("strategy_update", strategy_id), body))

    _refused(response, "parameters.oversold")
    got = invoke("strategy_get", _strategy_event("strategy_get", strategy_id))
    assert response_json(got)["parameters"]["oversold"] in ("30", 30)


def test_a_strategy_number_ending_in_zeros_past_38_digits_is_stored_as_its_value(stored_connection, invoke):
    """Trailing fraction zeros are not digits: a balance "1." and 38 zeros (39 digits written, DynamoDB keeps
    38) and a JSON number 2.000… are created as 1 and 2 (a 500 before), and read back so."""
    raw = _strategy_raw(stored_connection.id, '{"period": 14, "oversold": 30, "overbought": 70}')
    raw = raw[:-1] + f', "paper_balance_usdt": "1.{"0" * 38}", "stop_loss_pct": 2.{"0" * 40}}}'

    created = invoke("strategy_create", with_user(with_body(load_event("strategy_create"), raw), USER_A))

    assert created["statusCode"] == 201, created["body"]
    got = response_json(invoke("strategy_get", _strategy_event("strategy_get", response_json(created)["id"])))
    assert (got["paper_balance_usdt"], got["stop_loss_pct"]) == ("1", "2")


def test_a_strategy_update_number_ending_in_zeros_past_38_digits_is_stored_as_its_value(
        stored_connection, invoke):
    """PATCH /strategies/{id} with take_profit_pct "3." and 38 zeros sets 3, not a 500."""
    strategy_id = _rsi_strategy(stored_connection.id, invoke)
    event = _strategy_event("strategy_update", strategy_id)

    response = invoke("strategy_update", with_body(event, {"take_profit_pct": "3." + "0" * 38}))

    assert response["statusCode"] == 200, response["body"]
    got = invoke("strategy_get", _strategy_event("strategy_get", strategy_id))
    assert response_json(got)["take_profit_pct"] == "3"


@pytest.mark.parametrize("field", ["max_leverage", "leverage"])
def test_connection_leverage_sent_as_true_is_refused_not_stored_as_1x(stored_connection, invoke, field):
    """PATCH /exchange-connections/{id} with max_leverage / leverage = true is a 422 naming it, not 1x."""
    event = with_body(connection_event("connection_update", stored_connection.id, USER_A), {field: True})

    response = invoke("connection_update", event)

    _refused(response, field)


def _close_event(connection_id: str, raw_query: str, key: str) -> dict[str, Any]:
    path = f"/exchange-connections/{connection_id}/futures/positions/BTCUSDT/close"
    event = at_path(load_event("futures_position_close"), path, id=connection_id, symbol="BTCUSDT")
    event = _with_query(with_user(event, USER_A), raw_query)
    event["headers"]["idempotency-key"] = key
    return event


def test_close_with_binances_spelling_of_position_side_is_refused_not_read_as_no_side(stored_connection,
                                                                                       invoke):
    """Hedge mode, only a LONG open: close?positionSide=SHORT (Binance's spelling, not ours) is a 400
    naming positionSide; the parameter is never dropped so that the LONG gets closed."""
    enable = with_body(connection_event("futures_enable", stored_connection.id, USER_A, "/futures/enable"),
                       {"position_mode": "hedge"})
    enable["headers"]["content-type"] = "application/json"
    assert invoke("futures_enable", enable)["statusCode"] == 200
    body = {"connection_id": stored_connection.id, "symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
            "quantity": "0.002", "positionSide": "LONG"}
    order = with_user(with_body(load_event("futures_order"), body), USER_A)
    order["headers"]["idempotency-key"] = "open-long"
    assert invoke("futures_order", order)["statusCode"] == 200
    close = _close_event(stored_connection.id, "positionSide=SHORT", "c-1")

    response = invoke("futures_position_close", close)

    _refused(response, "positionSide")
    still = invoke("futures_positions", connection_event("futures_positions", stored_connection.id, USER_A,
                                                         "/futures/positions"))
    assert [(p["symbol"], p["side"]) for p in response_json(still)["positions"]] == [("BTCUSDT", "LONG")]


def test_unknown_query_parameter_is_refused_naming_it(sim_env, invoke):
    """GET /futures/orders?symbl=ETHUSDT (a typo) is a 400 naming symbl, not every order unfiltered."""
    event = _with_query(with_user(load_event("futures_orders"), USER_A), "symbl=ETHUSDT")

    _refused(invoke("futures_orders", event), "symbl")


def test_declared_query_parameters_and_a_preflight_with_a_query_still_pass(sim_env, invoke):
    """The check refuses only names a route does not take: declared ones (aliases included) pass, and a
    CORS preflight is never refused for its query string."""
    listing = _with_query(with_user(load_event("futures_orders"), USER_A), "symbol=ETHUSDT&from=0&limit=5")
    preflight = _with_query(load_event("futures_orders"), "symbl=ETHUSDT")
    preflight["requestContext"]["http"]["method"] = "OPTIONS"
    preflight["headers"] = {**preflight["headers"], "origin": "http://localhost:5173",
                            "access-control-request-method": "GET"}

    assert invoke("futures_orders", listing)["statusCode"] == 200
    assert invoke("futures_orders", preflight)["statusCode"] in (200, 204)


@pytest.mark.parametrize(("raw_tail", "field"), [
    ('"side": "BUY", "type": "MARKET", "quantity": "0.002", "side": "SELL"}', "side"),
    ('"side": "BUY", "type": "MARKET", "quantity": "0.002", '
     '"stop_loss": {"percent": "2", "percent": "20"}}', "stop_loss.percent"),
])
def test_a_key_given_twice_in_a_body_is_refused_naming_it(sim_env, invoke, stored_connection, raw_tail,
                                                            field):
    """{"side": "BUY", ..., "side": "SELL"} is a 400 naming side (at any depth): JSON's last-wins would
    otherwise sell, and nothing reaches Binance."""
    raw = f'{{"connection_id": "{stored_connection.id}", "symbol": "BTCUSDT", ' + raw_tail
    event = with_user(with_body(load_event("futures_order"), raw), USER_A)
    event["headers"]["idempotency-key"] = "twice"
    sent_before = len(sim_env.journal)

    response = invoke("futures_order", event)

    _refused(response, field)
    assert len(sim_env.journal) == sent_before


@pytest.mark.parametrize(("raw_tail", "message"), [
    ('"side": "BUY", "A1b2C3d4E5f6G7h8I9j0K1l2M3": 1, "A1b2C3d4E5f6G7h8I9j0K1l2M3": 2}',
     "request body gives the key more than once"),
    ('"side": "BUY", "side": "SELL", "type": }', "request body is not valid JSON"),
])
def test_a_repeated_key_that_cannot_be_named_is_refused_as_the_body(sim_env, invoke, stored_connection,
                                                                    raw_tail, message):
    """A repeated key too long to be a field name is not repeated back, and a body that repeats a key
    before a syntax error is refused as not JSON: both 400 on field body, nothing sent."""
    raw = f'{{"connection_id": "{stored_connection.id}", "symbol": "BTCUSDT", ' + raw_tail
    event = with_user(with_body(load_event("futures_order"), raw), USER_A)
    event["headers"]["idempotency-key"] = "twice-unnamed"
    sent_before = len(sim_env.journal)

    response = invoke("futures_order", event)

    _refused(response, "body")
    assert response_json(response)["error"]["message"] == message
    assert "A1b2C3d4" not in response["body"]
    assert len(sim_env.journal) == sent_before


API_FUNCTIONS = sorted(spec.package for spec in function_specs() if spec.routes)


@pytest.mark.parametrize("function", API_FUNCTIONS)
def test_every_route_refuses_a_query_parameter_it_does_not_take(sim_env, invoke, function):
    """Each API function's own event with ?not_ours=1 added is a 400 naming not_ours: no route lets an
    unknown parameter through (each resolver knows the route it matched)."""
    event = load_event(function)
    raw = "&".join(filter(None, [event.get("rawQueryString") or "", "not_ours=1"]))

    response = invoke(function, _with_query(with_user(event, USER_A), raw))

    _refused(response, "not_ours")


def test_a_bound_in_a_refusal_reads_as_a_number_not_python(stored_connection, invoke):
    """A size_pct over 100 is refused naming it, with the bound as the number a frontend shows (100), never
    Python's Decimal('100')."""
    body = {"connection_id": stored_connection.id, "symbol": "BTCUSDT", "interval": "1m",
            "type": "rsi_threshold", "size_pct": "150"}

    response = invoke("strategy_create", with_user(with_body(load_event("strategy_create"), body), USER_A))

    _refused(response, "size_pct")
    message = response_json(response)["error"]["message"]
    assert "Decimal" not in message and "100" in message


def _refused_as_the_body(sim_env: Any, invoke: Any, function: str, event: dict[str, Any]) -> None:
    """``function`` answers ``event`` 400 naming the body, and nothing reached Binance."""
    sent_before = len(sim_env.journal)

    response = invoke(function, event)

    assert response["statusCode"] == 400, response["body"]
    _refused(response, "body")
    assert len(sim_env.journal) == sent_before


@pytest.mark.parametrize("raw", ["[null, null]", '[{"leverage": 5}]', '"hedge"', "5", "true"])
def test_futures_enable_refuses_a_body_that_is_not_an_object_and_changes_nothing(
        sim_env, invoke, stored_connection, raw):
    """A futures enable whose body is an array, a string, a number or a boolean is a 400 naming the body,
    not read as "no settings" (or as the array's object); nothing reaches Binance."""
    event = with_body(connection_event("futures_enable", stored_connection.id, USER_A, "/futures/enable"),
                      raw)
    event["headers"]["content-type"] = "application/json"
    _refused_as_the_body(sim_env, invoke, "futures_enable", event)


def test_an_order_body_sent_as_an_array_is_refused_not_read_as_its_first_order(sim_env, invoke,
                                                                               stored_connection):
    """POST /futures/order with [order, order] is a 400 naming the body: Powertools alone would place the
    first and answer as if the request were that one order; nothing reaches Binance."""
    order = {**_body_of("futures_order"), "connection_id": stored_connection.id}
    event = with_user(with_body(load_event("futures_order"), json.dumps([order, order])), USER_A)
    event["headers"]["idempotency-key"] = "array-body"
    _refused_as_the_body(sim_env, invoke, "futures_order", event)
