"""GET /futures/orders: the caller's orders from our records, regular and algo alike, newest first.

A page is one Query of the caller's own partition of ``gsi1`` (``klineo.store.order_history``),
filtered on connection, symbol, status and a creation-time range. The cursor is opaque to the
caller: the base64url text of the last record's index sort key (``<created ms>#<clientOrderId>``),
checked on the way back in (a cursor that does not decode to that shape is a 400 naming
``cursor``); every other key part comes from the caller's identity, so no cursor reaches another
user's orders. Records in the page that are not settled yet are reconciled on the way out
(``klineo.services.reconcile``) within a small request-weight budget, so a read shows Binance's
latest state; what the budget does not cover waits for the scheduled reconciler.
"""

from __future__ import annotations

import base64
import binascii
import re

from klineo.models.order_history import OrderHistoryQuery, OrderHistoryResponse
from klineo.models.paging import cursor_refused
from klineo.services.order_view import order_item
from klineo.services.reconcile import Reconciler
from klineo.store.order_history import HistoryFilter, list_order_page
from klineo.store.orders import OrderRecord, is_settled
from klineo.validation import CLIENT_ORDER_ID_PATTERN

__all__ = ["READ_SETTLE_MAX", "READ_WEIGHT", "decode_cursor", "encode_cursor", "list_orders"]

# On a read, at most this many unsettled records are reconciled, spending at most this weight.
READ_SETTLE_MAX = 5
READ_WEIGHT = 20
_SORT_KEY = re.compile(r"\d{13}#" + CLIENT_ORDER_ID_PATTERN.strip("^$"))


def encode_cursor(sort_key: str) -> str:
    """The opaque cursor of a page that ends at ``sort_key``."""
    return base64.urlsafe_b64encode(sort_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The sort key a cursor stands for; a 400 naming ``cursor`` when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not _SORT_KEY.fullmatch(text):
        raise cursor_refused()
    return text


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


def list_orders(user_id: str, query: OrderHistoryQuery) -> OrderHistoryResponse:
    """A page of the caller's orders, newest first (see the module docstring)."""
    after = decode_cursor(query.cursor) if query.cursor else None
    if after is not None and after < f"{query.from_ms or 0:013d}#":
        raise cursor_refused()  # before `from`: no page of this listing ends there (and DynamoDB
        # refuses a BETWEEN whose bounds are reversed)
    history = HistoryFilter(connection_id=query.connection_id, symbol=query.symbol, status=query.status,
                            from_ms=query.from_ms, to_ms=query.to_ms)
    records, last = list_order_page(user_id, history, query.limit, after)
    records = _settle_some(records)
    return OrderHistoryResponse(orders=[order_item(r) for r in records],
                                next_cursor=encode_cursor(last) if last else None)
