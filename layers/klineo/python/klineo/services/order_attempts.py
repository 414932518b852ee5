"""GET /futures/order-attempts: the caller's order attempts, placed and refused, newest first (an audit).

A placed attempt is an order record (every order we claimed: the API's, strategies', closes and
protective orders; not the fills Binance made without us); a refused one is an order our risk gate
or the symbol's rules refused before its claim (``klineo.store.order_attempts``, where they are
written). Both sit in the caller's partition of the order history's index, so a page is ONE Query,
filtered on connection, symbol, outcome and an attempt-time range, with the history's opaque cursor
(``klineo.services.history_cursor``). Unlike GET /futures/orders nothing is reconciled on the way out:
a placed order shows its status as last recorded (that route, or the reconciler, brings it up to date).
As there, a page stops before its answer would pass its size bound (``fitted_page``) and resumes after
the last attempt it shows.
"""

from __future__ import annotations

from klineo.models.order_attempts import (
    AttemptRefusal,
    OrderAttemptItem,
    OrderAttemptsQuery,
    OrderAttemptsResponse,
)
from klineo.services.history_cursor import fitted_page, resume_after
from klineo.services.order_view import order_item
from klineo.store.order_attempts import OUTCOME_PLACED, OUTCOME_REFUSED, RefusedAttempt, list_attempt_page
from klineo.store.order_history import HistoryFilter
from klineo.store.orders import STATUS_REJECTED, OrderRecord

__all__ = ["list_order_attempts"]


def _refused(attempt: RefusedAttempt) -> OrderAttemptItem:
    return OrderAttemptItem(
        outcome=OUTCOME_REFUSED, created_at=attempt.created_at, client_order_id=attempt.client_order_id,
        connection_id=attempt.connection_id, symbol=attempt.symbol, origin=attempt.origin, side=attempt.side,
        type=attempt.type, quantity=attempt.quantity, quote_quantity=attempt.quote_quantity,
        price=attempt.price, position_side=attempt.position_side, reduce_only=attempt.reduce_only,
        role=attempt.role, refusal=AttemptRefusal(**attempt.refusal),
    )


def _placed(record: OrderRecord) -> OrderAttemptItem:
    order = order_item(record)
    error = record.error or {}
    refused = record.status == STATUS_REJECTED and error.get("category") and error.get("message")
    refusal = AttemptRefusal(category=str(error["category"]), field=error.get("field"),
                             message=str(error["message"])) if refused else None
    return OrderAttemptItem(
        outcome=OUTCOME_PLACED, created_at=order.created_at, client_order_id=order.client_order_id,
        connection_id=order.connection_id, symbol=order.symbol, origin=order.origin, side=order.side,
        type=order.type, quantity=order.quantity, price=order.price, role=order.role, refusal=refusal,
        order=order,
    )


def _attempt(item: OrderRecord | RefusedAttempt) -> OrderAttemptItem:
    return _refused(item) if isinstance(item, RefusedAttempt) else _placed(item)


def list_order_attempts(user_id: str, query: OrderAttemptsQuery) -> OrderAttemptsResponse:
    """A page of the caller's order attempts, newest first (see the module docstring)."""
    after = resume_after(query.cursor, query.from_ms)
    history = HistoryFilter(connection_id=query.connection_id, symbol=query.symbol,
                            from_ms=query.from_ms, to_ms=query.to_ms)
    items, last = list_attempt_page(user_id, history, query.outcome, query.limit, after)
    attempts, next_cursor = fitted_page(items, _attempt, last)
    return OrderAttemptsResponse(attempts=attempts, next_cursor=next_cursor)
