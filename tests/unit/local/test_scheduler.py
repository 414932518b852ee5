"""The local schedule and SQS event source behave like EventBridge Scheduler and Lambda's SQS mapping."""

from __future__ import annotations

import json
import threading
from typing import Any

import boto3
import pytest

from local.aws_emulation import schedule_specs
from local.lambda_runtime import FunctionError
from local.scheduler import (
    DrainReport,
    EventSources,
    QueuePoller,
    Scheduler,
    is_every_minute,
    rate_seconds,
    scheduler_event,
    sqs_event,
    sqs_mappings,
)
from local.template import Resolver

REGION = "ap-northeast-1"


class ScriptedRuntime:
    """Stands in for the functions: records events, answers with a callable per logical id."""

    def __init__(self, answers: dict[str, Any]):
        self.answers = answers
        self.events: list[tuple[str, dict]] = []

    def invoke(self, logical_id: str, event: dict) -> Any:
        self.events.append((logical_id, event))
        answer = self.answers[logical_id](event)
        if isinstance(answer, Exception):
            raise FunctionError(logical_id, answer)
        return answer


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(2 hours)", 7200), ("rate(1 day)", 86400)],
)
def test_rate_expressions_give_their_interval(expression: str, seconds: int) -> None:
    """rate(N unit) is N units in seconds."""
    # GIVEN / WHEN / THEN
    assert rate_seconds(expression) == seconds


@pytest.mark.parametrize(
    "expression", ["cron(0 * * * ? *)", "at(2026-01-01T00:00:00)", "rate(0 minutes)", "rate(1 week)"]
)
def test_expressions_the_local_scheduler_cannot_fire_are_refused_by_name(expression: str) -> None:
    """Anything but a positive rate() is refused with the expression in the message."""
    # GIVEN / WHEN / THEN
    with pytest.raises(ValueError, match="rate"):
        rate_seconds(expression)


def test_the_dispatchers_schedule_is_read_from_the_template(resolver: Resolver) -> None:
    """The template's ScheduleV2 events: the dispatcher every minute, the reconciler every 5, per stage."""
    # GIVEN / WHEN
    schedule, reconciler = schedule_specs(resolver)
    # THEN
    assert schedule.function.logical_id == "StrategyDispatcherFunction"
    assert schedule.expression == "cron(* * * * ? *)"
    assert schedule.name == "klineo-test-strategy-tick"
    assert is_every_minute(schedule.expression)
    assert reconciler.function.logical_id == "OrderReconcilerFunction"
    assert reconciler.name == "klineo-test-order-reconcile" and rate_seconds(reconciler.expression) == 300


def test_an_every_minute_cron_fires_at_the_start_of_the_next_minute(resolver: Resolver) -> None:
    """cron(* * * * ? *) waits for the next minute's start; a rate waits its interval from now."""
    tick, reconciler = schedule_specs(resolver)
    runtime = ScriptedRuntime({})
    assert Scheduler(tick, runtime, resolver).seconds_to_next(now=1_000_000_000 * 60 + 42.5) == 17.5
    assert Scheduler(reconciler, runtime, resolver).seconds_to_next(now=1_000_000_000 * 60 + 42.5) == 300


def test_scheduler_event_is_the_default_notification() -> None:
    """No Input on the schedule: EventBridge Scheduler's default Scheduled Event."""
    # GIVEN / WHEN
    arn = "arn:aws:scheduler:ap-northeast-1:123456789012:schedule/default/klineo-dev-strategy-tick"
    event = scheduler_event(arn, REGION, "123456789012", now=0)
    # THEN
    assert event["source"] == "aws.scheduler"
    assert event["detail-type"] == "Scheduled Event"
    assert event["resources"] == [arn]
    assert event["time"] == "1970-01-01T00:00:00Z"
    assert event["detail"] == "{}"


def _mappings(aws: Resolver) -> dict[str, Any]:
    """The template's SQS mappings by function logical id."""
    return {mapping.function.logical_id: mapping for mapping in sqs_mappings(aws)}


def test_worker_mapping_is_read_from_the_template(aws: Resolver) -> None:
    """The worker's SQS event: the strategy queue, batches of 10, 1 s window, partial failures."""
    # GIVEN the template's queues created in moto / WHEN
    mappings = _mappings(aws)
    # THEN the strategy worker and the backtest worker are the functions with an SQS event
    assert set(mappings) == {"StrategyWorkerFunction", "BacktestWorkerFunction"}
    mapping = mappings["StrategyWorkerFunction"]
    assert mapping.queue_url == aws.refs["StrategyQueue"]
    assert mapping.queue_arn.endswith(":klineo-test-strategy")
    assert (mapping.batch_size, mapping.batching_window_s, mapping.report_failures) == (10, 1.0, True)
    backtests = mappings["BacktestWorkerFunction"]
    assert backtests.queue_url == aws.refs["BacktestQueue"]
    assert (backtests.batch_size, backtests.report_failures) == (1, True)


def _send(sqs, url: str, bodies: list[str]) -> list[str]:
    return [sqs.send_message(QueueUrl=url, MessageBody=body)["MessageId"] for body in bodies]


def _counts(sqs, url: str) -> tuple[int, int]:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def _poller(aws: Resolver, runtime: ScriptedRuntime) -> tuple[QueuePoller, Any]:
    sqs = boto3.client("sqs", region_name=REGION)
    mapping = _mappings(aws)["StrategyWorkerFunction"]
    return QueuePoller(mapping, runtime, sqs, REGION, threading.Lock()), sqs


def test_batch_item_failures_stay_queued_and_the_rest_is_deleted(aws: Resolver) -> None:
    """ReportBatchItemFailures: the reported message is left for redelivery, the others are deleted."""
    # GIVEN three messages and a worker that fails the second
    runtime = ScriptedRuntime({})
    poller, sqs = _poller(aws, runtime)
    url = aws.refs["StrategyQueue"]
    ids = _send(sqs, url, ["a", "b", "c"])
    runtime.answers["StrategyWorkerFunction"] = lambda event: {
        "batchItemFailures": [{"itemIdentifier": ids[1]}]
    }
    report = DrainReport()
    # WHEN the queue is drained
    poller.drain(report)
    # THEN one batch of three was delivered, and only the failed message is still in the queue (in flight)
    ((logical_id, event),) = runtime.events
    assert logical_id == "StrategyWorkerFunction"
    assert sorted(r["body"] for r in event["Records"]) == ["a", "b", "c"]
    assert (report.batches, report.messages, report.failed) == (1, 3, 1)
    assert _counts(sqs, url) == (0, 1)


def test_a_worker_that_raises_leaves_the_whole_batch(aws: Resolver) -> None:
    """An unhandled error fails the whole batch: nothing is deleted."""
    # GIVEN two messages and a worker that raises
    runtime = ScriptedRuntime({"StrategyWorkerFunction": lambda event: RuntimeError("boom")})
    poller, sqs = _poller(aws, runtime)
    url = aws.refs["StrategyQueue"]
    _send(sqs, url, ["a", "b"])
    report = DrainReport()
    # WHEN drained
    poller.drain(report)
    # THEN both are still queued (invisible until the visibility timeout)
    assert report.failed == 2
    assert _counts(sqs, url) == (0, 2)


def test_an_unknown_item_identifier_fails_the_whole_batch(aws: Resolver) -> None:
    """A batchItemFailures entry naming no message of the batch fails it all, as Lambda does."""
    # GIVEN a worker that reports a made-up id
    runtime = ScriptedRuntime(
        {"StrategyWorkerFunction": lambda e: {"batchItemFailures": [{"itemIdentifier": "x"}]}}
    )
    poller, sqs = _poller(aws, runtime)
    url = aws.refs["StrategyQueue"]
    _send(sqs, url, ["a", "b"])
    report = DrainReport()
    # WHEN drained
    poller.drain(report)
    # THEN nothing was deleted
    assert _counts(sqs, url) == (0, 2)


def test_a_message_failing_max_receive_count_times_reaches_the_dead_letter_queue(aws: Resolver) -> None:
    """After maxReceiveCount (3) failed deliveries the queue's redrive policy moves the message to the DLQ."""
    # GIVEN a worker that always fails its message
    runtime = ScriptedRuntime({})
    runtime.answers["StrategyWorkerFunction"] = lambda event: {
        "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]
    }
    poller, sqs = _poller(aws, runtime)
    url, dlq = aws.refs["StrategyQueue"], aws.refs["StrategyDeadLetterQueue"]
    _send(sqs, url, ["poison"])
    # WHEN it is delivered three times (visibility reset to 0 in between, instead of waiting 360 s)
    for _ in range(3):
        report = DrainReport()
        poller.drain(report)
        assert report.failed == 1
        handle = runtime.events[-1][1]["Records"][0]["receiptHandle"]
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    poller.drain(DrainReport())
    # THEN the next receive moves it to the DLQ and the worker never sees it a fourth time
    assert len(runtime.events) == 3
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=dlq).get("Messages", [])] == ["poison"]


def test_sqs_event_has_lambdas_record_shape() -> None:
    """Records carry messageId, receiptHandle, body, attributes, messageAttributes, md5 and the source ARN."""
    # GIVEN a received message with a string attribute
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "r1",
        "Body": "{}",
        "MD5OfBody": "99914b932bd37a50b983c5e7c90ae93b",
        "Attributes": {"ApproximateReceiveCount": "1"},
        "MessageAttributes": {"kind": {"StringValue": "tick", "DataType": "String"}},
    }
    # WHEN the event is built
    (record,) = sqs_event([message], "arn:aws:sqs:ap-northeast-1:123456789012:q", REGION)["Records"]
    # THEN it is Lambda's shape
    assert record == {
        "messageId": "m1",
        "receiptHandle": "r1",
        "body": "{}",
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {
            "kind": {
                "stringValue": "tick",
                "binaryValue": None,
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            }
        },
        "md5OfBody": "99914b932bd37a50b983c5e7c90ae93b",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:ap-northeast-1:123456789012:q",
        "awsRegion": REGION,
    }


def test_tick_runs_the_dispatcher_then_drains_its_messages_through_the_worker(aws: Resolver) -> None:
    """tick_and_drain: the dispatcher's messages are processed by the worker before it returns."""
    # GIVEN a dispatcher that enqueues two strategies and a worker that succeeds
    sqs = boto3.client("sqs", region_name=REGION)
    url = aws.refs["StrategyQueue"]

    def dispatch(event: dict) -> dict:
        _send(sqs, url, [json.dumps({"strategy_id": "s1"}), json.dumps({"strategy_id": "s2"})])
        return {"dispatched": 2}

    runtime = ScriptedRuntime(
        {
            "StrategyDispatcherFunction": dispatch,
            "OrderReconcilerFunction": lambda event: {"settled": 0},
            "StrategyWorkerFunction": lambda event: {"batchItemFailures": []},
        }
    )
    sources = EventSources(aws, runtime, sqs=sqs)
    # WHEN a tick is run on demand
    summary = sources.tick_and_drain()
    # THEN the dispatcher got a Scheduler event, the worker both messages, and the queue is empty
    assert [name for name, _ in runtime.events] == [
        "StrategyDispatcherFunction", "OrderReconcilerFunction", "StrategyWorkerFunction"]
    assert runtime.events[0][1]["source"] == "aws.scheduler"
    assert summary["schedules"][0]["result"] == {"dispatched": 2}
    assert summary["queues"] == {"batches": 1, "messages": 2, "failed": 0, "errors": []}
    assert _counts(sqs, url) == (0, 0)
