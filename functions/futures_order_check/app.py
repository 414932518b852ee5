"""POST /futures/order/check: the dry run of POST /futures/order (same body); nothing is sent or recorded."""

from klineo.api import build_resolver, current_user_id
from klineo.models.futures import FuturesOrderRequest
from klineo.models.order_check import OrderCheckResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.order_check import check_futures_order

app = build_resolver()


@app.post("/futures/order/check")
def futures_order_check(body: FuturesOrderRequest) -> OrderCheckResponse:
    return check_futures_order(current_user_id(app), body, app.lambda_context)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
