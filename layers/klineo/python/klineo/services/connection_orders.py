"""Our orders on a connection that is being deleted: settled, the ones that would open a position
cancelled, the rest let go with what Binance last told us.

Deleting a connection deletes its key, after which Binance can no longer be asked about the orders we
placed with it. So while the key still exists (``klineo.services.connection_delete`` calls this after
marking the connection and pausing its strategies, before deleting the secret), every record of the
connection the reconciler has not finished with goes through four steps:
1. **Cancelled when it could open or grow a position**: an order of ours, not reduce-only, that our
   record shows open or not yet known: a resting LIMIT entry, a conditional entry (a STOP_MARKET
   that is not a stop-loss / take-profit of ours), one whose answer was lost.
   Once the key is gone, nobody would place its stops when it fills, nor close what it opened. These
   go first, so a budget that runs out is spent on them; each is then read back (a partly filled
   entry gets its stops).
2. **Settled** (``klineo.services.reconcile``): every other record is read back with its fills. A
   filled entry's missing stop-loss / take-profit is placed, and a stop whose sibling fired or whose
   position reads 0 is cancelled, as in any reconciler run.
3. **Kept when it can only reduce a position**: a stop-loss / take-profit guarding an open position,
   a reduce-only order. Cancelling them would leave the position without the protection the user
   asked for. They stay on Binance, no longer managed by KLINEO: when one of a stop pair fires,
   the user cancels the other.
4. **Let go**: every record still not settled is marked unmanaged (``unmanaged_since``,
   ``unmanaged_reason``) and leaves the reconciler's index, keeping Binance's last known state. One
   conditional write each, several in flight at once (``mark_all_unmanaged``): a connection with thousands
   of them is let go of in seconds, not past the delete's timeout. A delete stopped by a failed mark leaves
   the connection being deleted, with its key; a second DELETE marks the rest.

Before any of it, the connection is marked as being deleted (``klineo.store.connections.mark_deleting``,
by the delete, which hands this the mark's token), even when no record is unsettled. From then on no
order of the connection is recorded, and so none is sent, by anyone but this wind-down: API orders and
strategy claims are refused by their claim transaction (``connection_deleting``), and the stop-loss /
take-profit a scheduled reconciler run or a strategy turn would place for an entry (both read the
connection earlier, and may hold its key) is refused by its record's own write
(``klineo.store.order_claim.ConnectionGuard``). Without it, such a stop could reach Binance after this
answered, missing from ``left_open``, on a key nobody manages any more, and close a position the user
later opens by hand. The wind-down's own stops (step 2) pass: its reconciler presents the mark's token.
An order recorded before the mark and still being sent is in the list below with its last known state
(e.g. PENDING), so the answer names it too.

All of it runs within ``WIND_DOWN_WEIGHT`` and ``WIND_DOWN_SECONDS``, the client's own timeouts and
retry waits included (``call_deadline``), so the delete reaches deleting the key before its timeout.
The answer lists what was cancelled and what is left open on Binance. ``checked`` says whether
Binance answered for all of it. This is best effort by design. A key Binance refuses, Binance
unreachable, or the budget (request weight and time) spent never blocks deleting the key: a user may
be deleting it because it leaked. Records that could not be read are let go with their last known
state, and ``checked`` is false.
"""

from __future__ import annotations

import dataclasses
import time

from klineo.errors import KlineoError
from klineo.observability import logger
from klineo.services.risk import params_reduce
from klineo.store.order_history import list_unsettled_of
from klineo.store.orders import (
    FINAL_STATUSES,
    FOREIGN_ORIGINS,
    KIND_ALGO,
    KIND_ORDER,
    PROTECTIVE_ROLES,
    STATUS_PENDING,
    STATUS_UNKNOWN,
    UNMANAGED_CONNECTION_DELETED,
    OrderRecord,
    get_order_records,
    mark_all_unmanaged,
)

__all__ = ["WIND_DOWN_SECONDS", "WIND_DOWN_WEIGHT", "ConnectionOrders", "wind_down_orders"]

# At most this request weight (a quarter of a reconciler run's) and time: the delete is a request
# (20 s timeout), and the secret and the item are deleted after this.
WIND_DOWN_WEIGHT = 60
WIND_DOWN_SECONDS = 8.0
# Open on Binance as far as our record knows, or possibly (an answer never learned).
_MAYBE_OPEN = frozenset({"NEW", "PARTIALLY_FILLED", STATUS_PENDING, STATUS_UNKNOWN})
_MAYBE_OPEN_ALGO = frozenset({"NEW", STATUS_PENDING, STATUS_UNKNOWN})


@dataclasses.dataclass(frozen=True)
class ConnectionOrders:
    """What became of the connection's orders: cancelled now, left open on Binance, all answered for."""

    cancelled: list[OrderRecord]
    left_open: list[OrderRecord]
    checked: bool


def _opens_exposure(record: OrderRecord) -> bool:
    """True for an order of ours, maybe open, that can open or grow a position: a regular one, or a
    conditional one that is not a stop-loss / take-profit (a STOP_MARKET entry opens one when it fires)."""
    if record.origin in FOREIGN_ORIGINS or params_reduce(record.params):
        return False
    if record.kind == KIND_ORDER:
        return record.status in _MAYBE_OPEN
    conditional_entry = record.kind == KIND_ALGO and record.role not in PROTECTIVE_ROLES
    return conditional_entry and record.status in _MAYBE_OPEN_ALGO


def wind_down_orders(user_id: str, connection_id: str, token: str) -> ConnectionOrders:
    """Settle, cancel and let go of the unsettled orders of a connection marked as being deleted with
    ``token`` (``mark_deleting``; see the module docstring)."""
    # No order of the connection is recorded after the mark by anyone else (module docstring); marked
    # before the list is read, so an order recorded earlier is on it (or, its record being a few ms old,
    # in the index by the time the let-go lists it again).
    records = list_unsettled_of(user_id, connection_id)
    if not records:
        return ConnectionOrders(cancelled=[], left_open=[], checked=True)
    # Loaded here: deleting a connection without open orders never loads the Binance client.
    from klineo.binance import call_deadline
    from klineo.services.reconcile import Reconciler

    reconciler = Reconciler(weight=WIND_DOWN_WEIGHT, wind_down=token)
    try:
        reconciler.account(user_id, connection_id)  # the key is read once, before any order
    except KlineoError as exc:
        logger.warning("orders of a deleted connection not checked", extra={"category": exc.category.value})
        return _let_go(user_id, connection_id, [], checked=False)
    entries = [r for r in records if _opens_exposure(r)]
    # One deadline for the run and the client: no call is sent once it has passed, and a call sent just
    # before it to a Binance that hangs (10 s read timeout, retried) stops with it too.
    with call_deadline(time.time() + WIND_DOWN_SECONDS):
        reconciler.cancel_orders(entries)
        reconciler.settle([r for r in records if r not in entries])
    counts = reconciler.counts
    checked = not (reconciler.stopped or counts["errors"] or counts["protection_failed"]
                   or counts["protection_waiting"])
    return _let_go(user_id, connection_id, reconciler.cancelled, checked)


def _let_go(user_id: str, connection_id: str, cancelled_ids: list[str], checked: bool) -> ConnectionOrders:
    """Mark what is still unsettled unmanaged; the cancelled and the still open, as stored now."""
    unsettled = [record.client_order_id for record in list_unsettled_of(user_id, connection_id)]
    let_go = mark_all_unmanaged(user_id, unsettled, UNMANAGED_CONNECTION_DELETED)
    cancelled = get_order_records(user_id, cancelled_ids) if cancelled_ids else {}
    left_open = [record for record in let_go if record is not None and record.status not in FINAL_STATUSES]
    logger.info("orders of a deleted connection wound down", extra={
        "cancelled": len(cancelled), "left_open": len(left_open), "unmanaged": len(let_go),
        "checked": checked})
    return ConnectionOrders(cancelled=[cancelled[i] for i in cancelled_ids if i in cancelled],
                            left_open=left_open, checked=checked)
