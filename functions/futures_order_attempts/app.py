"""GET /futures/order-attempts: the caller's order attempts, placed and refused, newest first (an audit)."""

from typing import Annotated

from klineo.api import build_resolver, current_user_id
from klineo.api.params import Query
from klineo.models.order_attempts import OrderAttemptsQuery, OrderAttemptsResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.order_attempts import list_order_attempts

app = build_resolver()


@app.get("/futures/order-attempts")
def futures_order_attempts(query: Annotated[OrderAttemptsQuery, Query()]) -> OrderAttemptsResponse:
    return list_order_attempts(current_user_id(app), query)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
