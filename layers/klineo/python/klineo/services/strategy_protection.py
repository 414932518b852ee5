"""A live strategy's stop-loss / take-profit on Binance: the entry's protective orders, armed and disarmed.

The runner knows an entry as its own order (clientOrderId, side, filled quantity, fill price) and
the trigger prices it wants (``klineo.runner.paper.protective_record``). This module turns that into
the same protective orders an API entry gets (``klineo.services.protective``): a reduce-only
STOP_MARKET and TAKE_PROFIT_MARKET through Binance's algo service (on a hedge-mode connection: with the
positionSide of the side the entry opened, LONG for a BUY and SHORT for a SELL, and no reduceOnly, as
the entry's own order had), clientAlgoIds derived from the
entry's clientOrderId (so a redelivered message never doubles them), each recorded with
``origin`` = the strategy's id, ``role`` and ``parent_client_order_id`` (so the order history and
the reconciler see them). Disarming cancels exactly the orders it is given by clientAlgoId (the entry's
own, of the roles and generations asked for: a re-priced order, ``klineo.runner.reprice``, has its own
id), never another strategy's or the user's own stops on the same symbol. It disarms an API entry's
stops the same way when they are re-placed for what a reduction left (``klineo.services.protective_resize``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from decimal import Decimal

from klineo.errors import ErrorCategory, KlineoError
from klineo.models.futures import ProtectiveOrderState
from klineo.observability import logger
from klineo.services.algo_orders import ALGO_FINAL, FIRED_ALGO, cancel_algo_order, query_algo_order
from klineo.services.key_health import KeyCount
from klineo.services.orders import OrderResult
from klineo.services.protective import NOT_STANDING, WAITING_FOR_FILL, arm_protective_orders
from klineo.services.protective_siblings import ROLES
from klineo.services.risk import HEDGE
from klineo.services.symbol_settings import futures_client
from klineo.store.connections import Connection, connection_credentials
from klineo.store.orders import OrderRecord, get_order_records, record_order_outcome_quietly
from klineo.validation import plain_text

__all__ = [
    "NOT_ARMED", "REFUSED_FOR_GOOD", "arm_strategy_protection", "disarm_protective_orders",
    "protective_orders_left", "stop_filled", "stops_standing",
]

# The states of a protective order that is not protecting the position: refused, or waiting for a fill
# (``arm_protective_orders``' answer for an entry not filled).
NOT_ARMED = NOT_STANDING | {WAITING_FOR_FILL}
# The failures of placing them that a retry does not change: the order itself refused (by Binance or by
# the symbol's rules). Any other (a key, the weight, Binance or the network) is tried again next turn.
REFUSED_FOR_GOOD = frozenset({ErrorCategory.INVALID_REQUEST, ErrorCategory.ORDER_REJECTED})


def _entry_record(
    connection: Connection, strategy_id: str, symbol: str, entry_client_order_id: str, entry_side: str,
    quantity: Decimal, entry_price: Decimal, targets: dict[str, Decimal],
) -> OrderRecord:
    """The entry as ``arm_protective_orders`` reads it: FILLED for ``quantity`` at ``entry_price``."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    # The position's side: a position never outlives a change of the account's mode (Binance refuses the
    # change while one is open), so the connection's mode now is the one the entry was placed in.
    hedge = connection.position_mode == HEDGE
    position_side = ("LONG" if entry_side == "BUY" else "SHORT") if hedge else "BOTH"
    result = OrderResult(
        client_order_id=entry_client_order_id, order_id=None, symbol=symbol, side=entry_side, type="MARKET",
        status="FILLED", quantity=quantity, executed_quantity=quantity, price=None, average_price=entry_price,
        time_in_force=None, reduce_only=False, position_side=position_side, update_time=None, source="placed",
    )
    return OrderRecord(
        user_id=connection.user_id, client_order_id=entry_client_order_id,
        connection_id=connection.connection_id, symbol=symbol,
        request={role: {"percent" if role == "trailing_stop" else "price": plain_text(value)}
                 for role, value in targets.items()},
        params={"symbol": symbol, "side": entry_side, "positionSide": position_side}, status="FILLED",
        attempt_ms=int(time.time() * 1000), created_at=now, updated_at=now, result=result.to_record(),
        origin=strategy_id,
    )


def arm_strategy_protection(
    connection: Connection, strategy_id: str, symbol: str, entry_client_order_id: str, entry_side: str,
    quantity: Decimal, entry_price: Decimal, targets: dict[str, Decimal], *, generation: int = 0,
) -> list[ProtectiveOrderState]:
    """Place the entry's stop-loss / take-profit / trailing stop exactly once (``targets``: role -> trigger
    price, or for ``trailing_stop`` its callbackRate in percent).

    ``generation`` > 0: a re-priced set for the open position, asked through the risk gate as the
    reducing orders they are (``arm_protective_orders``' ``connection``: a disabled connection or one
    being deleted refuses them; a kill switch or futures switched off does not, as a position opened
    before must keep its stops: ``klineo.services.risk``). Raises KlineoError when one could not
    be placed (the others are placed first); a repeat places only what is missing. Every generation's
    refusal of the key counts on the connection's key health, once for the arming (``KeyCount``), the entry's
    own first arming too: it is the gate that generation 0 skips (the entry's own order just passed it),
    never the count.
    """
    entry = _entry_record(connection, strategy_id, symbol, entry_client_order_id, entry_side, quantity,
                          entry_price, {role: price for role, price in targets.items() if role in ROLES})
    client, creds = futures_client(connection), connection_credentials(connection)
    return arm_protective_orders(connection.user_id, entry, client, creds, generation=generation,
                                 connection=connection if generation else None,
                                 key_count=KeyCount(connection))


def disarm_protective_orders(connection: Connection, client_algo_ids: Iterable[str]) -> bool:
    """Cancel those of the protective orders ``client_algo_ids`` (``protective_client_algo_id``,
    ``entry_protective_ids``) that are still open; True when none is left armed (``protective_orders_left``).
    """
    return not protective_orders_left(connection, client_algo_ids)


def protective_orders_left(connection: Connection, client_algo_ids: Iterable[str]) -> list[str]:
    """Cancel those of the protective orders ``client_algo_ids`` that are still open (their records read
    in one BatchGetItem); the ones that may still be open (their cancel failed), in order.

    A failure is logged, never raised: the caller keeps what is left to cancel again (the runner's
    ``superseded``), and the reconciler cancels protective orders left without a position at the latest.
    """
    client, creds = futures_client(connection), connection_credentials(connection)
    ids = list(client_algo_ids)
    records = get_order_records(connection.user_id, ids)
    left: list[str] = []
    for algo_id in ids:
        record = records.get(algo_id)
        if record is None or record.status in ALGO_FINAL or record.final:
            continue
        try:
            result = cancel_algo_order(client, creds, algo_id)
        except KlineoError as exc:
            if exc.category is ErrorCategory.ORDER_NOT_FOUND:
                continue
            logger.warning("protective order not cancelled",
                           extra={"client_order_id": algo_id, "category": str(exc.category)})
            left.append(algo_id)
            continue
        record_order_outcome_quietly(connection.user_id, algo_id, status=result.status,
                                     order_id=result.order_id, result=result.to_record())
    return left


def stops_standing(user_id: str, ids: Mapping[str, str], *, fired: bool = False) -> dict[str, str]:
    """Of the protective orders ``ids`` (role -> clientAlgoId), the ones Binance took and that still stand by
    their order records (one BatchGetItem): placed and neither cancelled, expired nor refused; ``fired``: one
    that fired too (it stood until it closed the position). An order whose outcome is not known (sent, its
    answer lost) is not one."""
    records = get_order_records(user_id, list(ids.values()))
    standing = {}
    for role, algo_id in ids.items():
        record = records.get(algo_id)
        if record is None or not record.settled:
            continue
        if not record.final or (fired and record.status in FIRED_ALGO):
            standing[role] = algo_id
    return standing


def stop_filled(connection: Connection, client_algo_ids: Iterable[str]) -> bool | None:
    """Whether one of the protective orders ``client_algo_ids`` fired and its order executed, as Binance says
    now (GET /fapi/v1/algoOrder, weight 1 each, and the order a fired one placed, weight 1): True when one
    did; False when each reads unfired or fired without executing; None when one could not be read (a failed
    read, or one Binance no longer knows): what closed the position is then not known."""
    client, creds = futures_client(connection), connection_credentials(connection)
    unread = False
    for algo_id in client_algo_ids:
        try:
            found = query_algo_order(client, creds, algo_id)
        except KlineoError as exc:
            logger.warning("protective order not read", extra={"client_order_id": algo_id,
                                                               "category": str(exc.category)})
            found = None
        if found is None:
            unread = True
        elif found.status in FIRED_ALGO and found.executed_quantity > 0:
            return True
    return None if unread else False
