"""Closing a position: one MARKET order through ``klineo.services.futures``, exactly once.

Closing (``close_position``) is an ordinary order through ``klineo.services.futures``: a MARKET
order for the whole position, reduceOnly in one-way mode, positionSide in hedge mode (where Binance
refuses reduceOnly; ``position_side`` picks the side there, and is a 400 on a one-way connection). It
passes the same risk gate (a close passes under a kill switch) and the same exactly-once machinery; the
Idempotency-Key is required (428 without it). A retry with the same key
does not read the position again (it may be 0 by then): the order the key placed is found from its
record and repeated with the same body, so the idempotency layer answers with the first outcome, and
with the ``position_left`` the first close answered (kept on that record, which the retry reads anyway).
The close's record carries ``role`` = ``position_close``: a key that placed another order (even a
reduce-only MARKET on the same symbol), or that closed another side than the ``position_side`` a retry
names, is a 409, never taken for this close (nor followed by the cancelling of the position's stops).
The quantity is the position's size rounded DOWN to the symbol's MARKET_LOT_SIZE grid (Binance checks a
MARKET order against MARKET_LOT_SIZE, whose step may be coarser than the LOT_SIZE step the position was
built on by LIMIT orders), and capped at MARKET_LOT_SIZE's maxQty (Binance refuses a MARKET order above
it, -4005; docs/binance-facts.md §6): it is our number, read from Binance, so it is put on the grid
rather than refused as a typed quantity would be, and a position too large for one MARKET order is
closed as far as one may go instead of not at all (a trader is never trapped). What is left is
answered as ``position_left``: past the cap, the rest, to close by sending the close again with a NEW
Idempotency-Key (the first key keeps answering the first close); what the grid alone leaves (less than
one MARKET step) is closed with a reduce-only LIMIT order. A position smaller than one MARKET order's
minimum is refused (400 naming symbol) before anything is sent. A position Binance holds in another
position mode than the connection's (the account was switched outside KLINEO; the rows say which) is a
409 naming position_mode that says how to line the two up, before anything is sent. A close is never
rounded UP: a reduce-only order larger than the position may be refused (-2022), and a hedge-mode close
cannot carry reduceOnly at all.
After the close has FILLED, the open algo orders that close that position side (our stop-loss /
take-profit and any other reduce-only or closePosition ones; in one-way mode, any conditional order on the
closing side, such as a SELL stop of a long sent without reduceOnly, which once flat would open a short)
that Binance created by the time it filled are cancelled (``klineo.services.protective``; one created
later guards a position opened since, which a late retry of the key must not strip), unless the close left
at least one MARKET step of the position open (the cap): they still guard that part. A closePosition one
does whatever its size; an API entry's stop-loss / take-profit sized for more than is left (Binance may
refuse it when it fires: docs/binance-facts.md §4) is re-placed for what is left by the order path
itself, before this module looks (``klineo.services.protective_resize``), as after a close that EXPIRED
having filled only in part.
A close that filled nothing leaves them armed, since the position they guard is still there; one that
ended EXPIRED (thin liquidity) answers what it did not execute in ``position_left`` too.
A FILLED close that leaves less than one MARKET step is not followed by the order path's re-fitting
(``protective_resize.refit_after``): this module cancels those orders anyway, and re-fitting first read
the same open algo orders, and the position, for nothing.

Every close re-fits the stops of what it leaves (``klineo.services.protective_resize``, which
``klineo.services.futures`` loads on a reducing order only): this module imports it (``leaves_a_part``,
the one rule of what a close leaves), so the close function loads it at init, not on its first close.

Apart from ``klineo.services.positions`` (the read) so that GET positions does not import the order
path (``klineo.services.futures`` and its stores), which only closing uses.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from klineo.binance import call_deadline
from klineo.binance.filters import get_symbol_rules
from klineo.errors import ErrorCategory, KlineoError
from klineo.models.futures import FuturesOrderRequest, FuturesOrderResponse
from klineo.observability import logger
from klineo.services.futures import IDEMPOTENCY_HEADER, place_futures_order
from klineo.services.orders import Deadline, idempotent_client_order_id
from klineo.services.position_rows import open_position_rows, position_number
from klineo.services.protective import cancel_protective_orders
from klineo.services.protective_resize import leaves_a_part
from klineo.services.risk import HEDGE, MODE_NAMES, ONE_WAY, realign_mode_advice, reduces_position
from klineo.services.symbol_settings import futures_client
from klineo.store.connections import Connection, require_connection
from klineo.store.orders import CLOSE_ROLE, OrderRecord, get_order_record
from klineo.validation import check_symbol, plain_text

__all__ = ["CLOSE_ROLE", "close_position"]


def _market_quantity(connection: Connection, symbol: str, size: Decimal) -> Decimal:
    """The most of a position of ``size`` one MARKET order can close: ``size`` capped at the symbol's
    MARKET_LOT_SIZE maxQty and rounded down to its grid; 400 naming symbol when not even the MARKET minimum
    fits in it."""
    rules = get_symbol_rules(futures_client(connection), symbol)
    step, minimum, maximum = rules.lot_for(market_order=True)
    quantity = rules.round_quantity(min(size, maximum) if maximum > 0 else size, market_order=True)
    if quantity <= 0 or quantity < minimum:
        raise KlineoError(
            ErrorCategory.INVALID_REQUEST,
            f"This position is smaller than the least a MARKET order can close on {symbol} (MARKET step "
            f"size {plain_text(step)}, minimum {plain_text(minimum)}): close it with a reduce-only LIMIT "
            "order (POST /futures/order).",
            field="symbol",
        )
    return quantity


def _check_account_mode(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """409 naming position_mode when Binance holds the position in another mode than the connection's
    (the account was switched outside KLINEO): the rows just read say which, at no further call, where
    the gate would refuse the close naming a positionSide the trader never sent."""
    hedge = any(str(row.get("positionSide") or "BOTH") != "BOTH" for row in rows)
    account_mode = HEDGE if hedge else ONE_WAY
    if not rows or connection.position_mode in (None, account_mode):
        return
    raise KlineoError(
        ErrorCategory.CONFLICT,
        f"Binance holds this position in {MODE_NAMES[account_mode]} mode, but this connection is set to "
        f"{MODE_NAMES[connection.position_mode]} mode (the account was switched outside KLINEO): nothing was "
        f"sent. To close it, {realign_mode_advice(account_mode)}, then send the close again.",
        field="position_mode",
    )


def _rows_of_side(connection: Connection, rows: list[dict[str, Any]],
                  position_side: str | None) -> list[dict[str, Any]]:
    """The position rows ``position_side`` picks (all without it); 400 naming it on a one-way connection
    (or one whose position Binance holds one-way), where a position has no side to pick; 404 naming it
    when only the other side is open."""
    if position_side is None:
        return rows
    sides = [str(r.get("positionSide") or "BOTH") for r in rows]
    if connection.position_mode == ONE_WAY or "BOTH" in sides:
        raise KlineoError(
            ErrorCategory.INVALID_REQUEST,
            "position_side is only for hedge-mode connections: this one is in one-way mode, where a symbol "
            "holds one position; leave position_side out to close it.",
            field="position_side",
        )
    picked = [row for row, side in zip(rows, sides, strict=True) if side == position_side]
    if rows and not picked:
        raise KlineoError(ErrorCategory.NOT_FOUND, f"There is no {position_side} position open on this "
                          "symbol on this connection, only the other side: nothing was sent.",
                          field="position_side")
    return picked


def _closing_order(connection: Connection, symbol: str,
                   position_side: str | None) -> tuple[FuturesOrderRequest, Decimal]:
    """A MARKET order for the whole position (as much as one MARKET order may: ``_market_quantity``):
    reduceOnly in one-way mode, positionSide in hedge mode; with the size it leaves open."""
    rows = open_position_rows(connection, symbol)
    _check_account_mode(connection, rows)
    rows = _rows_of_side(connection, rows, position_side)
    if not rows:
        message = f"There is no open position on {symbol} on this connection."
        raise KlineoError(ErrorCategory.NOT_FOUND, message, field="symbol")
    if len(rows) > 1:
        raise KlineoError(
            ErrorCategory.INVALID_REQUEST,
            "This symbol holds both a LONG and a SHORT position: choose one with position_side.",
            field="position_side",
        )
    amount = position_number(rows[0], "positionAmt")
    held_side = str(rows[0].get("positionSide") or "BOTH")
    hedge = held_side in ("LONG", "SHORT")
    long = held_side == "LONG" or (not hedge and amount > 0)
    quantity = _market_quantity(connection, symbol, abs(amount))
    order = FuturesOrderRequest(
        connection_id=connection.connection_id,
        symbol=symbol,
        side="SELL" if long else "BUY",
        type="MARKET",
        quantity=quantity,
        reduceOnly=not hedge,
        positionSide=held_side,
    )
    return order, abs(amount) - quantity


def _same_close(order: FuturesOrderRequest, connection_id: str, symbol: str) -> bool:
    closes = reduces_position(order.side, order.positionSide, order.reduceOnly)
    same_place = order.connection_id == connection_id and order.symbol == symbol
    return closes and same_place and order.type == "MARKET"


def _recorded_close(record: OrderRecord, connection_id: str, symbol: str,
                    position_side: str | None) -> FuturesOrderRequest:
    """The close this key placed, to repeat; 409 when the key placed anything else, or a close of another
    side than ``position_side`` asks (none asked: the key's own close, whichever side it picked)."""
    order = FuturesOrderRequest.model_validate(record.request) if record.role == CLOSE_ROLE else None
    other_side = order is not None and position_side not in (None, order.positionSide)
    if order is None or other_side or not _same_close(order, connection_id, symbol):
        raise KlineoError(
            ErrorCategory.CONFLICT,
            f"This {IDEMPOTENCY_HEADER} was already used for a different order; use a new key.",
            field=IDEMPOTENCY_HEADER,
        )
    return order


def close_position(
    user_id: str,
    connection_id: str,
    symbol: str,
    idempotency_key: str | None,
    position_side: str | None = None,
    lambda_context: Any = None,
) -> FuturesOrderResponse:
    """Close the position on ``symbol`` (as much of it as one MARKET order may) with one MARKET order,
    exactly once per Idempotency-Key."""
    if idempotency_key is None:
        raise KlineoError(
            ErrorCategory.PRECONDITION_REQUIRED,
            f"Closing a position needs an {IDEMPOTENCY_HEADER} header: with it, a retry after a timeout or "
            "a lost answer returns the first close instead of sending a second order.",
            field=IDEMPOTENCY_HEADER,
        )
    check_symbol(symbol)
    record = get_order_record(user_id, idempotent_client_order_id(user_id, idempotency_key))
    if record is not None:  # a retry: what is left is the first close's, from its record
        order, left = _recorded_close(record, connection_id, symbol, position_side), record.position_left
    else:
        # The position read is under the route's deadline too (the order then takes a fresh one).
        with call_deadline(Deadline.of_invocation(lambda_context).at):
            order, rest = _closing_order(require_connection(user_id, connection_id), symbol, position_side)
        left = plain_text(rest) if rest else None
    closed = place_futures_order(user_id, order, idempotency_key, lambda_context, role=CLOSE_ROLE,
                                 position_left=left)
    if closed.status == "FILLED":
        _cancel_guards(user_id, connection_id, symbol, order, left, closed.update_time)
    # A first close answered from a record it did not write (another request of the key claimed it
    # meanwhile) leaves out what this one read: that record's own may differ.
    if record is not None or closed.source != "existing":
        closed = closed.model_copy(update={"position_left": _left_open(closed, left)})
    return closed


def _left_open(closed: FuturesOrderResponse, left: str | None) -> str | None:
    """What the close leaves of the position: the part its order did not include (``left``), and the part
    of its order that did not execute (a MARKET order that ended EXPIRED on thin liquidity); None: nothing."""
    rest = Decimal(left or 0) + Decimal(closed.quantity or 0) - Decimal(closed.executed_quantity)
    return plain_text(rest) if rest > 0 else None


def _cancel_guards(user_id: str, connection_id: str, symbol: str, order: FuturesOrderRequest,
                   left: str | None, filled_at: int | None) -> None:
    """After a close, no protective order may stay armed on that side: a stale stop must never close a
    later position. Unless the close left a real part of it open (``left`` at least one MARKET step: the
    maxQty cap), which they still guard; less is dust. Only those Binance created by the time the close
    filled (``filled_at``): one created since guards a position opened after it (a late retry of the
    close's key must not leave that one unprotected). A failure here never hides the close's outcome: the
    reconciler does this again when it settles the close's order, until no transient failure stops it
    (``klineo.services.protective_resize.follow_settled``)."""
    try:
        connection = require_connection(user_id, connection_id)
        # A retry decides from the first close's position_left alone (its record): the rules are cached.
        if leaves_a_part(futures_client(connection), symbol, left):
            return
        cancel_protective_orders(user_id, connection, symbol, order.positionSide, order.side,
                                 placed_by=filled_at)
    except KlineoError as exc:
        logger.warning("protective orders not cancelled after a close",
                       extra={"symbol": symbol, "category": str(exc.category)})
