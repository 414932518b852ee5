"""GET /candles: klines for spot or futures, production or testnet."""

from typing import Annotated

from klineo.api import build_resolver, current_user_id
from klineo.api.params import Query
from klineo.models.candles import CandlesQuery, CandlesResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.candles import get_candles

app = build_resolver()


@app.get("/candles")
def candles(query: Annotated[CandlesQuery, Query()]) -> CandlesResponse:
    current_user_id(app)
    return get_candles(query)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
