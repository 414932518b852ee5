"""GET /exchange-connections/{id}/futures/positions: the connection's open positions, read from Binance."""

from klineo.api import build_resolver, current_user_id
from klineo.models.positions import FuturesPositionsResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.positions import list_positions

app = build_resolver()


@app.get("/exchange-connections/<connection_id>/futures/positions")
def futures_positions(connection_id: str) -> FuturesPositionsResponse:
    return list_positions(current_user_id(app), connection_id)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
