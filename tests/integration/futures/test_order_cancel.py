"""DELETE /futures/order/{clientOrderId} against moto and the simulator: one cancel, the final state."""

from __future__ import annotations

import threading
from typing import Any

from klineo.services.orders import idempotent_client_order_id
from klineo.store import flags
from klineo.store.connections import add_key_failure, get_connection
from klineo.store.orders import get_order_record

from tests.helpers import load_event, with_user
from tests.integration.api.conftest import USER_A, USER_B, LambdaContext, at_path, aws_refusing
from tests.integration.futures.helpers import (
    ORDER_PATH,
    body_of,
    exchange_orders,
    fresh_handler,
    new_key,
    order_body,
    order_event,
)


def _cancel_event(client_order_id: str, user: str = USER_A) -> dict[str, Any]:
    event = at_path(load_event("futures_order_cancel"), f"/futures/order/{client_order_id}",
                    clientOrderId=client_order_id)
    return with_user(event, user)


def _cancels(sim: Any) -> list[Any]:
    return [r for r in sim.journal if r.method == "DELETE" and r.path == ORDER_PATH]


def _place(invoke: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = invoke("futures_order", order_event(body, key=new_key()))
    assert response["statusCode"] == 200, response["body"]
    return body_of(response)


def test_cancel_sent_twice_gives_one_cancel_and_the_final_state(sim_env, invoke, futures_connection):
    """GIVEN a resting LIMIT WHEN cancelled twice THEN one DELETE in the journal, CANCELED both times."""
    placed = _place(invoke, order_body(futures_connection.id))

    first = invoke("futures_order_cancel", _cancel_event(placed["client_order_id"]))
    second = invoke("futures_order_cancel", _cancel_event(placed["client_order_id"]))

    assert first["statusCode"] == 200, first["body"]
    assert second["statusCode"] == 200, second["body"]
    assert body_of(first)["status"] == body_of(second)["status"] == "CANCELED"
    assert body_of(second)["source"] == "existing"
    assert len(_cancels(sim_env)) == 1
    (order,) = exchange_orders(sim_env, futures_connection.account)
    assert order.status == "CANCELED"
    record = get_order_record(USER_A, placed["client_order_id"])
    assert record is not None and record.status == "CANCELED"


def test_cancel_of_a_filled_order_is_409_with_its_state(sim_env, invoke, futures_connection):
    """GIVEN a filled MARKET order WHEN cancelled THEN 409 naming FILLED, and no DELETE is sent."""
    body = order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None, quantity="0.002")
    placed = _place(invoke, body)

    response = invoke("futures_order_cancel", _cancel_event(placed["client_order_id"]))

    assert response["statusCode"] == 409, response["body"]
    error = body_of(response)["error"]
    assert error["category"] == "conflict" and "FILLED" in error["message"]
    assert _cancels(sim_env) == []


def test_cancel_of_an_order_filled_since_reads_binance_and_is_409(sim_env, invoke, futures_connection):
    """GIVEN a resting LIMIT that fills at Binance (mark moved) WHEN cancelled
    THEN Binance's -2011 is settled by reading the order: 409 FILLED, and the record says FILLED."""
    placed = _place(invoke, order_body(futures_connection.id))
    sim_env.set_mark_price("BTCUSDT", 19000)
    try:
        response = invoke("futures_order_cancel", _cancel_event(placed["client_order_id"]))
    finally:
        sim_env.set_mark_price("BTCUSDT", None)

    assert response["statusCode"] == 409, response["body"]
    assert "FILLED" in body_of(response)["error"]["message"]
    record = get_order_record(USER_A, placed["client_order_id"])
    assert record is not None and record.status == "FILLED"


def test_cancel_passes_under_the_kill_switch(sim_env, invoke, futures_connection):
    """GIVEN a resting LIMIT and the global kill switch on WHEN cancelled THEN it is cancelled."""
    placed = _place(invoke, order_body(futures_connection.id))
    flags.set_global_kill_switch(True)
    try:
        response = invoke("futures_order_cancel", _cancel_event(placed["client_order_id"]))
    finally:
        flags.set_global_kill_switch(False)

    assert response["statusCode"] == 200, response["body"]
    assert body_of(response)["status"] == "CANCELED"


def test_cancel_of_another_users_order_is_not_found(sim_env, invoke, futures_connection):
    """GIVEN USER_A's order WHEN USER_B cancels it THEN 404 and nothing is sent."""
    placed = _place(invoke, order_body(futures_connection.id))

    response = invoke("futures_order_cancel", _cancel_event(placed["client_order_id"], USER_B))

    assert response["statusCode"] == 404 and _cancels(sim_env) == []


def test_cancel_with_a_malformed_id_names_the_field(sim_env, invoke, futures_connection):
    """GIVEN an id Binance would refuse WHEN cancelled THEN 400 naming clientOrderId, without echoing it."""
    response = invoke("futures_order_cancel", _cancel_event("bad!id"))

    assert response["statusCode"] == 400, response["body"]
    error = body_of(response)["error"]
    assert error["field"] == "clientOrderId" and "bad!id" not in error["message"]


def _resetting_the_key_failures(params: dict[str, Any]) -> bool:
    """True for the UpdateItem that resets the connection's key-failure count (``reset_key_failures``)."""
    # credentials_version: the key version it is conditional on (a replaced key's success resets nothing);
    # trading_refusals: the part only a call that traded clears (a cancel's success clears both).
    names = set(params.get("ExpressionAttributeNames", {}).values()) - {"credentials_version"}
    counts = {"consecutive_failures", "trading_refusals"}
    setting = params["UpdateExpression"].startswith("SET")
    return setting and "consecutive_failures" in names and names <= counts


def test_a_cancel_binance_carried_out_is_answered_when_resetting_the_key_count_fails(
    sim_env, invoke, futures_connection
):
    """GIVEN a resting LIMIT on a connection with one key failure counted and DynamoDB throttling the
    count's reset WHEN cancelled THEN 200 CANCELED, recorded (before: a retryable 503 for the throttling
    though Binance had cancelled the order, so the caller's retry met an order no longer open)."""
    placed = _place(invoke, order_body(futures_connection.id))
    add_key_failure(USER_A, futures_connection.id)

    with aws_refusing("UpdateItem", "dynamodb", when=_resetting_the_key_failures):
        response = invoke("futures_order_cancel", _cancel_event(placed["client_order_id"]))

    assert response["statusCode"] == 200, response["body"]
    assert body_of(response)["status"] == "CANCELED"
    (order,) = exchange_orders(sim_env, futures_connection.account)
    assert order.status == "CANCELED"
    record = get_order_record(USER_A, placed["client_order_id"])
    assert record is not None and record.status == "CANCELED"
    assert get_connection(USER_A, futures_connection.id).consecutive_failures == 1


def test_a_cancel_while_the_order_is_still_being_placed_never_says_it_is_gone(
    sim_env, invoke, futures_connection, wait_until
):
    """GIVEN a LIMIT whose POST is still on its way to Binance (its record claimed, not yet placed) WHEN
    cancelled THEN 504 unknown_outcome saying it may still reach Binance, not a 404 "no longer
    knows this order (purged)" (before: the trader was told it was gone, and the order then rested at
    Binance); the cancel sent again once it is placed cancels it."""
    sim_env.faults.add("delay_before", method="POST", path=ORDER_PATH, delay_ms=1500)
    key = new_key()
    placed: list[dict[str, Any]] = []
    event, context = order_event(order_body(futures_connection.id), key=key), LambdaContext("futures_order")
    in_flight = threading.Thread(target=lambda: placed.append(fresh_handler("futures_order")(event, context)))
    in_flight.start()
    client_order_id = idempotent_client_order_id(USER_A, key)
    assert wait_until(lambda: get_order_record(USER_A, client_order_id) is not None, 10.0)

    early = invoke("futures_order_cancel", _cancel_event(client_order_id))
    in_flight.join(timeout=30)
    again = invoke("futures_order_cancel", _cancel_event(client_order_id))

    assert early["statusCode"] == 504, early["body"]
    error = body_of(early)["error"]
    assert (error["category"], error["field"]) == ("unknown_outcome", "clientOrderId"), error
    assert "send the cancel again" in error["message"].lower()
    assert placed[0]["statusCode"] == 200 and body_of(placed[0])["status"] == "NEW", placed[0]["body"]
    assert again["statusCode"] == 200 and body_of(again)["status"] == "CANCELED", again["body"]
    (order,) = exchange_orders(sim_env, futures_connection.account)
    assert order.status == "CANCELED"
