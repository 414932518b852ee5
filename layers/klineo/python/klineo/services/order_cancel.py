"""Cancelling one of the caller's futures orders, exactly once: the answer is its final state.

The order is found through the caller's own order record (only orders placed through this API can
be cancelled here). A record already holding a final state answers from the record with no Binance
call, so a second cancel costs nothing and sends nothing. Otherwise one DELETE /fapi/v1/order by
origClientOrderId is sent; when Binance answers -2011 (nothing open under that id) or the answer is
lost, the order is read back (GET /fapi/v1/order) and what Binance holds is the answer. An order that
filled cannot be cancelled: 409 naming its state. The outcome is written to the record. An entry with a
stop-loss / take-profit that the cancel finds executed (it filled first, or was cancelled after a partial
fill) has them placed then, as any read that learns of its fill does (``klineo.services.protective``,
loaded on that case only). An order Binance
does not hold while our record of it has not settled (its POST still on its way, or its answer lost) is
never answered as gone: it may still reach Binance and rest there, so the answer is unknown_outcome
(send the cancel again), nothing written.

The cancel runs under the route's deadline (``klineo.services.orders.Deadline``): every Binance
call's timeouts and retry waits end before API Gateway gives up.

An algo (conditional) order record (kind ``algo``) is cancelled the same way through the algo service
(``klineo.services.algo_orders.cancel_algo_order``: DELETE /fapi/v1/algoOrder by clientAlgoId, then
its state read back); one that already fired (TRIGGERED / FINISHED) answers 409 with that state.

Cancels do not pass the risk gate (``klineo.services.risk``): they never add exposure, so no kill
switch, limit or disabled connection may stop them.
"""

from __future__ import annotations

from typing import Any

from klineo.binance import call_deadline, endpoints
from klineo.errors import ErrorCategory, KlineoError
from klineo.models.futures import FuturesOrderResponse, ProtectiveOrderState
from klineo.services.algo_orders import ALGO_FINAL, cancel_algo_order
from klineo.services.key_health import TRADE, note_key_outcome
from klineo.services.order_response import futures_order_response
from klineo.services.orders import Deadline, OrderResult, check_client_order_id, query_futures_order
from klineo.services.symbol_settings import futures_client
from klineo.store.connections import Connection, connection_credentials, require_connection
from klineo.store.orders import (
    KIND_ALGO,
    STATUS_REJECTED,
    OrderRecord,
    get_order_record,
    record_order_outcome_quietly,
)

__all__ = ["arm_executed_entry", "cancel_futures_order"]

_FINAL = frozenset({"CANCELED", "EXPIRED", "FILLED", "EXPIRED_IN_MATCH"})
# Final states that mean "nothing left to cancel" (a regular order filled, an algo order fired).
_DONE = frozenset({"FILLED", "TRIGGERED", "FINISHED"})


def _filled_conflict(result: OrderResult) -> KlineoError:
    if result.kind == KIND_ALGO:
        return KlineoError(
            ErrorCategory.CONFLICT,
            f"The conditional order already fired ({result.status}): it placed its order and there is "
            "nothing left to cancel.",
            field="clientOrderId",
        )
    return KlineoError(
        ErrorCategory.CONFLICT,
        f"The order is already {result.status} ({format(result.executed_quantity, 'f')} of "
        f"{format(result.quantity, 'f')} executed); there is nothing left to cancel.",
        field="clientOrderId",
    )


def _answer(result: OrderResult, connection_id: str,
            protective: list[ProtectiveOrderState] | None = None) -> FuturesOrderResponse:
    if result.status in _DONE:
        raise _filled_conflict(result)
    response = futures_order_response(result, connection_id)
    return response if protective is None else response.model_copy(update={"protective_orders": protective})


def _own_record(user_id: str, client_order_id: str) -> OrderRecord:
    check_client_order_id(client_order_id, field="clientOrderId")
    record = get_order_record(user_id, client_order_id)
    if record is None:
        raise KlineoError(ErrorCategory.NOT_FOUND, "order not found")
    if record.status == STATUS_REJECTED:
        raise KlineoError(ErrorCategory.ORDER_NOT_FOUND, "Binance refused this order; it was never placed.")
    return record


def _send_cancel(record: OrderRecord, connection: Connection) -> OrderResult:
    """``_cancel_at_binance``; an order Binance does not hold while its record has not settled (its placement
    still on its way, or its answer lost) is not answered as gone: it may still reach Binance."""
    try:
        return _cancel_at_binance(record, connection)
    except KlineoError as exc:
        if exc.category != ErrorCategory.ORDER_NOT_FOUND or record.settled:
            raise
        raise KlineoError(
            ErrorCategory.UNKNOWN_OUTCOME,
            "Binance holds no order under this id yet, but its placement has not settled (it may still be on "
            "its way to Binance): nothing was cancelled. Send the cancel again in a moment; "
            "GET /futures/order/{clientOrderId} shows its state.",
            field="clientOrderId",
        ) from None


def _cancel_at_binance(record: OrderRecord, connection: Connection) -> OrderResult:
    """One DELETE; on -2011 or a lost answer, Binance's own state of the order (read back once)."""
    client, creds = futures_client(connection), connection_credentials(connection)
    if record.kind == KIND_ALGO:
        try:
            result = cancel_algo_order(client, creds, record.client_order_id)
        except KlineoError as exc:
            note_key_outcome(connection, exc, TRADE)
            raise
        note_key_outcome(connection, None, TRADE)
        return result
    try:
        body = endpoints.futures_cancel_order(client, creds, record.symbol, record.client_order_id)
    except KlineoError as exc:
        settle = exc.category in (ErrorCategory.ORDER_NOT_FOUND, ErrorCategory.UNKNOWN_OUTCOME)
        # The answer itself, as every call's: -2011 clears the count, a cancel nobody answered proves nothing.
        note_key_outcome(connection, exc, TRADE)
        if not settle:
            raise
        found = query_futures_order(client, creds, record.symbol, record.client_order_id)
        if found is None:
            raise KlineoError(ErrorCategory.ORDER_NOT_FOUND,
                              "Binance no longer knows this order (it may have been purged).") from None
        if found.status not in _FINAL:
            raise KlineoError(ErrorCategory.UNKNOWN_OUTCOME,
                              "Binance did not confirm the cancel and the order is still open; "
                              "send the cancel again.") from None
        return found
    note_key_outcome(connection, None, TRADE)
    return OrderResult.from_binance(body, "placed")


def cancel_futures_order(
    user_id: str, client_order_id: str, lambda_context: Any = None
) -> FuturesOrderResponse:
    """Cancel the caller's order ``client_order_id``; its final state (see the module docstring)."""
    record = _own_record(user_id, client_order_id)
    if record.status in _FINAL | ALGO_FINAL and record.result is not None:
        return _answer(OrderResult.from_record(record.result).with_source("existing"), record.connection_id)
    with call_deadline(Deadline.of_invocation(lambda_context).at):
        connection = require_connection(record.user_id, record.connection_id)
        result = _send_cancel(record, connection)
        record_order_outcome_quietly(user_id, client_order_id, status=result.status, order_id=result.order_id,
                                     result=result.to_record())
        protective = arm_executed_entry(record, result, connection)
    return _answer(result, record.connection_id, protective)


def arm_executed_entry(record: OrderRecord, result: OrderResult,
                       connection: Connection) -> list[ProtectiveOrderState] | None:
    """An entry that asked for a stop-loss / take-profit and that a cancel (this one, or a cancel-all's,
    ``klineo.services.open_orders``) found executed (filled before it, or cancelled after a partial fill)
    gets them placed now, as any read that learns of its fill places them
    (``klineo.services.protective.arm_on_read``: a failure is logged, the next read or the reconciler places
    them); their states, None when there is nothing to arm (or none could be placed yet)."""
    if record.kind == KIND_ALGO or not record.protective_targets or result.executed_quantity <= 0:
        return None
    from klineo.services.protective import arm_on_read  # the rare case: not loaded with the route

    client, creds = futures_client(connection), connection_credentials(connection)
    return arm_on_read(record.user_id, record, result, client, creds, connection)
