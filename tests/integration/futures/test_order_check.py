"""POST /futures/order/check: the dry run of POST /futures/order, compared with the real route on the same
body, against moto and the simulator."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from klineo.services.orders import idempotent_client_order_id
from klineo.settings import get_settings
from klineo.store import flags
from klineo.store.connections import update_settings
from klineo.store.orders import get_order_record

from tests.helpers import load_event, with_body, with_user
from tests.integration.api.conftest import USER_A, USER_B
from tests.integration.futures.helpers import (
    body_of,
    exchange_orders,
    new_key,
    order_body,
    order_event,
    order_posts,
)

MARK = 65000.7
# What a dry run may ask Binance: the public reads the real route makes before it sends.
PUBLIC_READS = {"/fapi/v1/exchangeInfo", "/fapi/v1/premiumIndex"}


def check_event(body: Any, user: str = USER_A) -> dict[str, Any]:
    """events/futures_order_check.json with this body and user (no Idempotency-Key: none is needed)."""
    event = with_user(with_body(load_event("futures_order_check"), body), user)
    event["headers"].pop("content-length", None)
    return event


def _check(invoke: Any, body: dict[str, Any], user: str = USER_A) -> dict[str, Any]:
    response = invoke("futures_order_check", check_event(body, user))
    assert response["statusCode"] == 200, response["body"]
    return body_of(response)


def _table_items() -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=get_settings().data_table, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def _refusal_of(response: dict[str, Any]) -> dict[str, Any]:
    """The real route's error answer, as a dry run's refusal states it (no request id)."""
    error = body_of(response)["error"]
    return {k: error.get(k) for k in ("category", "message", "retryable", "field")}


def _sent_params(client_order_id: str) -> dict[str, str]:
    """The parameters the real route sent (its record stores them), its client id left out."""
    record = get_order_record(USER_A, client_order_id)
    assert record is not None
    return {k: v for k, v in record.params.items() if k not in ("newClientOrderId", "clientAlgoId")}


@pytest.fixture
def pinned_mark(sim_env) -> float:
    """The simulator's BTCUSDT mark price pinned, so a dry run and the order after it see the same one."""
    sim_env.set_mark_price("BTCUSDT", MARK)
    return MARK


@pytest.mark.parametrize("changes", [
    {"type": "MARKET", "quantity": None, "price": None, "timeInForce": None, "quote_quantity": "150"},
    {},
    {"type": "STOP_MARKET", "price": None, "timeInForce": None, "triggerPrice": "70000"},
    {"side": "SELL", "type": "TRAILING_STOP_MARKET", "price": None, "timeInForce": None, "callbackRate": "1",
     "activationPrice": "70000"},
], ids=["market-quote-size", "limit", "stop-market-algo", "trailing-stop-algo"])
def test_a_good_order_is_ok_with_exactly_what_the_real_route_then_sends(
        sim_env, invoke, futures_connection, pinned_mark, changes):
    """GIVEN a valid body WHEN dry-run THEN ok, with the quantity rounded to the step and the parameters
    that POST /futures/order then sends for the same body, and the gate's valuation of it."""
    body = order_body(futures_connection.id, **changes)

    check = _check(invoke, body)
    placed = invoke("futures_order", order_event(body, key=new_key()))

    assert placed["statusCode"] == 200, placed["body"]
    assert check["ok"] is True and check["refusal"] is None and check["valid_nearby"] is None
    assert check["params"] == _sent_params(body_of(placed)["client_order_id"])
    assert check["kind"] == body_of(placed)["kind"]
    assert check["quantity"] == body_of(placed)["quantity"]
    expected_notional = {"MARKET": "130.0014", "LIMIT": "200", "STOP_MARKET": "700",
                         "TRAILING_STOP_MARKET": "707"}[body["type"]]
    assert (check["notional"], check["max_notional_usdt"]) == (expected_notional, "10000")
    if body["type"] == "MARKET":
        assert check["quantity"] == "0.002"  # 150 / 65000.7 = 0.0023..., rounded down to the step 0.001
        (held,) = exchange_orders(sim_env, futures_connection.account)
        assert str(held.orig_qty) == "0.002"


def test_a_dry_run_sends_no_order_and_writes_nothing(sim_env, invoke, futures_connection, pinned_mark):
    """GIVEN a MARKET order with a stop-loss WHEN dry-run THEN only the real route's public reads reach
    Binance (no order, algo order or signed call) and the data table is unchanged."""
    body = order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None, quantity="0.002",
                      stop_loss={"percent": "2"})
    before = _table_items()
    sim_env.clear_journal()

    check = _check(invoke, body)

    assert check["ok"] is True, check
    assert {r.path for r in sim_env.journal} <= PUBLIC_READS
    assert all(r.api_key is None for r in sim_env.journal)
    assert order_posts(sim_env) == [] and exchange_orders(sim_env, futures_connection.account) == []
    assert _table_items() == before


@pytest.mark.parametrize(("changes", "field", "below", "above"), [
    ({"quantity": "0.0105"}, "quantity", "0.01", "0.011"),
    ({"price": "20000.05"}, "price", "20000", "20000.1"),
    ({"type": "STOP_MARKET", "price": None, "timeInForce": None, "triggerPrice": "70000.04"},
     "triggerPrice", "70000", "70000.1"),
], ids=["quantity", "price", "triggerPrice"])
def test_an_off_grid_value_is_refused_as_the_real_route_refuses_it_with_the_nearest_valid_ones(
        sim_env, invoke, futures_connection, changes, field, below, above):
    """GIVEN a typed value off the symbol's grid WHEN dry-run THEN the real route's 400 refusal (same field
    and message) and the valid values just below and above it; nothing sent by either."""
    body = order_body(futures_connection.id, **changes)

    check = _check(invoke, body)
    placed = invoke("futures_order", order_event(body, key=new_key()))

    assert placed["statusCode"] == 400, placed["body"]
    assert check["ok"] is False and check["params"] is None
    assert check["refusal"] == _refusal_of(placed)
    assert check["refusal"]["field"] == field
    assert check["valid_nearby"] == {"field": field, "below": below, "above": above}
    assert order_posts(sim_env) == []


def test_an_order_over_max_notional_is_refused_naming_the_gate_as_the_real_route(
        sim_env, invoke, futures_connection):
    """GIVEN max_notional_usdt 100 WHEN a 200 USDT LIMIT is dry-run THEN the real route's 422 refusal naming
    max_notional_usdt, word for word, with the valuation it refused; nothing sent."""
    update_settings(USER_A, futures_connection.id, {"max_notional_usdt": 100})
    body = order_body(futures_connection.id)

    check = _check(invoke, body)
    placed = invoke("futures_order", order_event(body, key=new_key()))

    assert placed["statusCode"] == 422, placed["body"]
    assert check["refusal"] == _refusal_of(placed)
    refusal = check["refusal"]
    assert (refusal["category"], refusal["field"]) == ("order_rejected", "max_notional_usdt")
    assert (check["ok"], check["notional"], check["max_notional_usdt"]) == (False, "200", "100")
    assert order_posts(sim_env) == []


def test_an_order_valued_past_28_digits_is_refused_as_the_real_route_refuses_it(
        sim_env, invoke, futures_connection):
    """GIVEN a LIMIT BUY of 1e13 at 1e13 (each fits the request model; the product passes Decimal's 28
    digits) WHEN dry-run THEN the real route's 422 refusal naming max_notional_usdt, not a 500."""
    body = order_body(futures_connection.id, quantity="10000000000000", price="10000000000000")

    check = _check(invoke, body)
    placed = invoke("futures_order", order_event(body, key=new_key()))

    assert placed["statusCode"] == 422, placed["body"]
    assert check["refusal"] == _refusal_of(placed)
    assert (check["ok"], check["refusal"]["field"]) == (False, "max_notional_usdt")
    assert order_posts(sim_env) == []


def test_a_trailing_stop_over_the_limit_at_its_activation_is_refused_with_the_dry_runs_valuation(
        sim_env, invoke, futures_connection, pinned_mark):
    """GIVEN max_notional_usdt 700 and mark 65000.7 WHEN a SELL TRAILING_STOP_MARKET of 0.01 (650.007 at the
    mark, 695 at its activation 69500) with callbackRate 1 is dry-run and placed THEN both refuse it naming
    max_notional_usdt, valued 701.95 (its activation raised by the callback rate); nothing sent."""
    update_settings(USER_A, futures_connection.id, {"max_notional_usdt": 700})
    body = order_body(futures_connection.id, side="SELL", type="TRAILING_STOP_MARKET", price=None,
                      timeInForce=None, callbackRate="1", activationPrice="69500")
    sim_env.clear_journal()

    check = _check(invoke, body)
    placed = invoke("futures_order", order_event(body, key=new_key()))

    assert placed["statusCode"] == 422, placed["body"]
    assert check["refusal"] == _refusal_of(placed)
    assert check["refusal"]["field"] == "max_notional_usdt" and "701.95 USDT" in check["refusal"]["message"]
    assert (check["ok"], check["notional"], check["max_notional_usdt"]) == (False, "701.95", "700")
    assert [r.path for r in sim_env.journal if r.method != "GET"] == []


@pytest.mark.parametrize(("changes", "message"), [
    ({"side": "SELL", "price": "61000"},
     "price must be at least 61750.7 for a SELL on BTCUSDT now: Binance's price band is 61750.7 to 68250.7 "
     "USDT (0.95 to 1.05 times the mark price 65000.7)"),
    ({"side": "SELL", "type": "STOP", "triggerPrice": "60000", "price": "63000.1"},
     "price must be at most 63000 on BTCUSDT now: Binance's price band is 57000 to 63000 USDT (0.95 to 1.05 "
     "times the trigger price)"),
    ({"type": "TAKE_PROFIT", "triggerPrice": "60000", "price": "56999.9"},
     "price must be at least 57000 on BTCUSDT now: Binance's price band is 57000 to 63000 USDT (0.95 to 1.05 "
     "times the trigger price)"),
], ids=["sell-limit-below-the-mark-band", "sell-stop-above-its-trigger-band", "buy-take-profit-below-it"])
def test_a_price_outside_percent_price_is_refused_with_the_band_before_anything_is_sent(
        sim_env, invoke, futures_connection, pinned_mark, changes, message):
    """GIVEN the simulator's PERCENT_PRICE (0.95 to 1.05) and mark 65000.7 WHEN a SELL LIMIT under the mark's
    band, or a stop-limit priced outside its trigger's band, is dry-run and placed THEN both answer the same
    400 naming price and stating the band (quoting the mark, never the trigger price the caller typed),
    nothing reaches Binance and the key holds no record."""
    body = order_body(futures_connection.id, **changes)
    key = new_key()
    sim_env.clear_journal()

    check = _check(invoke, body)
    placed = invoke("futures_order", order_event(body, key=key))

    assert placed["statusCode"] == 400, placed["body"]
    assert check["refusal"] == _refusal_of(placed)
    assert (check["ok"], check["params"], check["valid_nearby"]) == (False, None, None)
    assert (check["refusal"]["field"], check["refusal"]["message"]) == ("price", message)
    assert [r.path for r in sim_env.journal if r.method != "GET"] == []
    assert get_order_record(USER_A, idempotent_client_order_id(USER_A, key)) is None


@pytest.mark.parametrize("gate", ["global_kill_switch", "user_kill_switch", "connection_kill_switch"])
def test_a_kill_switch_gives_the_real_routes_refusal_without_a_binance_call(
        sim_env, invoke, futures_connection, gate):
    """GIVEN one kill switch on WHEN an opening order is dry-run THEN the real route's 409 refusal naming the
    switch, and neither of them calls Binance."""
    if gate == "global_kill_switch":
        flags.set_global_kill_switch(True)
    elif gate == "user_kill_switch":
        flags.set_user_kill_switch(USER_A, True)
    else:
        update_settings(USER_A, futures_connection.id, {"kill_switch": True})
    body = order_body(futures_connection.id)
    sim_env.clear_journal()

    check = _check(invoke, body)
    placed = invoke("futures_order", order_event(body, key=new_key()))

    assert placed["statusCode"] == 409, placed["body"]
    assert check["refusal"] == _refusal_of(placed)
    assert (check["ok"], check["refusal"]["field"]) == (False, gate)
    assert sim_env.journal == []


def test_another_users_connection_is_not_found(sim_env, invoke, futures_connection):
    """GIVEN USER_A's connection WHEN USER_B dry-runs an order on it THEN 404, as the real route answers."""
    body = order_body(futures_connection.id)

    check = invoke("futures_order_check", check_event(body, USER_B))
    placed = invoke("futures_order", order_event(body, user=USER_B, key=new_key()))

    assert (check["statusCode"], placed["statusCode"]) == (404, 404), check["body"]
    assert body_of(check)["error"]["message"] == body_of(placed)["error"]["message"]


def test_a_trailing_stop_without_an_activation_price_is_placed_valued_from_the_mark(
        sim_env, invoke, futures_connection, pinned_mark):
    """GIVEN mark 65000.7 WHEN a SELL TRAILING_STOP_MARKET of 0.01 with callbackRate 1 and no activationPrice
    (Binance activates it at once) is dry-run and placed THEN both accept it, valued 656.50707 (the mark
    raised by the callback rate), and the real route sends what the dry run showed."""
    body = order_body(futures_connection.id, side="SELL", type="TRAILING_STOP_MARKET", price=None,
                      timeInForce=None, callbackRate="1")

    check = _check(invoke, body)
    placed = invoke("futures_order", order_event(body, key=new_key()))

    assert placed["statusCode"] == 200, placed["body"]
    assert (check["ok"], check["refusal"], check["notional"]) == (True, None, "656.50707")
    assert check["params"] == _sent_params(body_of(placed)["client_order_id"])
    assert "activatePrice" not in check["params"]
