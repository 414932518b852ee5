"""POST /exchange-connections/test: test Binance keys from the body (spot only), store nothing."""

from klineo.api import build_resolver, current_user_id
from klineo.models.common import ConnectionTestRequest
from klineo.models.connection_test import ConnectionTestResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.connections import check_keys

app = build_resolver()


@app.post("/exchange-connections/test")
def connection_test(body: ConnectionTestRequest) -> ConnectionTestResponse:
    current_user_id(app)
    return check_keys(body)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
