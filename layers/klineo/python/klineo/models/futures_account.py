"""Response models of the futures test, enable and disable routes.

A module of its own so the functions that test or switch a connection's futures state, and the
connection routes that answer with that state, do not create the order models at import.
"""


from pydantic import Field

from klineo.models.base import BaseModel

__all__ = ["FuturesAsset", "FuturesStateResponse", "FuturesTestResponse", "FuturesTestVerdict"]


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


class FuturesTestVerdict(BaseModel):
    """A connection's last futures test as it keeps it (``futures_last_test``): the verdict, not the balances,
    which go stale. ``category`` and ``message`` say why it failed (``ok`` false)."""

    ok: bool
    category: str | None = None
    message: str | None = None
    can_trade: bool | None = None
    tested_at: str


class FuturesStateResponse(BaseModel):
    """A connection's futures switch after enable/disable."""

    connection_id: str
    futures_enabled: bool
    test: FuturesTestResponse | None = None
