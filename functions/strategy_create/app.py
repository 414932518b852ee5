"""POST /strategies: create a strategy on one of the caller's connections."""

from klineo.api import Response, build_resolver, content_types, current_user_id
from klineo.models.strategies import StrategyResponse
from klineo.models.strategy_requests import StrategyCreateRequest
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.strategy_changes import create_strategy

app = build_resolver()


@app.post(
    "/strategies",
    responses={
        201: {
            "description": "The strategy is created.",
            "content": {"application/json": {"model": StrategyResponse}},
        }
    },
)
def strategy_create(body: StrategyCreateRequest) -> Response[StrategyResponse]:
    created = create_strategy(current_user_id(app), body)
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=created)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
