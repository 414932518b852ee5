"""Backtest jobs in the data table: ``pk = USER#<sub>``, ``sk = BACKTEST#<job id>``, expiring after a week.

A job holds its request (JSON text), its status (queued -> running -> done | failed) and, when done,
its result as zlib-compressed JSON (a bounded result: at most 500 trades and 500 equity points,
well under DynamoDB's 400 KB item limit). Only the owner's key reads it: another user's job is absent.

A job can also die where no code of ours runs to record it: the worker's timeout, its memory, an
init failure, on every one of the message's deliveries. The job item then never leaves queued or
running, so ``BacktestJob.effective_status`` reads it as failed once it provably cannot finish:
- its last delivery (``JOB_ATTEMPTS``, the queue's maxReceiveCount) started longer ago than the
  worker may run (``ATTEMPT_SECONDS``, its timeout), so nothing is running it any more;
- or it was created longer ago than the queue keeps a message (``QUEUE_RETENTION_SECONDS``), so no
  delivery is left to come.

A job is computed by one delivery at a time: ``start_job`` claims it (queued -> running, a conditional
write), and a duplicate of its message (SQS delivers at least once) that finds a live claim does no
work. A claim older than the worker's timeout is stale (the worker that made it died mid-run) and the
next delivery takes it over; a message handed back for a retryable error comes again only after the
queue's visibility timeout, longer than that, so its claim is stale by then.

``queue_job`` makes a job: the item first, then its message. The message names the item, so the item
must exist when a worker receives it (the reverse order would let a fast worker find no job and drop
the message). When the send fails, the item is marked failed (``NOT_QUEUED``), on the condition that it
is still queued: a send whose answer was lost but that did reach SQS either finds its job failed and
does nothing (``start_job`` refuses it), or has already started it and runs it to the end. The caller
is answered a retryable error without the job id, so a retry makes a new job; nothing reads queued
that no message will ever run.
An optional Idempotency-Key (POST /strategies/backtest) makes a queued job once per key: the key's record
(``sk = BACKTESTKEY#<sha256 of the key>``: the job's id and the body's digest, never the key) and the job's
item are ONE TransactWriteItems (``put_job``), so a key either is free or names its job; a second write with
a taken key writes nothing and is answered the key's record. A job whose message could not be sent frees its
key with its failure (``_fail_unsent``), so a retry with that key queues it anew. The record expires with
its job (``JOB_DAYS``).
tests/unit/test_template_backtest.py checks these numbers against template.yaml.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass
from typing import Any

from klineo.errors import ErrorCategory, KlineoError
from klineo.observability import logger
from klineo.settings import get_settings
from klineo.store import aws
from klineo.store.dynamo import conditional_write, get_data_item, transact
from klineo.store.strategies import CreateKey

__all__ = ["ATTEMPT_SECONDS", "JOB_ATTEMPTS", "JOB_DAYS", "NOT_QUEUED", "QUEUE_RETENTION_SECONDS",
           "BacktestJob", "JobKeyHolder", "finish_job", "get_job", "get_job_key", "put_job", "queue_job",
           "start_job"]

JOB_DAYS = 7
# Deliveries of a job message before SQS moves it to the dead-letter queue (maxReceiveCount).
JOB_ATTEMPTS = 5
# How long one delivery may run (the backtest worker's timeout) and the queue keeps a message.
ATTEMPT_SECONDS = 900
QUEUE_RETENTION_SECONDS = 86_400
# A little slack on both bounds, for clocks and the poller's own delays.
_GRACE_SECONDS = 120
GAVE_UP = "the backtest could not be completed; please retry later"
NOT_QUEUED = "the backtest could not be queued; please retry"


@dataclass(frozen=True)
class BacktestJob:
    """One stored backtest job."""

    user_id: str
    job_id: str
    status: str
    request: dict[str, Any]
    result: dict[str, Any] | None = None
    error: str | None = None
    created_s: int | None = None
    # The delivery of its message that last started it (SQS's receive count) and when.
    delivery: int = 0
    started_s: int | None = None

    def effective_status(self, now_s: float) -> tuple[str, str | None]:
        """(status, error) as a reader should see them: a job that provably cannot finish any more is
        failed, even though no code of ours was left running to record it (see the module docstring)."""
        if self.status not in ("queued", "running"):
            return self.status, self.error
        last_attempt_over = (self.delivery >= JOB_ATTEMPTS and self.started_s is not None
                             and now_s > self.started_s + ATTEMPT_SECONDS + _GRACE_SECONDS)
        attempt_may_run = (self.started_s is not None
                           and now_s <= self.started_s + ATTEMPT_SECONDS + _GRACE_SECONDS)
        message_gone = (self.created_s is not None and not attempt_may_run
                        and now_s > self.created_s + QUEUE_RETENTION_SECONDS + _GRACE_SECONDS)
        if last_attempt_over or message_gone:
            return "failed", GAVE_UP
        return self.status, self.error


def _key(user_id: str, job_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": f"BACKTEST#{job_id}"}}


@dataclass(frozen=True)
class JobKeyHolder:
    """What a backtest's Idempotency-Key record holds: the job its first request queued, its body's digest."""

    job_id: str
    body_digest: str


def _job_key_key(user_id: str, key: CreateKey) -> dict[str, Any]:
    return {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": f"BACKTESTKEY#{key.key_digest}"}}


def _key_holder(item: dict[str, Any] | None) -> JobKeyHolder | None:
    if not item:
        return None
    return JobKeyHolder(job_id=item["job_id"]["S"], body_digest=item["body_digest"]["S"])


def get_job_key(user_id: str, key: CreateKey) -> JobKeyHolder | None:
    """The record of the user's backtest key (consistent read); None when unused or expired."""
    item = get_data_item(_job_key_key(user_id, key), consistent=True)
    if item is None or int(item.get("ttl", {}).get("N", "0")) < time.time():
        return None
    return _key_holder(item)


def put_job(user_id: str, job_id: str, request: dict[str, Any], *, now_s: float | None = None,
            key: CreateKey | None = None) -> JobKeyHolder | None:
    """Store a new queued job (its id is fresh: a put that finds one already there fails); None when written.
    With ``key``, the job and the key's record are one transaction: when the key is taken, nothing is
    written and its record is answered."""
    created = int(now_s if now_s is not None else time.time())
    ttl = {"N": str(created + JOB_DAYS * 86_400)}
    put = {"TableName": get_settings().data_table, "ConditionExpression": "attribute_not_exists(pk)",
           "Item": {**_key(user_id, job_id), "status": {"S": "queued"}, "request": {"S": json.dumps(request)},
                    "created_s": {"N": str(created)}, "ttl": ttl}}
    if key is None:
        aws.dynamodb().put_item(**put)
        return None
    record = {"TableName": get_settings().data_table, "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
              "Item": {**_job_key_key(user_id, key), "job_id": {"S": job_id},
                       "body_digest": {"S": key.body_digest}, "ttl": ttl},
              "ConditionExpression": "attribute_not_exists(pk) OR #ttl < :now",
              "ExpressionAttributeNames": {"#ttl": "ttl"},
              "ExpressionAttributeValues": {":now": {"N": str(int(time.time()))}}}
    failed = transact([("job", {"Put": put}), ("key", {"Put": record})])
    if "key" in failed:
        return _key_holder(failed["key"])
    if failed:  # a random 128-bit id that exists already
        raise KlineoError(ErrorCategory.CONFLICT, "a backtest job with this id exists; send the request "
                          "again", retryable=True)
    return None


def queue_job(queue_url: str, user_id: str, job_id: str, request: dict[str, Any], *,
              now_s: float | None = None, key: CreateKey | None = None) -> JobKeyHolder | None:
    """Store a new queued job and send its message; None when queued, the key's record when ``key`` was
    taken (nothing written or sent). When the send fails, the job is failed (``NOT_QUEUED``), its key freed
    and a retryable error raised (the module docstring says why in this order)."""
    holder = put_job(user_id, job_id, request, now_s=now_s, key=key)
    if holder is not None:
        return holder
    try:
        aws.sqs().send_message(QueueUrl=queue_url,
                               MessageBody=json.dumps({"user_id": user_id, "job_id": job_id}))
    except aws.STORAGE_ERRORS as exc:
        _fail_unsent(user_id, job_id, key)
        raise KlineoError(ErrorCategory.UPSTREAM_UNAVAILABLE, NOT_QUEUED) from exc
    return None


def _fail_unsent(user_id: str, job_id: str, key: CreateKey | None = None) -> None:
    """queued -> failed (``NOT_QUEUED``) for a job whose message was not sent, and then its key's record
    deleted (while it names this job); a job a worker already started is left to it, its key too. Should
    this write fail too, the job reads failed after the queue's retention."""
    try:
        failed = conditional_write(
            aws.dynamodb().update_item, TableName=get_settings().data_table, Key=_key(user_id, job_id),
            UpdateExpression="SET #s = :failed, #e = :error", ConditionExpression="#s = :queued",
            ExpressionAttributeNames={"#s": "status", "#e": "error"},
            ExpressionAttributeValues={":failed": {"S": "failed"}, ":error": {"S": NOT_QUEUED},
                                       ":queued": {"S": "queued"}},
        )
        if failed and key is not None:
            conditional_write(
                aws.dynamodb().delete_item, TableName=get_settings().data_table,
                Key=_job_key_key(user_id, key), ConditionExpression="job_id = :job",
                ExpressionAttributeValues={":job": {"S": job_id}})
    except aws.STORAGE_ERRORS:
        logger.exception("unsent backtest job not marked failed", extra={"job_id": job_id})


def start_job(user_id: str, job_id: str, delivery: int, *, now_s: float | None = None) -> bool:
    """Claim the job for this ``delivery`` of its message (SQS's receive count), started now: queued ->
    running, or a running job whose claim is stale (made longer ago than ``ATTEMPT_SECONDS``, the worker's
    timeout: the delivery that made it is dead). False when another delivery holds a live claim (a
    duplicate of a message being run), or the job is gone or finished (a redelivered message)."""
    started = int(now_s if now_s is not None else time.time())
    return conditional_write(
        aws.dynamodb().update_item, TableName=get_settings().data_table, Key=_key(user_id, job_id),
        UpdateExpression="SET #s = :running, delivery = :delivery, started_s = :started",
        ConditionExpression="#s = :queued OR (#s = :running AND started_s < :stale)",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":running": {"S": "running"}, ":queued": {"S": "queued"},
                                   ":delivery": {"N": str(delivery)}, ":started": {"N": str(started)},
                                   ":stale": {"N": str(started - ATTEMPT_SECONDS)}},
    )


# A job is finished once. SQS delivers a message at least once; ``start_job`` lets one delivery at a time
# compute a job, yet a finish may still come twice (the last delivery's GAVE_UP after a finish, a send
# whose lost answer failed the job NOT_QUEUED): the first finish stands, a later one writes nothing.
# Queued too: the last delivery gives up a job it failed to start.
_FINISH_ONCE = "#s IN (:queued, :running)"


def finish_job(user_id: str, job_id: str, result: dict[str, Any] | None, error: str | None = None) -> bool:
    """queued or running -> done (with ``result``) or failed (with a user-safe ``error``); False, writing
    nothing, when the job is gone or already finished (see ``_FINISH_ONCE``)."""
    values: dict[str, Any] = {":status": {"S": "failed" if result is None else "done"},
                              ":queued": {"S": "queued"}, ":running": {"S": "running"}}
    expression = "SET #s = :status"
    if result is not None:
        values[":result"] = {"B": zlib.compress(json.dumps(result).encode(), 9)}
        expression += ", #r = :result"
    if error is not None:
        values[":error"] = {"S": error}
        expression += ", #e = :error"
    return conditional_write(
        aws.dynamodb().update_item, TableName=get_settings().data_table, Key=_key(user_id, job_id),
        UpdateExpression=expression, ConditionExpression=_FINISH_ONCE,
        ExpressionAttributeNames={"#s": "status", **({"#r": "result"} if result is not None else {}),
                                  **({"#e": "error"} if error is not None else {})},
        ExpressionAttributeValues=values,
    )


def get_job(user_id: str, job_id: str) -> BacktestJob | None:
    """The caller's job, or None."""
    item = get_data_item(_key(user_id, job_id), consistent=True)
    if item is None:
        return None
    result = item.get("result", {}).get("B")
    created, started = item.get("created_s", {}).get("N"), item.get("started_s", {}).get("N")
    return BacktestJob(
        user_id=user_id, job_id=job_id, status=item["status"]["S"], request=json.loads(item["request"]["S"]),
        result=json.loads(zlib.decompress(result)) if result is not None else None,
        error=item.get("error", {}).get("S"),
        created_s=int(created) if created is not None else None,
        delivery=int(item.get("delivery", {}).get("N", "0")),
        started_s=int(started) if started is not None else None,
    )
