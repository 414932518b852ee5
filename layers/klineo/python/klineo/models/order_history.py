"""Query and response models of GET /futures/orders: the caller's order history, newest first."""


from typing import Annotated

from pydantic import ConfigDict, Field

from klineo.models.base import BaseModel
from klineo.models.fields import TimeRangeQuery
from klineo.models.paging import CURSOR_PATTERN, PAGE_MAX_LIMIT, PageQuery
from klineo.validation import CONNECTION_ID_PATTERN, SYMBOL_PATTERN

__all__ = [
    "CURSOR_PATTERN",
    "HISTORY_MAX_LIMIT",
    "OrderFill",
    "OrderFillTotals",
    "OrderHistoryItem",
    "OrderHistoryQuery",
    "OrderHistoryResponse",
    "OrderSummary",
]

HISTORY_MAX_LIMIT = PAGE_MAX_LIMIT
STATUS_PATTERN = r"^[A-Z_]{3,20}$"


class OrderHistoryQuery(PageQuery, TimeRangeQuery):
    """Filters and paging (``limit``, ``cursor``: ``PageQuery``): `from`/`to` are creation times in epoch
    ms (inclusive; ``TimeRangeQuery``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    connection_id: Annotated[str | None, Field(pattern=CONNECTION_ID_PATTERN)] = None
    symbol: Annotated[str | None, Field(pattern=SYMBOL_PATTERN)] = None
    status: Annotated[str | None, Field(pattern=STATUS_PATTERN, examples=["FILLED"])] = None


class OrderFill(BaseModel):
    """One trade of the order, as Binance's userTrades lists it (decimals as strings)."""

    trade_id: int
    order_id: int
    price: str
    qty: str
    commission: str
    commission_asset: str
    realized_pnl: str
    side: str
    time: int


class OrderFillTotals(BaseModel):
    """Exact totals over every fill of an order, listed or not (decimals as strings)."""

    quantity: str = Field(description="The quantity of all its fills")
    average_price: str | None = Field(default=None,
                                      description="Their average price, weighted by quantity (null: none)")
    realized_pnl: str = Field(description="Binance's realized PnL of all of them")
    commission: dict[str, str] = Field(description="The commission they paid, per asset")


class OrderSummary(BaseModel):
    """One order without its fills: where it came from, its latest known state and how much it executed
    (exact, however many fills it had)."""

    client_order_id: str
    connection_id: str
    symbol: str
    kind: str = Field(examples=["order"], description='"order" (regular) or "algo" (conditional)')
    origin: str = Field(examples=["api"],
                        description='"api", the placing strategy\'s id, or "manual"/"liquidation"/"adl" '
                                    "for trades Binance made that we did not place")
    role: str | None = Field(default=None, examples=["stop_loss"],
                             description='"stop_loss" / "take_profit" of an entry (its id in '
                                         'parent_client_order_id); "position_close" for an order of the '
                                         'position-close route')
    parent_client_order_id: str | None = None
    status: str = Field(examples=["FILLED"])
    settled: bool = Field(description="True when the state is final and its fills are known")
    order_id: int | None = None
    side: str | None = None
    type: str | None = None
    quantity: str | None = None
    price: str | None = None
    trigger_price: str | None = None
    executed_quantity: str | None = None
    average_price: str | None = None
    created_at: str
    updated_at: str
    fills_count: int | None = Field(default=None,
                                    description="How many fills the order had (null: not known yet)")
    unmanaged_since: str | None = Field(
        default=None, description="When KLINEO stopped following this order before it was settled (its "
                                  "connection was deleted): the status is the last one Binance told us, "
                                  "and an order not final then may still be open on Binance")
    unmanaged_reason: str | None = Field(default=None, examples=["connection_deleted"],
                                         description="Why KLINEO stopped following it")


class OrderHistoryItem(OrderSummary):
    """One order: where it came from, its latest known state and its fills."""

    fills: list[OrderFill] | None = Field(
        default=None, description="Its fills (Binance's trades of it), oldest first; all of them unless "
                                  "`fills_shortened`; null while not known yet")
    fills_shortened: bool = Field(
        default=False, description="True when `fills` lists only the first of its `fills_count` fills (an "
                                   "order matched against thousands of resting orders): `fill_totals` gives "
                                   "the exact totals of all of them")
    fill_totals: OrderFillTotals | None = Field(
        default=None, description="Exact totals of all its fills, when `fills_shortened` (otherwise the sums "
                                  "of `fills`)")


class OrderHistoryResponse(BaseModel):
    """A page of orders, newest first; pass `next_cursor` as `cursor` for the next (null: no more). A page
    may hold fewer than `limit` orders and still have a `next_cursor`: with a `status` filter (even none),
    and when the next order would take the answer past its size bound (about 5 MB; an order lists up to
    1000 fills)."""

    orders: list[OrderHistoryItem]
    next_cursor: str | None = None
