"""POST /strategies: create a strategy on a connection of the caller's (once per Idempotency-Key, if sent)."""

from klineo.api import Response, build_resolver, content_types, current_user_id
from klineo.api.params import CreateIdempotencyKey
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
        },
        200: {
            "description": ("A retry with the Idempotency-Key and body of an earlier create: the strategy "
                            "that create made, as it is now (nothing created)."),
            "content": {"application/json": {"model": StrategyResponse}},
        },
    },
)
def strategy_create(body: StrategyCreateRequest,
                    idempotency_key: CreateIdempotencyKey = None) -> Response[StrategyResponse]:
    strategy, created = create_strategy(current_user_id(app), body, idempotency_key)
    return Response(status_code=201 if created else 200, content_type=content_types.APPLICATION_JSON,
                    body=strategy)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
