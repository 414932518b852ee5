"""The backtest worker's SQS batch: each queued job run once; a retryable failure is redelivered.

A job's klines leave the trading reserve of the IP's minute weight, as charts do
(``klineo.services.kline_history``). When charts and trading have used the minute up to it, the job
waits in the worker for the next minute and goes on, rather than handing its message back: a
redelivery comes only after the queue's visibility timeout (16 minutes) and spends one of its
``JOB_ATTEMPTS`` deliveries, so a few busy minutes would delay the job by an hour and could fail it
for good, although nothing was wrong with it. The wait never passes the invocation's end: it stops
``SIMULATION_ROOM_S`` before the remaining time Lambda gives (the function's 900 s timeout), which
leaves the simulation of the longest job (600,000 candles: about 50 s at the benchmark's slowest
type, rsi_threshold, 12,000 candles a second) and the result's write their time. A page refused for
the minute's weight after the reserve check (our limiter's 90 % ceiling, Binance's 429) is waited out
the same way, for its ``retry_after``, at most ``kline_history.PAGE_WAITS`` times a page. Only past
that is the job handed back (a retryable ``rate_limit``), and at once for a 418 ban (``ip_banned``,
whose wait is Binance's to set and must not be hammered): SQS delivers it again with the days already
fetched in the cache, and the job reads ``running`` meanwhile, not failed.

Apart from ``klineo.services.backtest`` so that the HTTP functions (start a backtest, poll a job)
do not import Powertools' batch utilities, which load its parser models (about 40 ms of their cold
start); only the backtest worker uses them.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from klineo.observability import logger
from klineo.services.backtest import JOB_ATTEMPTS, run_backtest_job
from klineo.store import backtest_jobs as job_store

__all__ = ["SIMULATION_ROOM_S", "HeldByAnotherDelivery", "handle_job_batch"]

# What a job keeps of its invocation, after any wait for the trading reserve (see the module doc).
SIMULATION_ROOM_S = 120


class HeldByAnotherDelivery(Exception):
    """A duplicate of a job's message found the job run by another delivery: the message is handed back.

    Deleted, it would leave nothing to run the job should that delivery's worker die (its own copy may
    be gone with this one: SQS deletes a message by its latest receipt handle). Handed back, it comes
    again after the visibility timeout, longer than the worker may run: the job is finished by then
    (the delivery acknowledges it), or its claim is stale and the delivery takes it over. Its last
    delivery is acknowledged instead: the running worker's outcome stands, and should it die, the job
    fails by the one-day rule (``klineo.store.backtest_jobs``).
    """


def _wait_until(lambda_context: Any) -> float:
    """The latest time (epoch s) a job may wait for the next minute's weight in this invocation."""
    remaining_s = (lambda_context.get_remaining_time_in_millis() / 1000 if lambda_context is not None
                   else job_store.ATTEMPT_SECONDS)
    return time.time() + remaining_s - SIMULATION_ROOM_S


def _job_record(record: SQSRecord, lambda_context: Any = None) -> None:
    """One job message: run it; a retryable failure raises so SQS delivers the message again."""
    try:
        message = json.loads(record.body)
        user_id, job_id = str(message["user_id"]), str(message["job_id"])
    except (ValueError, KeyError, TypeError):
        logger.warning("unreadable backtest message dropped", extra={"message_id": record.message_id})
        return
    delivery = int(record.attributes.approximate_receive_count)
    try:
        outcome = run_backtest_job(user_id, job_id, delivery=delivery, wait_until=_wait_until(lambda_context))
    except Exception:
        if delivery < JOB_ATTEMPTS:
            raise  # SQS delivers it again after the visibility timeout
        logger.exception("backtest job failed for good", extra={"job_id": job_id})
        gave_up = job_store.finish_job(user_id, job_id, None, job_store.GAVE_UP)
        outcome = "failed" if gave_up else "already_finished"
    logger.info("backtest job", extra={"job_id": job_id, "outcome": outcome})
    if outcome == "already_running" and delivery < JOB_ATTEMPTS:
        raise HeldByAnotherDelivery(job_id)


def handle_job_batch(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Entry point of the backtest worker's SQS event: run each job; report the ones to redeliver."""
    return process_partial_response(
        event=event, record_handler=_job_record,
        processor=BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False),
        context=context,
    )
