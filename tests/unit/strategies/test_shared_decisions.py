"""Decisions shared inside a runner batch: one computation per (type, parameters, candle objects)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from klineo.strategies import Bar, Decision, Signal
from klineo.strategies.base import SHARED_DECISIONS, ClosedCandle, StrategyParams, shared_in_batch
from klineo.strategies.rsi_threshold import STRATEGY as RSI
from klineo.strategies.rsi_threshold import RsiThresholdParams
from klineo.strategies.sma_crossover import STRATEGY as SMA
from klineo.strategies.sma_crossover import SmaCrossoverParams


class _Counting:
    """A strategy type that counts how often it really decides (long when the last close rose)."""

    name: ClassVar[str] = "counting"

    def __init__(self) -> None:
        self.computed = 0

    @shared_in_batch
    def decide(self, params: StrategyParams, candles: Sequence[ClosedCandle]) -> Decision:
        self.computed += 1
        rose = candles[-1].close > candles[0].close
        return Decision(Signal.LONG if rose else Signal.SHORT, "counted", {"n": str(self.computed)})


def test_equal_inputs_are_decided_once_inside_a_batch() -> None:
    """GIVEN one batch WHEN ten strategies with the same parameters decide on the same candles THEN one
    computation, and every strategy gets the same decision."""
    counting, candles, params = _Counting(), tuple(Bar.series([1, 2, 3])), SmaCrossoverParams(fast=2, slow=3)
    with SHARED_DECISIONS.batch():
        decisions = [counting.decide(params, candles[-2:]) for _ in range(10)]
    assert counting.computed == 1
    assert {(d.signal, d.reason, d.indicators["n"]) for d in decisions} == {(Signal.LONG, "counted", "1")}


def test_other_parameters_or_other_candles_are_decided_again() -> None:
    """GIVEN one batch WHEN the parameters differ, or equal closes come as other candle objects THEN each
    is computed on its own."""
    counting, candles = _Counting(), tuple(Bar.series([1, 2, 3]))
    with SHARED_DECISIONS.batch():
        counting.decide(SmaCrossoverParams(fast=2, slow=3), candles)
        counting.decide(SmaCrossoverParams(fast=1, slow=3), candles)
        counting.decide(SmaCrossoverParams(fast=2, slow=3), tuple(Bar.series([1, 2, 3])))
    assert counting.computed == 3


def test_outside_a_batch_nothing_is_kept() -> None:
    """GIVEN no batch open (a backtest, the API) WHEN deciding twice on the same inputs THEN two computations;
    and entries of a finished batch are gone."""
    counting, candles, params = _Counting(), tuple(Bar.series([1, 2])), SmaCrossoverParams(fast=2, slow=3)
    with SHARED_DECISIONS.batch():
        counting.decide(params, candles)
    counting.decide(params, candles)
    counting.decide(params, candles)
    assert counting.computed == 3


def test_a_shared_decision_is_a_copy_each_strategy_may_keep() -> None:
    """GIVEN a shared decision WHEN one strategy changes its indicators THEN the next one's are untouched."""
    counting, candles, params = _Counting(), tuple(Bar.series([3, 2])), SmaCrossoverParams(fast=2, slow=3)
    with SHARED_DECISIONS.batch():
        first = counting.decide(params, candles)
        first.indicators["n"] = "changed"
        assert counting.decide(params, candles).indicators == {"n": "1"}


def test_the_real_types_decide_the_same_inside_and_outside_a_batch() -> None:
    """GIVEN the SMA and RSI types WHEN deciding in a batch (twice) and outside THEN the same decisions."""
    candles = tuple(Bar.series([10, 11, 12, 11, 13, 12, 9, 10, 12, 15, 14, 13, 12, 11, 12, 13, 16]))
    cases = [(SMA, SmaCrossoverParams(fast=2, slow=5)), (RSI, RsiThresholdParams(period=3))]
    outside = [strategy_type.decide(params, candles) for strategy_type, params in cases]
    with SHARED_DECISIONS.batch():
        inside = [strategy_type.decide(params, candles) for strategy_type, params in cases for _ in range(2)]
    assert inside == [outside[0], outside[0], outside[1], outside[1]]
