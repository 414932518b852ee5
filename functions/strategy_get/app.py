"""GET /strategies/{id}: one of the caller's strategies and its latest runs."""

from klineo.api import build_resolver, current_user_id
from klineo.models.strategy_runs import StrategyDetailResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.strategies import get_user_strategy

app = build_resolver()


@app.get("/strategies/<strategy_id>")
def strategy_get(strategy_id: str) -> StrategyDetailResponse:
    return get_user_strategy(current_user_id(app), strategy_id)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
