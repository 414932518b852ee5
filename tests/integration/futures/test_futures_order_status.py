"""GET /futures/order/{clientOrderId} (moto + simulator): Binance's state, own orders only."""

from __future__ import annotations

import boto3
from klineo.settings import get_settings
from klineo.store.connections import add_key_failure, get_connection
from klineo.store.orders import get_order_record
from klineo.store.strategies import get_strategy

from tests.helpers import load_event
from tests.integration.api.conftest import USER_A, USER_B
from tests.integration.futures.helpers import (
    body_of,
    new_key,
    order_body,
    order_event,
    raise_notional_limit,
    status_event,
)
from tests.integration.futures.test_key_lifecycle import _live_strategy


def _place(invoke, connection_id: str, **changes) -> dict:
    response = invoke("futures_order", order_event(order_body(connection_id, **changes), key=new_key()))
    assert response["statusCode"] == 200, response["body"]
    return body_of(response)


def test_status_comes_from_binance_through_the_order_record(sim_env, invoke, futures_connection):
    """GIVEN a placed order WHEN asked without connection_id THEN Binance's state, via the record."""
    placed = _place(invoke, futures_connection.id)
    sim_env.clear_journal()

    response = invoke("futures_order_status", status_event(placed["client_order_id"]))

    assert response["statusCode"] == 200, response["body"]
    body = body_of(response)
    assert body["order_id"] == placed["order_id"] and body["status"] == "NEW" and body["source"] == "queried"
    assert body["connection_id"] == futures_connection.id
    assert [(r.method, r.path) for r in sim_env.journal] == [("GET", "/fapi/v1/order")]


def test_status_follows_the_order_at_binance(sim_env, invoke, futures_connection):
    """GIVEN an order cancelled at Binance WHEN its status is asked THEN CANCELED, the record follows."""
    placed = _place(invoke, futures_connection.id)
    account = futures_connection.account
    sim_env.state.futures.cancel_order(
        account,
        {"symbol": "BTCUSDT", "origClientOrderId": placed["client_order_id"]},
        sim_env.server_time_ms(),
    )

    response = invoke("futures_order_status", status_event(placed["client_order_id"]))

    assert body_of(response)["status"] == "CANCELED"
    assert get_order_record(USER_A, placed["client_order_id"]).status == "CANCELED"


def test_other_users_order_is_not_found(sim_env, invoke, futures_connection, create_connection):
    """GIVEN A's order WHEN user B asks for it, with or without a connection THEN 404."""
    placed = _place(invoke, futures_connection.id)
    own = create_connection(USER_B, "ed25519-futures")  # B's own Binance account
    sim_env.clear_journal()

    without = invoke("futures_order_status", status_event(placed["client_order_id"], USER_B))
    with_a_connection = invoke(
        "futures_order_status",
        status_event(
            placed["client_order_id"], USER_B, connection_id=futures_connection.id, symbol="BTCUSDT"
        ),
    )

    assert without["statusCode"] == 404 and body_of(without)["error"]["category"] == "not_found"
    assert with_a_connection["statusCode"] == 404
    assert sim_env.journal == []
    with_own = invoke(
        "futures_order_status",
        status_event(placed["client_order_id"], USER_B, connection_id=own.id, symbol="BTCUSDT"),
    )
    assert with_own["statusCode"] == 404 and body_of(with_own)["error"]["category"] == "order_not_found"


def test_mismatched_connection_is_not_found(sim_env, invoke, futures_connection, create_connection):
    """GIVEN an order on connection 1 WHEN asked with the caller's connection 2 THEN 404."""
    placed = _place(invoke, futures_connection.id)
    other = create_connection(USER_A, "futures-full", label="second")

    response = invoke("futures_order_status", status_event(placed["client_order_id"], connection_id=other.id))

    assert response["statusCode"] == 404


def test_order_placed_elsewhere_needs_connection_and_symbol(sim_env, invoke, futures_connection):
    """GIVEN an id unknown to the API WHEN asked with connection_id only THEN 400 naming symbol."""
    unknown = "runner_order_1"
    missing_symbol = invoke(
        "futures_order_status", status_event(unknown, connection_id=futures_connection.id)
    )
    assert missing_symbol["statusCode"] == 400 and body_of(missing_symbol)["error"]["field"] == "symbol"

    nowhere = invoke(
        "futures_order_status", status_event(unknown, connection_id=futures_connection.id, symbol="BTCUSDT")
    )
    assert nowhere["statusCode"] == 404 and body_of(nowhere)["error"]["category"] == "order_not_found"

    no_connection = invoke("futures_order_status", status_event(unknown))
    assert no_connection["statusCode"] == 404 and body_of(no_connection)["error"]["category"] == "not_found"


def test_an_id_binance_does_not_hold_is_404_naming_it_without_repeating_it(
        sim_env, invoke, futures_connection):
    """GIVEN a clientOrderId neither we nor Binance hold WHEN asked with connection_id and symbol THEN 404
    order_not_found naming clientOrderId, whose message repeats neither the id nor the symbol sent."""
    sent = "MyVeryOwnMarker123"

    response = invoke("futures_order_status",
                      status_event(sent, connection_id=futures_connection.id, symbol="ETHUSDT"))

    assert response["statusCode"] == 404, response["body"]
    error = body_of(response)["error"]
    assert (error["category"], error["field"]) == ("order_not_found", "clientOrderId")
    assert sent not in response["body"] and "ETHUSDT" not in response["body"], response["body"]


def test_invalid_client_order_id_names_the_field(sim_env, invoke, futures_connection):
    """GIVEN an id Binance's rule refuses WHEN asked THEN 400 naming clientOrderId."""
    response = invoke(
        "futures_order_status", status_event("x" * 37, connection_id=futures_connection.id, symbol="BTCUSDT")
    )
    assert response["statusCode"] == 400
    assert body_of(response)["error"]["field"] == "clientOrderId"


def test_status_event_file_is_accepted(sim_env, invoke):
    """GIVEN events/futures_order_status.json as is WHEN invoked THEN routed (404: no connection)."""
    response = invoke("futures_order_status", load_event("futures_order_status"))
    assert response["statusCode"] == 404
    assert body_of(response)["error"]["category"] == "not_found"


def test_refused_order_status_says_it_was_never_placed(sim_env, invoke, futures_connection):
    """GIVEN an order Binance refused WHEN its status is asked THEN 404 saying so, no lookup."""
    raise_notional_limit(futures_connection.id)  # let the order past the risk gate, to Binance
    refused = invoke(
        "futures_order", order_event(order_body(futures_connection.id, quantity="100"), key=new_key())
    )
    assert refused["statusCode"] == 422
    client_order_id = next(iter(_order_ids(USER_A)))
    sim_env.clear_journal()

    response = invoke("futures_order_status", status_event(client_order_id))

    assert response["statusCode"] == 404
    assert "never placed" in body_of(response)["error"]["message"]
    assert sim_env.journal == []


def _order_ids(user: str) -> list[str]:
    items = boto3.client("dynamodb").query(
        TableName=get_settings().data_table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": {"S": f"USER#{user}"}, ":prefix": {"S": "ORDER#"}},
    )["Items"]
    return [item["client_order_id"]["S"] for item in items]


def test_symbol_that_contradicts_the_order_record_is_not_found(sim_env, invoke, futures_connection):
    """GIVEN a placed BTCUSDT order WHEN GET /futures/order/{id}?symbol=ZZZZUSDT THEN 404, not its state."""
    placed = _place(invoke, futures_connection.id)
    sim_env.clear_journal()

    response = invoke("futures_order_status", status_event(placed["client_order_id"], symbol="ZZZZUSDT"))

    assert response["statusCode"] == 404
    assert body_of(response)["error"]["category"] == "order_not_found"
    assert sim_env.journal == []


def test_repeated_connection_id_is_the_400_of_any_repeated_parameter(sim_env, invoke, futures_connection):
    """GIVEN ?connection_id=a&connection_id=b WHEN asked THEN 400 naming connection_id (not a 422)."""
    event = status_event("k" * 36)
    event["rawQueryString"] = f"connection_id={futures_connection.id}&connection_id={'0' * 32}"
    event["queryStringParameters"] = {"connection_id": f"{futures_connection.id},{'0' * 32}"}

    response = invoke("futures_order_status", event)

    assert response["statusCode"] == 400
    assert body_of(response)["error"]["field"] == "connection_id"
    assert "more than once" in body_of(response)["error"]["message"]


def test_a_status_read_binance_answered_clears_the_connections_key_count(sim_env, invoke, futures_connection):
    """GIVEN a placed order and two key failures counted since WHEN its status is read with the key THEN the
    connection's count is 0 (Binance's answer proved the key works, klineo.services.key_health)."""
    placed = _place(invoke, futures_connection.id)
    add_key_failure(USER_A, futures_connection.id)
    add_key_failure(USER_A, futures_connection.id)

    response = invoke("futures_order_status", status_event(placed["client_order_id"]))

    assert response["statusCode"] == 200, response["body"]
    assert get_connection(USER_A, futures_connection.id).consecutive_failures == 0


def test_a_status_read_refused_for_the_key_counts_one_key_failure(sim_env, invoke, futures_connection):
    """GIVEN a placed order and a key Binance now refuses (401 -2015) WHEN its status is read THEN the answer
    is the refusal and the connection's key failures count 1 (a futures read the key must be able to make)."""
    placed = _place(invoke, futures_connection.id)
    sim_env.faults.add("http_401_invalid_key", 1, api_key=futures_connection.account.api_key)

    response = invoke("futures_order_status", status_event(placed["client_order_id"]))

    assert response["statusCode"] in (401, 403), response["body"]
    assert get_connection(USER_A, futures_connection.id).consecutive_failures == 1


def test_three_status_reads_refused_for_the_key_disable_the_connection_and_pause_its_strategy(
        sim_env, invoke, futures_connection):
    """GIVEN a placed order, a live strategy and a key Binance now refuses WHEN its status is read three times
    THEN the third read disables the connection and pauses the strategy (the function's policy allows it)."""
    placed = _place(invoke, futures_connection.id)
    strategy_id = _live_strategy(futures_connection.id)
    sim_env.faults.add("http_401_invalid_key", 3, api_key=futures_connection.account.api_key)

    for _ in range(3):
        invoke("futures_order_status", status_event(placed["client_order_id"]))

    after = get_connection(USER_A, futures_connection.id)
    assert after.disabled_reason == "connection_disabled:permission"
    paused = get_strategy(USER_A, strategy_id, consistent=True)
    assert paused is not None and (paused.status, paused.status_reason) == ("paused", after.disabled_reason)
