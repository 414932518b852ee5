"""Query and response models of GET /candles.

A module of their own so the candles function creates only its own models.
"""


from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from klineo.models.base import BaseModel
from klineo.models.fields import ConnectionEnvironment, DecimalString, TimeRangeQuery
from klineo.validation import SPOT_INTERVALS, SYMBOL_PATTERN

__all__ = ["SPOT_INTERVALS", "Candle", "CandlesQuery", "CandlesResponse", "Interval", "Market"]

Market = Literal["spot", "futures"]
Interval = Literal[SPOT_INTERVALS]  # type: ignore[valid-type]


class CandlesQuery(TimeRangeQuery):
    """GET /candles query: limit bounds depend on the market (spot 1..1000, futures 1..1500).

    ``from`` / ``to`` (epoch ms, inclusive) select candles by open time, as Binance's
    startTime/endTime do: from ``from`` on (oldest first, at most ``limit``), or the last ``limit``
    up to ``to``; neither: the latest ``limit``.
    """

    symbol: Annotated[str, Field(pattern=SYMBOL_PATTERN)]
    market: Market = "spot"
    environment: ConnectionEnvironment = "production"
    interval: Interval
    limit: Annotated[int, Field(ge=1, le=1500)] = 500

    @field_validator("interval")
    @classmethod
    def _interval_exists_on_market(cls, value: str, info: ValidationInfo) -> str:
        """Futures have every spot interval but 1s."""
        if info.data.get("market") == "futures" and value == "1s":
            raise ValueError("1s is not available for futures")
        return value

    @field_validator("limit")
    @classmethod
    def _limit_within_market_bounds(cls, value: int, info: ValidationInfo) -> int:
        """Spot answers at most 1000 candles, futures 1500."""
        if info.data.get("market", "spot") == "spot" and value > 1000:
            raise ValueError("must be at most 1000 for spot (futures allow more)")
        return value


class Candle(BaseModel):
    """One kline: times in ms, prices and volume as decimal strings."""

    open_time: int
    open: DecimalString
    high: DecimalString
    low: DecimalString
    close: DecimalString
    volume: DecimalString
    close_time: int


class CandlesResponse(BaseModel):
    """Klines, oldest first."""

    symbol: str
    interval: str
    market: Market
    environment: ConnectionEnvironment
    candles: list[Candle]
