"""Our protective orders' clientAlgoIds, and the sibling rule that cancels the rest once one has fired.

The half of ``klineo.services.protective`` that a read of the open orders applies (``cancel_fired_siblings``,
on every ``GET .../futures/open-orders``) and that the runner derives ids with: kept apart so those load
neither the placing half's request models, its claim transaction nor the risk gate (issue 16's cold
start). Placing, arming and the exactly-once rules are in ``klineo.services.protective``.

When one of an entry's protective orders fires, ``cancel_fired_siblings`` cancels every other one of the
entry still open, of any role and generation (``klineo.store.orders.fired_entry``), on the next read of
the open orders (the reconciler does it at the latest); a cancel that fails there leaves that read answering.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from klineo.binance import BinanceClient, Credentials
from klineo.errors import ErrorCategory, KlineoError
from klineo.observability import logger
from klineo.services.algo_orders import cancel_algo_order, query_algo_order
from klineo.services.key_health import KEY_FAILURE_CATEGORIES
from klineo.services.orders import OrderResult
from klineo.store.orders import (
    PROTECTIVE_ROLES,
    OrderRecord,
    fired_entry,
    get_order_records,
    record_order_outcome_quietly,
)

__all__ = ["ACCOUNT_REFUSALS", "ROLES", "cancel_fired_siblings", "entry_protective_ids",
           "protective_client_algo_id", "recorded_protective_ids"]

# A trailing stop (``{"percent": callbackRate}``) is placed for live strategies' entries only: an API
# entry's request has no such target.
_ORDER_OF_ROLE = {"stop_loss": ("-sl", "STOP_MARKET"), "take_profit": ("-tp", "TAKE_PROFIT_MARKET"),
                  "trailing_stop": ("-ts", "TRAILING_STOP_MARKET")}
# Each protective role (named once, in ``klineo.store.orders.PROTECTIVE_ROLES``): its clientAlgoId suffix
# and its order type; a role named there without its order here fails at import.
ROLES = {role: _ORDER_OF_ROLE[role] for role in PROTECTIVE_ROLES}
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
# A cancel's failures that are the account's, not one order's (the key, the rate limit, a ban): every further
# cancel would meet them too, so a cleanup going through several orders stops at one.
ACCOUNT_REFUSALS = KEY_FAILURE_CATEGORIES | {ErrorCategory.RATE_LIMIT, ErrorCategory.IP_BANNED}


def protective_client_algo_id(entry_client_order_id: str, role: str, generation: int = 0) -> str:
    """The clientAlgoId of an entry's stop-loss (-sl), take-profit (-tp) or trailing stop (-ts): at most
    36 characters. ``generation``: a live strategy's re-priced orders (1, 2, ...: the suffix gets it in
    base 36, the entry's id gives up as many characters); 0, the entry's first ones, has none."""
    tag = _base36(generation) if generation else ""
    return entry_client_order_id[:33 - len(tag)] + ROLES[role][0] + tag


def _base36(value: int) -> str:
    """A positive integer in lower-case base 36."""
    digits = ""
    while value:
        value, rest = divmod(value, 36)
        digits = _BASE36[rest] + digits
    return digits


def entry_protective_ids(entry_client_order_id: str, generations: int = 1) -> list[str]:
    """Every clientAlgoId the entry's protective orders may have: each role of generations 0 to
    ``generations`` - 1 (a live strategy's re-priced ones, ``klineo.runner.reprice``)."""
    return [protective_client_algo_id(entry_client_order_id, role, generation)
            for generation in range(max(generations, 1)) for role in ROLES]


def recorded_protective_ids(record: dict[str, Any]) -> list[str]:
    """Every clientAlgoId a live strategy's protective record may still have open: its entry's, of each
    generation (``entry_protective_ids``), then those an earlier cancel left (``superseded``)."""
    ids = entry_protective_ids(str(record["parent_client_order_id"]), int(record.get("generations", 1)))
    return ids + [str(i) for i in record.get("superseded") or [] if str(i) not in ids]


def _as_now(user_id: str, client: BinanceClient, creds: Credentials, record: OrderRecord) -> OrderRecord:
    """Our protective order ``record``, which Binance no longer lists open, as it is now: its record once
    final, else Binance's state read (weight 1) and recorded."""
    if record.final:
        return record
    found = query_algo_order(client, creds, record.client_order_id)
    if found is None:
        return record
    record_order_outcome_quietly(user_id, record.client_order_id, status=found.status,
                                 order_id=found.order_id, result=found.to_record())
    return dataclasses.replace(record, status=found.status)


def _fired_entries(user_id: str, client: BinanceClient, creds: Credentials,
                   open_records: dict[str, OrderRecord]) -> set[str]:
    """The entries, among ``open_records``' parents, one of whose protective orders (any role, any
    generation: their count is on the entry's record) is no longer open and fired."""
    parents = sorted({r.parent_client_order_id for r in open_records.values()
                      if r.role in ROLES and r.parent_client_order_id})
    if not parents:
        return set()
    entries = get_order_records(user_id, parents)
    ids = [i for parent in parents for i in entry_protective_ids(
        parent, (entries[parent].protective_generations or 1) if parent in entries else 1)]
    closed = get_order_records(user_id, [i for i in ids if i not in open_records])
    fired = {fired_entry(_as_now(user_id, client, creds, record)) for record in closed.values()}
    return {entry for entry in fired if entry is not None}


def cancel_fired_siblings(
    user_id: str, client: BinanceClient, creds: Credentials, open_records: dict[str, OrderRecord]
) -> list[OrderResult]:
    """Cancel each open protective order of ours whose entry had another protective order fire: the sibling
    rule (``klineo.store.orders.fired_entry``), across roles and generations.

    ``open_records``: our records of algo orders Binance lists as open. A sibling that is recorded but no
    longer open answers from its record once final, else is read once (weight 1); only when it
    TRIGGERED / FINISHED are the others cancelled (a sibling the user cancelled leaves them armed). A cancel
    that fails is logged, never raised: the read answers, the order is listed still open, and the next read
    (or the reconciler) cancels it; one failing for the account (``ACCOUNT_REFUSALS``) ends the cancelling.
    """
    fired = _fired_entries(user_id, client, creds, open_records)
    cancelled = []
    for client_algo_id, record in open_records.items():
        if record.role not in ROLES or record.parent_client_order_id not in fired:
            continue
        try:
            result = cancel_algo_order(client, creds, client_algo_id)
        except KlineoError as exc:
            logger.warning("fired sibling not cancelled", extra={"client_order_id": client_algo_id,
                                                                 "category": str(exc.category)})
            if exc.category in ACCOUNT_REFUSALS:
                break
            continue
        record_order_outcome_quietly(user_id, client_algo_id, status=result.status, order_id=result.order_id,
                                     result=result.to_record())
        cancelled.append(result)
    return cancelled
