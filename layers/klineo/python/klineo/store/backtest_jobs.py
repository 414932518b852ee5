"""Backtest jobs in the data table: ``pk = USER#<sub>``, ``sk = BACKTEST#<job id>``, expiring after a week.

A job holds its request (JSON text), its status (queued -> running -> done | failed) and, when done,
its result as zlib-compressed JSON (a bounded result: at most 500 trades and 500 equity points,
well under DynamoDB's 400 KB item limit). Only the owner's key reads it: another user's job is absent.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass
from typing import Any

from klineo.settings import get_settings
from klineo.store import aws
from klineo.store.dynamo import conditional_write, get_data_item

__all__ = ["JOB_DAYS", "BacktestJob", "finish_job", "get_job", "put_job", "start_job"]

JOB_DAYS = 7


@dataclass(frozen=True)
class BacktestJob:
    """One stored backtest job."""

    user_id: str
    job_id: str
    status: str
    request: dict[str, Any]
    result: dict[str, Any] | None = None
    error: str | None = None


def _key(user_id: str, job_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": f"BACKTEST#{job_id}"}}


def put_job(user_id: str, job_id: str, request: dict[str, Any], *, now_s: float | None = None) -> None:
    """Store a new queued job (its id is fresh: a put that finds one already there fails)."""
    expires = int(now_s if now_s is not None else time.time()) + JOB_DAYS * 86_400
    aws.dynamodb().put_item(
        TableName=get_settings().data_table,
        Item={**_key(user_id, job_id), "status": {"S": "queued"}, "request": {"S": json.dumps(request)},
              "ttl": {"N": str(expires)}},
        ConditionExpression="attribute_not_exists(pk)",
    )


def start_job(user_id: str, job_id: str) -> bool:
    """queued -> running; False when the job is gone or already finished (a redelivered message)."""
    client = aws.dynamodb()
    return conditional_write(
        client.update_item, TableName=get_settings().data_table, Key=_key(user_id, job_id),
        UpdateExpression="SET #s = :running", ConditionExpression="#s IN (:queued, :running)",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":running": {"S": "running"}, ":queued": {"S": "queued"}},
    )


def finish_job(user_id: str, job_id: str, result: dict[str, Any] | None, error: str | None = None) -> None:
    """running -> done (with ``result``) or failed (with a user-safe ``error``)."""
    values: dict[str, Any] = {":status": {"S": "failed" if result is None else "done"}}
    expression = "SET #s = :status"
    if result is not None:
        values[":result"] = {"B": zlib.compress(json.dumps(result).encode(), 9)}
        expression += ", #r = :result"
    if error is not None:
        values[":error"] = {"S": error}
        expression += ", #e = :error"
    aws.dynamodb().update_item(
        TableName=get_settings().data_table, Key=_key(user_id, job_id), UpdateExpression=expression,
        ConditionExpression="attribute_exists(pk)",
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
    return BacktestJob(
        user_id=user_id, job_id=job_id, status=item["status"]["S"], request=json.loads(item["request"]["S"]),
        result=json.loads(zlib.decompress(result)) if result is not None else None,
        error=item.get("error", {}).get("S"),
    )
