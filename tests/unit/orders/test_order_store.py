"""The order record in the data table (moto, tables from template.yaml): one write before, one after."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from klineo.settings import get_settings
from klineo.store.orders import (
    claim_resend,
    create_order_record,
    get_order_record,
    record_order_outcome,
)

USER = "user-1"
CLIENT_ORDER_ID = "klneo_1767225600000_0123456789abcdef"
REQUEST = {
    "connection_id": "c" * 32,
    "symbol": "BTCUSDT",
    "side": "BUY",
    "type": "LIMIT",
    "quantity": "0.01",
    "price": "20000",
    "timeInForce": "GTC",
    "reduceOnly": False,
    "positionSide": "BOTH",
}
PARAMS = {
    "symbol": "BTCUSDT",
    "side": "BUY",
    "type": "LIMIT",
    "quantity": "0.01",
    "price": "20000",
    "timeInForce": "GTC",
    "positionSide": "BOTH",
    "newClientOrderId": CLIENT_ORDER_ID,
}


@pytest.fixture
def calls(aws) -> list[str]:
    """Names of the DynamoDB operations the store's client makes from now on."""
    from klineo.store import aws as clients

    seen: list[str] = []
    clients.dynamodb().meta.events.register(
        "before-call.dynamodb", lambda model, **_: seen.append(model.name)
    )
    return seen


def _create(attempt_ms: int = 1_000):
    return create_order_record(
        USER,
        CLIENT_ORDER_ID,
        connection_id="c" * 32,
        symbol="BTCUSDT",
        request=REQUEST,
        params=PARAMS,
        attempt_ms=attempt_ms,
    )


def test_new_record_is_pending_and_costs_one_put(aws, calls):
    """GIVEN no record WHEN created THEN one PutItem, a PENDING record under USER#/ORDER#."""
    record, existing = _create()

    assert existing is None and calls == ["PutItem"]
    stored = get_order_record(USER, CLIENT_ORDER_ID)
    assert (
        stored == record
        and stored.status == "PENDING"
        and stored.request == REQUEST
        and stored.params == PARAMS
    )
    item = boto3.client("dynamodb").get_item(
        TableName=get_settings().data_table,
        Key={"pk": {"S": f"USER#{USER}"}, "sk": {"S": f"ORDER#{CLIENT_ORDER_ID}"}},
    )["Item"]
    assert item["status"]["S"] == "PENDING"


def test_second_create_returns_the_existing_record_without_a_read(aws, calls):
    """GIVEN a record WHEN created again THEN the first is returned from the failed condition, no GetItem."""
    _create(attempt_ms=1_000)
    calls.clear()

    _record, existing = _create(attempt_ms=2_000)

    assert existing is not None and existing.attempt_ms == 1_000
    assert calls == ["PutItem"]


def test_outcome_update_is_one_update_and_clears_errors(aws, calls):
    """GIVEN an UNKNOWN record with an error WHEN the order is recorded THEN status, id, result; no error."""
    _create()
    record_order_outcome(USER, CLIENT_ORDER_ID, status="UNKNOWN", error={"category": "unknown_outcome"})
    calls.clear()

    record_order_outcome(
        USER,
        CLIENT_ORDER_ID,
        status="FILLED",
        order_id=42,
        result={"status": "FILLED", "executed_quantity": "0.01", "order_id": 42},
    )

    assert calls == ["UpdateItem"]
    stored = get_order_record(USER, CLIENT_ORDER_ID)
    assert stored.status == "FILLED" and stored.order_id == 42 and stored.error is None and stored.settled
    assert stored.result == {"status": "FILLED", "executed_quantity": "0.01", "order_id": 42}


def test_outcome_of_an_unknown_record_is_refused(aws):
    """GIVEN no record WHEN an outcome is recorded THEN the conditional update fails (no stray item)."""
    with pytest.raises(ClientError) as raised:
        record_order_outcome(USER, "nope", status="FILLED")
    assert raised.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert get_order_record(USER, "nope") is None


def test_claim_resend_lets_only_one_retry_win(aws):
    """GIVEN two retries that read attempt 1000 WHEN both claim THEN the first wins, the second loses."""
    _create(attempt_ms=1_000)

    assert claim_resend(USER, CLIENT_ORDER_ID, previous_attempt_ms=1_000, attempt_ms=5_000) is True
    assert claim_resend(USER, CLIENT_ORDER_ID, previous_attempt_ms=1_000, attempt_ms=6_000) is False
    stored = get_order_record(USER, CLIENT_ORDER_ID)
    assert stored.attempt_ms == 5_000 and stored.status == "PENDING"


def test_record_belongs_to_its_user(aws):
    """GIVEN user-1's record WHEN user-2 reads the same clientOrderId THEN nothing."""
    _create()
    assert get_order_record("user-2", CLIENT_ORDER_ID) is None
