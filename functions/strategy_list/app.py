"""GET /strategies: the caller's strategies."""

from klineo.api import build_resolver, current_user_id
from klineo.models.strategies import StrategyListResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.strategies import list_user_strategies

app = build_resolver()


@app.get("/strategies")
def strategy_list() -> StrategyListResponse:
    return list_user_strategies(current_user_id(app))


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
