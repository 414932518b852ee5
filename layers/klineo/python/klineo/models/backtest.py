"""Response models of POST /strategies/backtest and GET /strategies/backtest/{jobId}.

The request body is ``klineo.models.backtest_request``: it is a strategy definition, which needs
every strategy type's parameter model; GET /strategies/backtest/{jobId} only answers and loads none.
"""


from typing import Literal

from pydantic import Field

from klineo.models.base import BaseModel
from klineo.models.fields import DecimalString

__all__ = [
    "BACKTEST_ROUTE_DESCRIPTION",
    "BacktestEquityPoint",
    "BacktestJobStatus",
    "BacktestResponse",
    "BacktestResult",
    "BacktestTrade",
]

BacktestJobStatus = Literal["done", "queued", "running", "failed"]

# What POST /strategies/backtest does, as its OpenAPI description says it (kept here: handlers stay thin).
BACKTEST_ROUTE_DESCRIPTION = (
    "Runs the strategy over the period's closed futures klines (cached per UTC day). Backtests leave "
    "40 % of the IP's Binance request weight to trading: when this minute's weight is used up to "
    "that reserve, or Binance or the IP's 90 % limit refuses a page, the answer is 429 rate_limit with "
    "Retry-After (days already fetched stay cached); a queued job waits such a refusal out itself. "
    "The simulated account trades within its equity: an entry is taken only when its initial margin "
    "(quantity x close / leverage, default 1) fits the equity at that close, else it is counted in "
    "skipped_entries / skipped_reasons; a position whose equity reaches zero is liquidated there "
    "(liquidated_at) and the backtest trades no more, so the equity never goes below zero. A symbol that "
    "takes no MARKET orders (every simulated order is one), a size outside the symbol's market lot, or a "
    "quote_size_usdt below its minimum order value, can never trade: 422 naming the field (symbol, size or "
    "quote_size_usdt), before any klines are fetched."
)


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
    start: int = Field(description=("The period's start (epoch ms): the one asked, or the symbol's listing "
                                    "on Binance futures (exchangeInfo onboardDate) when the period asked "
                                    "began before it (no candle exists before)."))
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
    skipped_entries: int = Field(default=0, description=(
        "Entries the strategy's signal asked for that were not taken (a flip whose new side was not taken "
        "still closed its old side), one per signal run: the strategy asks again on every candle, and the "
        "candles that go on asking for the same side (holds between them included) are the same skipped "
        "entry until its signal turns to the other side or flat, or the entry is taken."))
    skipped_reasons: dict[str, int] = Field(default_factory=dict, description=(
        "The skipped entries by the reason of their first refusal (they add up to skipped_entries): "
        "`insufficient_margin` (the initial margin, quantity x close / "
        "leverage, was above the equity at that close), `below_min_quantity` (the quantity, rounded down "
        "to the symbol's step, was below its minimum quantity), `above_max_quantity` (the quantity, or a "
        "flip's one order closing the old side and opening the new, was above the symbol's maximum for a "
        "market order: the flip closed its old side alone), `below_min_notional` (the order value was below "
        "the symbol's minimum), `order_rules` (another of the symbol's rules refused the order; a symbol "
        "that takes no market orders is refused before the backtest runs)."))
    liquidated_at: int | None = Field(default=None, description=(
        "Close time of the candle whose low (long) or high (short) reached the price where the equity "
        "after the closing fee is zero: the position closed there (`exit_reason` `liquidation`), the "
        "equity is 0 and nothing more was traded. Null when not liquidated."))
    model: dict[str, str] = Field(description="The fee, slippage, margin, liquidation and exit rules this "
                                              "result used, and its leverage.")


class BacktestResponse(BaseModel):
    """A backtest's state: ``done`` with its result, or a job (``queued``/``running``/``failed``) to poll."""

    job_id: str | None = None
    status: BacktestJobStatus
    result: BacktestResult | None = None
    error: str | None = None
