"""Request and response models of a connection's settings, key replacement and lifecycle routes.

Routes: POST /exchange-connections/{id}/futures/enable (optional body), PATCH
/exchange-connections/{id}, PUT /exchange-connections/{id}/credentials, POST
/exchange-connections/{id}/enable, and the answer of DELETE /exchange-connections/{id}.
"""


from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, StrictBool, field_validator

from klineo.models.base import BaseModel
from klineo.models.common import (
    ApiModel,
    ConnectionEnvironment,
    ConnectionResponse,
    ConnectionTestRequest,
    check_label,
)
from klineo.models.futures_account import FuturesStateResponse

__all__ = [
    "ConnectionDeleteResponse",
    "ConnectionEnableResponse",
    "ConnectionUpdateRequest",
    "CredentialsReplaceRequest",
    "FuturesEnableResponse",
    "FuturesSettingsRequest",
    "MarginTypeName",
    "PositionModeName",
]

PositionModeName = Literal["one_way", "hedge"]
MarginTypeName = Literal["isolated", "cross"]
Leverage = Annotated[
    int, Field(ge=1, le=125, description="Initial leverage, 1 to 125 (the symbol's bracket may allow less).")
]


class FuturesSettingsRequest(ApiModel):
    """Futures defaults: the account's position mode, and the margin type and leverage per symbol.

    Position mode is account-wide on Binance and applied at once. Margin type and leverage are per
    symbol on Binance: they are applied the first time the connection trades a symbol.
    """

    position_mode: PositionModeName | None = None
    margin_type: MarginTypeName | None = None
    leverage: Leverage | None = None


class ConnectionUpdateRequest(FuturesSettingsRequest):
    """PATCH /exchange-connections/{id}: only the fields sent change; null clears margin_type/leverage."""

    label: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    kill_switch: StrictBool | None = None
    max_leverage: Leverage | None = None
    max_notional_usdt: (
        Annotated[Decimal, Field(gt=0, le=Decimal("100000000"), max_digits=20, decimal_places=8)] | None
    ) = None

    @field_validator("label")
    @classmethod
    def _label_is_text(cls, value: str | None) -> str | None:
        """Trimmed, non-empty, printable (the create rule)."""
        return None if value is None else check_label(value)


class CredentialsReplaceRequest(ConnectionTestRequest):
    """PUT /exchange-connections/{id}/credentials: new key material for the same connection.

    ``environment`` may be left out; when sent it must be the connection's own.
    """

    environment: ConnectionEnvironment | None = None  # type: ignore[assignment]


class ConnectionDeleteResponse(BaseModel):
    """What deleting a connection did: the strategies that were paused in the same step."""

    id: str
    deleted: bool
    paused_strategies: list[str]


class ConnectionEnableResponse(ConnectionResponse):
    """The connection switched on again, and the strategies its disabling had paused, now resumed."""

    resumed_strategies: list[str]


class FuturesEnableResponse(FuturesStateResponse):
    """futures/enable's answer: the switch, the test, and the futures settings now in force."""

    position_mode: PositionModeName | None = None
    margin_type: MarginTypeName | None = None
    leverage: int | None = None
