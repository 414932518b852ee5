"""The request body of POST /strategies/backtest.

The strategy part of the request IS a strategy definition (``klineo.models.strategy_requests.
StrategyDefinition``, the fields POST /strategies takes with the same rules: symbol, interval, type
and parameters, direction, exactly one sizing, leverage, stop-loss/take-profit, paper balance).
``mode``, ``status`` and ``margin_type`` are not backtest inputs. The period is ``start``/``end``
(ISO 8601, UTC when no offset is given). The answers are in ``klineo.models.backtest``.
"""


import datetime as dt
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator

from klineo.models.fields import ConnectionEnvironment
from klineo.models.strategy_requests import StrategyDefinition
from klineo.timestamps import epoch_ms
from klineo.validation import CONNECTION_ID_PATTERN

__all__ = ["BacktestRequest"]


# Binance has no candles before 2017: an earlier time is refused before any arithmetic (near
# datetime's lower limit the warm-up before the start leaves its range).
_EARLIEST = dt.datetime(2017, 1, 1, tzinfo=dt.UTC)


def _utc(value: dt.datetime) -> dt.datetime:
    try:
        value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    except OverflowError:  # the UTC time is outside datetime's years 1-9999
        raise ValueError("must be a time between 2017-01-01 and 9999-12-31 (UTC)") from None
    if value < _EARLIEST:
        raise ValueError("must be a time between 2017-01-01 and 9999-12-31 (UTC)")
    return value


class BacktestRequest(StrategyDefinition):
    """POST /strategies/backtest: a strategy definition and a period of closed candles to run it over."""

    connection_id: Annotated[str | None, Field(pattern=CONNECTION_ID_PATTERN)] = Field(
        default=None, description="Take the environment of this connection of yours (else `environment`).")
    environment: ConnectionEnvironment = "production"
    start: dt.datetime
    end: dt.datetime

    @field_validator("start", "end")
    @classmethod
    def _in_utc(cls, value: dt.datetime) -> dt.datetime:
        """A time without an offset is UTC."""
        return _utc(value)

    @field_validator("end")
    @classmethod
    def _after_start(cls, value: dt.datetime, info: ValidationInfo) -> dt.datetime:
        """The period ends after it starts (a refusal naming ``end``; a bad start is named on its own)."""
        start = info.data.get("start")
        if start is not None and value <= start:
            raise ValueError("must be after start")
        return value

    def start_ms(self) -> int:
        """The period's start in epoch ms."""
        return epoch_ms(self.start)

    def end_ms(self) -> int:
        """The period's end in epoch ms (exclusive: candles that open before it)."""
        return epoch_ms(self.end)
