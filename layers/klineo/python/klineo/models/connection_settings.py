"""Request and response models of a connection's settings, key replacement and lifecycle routes.

Routes: PATCH /exchange-connections/{id}, PUT /exchange-connections/{id}/credentials, POST
/exchange-connections/{id}/enable, and the answer of DELETE /exchange-connections/{id}. The
futures settings (POST /exchange-connections/{id}/futures/enable) are ``klineo.models.futures_settings``:
PATCH takes the same fields (``ConnectionUpdateRequest`` extends ``FuturesSettingsRequest``).
"""


from decimal import Decimal
from typing import Annotated

from pydantic import Field, StrictBool, field_validator

from klineo.models.base import BaseModel
from klineo.models.common import (
    ConnectionEnvironment,
    ConnectionResponse,
    ConnectionTestRequest,
    check_label,
)
from klineo.models.futures_settings import FuturesSettingsRequest, Leverage

__all__ = [
    "ConnectionDeleteResponse",
    "ConnectionEnableResponse",
    "ConnectionUpdateRequest",
    "CredentialsReplaceRequest",
]


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
