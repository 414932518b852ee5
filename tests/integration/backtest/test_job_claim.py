"""A backtest job is computed by one delivery of its message at a time (the worker, the simulator, moto).

SQS delivers a message at least once: a second copy may reach a worker while the first one runs the job.
The delivery that claims the job (queued -> running) computes it; another finds it claimed and does no work,
unless the claim is stale (older than the worker's timeout: the worker that made it is dead).
"""

from __future__ import annotations

import time
from typing import Any

import boto3
from klineo.services import backtest as backtest_service
from klineo.store import backtest_jobs as job_store

from tests.helpers import load_event, response_json, with_body, with_user
from tests.integration.api.conftest import USER_A
from tests.integration.api.conftest import iam as iam  # fixture
from tests.integration.api.conftest import invoke as invoke  # fixture
from tests.integration.api.conftest import sim_env as sim_env  # fixture

KLINES = "/fapi/v1/klines"
BODY: dict[str, Any] = {
    "symbol": "BTCUSDT", "interval": "1h", "type": "sma_crossover",
    "parameters": {"fast": 3, "slow": 8}, "quote_size_usdt": 1000,
    "start": "2025-01-01T00:00:00Z", "end": "2025-01-09T00:00:00Z",
}


def _queued_job(invoke, aws, monkeypatch) -> tuple[str, dict[str, Any]]:
    """A queued job and the worker event of its message."""
    monkeypatch.setattr(backtest_service, "SYNC_MAX_CANDLES", 100)
    event = with_user(with_body(load_event("strategy_backtest"), BODY), USER_A)
    response = invoke("strategy_backtest", event)
    assert response["statusCode"] == 202, response["body"]
    sqs = boto3.client("sqs", region_name=aws.region)
    [message] = sqs.receive_message(QueueUrl=aws.refs["BacktestQueue"])["Messages"]
    event = load_event("backtest_worker")
    event["Records"][0].update(messageId=message["MessageId"], body=message["Body"])
    return response_json(response)["job_id"], event


def _klines_sent(sim) -> int:
    return sum(1 for record in sim.journal if record.path == KLINES)


def test_a_duplicate_delivery_of_a_job_being_run_computes_nothing_and_comes_back(sim_env, invoke, aws,
                                                                                 monkeypatch) -> None:
    """GIVEN a job another worker claimed a minute ago and is running WHEN a duplicate of its message is
    delivered THEN that delivery reads no klines and records nothing (the job stays running), and hands
    the message back: deleted, nothing would run the job should the worker running it die."""
    job_id, event = _queued_job(invoke, aws, monkeypatch)
    assert job_store.start_job(USER_A, job_id, 1, now_s=time.time() - 60)
    sim_env.clear_journal()
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "2"

    answer = invoke("backtest_worker", event)

    assert answer == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert _klines_sent(sim_env) == 0
    job = job_store.get_job(USER_A, job_id)
    assert job is not None and (job.status, job.result) == ("running", None)


def test_a_last_delivery_of_a_job_being_run_is_dropped_and_leaves_the_job_running(sim_env, invoke, aws,
                                                                                   monkeypatch) -> None:
    """GIVEN a job another worker is running WHEN its message's last delivery (maxReceiveCount) finds it
    THEN the message is done (not sent to the dead-letter queue) and the running job is not failed."""
    job_id, event = _queued_job(invoke, aws, monkeypatch)
    assert job_store.start_job(USER_A, job_id, 1, now_s=time.time() - 60)
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(job_store.JOB_ATTEMPTS)

    assert invoke("backtest_worker", event) == {"batchItemFailures": []}

    job = job_store.get_job(USER_A, job_id)
    assert job is not None and (job.status, job.result, job.error) == ("running", None, None)


def test_a_delivery_takes_over_a_job_whose_claim_outlived_the_workers_timeout(sim_env, invoke, aws,
                                                                              monkeypatch) -> None:
    """GIVEN a job claimed longer ago than the worker may run (that worker died mid-run) WHEN its message is
    delivered again THEN this delivery computes it and the job is done."""
    job_id, event = _queued_job(invoke, aws, monkeypatch)
    stale = time.time() - job_store.ATTEMPT_SECONDS - 5
    assert job_store.start_job(USER_A, job_id, 1, now_s=stale)
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "2"

    assert invoke("backtest_worker", event) == {"batchItemFailures": []}

    job = job_store.get_job(USER_A, job_id)
    assert job is not None and job.status == "done" and job.result is not None and job.delivery == 2
