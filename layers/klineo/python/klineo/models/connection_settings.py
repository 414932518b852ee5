"""Request and response models of a connection's settings, key replacement and lifecycle routes.

Routes: PATCH /exchange-connections/{id}, PUT /exchange-connections/{id}/credentials, POST
/exchange-connections/{id}/enable, and the answer of DELETE /exchange-connections/{id}. The
futures settings (POST /exchange-connections/{id}/futures/enable) are ``klineo.models.futures_settings``:
PATCH takes the same fields (``ConnectionUpdateRequest`` extends ``FuturesSettingsRequest``).
"""


from decimal import Decimal
from typing import Annotated

from pydantic import Field, StrictBool

from klineo.models.base import NULL_REFUSED, BaseModel
from klineo.models.common import (
    ConnectionEnvironment,
    ConnectionLabel,
    ConnectionResponse,
    KeyMaterial,
)
from klineo.models.futures_settings import FuturesSettingsRequest, Leverage, PositionModeName
from klineo.models.order_history import OrderSummary

__all__ = [
    "CLEARABLE_SETTINGS",
    "ConnectionDeleteResponse",
    "ConnectionEnableResponse",
    "ConnectionUpdateRequest",
    "CredentialsReplaceRequest",
]


# The connection settings a PATCH's null clears (the futures defaults); null on another is refused.
CLEARABLE_SETTINGS = ("margin_type", "leverage")


class ConnectionUpdateRequest(FuturesSettingsRequest):
    """PATCH /exchange-connections/{id}: only the fields sent change; null clears margin_type/leverage and is
    refused on the others (400 naming the field)."""

    position_mode: Annotated[PositionModeName | None, NULL_REFUSED] = None
    label: Annotated[ConnectionLabel | None, NULL_REFUSED] = None
    kill_switch: Annotated[StrictBool | None, NULL_REFUSED] = None
    max_leverage: Annotated[Leverage | None, NULL_REFUSED] = None
    max_notional_usdt: Annotated[
        Annotated[Decimal, Field(gt=0, le=Decimal("100000000"), max_digits=20, decimal_places=8)] | None,
        NULL_REFUSED,
    ] = None


class CredentialsReplaceRequest(KeyMaterial):
    """PUT /exchange-connections/{id}/credentials: new key material for the same connection.

    ``environment`` may be left out; when sent it must be the connection's own.
    """

    environment: ConnectionEnvironment | None = None  # type: ignore[assignment]


class ConnectionDeleteResponse(BaseModel):
    """What deleting a connection did: the strategies it paused, and what became of its open orders (as many
    as the answer's size bound holds: `orders_shortened`)."""

    id: str
    deleted: bool
    paused_strategies: list[str]
    orders_cancelled: list[OrderSummary] = Field(
        description="Our resting orders that could open or grow a position, cancelled on Binance before "
                    "the key was deleted (nobody could place their stops or close what they opened). Each "
                    "without its fills (`fills_count` says how many): GET /futures/orders lists them")
    orders_left_open: list[OrderSummary] = Field(
        description="Our orders left open on Binance, no longer managed by KLINEO: stop-loss / take-profit "
                    "orders guarding an open position and reduce-only orders (cancelling them would leave "
                    "the position unprotected). When one of a stop pair fires, cancel the other on Binance. "
                    "Each without its fills, as `orders_cancelled`")
    orders_cancelled_count: int = Field(description="How many orders were cancelled, listed or not")
    orders_left_open_count: int = Field(description="How many orders were left open, listed or not")
    orders_shortened: bool = Field(
        description="True when the lists hold only the first of the orders (`orders_cancelled` first): all "
                    "of them would take the answer past its size bound (about 5 MB, some 7,000 orders). The "
                    "counts give how many there are; GET /futures/orders?connection_id= lists every one, "
                    "page by page")
    orders_checked: bool = Field(
        description="True when Binance answered for every open order during the delete; false when it "
                    "could not be asked about some (key refused, Binance unreachable, time spent): the "
                    "lists then show the last state we knew")
    earlier_attempt_since: str | None = Field(default=None, description=(
        "When an earlier DELETE of this connection stopped part way (its answer an error) and this one "
        "finished it: when that earlier one began (ISO-8601), else null. The lists and counts above then "
        "hold only what THIS call did: the strategies the earlier call paused and the orders it cancelled "
        "or left open are not in them. GET /futures/orders?connection_id= lists every order of the "
        "connection, those left open marked `unmanaged_reason: connection_deleted`"))


class StillPaused(BaseModel):
    """A strategy the disabling paused that the enable left paused: what its resume is refused for."""

    id: str
    field: str | None = Field(description="The field the refusal names (as PATCH /strategies/{id} answers a "
                                          "resume), e.g. symbol, size, leverage, connection_id")
    message: str = Field(description="Why it cannot be active now: the message a resume by PATCH answers")


class ConnectionEnableResponse(ConnectionResponse):
    """The connection switched on again, and the strategies its disabling had paused, now resumed."""

    resumed_strategies: list[str]
    still_paused: list[StillPaused] = Field(
        description="The strategies its disabling paused that stay paused, oldest first: those a resume by "
                    "the user would be refused now (the same rule). Each keeps its connection_disabled "
                    "reason, so the enable sent again (or a PATCH status active) resumes it once the cause "
                    "is mended")
