"""template.yaml's runner resources keep the promises the runner code relies on."""

from __future__ import annotations

from klineo.binance import ErrorCategory
from klineo.runner.worker import DEFAULT_TIMEOUT_MS, MAX_RECEIVE_COUNT
from klineo.services.strategies import DELETE_TIMEOUT_MS, RUN_NOW_TIMEOUT_MS
from klineo.store.ticks import TICKS_PK


def resource(template: dict, name: str) -> dict:
    """One resource's Properties."""
    return template["Resources"][name]["Properties"]


def test_dispatcher_runs_every_minute_and_may_only_query_the_index_its_tick_record_and_send(template) -> None:
    """GIVEN the dispatcher WHEN reading schedule and policy THEN every minute, Query gsi1, Get/Put of the
    RUNNER partition only (its tick record), SendMessage."""
    props = resource(template, "StrategyDispatcherFunction")
    assert props["Events"]["Tick"]["Type"] == "ScheduleV2"
    assert props["Events"]["Tick"]["Properties"]["ScheduleExpression"] == "cron(* * * * ? *)"
    statements = props["Policies"][0]["Statement"]
    actions = sorted(action for s in statements for action in s["Action"])
    # sqs:SendMessage also allows SendMessageBatch
    assert actions == ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "sqs:SendMessage"]
    assert statements[0]["Resource"] == {"Fn::Sub": "${DataTable.Arn}/index/gsi1"}
    record = statements[1]
    assert record["Resource"] == {"Fn::GetAtt": ["DataTable", "Arn"]}
    assert record["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [TICKS_PK]}}
    assert "Scan" not in str(statements)


def test_the_tick_fires_at_the_start_of_every_utc_minute(template) -> None:
    """GIVEN the dispatcher's schedule WHEN read THEN a cron on every UTC minute, not a rate from creation."""
    tick = resource(template, "StrategyDispatcherFunction")["Events"]["Tick"]["Properties"]
    # A rate() schedule without StartDate fires at the second it was created, every minute: created at :55,
    # the 1m candle it dispatches is superseded (stale_candle) before most of its turns have run.
    assert tick["ScheduleExpression"] == "cron(* * * * ? *)"
    assert tick.get("ScheduleExpressionTimezone", "UTC") == "UTC"


def test_worker_reports_partial_failures_with_bounded_concurrency(template) -> None:
    """GIVEN the worker WHEN reading its SQS event THEN batches of 10, partial failures, reserved."""
    props = resource(template, "StrategyWorkerFunction")
    queue = props["Events"]["Queue"]["Properties"]
    assert queue["BatchSize"] == 10 and queue["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ReservedConcurrentExecutions"] == {"Ref": "WorkerReservedConcurrency"}
    # the poller never starts more workers than may run: no throttled receive counts towards the DLQ
    assert queue["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "WorkerReservedConcurrency"}
    assert template["Parameters"]["WorkerReservedConcurrency"]["MinValue"] >= 2  # SQS's minimum
    actions = {a for s in props["Policies"][0]["Statement"] for a in s["Action"]}
    assert {"dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem"} <= actions


def test_failed_messages_reach_a_dead_letter_queue_that_raises_an_alarm(template) -> None:
    """GIVEN the strategy queue WHEN a message fails 3 times THEN to the DLQ, which an alarm watches."""
    redrive = resource(template, "StrategyQueue")["RedrivePolicy"]
    assert redrive["maxReceiveCount"] == 3
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["StrategyDeadLetterQueue", "Arn"]}
    alarm = resource(template, "StrategyDeadLetterAlarm")
    assert alarm["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["StrategyDeadLetterQueue", "QueueName"]}
    # The visibility timeout outlasts the worker's timeout: a redelivery never overlaps its first attempt.
    assert resource(template, "StrategyQueue")["VisibilityTimeout"] > resource(
        template, "StrategyWorkerFunction")["Timeout"]


def test_the_workers_constants_agree_with_the_template(template) -> None:
    """GIVEN the worker's timeout and receive limit WHEN read against template.yaml THEN the same numbers."""
    assert resource(template, "StrategyQueue")["RedrivePolicy"]["maxReceiveCount"] == MAX_RECEIVE_COUNT
    assert resource(template, "StrategyWorkerFunction")["Timeout"] * 1000 == DEFAULT_TIMEOUT_MS


def test_ip_banned_alarm_watches_the_metric_the_binance_client_emits(template) -> None:
    """GIVEN the ip_banned category WHEN reading the alarm THEN it watches that category's metric."""
    alarm = resource(template, "BinanceIpBannedAlarm")
    assert alarm["MetricName"] == ErrorCategory.IP_BANNED.metric_name == "BinanceIpBanned"
    namespace = template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    assert alarm["Namespace"] == namespace


def test_run_nows_timeout_agrees_with_the_template(template) -> None:
    """GIVEN the run-now function's timeout WHEN read against template.yaml THEN the same number."""
    assert resource(template, "StrategyRunFunction")["Timeout"] * 1000 == RUN_NOW_TIMEOUT_MS


def test_the_strategy_deletes_timeout_agrees_with_the_template(template) -> None:
    """GIVEN the delete function's timeout (its settle of an order in flight leases until then) WHEN read
    against template.yaml THEN the same number (its own, else the Globals')."""
    props = resource(template, "StrategyDeleteFunction")
    timeout = props.get("Timeout", template["Globals"]["Function"]["Timeout"])
    assert timeout * 1000 == DELETE_TIMEOUT_MS
