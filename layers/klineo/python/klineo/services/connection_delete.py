"""DELETE /exchange-connections/{id}: the connection marked as being deleted, its strategies paused, its
orders wound down, its secret and item deleted.

Apart from ``klineo.services.connections`` so that the other connection routes (list, create,
test) do not import what only deleting uses: the strategies store (through
``klineo.services.key_health``) and the connection-settings models.
"""

from __future__ import annotations

from klineo.models.connection_settings import ConnectionDeleteResponse
from klineo.models.order_history import OrderSummary
from klineo.models.paging import fit_page
from klineo.observability import logger
from klineo.services.connection_orders import ConnectionOrders, wind_down_orders
from klineo.services.key_health import pause_connection_strategies
from klineo.services.order_view import order_summary
from klineo.store import connections as connection_store
from klineo.store import secrets as secret_store

__all__ = ["delete_connection"]

# What the ``paused`` event of each strategy the delete paused tells the trader.
_DELETED = "Paused: its connection was deleted; create the strategy again on another connection to trade it."


def delete_connection(user_id: str, connection_id: str) -> ConnectionDeleteResponse:
    """Mark the connection as being deleted, pause its strategies, wind down its orders, delete the secret,
    then the item.

    The mark first (``mark_deleting``): from then on no strategy can be made active on the connection
    (``klineo.services.strategy_connection.require_runnable`` refuses it), so none resumed while the
    strategies are being paused escapes the pause, and a delete that fails anywhere after it leaves the
    connection refusing strategies and orders until a second DELETE finishes it. The strategies next:
    none may trade on a connection that is going away. Its orders next, while the key still exists
    (``klineo.services.connection_orders``: best effort, it never blocks the delete).
    Secret before item, so a failure never leaves an unreferenced key behind; a retry after a partial
    failure finds the item, tolerates the missing secret and finishes. The answer lists the strategies
    paused, the orders cancelled and the orders left open on Binance, without their fills: an order lists up
    to 1000 (some 270 KB), and a few dozen would pass Lambda's 6 MB answer limit (docs/binance-facts.md
    §17); GET /futures/orders lists them, page by page. Even without them, some 7,000 orders (each some
    700 bytes) would pass it: the lists hold as many as fit (``fit_page``), with the full counts and
    ``orders_shortened`` when some were left out, so a delete that finished never answers a 5xx.
    A repeat of a delete that stopped part way lists only what it did itself (what the earlier call paused,
    cancelled or let go is no longer open to it), and says so: ``earlier_attempt_since``.
    """
    connection = connection_store.require_connection(user_id, connection_id)
    token = connection_store.mark_deleting(user_id, connection_id)
    paused = pause_connection_strategies(user_id, connection_id, "connection_deleted", _DELETED)
    orders = wind_down_orders(user_id, connection_id, token)
    secret_store.delete_credentials(connection.secret_name)
    connection_store.delete_connection(user_id, connection_id)
    logger.info("connection deleted", extra={"connection_id": connection_id,
                                             "paused_strategies": len(paused)})
    cancelled, left_open, shown = _fitted(orders)
    return ConnectionDeleteResponse(
        id=connection_id, deleted=True, paused_strategies=paused,
        orders_cancelled=cancelled, orders_left_open=left_open,
        orders_cancelled_count=len(orders.cancelled), orders_left_open_count=len(orders.left_open),
        orders_shortened=shown < len(orders.cancelled) + len(orders.left_open), orders_checked=orders.checked,
        earlier_attempt_since=connection.deleting_since)


def _fitted(orders: ConnectionOrders) -> tuple[list[OrderSummary], list[OrderSummary], int]:
    """The summaries of the cancelled orders, then of those left open, as many as the answer's size bound
    holds (``fit_page``, the cancelled first: what the delete did), and how many that is."""
    records = [*orders.cancelled, *orders.left_open]
    summaries, shown = fit_page(records, order_summary)
    split = min(len(orders.cancelled), shown)
    return summaries[:split], summaries[split:], shown
