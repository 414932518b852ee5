"""POST /strategies/{id}/run: evaluate the latest closed candle now, exactly once with the scheduled tick."""

from klineo.api import build_resolver, current_user_id
from klineo.models.strategy_runs import RunNowResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.strategies import run_strategy_now

app = build_resolver()


@app.post("/strategies/<strategy_id>/run")
def strategy_run(strategy_id: str) -> RunNowResponse:
    return run_strategy_now(current_user_id(app), strategy_id, app.lambda_context)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
