"""Pure strategy types over closed candles, and the registry the API and the runner share.

Adding a type is one module (a params model, ``lookback`` and ``decide``; see ``base.StrategyType``)
and one entry in ``REGISTRY`` below.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
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
    """Validated parameters of a type, defaults filled in (KeyError or pydantic ValidationError).

    The runner parses the same few parameter sets for thousands of strategies every minute: a set
    of plain values is validated once and its (frozen, immutable) model shared afterwards.
    """
    values = dict(raw or {})
    try:
        key = tuple(sorted((name, type(value), value) for name, value in values.items()))
        hash(key)
    except TypeError:  # a list or map among the values: validated every time
        return _validate(type_name, values)
    return _parse_cached(type_name, key)


def _validate(type_name: str, values: dict[str, Any]) -> StrategyParams:
    return get_strategy_type(type_name).params_model.model_validate(values)


@lru_cache(maxsize=1024)
def _parse_cached(type_name: str, key: tuple[tuple[str, type, Any], ...]) -> StrategyParams:
    return _validate(type_name, {name: value for name, _, value in key})
