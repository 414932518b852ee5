"""Response models of POST /strategies/backtest and GET /strategies/backtest/{jobId}.

The request body is ``klineo.models.backtest_request``: it is a strategy definition, which needs
every strategy type's parameter model; GET /strategies/backtest/{jobId} only answers and loads none.
"""


from typing import Literal

from pydantic import Field

from klineo.models.base import BaseModel
from klineo.models.fields import DecimalString

__all__ = [
    "BacktestEquityPoint",
    "BacktestJobStatus",
    "BacktestResponse",
    "BacktestResult",
    "BacktestTrade",
]

BacktestJobStatus = Literal["done", "queued", "running", "failed"]


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
