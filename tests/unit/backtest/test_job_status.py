"""How a reader sees a backtest job that no code of ours was left running to record (store.backtest_jobs)."""

from __future__ import annotations

from klineo.store.backtest_jobs import (
    ATTEMPT_SECONDS,
    JOB_ATTEMPTS,
    QUEUE_RETENTION_SECONDS,
    BacktestJob,
)

CREATED = 1_000_000


def _job(status: str = "running", delivery: int = 1, started: int | None = None) -> BacktestJob:
    return BacktestJob(user_id="u", job_id="j", status=status, request={}, created_s=CREATED,
                       delivery=delivery, started_s=started)


def test_a_job_started_near_the_queue_retention_end_is_still_running():
    """GIVEN a job whose message waited about a day behind others and whose first delivery started 10
    minutes ago WHEN read just after the queue's retention ended THEN running: that delivery may run on."""
    started = CREATED + QUEUE_RETENTION_SECONDS - 60

    assert _job(started=started).effective_status(started + 600)[0] == "running"
    assert _job(started=started).effective_status(started + ATTEMPT_SECONDS + 600)[0] == "failed"


def test_the_last_delivery_is_given_up_only_after_the_workers_timeout():
    """GIVEN the 5th and last delivery running WHEN read before and after the worker's timeout THEN running,
    then failed; an earlier delivery's death is left to SQS's next delivery (running)."""
    started = CREATED + 100

    assert _job(delivery=JOB_ATTEMPTS, started=started).effective_status(started + 60)[0] == "running"
    assert _job(delivery=JOB_ATTEMPTS, started=started).effective_status(started + 1200)[0] == "failed"
    assert _job(delivery=JOB_ATTEMPTS - 1, started=started).effective_status(started + 1200)[0] == "running"


def test_a_finished_job_reads_as_stored():
    """GIVEN a done or failed job THEN its own status and error, however old."""
    done = BacktestJob(user_id="u", job_id="j", status="done", request={}, created_s=CREATED)
    assert done.effective_status(CREATED + 10 * QUEUE_RETENTION_SECONDS) == ("done", None)
