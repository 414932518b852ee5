"""A connection's open orders at Binance (regular and algo), ours marked, and cancel-all on one symbol.

Listing reads what Binance holds now, never our records alone: ``GET /fapi/v1/openOrders`` and
``GET /fapi/v1/openAlgoOrders`` (weight 1 each for one symbol, 40 each for all symbols; facts §13).
Each order whose id we hold a record for is marked ``ours`` with the record's origin and role (one
BatchGetItem for all of them). Orders placed in Binance's app or by another program show too.
A stop-loss or take-profit of ours whose sibling has fired is cancelled on this read and left out
(``klineo.services.protective_siblings.cancel_fired_siblings``).

Cancel-all (``symbol`` required) lists the symbol's open orders, then sends
``DELETE /fapi/v1/allOpenOrders`` for the regular ones (Binance's regular cancel-all does not touch algo
orders: facts §7) and ``DELETE /fapi/v1/algoOrder`` for each algo order listed, by its clientAlgoId (weight
1 each), never ``DELETE /fapi/v1/algoOpenOrders``: a stop-loss / take-profit another reader (an entry's
status read, the reconciler) placed after the listing guards a position and its record says NEW; cancelled
unlisted, it would be answered nowhere, its record would say NEW while Binance says CANCELED, and the
re-arming below, finding that NEW, would place nothing: the position left unprotected. An algo order whose
DELETE Binance confirmed is CANCELED. The regular cancel-all's answer names no order (``{"code": 200,
"msg": ...}``, facts §13), so every other listed order is read back one by one (weight 1 each; a regular one
by its orderId, an algo one by its clientAlgoId) and answered in the state Binance holds: one that filled or
fired between the listing and the DELETEs is answered so, ours and the ones placed outside KLINEO alike. Our
records get that state; one that cannot be read back is answered UNKNOWN (never CANCELED on a guess) and
its record is left as it was (the reconciler or the next status read records Binance's own state). An
entry of ours that asked for a stop-loss / take-profit and executed before the cancel reached it gets them
placed now, after both DELETEs (``klineo.services.order_cancel.arm_executed_entry``): the position the
cancel could not prevent is guarded at once, as the order route guards a fill. A cancel passes no risk
gate: it never adds exposure (the stops it places pass it, as every stop does).

Cancel-all runs under the route's deadline, as the order routes do (``klineo.services.orders.Deadline``:
the invocation's remaining time less ``DEADLINE_MARGIN_S``, inside ``klineo.binance.call_deadline``): each
read-back (weight 1, one by one) and each algo order's DELETE starts only while ``_MIN_CALL_S`` is left, so
however many orders were listed and however slowly Binance answers, the caller gets our answer before
Lambda's timeout, never API Gateway's error: an order not read back in time is answered UNKNOWN, as one
whose read failed (an algo order whose DELETE was not sent may still be open: read the open orders again).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from klineo.binance import BinanceClient, Credentials, call_deadline, call_time_left, endpoints
from klineo.errors import ErrorCategory, KlineoError
from klineo.models.open_orders import CancelOpenOrdersResponse, OpenOrder, OpenOrdersResponse
from klineo.models.protective_states import ProtectiveOrderState
from klineo.services.algo_orders import algo_result, query_algo_order
from klineo.services.key_health import READ, note_futures_outcome
from klineo.services.orders import Deadline, OrderResult, query_futures_order
from klineo.services.protective_siblings import ACCOUNT_REFUSALS, cancel_fired_siblings
from klineo.services.symbol_settings import futures_client
from klineo.store.connections import Connection, connection_credentials, require_connection
from klineo.store.orders import (
    KIND_ALGO,
    STATUS_UNKNOWN,
    OrderRecord,
    get_order_records,
    record_order_outcome_quietly,
)
from klineo.validation import check_symbol, plain_text, plain_text_or_none

__all__ = ["cancel_open_orders", "list_open_orders"]

# Cancel-all starts an algo order's DELETE or a read-back only with at least this long left before its
# deadline: one that could not finish in time is answered UNKNOWN instead (module docstring).
_MIN_CALL_S = 0.5


def _check_symbol(symbol: str | None, required: bool) -> None:
    if symbol is None and required:
        raise KlineoError(ErrorCategory.INVALID_REQUEST,
                          "symbol is required: cancel-all works on one symbol at a time", field="symbol")
    if symbol is not None:
        check_symbol(symbol)


def _open_order(result: OrderResult, record: OrderRecord | None) -> OpenOrder:
    algo = result.kind == KIND_ALGO
    return OpenOrder(
        kind=result.kind, client_order_id=result.client_order_id, order_id=result.order_id,
        symbol=result.symbol, side=result.side, position_side=result.position_side, type=result.type,
        status=result.status, quantity=plain_text(result.quantity) if result.quantity else None,
        executed_quantity=None if algo else plain_text_or_none(result.executed_quantity),
        price=plain_text_or_none(result.price),
        trigger_price=plain_text_or_none(result.trigger_price), reduce_only=result.reduce_only,
        close_position=result.close_position, time_in_force=result.time_in_force,
        update_time=result.update_time, ours=record is not None,
        origin=record.origin if record else None, role=record.role if record else None,
        parent_client_order_id=record.parent_client_order_id if record else None,
    )


def _open_results(connection: Connection, client: BinanceClient, creds: Credentials,
                  symbol: str | None) -> list[OrderResult]:
    """Binance's open regular orders, then its open algo orders."""
    try:
        regular = endpoints.futures_open_orders(client, creds, symbol)
        algo = endpoints.futures_open_algo_orders(client, creds, symbol)
    except KlineoError as exc:
        note_futures_outcome(connection, exc, READ)
        raise
    note_futures_outcome(connection, None, READ)
    regular_results = [OrderResult.from_binance(r, "queried") for r in regular]
    return regular_results + [algo_result(r, "queried") for r in algo]


def list_open_orders(user_id: str, connection_id: str, symbol: str | None = None) -> OpenOrdersResponse:
    """The connection's open orders at Binance (one symbol, or all), ours marked (module docstring)."""
    _check_symbol(symbol, required=False)
    connection = require_connection(user_id, connection_id)
    client, creds = futures_client(connection), connection_credentials(connection)
    results = _open_results(connection, client, creds, symbol)
    records = get_order_records(user_id, [r.client_order_id for r in results if r.client_order_id])
    algo_records = {r.client_order_id: records[r.client_order_id] for r in results
                    if r.kind == KIND_ALGO and r.client_order_id in records}
    gone = {c.client_order_id for c in cancel_fired_siblings(user_id, client, creds, algo_records)}
    orders = [_open_order(r, records.get(r.client_order_id))
              for r in results if r.client_order_id not in gone]
    return OpenOrdersResponse(connection_id=connection.connection_id, symbol=symbol, orders=orders)


def _time_for_a_call() -> bool:
    """True while a call started now can finish before the deadline in force (``_MIN_CALL_S``)."""
    left = call_time_left()
    return left is None or left >= _MIN_CALL_S


def _read_back(client: BinanceClient, creds: Credentials, result: OrderResult) -> OrderResult | None:
    """Binance's state of one listed order after the cancel-all; None when it cannot be read (in time)."""
    if not _time_for_a_call():
        return None
    try:
        if result.kind == KIND_ALGO:
            return query_algo_order(client, creds, result.client_order_id)
        return query_futures_order(client, creds, result.symbol, result.client_order_id,
                                   order_id=result.order_id)
    except KlineoError:
        return None


def _cancel_algo(client: BinanceClient, creds: Credentials, result: OrderResult) -> OrderResult | None:
    """DELETE one listed algo order by its clientAlgoId: CANCELED when Binance confirms it; None when it did
    not (nothing open under that id: it fired; a lost answer) or there is no time left to ask, to be read
    back. A refusal of the key or the account is raised: every further call would meet it."""
    if not _time_for_a_call():
        return None
    try:
        endpoints.futures_cancel_algo_order(client, creds, result.client_order_id)
    except KlineoError as exc:
        if exc.category in ACCOUNT_REFUSALS:
            raise
        return None
    return dataclasses.replace(result, status="CANCELED")


def _cancelled(connection: Connection, client: BinanceClient, creds: Credentials, result: OrderResult,
               record: OrderRecord | None, known: OrderResult | None
               ) -> tuple[OpenOrder, list[ProtectiveOrderState] | None]:
    """One listed order as Binance holds it after the cancel-all (module docstring): ``known`` (its
    confirmed DELETE), else read back; recorded when ours, with the stops placed when it is an entry of ours
    that executed; UNKNOWN when it cannot be read."""
    final = known or _read_back(client, creds, result)
    if final is None:  # it may have filled before the cancel: never answered (nor recorded) CANCELED
        return _open_order(dataclasses.replace(result, status=STATUS_UNKNOWN), record), None
    if record is None:
        return _open_order(final, None), None
    record_order_outcome_quietly(record.user_id, final.client_order_id, status=final.status,
                                 order_id=final.order_id, result=final.to_record())
    return _open_order(final, record), _arm_if_executed(record, final, connection)


def _arm_if_executed(record: OrderRecord, final: OrderResult,
                     connection: Connection) -> list[ProtectiveOrderState] | None:
    """``klineo.services.order_cancel.arm_executed_entry`` for an entry of ours that executed before the
    cancel reached it; None, loading nothing, for any other order (the order path stays unloaded)."""
    if record.kind == KIND_ALGO or not record.protective_targets or final.executed_quantity <= 0:
        return None
    from klineo.services.order_cancel import arm_executed_entry  # the rare case: not loaded with the routes

    return arm_executed_entry(record, final, connection)


def cancel_open_orders(user_id: str, connection_id: str, symbol: str | None,
                       lambda_context: Any = None) -> CancelOpenOrdersResponse:
    """Cancel every open regular and algo order on ``symbol``; each as Binance holds it then, answered before
    the invocation of ``lambda_context`` ends (module docstring)."""
    _check_symbol(symbol, required=True)
    symbol = str(symbol)
    with call_deadline(Deadline.of_invocation(lambda_context).at):
        connection = require_connection(user_id, connection_id)
        client, creds = futures_client(connection), connection_credentials(connection)
        listed = _open_results(connection, client, creds, symbol)
        if listed:
            endpoints.futures_cancel_all_orders(client, creds, symbol)
        known = [_cancel_algo(client, creds, r) if r.kind == KIND_ALGO else None for r in listed]
        records = get_order_records(user_id, [r.client_order_id for r in listed if r.client_order_id])
        answers = [_cancelled(connection, client, creds, r, records.get(r.client_order_id), confirmed)
                   for r, confirmed in zip(listed, known, strict=True)]
    return CancelOpenOrdersResponse(
        connection_id=connection.connection_id, symbol=symbol, cancelled=[order for order, _ in answers],
        protective_orders={order.client_order_id: armed for order, armed in answers if armed is not None})
