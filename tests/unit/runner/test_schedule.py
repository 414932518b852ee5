"""Ticks, due candles, staleness and the client order id of a (strategy, candle)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from klineo.runner.schedule import base36, client_order_id, due_candles, is_superseded, tick_time_ms

BINANCE_CLIENT_ORDER_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")


def ms(text: str) -> int:
    """Epoch ms of an ISO time in UTC."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_tick_is_the_schedule_time_floored_to_the_minute() -> None:
    """GIVEN a Scheduler event for 16:03:00 delivered at 16:03:07 WHEN reading the tick THEN 16:03:00."""
    event = {"time": "2025-02-20T16:03:00Z", "detail": "{}"}
    assert tick_time_ms(event, now_ms=ms("2025-02-20T16:03:07")) == ms("2025-02-20T16:03:00")


def test_tick_falls_back_to_now_without_a_usable_time() -> None:
    """GIVEN no time, a bad time, or a time in the future WHEN reading the tick THEN now's minute."""
    now = ms("2025-02-20T16:03:42")
    for event in (None, {}, {"time": "yesterday"}, {"time": "2025-02-20T17:00:00Z"}):
        assert tick_time_ms(event, now_ms=now) == ms("2025-02-20T16:03:00")


def test_one_minute_candles_are_due_every_tick() -> None:
    """GIVEN a tick at 16:02 (2 minutes past every longer boundary) WHEN listing due candles THEN only 1m."""
    due = due_candles(ms("2025-02-20T16:02:00"))
    assert due == {"1m": ms("2025-02-20T16:02:00") - 1}


def test_three_minute_candles_get_one_catch_up_tick() -> None:
    """GIVEN ticks at 16:03 and 16:04 (3m boundary 16:03) WHEN listing THEN 3m targets 16:02:59.999 twice."""
    boundary = ms("2025-02-20T16:03:00")
    assert due_candles(boundary)["3m"] == boundary - 1
    assert due_candles(boundary + 60_000)["3m"] == boundary - 1


def test_longer_intervals_are_due_on_their_boundary_and_one_catch_up_minute() -> None:
    """GIVEN ticks at 16:00, 16:01 and 16:02 WHEN listing due candles THEN 1h is due at the first two only."""
    boundary = ms("2025-02-20T16:00:00")
    at_boundary = due_candles(boundary)
    assert at_boundary["1h"] == boundary - 1
    assert at_boundary["15m"] == boundary - 1
    assert set(at_boundary) == {"1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "8h"}
    assert due_candles(boundary + 60_000)["1h"] == boundary - 1
    assert "1h" not in due_candles(boundary + 120_000)


def test_daily_candles_are_due_at_midnight_utc() -> None:
    """GIVEN a tick at 00:00 UTC WHEN listing due candles THEN every interval, 1d included, is due."""
    midnight = ms("2025-02-21T00:00:00")
    assert due_candles(midnight)["1d"] == midnight - 1
    assert len(due_candles(midnight)) == 12


def test_a_candle_is_superseded_once_the_next_one_closed() -> None:
    """GIVEN the 1m candle closing at C WHEN asking at C + 60 s and C + 60.001 s THEN fresh, then stale."""
    close = ms("2025-02-20T16:02:59") + 999
    assert not is_superseded(close, "1m", close + 60_000)
    assert is_superseded(close, "1m", close + 60_001)


def test_client_order_id_is_deterministic_and_valid_for_binance() -> None:
    """GIVEN a strategy and a candle WHEN deriving the id twice THEN the same id, matching Binance's rule."""
    first = client_order_id("0123456789abcdef0123456789abcdef", 1_740_067_379_999)
    assert first == client_order_id("0123456789abcdef0123456789abcdef", 1_740_067_379_999)
    assert BINANCE_CLIENT_ORDER_ID.fullmatch(first)
    assert len(first) <= 36
    assert first.endswith("_" + base36(1_740_067_379_999))


def test_client_order_id_differs_per_strategy_and_per_candle() -> None:
    """GIVEN two strategies and two candles WHEN deriving ids THEN four different ids."""
    ids = {client_order_id(s, c) for s in ("a" * 32, "b" * 32) for c in (59_999, 119_999)}
    assert len(ids) == 4


def test_base36_round_trips() -> None:
    """GIVEN numbers WHEN writing them in base 36 THEN int(x, 36) gives them back."""
    for value in (0, 35, 36, 1_740_067_379_999):
        assert int(base36(value), 36) == value
