"""Each of the runner's ten functions invoked with its own file from events/, unchanged."""

from __future__ import annotations

import json

import pytest
from klineo.store import strategies as strategy_store

from tests.helpers import load_event, response_json

EVENT_USER = "5f3c2a1e-7b9d-4c8e-a6f0-123456789abc"  # the JWT sub in the events
EVENT_CONNECTION = "fedcba9876543210fedcba9876543210"
EVENT_STRATEGY = "0123456789abcdef0123456789abcdef"
EVENT_CREATED_AT = "2026-01-01T00:00:00+00:00"  # the strategy's snapshot in events/strategy_worker.json


@pytest.fixture
def event_strategy(runner) -> str:
    """The connection and the 15m paper strategy the event files name, stored for the events' user."""
    runner.connection(EVENT_USER, connection_id=EVENT_CONNECTION)
    return runner.strategy(EVENT_USER, EVENT_CONNECTION, strategy_id=EVENT_STRATEGY, interval="15m",
                           mode="paper", parameters={"fast": 9, "slow": 21}, created_at=EVENT_CREATED_AT)


def test_strategy_create_event(runner, event_strategy) -> None:
    """GIVEN events/strategy_create.json (base64 body) WHEN invoked THEN 201 and the strategy it describes."""
    response = runner.invoke("strategy_create", load_event("strategy_create"))
    assert response["statusCode"] == 201, response["body"]
    body = response_json(response)
    expected = ("BTCUSDT", "15m", "sma_crossover", "paper")
    assert (body["symbol"], body["interval"], body["type"], body["mode"]) == expected


def test_strategy_list_event(runner, event_strategy) -> None:
    """GIVEN events/strategy_list.json WHEN invoked THEN 200 with the user's strategy."""
    response = runner.invoke("strategy_list", load_event("strategy_list"))
    assert response["statusCode"] == 200
    assert [s["id"] for s in response_json(response)["strategies"]] == [EVENT_STRATEGY]


def test_strategy_get_event(runner, event_strategy) -> None:
    """GIVEN events/strategy_get.json WHEN invoked THEN 200 with the strategy and its (empty) runs."""
    response = runner.invoke("strategy_get", load_event("strategy_get"))
    assert response["statusCode"] == 200
    assert response_json(response)["id"] == EVENT_STRATEGY and response_json(response)["runs"] == []


@pytest.mark.parametrize(("name", "key"), [("strategy_events", "events"), ("strategy_runs", "runs")])
def test_strategy_log_events(runner, event_strategy, name, key) -> None:
    """GIVEN events/strategy_events.json or strategy_runs.json WHEN invoked THEN 200, an empty first page."""
    response = runner.invoke(name, load_event(name))
    assert response["statusCode"] == 200, response["body"]
    assert response_json(response) == {key: [], "next_cursor": None}


def test_strategy_run_event(runner, event_strategy) -> None:
    """GIVEN events/strategy_run.json WHEN invoked THEN 200, the run of its latest 15m candle."""
    response = runner.invoke("strategy_run", load_event("strategy_run"))
    assert response["statusCode"] == 200, response["body"]
    body = response_json(response)
    assert body["close_time"] % 900_000 == 899_999 and body["run"]["mode"] == "paper"
    assert runner.journal("POST") == []


def test_strategy_update_event(runner, event_strategy) -> None:
    """GIVEN events/strategy_update.json (pause) WHEN invoked THEN 200 and the strategy is paused."""
    response = runner.invoke("strategy_update", load_event("strategy_update"))
    assert response["statusCode"] == 200, response["body"]
    assert strategy_store.get_strategy(EVENT_USER, EVENT_STRATEGY).status == "paused"


def test_strategy_delete_event(runner, event_strategy) -> None:
    """GIVEN events/strategy_delete.json WHEN invoked THEN 204 and the strategy is gone."""
    response = runner.invoke("strategy_delete", load_event("strategy_delete"))
    assert response["statusCode"] == 204
    assert strategy_store.get_strategy(EVENT_USER, EVENT_STRATEGY) is None


def test_dispatcher_event_queues_exactly_the_worker_events_message(runner, event_strategy) -> None:
    """GIVEN events/strategy_dispatcher.json (00:15 UTC tick) WHEN invoked THEN it queues the message that
    events/strategy_worker.json carries."""
    summary = runner.invoke("strategy_dispatcher", load_event("strategy_dispatcher"))
    assert summary["strategies"] == 1 and summary["due"]["15m"] == 1767226499999
    bodies = [json.loads(m["Body"]) for m in runner.receive()]
    expected = json.loads(load_event("strategy_worker")["Records"][0]["body"])
    assert bodies == [expected]


def test_worker_event_runs_its_strategy(runner, event_strategy) -> None:
    """GIVEN events/strategy_worker.json (a January candle, long superseded) WHEN invoked THEN no failure, a
    stale_candle run and nothing at the exchange."""
    response = runner.invoke("strategy_worker", load_event("strategy_worker"))
    assert response == {"batchItemFailures": []}
    run = runner.runs(EVENT_STRATEGY)[0]
    assert (run.close_time, run.skip_reason) == (1767226499999, "stale_candle")
    assert runner.journal("POST") == []
