"""POST /exchange-connections/{id}/enable: test the stored keys, switch it on, resume its strategies."""

from klineo.api import build_resolver, current_user_id
from klineo.models.connection_settings import ConnectionEnableResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.connection_lifecycle import enable_connection

app = build_resolver()


@app.post("/exchange-connections/<connection_id>/enable")
def connection_enable(connection_id: str) -> ConnectionEnableResponse:
    return enable_connection(current_user_id(app), connection_id)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
