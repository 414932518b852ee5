"""POST /futures/order against moto and the simulator over loopback: exactly once, refusals, ownership."""

from __future__ import annotations

import re
import threading
import time
from decimal import Decimal

import boto3
import pytest
from botocore.exceptions import ClientError
from klineo.models.futures import FuturesOrderRequest
from klineo.services.orders import FuturesOrder, idempotent_client_order_id
from klineo.settings import get_settings
from klineo.store import aws as aws_clients
from klineo.store import flags
from klineo.store.orders import create_order_record, get_order_record

from tests.helpers import load_event, response_json, with_body, with_user
from tests.integration.api.conftest import USER_A, USER_B, LambdaContext, connection_event
from tests.integration.futures.helpers import (
    ORDER_PATH,
    body_of,
    exchange_orders,
    fresh_handler,
    new_key,
    order_body,
    order_event,
    order_posts,
    raise_notional_limit,
    status_event,
)

# ---------------------------------------------------------------- placing


def test_limit_order_is_placed_once_and_recorded(sim_env, invoke, futures_connection):
    """GIVEN futures on WHEN a keyed LIMIT order is sent THEN Binance has it once, and it is recorded."""
    response = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))

    assert response["statusCode"] == 200, response["body"]
    body = body_of(response)
    assert body["status"] == "NEW" and body["source"] == "placed"
    assert body["quantity"] == "0.01" and body["price"] == "20000"
    assert len(exchange_orders(sim_env, futures_connection.account)) == 1
    assert len(order_posts(sim_env)) == 1
    record = get_order_record(USER_A, body["client_order_id"])
    assert record is not None and record.status == "NEW" and record.order_id == body["order_id"]
    assert (
        record.connection_id == futures_connection.id
        and record.params["newClientOrderId"] == body["client_order_id"]
    )


def test_market_order_answers_its_final_fill(sim_env, invoke, futures_connection):
    """GIVEN futures on WHEN a MARKET order is sent THEN the answer is Binance's RESULT: FILLED."""
    body = order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None, quantity="0.002")
    response = invoke("futures_order", order_event(body, key=new_key()))

    assert response["statusCode"] == 200, response["body"]
    answer = body_of(response)
    assert answer["status"] == "FILLED"
    assert answer["executed_quantity"] == "0.002" and answer["average_price"] is not None


def test_on_grid_quantity_and_price_are_sent_as_typed(sim_env, invoke, futures_connection):
    """GIVEN a quantity and price on BTCUSDT's grid, with trailing zeros WHEN ordered THEN sent as typed."""
    body = order_body(futures_connection.id, quantity="0.0110", price="20000.30")
    response = invoke("futures_order", order_event(body, key=new_key()))

    assert response["statusCode"] == 200, response["body"]
    answer = body_of(response)
    assert answer["quantity"] == "0.011" and answer["price"] == "20000.3"
    (held,) = exchange_orders(sim_env, futures_connection.account)
    assert (held.orig_qty, held.price) == (Decimal("0.011"), Decimal("20000.3"))


def _refused_off_grid(sim_env, invoke, body) -> dict:
    """The 400 an off-grid order gets; nothing was sent to /fapi/v1/order or /fapi/v1/algoOrder."""
    response = invoke("futures_order", order_event(body, key=new_key()))
    assert response["statusCode"] == 400, response["body"]
    assert not [r for r in sim_env.journal if r.method == "POST" and "order" in r.path.lower()]
    return body_of(response)["error"]


def test_off_grid_quantity_is_refused_with_the_step_never_rounded(sim_env, invoke, futures_connection):
    """GIVEN quantity 0.0029 (SELL LIMIT reduce-only) or 0.0011 (below the minimum value once rounded)
    WHEN ordered THEN 400 invalid_request naming quantity with BTCUSDT's step, not the value; none sent."""
    sell = order_body(futures_connection.id, side="SELL", price="90000.09", quantity="0.0029",
                      reduceOnly=True)
    small = order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None, quantity="0.0011")

    errors = [_refused_off_grid(sim_env, invoke, body) for body in (sell, small)]

    for error in errors:
        assert (error["category"], error["field"]) == ("invalid_request", "quantity")
        assert error["message"] == "quantity must be a multiple of the step size 0.001 for BTCUSDT"


def test_off_grid_price_is_refused_with_the_tick_never_rounded(sim_env, invoke, futures_connection):
    """GIVEN a SELL LIMIT at 90000.09 (tick 0.1; rounding down would sell cheaper than asked) WHEN ordered
    THEN 400 invalid_request naming price with the tick size, not the value; nothing sent."""
    body = order_body(futures_connection.id, side="SELL", price="90000.09", quantity="0.002", reduceOnly=True)

    error = _refused_off_grid(sim_env, invoke, body)

    assert (error["category"], error["field"]) == ("invalid_request", "price")
    assert error["message"] == "price must be a multiple of the tick size 0.1 for BTCUSDT"
    assert "90000" not in error["message"]


def test_off_grid_trigger_and_stop_loss_prices_are_refused_naming_them(sim_env, invoke, futures_connection):
    """GIVEN a STOP_MARKET triggerPrice 65000.09, or an entry's stop_loss price 50000.05 WHEN ordered THEN
    400 naming triggerPrice / stop_loss.price with the tick size; neither the stop nor the entry sent."""
    stop = order_body(futures_connection.id, side="SELL", type="STOP_MARKET", price=None, timeInForce=None,
                      quantity="0.002", triggerPrice="65000.09", reduceOnly=True)
    entry = order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None, quantity="0.002",
                       stop_loss={"price": "50000.05"})

    trigger, stop_loss = (_refused_off_grid(sim_env, invoke, body) for body in (stop, entry))

    assert (trigger["field"], trigger["message"]) == (
        "triggerPrice", "triggerPrice must be a multiple of the tick size 0.1 for BTCUSDT")
    assert (stop_loss["field"], stop_loss["message"]) == (
        "stop_loss.price", "stop_loss.price must be a multiple of the tick size 0.1 for BTCUSDT")


def test_order_without_key_is_428_and_sends_nothing(sim_env, invoke, futures_connection):
    """GIVEN no Idempotency-Key WHEN ordering THEN 428 naming the header and why; nothing sent or stored."""
    response = invoke("futures_order", order_event(order_body(futures_connection.id), key=None))

    assert response["statusCode"] == 428, response["body"]
    error = body_of(response)["error"]
    assert error["category"] == "precondition_required" and error["field"] == "Idempotency-Key"
    assert "retry" in error["message"] and "safe" in error["message"]
    assert order_posts(sim_env) == []
    assert _order_records() == []


def test_keyed_client_order_id_fits_binances_rule(sim_env, invoke, futures_connection):
    """GIVEN an Idempotency-Key WHEN ordering THEN the id is k + 35 base32 chars, within Binance rules."""
    response = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))

    assert response["statusCode"] == 200, response["body"]
    client_order_id = body_of(response)["client_order_id"]
    assert re.fullmatch(r"k[a-z2-7]{35}", client_order_id)
    assert re.fullmatch(r"^[\.A-Z\:/a-z0-9_-]{1,36}$", client_order_id)


def _order_records() -> list[dict]:
    """Every order item in the data table."""
    items = boto3.client("dynamodb").scan(TableName=get_settings().data_table)["Items"]
    return [item for item in items if item["sk"]["S"].startswith("ORDER#")]


def test_event_file_is_accepted_by_the_handler(sim_env, invoke, futures_connection):
    """GIVEN events/futures_order.json (base64) WHEN invoked as is and on a real connection THEN routed."""
    as_is = invoke("futures_order", load_event("futures_order"))
    assert as_is["statusCode"] == 404, as_is["body"]  # body valid; that user has no such connection
    assert body_of(as_is)["error"]["category"] == "not_found"

    event = with_user(load_event("futures_order"), USER_A)
    body = response_json({"body": event["body"], "isBase64Encoded": True})
    event = with_body(event, {**body, "connection_id": futures_connection.id}, base64_encoded=True)
    event["headers"].pop("content-length", None)
    placed = invoke("futures_order", event)
    assert placed["statusCode"] == 200, placed["body"]


# ---------------------------------------------------------------- exactly once


def test_same_key_repeated_returns_the_first_order(sim_env, invoke, futures_connection):
    """GIVEN an order placed with key K WHEN repeated THEN the first order comes back, no second POST."""
    event = order_event(order_body(futures_connection.id), key=new_key())
    first = body_of(invoke("futures_order", event))
    again = invoke("futures_order", event)

    assert again["statusCode"] == 200, again["body"]
    second = body_of(again)
    assert second["order_id"] == first["order_id"] and second["client_order_id"] == first["client_order_id"]
    assert second["source"] == "existing"
    assert len(order_posts(sim_env)) == 1
    assert len(exchange_orders(sim_env, futures_connection.account)) == 1


def test_replayed_fill_answers_the_same_money_text_as_the_first_answer(sim_env, invoke, futures_connection):
    """GIVEN a MARKET order filled (Binance's avgPrice padded with zeros) WHEN its key is replayed THEN both
    answers spell every number alike, in the API's plain form (no trailing zeros)."""
    body = order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None, quantity="0.002")
    event = order_event(body, key=new_key())
    first = body_of(invoke("futures_order", event))
    second = body_of(invoke("futures_order", event))

    numbers = ("quantity", "executed_quantity", "price", "average_price", "trigger_price")
    assert first["source"] == "placed" and second["source"] == "existing"
    assert {k: first[k] for k in numbers} == {k: second[k] for k in numbers}
    average = first["average_price"]
    assert average == format(Decimal(average).normalize(), "f")


def test_same_key_sent_twice_at_once_places_one_order(sim_env, futures_connection, wait_until):
    """GIVEN two containers WHEN both send the same keyed order at once THEN one order, the other 409."""
    sim_env.faults.add("delay_before", method="POST", path=ORDER_PATH, delay_ms=1500)
    key = new_key()
    event = order_event(order_body(futures_connection.id), key=key)
    first_in_flight = lambda: get_order_record(USER_A, idempotent_client_order_id(USER_A, key)) is not None  # noqa: E731
    handlers = [fresh_handler("futures_order"), fresh_handler("futures_order")]
    answers: list[dict] = [{}, {}]

    def send(index: int) -> None:
        answers[index] = handlers[index](event, LambdaContext(function_name="futures_order"))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    threads[0].start()
    assert wait_until(first_in_flight, 10.0)  # the first holds the key and is sending its order
    threads[1].start()
    for thread in threads:
        thread.join(timeout=30)

    statuses = sorted(a["statusCode"] for a in answers)
    assert statuses == [200, 409], [a.get("body") for a in answers]
    conflict = next(body_of(a) for a in answers if a["statusCode"] == 409)["error"]
    assert conflict["category"] == "conflict" and conflict["retryable"] is True
    assert "in progress" in conflict["message"] and conflict["field"] == "Idempotency-Key"
    assert len(exchange_orders(sim_env, futures_connection.account)) == 1
    assert len(order_posts(sim_env)) == 1

    later = handlers[1](event, LambdaContext(function_name="futures_order"))
    assert later["statusCode"] == 200
    placed = next(body_of(a) for a in answers if a["statusCode"] == 200)
    assert body_of(later)["order_id"] == placed["order_id"]


def test_lost_answer_is_recovered_by_lookup_not_resent(sim_env, invoke, futures_connection, futures_clients):
    """GIVEN the answer comes after our read timeout WHEN ordering THEN the real order, exactly one."""
    futures_clients(read_timeout=0.5)
    sim_env.faults.add("delay_after", method="POST", path=ORDER_PATH, delay_ms=2000)
    body = order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None, quantity="0.002")

    response = invoke("futures_order", order_event(body, key=new_key()))

    assert response["statusCode"] == 200, response["body"]
    answer = body_of(response)
    assert answer["source"] == "recovered" and answer["status"] == "FILLED"
    orders = exchange_orders(sim_env, futures_connection.account)
    assert len(orders) == 1 and orders[0].client_order_id == answer["client_order_id"]
    assert len(order_posts(sim_env)) == 1
    assert get_order_record(USER_A, answer["client_order_id"]).status == "FILLED"


def test_unknown_503_is_settled_by_lookup(sim_env, invoke, futures_connection):
    """GIVEN Binance's "Unknown error" 503 after executing WHEN ordering THEN the lookup finds the order."""
    sim_env.faults.add("http_503_unknown", method="POST", path=ORDER_PATH)
    response = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))

    assert response["statusCode"] == 200, response["body"]
    assert body_of(response)["source"] == "recovered"
    assert len(exchange_orders(sim_env, futures_connection.account)) == 1
    assert len(order_posts(sim_env)) == 1


def test_unsettled_outcome_answers_504_then_the_same_key_returns_the_order(
    sim_env, invoke, futures_connection, futures_clients
):
    """GIVEN a lost answer and failing lookups WHEN ordering THEN 504 naming the id; status finds it."""
    futures_clients(read_timeout=0.5, max_retries=0)
    sim_env.faults.add("delay_after", method="POST", path=ORDER_PATH, delay_ms=1500)
    sim_env.faults.add("http_503_unavailable", count=100, method="GET", path=ORDER_PATH)
    event = order_event(order_body(futures_connection.id), key=new_key())

    response = invoke("futures_order", event)
    sim_env.faults.clear()

    assert response["statusCode"] == 504, response["body"]
    error = body_of(response)["error"]
    assert error["category"] == "unknown_outcome" and error["retryable"] is False
    client_order_id = re.search(r"clientOrderId (\S+)", error["message"]).group(1)
    assert get_order_record(USER_A, client_order_id).status == "UNKNOWN"

    status = invoke("futures_order_status", status_event(client_order_id))
    assert status["statusCode"] == 200 and body_of(status)["status"] == "NEW"
    assert get_order_record(USER_A, client_order_id).status == "NEW"

    again = invoke("futures_order", event)
    assert again["statusCode"] == 200, again["body"]
    assert body_of(again)["client_order_id"] == client_order_id and body_of(again)["source"] == "existing"
    assert len(order_posts(sim_env)) == 1
    assert len(exchange_orders(sim_env, futures_connection.account)) == 1


def test_duplicate_client_order_id_answers_the_existing_order(sim_env, invoke, futures_connection):
    """GIVEN our records lost, order resting WHEN the same key is sent THEN -4116 gives back that order."""
    event = order_event(order_body(futures_connection.id), key=new_key())
    first = body_of(invoke("futures_order", event))
    boto3.client("dynamodb").delete_item(
        TableName=get_settings().data_table,
        Key={"pk": {"S": f"USER#{USER_A}"}, "sk": {"S": f"ORDER#{first['client_order_id']}"}},
    )

    response = invoke("futures_order", event)

    assert response["statusCode"] == 200, response["body"]
    answer = body_of(response)
    assert answer["order_id"] == first["order_id"] and answer["source"] == "existing"
    posts = order_posts(sim_env)
    assert [p.code for p in posts] == [None, -4116]
    assert len(exchange_orders(sim_env, futures_connection.account)) == 1


def test_order_record_alone_returns_the_first_order(sim_env, invoke, futures_connection):
    """GIVEN a filled keyed order WHEN the keyed order comes again THEN the order record answers, no POST."""
    event = order_event(
        order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None, quantity="0.002"),
        key=new_key(),
    )
    first = body_of(invoke("futures_order", event))

    response = invoke("futures_order", event)

    assert response["statusCode"] == 200, response["body"]
    assert body_of(response)["order_id"] == first["order_id"] and body_of(response)["source"] == "existing"
    assert len(order_posts(sim_env)) == 1  # a filled MARKET id is reusable at Binance: never sent again


def test_same_key_with_another_body_is_refused(sim_env, invoke, futures_connection):
    """GIVEN key K used for one order WHEN K comes with another body THEN 409 naming the header."""
    key = new_key()
    invoke("futures_order", order_event(order_body(futures_connection.id), key=key))
    response = invoke(
        "futures_order", order_event(order_body(futures_connection.id, quantity="0.02"), key=key)
    )

    assert response["statusCode"] == 409, response["body"]
    error = body_of(response)["error"]
    assert error["category"] == "conflict" and error["field"] == "Idempotency-Key"
    assert "different order" in error["message"]
    assert len(order_posts(sim_env)) == 1


def test_two_users_with_the_same_key_get_two_orders(sim_env, invoke, create_connection):
    """GIVEN users A and B WHEN both send the same Idempotency-Key THEN each gets their own order."""
    ids = {}
    for user in (USER_A, USER_B):
        connection = create_connection(user, "futures-full")
        assert (
            invoke(
                "futures_enable", connection_event("futures_enable", connection.id, user, "/futures/enable")
            )["statusCode"]
            == 200
        )
        response = invoke(
            "futures_order", order_event(order_body(connection.id), user=user, key="shared-key-1")
        )
        assert response["statusCode"] == 200, response["body"]
        ids[user] = body_of(response)["client_order_id"]

    assert ids[USER_A] != ids[USER_B]
    assert len(order_posts(sim_env)) == 2


# ---------------------------------------------------------------- refusals: nothing reaches Binance


def test_user_kill_switch_refuses_and_sends_nothing(sim_env, invoke, futures_connection):
    """GIVEN the user's kill switch on WHEN ordering THEN 409 conflict and no POST /fapi/v1/order."""
    flags.set_user_kill_switch(USER_A, True)
    response = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))

    assert response["statusCode"] == 409, response["body"]
    assert body_of(response)["error"]["category"] == "conflict"
    assert "kill switch" in body_of(response)["error"]["message"]
    assert order_posts(sim_env) == []


def test_global_kill_switch_refuses_and_sends_nothing(sim_env, invoke, futures_connection):
    """GIVEN the global kill switch on WHEN ordering THEN 409 conflict and no POST /fapi/v1/order."""
    flags.set_global_kill_switch(True)
    response = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))

    assert response["statusCode"] == 409, response["body"]
    assert "global kill switch" in body_of(response)["error"]["message"]
    assert order_posts(sim_env) == []


def test_a_global_switch_an_operator_wrote_as_a_string_reads_on(sim_env, invoke, futures_connection):
    """GIVEN the GLOBAL FLAGS item written by hand with kill_switch {"S": "yes"} (not the README's boolean)
    WHEN a user reads the switches and orders THEN both read it as on: 409 naming the global switch, as the
    claim's condition already held, never a retryable 503 about changed settings; nothing is sent."""
    aws_clients.dynamodb().put_item(TableName=get_settings().data_table, Item={
        "pk": {"S": flags.GLOBAL_PK}, "sk": {"S": flags.FLAGS_SK}, "kill_switch": {"S": "yes"}})

    response = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))

    assert response["statusCode"] == 409, response["body"]
    assert body_of(response)["error"]["field"] == "global_kill_switch"
    assert flags.get_kill_switches(USER_A) == (False, True)
    assert order_posts(sim_env) == []


def test_kill_switch_refusal_frees_the_key_for_later(sim_env, invoke, futures_connection):
    """GIVEN a kill-switch refusal WHEN the switch is off and the key comes again THEN the order is placed."""
    flags.set_user_kill_switch(USER_A, True)
    event = order_event(order_body(futures_connection.id), key=new_key())
    assert invoke("futures_order", event)["statusCode"] == 409
    flags.set_user_kill_switch(USER_A, False)

    response = invoke("futures_order", event)
    assert response["statusCode"] == 200, response["body"]
    assert len(order_posts(sim_env)) == 1


def test_futures_not_enabled_refuses_and_sends_nothing(sim_env, invoke, stored_connection):
    """GIVEN futures not enabled WHEN ordering THEN 409 conflict and no POST /fapi/v1/order."""
    response = invoke("futures_order", order_event(order_body(stored_connection.id), key=new_key()))

    assert response["statusCode"] == 409, response["body"]
    assert "not enabled" in body_of(response)["error"]["message"]
    assert order_posts(sim_env) == []


def test_other_users_connection_is_not_found(sim_env, invoke, futures_connection):
    """GIVEN A's futures connection WHEN user B orders on it THEN 404 and nothing is sent."""
    response = invoke(
        "futures_order", order_event(order_body(futures_connection.id), user=USER_B, key=new_key())
    )

    assert response["statusCode"] == 404, response["body"]
    assert body_of(response)["error"]["category"] == "not_found"
    assert order_posts(sim_env) == []


def test_binance_refusal_is_classified_and_recorded(sim_env, invoke, futures_connection):
    """GIVEN an order beyond the margin WHEN sent THEN 422 insufficient_balance, recorded REJECTED."""
    raise_notional_limit(futures_connection.id)  # let the order past the risk gate, to Binance
    response = invoke(
        "futures_order", order_event(order_body(futures_connection.id, quantity="100"), key=new_key())
    )

    assert response["statusCode"] == 422, response["body"]
    assert body_of(response)["error"]["category"] == "insufficient_balance"
    posts = order_posts(sim_env)
    assert len(posts) == 1 and posts[0].code == -2019
    assert exchange_orders(sim_env, futures_connection.account) == []


def test_a_buy_limit_above_the_band_reads_no_mark_and_meets_binances_refusal(
        sim_env, invoke, futures_connection):
    """GIVEN mark 65000 WHEN a BUY LIMIT priced above mark x 1.05 comes THEN no mark is read for it (a guard:
    PERCENT_PRICE is checked only where the mark is at hand), Binance refuses it (-4016, 400 naming price)
    and the refusal is recorded."""
    sim_env.set_mark_price("BTCUSDT", 65000.0)
    sim_env.clear_journal()
    body = order_body(futures_connection.id, price="70000", quantity="0.002")
    key = new_key()

    response = invoke("futures_order", order_event(body, key=key))

    assert response["statusCode"] == 400, response["body"]
    assert body_of(response)["error"]["field"] == "price"
    # (the symbol's leverage, first traded, is brought under max_leverage before: not a mark read)
    settings = ("/fapi/v1/exchangeInfo", "/fapi/v1/symbolConfig", "/fapi/v1/leverageBracket",
                "/fapi/v1/leverage")
    assert [(r.path, r.code) for r in sim_env.journal if r.path not in settings] == [(ORDER_PATH, -4016)]
    record = get_order_record(USER_A, idempotent_client_order_id(USER_A, key))
    assert record is not None and record.status == "REJECTED"


def test_claim_storage_failure_is_503_and_sends_nothing(sim_env, invoke, futures_connection, monkeypatch):
    """GIVEN the claim transaction failing WHEN a keyed order comes THEN 503, retryable, nothing sent."""
    dynamodb = aws_clients.dynamodb()

    def broken(*args, **kwargs):
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "TransactWriteItems")

    monkeypatch.setattr(dynamodb, "transact_write_items", broken)

    response = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))

    assert response["statusCode"] == 503, response["body"]
    error = body_of(response)["error"]
    assert error["category"] == "upstream_unavailable" and error["retryable"] is True
    assert order_posts(sim_env) == []


# ---------------------------------------------------------------- bad input: 4xx naming the field


def test_limit_without_price_names_the_field(sim_env, invoke, futures_connection):
    """GIVEN a LIMIT body without price WHEN sent THEN 422 naming price."""
    response = invoke(
        "futures_order", order_event(order_body(futures_connection.id, price=None), key=new_key())
    )
    assert response["statusCode"] == 422
    assert body_of(response)["error"]["field"].endswith("price")
    assert order_posts(sim_env) == []


def test_market_with_price_names_the_field(sim_env, invoke, futures_connection):
    """GIVEN a MARKET body with a price WHEN sent THEN 422 naming price."""
    body = order_body(futures_connection.id, type="MARKET", timeInForce=None)
    response = invoke("futures_order", order_event(body, key=new_key()))
    assert response["statusCode"] == 422
    assert body_of(response)["error"]["field"].endswith("price")


def test_unknown_field_and_bad_values_are_refused(sim_env, invoke, futures_connection):
    """GIVEN a misspelt field, a zero quantity or a bad side WHEN sent THEN 422 naming each field."""
    cases = {
        "reduce_only": order_body(futures_connection.id, reduce_only=True),
        "quantity": order_body(futures_connection.id, quantity="0"),
        "side": order_body(futures_connection.id, side="HOLD"),
        "timeInForce": order_body(futures_connection.id, timeInForce="GTD"),
        "positionSide": order_body(futures_connection.id, positionSide="UP"),
    }
    for field, body in cases.items():
        response = invoke("futures_order", order_event(body, key=new_key()))
        assert response["statusCode"] == 422, (field, response["body"])
        assert body_of(response)["error"]["field"].endswith(field), (field, response["body"])
    assert order_posts(sim_env) == []


def test_quantity_below_the_minimum_is_refused_before_sending(sim_env, invoke, futures_connection):
    """GIVEN a quantity that rounds below minQty WHEN sent THEN 400 naming quantity and no POST."""
    response = invoke(
        "futures_order", order_event(order_body(futures_connection.id, quantity="0.0005"), key=new_key())
    )
    assert response["statusCode"] == 400, response["body"]
    assert body_of(response)["error"]["field"] == "quantity"
    assert order_posts(sim_env) == []


def test_unknown_symbol_is_refused_before_sending(sim_env, invoke, futures_connection):
    """GIVEN a symbol Binance does not list WHEN sent THEN 400 naming symbol without repeating it, no POST."""
    response = invoke(
        "futures_order", order_event(order_body(futures_connection.id, symbol="NOPEUSDT"), key=new_key())
    )
    assert response["statusCode"] == 400, response["body"]
    assert body_of(response)["error"]["field"] == "symbol"
    assert "NOPEUSDT" not in response["body"], response["body"]
    assert order_posts(sim_env) == []


def test_an_order_binance_refuses_for_the_symbols_status_is_400_naming_the_symbol(
    sim_env, invoke, futures_connection,
):
    """GIVEN a symbol this container read as TRADING, then halted by Binance WHEN an order is sent THEN
    Binance's -4140 (facts §15) answers 400 on field symbol saying it is not trading now, never a 500 or a
    retry; the record says rejected."""
    first = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))
    assert first["statusCode"] in (200, 201), first["body"]  # exchangeInfo cached while it traded
    sim_env.set_symbol_status("BTCUSDT", "TRADING_HALT")

    response = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))

    assert response["statusCode"] == 400, response["body"]
    error = body_of(response)["error"]
    assert (error["category"], error["field"], error["retryable"]) == ("invalid_request", "symbol", False)
    assert "not trading" in error["message"]
    assert len(order_posts(sim_env)) == 2


def test_an_order_refused_while_the_account_is_liquidated_says_why_and_may_be_retried(
    sim_env, invoke, futures_connection, monkeypatch,
):
    """GIVEN Binance refusing every order while the account is being liquidated (-2023) WHEN an order is
    sent THEN the answer is Binance's refusal saying why, retryable (it passes once the liquidation ends),
    never a 500; the record says rejected."""
    from local.binance_sim.errors import ApiError

    def in_liquidation(*_args: object) -> None:
        raise ApiError(400, -2023, "User in liquidation mode now.")

    monkeypatch.setattr(sim_env.state.futures, "place_order", in_liquidation)
    key = new_key()

    response = invoke("futures_order", order_event(order_body(futures_connection.id), key=key))

    assert 400 <= response["statusCode"] < 500, response["body"]
    error = body_of(response)["error"]
    assert (error["category"], error["retryable"]) == ("order_rejected", True), response["body"]
    assert "liquidated" in error["message"]
    assert get_order_record(USER_A, idempotent_client_order_id(USER_A, key)).status == "REJECTED"


def test_an_order_binance_says_would_trigger_at_once_names_its_trigger_price(
    sim_env, invoke, futures_connection, monkeypatch,
):
    """GIVEN Binance refusing a futures order with -2021 ("Order would immediately trigger.") WHEN it is sent
    THEN the answer says its trigger price would fire at once, naming stopPrice, final (never spot's
    cancel-replace meaning); the record says rejected."""
    from local.binance_sim.errors import ApiError

    def would_trigger(*_args: object) -> None:
        raise ApiError(400, -2021, "Order would immediately trigger.")

    monkeypatch.setattr(sim_env.state.futures, "place_order", would_trigger)
    key = new_key()

    response = invoke("futures_order", order_event(order_body(futures_connection.id), key=key))

    assert response["statusCode"] == 422, response["body"]
    error = body_of(response)["error"]
    assert (error["category"], error.get("field"), error["retryable"]) == (
        "order_rejected", "stopPrice", False)
    assert "trigger" in error["message"] and "cancel-replace" not in error["message"].lower()
    assert get_order_record(USER_A, idempotent_client_order_id(USER_A, key)).status == "REJECTED"


@pytest.mark.parametrize(("code", "msg", "says"), [
    (-4400, "Futures Trading Quantitative Rules violated, only reduceOnly order is allowed, please try again "
     "later.", ("Retry later", "reduce-only")),
    (-4192, "Trade forbidden due to Cooling-off Period.", ("cooling-off period", "ends by itself")),
], ids=["quantitative_rules", "cooling_off"])
def test_an_order_refused_by_binances_quantitative_rules_is_retryable_and_says_what_to_do(
    sim_env, invoke, futures_connection, monkeypatch, code, msg, says,
):
    """GIVEN Binance refusing an opening order for a while: under its API trading quantitative rules (-4400,
    "only reduceOnly order is allowed, please try again later"), or during the cooling-off period the
    account chose (-4192) WHEN it is sent THEN the answer is retryable (the restriction lifts by itself) and
    says what to do (retry later or reduce only; that the period ends by itself); the record says rejected."""
    from local.binance_sim.errors import ApiError

    def restricted(*_args: object) -> None:
        raise ApiError(400, code, msg)

    monkeypatch.setattr(sim_env.state.futures, "place_order", restricted)
    key = new_key()

    response = invoke("futures_order", order_event(order_body(futures_connection.id), key=key))

    assert response["statusCode"] == 422, response["body"]
    error = body_of(response)["error"]
    assert (error["category"], error["retryable"]) == ("order_rejected", True), response["body"]
    assert says[0] in error["message"] and says[1] in error["message"]
    assert get_order_record(USER_A, idempotent_client_order_id(USER_A, key)).status == "REJECTED"


def test_malformed_idempotency_key_is_refused(sim_env, invoke, futures_connection):
    """GIVEN an Idempotency-Key with spaces or over 255 characters WHEN sent THEN 400 naming the header."""
    for key in ("has spaces", "k" * 256):
        response = invoke("futures_order", order_event(order_body(futures_connection.id), key=key))
        assert response["statusCode"] == 400, response["body"]
        assert body_of(response)["error"]["field"] == "Idempotency-Key"
    assert order_posts(sim_env) == []


def test_malformed_json_is_400(sim_env, invoke, futures_connection):
    """GIVEN a body that is not JSON WHEN sent THEN 400, never a 500."""
    event = order_event(order_body(futures_connection.id), key=new_key())
    event["body"], event["isBase64Encoded"] = "{not json", False
    response = invoke("futures_order", event)
    assert response["statusCode"] == 400, response["body"]


# ---------------------------------------------------------------- resuming an earlier attempt


def _pending_record(connection_id: str, key: str, attempt_ms: int) -> str:
    """The record a crashed earlier attempt of this keyed order left; returns its clientOrderId."""
    request = FuturesOrderRequest(**order_body(connection_id))
    client_order_id = idempotent_client_order_id(USER_A, key)
    order = FuturesOrder(
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        quantity=Decimal("0.01"),
        price=Decimal("20000"),
        time_in_force="GTC",
    )
    create_order_record(
        USER_A,
        client_order_id,
        connection_id=connection_id,
        symbol="BTCUSDT",
        request=request.fingerprint(),
        params=order.to_params(client_order_id),
        attempt_ms=attempt_ms,
    )
    return client_order_id


def test_crashed_attempt_is_sent_again_once_binance_cannot_have_it(sim_env, invoke, futures_connection):
    """GIVEN a PENDING record past recvWindow, order absent WHEN the key comes again THEN placed once."""
    key = new_key()
    client_order_id = _pending_record(futures_connection.id, key, int(time.time() * 1000) - 60_000)

    response = invoke("futures_order", order_event(order_body(futures_connection.id), key=key))

    assert response["statusCode"] == 200, response["body"]
    assert body_of(response)["client_order_id"] == client_order_id
    assert [(r.method, r.path) for r in sim_env.journal if r.path == ORDER_PATH] == [
        ("GET", ORDER_PATH),
        ("POST", ORDER_PATH),
    ]
    assert get_order_record(USER_A, client_order_id).status == "NEW"


def test_recent_unsettled_attempt_is_not_sent_again(sim_env, invoke, futures_connection):
    """GIVEN a PENDING record within recvWindow, order absent WHEN the key comes again THEN 504, no POST."""
    key = new_key()
    client_order_id = _pending_record(futures_connection.id, key, int(time.time() * 1000))

    response = invoke("futures_order", order_event(order_body(futures_connection.id), key=key))

    assert response["statusCode"] == 504, response["body"]
    assert client_order_id in body_of(response)["error"]["message"]
    assert order_posts(sim_env) == []


def test_unknown_outcome_then_same_key_settles_by_lookup(
    sim_env, invoke, futures_connection, futures_clients
):
    """GIVEN a 504 unknown outcome WHEN the keyed request is repeated THEN the order is found, not re-sent."""
    futures_clients(read_timeout=0.5, max_retries=0)
    sim_env.faults.add("delay_after", method="POST", path=ORDER_PATH, delay_ms=1500)
    sim_env.faults.add("http_503_unavailable", count=100, method="GET", path=ORDER_PATH)
    event = order_event(order_body(futures_connection.id), key=new_key())
    assert invoke("futures_order", event)["statusCode"] == 504
    sim_env.faults.clear()

    again = invoke("futures_order", event)

    assert again["statusCode"] == 200, again["body"]
    assert body_of(again)["source"] == "existing" and body_of(again)["status"] == "NEW"
    assert len(order_posts(sim_env)) == 1
    assert len(exchange_orders(sim_env, futures_connection.account)) == 1
