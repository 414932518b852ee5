"""Response models of the positions routes: the positions view and the protective orders guarding them."""


from typing import Literal

from pydantic import Field

from klineo.models.base import BaseModel

__all__ = ["ForeignTrade", "FuturesPosition", "FuturesPositionsResponse", "ProtectiveOrder"]


class ProtectiveOrder(BaseModel):
    """One open conditional (algo) order on the position's symbol and side, as Binance lists it."""

    client_algo_id: str
    algo_id: int | None = None
    type: str = Field(examples=["STOP_MARKET"])
    side: str
    position_side: str
    trigger_price: str | None = None
    quantity: str | None = None
    close_position: bool = False
    reduce_only: bool = False
    status: str
    role: str | None = Field(default=None, description="stop_loss / take_profit when it is an entry's "
                             "protective order placed through this API; None for any other algo order.")


class FuturesPosition(BaseModel):
    """One open USDT-M position, from Binance's /fapi/v3/positionRisk and /fapi/v1/symbolConfig."""

    symbol: str
    side: Literal["LONG", "SHORT"]
    position_side: Literal["BOTH", "LONG", "SHORT"] = Field(
        description="Binance's positionSide: BOTH for a one-way account, LONG or SHORT for a hedge account.")
    amount: str = Field(description="Position size in the base asset, always positive (see side).")
    entry_price: str
    mark_price: str
    unrealized_pnl: str
    leverage: int | None = None
    margin_type: Literal["isolated", "cross"] | None = None
    liquidation_price: str | None = Field(default=None, description="None when Binance shows none (0).")
    notional: str = Field(description="Position value in USDT at the mark price, always positive.")
    update_time: int | None = None
    protective_orders: list[ProtectiveOrder] = Field(
        description="Open algo (conditional) orders closing this position: stop-loss, take-profit, trailing.")


class ForeignTrade(BaseModel):
    """An order Binance filled on this account that we did not place, as the reconciler recorded it."""

    client_order_id: str
    symbol: str
    origin: Literal["manual", "liquidation", "adl", "settlement"] = Field(
        description="liquidation (Binance's autoclose- ids), adl (adl_autoclose), settlement "
                    "(settlement_autoclose-), or manual (placed outside this backend, e.g. Binance's app).")
    side: str | None = None
    status: str
    executed_quantity: str | None = None
    average_price: str | None = None
    created_at: str


class FuturesPositionsResponse(BaseModel):
    """A connection's open futures positions, as Binance reports them now."""

    connection_id: str
    positions: list[FuturesPosition]
    recent_trades_not_ours: list[ForeignTrade] = Field(
        default_factory=list,
        description="The last 7 days' fills we did not place on this connection, newest first, labelled: "
                    "a liquidation or ADL that closed a position shows here after the reconciler saw it.")
