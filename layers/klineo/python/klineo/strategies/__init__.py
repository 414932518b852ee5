"""Pure strategy types over closed candles, and the registry the API and the runner share.

Adding a type is one module (a params model, ``lookback`` and ``decide``; see ``base.StrategyType``)
and one entry in ``REGISTRY`` below.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from klineo.strategies import rsi_threshold, sma_crossover
from klineo.strategies.base import (
    INTERVALS_MS,
    Bar,
    ClosedCandle,
    Decision,
    Signal,
    StrategyParams,
    StrategyType,
)

__all__ = [
    "INTERVALS_MS",
    "REGISTRY",
    "Bar",
    "ClosedCandle",
    "Decision",
    "Signal",
    "StrategyParams",
    "StrategyType",
    "get_strategy_type",
    "parse_parameters",
]

REGISTRY: Mapping[str, StrategyType] = MappingProxyType({
    sma_crossover.STRATEGY.name: sma_crossover.STRATEGY,
    rsi_threshold.STRATEGY.name: rsi_threshold.STRATEGY,
})


def get_strategy_type(name: str) -> StrategyType:
    """The registered type called ``name``; KeyError when there is none."""
    return REGISTRY[name]


def parse_parameters(type_name: str, raw: Mapping[str, Any] | None) -> StrategyParams:
    """Validated parameters of a type, defaults filled in (KeyError or pydantic ValidationError)."""
    return get_strategy_type(type_name).params_model.model_validate(dict(raw or {}))
