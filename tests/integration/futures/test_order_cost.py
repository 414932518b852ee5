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


def test_warm_keyed_order_costs_one_read_and_four_writes(sim_env, invoke, futures_connection, aws_calls):
    """GIVEN a warm container WHEN a keyed order is placed THEN 1 BatchGetItem, 2 Put, 2 Update, no secret."""
    invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))
    aws_calls.clear()

    response = invoke(
        "futures_order", order_event(order_body(futures_connection.id, price="20001"), key=new_key())
    )

    assert response["statusCode"] == 200, response["body"]
    assert aws_calls == Counter(
        {
            "dynamodb.BatchGetItem": 1,  # connection + both kill switches, strongly consistent
            "dynamodb.PutItem": 2,  # idempotency record (in progress) + order record (before sending)
            "dynamodb.UpdateItem": 2,  # order record (after) + idempotency record (completed)
        }
    )


def test_warm_order_without_key_costs_one_read_and_two_writes(sim_env, invoke, futures_connection, aws_calls):
    """GIVEN a warm container WHEN an order without key is placed THEN 1 BatchGetItem, 1 Put, 1 Update."""
    invoke("futures_order", order_event(order_body(futures_connection.id), key=None))
    aws_calls.clear()

    response = invoke("futures_order", order_event(order_body(futures_connection.id), key=None))

    assert response["statusCode"] == 200, response["body"]
    assert aws_calls == Counter({"dynamodb.BatchGetItem": 1, "dynamodb.PutItem": 1, "dynamodb.UpdateItem": 1})


def test_replayed_order_costs_one_conditional_write(sim_env, invoke, futures_connection, aws_calls):
    """GIVEN a completed keyed order WHEN replayed THEN one failed conditional PutItem returns it."""
    event = order_event(order_body(futures_connection.id), key=new_key())
    first = body_of(invoke("futures_order", event))
    aws_calls.clear()

    again = body_of(invoke("futures_order", event))

    assert again["order_id"] == first["order_id"]
    assert aws_calls == Counter({"dynamodb.PutItem": 1})
