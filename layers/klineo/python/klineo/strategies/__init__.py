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
    "NO_SIDE_LEFT",
    "REGISTRY",
    "Bar",
    "ClosedCandle",
    "Decision",
    "Signal",
    "StrategyParams",
    "StrategyType",
    "get_strategy_type",
    "leaves_no_side",
    "parse_parameters",
]

REGISTRY: Mapping[str, StrategyType] = MappingProxyType({
    sma_crossover.STRATEGY.name: sma_crossover.STRATEGY,
    rsi_threshold.STRATEGY.name: rsi_threshold.STRATEGY,
})


# A strategy that could never trade: direction short turns its long signals flat, and a type's allow_short
# false its short ones. Refused where a body sends both (``klineo.models.strategy_requests``), by a PATCH that
# sends one of them onto a strategy holding the other (``klineo.services.strategy_updates``), and a strategy
# stored so before those checks is paused by the runner (``klineo.runner.execution``).
NO_SIDE_LEFT = ("direction short with parameters.allow_short false leaves no side to trade (every signal "
                "would be flat): send direction both or long, or allow_short true")


def leaves_no_side(direction: str | None, parameters: Mapping[str, Any] | None) -> bool:
    """Whether ``direction`` and the type's ``parameters`` leave the strategy no side to trade."""
    return direction == "short" and parameters is not None and parameters.get("allow_short") is False


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
