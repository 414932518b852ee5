"""GET /strategies/backtest/{jobId}: a backtest job's status and, once done, its result.

Apart from ``klineo.services.backtest`` so that reading a job does not import the simulation, the
kline history and the Binance client that only running a backtest uses.
"""

import re
import time

from klineo.errors import ErrorCategory, KlineoError
from klineo.models.backtest import BacktestResponse, BacktestResult
from klineo.store import backtest_jobs as job_store
from klineo.validation import HEX_ID_PATTERN

__all__ = ["get_backtest"]

_JOB_ID = re.compile(HEX_ID_PATTERN)


def get_backtest(user_id: str, job_id: str) -> BacktestResponse:
    """The caller's job: its status and, once done, its result (404 when unknown or another user's); a
    job that died where nothing could record it reads as failed once it provably cannot finish."""
    job = job_store.get_job(user_id, job_id) if _JOB_ID.match(job_id) else None
    if job is None:
        raise KlineoError(ErrorCategory.NOT_FOUND, "backtest job not found", field="jobId")
    result = BacktestResult.model_validate(job.result) if job.result is not None else None
    status, error = job.effective_status(time.time())
    return BacktestResponse(job_id=job_id, status=status, result=result, error=error)  # type: ignore[arg-type]
