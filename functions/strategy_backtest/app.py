"""POST /strategies/backtest: run a strategy definition over a period of Binance klines (or queue a job, once
per Idempotency-Key, if sent)."""

from klineo.api import Response, build_resolver, content_types, current_user_id
from klineo.api.params import BacktestIdempotencyKey
from klineo.models.backtest import BACKTEST_ROUTE_DESCRIPTION, BacktestResponse
from klineo.models.backtest_request import BacktestRequest
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.backtest import start_backtest

app = build_resolver()


@app.post(
    "/strategies/backtest",
    description=BACKTEST_ROUTE_DESCRIPTION,
    responses={
        200: {"description": "The backtest ran: its result.",
              "content": {"application/json": {"model": BacktestResponse}}},
        202: {"description": "A long period: a queued job to poll with GET /strategies/backtest/{jobId}.",
              "content": {"application/json": {"model": BacktestResponse}}},
    },
)
def strategy_backtest(body: BacktestRequest,
                      idempotency_key: BacktestIdempotencyKey = None) -> Response[BacktestResponse]:
    status, answer = start_backtest(current_user_id(app), body, idempotency_key=idempotency_key)
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=answer)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
