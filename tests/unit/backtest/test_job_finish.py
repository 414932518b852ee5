"""A backtest job is finished once: a late or duplicate finish leaves it as it is (store.backtest_jobs, moto).

SQS delivers a job's message at least once: two deliveries can run it side by side, and the last one's
give-up (``GAVE_UP``) can come after another finished it. The first finish of a job stands.
"""

from __future__ import annotations

import pytest
from klineo.errors import KlineoError
from klineo.store import aws as aws_clients
from klineo.store import backtest_jobs as job_store

USER = "user-1"
JOB = "a" * 32
RESULT = {"candles": 3, "final_equity": "1000"}


def test_a_done_job_is_not_failed_nor_replaced_by_a_later_finish(aws) -> None:
    """GIVEN a job finished done WHEN a duplicate delivery finishes it again, failed or done THEN it stays
    done with its first result, and the late finish says so (False) rather than raising."""
    job_store.put_job(USER, JOB, {"symbol": "BTCUSDT"})
    assert job_store.start_job(USER, JOB, 1)
    assert job_store.finish_job(USER, JOB, RESULT) is True

    assert job_store.finish_job(USER, JOB, None, job_store.GAVE_UP) is False
    assert job_store.finish_job(USER, JOB, {**RESULT, "candles": 4}) is False

    job = job_store.get_job(USER, JOB)
    assert job is not None and (job.status, job.result, job.error) == ("done", RESULT, None)


def _refuse(**_: object) -> None:
    raise aws_clients.sqs().exceptions.ClientError(
        {"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "SendMessage")


def test_a_failed_job_does_not_turn_done(aws) -> None:
    """GIVEN a job failed because its message could not be sent (NOT_QUEUED), although the send did reach
    SQS WHEN a worker finishes it done THEN it stays failed with its reason."""
    events = aws_clients.sqs().meta.events
    events.register("before-call.sqs.SendMessage", _refuse)
    try:
        with pytest.raises(KlineoError):
            job_store.queue_job(aws.refs["BacktestQueue"], USER, JOB, {"symbol": "BTCUSDT"})
    finally:
        events.unregister("before-call.sqs.SendMessage", _refuse)

    assert job_store.finish_job(USER, JOB, RESULT) is False

    job = job_store.get_job(USER, JOB)
    assert job is not None and (job.status, job.result, job.error) == ("failed", None, job_store.NOT_QUEUED)


def test_the_last_delivery_gives_up_a_job_it_could_not_even_start(aws) -> None:
    """GIVEN a job still queued (its last delivery failed before claiming it) WHEN that delivery gives up
    THEN the job is failed with GAVE_UP, not left queued for a day."""
    job_store.put_job(USER, JOB, {"symbol": "BTCUSDT"})

    assert job_store.finish_job(USER, JOB, None, job_store.GAVE_UP) is True

    job = job_store.get_job(USER, JOB)
    assert job is not None and (job.status, job.error) == ("failed", job_store.GAVE_UP)


def test_finishing_a_job_that_is_gone_is_a_no_op(aws) -> None:
    """GIVEN no such job (expired by its TTL) WHEN a worker finishes it THEN False, no error to redeliver."""
    assert job_store.finish_job(USER, JOB, RESULT) is False
    assert job_store.get_job(USER, JOB) is None


def test_only_one_delivery_claims_a_job_until_its_claim_outlives_the_workers_timeout(aws) -> None:
    """GIVEN a queued job WHEN two deliveries claim it THEN only the first does; a claim older than the
    worker's timeout is taken over by the next delivery; a finished job is claimed by none."""
    job_store.put_job(USER, JOB, {"symbol": "BTCUSDT"})
    now = 1_800_000_000

    assert job_store.start_job(USER, JOB, 1, now_s=now) is True
    assert job_store.start_job(USER, JOB, 1, now_s=now + 1) is False
    assert job_store.start_job(USER, JOB, 2, now_s=now + job_store.ATTEMPT_SECONDS) is False
    assert job_store.start_job(USER, JOB, 2, now_s=now + job_store.ATTEMPT_SECONDS + 1) is True
    job = job_store.get_job(USER, JOB)
    assert job is not None and (job.status, job.delivery) == ("running", 2)

    assert job_store.finish_job(USER, JOB, RESULT) is True
    assert job_store.start_job(USER, JOB, 3, now_s=now + 10 * job_store.ATTEMPT_SECONDS) is False
