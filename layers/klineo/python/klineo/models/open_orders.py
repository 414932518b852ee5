"""Response models of the open-orders routes: Binance's open regular and algo orders, ours marked."""


from typing import Literal

from pydantic import Field

from klineo.models.base import BaseModel
from klineo.models.protective_states import ProtectiveOrderState

__all__ = ["CancelOpenOrdersResponse", "OpenOrder", "OpenOrdersResponse"]


class OpenOrder(BaseModel):
    """One open order at Binance: a regular order (/fapi/v1/openOrders) or an algo order not yet fired."""

    kind: Literal["order", "algo"] = Field(
        description="order: a regular order; algo: a conditional order of Binance's algo service "
                    "(client_order_id is its clientAlgoId, order_id its algoId).")
    client_order_id: str
    order_id: int | None = None
    symbol: str
    side: str
    position_side: str
    type: str
    status: str = Field(description=(
        "Binance's state of the order: NEW or PARTIALLY_FILLED (an algo order: NEW, TRIGGERING). In a "
        "cancel-all's answer, its state after the cancel (read back, or an algo order's own cancel "
        "confirmed): CANCELED, or what it reached first (FILLED; an algo order's TRIGGERED / FINISHED); "
        "UNKNOWN when it could not be read back, or not before the answer was due: it may have filled before "
        "the cancel reached it, and an algo order may still be open (read the open orders, or the order, "
        "again)."))
    quantity: str | None = None
    executed_quantity: str | None = None
    price: str | None = None
    trigger_price: str | None = None
    reduce_only: bool = False
    close_position: bool = False
    time_in_force: str | None = None
    update_time: int | None = None
    ours: bool = Field(description="True when this order was placed through this API (we hold its record).")
    origin: str | None = Field(default=None, description="Ours only: api, or the placing strategy's id.")
    role: str | None = Field(default=None, description="Ours only: stop_loss / take_profit of an entry.")
    parent_client_order_id: str | None = None


class OpenOrdersResponse(BaseModel):
    """A connection's open orders at Binance (optionally one symbol), regular then algo."""

    connection_id: str
    symbol: str | None = None
    orders: list[OpenOrder]


class CancelOpenOrdersResponse(BaseModel):
    """What a cancel-all on one symbol cancelled (regular and algo orders), each as Binance holds it then."""

    connection_id: str
    symbol: str
    cancelled: list[OpenOrder]
    protective_orders: dict[str, list[ProtectiveOrderState]] = Field(default_factory=dict, description=(
        "By client_order_id: each entry of ours in cancelled that executed before the cancel reached it "
        "(FILLED, or CANCELED with an executed_quantity) and asked for a stop-loss / take-profit, with them, "
        "placed now. Such an entry missing here had none placed yet: its next status read or the reconciler "
        "places them."))
