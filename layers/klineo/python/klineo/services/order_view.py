"""An order record as the API shows it: one item of the order history, also in a connection's delete answer.

Apart from ``klineo.services.order_history`` so that deleting a connection, which lists the orders it
cancelled and left open, does not load the reconciler (and the Binance client) at cold start.
"""

from __future__ import annotations

from typing import Any

from klineo.models.order_history import OrderFill, OrderHistoryItem
from klineo.store.orders import OrderRecord, is_settled

__all__ = ["order_item"]


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def order_item(record: OrderRecord) -> OrderHistoryItem:
    """One record as the history shows it (Binance's answer first, then what we sent)."""
    result, params = record.result or {}, record.params
    return OrderHistoryItem(
        client_order_id=record.client_order_id, connection_id=record.connection_id, symbol=record.symbol,
        kind=record.kind, origin=record.origin, role=record.role,
        parent_client_order_id=record.parent_client_order_id, status=record.status,
        settled=is_settled(record.status, record.fills), order_id=record.order_id,
        side=_text(result.get("side") or params.get("side")),
        type=_text(result.get("type") or params.get("type")),
        quantity=_text(result.get("quantity") or params.get("quantity")),
        price=_text(result.get("price") or params.get("price")),
        trigger_price=_text(params.get("triggerPrice")),
        executed_quantity=_text(result.get("executed_quantity")),
        average_price=_text(result.get("average_price")),
        created_at=record.created_at, updated_at=record.updated_at,
        fills=[OrderFill(**fill) for fill in record.fills] if record.fills is not None else None,
        unmanaged_since=record.unmanaged_since, unmanaged_reason=record.unmanaged_reason,
    )
