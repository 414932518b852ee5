"""POST /futures/order/check: the dry run of POST /futures/order, for a form to check an order before it
is placed.

It takes the same body and runs the real route's own steps (``klineo.services.futures.preview_futures_order``:
the risk gate, quote-size conversion, the valuation, the symbol's grid), so its verdict is the one the
real route would give now: the order as it would be sent, or the same refusal (category, field,
message). It needs no Idempotency-Key, claims and records nothing and sends no order: its AWS cost is
ONE consistent read of the connection and both kill switches, its Binance reads the real route's
(exchangeInfo, cached; the mark price when the valuation or a MARKET order needs it). A refusal of a
typed value off the symbol's grid comes with the valid values nearest to it (``valid_nearby``); a price
outside PERCENT_PRICE's band, where the real route checks it (a stop-limit's against its trigger, a LIMIT's
against the mark when its valuation read it), is refused with the band. What only Binance decides once the
order arrives (margin, the band of a BUY LIMIT, which reads no mark, the leverage brackets that applying
the connection's settings on a symbol's first order meets) is not foreseen: the dry run changes no setting.
"""

from __future__ import annotations

from typing import Any

from klineo.binance import call_deadline
from klineo.binance.filters import get_symbol_rules
from klineo.models.futures import FuturesOrderRequest
from klineo.models.order_check import OrderCheckResponse, OrderRefusal, ValidNearby
from klineo.services.futures import OrderPreview, preview_futures_order
from klineo.services.orders import Deadline
from klineo.services.symbol_settings import futures_client
from klineo.validation import plain_text, plain_text_or_none

__all__ = ["check_futures_order"]


def _valid_nearby(preview: OrderPreview) -> ValidNearby | None:
    """The grid values around a typed value the refusal names, when that value is off the grid."""
    field = preview.refusal.field if preview.refusal is not None else None
    value = preview.order.typed_value(field) if field is not None else None
    if value is None:
        return None
    rules = get_symbol_rules(futures_client(preview.connection), preview.order.symbol)  # cached: read already
    below, above = rules.valid_around(field, value, preview.order.type.endswith("MARKET"))
    if value in (below, above):
        return None  # on the grid: refused for another reason (a bound, the minimum notional)
    return ValidNearby(field=field, below=plain_text_or_none(below), above=plain_text_or_none(above))


def _sent_values(preview: OrderPreview) -> dict[str, Any]:
    """quantity, price, trigger price and parameters as they would be sent (else as far as known)."""
    sent, order = preview.sent, preview.order
    if sent is None:
        return {"quantity": plain_text_or_none(order.quantity), "price": plain_text_or_none(order.price),
                "trigger_price": plain_text_or_none(order.triggerPrice)}
    params = sent.to_params("")
    params.pop("newClientOrderId", None)
    params.pop("clientAlgoId", None)
    return {"quantity": plain_text_or_none(sent.quantity), "price": plain_text_or_none(sent.price),
            "trigger_price": plain_text_or_none(getattr(sent, "trigger_price", None)), "params": params}


def check_futures_order(user_id: str, order: FuturesOrderRequest, lambda_context: Any = None
                        ) -> OrderCheckResponse:
    """What POST /futures/order would do with ``order`` now, doing none of it (see the module docstring)."""
    with call_deadline(Deadline.of_invocation(lambda_context).at):
        preview = preview_futures_order(user_id, order)
        nearby = _valid_nearby(preview)
    refusal = preview.refusal
    return OrderCheckResponse(
        ok=refusal is None, connection_id=preview.connection.connection_id, symbol=order.symbol,
        kind="algo" if order.conditional else "order", **_sent_values(preview),
        notional=plain_text_or_none(preview.notional),
        max_notional_usdt=plain_text(preview.connection.max_notional_usdt),
        refusal=None if refusal is None else OrderRefusal(
            category=refusal.category, message=refusal.message, retryable=refusal.retryable,
            field=refusal.field),
        valid_nearby=nearby,
    )
