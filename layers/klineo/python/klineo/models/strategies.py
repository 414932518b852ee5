"""Response models of the strategies routes (GET/DELETE /strategies[/{id}], runs, events, run now).

The request bodies of POST and PATCH /strategies (trading settings, parameters checked per
strategy type) are in ``klineo.models.strategy_requests``: they need every strategy type's
parameter model (``klineo.strategies``), which the six functions that only answer with strategies,
runs and events never load.
"""


from typing import Any, Literal

from pydantic import Field

from klineo.models.base import BaseModel
from klineo.models.fields import DecimalString
from klineo.models.paging import CURSOR_PATTERN, PageQuery
from klineo.validation import STRATEGY_ID_PATTERN

__all__ = [
    "CLEARABLE_FIELDS",
    "CURSOR_PATTERN",
    "RUNS_SHOWN",
    "SIZING_FIELDS",
    "STRATEGY_ID_PATTERN",
    "Direction",
    "EventPageResponse",
    "EventResponse",
    "MarginType",
    "Mode",
    "PageQuery",
    "PendingOrderResponse",
    "PnlResponse",
    "RunError",
    "RunNowResponse",
    "RunOrder",
    "RunPageResponse",
    "RunResponse",
    "Status",
    "StrategyDetailResponse",
    "StrategyListResponse",
    "StrategyResponse",
]

# How many of the latest runs GET /strategies/{id} returns.
RUNS_SHOWN = 20

Mode = Literal["paper", "live"]
Status = Literal["active", "paused"]
Direction = Literal["long", "short", "both"]
MarginType = Literal["ISOLATED", "CROSSED"]
SIZING_FIELDS = ("size", "quote_size_usdt", "size_pct")
# Settings a PATCH may clear by sending null.
CLEARABLE_FIELDS = ("leverage", "margin_type", "stop_loss_pct", "take_profit_pct", "trailing_stop_pct")


class PendingOrderResponse(BaseModel):
    """A live order the runner sent (or is sending) and has not settled yet."""

    client_order_id: str
    side: str
    quantity: DecimalString
    close_time: int


class RunOrder(BaseModel):
    """The order of a run: placed at Binance (live) or simulated at the candle's close (paper)."""

    client_order_id: str
    order_id: int | None = None
    side: str
    type: str = "MARKET"
    status: str
    quantity: DecimalString
    executed_quantity: DecimalString
    average_price: DecimalString | None = None
    fee: DecimalString | None = Field(default=None, description="Paper fills: the simulated taker fee.")
    reduce_only: bool = False
    simulated: bool


class RunError(BaseModel):
    """Why a run's order failed: the error category and a user-safe message."""

    category: str
    message: str


class RunResponse(BaseModel):
    """What the runner did on one closed candle."""

    close_time: int
    status: str
    mode: str
    signal: str | None = None
    reason: str | None = None
    indicators: dict[str, str] = Field(default_factory=dict)
    position_before: DecimalString | None = None
    target_position: DecimalString | None = None
    order: RunOrder | None = None
    error: RunError | None = None
    skip_reason: str | None = None
    recorded_at: str
    updated_at: str


class StrategyResponse(BaseModel):
    """One strategy: the user's settings and where the runner stands."""

    id: str
    connection_id: str
    environment: str
    symbol: str
    interval: str
    type: str
    parameters: dict[str, Any]
    size: DecimalString | None = None
    quote_size_usdt: DecimalString | None = None
    size_pct: DecimalString | None = None
    mode: Mode
    status: Status
    direction: Direction = "both"
    leverage: int | None = None
    margin_type: MarginType | None = None
    stop_loss_pct: DecimalString | None = None
    take_profit_pct: DecimalString | None = None
    trailing_stop_pct: DecimalString | None = None
    paper_balance_usdt: DecimalString
    status_reason: str | None = None
    position: DecimalString
    live_position: DecimalString
    paper_position: DecimalString
    last_run_close_time: int | None = None
    pending_order: PendingOrderResponse | None = None
    created_at: str
    updated_at: str


class EventResponse(BaseModel):
    """One entry of a strategy's event log."""

    kind: str
    at: int = Field(description="epoch ms: the candle's close time, or when it happened")
    details: dict[str, Any]
    recorded_at: str


class EventPageResponse(BaseModel):
    """A page of a strategy's events, newest first; ``next_cursor`` is null on the last page."""

    events: list[EventResponse]
    next_cursor: str | None = None


class RunPageResponse(BaseModel):
    """A page of a strategy's runs, newest candle first; ``next_cursor`` is null on the last page."""

    runs: list[RunResponse]
    next_cursor: str | None = None


class RunNowResponse(BaseModel):
    """POST /strategies/{id}/run: the candle evaluated and its run (the first one's when already run)."""

    close_time: int
    outcome: str = Field(description="the run's status, or pending/not_run when it has none yet")
    run: RunResponse | None = None


class StrategyListResponse(BaseModel):
    """The caller's strategies, oldest first."""

    strategies: list[StrategyResponse]


class PnlResponse(BaseModel):
    """The PnL in the current mode (USDT): realised from the fills net of fees, the open part at the mark."""

    realised_pnl: DecimalString
    fees: DecimalString
    unrealised_pnl: DecimalString | None = Field(
        default=None, description="(mark - entry_price) x position; null when the mark could not be read")
    entry_price: DecimalString | None = None
    mark_price: DecimalString | None = None
    estimated_fills: int = Field(
        default=0, description="Live fills counted at their average price and the taker fee because "
        "Binance's own fills could not be read in that minute's request budget (0: all exact).")


class StrategyDetailResponse(StrategyResponse):
    """One strategy, its PnL and its latest runs, newest candle first (older ones: /runs, /events)."""

    pnl: PnlResponse
    runs: list[RunResponse]
