"""GET /futures/order/{clientOrderId}: the state Binance reports for one of the caller's orders."""

from typing import Annotated

from klineo.api import build_resolver, current_user_id
from klineo.api.params import Query
from klineo.models.futures import FuturesOrderResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.futures import get_futures_order_status
from klineo.validation import CONNECTION_ID_PATTERN, SYMBOL_PATTERN

app = build_resolver()


@app.get("/futures/order/<client_order_id>")
def futures_order_status(
    client_order_id: str,
    connection_id: Annotated[str | None, Query(pattern=CONNECTION_ID_PATTERN)] = None,
    symbol: Annotated[str | None, Query(pattern=SYMBOL_PATTERN)] = None,
) -> FuturesOrderResponse:
    return get_futures_order_status(current_user_id(app), client_order_id, connection_id, symbol,
                                    app.lambda_context)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
