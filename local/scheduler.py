"""The local stack's event sources: the template's schedules, and its SQS → Lambda mappings.

moto stores EventBridge Scheduler schedules but never fires them, and has no Lambda event source
mappings, so this module does both jobs in the stack's process:

- ``Scheduler`` fires each ScheduleV2 function on its ``rate(...)`` expression (or on every minute's start
  for ``cron(* * * * ? *)``) with the default
  notification EventBridge Scheduler sends when a schedule has no Input, and on demand (``tick``).
- ``QueuePoller`` polls each queue a function has an SQS event for, hands batches (BatchSize,
  MaximumBatchingWindowInSeconds) to the function in the SQS event Lambda builds, deletes what
  succeeded and, with ReportBatchItemFailures, leaves the reported failures for redelivery after the
  visibility timeout (moto moves a message to the dead-letter queue after maxReceiveCount).
- ``EventSources.tick_and_drain`` runs the schedule once and then drains the queues through their
  functions before returning, so a caller sees the runs right after.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import boto3

from local.aws_emulation import ScheduleSpec, schedule_specs
from local.lambda_runtime import FunctionError, LambdaRuntime, console
from local.template import FunctionSpec, Resolver, function_specs

__all__ = [
    "DrainReport",
    "EventSources",
    "QueuePoller",
    "Scheduler",
    "SqsMapping",
    "is_every_minute",
    "rate_seconds",
    "scheduler_event",
    "sqs_event",
    "sqs_mappings",
]

_IDLE_POLL_S = 0.25
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_EVERY_MINUTE = re.compile(r"^cron\(\s*\*\s+\*\s+\*\s+\*\s+\?\s+\*\s*\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> int:
    """Seconds between runs of a ``rate(N unit)`` expression.

    The local scheduler fires rate expressions only; a ``cron(...)`` or ``at(...)`` expression
    raises ValueError naming it (the template has none).
    """
    found = _RATE.match(expression.strip())
    if not found:
        raise ValueError(f"the local scheduler understands rate(N minute|hour|day) only, not {expression!r}")
    count = int(found.group(1))
    if count < 1:
        raise ValueError(f"{expression!r}: the rate must be at least 1")
    return count * _UNIT_SECONDS[found.group(2).rstrip("s")]


def is_every_minute(expression: str) -> bool:
    """True for ``cron(* * * * ? *)``: the start of every minute (the local scheduler fires it on the clock's
    minute, as EventBridge Scheduler does)."""
    return bool(_EVERY_MINUTE.match(expression.strip()))


def scheduler_event(
    schedule_arn: str, region: str, account_id: str, now: float | None = None
) -> dict[str, Any]:
    """The default notification EventBridge Scheduler sends a Lambda target when a schedule has no Input."""
    now = time.time() if now is None else now
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": account_id,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "region": region,
        "resources": [schedule_arn],
        "detail": "{}",
    }


@dataclass
class DrainReport:
    """What one drain of the queues did."""

    batches: int = 0
    messages: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "batches": self.batches,
            "messages": self.messages,
            "failed": self.failed,
            "errors": self.errors,
        }


@dataclass(frozen=True)
class SqsMapping:
    """An SQS event of a function: the queue, batch size, batching window, partial-failure reporting."""

    function: FunctionSpec
    queue_logical_id: str
    queue_url: str
    queue_arn: str
    batch_size: int
    batching_window_s: float
    report_failures: bool


def sqs_mappings(resolver: Resolver) -> list[SqsMapping]:
    """Every SQS event source of the template (the resolver must know the queues' URLs and ARNs)."""
    mappings = []
    for spec in function_specs(resolver.template):
        for event in spec.properties.get("Events", {}).values():
            if event["Type"] != "SQS":
                continue
            props = event["Properties"]
            queue = props["Queue"]
            if not (isinstance(queue, dict) and "Fn::GetAtt" in queue):
                raise ValueError(
                    f"{spec.logical_id}: the local stack polls only queues this template declares"
                )
            logical = queue["Fn::GetAtt"][0]
            arn = resolver.resolve(queue)
            url = resolver.refs[logical]
            mappings.append(
                SqsMapping(
                    function=spec,
                    queue_logical_id=logical,
                    queue_url=url,
                    queue_arn=arn,
                    batch_size=int(props.get("BatchSize", 10)),
                    batching_window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                    report_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                )
            )
    return mappings


def _message_attributes(raw: dict[str, Any]) -> dict[str, Any]:
    """SQS ReceiveMessage attributes in the lower-camel form Lambda's SQS event uses."""
    out = {}
    for name, value in raw.items():
        out[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value["DataType"],
        }
    return out


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping builds for a batch of received messages."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": _message_attributes(message.get("MessageAttributes", {})),
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


class QueuePoller:
    """Lambda's SQS event source mapping for one function and queue."""

    def __init__(
        self, mapping: SqsMapping, runtime: LambdaRuntime, sqs: Any, region: str, lock: threading.Lock
    ):
        self.mapping = mapping
        self._runtime = runtime
        self._sqs = sqs
        self._region = region
        self._lock = lock

    def _receive(self, wait_s: int) -> list[dict[str, Any]]:
        answer = self._sqs.receive_message(
            QueueUrl=self.mapping.queue_url,
            MaxNumberOfMessages=min(self.mapping.batch_size, 10),
            WaitTimeSeconds=wait_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return answer.get("Messages", [])

    def _collect(self, first: list[dict[str, Any]], window_s: float) -> list[dict[str, Any]]:
        """Fill the batch up to BatchSize, waiting at most ``window_s`` for more (the batching window)."""
        batch = list(first)
        deadline = time.monotonic() + window_s
        while len(batch) < self.mapping.batch_size:
            more = self._receive(0)
            if more:
                batch.extend(more)
            elif time.monotonic() >= deadline:
                break
            else:
                time.sleep(0.05)
        return batch

    def _deliver(self, batch: list[dict[str, Any]], report: DrainReport) -> None:
        """Invoke the function with one batch; delete the messages that succeeded."""
        report.batches += 1
        report.messages += len(batch)
        event = sqs_event(batch, self.mapping.queue_arn, self._region)
        logical = self.mapping.function.logical_id
        try:
            result = self._runtime.invoke(logical, event)
        except FunctionError as error:
            report.failed += len(batch)
            report.errors.append(
                f"{logical} raised {type(error.error).__name__}; the whole batch stays queued"
            )
            return
        failed_ids = set()
        if self.mapping.report_failures and isinstance(result, dict) and result.get("batchItemFailures"):
            known = {m["MessageId"] for m in batch}
            for failure in result["batchItemFailures"]:
                identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
                if identifier not in known:
                    # Lambda treats a malformed or unknown identifier as a failure of the whole batch.
                    failed_ids = known
                    report.errors.append(
                        f"{logical} reported an unknown itemIdentifier; the whole batch stays queued"
                    )
                    break
                failed_ids.add(identifier)
        report.failed += len(failed_ids)
        done = [m for m in batch if m["MessageId"] not in failed_ids]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self._sqs.delete_message_batch(
                QueueUrl=self.mapping.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )

    def poll_once(self, wait_s: int, report: DrainReport, *, batching: bool = True) -> bool:
        """Receive (waiting up to ``wait_s``) and deliver one batch; False when the queue was empty.

        With ``batching`` the batch waits up to MaximumBatchingWindowInSeconds to fill, as Lambda's
        mapping does; without it, it takes only what is visible now (an on-demand drain).
        """
        with self._lock:
            first = self._receive(wait_s)
            if not first:
                return False
            window = self.mapping.batching_window_s if batching else 0.0
            self._deliver(self._collect(first, window), report)
            return True

    def drain(self, report: DrainReport) -> None:
        """Deliver batches, without a batching window, until no visible message is left."""
        while self.poll_once(0, report, batching=False):
            pass


class Scheduler:
    """Fires one ScheduleV2 function on its rate, in a background thread."""

    def __init__(self, schedule: ScheduleSpec, runtime: LambdaRuntime, resolver: Resolver, on_fire=None):
        self.schedule = schedule
        self.on_the_minute = is_every_minute(schedule.expression)
        self.interval_s = 60 if self.on_the_minute else rate_seconds(schedule.expression)
        self._runtime = runtime
        self._resolver = resolver
        self._on_fire = on_fire
        self.arn = (
            f"arn:aws:scheduler:{resolver.region}:{resolver.account_id}:schedule/"
            f"{schedule.properties.get('GroupName', 'default')}/{schedule.name}"
        )

    def seconds_to_next(self, now: float | None = None) -> float:
        """How long until the next run: to the next minute's start for a cron, one interval for a rate."""
        if not self.on_the_minute:
            return float(self.interval_s)
        now = time.time() if now is None else now
        return self.interval_s - now % self.interval_s

    def fire(self) -> Any:
        """Invoke the target once with the Scheduler's default notification; returns its result."""
        event = scheduler_event(self.arn, self._resolver.region, self._resolver.account_id)
        return self._runtime.invoke(self.schedule.function.logical_id, event)


class EventSources:
    """Every schedule and SQS mapping of the template, running in background threads."""

    def __init__(self, resolver: Resolver, runtime: LambdaRuntime, *, sqs: Any | None = None):
        self._resolver = resolver
        self._runtime = runtime
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sqs = sqs or boto3.session.Session(region_name=resolver.region).client("sqs")
        self.schedulers = [Scheduler(s, runtime, resolver) for s in schedule_specs(resolver)]
        self._locks = {m.queue_url: threading.RLock() for m in sqs_mappings(resolver)}
        self.pollers = [
            QueuePoller(m, runtime, self._sqs, resolver.region, self._locks[m.queue_url])
            for m in sqs_mappings(resolver)
        ]

    def start(self, *, schedules: bool = True) -> None:
        """Start the pollers and (unless ``schedules`` is False) the schedule timers."""
        for poller in self.pollers:
            self._spawn(self._poll_loop, poller, f"sqs-{poller.mapping.function.package}")
        if schedules:
            for scheduler in self.schedulers:
                self._spawn(self._schedule_loop, scheduler, f"schedule-{scheduler.schedule.name}")

    def _spawn(self, target, arg, name: str) -> None:
        thread = threading.Thread(target=target, args=(arg,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Stop every loop and wait for the current invocation to end."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _schedule_loop(self, scheduler: Scheduler) -> None:
        # Like EventBridge, a rate's first run comes one interval after the schedule is created.
        while not self._stop.wait(scheduler.seconds_to_next()):
            try:
                scheduler.fire()
            except FunctionError:
                continue  # the traceback is on the console; the schedule keeps running
            console.info(
                "schedule %s fired %s", scheduler.schedule.name, scheduler.schedule.function.logical_id
            )

    def _poll_loop(self, poller: QueuePoller) -> None:
        while not self._stop.is_set():
            report = DrainReport()
            try:
                # Short polls with the lock released in between, so an on-demand tick never waits long.
                delivered = poller.poll_once(0, report)
            except Exception:  # noqa: BLE001 - keep polling like Lambda's mapping; show why on the console
                console.exception("polling %s failed", poller.mapping.queue_url)
                self._stop.wait(2)
                continue
            if not delivered:
                self._stop.wait(_IDLE_POLL_S)
            else:
                console.info(
                    "%s got %d message(s) from SQS, %d failed",
                    poller.mapping.function.logical_id,
                    report.messages,
                    report.failed,
                )
                for error in report.errors:
                    console.warning(error)

    def tick_and_drain(self) -> dict[str, Any]:
        """Fire every schedule once, then drain every queue through its function; a summary.

        The background pollers are held off meanwhile, so every message the tick produced is
        delivered, and counted, by this call before it returns.
        """
        with contextlib.ExitStack() as held:
            for lock in self._locks.values():
                held.enter_context(lock)
            return self._tick_and_drain()

    def _tick_and_drain(self) -> dict[str, Any]:
        fired = []
        for scheduler in self.schedulers:
            entry: dict[str, Any] = {
                "schedule": scheduler.schedule.name,
                "function": scheduler.schedule.function.logical_id,
            }
            try:
                result = scheduler.fire()
                entry["result"] = result if _is_json(result) else repr(result)
            except FunctionError as error:
                entry["error"] = f"{type(error.error).__name__} (traceback on the stack's console)"
            fired.append(entry)
        report = DrainReport()
        for poller in self.pollers:
            poller.drain(report)
        return {"schedules": fired, "queues": report.as_dict()}


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
