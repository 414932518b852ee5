"""``CandleGroup.short_of``: when a turn must read its candles again for a longer lookback."""

from __future__ import annotations

from decimal import Decimal

import pytest
from klineo.binance import Candle
from klineo.runner.candles import CandleGroup


def _group(count: int, asked: int | None) -> CandleGroup:
    candles = tuple(Candle(i * 60_000, Decimal(1), Decimal(1), Decimal(1), Decimal(1), Decimal(1),
                           i * 60_000 + 59_999) for i in range(count))
    return CandleGroup("production", "BTCUSDT", "1m", candles[-1].close_time, candles, asked=asked)


@pytest.mark.parametrize(("count", "asked", "lookback", "short"), [
    (98, 98, 151, True),     # read for a shorter lookback: read again
    (98, 98, 98, False),     # holds what the type reads
    (40, 150, 151, True),    # a market younger than the read, still asked for fewer: read again
    (40, 151, 151, False),   # asked for enough, the market has no more: no second read
    (40, None, 151, False),  # a sequence given whole (a backtest's): all there is
], ids=["read_for_less", "enough", "young_asked_less", "young_asked_enough", "given_whole"])
def test_a_second_read_only_when_the_read_asked_for_fewer(count, asked, lookback, short) -> None:
    """A group is short of a lookback only when it holds fewer candles AND its read asked for fewer."""
    assert _group(count, asked).short_of(lookback) is short
