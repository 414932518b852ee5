"""A long backtest over the whole local stack: 202 + job id, the local SQS mapping runs the worker, polled."""

from __future__ import annotations

import time

import pytest

from .conftest import RunningStack

pytestmark = pytest.mark.e2e

POLL_TIMEOUT_S = 120

# 8 days of 1m candles = 11,520 candles: over the 10,000 answered in the request.
LONG_BODY = {
    "symbol": "BNBUSDT", "interval": "1m", "type": "sma_crossover", "parameters": {"fast": 5, "slow": 20},
    "quote_size_usdt": 500, "stop_loss_pct": 1, "take_profit_pct": 2,
    "start": "2025-02-01T00:00:00Z", "end": "2025-02-09T00:00:00Z",
}


def test_long_backtest_runs_as_a_job_through_the_local_queue(stack: RunningStack) -> None:
    """GIVEN a period over the sync limit WHEN posted THEN 202 + job id; polled until done with a result."""
    # WHEN the long backtest is posted
    posted = stack.call("POST", "/strategies/backtest", json=LONG_BODY)
    # THEN it is a queued job
    assert posted.status_code == 202, posted.text
    job_id = posted.json()["job_id"]
    assert posted.json()["status"] == "queued"
    # AND the local SQS -> worker mapping runs it: poll until it is no longer queued or running
    deadline = time.monotonic() + POLL_TIMEOUT_S
    answer = stack.call("GET", f"/strategies/backtest/{job_id}").json()
    while answer["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)  # polling a real server, as a client does; the condition is the job's status
        answer = stack.call("GET", f"/strategies/backtest/{job_id}").json()
    assert answer["status"] == "done", answer
    assert answer["result"]["candles"] == 8 * 1440
    assert len(answer["result"]["equity_curve"]) <= 500
    # AND another user cannot read it
    other = stack.token_for("backtest-other-user")
    assert stack.call("GET", f"/strategies/backtest/{job_id}", token=other).status_code == 404
