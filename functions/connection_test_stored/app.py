"""POST /exchange-connections/{id}/test: the spot test on a stored connection's keys, recorded."""

from klineo.api import build_resolver, current_user_id
from klineo.models.connection_test import ConnectionTestResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.connections import check_stored_connection

app = build_resolver()


@app.post("/exchange-connections/<connection_id>/test")
def connection_test_stored(connection_id: str) -> ConnectionTestResponse:
    return check_stored_connection(current_user_id(app), connection_id)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
