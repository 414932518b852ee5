"""Stores tell AWS errors apart by code: a race inside botocore cannot turn a refusal into a crash.

botocore builds a client's exception classes on its first error, unguarded: two threads meeting a fresh
client's first errors at once (the runner's thread pool on a redelivered message) can each build a set,
and one then raises a class the other's ``except client.exceptions.X`` does not name. The fixture below
makes every ``client.exceptions`` read build a new set, which is that race made certain.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoRegionError, ReadTimeoutError
from klineo.binance import ErrorCategory, KlineoError
from klineo.settings import get_settings
from klineo.store import aws as clients
from klineo.store import connections as connection_store
from klineo.store import runs as run_store
from klineo.store import secrets as secret_store
from klineo.store import strategies as strategy_store
from klineo.store.dynamo import conditional_write
from klineo.store.runs import StrategyAdvance

from tests.unit.runner.helpers import make_run, make_strategy

C = 1_740_067_379_999  # a 1m candle close time


def _each_read_builds_new_classes(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    factory = client._exceptions_factory  # botocore's, whose cache the race bypasses
    monkeypatch.setattr(type(client), "exceptions", property(
        lambda self: factory._create_client_exceptions(self.meta.service_model)))


@pytest.fixture
def racing_exceptions(aws, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every client's ``exceptions`` is a new set of classes at each read."""
    for client in (clients.dynamodb(), clients.secretsmanager()):
        _each_read_builds_new_classes(client, monkeypatch)


def test_the_fixture_reproduces_the_race(racing_exceptions) -> None:
    """GIVEN the racing fixture WHEN a client's exceptions are read twice THEN the two classes differ
    (so the tests below would crash on class-based matching)."""
    client = clients.dynamodb()
    first, second = client.exceptions, client.exceptions
    assert first.ConditionalCheckFailedException is not second.ConditionalCheckFailedException


def test_a_candle_already_run_is_refused_not_crashed(racing_exceptions) -> None:
    """GIVEN a run recorded for candle C WHEN a redelivered message records C again (one PutItem) under
    the race THEN record_run answers False and the first run stays."""
    strategy = make_strategy()
    assert run_store.record_run(make_run(strategy, C, "no_change"))
    assert not run_store.record_run(make_run(strategy, C, "skipped", skip_reason="x"))
    assert [r.status for r in run_store.list_runs(strategy.strategy_id)] == ["no_change"]
    assert not run_store.record_run(make_run(strategy, C, "no_change"), advance=StrategyAdvance())


def test_a_failed_condition_is_false_under_the_race(racing_exceptions) -> None:
    """GIVEN an item WHEN a conditional write whose condition does not hold runs under the race THEN False."""
    strategy = make_strategy()
    client = clients.dynamodb()
    key = strategy_store.strategy_key(strategy.user_id, strategy.strategy_id)
    written = conditional_write(client.update_item, TableName=get_settings().data_table, Key=key,
        UpdateExpression="SET size = :s",
        ConditionExpression="attribute_not_exists(pk)", ExpressionAttributeValues={":s": {"N": "1"}})
    assert written is False


def test_missing_items_are_not_found_under_the_race(racing_exceptions) -> None:
    """GIVEN no such strategy, connection or secret WHEN they are updated, deleted or read under the race
    THEN each answers NOT_FOUND (a secret already gone deletes quietly), never a raw botocore error."""
    missing = uuid.uuid4().hex
    for call in (lambda: strategy_store.delete_strategy("user-a", missing),
                 lambda: connection_store.add_key_failure("user-a", missing),
                 lambda: secret_store.get_credentials(f"klineo/test/{missing}")):
        with pytest.raises(KlineoError) as caught:
            call()
        assert caught.value.category is ErrorCategory.NOT_FOUND
    secret_store.delete_credentials(f"klineo/test/{missing}")


def test_other_errors_still_raise(racing_exceptions) -> None:
    """GIVEN a write to a table that does not exist WHEN it runs THEN its own error is raised, not
    taken for a failed condition."""
    client = clients.dynamodb()
    with pytest.raises(ClientError) as caught:
        conditional_write(client.put_item, TableName="no-such-table", Item={"pk": {"S": "x"}},
                          ConditionExpression="attribute_not_exists(pk)")
    assert clients.error_code(caught.value) == "ResourceNotFoundException"


def _answered(code: str, status: int = 400) -> ClientError:
    answer = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(answer, "Query")


@pytest.mark.parametrize(("failure", "transient"), [
    (_answered("ThrottlingException"), True),
    (_answered("ProvisionedThroughputExceededException"), True),
    (_answered("InternalServerError", 500), True),
    (_answered("ServiceUnavailable", 503), True),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
    (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), True),
    (_answered("ValidationException"), False),
    (_answered("ResourceNotFoundException"), False),
    (_answered("LimitExceededException"), False),  # Secrets Manager's quota of secrets: no retry helps
    (_answered(clients.CONDITION_FAILED), False),
    (NoRegionError(), False),
])
def test_a_failure_is_transient_when_a_later_retry_may_get_past_it(failure: Exception,
                                                                   transient: bool) -> None:
    """GIVEN a failed AWS call WHEN judged THEN throttling, an AWS-side 5xx and no answer are transient
    (the API's retryable 503), a refusal of the request, a missing resource or a quota are not (500)."""
    assert clients.is_transient(failure) is transient
