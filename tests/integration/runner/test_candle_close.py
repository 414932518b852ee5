"""When the runner takes a candle for closed: Binance's clock decides, never ours alone.

``klineo.runner.candles`` takes the target candle for closed when Binance shows the candle after it, or,
for a market with no trade yet, once the grace after its close has passed. That grace is counted on
Binance's clock: a container whose clock runs ahead of Binance's must not read a candle Binance has
not closed yet as a final one.
"""

from __future__ import annotations

import time

import pytest
from klineo.errors import ErrorCategory, KlineoError
from klineo.runner.candles import CLOSE_GRACE_MS, closed_candles
from klineo.runner.schedule import MINUTE_MS


def test_a_candle_still_open_on_binances_clock_is_not_taken_for_closed(sim_env) -> None:
    """GIVEN our clock past a 1m candle's close and its grace but Binance's clock 3 s before that close
    WHEN the runner reads the candle THEN it is not closed yet (retryable), never the open candle."""
    now_ms = int(time.time() * 1000)
    close = (now_ms - CLOSE_GRACE_MS) // MINUTE_MS * MINUTE_MS - 1  # our clock: the grace has passed
    sim_env.set_clock_skew_ms(close - 3_000 - now_ms)  # Binance's clock: 3 s before that close

    with pytest.raises(KlineoError) as refused:
        closed_candles("production", "BTCUSDT", "1m", close, 2, sleep=lambda _seconds: None)

    assert refused.value.category is ErrorCategory.UPSTREAM_UNAVAILABLE and refused.value.retryable
