"""What every strategy type shares: closed-candle input, decisions, parameters and the type protocol.

Strategies are pure: they read a sequence of CLOSED candles (oldest first) and return a
``Decision``. They never fetch data, read the clock or touch AWS; the runner does all of that.
"""

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from functools import wraps
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

__all__ = [
    "INTERVALS_MS",
    "SHARED_DECISIONS",
    "Bar",
    "ClosedCandle",
    "Decision",
    "Signal",
    "StrategyParams",
    "StrategyType",
    "fmt",
    "shared_in_batch",
]

_INDICATOR_PLACES = Decimal("0.00000001")

# The kline intervals strategies run on, in ms. Every one divides the epoch evenly, so a candle of
# interval I closes at k*I - 1 ms and the runner can tell from the clock which candles just closed.
# Left out: 1s (too fast for a per-minute schedule), 1w (Binance weeks open on Monday, not on the
# epoch's Thursday), 1M (calendar months) and 3d (its alignment to the epoch is not verified in
# binance-facts.md, so the runner does not rely on it).
INTERVALS_MS: dict[str, int] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
}


class Signal(StrEnum):
    """The position a strategy wants: the runner turns it into a target and reconciles."""

    LONG = "long"  # target position = +size
    SHORT = "short"  # target position = -size
    FLAT = "flat"  # target position = 0
    HOLD = "hold"  # keep whatever position the strategy holds now


@runtime_checkable
class ClosedCandle(Protocol):
    """The fields a strategy may read from one closed kline (``klineo.binance`` candles fit)."""

    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    close_time: int


@dataclass(frozen=True)
class Bar:
    """A plain closed candle, for tests and for callers that have only numbers."""

    close: Decimal
    close_time: int
    open: Decimal = Decimal(0)
    high: Decimal = Decimal(0)
    low: Decimal = Decimal(0)
    volume: Decimal = Decimal(0)

    @classmethod
    def series(cls, closes: Sequence[str | int | Decimal], *, interval_ms: int = 60_000) -> list["Bar"]:
        """Bars with the given closes (oldest first), one interval apart."""
        return [
            cls(close=Decimal(str(value)), close_time=(index + 1) * interval_ms - 1)
            for index, value in enumerate(closes)
        ]


@dataclass(frozen=True)
class Decision:
    """A strategy's verdict on the newest closed candle, with the numbers that led to it."""

    signal: Signal
    reason: str
    indicators: dict[str, str] = field(default_factory=dict)


class StrategyParams(BaseModel):
    """Base of every type's parameter model: unknown fields are refused, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StrategyType(Protocol):
    """One strategy type: a name, a parameter model, how many closed candles it reads, a decision."""

    name: ClassVar[str]
    params_model: ClassVar[type[StrategyParams]]

    def lookback(self, params: StrategyParams) -> int:
        """How many of the newest closed candles ``decide`` reads (the runner passes exactly these)."""
        ...

    def decide(self, params: StrategyParams, candles: Sequence[ClosedCandle]) -> Decision:
        """The decision on the newest candle of ``candles`` (closed candles, oldest first)."""
        ...


class _SharedDecisions:
    """Decisions shared, while a runner batch is open, by strategies of one type, parameters and candles.

    A worker batch runs hundreds of strategies over a handful of markets, and many use the same
    parameters: ``decide`` is pure, so one (type, parameters, candles) needs deciding once. Candles
    are told apart by identity (the batch's candle objects are shared by its strategies); each
    entry keeps its candles alive, so an id in a key can never belong to another object while the
    entry exists. Outside a batch (backtests, the API) nothing is kept and nothing is looked up.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = 0
        self._entries: dict[tuple[Any, ...], tuple[Sequence[ClosedCandle], Decision]] = {}

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Share decisions inside the block (batches may overlap; entries go when the last one ends)."""
        with self._lock:
            self._open += 1
        try:
            yield
        finally:
            with self._lock:
                self._open -= 1
                if not self._open:
                    self._entries.clear()

    def decide(self, name: str, params: StrategyParams, candles: Sequence[ClosedCandle],
               compute: Callable[[], Decision]) -> Decision:
        """The decision for these inputs: computed once per batch, a copy of it afterwards."""
        if not self._open:
            return compute()
        key = (name, params, tuple(map(id, candles)))
        try:
            hash(key)
        except TypeError:  # parameters that cannot be a key (a list among them): decided every time
            return compute()
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            entry = (candles, compute())
            with self._lock:
                self._entries[key] = entry
        decision = entry[1]
        return Decision(decision.signal, decision.reason, dict(decision.indicators))


SHARED_DECISIONS = _SharedDecisions()

_Decide = Callable[[Any, StrategyParams, Sequence[ClosedCandle]], Decision]


def shared_in_batch(decide: _Decide) -> _Decide:
    """Decorate a type's ``decide``: inside a runner batch, equal inputs are decided once."""
    @wraps(decide)
    def shared(self: Any, params: StrategyParams, candles: Sequence[ClosedCandle]) -> Decision:
        return SHARED_DECISIONS.decide(self.name, params, candles, lambda: decide(self, params, candles))

    return shared


def fmt(value: Decimal) -> str:
    """An indicator value as a fixed 8-decimal string, for run records."""
    return f"{value.quantize(_INDICATOR_PLACES):f}"
