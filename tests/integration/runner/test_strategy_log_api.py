"""GET /strategies/{id}/events and /runs: the strategy's log and runs, paged by cursor, owner only."""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from klineo.runner.schedule import MINUTE_MS
from klineo.store import aws

from tests.helpers import load_event, response_json, with_user
from tests.integration.api.conftest import at_path

USER = "user-log-0000-4000-8000-00000000000a"
OTHER = "user-log-0000-4000-8000-00000000000b"


def _page(runner, name: str, user: str, strategy_id: str, **query: Any) -> dict[str, Any]:
    """GET /strategies/{id}/<name> with ``query`` through its handler and its events/ file."""
    route = name.removeprefix("strategy_")
    event = at_path(load_event(name), f"/strategies/{strategy_id}/{route}", id=strategy_id)
    event["queryStringParameters"] = {k: str(v) for k, v in query.items()} or None
    event["rawQueryString"] = urlencode(query)
    return runner.invoke(name, with_user(event, user))


def _all_pages(runner, name: str, key: str, strategy_id: str) -> list[dict[str, Any]]:
    """Every item of a listing, following next_cursor two at a time."""
    found, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = _page(runner, name, USER, strategy_id, **query)
        assert response["statusCode"] == 200, response["body"]
        body = response_json(response)
        assert len(body[key]) <= 2
        found.extend(body[key])
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def _paper_strategy_over_two_candles(runner) -> str:
    sid = runner.strategy(USER, runner.connection(USER), mode="paper")
    now = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS + 1000  # second 1, as the scheduler ticks
    runner.run_tick(now - MINUTE_MS)
    runner.run_tick(now)
    return sid


def test_events_page_by_cursor_newest_first_without_gaps_or_repeats(runner) -> None:
    """GIVEN a paper strategy run on two candles WHEN its events are read two at a time THEN every event once,
    newest first, and the signal of each candle before its order."""
    sid = _paper_strategy_over_two_candles(runner)
    events = _all_pages(runner, "strategy_events", "events", sid)
    whole = response_json(_page(runner, "strategy_events", USER, sid, limit=100))["events"]
    assert events == whole and len(events) >= 3
    assert [e["at"] for e in events] == sorted((e["at"] for e in events), reverse=True)
    first_candle = [e["kind"] for e in reversed(events) if e["at"] == events[-1]["at"]]
    assert first_candle == ["signal", "order_submit", "order_fill"]
    fill = next(e for e in reversed(events) if e["kind"] == "order_fill")
    assert fill["details"]["simulated"] is True and float(fill["details"]["fee"]) > 0


def test_runs_page_by_cursor(runner) -> None:
    """GIVEN runs on two candles WHEN read one page of 2 THEN both, newest first, and no next page."""
    sid = _paper_strategy_over_two_candles(runner)
    runs = _all_pages(runner, "strategy_runs", "runs", sid)
    assert len(runs) == 2 and runs[0]["close_time"] - runs[1]["close_time"] == MINUTE_MS


@pytest.fixture
def dynamodb_at_limit():
    """The data table's Query answers with DynamoDB's documented Limit trait, which moto lacks: a
    LastEvaluatedKey whenever the Query stopped at its Limit, also when no item is left."""
    events = aws.dynamodb().meta.events

    def remember_limit(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["limit"] = params.get("Limit")

    def key_at_limit(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        items = parsed.get("Items", [])
        if context.get("limit") and len(items) == context["limit"] and "LastEvaluatedKey" not in parsed:
            parsed["LastEvaluatedKey"] = {"pk": items[-1]["pk"], "sk": items[-1]["sk"]}

    events.register("before-parameter-build.dynamodb.Query", remember_limit)
    events.register("after-call.dynamodb.Query", key_at_limit)
    yield
    events.unregister("before-parameter-build.dynamodb.Query", remember_limit)
    events.unregister("after-call.dynamodb.Query", key_at_limit)


@pytest.mark.parametrize(("name", "key"), [("strategy_runs", "runs"), ("strategy_events", "events")])
def test_a_last_page_of_exactly_limit_items_has_no_next_cursor(runner, dynamodb_at_limit, name, key) -> None:
    """GIVEN runs on two candles and DynamoDB answering at its Limit with a LastEvaluatedKey WHEN the whole
    listing is read as one page of exactly its size THEN next_cursor is null (the models: null on the last
    page), never a cursor to an empty page."""
    sid = _paper_strategy_over_two_candles(runner)
    everything = response_json(_page(runner, name, USER, sid, limit=100))[key]

    body = response_json(_page(runner, name, USER, sid, limit=len(everything)))

    assert body[key] == everything and len(everything) >= 2
    assert body["next_cursor"] is None, body["next_cursor"]


def test_a_cursor_that_is_not_ours_is_a_400_naming_cursor(runner) -> None:
    """GIVEN a made-up or a runs cursor WHEN listing events THEN 400 naming the field cursor, no echo."""
    sid = _paper_strategy_over_two_candles(runner)
    runs_cursor = response_json(_page(runner, "strategy_runs", USER, sid, limit=1))["next_cursor"]
    for cursor in ("bm90LWEtY3Vyc29y", runs_cursor):
        response = _page(runner, "strategy_events", USER, sid, cursor=cursor)
        assert response["statusCode"] == 400
        body = response_json(response)
        assert body["error"]["field"] == "cursor" and cursor not in response["body"]


def _cursor_of(sort_key: str) -> str:
    """A cursor in the listings' own encoding (base64url of {"sk": ...}) naming ``sort_key``."""
    return base64.urlsafe_b64encode(json.dumps({"sk": sort_key}).encode()).decode().rstrip("=")


@pytest.mark.parametrize(("name", "sort_key"), [
    ("strategy_events", "EVT#"), ("strategy_events", "EVT#zzz"), ("strategy_events", "EVT#1#2#signal#"),
    ("strategy_runs", "RUN#"), ("strategy_runs", "RUN#abc"), ("strategy_runs", "RUN#1700000000000#x"),
])
def test_a_tampered_cursor_in_the_listings_own_encoding_is_a_400_naming_it(runner, name, sort_key) -> None:
    """GIVEN a cursor encoded as the listing encodes its own but naming a key no run or event has (its prefix
    right, the rest made up) WHEN listing THEN 400 naming cursor, its value not echoed (before: 200, a page
    read from wherever that key sorts: every item, or none, with a null next_cursor)."""
    sid = _paper_strategy_over_two_candles(runner)
    cursor = _cursor_of(sort_key)

    response = _page(runner, name, USER, sid, cursor=cursor)

    assert response["statusCode"] == 400, response["body"][:300]
    assert response_json(response)["error"]["field"] == "cursor" and cursor not in response["body"]


def test_another_users_strategy_log_is_404(runner) -> None:
    """GIVEN Alice's strategy WHEN Bob reads its events or runs THEN 404 for both."""
    sid = runner.strategy(USER, runner.connection(USER), mode="paper")
    for name in ("strategy_events", "strategy_runs"):
        assert _page(runner, name, OTHER, sid)["statusCode"] == 404


def test_a_limit_out_of_range_is_a_422_naming_limit(runner) -> None:
    """GIVEN limit=0 or 101 WHEN listing THEN 422 (a validation error) naming limit."""
    sid = runner.strategy(USER, runner.connection(USER), mode="paper")
    for limit in (0, 101):
        response = _page(runner, "strategy_events", USER, sid, limit=limit)
        assert response["statusCode"] == 422 and "limit" in response["body"]
