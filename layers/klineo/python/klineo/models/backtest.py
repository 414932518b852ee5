"""Request and response models of POST /strategies/backtest and GET /strategies/backtest/{jobId}.

The strategy part of the request takes the same fields, with the same rules, as a strategy create
body (``klineo.models.strategies``): symbol, interval, type and parameters are validated there and
reused here; the contract's fields (direction, sizing, leverage, stop-loss/take-profit, paper
balance) are declared once below. ``mode``, ``status`` and ``margin_type`` are not backtest
inputs. The period is ``start``/``end`` (ISO 8601, UTC when no offset is given).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, WithJsonSchema, field_validator, model_validator

from klineo.models.base import BaseModel
from klineo.models.common import ApiModel, ConnectionEnvironment, DecimalString
from klineo.models.strategies import (
    PARAMETERS_SCHEMA,
    RunnerInterval,
    Size,
    StrategyTypeName,
    _checked_parameters,
)
from klineo.validation import CONNECTION_ID_PATTERN, SYMBOL_PATTERN

__all__ = [
    "BacktestEquityPoint",
    "BacktestJobStatus",
    "BacktestRequest",
    "BacktestResponse",
    "BacktestResult",
    "BacktestTrade",
]

Percent = Annotated[Decimal, Field(gt=0, lt=100, max_digits=12, decimal_places=6)]
BacktestJobStatus = Literal["done", "queued", "running", "failed"]


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class BacktestRequest(ApiModel):
    """POST /strategies/backtest: a strategy definition and a period of closed candles to run it over."""

    connection_id: Annotated[str | None, Field(pattern=CONNECTION_ID_PATTERN)] = Field(
        default=None, description="Take the environment of this connection of yours (else `environment`).")
    environment: ConnectionEnvironment = "production"
    symbol: Annotated[str, Field(pattern=SYMBOL_PATTERN, examples=["BTCUSDT"])]
    interval: RunnerInterval
    type: StrategyTypeName
    parameters: Annotated[dict[str, Any], WithJsonSchema(PARAMETERS_SCHEMA)] = Field(
        default_factory=dict, validate_default=True)
    direction: Literal["long", "short", "both"] = "both"
    size: Size | None = None
    quote_size_usdt: Annotated[Decimal | None, Field(gt=0, le=Decimal(100_000_000), max_digits=24,
                                                     decimal_places=8)] = None
    size_pct: Annotated[Decimal | None, Field(gt=0, le=100, max_digits=12, decimal_places=6)] = None
    leverage: Annotated[int | None, Field(ge=1, le=125)] = None
    stop_loss_pct: Percent | None = None
    take_profit_pct: Percent | None = None
    trailing_stop_pct: Annotated[Decimal | None, Field(ge=Decimal("0.1"), le=10)] = Field(
        default=None, description="Accepted for symmetry with strategies; live only, ignored here.")
    paper_balance_usdt: Annotated[Decimal, Field(gt=0, le=Decimal(1_000_000_000), max_digits=24,
                                                 decimal_places=8)] = Decimal(10_000)
    start: dt.datetime
    end: dt.datetime

    @field_validator("parameters")
    @classmethod
    def _parameters_fit_type(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any] | None:
        """Checked against the type's own parameter model (the create body's rule)."""
        return _checked_parameters(value, info.data.get("type"))

    @field_validator("start", "end")
    @classmethod
    def _in_utc(cls, value: dt.datetime) -> dt.datetime:
        """A time without an offset is UTC."""
        return _utc(value)

    @model_validator(mode="after")
    def _one_sizing_and_an_ordered_period(self) -> BacktestRequest:
        sizes = [v for v in (self.size, self.quote_size_usdt, self.size_pct) if v is not None]
        if len(sizes) != 1:
            raise ValueError("send exactly one of size, quote_size_usdt or size_pct")
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
