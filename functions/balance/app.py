"""GET /exchange-connections/{id}/balance: spot balances of one of the caller's connections."""

from klineo.api import build_resolver, current_user_id
from klineo.models.balances import BalanceResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.balances import get_balances

app = build_resolver()


@app.get("/exchange-connections/<connection_id>/balance")
def balance(connection_id: str) -> BalanceResponse:
    return get_balances(current_user_id(app), connection_id)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
