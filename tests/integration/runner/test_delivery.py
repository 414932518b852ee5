"""Delivery through the real dispatcher and worker: one bad strategy never sinks its batch-mates."""

from __future__ import annotations

import json
import logging
import time

from klineo.runner import worker
from klineo.runner.worker import MAX_RECEIVE_COUNT
from klineo.settings import get_settings
from klineo.store import aws as aws_clients
from klineo.store.strategies import strategy_key

from tests.integration.runner.conftest import KLINES_PATH, ORDER_PATH, ShortContext

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


def test_a_failed_message_is_logged_with_why_and_when_it_is_dead_lettered(runner, caplog) -> None:
    """GIVEN klines failing on every receive WHEN a message fails 3 times THEN each receive logs it, why."""
    runner.strategy(USER, runner.connection(USER))
    runner.sim.faults.add("http_503_unavailable", method="GET", path=KLINES_PATH, count=1_000)
    event = runner.dispatched_event()
    [message_id] = [record["messageId"] for record in event["Records"]]

    with caplog.at_level(logging.WARNING):
        for _ in range(MAX_RECEIVE_COUNT):
            failures = runner.work_event(event)["batchItemFailures"]
            assert [failure["itemIdentifier"] for failure in failures] == [message_id]

    said = [(r.getMessage(), r.reason, r.receive_count) for r in caplog.records
            if getattr(r, "message_id", None) == message_id]
    why = "klines unavailable: upstream_unavailable"
    again, dead = "strategy message will come again", "strategy message goes to the dead-letter queue"
    assert said == [(again, why, 1), (again, why, 2), (dead, why, 3)]


def test_a_turn_not_started_near_the_workers_deadline_is_left_to_its_messages_redelivery(runner, monkeypatch):
    """GIVEN a batch whose first turn ends near the Lambda timeout WHEN it goes on THEN the rest retry."""
    connection = runner.connection(USER)
    first = runner.strategy(USER, connection, symbol="BTCUSDT")
    second = runner.strategy(USER, connection, symbol="ETHUSDT", size="0.01")
    event = runner.dispatched_event()
    event["Records"].sort(key=lambda record: json.loads(record["body"])["symbol"])  # BTCUSDT's turn first
    shift = {"s": 0.0}
    real_turn = worker.run_strategy

    def slow_turn(strategy, ctx):
        result = real_turn(strategy, ctx)
        shift["s"] += 50.0  # this turn took 50 s of the invocation's 60
        return result

    monkeypatch.setattr(worker, "STRATEGY_THREADS", 1)
    monkeypatch.setattr(worker, "run_strategy", slow_turn)
    context = ShortContext(function_name="strategy_worker", remaining_ms=60_000)

    delivered = runner.delivered(event)
    with runner.iam.acting_as("strategy_worker"):
        response = worker.handle_batch(delivered, context, clock=lambda: time.time() + shift["s"])

    eth_message = event["Records"][1]["messageId"]
    assert [failure["itemIdentifier"] for failure in response["batchItemFailures"]] == [eth_message]
    assert [run.status for run in runner.runs(first)] == ["ordered"]
    assert runner.runs(second) == [] and len(runner.journal("POST", ORDER_PATH)) == 1
