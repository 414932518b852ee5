"""RSI threshold: long when Wilder's RSI closes below the oversold level, short (or flat) above overbought.

Between the two levels the strategy holds its position. RSI uses Wilder's smoothing: the first
average gain/loss is the simple mean of the first ``period`` changes, then
``avg = (avg_prev * (period - 1) + change) / period``. Because that smoothing depends on how much
history it sees, the strategy reads a fixed window (``lookback``) so that every run of the same
candle gives the same number, whatever else the runner fetched.
"""

from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import ClassVar

from pydantic import Field, model_validator

from klineo.models.base import field_refusal
from klineo.strategies.base import ClosedCandle, Decision, Signal, StrategyParams, fmt, shared_in_batch

__all__ = ["STRATEGY", "RsiThreshold", "RsiThresholdParams", "rsi", "rsi_series"]

_HUNDRED = Decimal(100)


class RsiThresholdParams(StrategyParams):
    """0 < oversold < overbought < 100; period in candles; allow_short=False turns short into flat."""

    period: int = Field(default=14, ge=2, le=50)
    oversold: Decimal = Field(default=Decimal(30), gt=0, lt=100, max_digits=12, decimal_places=8)
    overbought: Decimal = Field(default=Decimal(70), gt=0, lt=100, max_digits=12, decimal_places=8)
    allow_short: bool = True

    @model_validator(mode="after")
    def _levels_ordered(self) -> "RsiThresholdParams":
        if self.oversold >= self.overbought:  # named by overbought, the later of the two
            raise field_refusal(type(self), "overbought", "oversold must be smaller than overbought")
        return self


def _rsi_value(avg_gain: Decimal, avg_loss: Decimal) -> Decimal:
    if avg_loss == 0:
        return _HUNDRED if avg_gain > 0 else Decimal(50)
    return _HUNDRED - _HUNDRED / (1 + avg_gain / avg_loss)


def _wilder_averages(closes: Sequence[Decimal], period: int) -> Iterator[tuple[Decimal, Decimal]]:
    """(average gain, average loss) after the first ``period`` changes, then after each later one."""
    if period < 1 or len(closes) < period + 1:
        raise ValueError(f"need {period + 1} closes, got {len(closes)}")
    zero = Decimal(0)
    changes = [closes[i] - closes[i - 1] for i in range(1, len(closes))]
    # What max(change, 0) and max(-change, 0) give, without the calls (a zero change kept as itself).
    gains = [change if change >= zero else zero for change in changes]
    losses = [-change if change <= zero else zero for change in changes]
    avg_gain = sum(gains[:period], zero) / period
    avg_loss = sum(losses[:period], zero) / period
    yield avg_gain, avg_loss
    keep = period - 1
    for gain, loss in zip(gains[period:], losses[period:], strict=True):
        avg_gain = (avg_gain * keep + gain) / period
        avg_loss = (avg_loss * keep + loss) / period
        yield avg_gain, avg_loss


def rsi_series(closes: Sequence[Decimal], period: int) -> list[Decimal]:
    """Wilder's RSI for every close from index ``period`` on (``len(closes) - period`` values)."""
    return [_rsi_value(gain, loss) for gain, loss in _wilder_averages(closes, period)]


def rsi(closes: Sequence[Decimal], period: int) -> Decimal:
    """Wilder's RSI of the last close (the smoothing runs over every close; one RSI is computed)."""
    averages = (Decimal(0), Decimal(0))
    for averages in _wilder_averages(closes, period):  # noqa: B007 - the last pair is the one wanted
        pass
    return _rsi_value(*averages)


class RsiThreshold:
    """The RSI threshold strategy type."""

    name: ClassVar[str] = "rsi_threshold"
    params_model: ClassVar[type[StrategyParams]] = RsiThresholdParams

    def lookback(self, params: StrategyParams) -> int:
        """5 x period candles: enough for Wilder's smoothing to settle, fixed so runs repeat exactly."""
        assert isinstance(params, RsiThresholdParams)
        return params.period * 5

    @shared_in_batch
    def decide(self, params: StrategyParams, candles: Sequence[ClosedCandle]) -> Decision:
        """LONG below oversold, SHORT (or FLAT) above overbought, HOLD in between."""
        assert isinstance(params, RsiThresholdParams)
        closes = [candle.close for candle in candles]
        if len(closes) < params.period + 1:
            return Decision(Signal.HOLD, f"need {params.period + 1} closed candles, got {len(closes)}")
        value = rsi(closes, params.period)
        indicators = {"rsi": fmt(value)}
        if value < params.oversold:
            return Decision(Signal.LONG, f"RSI below oversold level {params.oversold}", indicators)
        if value > params.overbought:
            signal = Signal.SHORT if params.allow_short else Signal.FLAT
            return Decision(signal, f"RSI above overbought level {params.overbought}", indicators)
        return Decision(Signal.HOLD, "RSI between the levels", indicators)


STRATEGY = RsiThreshold()
