"""Request and response models of POST /exchange-connections/{id}/futures/enable (optional body).

Apart from ``klineo.models.connection_settings`` (PATCH takes the same settings and re-exports
them) so that enabling futures builds neither the connection routes' models
(``klineo.models.common``) nor the other settings routes' (issue 16 item 3, cold start).
"""


from typing import Annotated, Literal

from pydantic import Field

from klineo.models.fields import ApiModel
from klineo.models.futures_account import FuturesStateResponse

__all__ = [
    "FuturesEnableResponse",
    "FuturesSettingsRequest",
    "Leverage",
    "MarginTypeName",
    "PositionModeName",
]

PositionModeName = Literal["one_way", "hedge"]
MarginTypeName = Literal["isolated", "cross"]
Leverage = Annotated[
    int, Field(ge=1, le=125, strict=True,  # an integer, never true for 1 or "20" (as the strategy models)
               description="Initial leverage, 1 to 125 (the symbol's bracket may allow less).")
]


class FuturesSettingsRequest(ApiModel):
    """Futures defaults: the account's position mode, and the margin type and leverage per symbol.

    Position mode is account-wide on Binance and applied at once. Margin type and leverage are per
    symbol on Binance: they are applied the first time the connection trades a symbol.
    """

    position_mode: PositionModeName | None = None
    margin_type: MarginTypeName | None = None
    leverage: Leverage | None = None


class FuturesEnableResponse(FuturesStateResponse):
    """futures/enable's answer: the switch, the test, and the futures settings now in force."""

    position_mode: PositionModeName | None = None
    margin_type: MarginTypeName | None = None
    leverage: int | None = None
