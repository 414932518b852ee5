"""POST /exchange-connections/{id}/futures/disable: futures_enabled=false (no Binance call)."""

from klineo.api import build_resolver, current_user_id
from klineo.models.futures_account import FuturesStateResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.futures_account import disable_futures

app = build_resolver()


@app.post("/exchange-connections/<connection_id>/futures/disable")
def futures_disable(connection_id: str) -> FuturesStateResponse:
    return disable_futures(current_user_id(app), connection_id)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
