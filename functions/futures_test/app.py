"""POST /exchange-connections/{id}/futures/test: USDT-M futures check of a connection (spot untouched)."""

from klineo.api import build_resolver, current_user_id
from klineo.models.futures_account import FuturesTestResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.futures_account import check_futures

app = build_resolver()


@app.post("/exchange-connections/<connection_id>/futures/test")
def futures_test(connection_id: str) -> FuturesTestResponse:
    return check_futures(current_user_id(app), connection_id)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
