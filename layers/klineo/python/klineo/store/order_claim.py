"""The claim of an API order: ONE TransactWriteItems that writes the order record and re-checks the gates.

Why our own code here instead of Powertools idempotency: Powertools writes its idempotency record
with a PutItem of its own, and cannot fold condition checks on other items into that write. An
order needs both, atomically: "this key is new (or resumable)" AND "no kill switch is on, futures
are enabled, the connection is not disabled and still has the settings the order was checked
against". One transaction does both in one round trip, and the order record (kept for ever, read
by the status route, the reconciler and order history) is the idempotency record.

- ``claim_new_order``: Put of the PENDING record (``OrderRecord.to_item()``) conditional on no
  record with that key, plus one ``ConditionCheck`` per gate item (``GateChecks``). The record carries
  ``lease_until_ms``: until then the attempt is in flight and a retry is answered "in progress".
- ``release_claim``: the claim is deleted again when the order is refused (a limit, the symbol's filters)
  or fails before anything was sent, so the key is free as if it had never been used.
- ``claim_resume``: the same checks with an Update that takes the lease of an existing record that
  nobody holds (a crashed attempt, an UNKNOWN or REJECTED one).
- A cancelled transaction is returned as a ``ClaimRefusal``: the existing record (when the key was
  taken) and which gate items failed, with their current items (ReturnValuesOnConditionCheckFailure),
  so ``klineo.services.risk.check_order`` can name the gate exactly as it does on a fresh read.
- ``cached_connection``: the connection item kept per container. It is only ever trusted as far as
  the transaction proves: the connection's ConditionCheck requires every cached attribute the order
  path reads (limits, defaults, position mode, credentials version) to be unchanged, and the
  connection not being deleted (``deleting_since``, ``klineo.store.connections.mark_deleting``).
- ``claim_protective_order`` / ``claim_protective_resend``: an entry's stop-loss / take-profit
  (``klineo.services.protective``) is recorded, or taken again for a second send, in the same kind of
  transaction, with one ConditionCheck (``ConnectionGuard``): the connection still exists and is not
  being deleted, unless by the wind-down holding its token. Why: they are placed by processes that
  read the connection long before (a reconciler run loads it once, a strategy turn at its start), and
  the delete's wind-down answers with what it left on Binance; a stop recorded after that answer would
  sit on the user's account, unlisted and unmanaged, and could close a position opened later by hand.
  The write is the only point where that can be decided atomically: nothing is sent unless it commits.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from klineo.errors import ErrorCategory, KlineoError
from klineo.observability import logger
from klineo.settings import get_settings
from klineo.store import aws
from klineo.store.connections import DELETING_SINCE, WIND_DOWN_ID, connection_sk, is_connection_id
from klineo.store.dynamo import get_data_item
from klineo.store.flags import FLAGS_SK, GLOBAL_PK, user_pk
from klineo.store.orders import OrderRecord, resend_update

__all__ = [
    "CONNECTION_CACHE_TTL_S",
    "ClaimRefusal",
    "ConnectionGuard",
    "GateChecks",
    "cached_connection_item",
    "claim_new_order",
    "claim_protective_order",
    "claim_protective_resend",
    "claim_resume",
    "forget_connection",
    "gate_condition_checks",
    "release_claim",
    "remember_connection",
]

# A cached connection item is re-read after this long without a committed claim proving it current
# (symbol_settings, which no ConditionCheck compares, is the only thing that can go stale: a stale
# copy at worst applies a symbol's settings again, which Binance answers as a no-op).
CONNECTION_CACHE_TTL_S = 60.0
# Connection attributes the order path reads; the ConditionCheck requires each to be unchanged.
_STAMPED = ("max_leverage", "max_notional_usdt", "leverage", "margin_type", "position_mode",
            "credentials_version")
_CONFLICT_ATTEMPTS = 3
_CACHE: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
# The gates' checks last built, by (user, connection sort key, switches), with the connection item they were
# built from: the same item (compared as an object) has the same checks (``gate_condition_checks``).
_CHECKS: dict[tuple[str, str, bool], tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]] = {}


@dataclasses.dataclass(frozen=True)
class GateChecks:
    """What the claim re-checks: the connection as cached; unless the order reduces (``switches`` False),
    also the kill switches and futures being on (the gates of new exposure, ``klineo.services.risk``)."""

    user_id: str
    connection_item: dict[str, Any]
    switches: bool


@dataclasses.dataclass(frozen=True)
class ConnectionGuard:
    """What a protective order's record write re-checks: the connection exists and is not being deleted.

    ``wind_down``: the deleting request's token (``mark_deleting``), held only by its wind-down, whose own
    stops (a filled entry's missing ones, placed while it settles) must still be recorded and sent.
    """

    user_id: str
    connection_id: str
    wind_down: str | None = None


@dataclasses.dataclass(frozen=True)
class ClaimRefusal:
    """Why a claim transaction was cancelled: the record that holds the key, and the failed gates' items.

    ``failed`` maps "connection", "user_flags", "global_flags" to the item that failed its check
    (None: the item does not exist, e.g. a deleted connection).
    """

    existing: OrderRecord | None
    failed: dict[str, dict[str, Any] | None]


def _connection_key(user_id: str, connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": user_pk(user_id)}, "sk": {"S": connection_sk(connection_id)}}


def cached_connection_item(user_id: str, connection_id: str, clock: Callable[[], float] = time.monotonic
                           ) -> dict[str, Any] | None:
    """The connection item from this container's cache, read (consistently) on a miss; None when absent."""
    if not is_connection_id(connection_id):
        return None
    key = (user_id, connection_id)
    hit = _CACHE.get(key)
    if hit is not None and clock() - hit[0] < CONNECTION_CACHE_TTL_S:
        return hit[1]
    item = get_data_item(_connection_key(user_id, connection_id), consistent=True)
    if item is None:
        _CACHE.pop(key, None)
    else:
        _CACHE[key] = (clock(), item)
    return item


def remember_connection(user_id: str, connection_id: str, item: dict[str, Any],
                        clock: Callable[[], float] = time.monotonic) -> None:
    """Replace the cached item (e.g. with the one a cancelled transaction handed back)."""
    _CACHE[(user_id, connection_id)] = (clock(), item)


def forget_connection(user_id: str | None = None, connection_id: str | None = None) -> None:
    """Drop one cached connection (or all of them, for tests)."""
    if user_id is None or connection_id is None:
        _CACHE.clear()
        _CHECKS.clear()
    else:
        _CACHE.pop((user_id, connection_id), None)


def _switch_off_check(pk: str) -> dict[str, Any]:
    return {"ConditionCheck": {
        "TableName": get_settings().data_table,
        "Key": {"pk": {"S": pk}, "sk": {"S": FLAGS_SK}},
        "ConditionExpression": "attribute_not_exists(kill_switch) OR kill_switch = :off",
        "ExpressionAttributeValues": {":off": {"BOOL": False}},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }}


def _connection_check(gates: GateChecks) -> dict[str, Any]:
    """The connection exists, not disabled, (futures on, switch off), every stamped attribute unchanged."""
    item = gates.connection_item
    clauses = ["attribute_exists(pk)", "attribute_not_exists(disabled_at)", "attribute_not_exists(#deleting)"]
    names: dict[str, str] = {"#deleting": DELETING_SINCE}
    values: dict[str, Any] = {}
    if gates.switches:
        clauses += ["futures_enabled = :on", "(attribute_not_exists(kill_switch) OR kill_switch = :off)"]
        values.update({":on": {"BOOL": True}, ":off": {"BOOL": False}})
    for index, name in enumerate(_STAMPED):
        names[f"#s{index}"] = name
        if name in item:
            clauses.append(f"#s{index} = :s{index}")
            values[f":s{index}"] = item[name]
        else:
            clauses.append(f"attribute_not_exists(#s{index})")
    check = {
        "TableName": get_settings().data_table,
        "Key": {"pk": item["pk"], "sk": item["sk"]},
        "ConditionExpression": " AND ".join(clauses),
        "ExpressionAttributeNames": names,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if values:  # DynamoDB refuses an empty map (a reducing order on a connection with no stamped value)
        check["ExpressionAttributeValues"] = values
    return {"ConditionCheck": check}


def _guard_check(guard: ConnectionGuard) -> dict[str, Any]:
    """The connection exists and is not being deleted (or is, by the wind-down holding its token)."""
    condition = "attribute_exists(pk) AND (attribute_not_exists(#deleting)"
    names = {"#deleting": DELETING_SINCE}
    values: dict[str, Any] = {}
    if guard.wind_down is not None:
        condition += " OR #wind_down = :wind_down"
        names["#wind_down"] = WIND_DOWN_ID
        values[":wind_down"] = {"S": guard.wind_down}
    check: dict[str, Any] = {
        "TableName": get_settings().data_table, "Key": _connection_key(guard.user_id, guard.connection_id),
        "ConditionExpression": condition + ")", "ExpressionAttributeNames": names,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if values:
        check["ExpressionAttributeValues"] = values
    return {"ConditionCheck": check}


def gate_condition_checks(gates: GateChecks) -> list[tuple[str, dict[str, Any]]]:
    """The gates' ``ConditionCheck``s, named "connection", "user_flags", "global_flags" (the names of
    ``ClaimRefusal.failed``): for any transaction that must not commit past a gate (the runner's claim).

    Built once per connection item (``_CHECKS``): a batch's claims on one connection share the cached item.
    The list is shared: a caller copies it into its transaction, never changes it."""
    item = gates.connection_item
    key = (gates.user_id, item["sk"]["S"], gates.switches)
    built = _CHECKS.get(key)
    if built is None or built[0] is not item:
        built = _CHECKS[key] = (item, _gate_items(gates))
    return built[1]


def _gate_items(gates: GateChecks) -> list[tuple[str, dict[str, Any]]]:
    checks = [("connection", _connection_check(gates))]
    if gates.switches:
        checks += [("user_flags", _switch_off_check(user_pk(gates.user_id))),
                   ("global_flags", _switch_off_check(GLOBAL_PK))]
    return checks


def _proven_current(gates: GateChecks) -> None:
    """A committed claim proved the cached connection's stamped attributes current: its TTL starts again."""
    connection_id = gates.connection_item.get("sk", {}).get("S", "").removeprefix(connection_sk(""))
    key = (gates.user_id, connection_id)
    if key in _CACHE:
        _CACHE[key] = (time.monotonic(), _CACHE[key][1])


def _storage_failed() -> KlineoError:
    # Nothing was written and nothing sent: the same key is safe to repeat.
    return KlineoError(ErrorCategory.UPSTREAM_UNAVAILABLE,
                       "Storage failed while claiming this order; nothing was sent. Repeat it with the same "
                       "Idempotency-Key.", retryable=True)


def _transact(order_write: dict[str, Any], gates: GateChecks | ConnectionGuard,
              sleep: Callable[[float], None] = time.sleep) -> ClaimRefusal | None:
    """Run the transaction (retrying DynamoDB's TransactionConflict only); None when it committed.

    ``gates``: the claim's gates, or a protective order's guard (its check named "connection" too)."""
    guarded = isinstance(gates, ConnectionGuard)
    checks = [("connection", _guard_check(gates))] if guarded else _gate_items(gates)
    named = [("order", order_write), *checks]
    for attempt in range(_CONFLICT_ATTEMPTS):
        try:
            aws.dynamodb().transact_write_items(TransactItems=[write for _, write in named])
            if not guarded:
                _proven_current(gates)
            return None
        except ClientError as exc:
            if aws.error_code(exc) != aws.TRANSACTION_CANCELED:
                raise _storage_failed() from exc
            reasons = exc.response.get("CancellationReasons") or []
        except BotoCoreError as exc:
            raise _storage_failed() from exc
        codes = [reason.get("Code") for reason in reasons]
        if "ConditionalCheckFailed" in codes:
            return _refusal(named, reasons)
        if attempt + 1 < _CONFLICT_ATTEMPTS:
            sleep(0.02 * 2**attempt + random.uniform(0, 0.02))  # noqa: S311  (jitter, not a secret)
    raise KlineoError(ErrorCategory.UPSTREAM_UNAVAILABLE, aws.STORAGE_BUSY)


def _refusal(named: list[tuple[str, dict[str, Any]]], reasons: list[dict[str, Any]]) -> ClaimRefusal:
    existing: OrderRecord | None = None
    failed: dict[str, dict[str, Any] | None] = {}
    for (name, _write), reason in zip(named, reasons, strict=False):
        if reason.get("Code") != "ConditionalCheckFailed":
            continue
        item = reason.get("Item")
        if name == "order":
            existing = OrderRecord.from_item(item) if item else None
        else:
            failed[name] = item
    return ClaimRefusal(existing=existing, failed=failed)


def _new_record_put(record: OrderRecord) -> dict[str, Any]:
    """The transaction's write of a new order record: only while its key is free (the holder answered)."""
    return {"Put": {
        "TableName": get_settings().data_table,
        "Item": record.to_item(),
        "ConditionExpression": "attribute_not_exists(pk)",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }}


def claim_new_order(record: OrderRecord, gates: GateChecks) -> ClaimRefusal | None:
    """Write ``record`` (PENDING, with its lease) iff its key is free and every gate holds; None when done."""
    return _transact(_new_record_put(record), gates)


def claim_resume(existing: OrderRecord, lease_until_ms: int, now_ms: int,
                 gates: GateChecks) -> ClaimRefusal | None:
    """Take the lease of ``existing`` iff it is unchanged and nobody holds it, and every gate holds."""
    update = {"Update": {
        "TableName": get_settings().data_table,
        "Key": {"pk": {"S": user_pk(existing.user_id)}, "sk": {"S": f"ORDER#{existing.client_order_id}"}},
        "UpdateExpression": "SET lease_until_ms = :lease",
        "ConditionExpression": "attempt_ms = :attempt AND #status = :status AND "
                               "(attribute_not_exists(lease_until_ms) OR lease_until_ms < :now)",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": {":lease": {"N": str(lease_until_ms)}, ":now": {"N": str(now_ms)},
                                      ":attempt": {"N": str(existing.attempt_ms)},
                                      ":status": {"S": existing.status}},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }}
    return _transact(update, gates)


def release_claim(record: OrderRecord) -> None:
    """Delete ``record`` iff it is still this attempt's PENDING claim; a storage failure is only logged.

    (Left in place, the claim's lease runs out and a retry resumes it: it looks the order up, finds
    nothing, and sends it once recvWindow has passed.)
    """
    try:
        aws.dynamodb().delete_item(
            TableName=get_settings().data_table,
            Key={"pk": {"S": user_pk(record.user_id)}, "sk": {"S": f"ORDER#{record.client_order_id}"}},
            ConditionExpression="#status = :pending AND lease_until_ms = :lease",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":pending": {"S": record.status},
                                       ":lease": {"N": str(record.lease_until_ms)}},
        )
    except (ClientError, BotoCoreError):
        logger.exception("order claim release failed", extra={"client_order_id": record.client_order_id})


def claim_protective_order(record: OrderRecord, guard: ConnectionGuard) -> ClaimRefusal | None:
    """Write a protective order's PENDING ``record`` iff its key is free and ``guard`` holds; None when done.

    A refusal says which failed: ``existing`` (the key was taken: that record) and/or ``failed["connection"]``
    (the connection is gone or being deleted: nothing may be sent).
    """
    return _transact(_new_record_put(record), guard)


def claim_protective_resend(existing: OrderRecord, attempt_ms: int,
                            guard: ConnectionGuard, send_by_ms: int | None = None) -> ClaimRefusal | None:
    """``klineo.store.orders.claim_resend`` of a protective order, iff ``guard`` holds too; None when claimed.

    ``send_by_ms`` (the latest instant this attempt may sign its POST) is written in the same update as the
    stamp ``attempt_ms`` (None removes the earlier attempt's). A refusal names the connection when it failed
    its check; otherwise another attempt moved the record on.
    """
    update = resend_update(existing.user_id, existing.client_order_id,
                           previous_attempt_ms=existing.attempt_ms, attempt_ms=attempt_ms,
                           send_by_ms=send_by_ms)
    return _transact({"Update": {**update, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}, guard)
