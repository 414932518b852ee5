"""The API's view of an order Binance reported: a ``FuturesOrderResponse`` from an ``OrderResult``.

Placing (``klineo.services.futures``), the status read and cancelling
(``klineo.services.order_cancel``) answer with it. A module of its own so cancelling an order does
not load the whole order-placing path (claims, gates, risk checks) at import.

Its numbers are written by ``klineo.validation.plain_text``, the rule of every order number the API
shows and stores (no exponent, no trailing zeros): Binance pads some (``avgPrice`` "70844.90000"),
and a replay built from the stored record must read the same as the first answer. A quantity Binance
sends as 0 where none applies (a closePosition order) is null, by ``klineo.validation.positive_or_none``.
"""

from __future__ import annotations

from klineo.models.futures import FuturesOrderResponse
from klineo.services.orders import OrderResult
from klineo.validation import plain_text, plain_text_or_none, positive_or_none

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
        # Binance's placeholder 0 of a closePosition order (it is for the whole position) is None, as the
        # open-orders and positions routes say it.
        quantity=plain_text_or_none(positive_or_none(result.quantity)),
        executed_quantity=plain_text(result.executed_quantity),
        price=plain_text_or_none(result.price),
        average_price=plain_text_or_none(result.average_price),
        time_in_force=result.time_in_force,
        reduce_only=result.reduce_only,
        position_side=result.position_side,
        update_time=result.update_time,
        kind=result.kind,
        trigger_price=plain_text_or_none(result.trigger_price),
        close_position=result.close_position,
        source=source or result.source,
    )
