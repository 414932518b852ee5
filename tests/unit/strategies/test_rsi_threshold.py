"""RSI threshold on worked numbers: Wilder's RSI by hand (period 3), and the decision it leads to.

Closes 10, 11, 12, 11, 13, 12, 9 give changes +1, +1, -1, +2, -1, -3.
- first averages (first 3 changes): gain 2/3, loss 1/3 -> RS 2 -> RSI 66.6667
- +2: gain (2/3*2 + 2)/3 = 10/9, loss (1/3*2)/3 = 2/9 -> RS 5 -> RSI 83.3333
- -1: gain 20/27, loss 13/27 -> RS 20/13 -> RSI 60.6061
- -3: gain 40/81, loss 107/81 -> RS 40/107 -> RSI 100 - 10700/147 = 27.2109
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from klineo.strategies import Bar, Signal, parse_parameters
from klineo.strategies.rsi_threshold import STRATEGY, RsiThresholdParams, rsi_series
from pydantic import ValidationError

CLOSES = [10, 11, 12, 11, 13, 12, 9]


def test_wilder_rsi_matches_the_hand_computation() -> None:
    """GIVEN the worked closes and period 3 WHEN computing RSI THEN 66.6667, 83.3333, 60.6061, 27.2109."""
    values = rsi_series([Decimal(v) for v in CLOSES], 3)
    assert [round(v, 4) for v in values] == [
        Decimal("66.6667"), Decimal("83.3333"), Decimal("60.6061"), Decimal("27.2109"),
    ]
    assert round(values[-1], 20) == round(Decimal(100) - Decimal(10700) / Decimal(147), 20)


def test_rsi_below_oversold_gives_long() -> None:
    """GIVEN RSI 27.2109 < 30 WHEN deciding THEN LONG with the RSI recorded."""
    decision = STRATEGY.decide(RsiThresholdParams(period=3), Bar.series(CLOSES))
    assert decision.signal is Signal.LONG
    assert decision.indicators == {"rsi": "27.21088435"}


def test_rsi_above_overbought_gives_short() -> None:
    """GIVEN the series cut after 13 (RSI 83.3333 > 70) WHEN deciding THEN SHORT."""
    decision = STRATEGY.decide(RsiThresholdParams(period=3), Bar.series(CLOSES[:5]))
    assert decision.signal is Signal.SHORT
    assert decision.indicators == {"rsi": "83.33333333"}


def test_rsi_above_overbought_gives_flat_when_shorting_is_off() -> None:
    """GIVEN allow_short=False and RSI 83.3333 WHEN deciding THEN FLAT."""
    params = RsiThresholdParams(period=3, allow_short=False)
    assert STRATEGY.decide(params, Bar.series(CLOSES[:5])).signal is Signal.FLAT


def test_rsi_between_levels_holds() -> None:
    """GIVEN RSI 60.6061 between 30 and 70 WHEN deciding THEN HOLD."""
    decision = STRATEGY.decide(RsiThresholdParams(period=3), Bar.series(CLOSES[:6]))
    assert decision.signal is Signal.HOLD
    assert decision.indicators == {"rsi": "60.60606061"}


def test_only_gains_give_rsi_100_and_no_change_gives_50() -> None:
    """GIVEN a rising series, then a flat one WHEN computing RSI THEN 100, then 50."""
    assert rsi_series([Decimal(v) for v in (1, 2, 3, 4)], 3) == [Decimal(100)]
    assert rsi_series([Decimal(7)] * 4, 3) == [Decimal(50)]


def test_lookback_is_five_periods() -> None:
    """GIVEN period 14 WHEN asking the lookback THEN 70 candles (a fixed window, so runs repeat exactly)."""
    assert STRATEGY.lookback(RsiThresholdParams()) == 70


@pytest.mark.parametrize(
    ("raw", "field"),
    [({"oversold": 70, "overbought": 30}, None), ({"period": 1}, "period"),
     ({"overbought": 100}, "overbought"), ({"threshold": 5}, "threshold")],
)
def test_bad_parameters_are_refused(raw: dict, field: str | None) -> None:
    """GIVEN invalid RSI parameters WHEN parsing THEN a validation error naming the field (if any)."""
    with pytest.raises(ValidationError) as caught:
        parse_parameters("rsi_threshold", raw)
    if field is not None:
        assert caught.value.errors()[0]["loc"][0] == field
