"""The backtest worker's SQS batch: each queued job run once; a retryable failure is redelivered.

Apart from ``klineo.services.backtest`` so that the HTTP functions (start a backtest, poll a job)
do not import Powertools' batch utilities, which load its parser models (about 40 ms of their cold
start); only the backtest worker uses them.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from klineo.observability import logger
from klineo.services.backtest import JOB_ATTEMPTS, run_backtest_job
from klineo.store import backtest_jobs as job_store

__all__ = ["handle_job_batch"]


def _job_record(record: SQSRecord) -> None:
    """One job message: run it; a retryable failure raises so SQS delivers the message again."""
    try:
        message = json.loads(record.body)
        user_id, job_id = str(message["user_id"]), str(message["job_id"])
    except (ValueError, KeyError, TypeError):
        logger.warning("unreadable backtest message dropped", extra={"message_id": record.message_id})
        return
    delivery = int(record.attributes.approximate_receive_count)
    try:
        outcome = run_backtest_job(user_id, job_id, delivery=delivery)
    except Exception:
        if delivery < JOB_ATTEMPTS:
            raise  # SQS delivers it again after the visibility timeout
        logger.exception("backtest job failed for good", extra={"job_id": job_id})
        job_store.finish_job(user_id, job_id, None, job_store.GAVE_UP)
        return
    logger.info("backtest job", extra={"job_id": job_id, "outcome": outcome})


def handle_job_batch(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Entry point of the backtest worker's SQS event: run each job; report the ones to redeliver."""
    return process_partial_response(
        event=event, record_handler=_job_record,
        processor=BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False),
        context=context,
    )
