"""Request and response models of POST /strategies/backtest and GET /strategies/backtest/{jobId}.

The strategy part of the request IS a strategy definition (``klineo.models.strategy_requests.
StrategyDefinition``, the fields POST /strategies takes with the same rules: symbol, interval, type
and parameters, direction, exactly one sizing, leverage, stop-loss/take-profit, paper balance).
``mode``, ``status`` and ``margin_type`` are not backtest inputs. The period is ``start``/``end``
(ISO 8601, UTC when no offset is given).
"""


import datetime as dt
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from klineo.models.base import BaseModel
from klineo.models.fields import ConnectionEnvironment, DecimalString
from klineo.models.strategy_requests import StrategyDefinition
from klineo.validation import CONNECTION_ID_PATTERN

__all__ = [
    "BacktestEquityPoint",
    "BacktestJobStatus",
    "BacktestRequest",
    "BacktestResponse",
    "BacktestResult",
    "BacktestTrade",
]

BacktestJobStatus = Literal["done", "queued", "running", "failed"]


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


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

    @model_validator(mode="after")
    def _ordered_period(self) -> "BacktestRequest":
        """The period ends after it starts."""
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def start_ms(self) -> int:
        """The period's start in epoch ms."""
        return int(self.start.timestamp() * 1000)

    def end_ms(self) -> int:
        """The period's end in epoch ms (exclusive: candles that open before it)."""
        return int(self.end.timestamp() * 1000)


class BacktestTrade(BaseModel):
    """One simulated round trip; ``pnl`` is net of both fees. An open trade has no exit yet."""

    side: Literal["long", "short"]
    entry_time: int
    entry_price: DecimalString
    quantity: DecimalString
    exit_time: int | None = None
    exit_price: DecimalString | None = None
    exit_reason: str | None = None
    fees: DecimalString
    pnl: DecimalString


class BacktestEquityPoint(BaseModel):
    """Equity (starting balance + realised + unrealised PnL) at a candle's close time."""

    time: int
    equity: DecimalString


class BacktestResult(BaseModel):
    """What the strategy would have done: summary numbers, trades and a downsampled equity curve."""

    environment: str
    symbol: str
    interval: str
    type: str
    start: int
    end: int
    candles: int
    starting_equity: DecimalString
    final_equity: DecimalString
    total_return_pct: DecimalString
    max_drawdown_pct: DecimalString
    win_rate_pct: DecimalString | None = None
    fees_paid: DecimalString
    number_of_trades: int
    open_position: DecimalString
    trades: list[BacktestTrade]
    trades_truncated: bool = False
    equity_curve: list[BacktestEquityPoint]
    equity_curve_step: int = Field(description="Candles per equity point (the last candle is always kept).")
    model: dict[str, str] = Field(description="The fee, slippage and exit rules this result used.")


class BacktestResponse(BaseModel):
    """A backtest's state: ``done`` with its result, or a job (``queued``/``running``/``failed``) to poll."""

    job_id: str | None = None
    status: BacktestJobStatus
    result: BacktestResult | None = None
    error: str | None = None
