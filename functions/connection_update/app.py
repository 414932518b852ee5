"""PATCH /exchange-connections/{id}: label, kill switch, risk limits and futures defaults."""

from klineo.api import build_resolver, current_user_id
from klineo.models.common import ConnectionResponse
from klineo.models.connection_settings import ConnectionUpdateRequest
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.connection_lifecycle import update_connection

app = build_resolver()


@app.patch("/exchange-connections/<connection_id>")
def connection_update(connection_id: str, body: ConnectionUpdateRequest) -> ConnectionResponse:
    return update_connection(current_user_id(app), connection_id, body)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
