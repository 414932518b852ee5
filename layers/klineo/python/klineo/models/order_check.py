"""Response model of POST /futures/order/check: the dry run of POST /futures/order.

Its request is ``klineo.models.futures.FuturesOrderRequest`` itself. Numbers are decimal strings
(``klineo.validation.plain_text``).
"""


from typing import Literal

from pydantic import Field

from klineo.errors import ErrorCategory
from klineo.models.base import BaseModel
from klineo.models.fields import DecimalString

__all__ = ["OrderCheckResponse", "OrderRefusal", "ValidNearby"]


class OrderRefusal(BaseModel):
    """The error POST /futures/order would answer for this body (its ``error`` without a request id)."""

    category: ErrorCategory = Field(description="Its HTTP status follows the API's category table "
                                                "(invalid_request 400, conflict 409, order_rejected 422).")
    message: str
    retryable: bool
    field: str | None = Field(default=None, description="The request field or the risk gate at fault.")


class ValidNearby(BaseModel):
    """The grid values nearest to a typed value that is off the symbol's grid (offer them instead)."""

    field: str = Field(examples=["quantity"])
    below: DecimalString | None = Field(default=None, description="None: no valid value below it.")
    above: DecimalString | None = Field(default=None, description="None: no valid value above it.")


class OrderCheckResponse(BaseModel):
    """What POST /futures/order would do with this body now: the order it would send, or its refusal."""

    ok: bool = Field(description="True: the order would be sent as `params` says.")
    connection_id: str
    symbol: str
    kind: Literal["order", "algo"] = Field(
        description="order: /fapi/v1/order; algo: Binance's algo (conditional) order service.")
    quantity: DecimalString | None = Field(
        default=None, description="The quantity it would send (quote_quantity converted and rounded down "
                                  "to the step); None with closePosition or before it is known.")
    price: DecimalString | None = None
    trigger_price: DecimalString | None = None
    notional: DecimalString | None = Field(
        default=None, description="The order's value as max_notional_usdt counts it: its quantity times the "
                                  "most it can fill at now. None for an order that only reduces, or one "
                                  "refused before it is valued.")
    max_notional_usdt: DecimalString
    params: dict[str, str] | None = Field(
        default=None, description="The parameters it would send to Binance (all but its client id, which "
                                  "comes from the Idempotency-Key); None when refused.")
    refusal: OrderRefusal | None = None
    valid_nearby: ValidNearby | None = Field(
        default=None, description="With a refusal of a typed quantity or price off the symbol's grid.")
