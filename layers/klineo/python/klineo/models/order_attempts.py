"""Query and response models of GET /futures/order-attempts: the caller's order attempts, newest first."""


from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from klineo.models.base import BaseModel
from klineo.models.fields import TimeRangeQuery
from klineo.models.order_history import OrderHistoryItem
from klineo.models.paging import PageQuery
from klineo.validation import CONNECTION_ID_PATTERN, SYMBOL_PATTERN

__all__ = ["AttemptRefusal", "OrderAttemptItem", "OrderAttemptsQuery", "OrderAttemptsResponse"]


class OrderAttemptsQuery(PageQuery, TimeRangeQuery):
    """Filters and paging (``limit``, ``cursor``: ``PageQuery``): `from`/`to` are attempt times in epoch ms
    (inclusive; ``TimeRangeQuery``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    connection_id: Annotated[str | None, Field(pattern=CONNECTION_ID_PATTERN)] = None
    symbol: Annotated[str | None, Field(pattern=SYMBOL_PATTERN)] = None
    outcome: Literal["placed", "refused"] | None = Field(
        default=None, description='"placed" or "refused" only (left out: both)')


class AttemptRefusal(BaseModel):
    """Why an order did not go through: the refusal as its caller was told it."""

    category: str = Field(examples=["conflict"], description="The error category of the answer")
    field: str | None = Field(default=None, examples=["user_kill_switch"],
                              description="The gate or order field the refusal named")
    message: str


class OrderAttemptItem(BaseModel):
    """One order attempt: placed (``order``: the order as the history shows it) or refused before
    anything was sent (``refusal``: why, with the order as it was asked)."""

    outcome: Literal["placed", "refused"]
    created_at: str = Field(description="When the order was claimed, or refused")
    client_order_id: str = Field(description="The order's id; for a refused attempt the id it would have "
                                             "had (a retry with the same Idempotency-Key is placed under it)")
    connection_id: str
    symbol: str
    origin: str = Field(examples=["api"], description='"api" or the placing strategy\'s id')
    side: str | None = None
    type: str | None = None
    quantity: str | None = Field(default=None, description="As asked (refused) or as sent (placed)")
    quote_quantity: str | None = Field(default=None, description="Refused only: the size asked in USDT")
    price: str | None = None
    position_side: str | None = Field(default=None, description="Refused only: as asked")
    reduce_only: bool | None = Field(default=None, description="Refused only: as asked")
    role: str | None = Field(default=None, examples=["position_close"])
    refusal: AttemptRefusal | None = Field(
        default=None, description="Refused: our gate's or the symbol's rules' refusal. Placed with status "
                                  "REJECTED: the refusal its record keeps (Binance's, as the order's answer "
                                  "said it, or our limits' refusal of a retry's resend)")
    order: OrderHistoryItem | None = Field(default=None, description="Placed: the order (its status as last "
                                                                     "recorded)")


class OrderAttemptsResponse(BaseModel):
    """A page of attempts, newest first; pass `next_cursor` as `cursor` for the next (null: no more). A page
    may hold fewer than `limit` attempts and still have a `next_cursor`, when the next would take the answer
    past its size bound (about 5 MB; a placed order lists up to 1000 fills)."""

    attempts: list[OrderAttemptItem]
    next_cursor: str | None = None
