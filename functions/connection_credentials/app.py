"""PUT /exchange-connections/{id}/credentials: test new keys, then make them the connection's keys."""

from klineo.api import build_resolver, current_user_id
from klineo.models.common import ConnectionResponse
from klineo.models.connection_settings import CredentialsReplaceRequest
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.connection_lifecycle import replace_credentials

app = build_resolver()


@app.put("/exchange-connections/<connection_id>/credentials")
def connection_credentials(connection_id: str, body: CredentialsReplaceRequest) -> ConnectionResponse:
    return replace_credentials(current_user_id(app), connection_id, body)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
