"""POST /futures/order: one USDT-M order, exactly once per Idempotency-Key header."""

from klineo.api import build_resolver, current_user_id
from klineo.api.params import IdempotencyKey, idempotent_responses
from klineo.models.futures import FuturesOrderRequest, FuturesOrderResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.futures import place_futures_order

app = build_resolver()


@app.post("/futures/order", responses=idempotent_responses(FuturesOrderResponse))
def futures_order(body: FuturesOrderRequest, idempotency_key: IdempotencyKey = None) -> FuturesOrderResponse:
    return place_futures_order(current_user_id(app), body, idempotency_key, app.lambda_context)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
