"""POST /strategies/backtest: run a strategy definition over a period of Binance klines (or queue a job)."""

from klineo.api import Response, build_resolver, content_types, current_user_id
from klineo.models.backtest import BacktestResponse
from klineo.models.backtest_request import BacktestRequest
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.backtest import start_backtest

app = build_resolver()


@app.post(
    "/strategies/backtest",
    description=(
        "Runs the strategy over the period's closed futures klines (cached per UTC day). Backtests leave "
        "40 % of the IP's Binance request weight to trading: when this minute's weight is used up to "
        "that reserve, or Binance or the IP's 90 % limit refuses a page, the answer is 429 rate_limit with "
        "Retry-After (days already fetched stay cached); a queued job waits such a refusal out itself. "
        "The simulated account trades within its equity: an entry is taken only when its initial margin "
        "(quantity x close / leverage, default 1) fits the equity at that close, else it is counted in "
        "skipped_entries / skipped_reasons; a position whose equity reaches zero is liquidated there "
        "(liquidated_at) and the backtest trades no more, so the equity never goes below zero. A size "
        "outside the symbol's market lot, or a quote_size_usdt below its minimum order value, can never "
        "trade: 422 naming the field."
    ),
    responses={
        200: {"description": "The backtest ran: its result.",
              "content": {"application/json": {"model": BacktestResponse}}},
        202: {"description": "A long period: a queued job to poll with GET /strategies/backtest/{jobId}.",
              "content": {"application/json": {"model": BacktestResponse}}},
    },
)
def strategy_backtest(body: BacktestRequest) -> Response[BacktestResponse]:
    status, answer = start_backtest(current_user_id(app), body)
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=answer)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
