"""GET /strategies/{id}/events: a page of one of the caller's strategies' events, newest first."""

from typing import Annotated

from klineo.api import build_resolver, current_user_id
from klineo.api.params import Query
from klineo.models.paging import PageQuery
from klineo.models.strategy_runs import EventPageResponse
from klineo.observability import finish_init, logger, metrics, tracer
from klineo.services.strategies import list_strategy_events

app = build_resolver()


@app.get("/strategies/<strategy_id>/events")
def strategy_events(strategy_id: str, query: Annotated[PageQuery, Query()]) -> EventPageResponse:
    return list_strategy_events(current_user_id(app), strategy_id, query)


@finish_init
@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
