"""PATCH /strategies/{id}: change a strategy's type and parameters, size, mode or status."""

from klineo.api import build_resolver, current_user_id
from klineo.models.strategies import StrategyResponse
from klineo.models.strategy_requests import StrategyUpdateRequest
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.strategy_updates import update_strategy

app = build_resolver()


@app.patch("/strategies/<strategy_id>")
def strategy_update(strategy_id: str, body: StrategyUpdateRequest) -> StrategyResponse:
    return update_strategy(current_user_id(app), strategy_id, body)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
