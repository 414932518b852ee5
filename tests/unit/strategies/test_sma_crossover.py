"""SMA crossover on worked numbers: known closes, the averages they give, and the decision."""

from __future__ import annotations

from decimal import Decimal

import pytest
from klineo.strategies import Bar, Signal, parse_parameters
from klineo.strategies.sma_crossover import STRATEGY, SmaCrossoverParams, sma
from pydantic import ValidationError


def test_sma_averages_the_last_n_closes() -> None:
    """GIVEN closes 10, 11, 12, 11, 9 WHEN averaging the last 2 and 3 THEN 10 and 32/3."""
    closes = [Decimal(v) for v in (10, 11, 12, 11, 9)]
    assert sma(closes, 2) == Decimal(10)
    assert sma(closes, 3) == Decimal(32) / Decimal(3)


def test_fast_crossing_below_slow_gives_short_with_worked_averages() -> None:
    """GIVEN closes 10,11,12,11,9, fast 2, slow 3 WHEN deciding THEN SHORT: 10 < 10.667, was 11.5 > 11.33."""
    params = SmaCrossoverParams(fast=2, slow=3)
    decision = STRATEGY.decide(params, Bar.series([10, 11, 12, 11, 9]))
    assert decision.signal is Signal.SHORT
    assert decision.reason == "fast SMA crossed below slow SMA"
    assert decision.indicators == {
        "fast_sma": "10.00000000",
        "slow_sma": "10.66666667",
        "fast_sma_prev": "11.50000000",
        "slow_sma_prev": "11.33333333",
    }


def test_fast_crossing_above_slow_gives_long_with_worked_averages() -> None:
    """GIVEN closes 10, 9, 8, 9, 12, fast 2, slow 3 WHEN deciding THEN LONG: 10.5 > 9.667, was 8.5 < 8.667."""
    decision = STRATEGY.decide(SmaCrossoverParams(fast=2, slow=3), Bar.series([10, 9, 8, 9, 12]))
    assert decision.signal is Signal.LONG
    assert decision.reason == "fast SMA crossed above slow SMA"
    assert decision.indicators["fast_sma"] == "10.50000000"
    assert decision.indicators["slow_sma"] == "9.66666667"
    assert decision.indicators["fast_sma_prev"] == "8.50000000"
    assert decision.indicators["slow_sma_prev"] == "8.66666667"


def test_position_follows_the_regime_after_the_cross() -> None:
    """GIVEN the fast SMA already above the slow one WHEN deciding THEN LONG again (no fresh cross needed)."""
    decision = STRATEGY.decide(SmaCrossoverParams(fast=2, slow=3), Bar.series([10, 9, 8, 9, 12, 13]))
    assert decision.signal is Signal.LONG
    assert decision.reason == "fast SMA above slow SMA"


def test_short_side_becomes_flat_when_shorting_is_off() -> None:
    """GIVEN allow_short=False WHEN fast falls below slow THEN FLAT instead of SHORT."""
    params = SmaCrossoverParams(fast=2, slow=3, allow_short=False)
    assert STRATEGY.decide(params, Bar.series([10, 11, 12, 11, 9])).signal is Signal.FLAT


def test_equal_averages_hold() -> None:
    """GIVEN a flat series WHEN deciding THEN HOLD (no side)."""
    assert STRATEGY.decide(SmaCrossoverParams(fast=2, slow=3), Bar.series([5] * 6)).signal is Signal.HOLD


def test_too_few_candles_hold() -> None:
    """GIVEN fewer than slow + 1 candles WHEN deciding THEN HOLD with the reason."""
    decision = STRATEGY.decide(SmaCrossoverParams(fast=2, slow=3), Bar.series([1, 2, 3]))
    assert decision.signal is Signal.HOLD
    assert "need 4" in decision.reason


def test_lookback_is_slow_plus_one() -> None:
    """GIVEN slow=21 WHEN asking the lookback THEN 22 candles (now and one candle earlier)."""
    assert STRATEGY.lookback(SmaCrossoverParams(fast=9, slow=21)) == 22


@pytest.mark.parametrize(
    ("raw", "field"),
    [({"fast": 5, "slow": 5}, None), ({"fast": 0, "slow": 5}, "fast"), ({"slow": 201}, "slow"),
     ({"fast": 2, "slow": 3, "speed": 1}, "speed")],
)
def test_bad_parameters_are_refused(raw: dict, field: str | None) -> None:
    """GIVEN invalid SMA parameters WHEN parsing THEN a validation error naming the field (if any)."""
    with pytest.raises(ValidationError) as caught:
        parse_parameters("sma_crossover", raw)
    if field is not None:
        assert caught.value.errors()[0]["loc"][0] == field
