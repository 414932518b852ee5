"""GET /exchange-connections/{id}/futures/open-orders: Binance's open regular and algo orders, ours marked."""

from typing import Annotated

from klineo.api import build_resolver, current_user_id
from klineo.api.params import Query
from klineo.models.open_orders import OpenOrdersResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.open_orders import list_open_orders
from klineo.validation import SYMBOL_PATTERN

app = build_resolver()


@app.get("/exchange-connections/<connection_id>/futures/open-orders")
def futures_open_orders(
    connection_id: str, symbol: Annotated[str | None, Query(pattern=SYMBOL_PATTERN)] = None
) -> OpenOrdersResponse:
    return list_open_orders(current_user_id(app), connection_id, symbol)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
