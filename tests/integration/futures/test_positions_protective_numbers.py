"""The positions view's protective orders give their numbers as the open-orders route does."""

from __future__ import annotations

from typing import Any

from tests.integration.api.conftest import USER_A, connection_event
from tests.integration.futures.helpers import body_of, new_key, order_body, order_event, raise_notional_limit


def _place(invoke: Any, body: dict[str, Any]) -> None:
    response = invoke("futures_order", order_event(body, key=new_key()))
    assert response["statusCode"] == 200, response["body"]


def _read(invoke: Any, route: str, connection_id: str, suffix: str) -> Any:
    response = invoke(route, connection_event(route, connection_id, USER_A, suffix))
    assert response["statusCode"] == 200, response["body"]
    return body_of(response)


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
