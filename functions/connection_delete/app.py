"""DELETE /exchange-connections/{id}: pause its strategies, then remove the connection (secret and item)."""

from klineo.api import build_resolver, current_user_id
from klineo.models.connection_settings import ConnectionDeleteResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.connection_delete import delete_connection

app = build_resolver()


@app.delete("/exchange-connections/<connection_id>")
def connection_delete(connection_id: str) -> ConnectionDeleteResponse:
    return delete_connection(current_user_id(app), connection_id)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
