"""Hostile input on the real handlers (issue 9): each case is the exact request that once failed.

A secret sent in the wrong content type, a body that is not JSON, a key that is not a field name:
the answer is a 4xx in the API's error shape, and nothing submitted comes back in it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers import load_event, response_json, with_body

SECRET = "SENTINEL-5b0e7f3c9d2a41e8b6c4f1a0d9e8c7b6"
KEYS_BODY = json.dumps({"label": "x", "environment": "testnet", "key_type": "hmac",
                        "api_key": "A" * 64, "secret": SECRET})
BODY_ROUTES = ["connection_create", "connection_test", "strategy_create", "strategy_update",
               "futures_order", "kill_switch_set"]


def _with_content_type(event: dict[str, Any], content_type: str | None) -> dict[str, Any]:
    if content_type is None:
        event["headers"].pop("content-type", None)
    else:
        event["headers"]["content-type"] = content_type
    return event


def _error(response: dict[str, Any]) -> dict[str, Any]:
    return response_json(response)["error"]


@pytest.mark.parametrize("function", ["connection_create", "connection_test", "strategy_update"])
def test_json_keys_sent_as_a_form_are_415_and_never_echoed(invoke, function):
    """GIVEN the keys as JSON with Content-Type form-urlencoded WHEN sent THEN 415, the secret absent."""
    event = _with_content_type(with_body(load_event(function), KEYS_BODY),
                               "application/x-www-form-urlencoded")
    response = invoke(function, event)
    assert response["statusCode"] == 415
    assert _error(response) == {
        "category": "invalid_request", "field": "body", "retryable": False, "request_id": "id",
        "message": "request body must be JSON, sent with Content-Type: application/json",
    }
    assert SECRET not in json.dumps(response)


@pytest.mark.parametrize("function", BODY_ROUTES)
@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", None])
def test_every_body_route_refuses_a_body_not_declared_json(invoke, function, content_type):
    """GIVEN a JSON body under another (or no) Content-Type WHEN sent to a body route THEN one 415."""
    event = _with_content_type(with_body(load_event(function), KEYS_BODY), content_type)
    response = invoke(function, event)
    assert response["statusCode"] == 415
    assert _error(response)["field"] == "body"
    assert SECRET not in json.dumps(response)


def test_form_body_that_validates_still_never_reaches_the_route(invoke):
    """GIVEN a form body that would validate as a form (enabled=true) WHEN sent THEN 415, not 200."""
    event = _with_content_type(with_body(load_event("kill_switch_set"), "enabled=true"),
                               "application/x-www-form-urlencoded")
    assert invoke("kill_switch_set", event)["statusCode"] == 415


def test_unknown_key_that_is_not_a_field_name_is_not_echoed(invoke):
    """GIVEN a JSON body whose unknown key is a secret WHEN sent THEN 422 on "body", the key absent."""
    body = {"environment": "testnet", "api_key": "A" * 64, "secret": "s" * 64, SECRET: 1}
    response = invoke("connection_test", with_body(load_event("connection_test"), body))
    assert response["statusCode"] == 422
    assert _error(response)["field"] == "body"
    assert SECRET not in json.dumps(response)


@pytest.mark.parametrize("function", BODY_ROUTES)
def test_multipart_without_boundary_is_415_not_500(invoke, function):
    """GIVEN Content-Type multipart/form-data without a boundary WHEN sent THEN 415, not a 500."""
    event = _with_content_type(with_body(load_event(function), KEYS_BODY), "multipart/form-data")
    response = invoke(function, event)
    assert response["statusCode"] == 415
    assert _error(response)["category"] == "invalid_request"
    assert SECRET not in json.dumps(response)


@pytest.mark.parametrize("function", BODY_ROUTES)
def test_json_nested_a_thousand_levels_is_400_not_500(invoke, function):
    """GIVEN a 2 KB body nested 1,000 levels deep WHEN sent THEN 400 on "body", not a RecursionError."""
    response = invoke(function, with_body(load_event(function), "[" * 1000 + "]" * 1000))
    assert response["statusCode"] == 400
    assert _error(response)["field"] == "body"


def test_json_nested_under_the_python_limit_but_too_deep_is_400(invoke):
    """GIVEN parameters nested 50 levels (parsable, pointless) WHEN sent THEN 400 naming the depth."""
    body = '{"type": "sma_crossover", "parameters": ' + '{"a": ' * 50 + "1" + "}" * 50 + "}"
    response = invoke("strategy_update", with_body(load_event("strategy_update"), body))
    assert response["statusCode"] == 400
    assert "deeper than" in _error(response)["message"]


ARABIC_INDIC_ONE, FULL_WIDTH_ONE = "\u0661", "\uff11"


@pytest.mark.parametrize("quantity", [" 1 ", "+1", "1_000", ARABIC_INDIC_ONE, FULL_WIDTH_ONE, "1e3", "0x10",
                                      "Infinity", "-0.1", ""])
def test_order_quantity_is_only_a_plain_decimal_string(invoke, quantity):
    """GIVEN POST /futures/order with quantity " 1 ", "+1", "1_000" or other digits WHEN sent THEN 422."""
    body = {"connection_id": "0" * 32, "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
            "quantity": quantity, "price": "20000"}
    response = invoke("futures_order", with_body(load_event("futures_order"), body))
    assert response["statusCode"] == 422
    assert _error(response)["field"] == "quantity"


@pytest.mark.parametrize("price", [" 20000", "+20000", "20_000", "\u0662\u0660\u0660\u0660\u0660",
                                   "\uff12\uff10\uff10\uff10\uff10"])
def test_order_price_is_only_a_plain_decimal_string(invoke, price):
    """GIVEN POST /futures/order with price "+20000", "20_000" or other digits WHEN sent THEN 422 on price."""
    body = {"connection_id": "0" * 32, "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
            "quantity": "0.01", "price": price}
    response = invoke("futures_order", with_body(load_event("futures_order"), body))
    assert response["statusCode"] == 422
    assert _error(response)["field"] == "price"


@pytest.mark.parametrize("size", [" 1 ", "+1", "1_000", ARABIC_INDIC_ONE, FULL_WIDTH_ONE])
def test_strategy_size_is_only_a_plain_decimal_string(invoke, size):
    """GIVEN PATCH /strategies/{id} with size "1_000" (taken as 1000 before) WHEN sent THEN 422 on size."""
    response = invoke("strategy_update", with_body(load_event("strategy_update"), {"size": size}))
    assert response["statusCode"] == 422
    assert _error(response)["field"] == "size"


@pytest.mark.parametrize(("parameters", "field"), [
    ({"fast": True, "slow": 20}, "parameters.fast"),
    ({"fast": "5", "slow": 20}, "parameters.fast"),
    ({"fast": 5, "slow": 20, "allow_short": 1}, "parameters.allow_short"),
])
def test_strategy_parameters_are_not_coerced(invoke, parameters, field):
    """GIVEN parameters fast=true (stored as 1 before) or "5" WHEN sent THEN 422 naming the parameter."""
    body = {"type": "sma_crossover", "parameters": parameters}
    response = invoke("strategy_update", with_body(load_event("strategy_update"), body))
    assert response["statusCode"] == 422
    assert _error(response)["field"] == field


def test_repeated_limit_is_refused_not_read_as_the_first(invoke):
    """GIVEN GET /candles?...&limit=5&limit=500 WHEN sent THEN 400 naming limit, no candles."""
    event = load_event("candles")
    event["rawQueryString"] = "symbol=BTCUSDT&interval=1m&limit=5&limit=500"
    event["queryStringParameters"] = {"symbol": "BTCUSDT", "interval": "1m", "limit": "5,500"}
    response = invoke("candles", event)
    assert response["statusCode"] == 400
    assert _error(response)["field"] == "limit"
