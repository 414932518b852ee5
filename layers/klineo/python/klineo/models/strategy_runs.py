"""Response models of a strategy's runs, events and PnL: GET /strategies/{id}, its /runs and
/events, and POST /strategies/{id}/run.

Apart from ``klineo.models.strategies`` so that creating, changing and listing strategies, which
answer with the strategy only, do not build these models at cold start (issue 16 item 3).
"""


from typing import Any

from pydantic import Field

from klineo.models.base import BaseModel
from klineo.models.fields import DecimalString
from klineo.models.strategies import StrategyResponse

__all__ = [
    "RUNS_SHOWN",
    "EventPageResponse",
    "EventResponse",
    "PnlResponse",
    "RunError",
    "RunNowResponse",
    "RunOrder",
    "RunPageResponse",
    "RunResponse",
    "StrategyDetailResponse",
]

# How many of the latest runs GET /strategies/{id} returns.
RUNS_SHOWN = 20


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
    position_side: str | None = Field(
        default=None, description="Hedge-mode connections: LONG or SHORT, the position side the order moved "
        "(null in one-way mode).")
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
    close_order: RunOrder | None = Field(
        default=None, description="A flip on a hedge-mode connection is two orders: this one closed the old "
        "side, then `order` opened the new one (null otherwise). When the new side could not be opened, "
        "`order` is the close and `error` says why.")
    error: RunError | None = None
    skip_reason: str | None = None
    recorded_at: str
    updated_at: str


class EventResponse(BaseModel):
    """One entry of a strategy's event log."""

    kind: str = Field(
        examples=["order_fill"],
        description="signal, risk_block, order_submit, order_fill, protective_placed (also a live stop lost "
                    "past Binance's retention, placed again: lost names its roles), protective_triggered, "
                    "protective_repriced (the stops moved to new percents, or re-placed for what is left of "
                    "the position: quantity, old_quantity), position_closed (with its cause), error, paused, "
                    "resumed, paper_reset (a new paper_balance_usdt restarted the paper ledger), "
                    "fills_booked (Binance's fills of a live order replaced the estimate its PnL counted: "
                    "realised_pnl and fees, exact and estimated), still_paused (the connection's enable "
                    "left paused a strategy its disable had paused: the field and message a resume is "
                    "refused with), close_cause_settled (a position_closed whose cause was unknown, its "
                    "stops not readable then, as a later run read them: cause protective or manual, "
                    "position_closed_at naming that event's at).")
    at: int = Field(description="epoch ms: the candle's close time, or when it happened")
    details: dict[str, Any] = Field(description="What the kind carries, e.g. a paused event's reason and "
                                                "message")
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
        "Binance's own fills could not be read in that minute's request budget; the order reconciler "
        "books Binance's own in their place on its next run (a fills_booked event). 0: all exact.")
    fees_other_assets: int = Field(
        default=0, description="Live fills whose commission Binance took in another asset than USDT (BNB "
        "fee burn): not converted, so left out of fees and realised_pnl. 0: every fee is in them.")


class StrategyDetailResponse(StrategyResponse):
    """One strategy, its PnL and its latest runs, newest candle first (older ones: /runs, /events)."""

    pnl: PnlResponse
    runs: list[RunResponse]
