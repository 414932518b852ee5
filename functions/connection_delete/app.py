"""DELETE /exchange-connections/{id}: remove one of the caller's connections (secret and item)."""

from aws_lambda_powertools.event_handler import Response
from klineo.api import build_resolver, current_user_id
from klineo.observability import logger, metrics, tracer
from klineo.services.connections import delete_connection

app = build_resolver()


@app.delete("/exchange-connections/<connection_id>",
            responses={204: {"description": "The connection and its stored secret are removed; no body."}})
def connection_delete(connection_id: str) -> Response[None]:
    delete_connection(current_user_id(app), connection_id)
    return Response(status_code=204, body="")


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
