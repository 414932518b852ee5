"""The strategy event log on moto: appended once per candle and kind, newest first, cursors of its own."""

from __future__ import annotations

import time
from dataclasses import replace

import boto3
from klineo.store.events import (
    EVENT_KEY,
    StrategyEvent,
    append_event,
    decode_cursor,
    encode_cursor,
    list_events,
)

C = 1_740_067_379_999  # a 1m candle close time


def event(kind: str, close_time: int | None = C, **details) -> StrategyEvent:
    """An event of strategy s1 by user u."""
    at = close_time or int(time.time() * 1000)
    return StrategyEvent("s" * 32, "u", kind, at, details, close_time=close_time)


def test_an_event_of_a_candle_is_appended_once(aws) -> None:
    """GIVEN the same candle's signal appended twice (a redelivery) THEN one event; the second says so."""
    assert append_event(event("signal", signal="long")) is True
    assert append_event(event("signal", signal="long")) is False
    assert [e.kind for e in list_events("s" * 32, 10).events] == ["signal"]


def test_events_of_a_candle_list_in_the_order_they_happen_newest_candle_first(aws) -> None:
    """GIVEN a fill, a signal and an older candle's signal THEN newest candle first, fill before signal."""
    for item in (event("order_fill"), event("signal"), event("signal", C - 60_000)):
        append_event(item)
    listed = [(e.at_ms, e.kind) for e in list_events("s" * 32, 10).events]
    assert listed == [(C, "order_fill"), (C, "signal"), (C - 60_000, "signal")]


def test_events_without_a_candle_are_each_kept(aws) -> None:
    """GIVEN two user pauses at once THEN two events (a random tag keeps them apart)."""
    now = int(time.time() * 1000)
    for _ in range(2):
        append_event(StrategyEvent("s" * 32, "u", "paused", now, {"by": "user"}))
    assert [e.kind for e in list_events("s" * 32, 10).events] == ["paused", "paused"]


def test_events_expire_after_the_retention(aws) -> None:
    """GIVEN an event THEN its ttl is EVENT_RETENTION_DAYS (90) from now."""
    append_event(event("signal"))
    items = boto3.client("dynamodb").scan(TableName=aws.refs["DataTable"])["Items"]
    ttl = int(next(i for i in items if i["sk"]["S"].startswith("EVT#"))["ttl"]["N"])
    assert abs(ttl - (time.time() + 90 * 86_400)) < 60


def test_a_cursor_names_only_keys_of_its_own_listing() -> None:
    """A cursor round-trips its sort key; a runs key, a key of the right prefix but not an event's shape,
    garbage, a huge value or a key no listing writes (a lone surrogate, a control character) is not an events
    cursor."""
    key = "EVT#1700000000000#02#signal#"
    cursor = encode_cursor({"pk": {"S": "STRAT#x"}, "sk": {"S": key}})
    assert decode_cursor(cursor, EVENT_KEY) == key
    assert decode_cursor(encode_cursor({"sk": {"S": key + "#02"}}), EVENT_KEY) == key + "#02"
    for other in ("RUN#1", "EVT#0001#02#signal#", "EVT#1700000000000#02#no_such_kind#", "EVT#"):
        assert decode_cursor(encode_cursor({"sk": {"S": other}}), EVENT_KEY) is None
    huge = encode_cursor({"sk": {"S": key + "9" * 300}})
    assert decode_cursor("!!!", EVENT_KEY) is None and decode_cursor(huge, EVENT_KEY) is None
    for odd in (key + "\ud800", key + "1\n2"):
        assert decode_cursor(encode_cursor({"sk": {"S": odd}}), EVENT_KEY) is None


def test_a_second_event_of_one_kind_is_keyed_apart_and_the_first_keeps_its_key(aws) -> None:
    """GIVEN two errors of one candle, the second numbered (seq 2) THEN the first's key is the one it always
    had, the second's ends ``#02``; both are kept, read back with their keys, and pages walk each once."""
    first, second = event("error", what="a"), replace(event("error", what="b"), seq=2)
    assert first.sort_key == f"EVT#{C:013d}#07#error#" and second.sort_key == first.sort_key + "#02"
    assert append_event(first) and append_event(second) and not append_event(second)
    listed = list_events("s" * 32, 10).events
    assert [(e.details["what"], e.sort_key) for e in listed] == [
        ("b", second.sort_key), ("a", first.sort_key)]
    page = list_events("s" * 32, 1)
    rest = list_events("s" * 32, 1, page.next_cursor)
    assert [e.details["what"] for e in page.events + rest.events] == ["b", "a"] and rest.next_cursor is None
