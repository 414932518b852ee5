"""POST /exchange-connections/{id}/futures/enable: futures test, settings on Binance, then futures on.

Optional body: {"position_mode": "one_way"|"hedge", "margin_type": "isolated"|"cross", "leverage": 1-125}.
"""

from klineo.api import build_resolver, current_user_id
from klineo.models.futures_settings import FuturesEnableResponse, FuturesSettingsRequest
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.futures_account import enable_futures

app = build_resolver()


@app.post("/exchange-connections/<connection_id>/futures/enable")
def futures_enable(connection_id: str, body: FuturesSettingsRequest | None = None) -> FuturesEnableResponse:
    return enable_futures(current_user_id(app), connection_id, body)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
