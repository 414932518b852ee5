"""The emulated DynamoDB's transactions (``local.aws_emulation.serialize_dynamodb``): all or nothing,
with DynamoDB's cancellation reasons, without moto's copy of the whole table."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

TABLE = "t"


@pytest.fixture
def dynamodb(emulated_aws: None) -> Any:
    client = boto3.client("dynamodb", region_name="ap-northeast-1")
    client.create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
    )
    client.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "n": {"N": "1"}})
    yield client


def _key(sk: str) -> dict[str, Any]:
    return {"pk": {"S": "a"}, "sk": {"S": sk}}


def _items(client: Any) -> dict[str, str]:
    rows = client.scan(TableName=TABLE)["Items"]
    return {row["sk"]["S"]: row.get("n", {}).get("N") for row in rows}


def test_a_transaction_whose_conditions_hold_writes_every_action(dynamodb) -> None:
    """GIVEN a put, an update and a check that all hold WHEN transacted THEN both writes are there."""
    dynamodb.transact_write_items(TransactItems=[
        {"Put": {"TableName": TABLE, "Item": {**_key("2"), "n": {"N": "2"}},
                 "ConditionExpression": "attribute_not_exists(sk)"}},
        {"Update": {"TableName": TABLE, "Key": _key("1"), "UpdateExpression": "SET n = :n",
                    "ExpressionAttributeValues": {":n": {"N": "5"}}}},
        {"ConditionCheck": {"TableName": TABLE, "Key": _key("9"),
                            "ConditionExpression": "attribute_not_exists(sk)"}},
    ])
    assert _items(dynamodb) == {"1": "5", "2": "2"}


def test_a_failed_condition_writes_nothing_and_names_the_action_with_its_item(dynamodb) -> None:
    """GIVEN a put before a check that fails WHEN transacted THEN nothing written; the reasons say which
    action failed, with the item as it stands (ALL_OLD)."""
    with pytest.raises(ClientError) as refused:
        dynamodb.transact_write_items(TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {**_key("2"), "n": {"N": "2"}}}},
            {"ConditionCheck": {"TableName": TABLE, "Key": _key("1"), "ConditionExpression": "n = :two",
                                "ExpressionAttributeValues": {":two": {"N": "2"}},
                                "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
        ])
    reasons = refused.value.response["CancellationReasons"]
    assert [reason["Code"] for reason in reasons] == ["None", "ConditionalCheckFailed"]
    assert reasons[1]["Item"]["n"] == {"N": "1"}
    assert _items(dynamodb) == {"1": "1"}


def test_a_write_that_fails_midway_leaves_the_items_as_they_were(dynamodb) -> None:
    """GIVEN a put then an update moto cannot apply (ADD to a string) WHEN transacted THEN no put."""
    dynamodb.put_item(TableName=TABLE, Item={**_key("3"), "s": {"S": "text"}})
    with pytest.raises(ClientError):
        dynamodb.transact_write_items(TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {**_key("2"), "n": {"N": "2"}}}},
            {"Update": {"TableName": TABLE, "Key": _key("3"), "UpdateExpression": "ADD s :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}}}},
        ])
    assert _items(dynamodb) == {"1": "1", "3": None}


def test_two_actions_on_one_item_are_refused(dynamodb) -> None:
    """GIVEN two actions on the same key WHEN transacted THEN a validation error, nothing written."""
    with pytest.raises(ClientError) as refused:
        dynamodb.transact_write_items(TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {**_key("2"), "n": {"N": "2"}}}},
            {"Delete": {"TableName": TABLE, "Key": _key("2")}},
        ])
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert _items(dynamodb) == {"1": "1"}
