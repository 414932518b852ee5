"""An order record as the API shows it: one item of the order history; its summary, without the fills, in a
connection's delete answer.

Apart from ``klineo.services.order_history`` so that deleting a connection, which lists the orders it
cancelled and left open, does not load the reconciler (and the Binance client) at cold start.

What an order executed is Binance's answer for it (a fired algo order's: its triggered order's, see
``klineo.services.algo_orders``). A fired algo order recorded before that answer was kept says 0 while
its fills (Binance's trades of it) say otherwise: its executed quantity and average price then come
from the fills, so no order reads as having executed nothing next to the trades it made. A record that lists
only the first of its fills (``klineo.store.order_fills``) says so (``fills_shortened``), with how many there
were and the exact totals of all: every figure is exact whatever the list holds. Numbers are written by
``klineo.validation.plain_text``, as every order answer's; a closePosition order's quantity (Binance's
placeholder 0) is null, as the order routes answer it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from klineo.models.order_history import OrderFill, OrderFillTotals, OrderHistoryItem, OrderSummary
from klineo.store.order_fills import FillTotals, fill_totals
from klineo.store.orders import OrderRecord, is_settled
from klineo.validation import decimal_or_none, plain_text, plain_text_or_none, positive_or_none

__all__ = ["executed_of", "order_item", "order_summary"]


# An average worked out from fills is rounded to this (Binance's finest money precision).
_AVERAGE_PLACES = Decimal("1E-8")


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _number(value: Any) -> str | None:
    """A stored number (Decimal or text) in the API's plain form; None when absent."""
    return plain_text_or_none(decimal_or_none(value))


def _average(totals: FillTotals) -> str | None:
    """The fills' average price (value / quantity), rounded to ``_AVERAGE_PLACES``; None without any."""
    return plain_text((totals.value / totals.quantity).quantize(_AVERAGE_PLACES)) if totals.quantity else None


def _executed(result: dict[str, Any], totals: FillTotals | None) -> tuple[str | None, str | None]:
    """(executed quantity, average price): Binance's answer for the order, else (it says 0) its fills'."""
    executed, average = _number(result.get("executed_quantity")), _number(result.get("average_price"))
    if executed not in (None, "0") or totals is None or not totals.quantity:
        return executed, average
    return plain_text(totals.quantity), _average(totals)


def executed_of(record: OrderRecord) -> tuple[str | None, str | None]:
    """(executed quantity, average price) of ``record`` as the history shows them (``_executed``): the
    positions view's trades not ours say the same (an order Binance forgot answers 0, its fills do not)."""
    return _executed(record.result or {}, _totals(record))


def _shortened(record: OrderRecord, totals: FillTotals | None) -> OrderFillTotals | None:
    """The exact totals of a record that lists only the first of its fills (``fills_summary``), else None."""
    if record.fills_summary is None or totals is None:
        return None
    return OrderFillTotals(
        quantity=plain_text(totals.quantity), average_price=_average(totals),
        realized_pnl=plain_text(totals.realized_pnl),
        commission={asset: plain_text(amount) for asset, amount in totals.commission.items()})


def _summary(record: OrderRecord, totals: FillTotals | None) -> OrderSummary:
    """The record without its fills (Binance's answer first, then what we sent); ``totals``: of its fills."""
    result, params = record.result or {}, record.params
    executed_quantity, average_price = _executed(result, totals)
    return OrderSummary(
        client_order_id=record.client_order_id, connection_id=record.connection_id, symbol=record.symbol,
        kind=record.kind, origin=record.origin, role=record.role,
        parent_client_order_id=record.parent_client_order_id, status=record.status,
        settled=is_settled(record.status, record.fills), order_id=record.order_id,
        side=_text(result.get("side") or params.get("side")),
        type=_text(result.get("type") or params.get("type")),
        # Binance's placeholder 0 of a closePosition order (it is for the whole position) is None, as the
        # order routes and open-orders answer it.
        quantity=plain_text_or_none(positive_or_none(result.get("quantity") or params.get("quantity"))),
        price=_number(result.get("price") or params.get("price")),
        trigger_price=_number(params.get("triggerPrice")),
        executed_quantity=executed_quantity, average_price=average_price,
        created_at=record.created_at, updated_at=record.updated_at,
        fills_count=totals.count if totals is not None else None,
        unmanaged_since=record.unmanaged_since, unmanaged_reason=record.unmanaged_reason,
    )


def _totals(record: OrderRecord) -> FillTotals | None:
    return fill_totals(record.fills, record.fills_summary) if record.fills is not None else None


def order_summary(record: OrderRecord) -> OrderSummary:
    """One record without its fills, as a connection's delete answer lists it."""
    return _summary(record, _totals(record))


def order_item(record: OrderRecord) -> OrderHistoryItem:
    """One record as the history shows it: its summary and its fills."""
    totals = _totals(record)
    return OrderHistoryItem(
        **dict(_summary(record, totals)),
        fills=[OrderFill(**fill) for fill in record.fills] if record.fills is not None else None,
        fills_shortened=record.fills_summary is not None, fill_totals=_shortened(record, totals),
    )
