"""What a warm futures order costs in AWS calls (the design's target), counted on the real clients."""

from __future__ import annotations

from collections import Counter

import pytest
from klineo.store import aws as clients

from tests.integration.futures.helpers import body_of, new_key, order_body, order_event, status_event


@pytest.fixture
def aws_calls(sim_env) -> Counter:
    """Every call the layer's boto3 clients make from now on, as "service.Operation" counts."""
    seen: Counter = Counter()

    def count(model, **_):
        seen[f"{model.service_model.service_name}.{model.name}"] += 1

    for client in (clients.dynamodb(), clients.secretsmanager()):
        client.meta.events.register("before-call", count)
    return seen


def test_warm_keyed_order_costs_two_aws_round_trips(sim_env, invoke, futures_connection, aws_calls):
    """GIVEN a warm container WHEN a keyed order is placed THEN 1 TransactWriteItems + 1 UpdateItem only."""
    invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))
    aws_calls.clear()

    response = invoke(
        "futures_order", order_event(order_body(futures_connection.id, price="20001"), key=new_key())
    )

    assert response["statusCode"] == 200, response["body"]
    assert aws_calls == Counter(
        {
            "dynamodb.TransactWriteItems": 1,  # order record claimed + gates re-checked, atomically
            "dynamodb.UpdateItem": 1,  # the order's outcome
        }
    )


def test_order_without_key_costs_no_aws_call(sim_env, invoke, futures_connection, aws_calls):
    """GIVEN a warm container WHEN an order without key is sent THEN 428 before any AWS call."""
    invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))
    aws_calls.clear()

    response = invoke("futures_order", order_event(order_body(futures_connection.id), key=None))

    assert response["statusCode"] == 428, response["body"]
    assert aws_calls == Counter()


def test_replayed_order_costs_one_cancelled_transaction(sim_env, invoke, futures_connection, aws_calls):
    """GIVEN a completed keyed order WHEN replayed THEN one cancelled claim transaction returns it."""
    event = order_event(order_body(futures_connection.id), key=new_key())
    first = body_of(invoke("futures_order", event))
    aws_calls.clear()

    again = body_of(invoke("futures_order", event))

    assert again["order_id"] == first["order_id"]
    assert aws_calls == Counter({"dynamodb.TransactWriteItems": 1})


def _armed_entry(invoke, connection_id: str, key: str) -> tuple[dict, dict]:
    """A MARKET entry that filled, with its stop-loss and take-profit placed: (its body, its answer)."""
    body = order_body(connection_id, type="MARKET", price=None, timeInForce=None, quantity="0.002",
                      stop_loss={"percent": "3"}, take_profit={"percent": "3"})
    answer = body_of(invoke("futures_order", order_event(body, key=key)))
    assert [p["status"] for p in answer["protective_orders"]] == ["NEW", "NEW"], answer
    return body, answer


def test_status_read_of_an_armed_entry_reads_its_protective_records_once_and_writes_nothing(
        sim_env, invoke, futures_connection, aws_calls):
    """GIVEN a filled entry whose SL/TP are armed WHEN its status is read THEN one BatchGetItem reads
    both protective records and nothing is written (no conditional Put tries to arm them again)."""
    _body, entry = _armed_entry(invoke, futures_connection.id, new_key())
    aws_calls.clear()

    read = invoke("futures_order_status", status_event(entry["client_order_id"]))

    assert read["statusCode"] == 200, read["body"]
    assert [p["status"] for p in body_of(read)["protective_orders"]] == ["NEW", "NEW"]
    assert aws_calls["dynamodb.BatchGetItem"] == 1
    assert not {call for call in aws_calls if call.split(".")[1] in _WRITES}, aws_calls


def test_replayed_entry_reads_its_protective_records_once_and_writes_nothing(
        sim_env, invoke, futures_connection, aws_calls):
    """GIVEN a filled entry whose SL/TP are armed WHEN replayed with its key THEN the cancelled claim
    and one BatchGetItem of the protective records are all: no Put, no Update."""
    key = new_key()
    body, _entry = _armed_entry(invoke, futures_connection.id, key)
    aws_calls.clear()

    again = body_of(invoke("futures_order", order_event(body, key=key)))

    assert again["source"] == "existing"
    assert [p["status"] for p in again["protective_orders"]] == ["NEW", "NEW"]
    assert aws_calls == Counter({"dynamodb.TransactWriteItems": 1, "dynamodb.BatchGetItem": 1})


_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


def test_first_arming_of_a_new_entry_reads_no_protective_record(
        sim_env, invoke, futures_connection, aws_calls):
    """GIVEN a new keyed MARKET entry with SL/TP WHEN placed THEN its protective orders are recorded
    without reading them first (none can exist): claim, outcome, and one record write + one Update each.
    Each record write is a transaction (Put + the connection's deletion check, one round trip)."""
    invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))  # warm
    aws_calls.clear()

    _armed_entry(invoke, futures_connection.id, new_key())

    assert aws_calls == Counter({"dynamodb.TransactWriteItems": 3, "dynamodb.UpdateItem": 3})
