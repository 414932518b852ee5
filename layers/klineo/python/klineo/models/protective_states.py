"""The state of an entry's stop-loss / take-profit, as the order routes and cancel-all answer it.

Apart from ``klineo.models.futures`` (which re-exports it) so that the open-orders routes, whose cancel-all
answers the stops it places, do not load the order routes' request models at their cold start.
"""

from typing import Literal

from pydantic import Field

from klineo.models.base import BaseModel

__all__ = ["ProtectiveOrderState"]


class ProtectiveOrderState(BaseModel):
    """A stop-loss, take-profit (or a strategy's trailing stop) attached to an entry: Binance's algo order,
    or why it is not placed yet."""

    role: Literal["stop_loss", "take_profit", "trailing_stop"]
    client_algo_id: str = Field(
        description="Derived from the entry's clientOrderId (suffix -sl, -tp; -ts: a strategy's trailing "
                    "stop).")
    type: str
    trigger_price: str | None = None
    quantity: str | None = None
    status: str = Field(
        description="Binance's algoStatus (NEW, TRIGGERED, FINISHED, CANCELED, ...); WAITING_FOR_FILL "
                    "while the entry has not filled (it is placed once it has); REJECTED when Binance "
                    "refused it for good (e.g. its trigger was already crossed); UNKNOWN_PURGED when an "
                    "attempt to place it went unanswered and Binance no longer knows it past its retention: "
                    "its outcome can never be learned, it is not standing and is never sent again under "
                    "that id. While the entry's position stands it is placed again under a new one (the "
                    "suffix then ends in a generation: -sl1, ...), shown here instead.")
    algo_id: int | None = None
