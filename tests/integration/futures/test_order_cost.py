"""What a warm futures order costs in AWS calls (the design's target), counted on the real clients."""

from __future__ import annotations

from collections import Counter

import pytest
from klineo.store import aws as clients

from tests.integration.futures.helpers import body_of, new_key, order_body, order_event


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
