"""GET /futures/orders: the caller's orders (regular and algo, ours and Binance's), newest first."""

from typing import Annotated

from klineo.api import build_resolver, current_user_id
from klineo.api.params import Query
from klineo.models.order_history import OrderHistoryQuery, OrderHistoryResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.order_history import list_orders

app = build_resolver()


@app.get("/futures/orders")
def futures_orders(query: Annotated[OrderHistoryQuery, Query()]) -> OrderHistoryResponse:
    return list_orders(current_user_id(app), query, app.lambda_context)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
