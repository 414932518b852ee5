"""Delivery through the real dispatcher and worker: one bad strategy never sinks its batch-mates."""

from __future__ import annotations

import json

from klineo.settings import get_settings
from klineo.store import aws as aws_clients
from klineo.store.strategies import strategy_key

from tests.integration.runner.conftest import ORDER_PATH

USER = "user-delivery-1"


def _corrupt(user_id: str, strategy_id: str) -> None:
    """Leave the strategy's item without its ``type``, as no code of ours can read it back."""
    aws_clients.dynamodb().update_item(
        TableName=get_settings().data_table, Key=strategy_key(user_id, strategy_id),
        UpdateExpression="REMOVE #type", ExpressionAttributeNames={"#type": "type"})


def test_an_unreadable_strategy_item_fails_only_its_own_message(runner) -> None:
    """GIVEN two markets in a batch, one item unreadable WHEN the worker runs THEN only its message fails."""
    connection = runner.connection(USER)
    good = runner.strategy(USER, connection, symbol="ETHUSDT", size="0.01")
    bad = runner.strategy(USER, connection, symbol="BTCUSDT")
    _corrupt(USER, bad)

    runner.tick()
    messages = runner.receive()
    [response] = runner.work(messages)

    [bad_message] = [m["MessageId"] for m in messages if json.loads(m["Body"])["symbol"] == "BTCUSDT"]
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [bad_message]
    assert [run.status for run in runner.runs(good)] == ["ordered"]
    assert runner.runs(bad) == [] and len(runner.journal("POST", ORDER_PATH)) == 1
