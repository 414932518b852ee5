"""DELETE /exchange-connections/{id}/futures/open-orders?symbol=: cancel every open order on one symbol."""

from typing import Annotated

from klineo.api import build_resolver, current_user_id
from klineo.api.params import ServiceQuery
from klineo.models.open_orders import CancelOpenOrdersResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.open_orders import cancel_open_orders
from klineo.validation import SYMBOL_PATTERN

app = build_resolver()


@app.delete("/exchange-connections/<connection_id>/futures/open-orders")
def futures_open_orders_cancel(
    connection_id: str, symbol: Annotated[str | None, ServiceQuery(pattern=SYMBOL_PATTERN)] = None
) -> CancelOpenOrdersResponse:
    return cancel_open_orders(current_user_id(app), connection_id, symbol, app.lambda_context)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
