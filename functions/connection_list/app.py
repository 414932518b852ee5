"""GET /exchange-connections: the caller's connections, API key masked, never the secret."""

from klineo.api import build_resolver, current_user_id
from klineo.models.common import ConnectionListResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.connection_records import list_user_connections

app = build_resolver()


@app.get("/exchange-connections")
def connection_list() -> ConnectionListResponse:
    return list_user_connections(current_user_id(app))


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
