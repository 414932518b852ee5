"""template.yaml's backtest queue and worker keep the numbers the job code relies on."""

from __future__ import annotations

from klineo.services.kline_history import BACKTEST_WEIGHT_PER_MINUTE, BACKTEST_WORKERS, Pacer
from klineo.store.backtest_jobs import ATTEMPT_SECONDS, JOB_ATTEMPTS, QUEUE_RETENTION_SECONDS


def _properties(template: dict, name: str) -> dict:
    return template["Resources"][name]["Properties"]


def test_a_job_is_given_up_on_the_queues_own_bounds(template) -> None:
    """GIVEN the backtest queue and worker THEN the job store reads a job as dead on their bounds: the
    last delivery is the redrive's maxReceiveCount, one delivery lasts the worker's timeout, and no
    message outlives the queue's retention."""
    queue = _properties(template, "BacktestQueue")
    worker = _properties(template, "BacktestWorkerFunction")
    assert queue["RedrivePolicy"]["maxReceiveCount"] == JOB_ATTEMPTS
    assert worker["Timeout"] == ATTEMPT_SECONDS < queue["VisibilityTimeout"]
    assert queue["MessageRetentionPeriod"] == QUEUE_RETENTION_SECONDS


def test_the_poller_never_starts_more_workers_than_may_run_and_they_share_the_pace(template) -> None:
    """GIVEN the backtest worker THEN its SQS MaximumConcurrency equals its reserved concurrency (a
    throttled invocation would count as a receive, and 5 would dead-letter a job that never ran), and
    its containers together pace klines at the backtests' share of the IP's weight."""
    worker = _properties(template, "BacktestWorkerFunction")
    scaling = worker["Events"]["Queue"]["Properties"]["ScalingConfig"]
    assert worker["ReservedConcurrentExecutions"] == scaling["MaximumConcurrency"] == BACKTEST_WORKERS >= 2
    assert Pacer().weight_per_minute * BACKTEST_WORKERS <= BACKTEST_WEIGHT_PER_MINUTE
