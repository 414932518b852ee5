"""Every function of template.yaml, run by ``sam local invoke`` in a Lambda container with its
``events/`` file against the local stack, answers what the in-process path answers for that event."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from local.sam_local.demo_data import EVENT_CONNECTION, EVENT_OTHER_CONNECTION, EVENT_STRATEGY
from local.template import FunctionSpec, function_specs
from tests.sam_local.conftest import ContainerRun, event_file

pytestmark = pytest.mark.sam_local

SPECS = function_specs()
# What differs between two runs of the same event on the same data: clock readings (ISO text or
# epoch milliseconds) and the measured offset to the simulator's clock.
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")
_EPOCH_MS = range(1_500_000_000_000, 2_500_000_000_000)
_CLOCK_KEYS = {"server_time_offset_ms"}
# Functions whose answer evaluates the latest closed candle: the container and this process may run
# a minute apart, on different candles, so prices, indicators and even the signal can differ. Their
# answers are compared by status and shape (the body's keys and its objects' keys), not by values.
_LATEST_CANDLE = {"StrategyRunFunction"}
# Fresh random ids (a created connection's or strategy's); the seeded ones stay compared.
_FRESH_ID = re.compile(r"^[0-9a-f]{32}$")
_SEEDED_IDS = {EVENT_CONNECTION, EVENT_OTHER_CONNECTION, EVENT_STRATEGY}


def comparable(value: Any) -> Any:
    """The answer with clock readings blanked and JSON bodies parsed."""
    if isinstance(value, dict):
        if isinstance(value.get("candles"), list):  # the last candle is still open: it moves with the clock
            value = {**value, "candles": value["candles"][:-1]}
        return {key: "<clock>" if key in _CLOCK_KEYS else comparable(item) for key, item in value.items()}
    if isinstance(value, int) and not isinstance(value, bool) and value in _EPOCH_MS:
        return "<time>"
    if isinstance(value, list):
        return [comparable(item) for item in value]
    if isinstance(value, str):
        if _TIMESTAMP.match(value):
            return "<time>"
        if _FRESH_ID.match(value) and value not in _SEEDED_IDS:
            return "<new id>"
        if value[:1] in "{[":
            try:
                return comparable(json.loads(value))
            except ValueError:
                return value
    return value


@pytest.mark.parametrize("spec", SPECS, ids=[spec.logical_id for spec in SPECS])
def test_function_in_a_lambda_container_answers_as_in_process(
    spec: FunctionSpec,
    container_runs: dict[str, ContainerRun],
    in_process: Callable[[str, Any], Any],
) -> None:
    """sam local invoke -e events/<name>.json gives the in-process path's answer on the same seeded data."""
    # GIVEN the function's canonical event, run through sam local invoke on freshly seeded emulators
    assert event_file(spec).is_file(), f"{spec.logical_id} has no events/{spec.package}.json"
    run = container_runs[spec.logical_id]
    assert not run.error, run.error
    # WHEN the same event runs in this process on the same seeded data
    here = in_process(spec.logical_id, json.loads(event_file(spec).read_text(encoding="utf-8")))
    # THEN both answers are the same (by shape for an answer on the latest closed candle)
    compare = shape if spec.logical_id in _LATEST_CANDLE else comparable
    assert compare(run.answer) == compare(here), run.logs


def shape(value: Any) -> Any:
    """The status code and the keys of the body and of each object in it (market values left out)."""
    value = comparable(value)
    body = value.get("body") if isinstance(value, dict) else None
    if not isinstance(body, dict):
        return value.get("statusCode") if isinstance(value, dict) else value, body
    nested = {key: sorted(item) for key, item in body.items() if isinstance(item, dict)}
    return value.get("statusCode"), sorted(body), nested


def test_comparison_tells_different_answers_apart() -> None:
    """Only clock readings are blanked: a different status or body still compares unequal."""
    # GIVEN two answers that differ in a value and two that differ only in a timestamp
    first = {"statusCode": 200, "body": '{"id": "a", "at": "2026-01-01T00:00:00Z"}'}
    other_value = {"statusCode": 200, "body": '{"id": "b", "at": "2026-01-01T00:00:00Z"}'}
    other_time = {"statusCode": 200, "body": '{"id": "a", "at": "2026-02-02T10:11:12.5+00:00"}'}
    in_ms = {"statusCode": 200, "body": '{"id": "a", "at": 1796004186295, "qty": 5}'}
    # WHEN / THEN
    assert comparable(first) != comparable(other_value)
    assert comparable(first) != comparable({**first, "statusCode": 404})
    assert comparable(first) == comparable(other_time)
    fresh_id = "a60ac7a4d349491fbab2e7123d7cdbd2"
    created = {"body": json.dumps({"id": fresh_id, "connection_id": EVENT_CONNECTION})}
    assert comparable(created) == comparable({"body": created["body"].replace("a60ac7a4", "091cd5c4")})
    assert comparable(created) != comparable({"body": created["body"].replace(EVENT_CONNECTION, "f" * 32)})
    assert comparable(in_ms) == comparable({**in_ms, "body": in_ms["body"].replace("6295", "7000")})
    assert comparable(in_ms) != comparable({**in_ms, "body": in_ms["body"].replace('"qty": 5', '"qty": 6')})


def test_shape_comparison_ignores_market_values_but_not_status_or_keys() -> None:
    """An answer on another candle compares equal by shape; another status or a missing key does not."""
    first = {"statusCode": 200, "body": '{"outcome": "simulated", "run": {"indicators": {"fast_sma": "1"}}}'}
    later = {"statusCode": 200, "body": '{"outcome": "no_change", "run": {"indicators": {"fast_sma": "2"}}}'}
    assert shape(first) == shape(later)
    assert shape(first) != shape({**first, "statusCode": 409})
    assert shape(first) != shape({"statusCode": 200, "body": '{"outcome": "simulated", "run": {}}'})
