"""SMA crossover: long while the fast simple moving average is above the slow one, short (or flat) below.

The position follows the side of the most recent crossover ("regime" semantics) rather than
reacting only on the candle where the lines cross. With target-position reconciliation that
means an order is sent only when the side changes (a cross) or on the first run, and a missed
run never leaves the strategy on the wrong side: the next run converges to the right target.
"""

from collections.abc import Sequence
from decimal import Decimal
from typing import ClassVar

from pydantic import Field, model_validator

from klineo.models.base import field_refusal
from klineo.strategies.base import ClosedCandle, Decision, Signal, StrategyParams, fmt, shared_in_batch

__all__ = ["STRATEGY", "SmaCrossover", "SmaCrossoverParams", "sma"]


class SmaCrossoverParams(StrategyParams):
    """fast < slow, both in candles; allow_short=False turns the short side into flat."""

    fast: int = Field(default=9, ge=1, le=200)
    slow: int = Field(default=21, ge=2, le=200)
    allow_short: bool = True

    @model_validator(mode="after")
    def _fast_below_slow(self) -> "SmaCrossoverParams":
        if self.fast >= self.slow:  # named by slow, as an end is named when it is not after its start
            raise field_refusal(type(self), "slow", "fast must be smaller than slow")
        return self


def sma(values: Sequence[Decimal], length: int) -> Decimal:
    """Simple moving average of the last ``length`` values."""
    if length < 1 or len(values) < length:
        raise ValueError(f"need {length} values, got {len(values)}")
    window = values[-length:]
    return sum(window, Decimal(0)) / Decimal(length)


class SmaCrossover:
    """The SMA crossover strategy type."""

    name: ClassVar[str] = "sma_crossover"
    params_model: ClassVar[type[StrategyParams]] = SmaCrossoverParams

    def lookback(self, params: StrategyParams) -> int:
        """slow + 1 candles: the averages now and one candle earlier (to report a fresh cross)."""
        assert isinstance(params, SmaCrossoverParams)
        return params.slow + 1

    @shared_in_batch
    def decide(self, params: StrategyParams, candles: Sequence[ClosedCandle]) -> Decision:
        """LONG if fast > slow; SHORT (or FLAT) if fast < slow; HOLD when equal or too few candles."""
        assert isinstance(params, SmaCrossoverParams)
        closes = [candle.close for candle in candles]
        if len(closes) < params.slow + 1:
            return Decision(Signal.HOLD, f"need {params.slow + 1} closed candles, got {len(closes)}")
        fast_now, slow_now = sma(closes, params.fast), sma(closes, params.slow)
        fast_prev, slow_prev = sma(closes[:-1], params.fast), sma(closes[:-1], params.slow)
        crossed_up = fast_prev <= slow_prev and fast_now > slow_now
        crossed_down = fast_prev >= slow_prev and fast_now < slow_now
        indicators = {
            "fast_sma": fmt(fast_now),
            "slow_sma": fmt(slow_now),
            "fast_sma_prev": fmt(fast_prev),
            "slow_sma_prev": fmt(slow_prev),
        }
        if fast_now > slow_now:
            reason = "fast SMA crossed above slow SMA" if crossed_up else "fast SMA above slow SMA"
            return Decision(Signal.LONG, reason, indicators)
        if fast_now < slow_now:
            reason = "fast SMA crossed below slow SMA" if crossed_down else "fast SMA below slow SMA"
            return Decision(Signal.SHORT if params.allow_short else Signal.FLAT, reason, indicators)
        return Decision(Signal.HOLD, "fast SMA equals slow SMA", indicators)


STRATEGY = SmaCrossover()
