"""GET /strategies/backtest/{jobId}: a backtest job's status and, once done, its result."""

from klineo.api import build_resolver, current_user_id
from klineo.models.backtest import BacktestResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.backtest_status import get_backtest

app = build_resolver()


@app.get("/strategies/backtest/<job_id>")
def strategy_backtest_get(job_id: str) -> BacktestResponse:
    return get_backtest(current_user_id(app), job_id)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
