"""POST /exchange-connections: test the keys, then store them and the connection."""

from klineo.api import Response, build_resolver, content_types, current_user_id
from klineo.models.common import ConnectionCreateRequest, ConnectionResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.connection_records import create_connection

app = build_resolver()


@app.post(
    "/exchange-connections",
    responses={
        201: {
            "description": "The keys passed the spot test and the connection is stored.",
            "content": {"application/json": {"model": ConnectionResponse}},
        }
    },
)
def connection_create(body: ConnectionCreateRequest) -> Response[ConnectionResponse]:
    created = create_connection(current_user_id(app), body)
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=created)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
