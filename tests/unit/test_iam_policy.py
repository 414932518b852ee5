"""The IAM guard of the integration tests (tests/iam_policy.py) on hand-made calls: it can deny."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.iam_policy import PolicyGuard, allowed, required

TABLE = "arn:aws:dynamodb:ap-northeast-1:123456789012:table/klineo-test-data"


def test_a_transaction_needs_one_action_per_item_a_condition_check_included() -> None:
    """A claim (Put + ConditionCheck) needs dynamodb:PutItem and dynamodb:ConditionCheckItem."""
    items = [{"Put": {"TableName": "klineo-test-data", "Item": {}}},
             {"ConditionCheck": {"TableName": "klineo-test-data", "Key": {}}}]

    pairs = required("dynamodb", "TransactWriteItems", {"TransactItems": items})

    assert pairs == [("dynamodb:PutItem", TABLE), ("dynamodb:ConditionCheckItem", TABLE)]


def test_an_index_query_is_checked_on_the_index_and_a_table_query_on_the_table() -> None:
    """Query with IndexName needs the index's ARN; an Allow on table/index/gsi1 does not cover the table."""
    statements = [{"Effect": "Allow", "Action": ["dynamodb:Query"], "Resource": [f"{TABLE}/index/gsi1"]}]

    on_index = required("dynamodb", "Query", {"TableName": "klineo-test-data", "IndexName": "gsi1"})
    on_table = required("dynamodb", "Query", {"TableName": "klineo-test-data"})

    assert [allowed(statements, *pair) for pair in on_index + on_table] == [True, False]


def test_the_guard_denies_as_aws_does_and_remembers_it() -> None:
    """A call the acting function's policy lacks raises AccessDeniedException and stays reported."""
    guard = PolicyGuard()
    claim = [{"ConditionCheck": {"TableName": "klineo-test-rate-limit", "Key": {}}}]

    with guard.acting_as("balance"), pytest.raises(ClientError) as denied:
        guard.check("dynamodb", "TransactWriteItems", {"TransactItems": claim})

    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert [entry[0:3] for entry in guard.denied] == [("balance", "TransactWriteItems",
                                                       "dynamodb:ConditionCheckItem")]


def test_calls_made_outside_a_handler_are_not_checked() -> None:
    """Test setup writing to the stores directly is not a function's call: nothing is checked."""
    guard = PolicyGuard()

    guard.check("dynamodb", "DeleteTable", {"TableName": "klineo-test-data"})

    assert guard.denied == []
