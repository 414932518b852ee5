"""DELETE /strategies/{id}: delete one of the caller's strategies."""

from klineo.api import Response, build_resolver, current_user_id
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.strategies import delete_user_strategy

app = build_resolver()


@app.delete("/strategies/<strategy_id>", responses={204: {"description": (
    "Deleted; no body. A live position it holds stays open on Binance with its stop-loss / take-profit "
    "orders (close it first to be flat).")}})
def strategy_delete(strategy_id: str) -> Response[None]:
    delete_user_strategy(current_user_id(app), strategy_id, app.lambda_context)
    return Response(status_code=204, body="")


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
