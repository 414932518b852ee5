"""The positions view's protective orders, and the order routes' answers, give their numbers as the
open-orders route does."""

from __future__ import annotations

from typing import Any

from tests.helpers import load_event, with_user
from tests.integration.api.conftest import USER_A, at_path, connection_event
from tests.integration.futures.helpers import body_of, new_key, order_body, order_event, raise_notional_limit


def _place(invoke: Any, body: dict[str, Any]) -> None:
    response = invoke("futures_order", order_event(body, key=new_key()))
    assert response["statusCode"] == 200, response["body"]


def _read(invoke: Any, route: str, connection_id: str, suffix: str) -> Any:
    response = invoke(route, connection_event(route, connection_id, USER_A, suffix))
    assert response["statusCode"] == 200, response["body"]
    return body_of(response)


def _by_id(invoke: Any, route: str, client_order_id: str) -> Any:
    """The body of a route on /futures/order/{clientOrderId} (the status read, the cancel), no query."""
    event = at_path(load_event(route), f"/futures/order/{client_order_id}", clientOrderId=client_order_id)
    event["rawQueryString"] = ""
    event.pop("queryStringParameters", None)
    return body_of(invoke(route, with_user(event, USER_A)))


def test_a_trailing_stop_and_a_close_position_stop_show_no_zero_trigger_or_quantity(sim_env, invoke,
                                                                                    futures_connection):
    """GIVEN a long guarded by a closePosition stop and a trailing stop WHEN the positions are read THEN
    neither shows Binance's placeholder 0 as its quantity or trigger price (null, as open-orders says)."""
    connection_id = futures_connection.id
    raise_notional_limit(connection_id)
    _place(invoke, order_body(connection_id, type="MARKET", price=None, timeInForce=None, quantity="0.002"))
    _place(invoke, order_body(connection_id, side="SELL", type="STOP_MARKET", price=None, timeInForce=None,
                              quantity=None, triggerPrice="60000", closePosition=True))
    _place(invoke, order_body(connection_id, side="SELL", type="TRAILING_STOP_MARKET", price=None,
                              timeInForce=None, quantity="0.002", callbackRate="1", reduceOnly=True))

    [position] = _read(invoke, "futures_positions", connection_id, "/futures/positions")["positions"]
    listed = _read(invoke, "futures_open_orders", connection_id, "/futures/open-orders")["orders"]

    shown = {(o["type"], o["trigger_price"], o["quantity"]) for o in position["protective_orders"]}
    assert shown == {("STOP_MARKET", "60000", None), ("TRAILING_STOP_MARKET", None, "0.002")}
    assert shown == {(o["type"], o["trigger_price"], o["quantity"]) for o in listed}


def test_a_close_position_stop_is_answered_for_no_quantity_by_the_order_routes(sim_env, invoke,
                                                                               futures_connection):
    """GIVEN a long WHEN a closePosition stop is placed, replayed with its key, read back and cancelled
    THEN each answer's quantity is null (not Binance's placeholder "0"), as open-orders says it."""
    connection_id = futures_connection.id
    raise_notional_limit(connection_id)
    _place(invoke, order_body(connection_id, type="MARKET", price=None, timeInForce=None, quantity="0.002"))
    stop, key = order_body(connection_id, side="SELL", type="STOP_MARKET", price=None, timeInForce=None,
                           quantity=None, triggerPrice="60000", closePosition=True), new_key()

    answers = [body_of(invoke("futures_order", order_event(stop, key=key))) for _ in range(2)]
    cid = answers[0]["client_order_id"]
    answers.append(_by_id(invoke, "futures_order_status", cid))
    [listed] = _read(invoke, "futures_open_orders", connection_id, "/futures/open-orders")["orders"]
    answers.append(_by_id(invoke, "futures_order_cancel", cid))

    assert [(a["source"], a["close_position"], a["quantity"]) for a in answers] == [
        ("placed", True, None), ("existing", True, None), ("queried", True, None), ("queried", True, None)]
    assert listed["quantity"] is None


def test_a_close_position_stop_is_listed_for_no_quantity_by_the_order_history(sim_env, invoke,
                                                                             futures_connection):
    """GIVEN a long guarded by a closePosition stop WHEN the order history is read THEN the stop's quantity
    is null, as the order routes answered it (not Binance's placeholder "0": a stop for nothing)."""
    connection_id = futures_connection.id
    raise_notional_limit(connection_id)
    _place(invoke, order_body(connection_id, type="MARKET", price=None, timeInForce=None, quantity="0.002"))
    stop = body_of(invoke("futures_order", order_event(order_body(
        connection_id, side="SELL", type="STOP_MARKET", price=None, timeInForce=None, quantity=None,
        triggerPrice="60000", closePosition=True), key=new_key())))
    event = with_user(load_event("futures_orders"), USER_A)
    event["rawQueryString"], event["queryStringParameters"] = "", {}

    listed = {o["client_order_id"]: o for o in body_of(invoke("futures_orders", event))["orders"]}

    assert stop["quantity"] is None
    assert (listed[stop["client_order_id"]]["type"], listed[stop["client_order_id"]]["quantity"]) == (
        "STOP_MARKET", None)
