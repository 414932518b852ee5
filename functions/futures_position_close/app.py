"""POST /exchange-connections/{id}/futures/positions/{symbol}/close: close it, once per Idempotency-Key."""

from typing import Annotated, Literal

from klineo.api import build_resolver, current_user_id
from klineo.api.params import IdempotencyKey, Query, idempotent_responses
from klineo.models.futures import FuturesOrderResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.position_close import close_position

app = build_resolver()


@app.post("/exchange-connections/<connection_id>/futures/positions/<symbol>/close", description=(
    "One MARKET order for the position (reduceOnly in one-way mode, positionSide in hedge mode), at most "
    "the symbol's MARKET_LOT_SIZE maxQty: position_left is what it left open; past maxQty, send the close "
    "again with a NEW Idempotency-Key for the rest (the same key answers this close again, never a second "
    "order); meanwhile the stop-loss / take-profit of the position's API entries are re-placed for what is "
    "left."), responses=idempotent_responses(FuturesOrderResponse))
def futures_position_close(
    connection_id: str, symbol: str, idempotency_key: IdempotencyKey = None,
    position_side: Annotated[Literal["LONG", "SHORT"] | None, Query(description=(
        "Hedge-mode connections only: the side to close when both are open (400 on a one-way one)."))] = None,
) -> FuturesOrderResponse:
    return close_position(current_user_id(app), connection_id, symbol, idempotency_key, position_side,
                          app.lambda_context)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
