"""DELETE /futures/order/{clientOrderId}: cancel one of the caller's orders; the answer is its final state."""

from klineo.api import build_resolver, current_user_id
from klineo.models.futures import FuturesOrderResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.order_cancel import cancel_futures_order

app = build_resolver()


@app.delete("/futures/order/<client_order_id>")
def futures_order_cancel(client_order_id: str) -> FuturesOrderResponse:
    return cancel_futures_order(current_user_id(app), client_order_id, app.lambda_context)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
