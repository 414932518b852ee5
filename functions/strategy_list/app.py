"""GET /strategies: the caller's strategies, oldest first, a page as large as Lambda's answer holds."""

from typing import Annotated

from klineo.api import build_resolver, current_user_id
from klineo.api.params import Query
from klineo.models.strategies import StrategyListQuery, StrategyListResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.strategies import list_user_strategies

app = build_resolver()


@app.get("/strategies")
def strategy_list(query: Annotated[StrategyListQuery, Query()]) -> StrategyListResponse:
    return list_user_strategies(current_user_id(app), query)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
