"""A rule across fields (a model's own check) refused through the real handlers: the error names the field
the caller must change, and its message every field of the rule, never field "body" (moto + simulator)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.helpers import load_event, response_json, with_body, with_user
from tests.integration.api.conftest import USER_A, at_path

STRATEGY_ID = "0123456789abcdef0123456789abcdef"
SIZINGS = ("size", "quote_size_usdt", "size_pct")


def _body_of(name: str, **changes: Any) -> dict[str, Any]:
    """The canonical event's body with ``changes`` applied (None removes a field)."""
    event = load_event(name)
    raw = base64.b64decode(event["body"]).decode() if event.get("isBase64Encoded") else event["body"]
    body = {**json.loads(raw), **changes}
    return {key: value for key, value in body.items() if value is not None}


def _refusal(invoke: Any, function: str, body: dict[str, Any]) -> dict[str, Any]:
    """The error of ``function`` called with ``body`` by USER_A (a 422); its message names no sent value."""
    event = load_event(function)
    if function == "strategy_update":
        event = at_path(event, f"/strategies/{STRATEGY_ID}", id=STRATEGY_ID)
    response = invoke(function, with_user(with_body(event, body), USER_A))
    assert response["statusCode"] == 422, response["body"]
    return response_json(response)["error"]


def _sizing(**sent: str) -> dict[str, Any]:
    """The sizing fields: those in ``sent``, the others removed."""
    return {name: sent.get(name) for name in SIZINGS}


@pytest.mark.parametrize(("function", "sizing", "field"), [
    ("strategy_create", _sizing(), "size"),
    ("strategy_create", _sizing(size="0.002", quote_size_usdt="150"), "quote_size_usdt"),
    ("strategy_create", _sizing(size="0.002", quote_size_usdt="150", size_pct="10"), "size_pct"),
    ("strategy_backtest", _sizing(), "size"),
    ("strategy_backtest", _sizing(size="0.002", size_pct="10"), "size_pct"),
    ("strategy_update", _sizing(quote_size_usdt="150", size_pct="10"), "size_pct"),
])
def test_a_sizing_refusal_names_the_sizing_field_to_change(sim_env, invoke, function, sizing, field):
    """GIVEN no sizing, or several, on POST /strategies, POST /strategies/backtest or PATCH /strategies/{id}
    WHEN sent THEN 422 naming the sizing to change (the last one sent, size when none), not the body,
    the message naming all three."""
    error = _refusal(invoke, function, _body_of(function, **sizing))

    assert (error["field"], [e["field"] for e in error["errors"]]) == (field, [field]), error
    assert all(name in error["message"] for name in SIZINGS), error
    assert not any(value in error["message"] for value in ("0.002", "150", "10")), error


@pytest.mark.parametrize("function", ["futures_order", "futures_order_check"])
@pytest.mark.parametrize(("role", "target", "field"), [
    ("stop_loss", {}, "stop_loss.price"),
    ("stop_loss", {"price": "48000", "percent": "2"}, "stop_loss.percent"),
    ("take_profit", {"price": "52000", "percent": "4"}, "take_profit.percent"),
])
def test_a_protective_target_refusal_names_price_or_percent(sim_env, invoke, function, role, target, field):
    """GIVEN an order's stop_loss / take_profit with neither price nor percent, or both, on POST
    /futures/order or its dry run WHEN sent THEN 422 naming the one to change (percent beside a price,
    price when neither is sent), not the target as a whole, the message naming both."""
    error = _refusal(invoke, function, _body_of(function, **{role: target}))

    assert (error["field"], [e["field"] for e in error["errors"]]) == (field, [field]), error
    assert "price" in error["message"] and "percent" in error["message"], error
    assert not any(value in error["message"] for value in ("48000", "52000")), error


@pytest.mark.parametrize("function", ["futures_order", "futures_order_check"])
@pytest.mark.parametrize(("sizes", "field"), [
    ({"quantity": None}, "quantity"),
    ({"quote_quantity": "150"}, "quote_quantity"),
])
def test_an_order_size_refusal_names_the_size_field_to_change(sim_env, invoke, function, sizes, field):
    """GIVEN an order with neither quantity nor quote_quantity, or both, on POST /futures/order or its dry
    run WHEN sent THEN 422 naming the one to change (quantity when neither is sent, quote_quantity beside a
    quantity), the message naming both and no sent value."""
    error = _refusal(invoke, function, _body_of(function, **sizes))

    assert (error["field"], [e["field"] for e in error["errors"]]) == (field, [field]), error
    assert "quantity" in error["message"] and "quote_quantity" in error["message"], error
    assert not any(value in error["message"] for value in ("0.010", "150")), error


SMA_CROSSED = {"type": "sma_crossover", "parameters": {"fast": 21, "slow": 9}}
RSI_CROSSED = {"type": "rsi_threshold", "parameters": {"period": 14, "oversold": 75, "overbought": 25}}


@pytest.mark.parametrize(("function", "changes", "field", "names"), [
    ("strategy_create", SMA_CROSSED, "parameters.slow", ("fast", "slow")),
    ("strategy_create", RSI_CROSSED, "parameters.overbought", ("oversold", "overbought")),
    ("strategy_backtest", SMA_CROSSED, "parameters.slow", ("fast", "slow")),
    ("strategy_backtest", RSI_CROSSED, "parameters.overbought", ("oversold", "overbought")),
    ("strategy_update", SMA_CROSSED, "parameters.slow", ("fast", "slow")),
    ("strategy_update", RSI_CROSSED, "parameters.overbought", ("oversold", "overbought")),
])
def test_a_parameter_order_refusal_names_the_parameter_to_change(sim_env, invoke, function, changes, field,
                                                                 names):
    """GIVEN a fast not below slow, or an oversold not below overbought, on POST /strategies, a backtest or
    PATCH /strategies/{id} WHEN sent THEN 422 naming the later parameter, not the parameters as a whole,
    the message naming both and no sent value."""
    error = _refusal(invoke, function, _body_of(function, **changes))

    assert (error["field"], [e["field"] for e in error["errors"]]) == (field, [field]), error
    assert all(name in error["message"] for name in names), error
    assert not any(value in error["message"] for value in ("21", "9", "14", "75", "25")), error


def test_parameters_without_their_type_name_the_type_to_add(sim_env, invoke):
    """GIVEN a PATCH /strategies/{id} with parameters but no type WHEN sent THEN 422 naming type, the field
    the caller must add (the parameters are checked against it, nothing stored is read), not the
    parameters, the message naming both and no sent value."""
    error = _refusal(invoke, "strategy_update", {"parameters": {"fast": 3, "slow": 21}})

    assert (error["field"], [e["field"] for e in error["errors"]]) == ("type", ["type"]), error
    assert "type" in error["message"] and "parameters" in error["message"], error
    assert not any(value in error["message"] for value in ("3", "21")), error


@pytest.mark.parametrize("function", ["strategy_create", "strategy_backtest", "strategy_update"])
def test_a_short_only_strategy_that_never_shorts_is_refused_saying_why(sim_env, invoke, function):
    """GIVEN direction short with parameters.allow_short false (every signal flat) in one body of POST
    /strategies, a backtest or PATCH /strategies/{id} WHEN sent THEN 422 naming direction with a message
    that says what is wrong and what to send, not a bare "invalid value"."""
    no_shorts = {"type": "sma_crossover", "parameters": {"fast": 5, "slow": 20, "allow_short": False}}
    error = _refusal(invoke, function, _body_of(function, **no_shorts, direction="short"))

    assert (error["field"], [e["field"] for e in error["errors"]]) == ("direction", ["direction"]), error
    assert "leaves no side to trade" in error["message"], error
    assert "allow_short" in error["message"] and "both or long" in error["message"], error


# A value no field takes (below every lower bound, and sent only here: no message may repeat it).
BAD = "-7"
TWO_SIZINGS = _sizing(quote_size_usdt="150", size_pct="10")


@pytest.mark.parametrize(("function", "changes", "fields"), [
    ("futures_order", {"price": BAD, "quantity": None}, ["price", "quantity"]),
    ("futures_order_check", {"price": BAD, "quantity": None}, ["price", "quantity"]),
    ("futures_order", {"quantity": BAD, "quote_quantity": "150"}, ["quantity", "quote_quantity"]),
    ("futures_order", {"price": BAD, "stop_loss": {}}, ["price", "stop_loss.price"]),
    ("futures_order", {"price": BAD, "quantity": None, "stop_loss": {"price": "48000", "percent": BAD}},
     ["price", "stop_loss.percent", "stop_loss.percent", "quantity"]),
    ("strategy_create", {"leverage": 0, **TWO_SIZINGS}, ["leverage", "size_pct"]),
    ("strategy_create", {"leverage": 0, "size": None}, ["leverage", "size"]),
    ("strategy_backtest", {"leverage": 0, **_sizing(size="0.002", size_pct="10")}, ["leverage", "size_pct"]),
    ("strategy_update", {"leverage": 0, **TWO_SIZINGS}, ["leverage", "size_pct"]),
    ("strategy_update", {"leverage": 0, "parameters": {"fast": 3, "slow": 21}}, ["leverage", "type"]),
    ("strategy_update", {"leverage": 0, **TWO_SIZINGS, "parameters": {"fast": 3}},
     ["leverage", "size_pct", "type"]),
])
def test_field_errors_come_with_the_rules_judged_from_the_fields_sent(sim_env, invoke, function, changes,
                                                                      fields):
    """A bad field and a rule broken by which fields are sent come in one 422, field errors first."""
    error = _refusal(invoke, function, _body_of(function, **changes))

    assert [e["field"] for e in error["errors"]] == fields, error
    assert error["field"] == fields[0], error
    assert not any(value in json.dumps(error) for value in (BAD, "150", "48000")), error


def test_a_size_rule_is_not_judged_while_close_position_is_invalid(sim_env, invoke):
    """No size is asked for while closePosition, whose value decides whether one is needed, is invalid."""
    body = _body_of("futures_order", type="STOP_MARKET", triggerPrice="49000", quantity=None, price=None,
                    timeInForce=None, closePosition="yes")
    error = _refusal(invoke, "futures_order", body)

    assert [e["field"] for e in error["errors"]] == ["closePosition"], error
