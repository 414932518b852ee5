"""Response models of a strategy itself: POST, PATCH and GET /strategies (the list), and the fields
every strategy answer shares.

The request bodies of POST and PATCH /strategies (trading settings, parameters checked per
strategy type) are in ``klineo.models.strategy_requests``: they need every strategy type's
parameter model (``klineo.strategies``), which the functions that only answer with strategies,
runs and events never load. A strategy's runs, events and PnL (GET /strategies/{id}, its /runs,
/events and run now) are in ``klineo.models.strategy_runs``: creating, changing and listing
strategies answer with none of them (issue 16 item 3, cold start).
"""


from typing import Annotated, Any, Literal

from pydantic import Field

from klineo.models.base import BaseModel
from klineo.models.fields import DecimalString
from klineo.models.paging import CURSOR_PATTERN, PAGE_MAX_LIMIT, PageQuery
from klineo.validation import STRATEGY_ID_PATTERN

__all__ = [
    "CLEARABLE_FIELDS",
    "CURSOR_PATTERN",
    "SIZING_FIELDS",
    "STRATEGY_ID_PATTERN",
    "Direction",
    "MarginType",
    "Mode",
    "PageQuery",
    "PendingOrderResponse",
    "Status",
    "StrategyListQuery",
    "StrategyListResponse",
    "StrategyResponse",
]

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
    paper_balance_usdt: DecimalString = Field(
        examples=["10000"],
        description="The paper account's starting capital in USDT: the paper equity is it plus the realised "
                    "PnL (net of fees) and the open position's unrealised PnL.")
    status_reason: str | None = Field(
        default=None, examples=["untradable_size"],
        description="Why it is paused (null while active): paused by user, created paused, "
                    "repeated_failures:<category>, key_failure:<category>, connection_disabled:<category>, "
                    "connection_deleted, connection_not_found, invalid_parameters, invalid_symbol, "
                    "no_side_to_trade (direction short with its type's allow_short false: no signal trades), "
                    "untradable_size (its sizing can never pass the symbol's rules: change it to resume), "
                    "no_market_orders (its symbol took MARKET orders no more: resume it when it does), "
                    "cooling_off_period (Binance refused its order for the cooling-off period set for the "
                    "account there: resume it once the period has ended), "
                    "leverage_above_symbol_max (its leverage, or its connection's default, is above the "
                    "symbol's maximum: lower it to resume; a live resume at it is refused, 422 naming "
                    "leverage), "
                    "paper_liquidated (no paper equity left: resume with paper_balance_usdt).")
    position: DecimalString
    live_position: DecimalString
    paper_position: DecimalString
    last_run_close_time: int | None = None
    pending_order: PendingOrderResponse | None = None
    # The limits: klineo.runner.failures.FAILED_RUN_LIMIT, klineo.services.key_health.KEY_FAILURE_LIMIT (not
    # imported: the strategy routes load neither; tests/unit/runner/test_failed_run_rule.py pins the texts).
    failed_runs: int = Field(
        default=0, ge=0,
        description="Consecutive failed runs whose failure repeats by itself (Binance refused the order or "
                    "the symbol's settings, a filter refused it); at 5 the runner pauses the strategy "
                    "(repeated_failures:<category>). A run that holds or trades resets it; resuming clears "
                    "it.")
    key_failures: int = Field(
        default=0, ge=0,
        description="Consecutive runs whose order Binance refused for the key itself (permission, signature, "
                    "IP whitelist); at 3 the runner pauses the strategy (key_failure:<category>). Any other "
                    "answer to an order resets it; resuming clears it.")
    created_at: str
    updated_at: str


class StrategyListQuery(PageQuery):
    """?limit=&cursor= of GET /strategies: without ``limit``, every strategy the answer's size bound holds."""

    limit: Annotated[int | None, Field(
        ge=1, le=PAGE_MAX_LIMIT,
        description="The most strategies a page holds (none: all of them). A maximum: a page stops before "
                    "the answer would pass its size bound (about 5 MB, some 4,500 strategies at their "
                    "longest), with a `next_cursor`")] = None


class StrategyListResponse(BaseModel):
    """The caller's strategies, oldest first; ``next_cursor`` is null when this page holds the last."""

    strategies: list[StrategyResponse]
    next_cursor: str | None = Field(default=None, description=(
        "Pass as ?cursor= for the strategies after this page's last (null: none left)."))

