"""The API's view of an order Binance reported: a ``FuturesOrderResponse`` from an ``OrderResult``.

Placing (``klineo.services.futures``), the status read and cancelling
(``klineo.services.order_cancel``) answer with it. A module of its own so cancelling an order does
not load the whole order-placing path (claims, gates, risk checks) at import.
"""

from __future__ import annotations

from klineo.models.futures import FuturesOrderResponse
from klineo.services.orders import OrderResult

__all__ = ["futures_order_response"]


def futures_order_response(
    result: OrderResult, connection_id: str, source: str | None = None
) -> FuturesOrderResponse:
    """The API's view of an order Binance reported."""
    return FuturesOrderResponse(
        client_order_id=result.client_order_id,
        connection_id=connection_id,
        order_id=result.order_id,
        symbol=result.symbol,
        side=result.side,
        type=result.type,
        status=result.status,
        quantity=format(result.quantity, "f"),
        executed_quantity=format(result.executed_quantity, "f"),
        price=format(result.price, "f") if result.price is not None else None,
        average_price=format(result.average_price, "f") if result.average_price is not None else None,
        time_in_force=result.time_in_force,
        reduce_only=result.reduce_only,
        position_side=result.position_side,
        update_time=result.update_time,
        kind=result.kind,
        trigger_price=format(result.trigger_price, "f") if result.trigger_price is not None else None,
        close_position=result.close_position,
        source=source or result.source,
    )
