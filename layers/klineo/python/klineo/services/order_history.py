"""GET /futures/orders: the caller's orders from our records, regular and algo alike, newest first.

A page is one Query of the caller's own partition of ``gsi1`` (``klineo.store.order_history``),
filtered on connection, symbol, status and a creation-time range. The cursor is opaque to the
caller (``klineo.services.history_cursor``): the last record's index sort key, and every other key
part comes from the caller's identity, so no cursor reaches another user's orders. Records in the
page that are not settled yet are reconciled on the way out (``klineo.services.reconcile``) within a
small request-weight budget, so a read shows Binance's latest state; what the budget does not cover
waits for the scheduled reconciler. That settling runs inside the invocation's ``call_deadline``: the stops it
places record it (a lost one is sent again recvWindow + margin after it, ``klineo.services.protective``).
With a ``status`` filter, a record that settling moved out of that
status is left out of the page: a page may then hold fewer than ``limit`` orders (even none) and still
have a ``next_cursor``, which resumes after the last record read, so nothing is skipped. A page also
stops before its answer would pass its size bound (orders listing many fills; ``fitted_page``): it then
holds fewer than ``limit`` orders and resumes after the last one it shows.
"""

from __future__ import annotations

from typing import Any

from klineo.binance import call_deadline
from klineo.models.order_history import OrderHistoryQuery, OrderHistoryResponse
from klineo.services.history_cursor import decode_cursor, encode_cursor, fitted_page, resume_after
from klineo.services.order_view import order_item
from klineo.services.orders import Deadline
from klineo.services.reconcile import Reconciler
from klineo.store.order_history import HistoryFilter, list_order_page
from klineo.store.orders import OrderRecord, is_settled

__all__ = ["READ_SETTLE_MAX", "READ_WEIGHT", "decode_cursor", "encode_cursor", "list_orders"]

# On a read, at most this many unsettled records are reconciled, spending at most this weight.
READ_SETTLE_MAX = 5
READ_WEIGHT = 20


def _settle_some(records: list[OrderRecord]) -> list[OrderRecord]:
    """Reconcile the first few unsettled records of the page, within the read budget."""
    due = [i for i, r in enumerate(records)
           if not is_settled(r.status, r.fills) and r.unmanaged_since is None][:READ_SETTLE_MAX]
    if not due:
        return records
    fresh = Reconciler(weight=READ_WEIGHT).settle([records[i] for i in due])
    updated = list(records)
    for index, record in zip(due, fresh, strict=True):
        updated[index] = record
    return updated


def list_orders(user_id: str, query: OrderHistoryQuery, lambda_context: Any = None) -> OrderHistoryResponse:
    """A page of the caller's orders, newest first (see the module docstring)."""
    after = resume_after(query.cursor, query.from_ms)
    history = HistoryFilter(connection_id=query.connection_id, symbol=query.symbol, status=query.status,
                            from_ms=query.from_ms, to_ms=query.to_ms)
    records, last = list_order_page(user_id, history, query.limit, after)
    with call_deadline(Deadline.of_invocation(lambda_context).at):
        records = _settle_some(records)
    records = [r for r in records if query.status is None or r.status == query.status]
    orders, next_cursor = fitted_page(records, order_item, last)
    return OrderHistoryResponse(orders=orders, next_cursor=next_cursor)
