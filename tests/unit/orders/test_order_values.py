"""Client order ids, the order value object, results and the request model: pure rules, no I/O."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from klineo.binance import ErrorCategory, KlineoError
from klineo.models.futures import FuturesOrderRequest
from klineo.services.orders import (
    CLIENT_ORDER_ID_RE,
    FuturesOrder,
    OrderResult,
    idempotent_client_order_id,
    new_client_order_id,
)
from pydantic import ValidationError

BINANCE_RULE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
CONNECTION = "0123456789abcdef0123456789abcdef"


# ---------------------------------------------------------------- client order ids


def test_new_id_follows_the_audit_format_and_binance_rule():
    """GIVEN a clock WHEN a fresh id is made THEN klneo_<ms>_<16 hex>, 36 characters, Binance's rule."""
    client_order_id = new_client_order_id(clock=lambda: 1_767_225_600.123)

    assert re.fullmatch(r"klneo_1767225600123_[0-9a-f]{16}", client_order_id)
    assert len(client_order_id) == 36 and BINANCE_RULE.fullmatch(client_order_id)
    assert new_client_order_id() != new_client_order_id()


def test_idempotent_id_is_deterministic_per_user_and_key():
    """GIVEN (user, key) WHEN the id is derived twice THEN the same; another user or key THEN another."""
    first = idempotent_client_order_id("user-a", "key-1")

    assert first == idempotent_client_order_id("user-a", "key-1")
    assert first != idempotent_client_order_id("user-b", "key-1")
    assert first != idempotent_client_order_id("user-a", "key-2")
    assert len(first) == 36 and first.startswith("k") and BINANCE_RULE.fullmatch(first)
    assert CLIENT_ORDER_ID_RE.pattern == BINANCE_RULE.pattern


def test_idempotent_id_separates_user_and_key():
    """GIVEN ("ab", "c") and ("a", "bc") WHEN derived THEN different ids (no ambiguous concatenation)."""
    assert idempotent_client_order_id("ab", "c") != idempotent_client_order_id("a", "bc")


# ---------------------------------------------------------------- FuturesOrder


def test_limit_order_params_are_strings_without_exponents_or_trailing_zeros():
    """GIVEN a LIMIT order WHEN turned into params THEN Binance's strings, GTC by default, RESULT asked."""
    order = FuturesOrder("BTCUSDT", "SELL", "LIMIT", Decimal("1E+1"), Decimal("65000.500"), reduce_only=True)

    params = order.to_params("abc")

    assert params == {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "type": "LIMIT",
        "quantity": "10",
        "price": "65000.5",
        "timeInForce": "GTC",
        "positionSide": "BOTH",
        "reduceOnly": "true",
        "newClientOrderId": "abc",
        "newOrderRespType": "RESULT",
    }
    assert FuturesOrder.from_params(params) == order


def test_market_order_sends_no_price_or_time_in_force():
    """GIVEN a MARKET order WHEN turned into params THEN neither price nor timeInForce is sent."""
    params = FuturesOrder("ETHUSDT", "BUY", "MARKET", Decimal("0.5")).to_params("abc")

    assert "price" not in params and "timeInForce" not in params and params["quantity"] == "0.5"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"side": "HOLD"}, "side"),
        ({"type": "STOP"}, "type"),
        ({"quantity": Decimal(0)}, "quantity"),
        ({"quantity": Decimal("NaN")}, "quantity"),
        ({"price": None}, "price"),
        ({"type": "MARKET"}, "price"),
        ({"time_in_force": "GTD"}, "timeInForce"),
        ({"position_side": "UP"}, "positionSide"),
        ({"reduce_only": True, "position_side": "LONG"}, "reduceOnly"),
    ],
)
def test_bad_order_names_the_field(kwargs, field):
    """GIVEN one bad attribute WHEN the order is built THEN invalid_request naming that field."""
    values = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": Decimal("1"),
        "price": Decimal("1"),
    }
    values.update(kwargs)

    with pytest.raises(KlineoError) as raised:
        FuturesOrder(**values)

    assert raised.value.category is ErrorCategory.INVALID_REQUEST and raised.value.field == field


# ---------------------------------------------------------------- OrderResult


def test_result_survives_storage_round_trip():
    """GIVEN Binance's order object WHEN read, stored as JSON and read back THEN the same result."""
    body = {
        "orderId": 7,
        "clientOrderId": "abc",
        "symbol": "BTCUSDT",
        "status": "PARTIALLY_FILLED",
        "side": "BUY",
        "type": "LIMIT",
        "origQty": "0.010",
        "executedQty": "0.004",
        "price": "20000.0",
        "avgPrice": "20000.0",
        "timeInForce": "GTC",
        "reduceOnly": False,
        "positionSide": "BOTH",
        "updateTime": 1700000000000,
    }

    result = OrderResult.from_binance(body, "placed")
    stored = result.to_record()

    assert stored["quantity"] == "0.01" and stored["executed_quantity"] == "0.004"
    assert OrderResult.from_record(stored) == result


def test_a_stored_result_names_every_field_in_order_as_plain_values():
    """GIVEN a result changed by replace and with_source WHEN stored THEN every field in declared order,
    Decimals as plain text (a guard: the record is read by field name and shown in this order)."""
    import dataclasses

    body = {"orderId": 3, "clientOrderId": "c", "symbol": "BTCUSDT", "status": "NEW", "side": "SELL",
            "type": "STOP", "origQty": "2E+1", "price": "10"}
    result = OrderResult.from_binance(body, "placed")
    changed = dataclasses.replace(result, trigger_price=Decimal("9.50"), kind="algo").with_source("queried")

    stored = changed.to_record()

    assert list(stored) == [field.name for field in dataclasses.fields(OrderResult)]
    assert (stored["quantity"], stored["price"], stored["trigger_price"]) == ("20", "10", "9.5")
    assert (stored["kind"], stored["source"], stored["average_price"]) == ("algo", "queried", None)
    assert OrderResult.from_record(stored) == changed


def test_market_result_has_no_price_and_missing_fields_are_tolerated():
    """GIVEN a MARKET answer with price "0" and no avgPrice WHEN read THEN price and average are None."""
    result = OrderResult.from_binance(
        {
            "orderId": 1,
            "clientOrderId": "a",
            "symbol": "BTCUSDT",
            "status": "NEW",
            "side": "BUY",
            "type": "MARKET",
            "origQty": "1",
            "price": "0",
        },
        "placed",
    )

    assert result.price is None and result.average_price is None and result.executed_quantity == 0


# ---------------------------------------------------------------- FuturesOrderRequest (the body)


def _body(**changes):
    body = {
        "connection_id": CONNECTION,
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "0.01",
        "price": "20000",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def test_limit_body_defaults_to_gtc_both_not_reduce_only():
    """GIVEN a minimal LIMIT body WHEN validated THEN timeInForce GTC, positionSide BOTH, reduceOnly false."""
    request = FuturesOrderRequest(**_body())

    assert request.timeInForce == "GTC" and request.positionSide == "BOTH" and request.reduceOnly is False
    assert request.fingerprint()["quantity"] == "0.01"


def test_numbers_and_strings_give_the_same_fingerprint():
    """GIVEN quantity as a JSON number or a string WHEN validated THEN the same fingerprint."""
    assert (
        FuturesOrderRequest(**_body(quantity=Decimal("0.01"))).fingerprint()
        == FuturesOrderRequest(**_body(quantity="0.01")).fingerprint()
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"price": None}, "price"),
        ({"type": "MARKET"}, "price"),
        ({"type": "MARKET", "price": None, "timeInForce": "GTC"}, "timeInForce"),
        ({"quantity": "0"}, "quantity"),
        ({"quantity": "-1"}, "quantity"),
        ({"quantity": "NaN"}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"price": "0"}, "price"),
        ({"side": "buy"}, "side"),
        ({"symbol": "btc-usdt"}, "symbol"),
        ({"connection_id": "../other"}, "connection_id"),
        ({"reduceOnly": "maybe"}, "reduceOnly"),
        ({"reduce_only": True}, "reduce_only"),
    ],
)
def test_bad_body_names_the_field(changes, field):
    """GIVEN one bad field WHEN the body is validated THEN the error's location is that field."""
    with pytest.raises(ValidationError) as raised:
        FuturesOrderRequest(**_body(**changes))

    assert raised.value.errors()[0]["loc"][0] == field
