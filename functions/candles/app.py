"""GET /candles: klines for spot or futures, production or testnet."""

from typing import Annotated

from klineo.api import build_resolver, current_user_id
from klineo.api.params import Query
from klineo.models.candles import CandlesQuery, CandlesResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.candles import get_candles

app = build_resolver()


@app.get("/candles", description=(
    "Klines of a symbol, oldest first. Chart requests leave 40 % of the IP's Binance request weight to "
    "trading: when this minute's weight is used up to that reserve, the answer is 429 rate_limit with "
    "Retry-After at the next minute."))
def candles(query: Annotated[CandlesQuery, Query()]) -> CandlesResponse:
    current_user_id(app)
    return get_candles(query)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
