"""Request and response models of the futures routes (test, enable, disable, order, order status).

Field names of the order body follow the KLINEO frontend (and Binance): `connection_id`, then
Binance's own camelCase names. Unknown fields are refused, so a typo such as `reduce_only` is an
error naming the field instead of an order silently placed without it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StrictBool, ValidationInfo, field_validator

from klineo.models.base import BaseModel
from klineo.models.common import PositiveDecimal
from klineo.validation import (
    CLIENT_ORDER_ID_PATTERN,
    CONNECTION_ID_PATTERN,
    ORDER_POSITION_SIDES,
    ORDER_SIDES,
    ORDER_TIME_IN_FORCE,
    ORDER_TYPES,
    SYMBOL_PATTERN,
    check_order_price,
    check_reduce_only,
    order_time_in_force,
)

__all__ = [
    "CLIENT_ORDER_ID_PATTERN",
    "FuturesAsset",
    "FuturesOrderRequest",
    "FuturesOrderResponse",
    "FuturesStateResponse",
    "FuturesTestResponse",
]

_Positive = Annotated[PositiveDecimal, Field(max_digits=30, decimal_places=16)]


class FuturesOrderRequest(BaseModel):
    """Body of POST /futures/order: one USDT-M order on one of the caller's connections."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connection_id: str = Field(pattern=CONNECTION_ID_PATTERN)
    symbol: str = Field(pattern=SYMBOL_PATTERN)
    side: Literal[ORDER_SIDES]  # type: ignore[valid-type]
    type: Literal[ORDER_TYPES]  # type: ignore[valid-type]
    quantity: _Positive
    price: _Positive | None = Field(default=None, validate_default=True)
    timeInForce: Literal[ORDER_TIME_IN_FORCE] | None = Field(  # type: ignore[valid-type]
        default=None, validate_default=True)
    reduceOnly: StrictBool = False
    positionSide: Literal[ORDER_POSITION_SIDES] = Field(  # type: ignore[valid-type]
        default="BOTH", validate_default=True)

    @field_validator("price")
    @classmethod
    def _price_matches_type(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        check_order_price(info.data.get("type"), value)
        return value

    @field_validator("timeInForce")
    @classmethod
    def _time_in_force_matches_type(cls, value: str | None, info: ValidationInfo) -> str | None:
        return order_time_in_force(info.data.get("type"), value)

    @field_validator("positionSide")
    @classmethod
    def _reduce_only_outside_hedge_mode(cls, value: str, info: ValidationInfo) -> str:
        check_reduce_only(bool(info.data.get("reduceOnly")), value)
        return value

    def fingerprint(self) -> dict[str, Any]:
        """The request as plain JSON values (Decimals as strings): what "the same request" means."""
        return self.model_dump(mode="json")


class FuturesOrderResponse(BaseModel):
    """An order as Binance knows it, with how this answer was obtained."""

    client_order_id: str
    connection_id: str
    order_id: int | None = None
    symbol: str
    side: str
    type: str
    status: str
    quantity: str
    executed_quantity: str
    price: str | None = None
    average_price: str | None = None
    time_in_force: str | None = None
    reduce_only: bool = False
    position_side: str = "BOTH"
    update_time: int | None = None
    source: Literal["placed", "recovered", "existing", "queried"] = Field(
        description=(
            "placed: Binance's answer to this request; recovered: the answer was lost and the order was "
            "found by clientOrderId; existing: an earlier request with the same Idempotency-Key already "
            "placed it; queried: read back from Binance by the status route."
        )
    )


class FuturesAsset(BaseModel):
    """One futures wallet asset with a non-zero balance."""

    asset: str
    wallet_balance: str
    available_balance: str
    unrealized_profit: str


class FuturesTestResponse(BaseModel):
    """The USDT-M futures test: ok, or the category and a user-safe message; balances when readable.

    Like the spot connection test, a failing test is an answer (ok=false, category, message),
    not an error: the test itself worked and found the key unfit. `can_trade` comes from
    /fapi/v1/accountConfig, balances and positions from /fapi/v3/account.
    """

    connection_id: str
    environment: str
    ok: bool
    category: str | None = None
    message: str | None = None
    retryable: bool | None = None
    can_trade: bool | None = None
    tested_at: str
    total_wallet_balance: str | None = None
    available_balance: str | None = None
    assets: list[FuturesAsset] = Field(default_factory=list)
    open_positions: int | None = None


class FuturesStateResponse(BaseModel):
    """A connection's futures switch after enable/disable."""

    connection_id: str
    futures_enabled: bool
    test: FuturesTestResponse | None = None
