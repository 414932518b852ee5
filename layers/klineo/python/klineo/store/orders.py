"""Futures order records (pk USER#<sub>, sk ORDER#<clientOrderId>): written before sending, updated after.

The record is the audit trail, the exactly-once anchor and the idempotency record of an order
placed through the API:
- API orders are claimed with ONE TransactWriteItems (``klineo.store.order_claim``) that puts the
  PENDING record (``pending_record``, with its ``lease_until_ms``) and re-checks the gates;
- `create_order_record` is ONE conditional PutItem of a PENDING record without a lease. When
  the record already exists, DynamoDB hands back the old item with the failed condition
  (ReturnValuesOnConditionCheckFailure), so no extra read is spent to learn about it.
- `record_order_outcome` is ONE UpdateItem made after Binance answered (or failed to);
  `record_unsettled_outcome` the same iff the record is still unsettled (the reconciler's: an answer it
  read before another reader settled the record never takes it back).
- `claim_resend` is an optimistic-lock UpdateItem used only on the rare path where an earlier
  attempt was proven not to have reached the matching engine and the order is sent again.

`status` holds Binance's order status once known (NEW, PARTIALLY_FILLED, FILLED, CANCELED,
EXPIRED, ...) or one of ours: PENDING (recorded, being sent), UNKNOWN (sent, outcome not settled)
and REJECTED (Binance refused it; nothing was placed).

Indexes (both sparse, derived in ONE place, ``OrderRecord.to_item()``, so every writer gets them):
- ``gsi1``, shared with active strategies (``ACTIVE#<interval>``): every order record carries
  ``gsi1pk = ORDERS#<sub>`` and ``gsi1sk = <created ms, 13 digits>#<clientOrderId>``, so one user's
  orders read newest first with a time range in the key condition (``klineo.store.order_history``).
- ``gsi2``, unsettled records only: ``gsi2pk = UNSETTLED#<0-7>`` (the user's shard, so no single
  partition takes every write) and ``gsi2sk = <sub>#<clientOrderId>``. A record stays there until it
  is settled: its status is final AND its fills are known (``fills`` set, ``[]`` for none), or it can
  have none (REJECTED, UNKNOWN_PURGED). ``record_order_outcome`` REMOVEs both attributes when it
  writes such a state, so the reconciler (``klineo.services.reconcile``) walks what is left without
  a scan, and an order that filled at once still gets its fills read. ``gsi2`` also holds the
  reconciler's watch marks (``WATCH#`` partitions, see ``klineo.store.order_history``). A record we
  stop following before it is settled (``mark_unmanaged``: its connection was deleted, so Binance can
  no longer be asked) leaves it too, keeping the last state Binance told us.
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from klineo.errors import ErrorCategory, KlineoError
from klineo.observability import logger
from klineo.settings import get_settings
from klineo.store import aws
from klineo.store.dynamo import Update, conditional_write, from_attr, to_attr, to_item
from klineo.timestamps import iso_epoch_ms, utc_now_iso

__all__ = [
    "CLOSE_ROLE",
    "FILLLESS_STATUSES",
    "FINAL_STATUSES",
    "FIRED_PROTECTIVE",
    "FOREIGN_ORIGINS",
    "KIND_ALGO",
    "KIND_ORDER",
    "NOTHING_COUNTED",
    "ORIGIN_ADL",
    "ORIGIN_API",
    "ORIGIN_LIQUIDATION",
    "ORIGIN_MANUAL",
    "ORIGIN_SETTLEMENT",
    "PROTECTIVE_ROLES",
    "STATUS_PENDING",
    "STATUS_REJECTED",
    "STATUS_UNKNOWN",
    "STATUS_UNKNOWN_PURGED",
    "UNMANAGED_CONNECTION_DELETED",
    "OrderRecord",
    "claim_protective_resize",
    "claim_resend",
    "create_order_record",
    "end_protective_resize",
    "estimate_kept_update",
    "estimates_by_strategy",
    "fired_entry",
    "get_order_record",
    "get_order_records",
    "index_attributes",
    "is_settled",
    "kept_estimates",
    "mark_all_unmanaged",
    "mark_unmanaged",
    "order_outcome_update",
    "pending_record",
    "protective_generations_update",
    "put_new_record",
    "record_fills_progress",
    "record_order_outcome",
    "record_order_outcome_quietly",
    "record_position_gone",
    "record_refit_given_up",
    "record_unsettled_outcome",
    "resend_update",
    "strategy_order_record",
    "unsettled_keys",
]

STATUS_PENDING = "PENDING"
STATUS_UNKNOWN = "UNKNOWN"
STATUS_REJECTED = "REJECTED"
# Binance no longer knows the order (retention: canceled/expired without fills after 3 days, any
# order after 90 days) and our record never learned its outcome: final, never sent again.
STATUS_UNKNOWN_PURGED = "UNKNOWN_PURGED"
# States after which nothing can change any more (regular and algo orders alike).
FINAL_STATUSES = frozenset(
    {"FILLED", "CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "REJECTED", "FINISHED", "TRIGGERED",
     STATUS_REJECTED, STATUS_UNKNOWN_PURGED}
)
# Final states in which an order can have no fills: settled without reading any.
FILLLESS_STATUSES = frozenset({STATUS_REJECTED, STATUS_UNKNOWN_PURGED})
# What placed an order: ORIGIN_API, a strategy's id, or a fill we did not place.
ORIGIN_API = "api"
ORIGIN_MANUAL = "manual"
ORIGIN_LIQUIDATION = "liquidation"
ORIGIN_ADL = "adl"
# Binance's settlement of a delisted or delivered contract (clientOrderId settlement_autoclose-...).
ORIGIN_SETTLEMENT = "settlement"
# The origins of orders Binance made that we did not place (recorded by the reconciler).
FOREIGN_ORIGINS = frozenset({ORIGIN_MANUAL, ORIGIN_LIQUIDATION, ORIGIN_ADL, ORIGIN_SETTLEMENT})
# The ``booked_estimate`` of an order whose fills no live book counted yet (a strategy's stop-loss,
# take-profit or trailing stop): the reconciler books them when it reads them, once
# (klineo.services.live_fills).
NOTHING_COUNTED: Mapping[str, Any] = MappingProxyType({"realised": Decimal(0), "fees": Decimal(0),
                                                       "counted": False})
# A forced order's ``booked_estimate``: the estimates of every strategy whose position it closed, by strategy
# id, under this key, beside its ``revision`` (moved by each write: a write keeps what it read, or fails).
BY_STRATEGY = "by_strategy"
KIND_ORDER = "order"
KIND_ALGO = "algo"
# The roles of an entry's protective orders (``role`` of their records; a trailing stop only for a live
# strategy's entry); an entry's request names,
# under the same keys, the ones it asked for (``klineo.services.protective`` places them).
PROTECTIVE_ROLES = ("stop_loss", "take_profit", "trailing_stop")
# The role of a close route's order (``klineo.services.position_close``): only such a record answers a
# retry of a close.
CLOSE_ROLE = "position_close"
# The states of a protective order that fired (an algo order's; FILLED: its child order's).
FIRED_PROTECTIVE = frozenset({"TRIGGERED", "FINISHED", "FILLED"})
# Why we stopped following a record that Binance may still hold open (``unmanaged_reason``).
UNMANAGED_CONNECTION_DELETED = "connection_deleted"
# Index prefixes (see the module docstring).
ORDERS_INDEX_PREFIX = "ORDERS#"
UNSETTLED_PREFIX = "UNSETTLED#"
UNSETTLED_SHARDS = 8


def _now_iso() -> str:
    return utc_now_iso(zulu=True)


def _key(user_id: str, client_order_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": f"ORDER#{client_order_id}"}}


def iso_ms(timestamp: str) -> int:
    """An ISO-8601 UTC timestamp (``...Z``) as epoch milliseconds."""
    return iso_epoch_ms(timestamp)


def unsettled_keys(user_id: str, client_order_id: str) -> dict[str, str]:
    """gsi2pk/gsi2sk of a record that is not final (the user's shard of the unsettled index)."""
    shard = zlib.crc32(user_id.encode()) % UNSETTLED_SHARDS
    return {"gsi2pk": f"{UNSETTLED_PREFIX}{shard}", "gsi2sk": f"{user_id}#{client_order_id}"}


def is_settled(status: str, fills: list[dict[str, Any]] | None) -> bool:
    """True when the reconciler is done with a record: final, with its fills known (or none possible)."""
    return status in FILLLESS_STATUSES or (status in FINAL_STATUSES and fills is not None)


def index_attributes(record: OrderRecord) -> dict[str, str]:
    """The index attributes an order item carries: gsi1 always, gsi2 until the record is settled."""
    keys = {"gsi1pk": f"{ORDERS_INDEX_PREFIX}{record.user_id}",
            "gsi1sk": record.sort_key}
    if not is_settled(record.status, record.fills) and record.unmanaged_since is None:
        keys.update(unsettled_keys(record.user_id, record.client_order_id))
    return keys


@dataclasses.dataclass(frozen=True)
class OrderRecord:
    """One order placed (or being placed) through the API, as stored in the data table."""

    user_id: str
    client_order_id: str
    connection_id: str
    symbol: str
    request: dict[str, Any]
    params: dict[str, str]
    status: str
    attempt_ms: int
    created_at: str
    updated_at: str
    order_id: int | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    # "order" (/fapi/v1/order) or "algo" (/fapi/v1/algoOrder; client_order_id is the clientAlgoId).
    kind: str = KIND_ORDER
    # ORIGIN_API, the placing strategy's id, or ORIGIN_MANUAL/LIQUIDATION/ADL for fills we did not place.
    origin: str = ORIGIN_API
    # A protective order attached to an entry: its role ("stop_loss"/"take_profit") and the entry's id.
    role: str | None = None
    parent_client_order_id: str | None = None
    # Binance's trades of this order (userTrades), each a dict of plain strings/ints: the first FILLS_KEPT
    # of them when it had more, and then ``fills_summary``, exact totals of all (klineo.store.order_fills).
    fills: list[dict[str, Any]] | None = None
    fills_summary: dict[str, Any] | None = None
    # Wall-clock ms until which the attempt that wrote it may still be running (klineo.store.order_claim);
    # while it lasts a retry with the same key is answered "in progress". Cleared with the outcome.
    lease_until_ms: int | None = None
    # A protective order's: the latest wall-clock ms at which the attempt that stamped ``attempt_ms`` could
    # still sign its POST (``klineo.binance.posts_signed_by``: the call_deadline it ran under, else its
    # invocation's end), written with that stamp. A resend's recvWindow wait counts from it; None: not known
    # (neither known, or written before this was stored), ``klineo.services.protective`` assumes the longest.
    send_by_ms: int | None = None
    # Set when we stopped following the order before it was settled (``mark_unmanaged``): since when,
    # and why (UNMANAGED_CONNECTION_DELETED). Its status is then the last one Binance told us.
    unmanaged_since: str | None = None
    unmanaged_reason: str | None = None
    # An entry whose protective orders were re-placed (a live strategy's re-priced, ``klineo.runner.reprice``;
    # an API entry's re-fitted to what a reduction left, ``klineo.services.protective_resize``): how many
    # generations of them were ever claimed (their clientAlgoIds: ``protective_client_algo_id``); None: 1.
    protective_generations: int | None = None
    # A close's (role ``position_close``): what the MARKET grid left of the position it closed (a decimal
    # string), kept so a replay of its key answers it too (``klineo.services.position_close``).
    position_left: str | None = None
    # An API entry whose protective orders are being re-placed for what a reduction left of its position
    # (``klineo.services.protective_resize``): the claim (generation, quantity, roles with their triggers,
    # the clientAlgoIds it replaces) until it is done; the last generation placed in full (its replaced
    # orders may be cancelled); the quantity Binance refused them for, for good.
    protective_resize: dict[str, Any] | None = None
    protective_resized: int | None = None
    protective_refused_quantity: str | None = None
    # An API entry whose position Binance read gone (0, a one-way position flipped past zero, or dust below
    # the symbol's MARKET minimum, which no stop can guard) while one of its stops was lost past Binance's
    # retention: when (epoch ms). Its lost stops are never placed again and its position never read again for
    # them: a later position is not this entry's (``klineo.services.protective_resize.replace_lost``).
    position_gone_ms: int | None = None
    # A live strategy's order whose fills were not read when it settled: what its strategy's live book
    # counted for it by estimate ({"realised", "fees"}, klineo.runner.pnl), until the reconciler books
    # Binance's own fills in its place and removes it. A strategy's protective order carries
    # NOTHING_COUNTED from its claim: its fills (it fired) are booked once the reconciler reads them. A
    # liquidation / ADL's keeps the estimate of each strategy whose position it closed (BY_STRATEGY).
    booked_estimate: dict[str, Any] | None = None
    # Fills a reconciler's budget stopped it reading, while the record waits in the unsettled index
    # (``record_fills_progress``): {"fills", "fills_summary", "after": [last trade id, its time]}.
    fills_progress: dict[str, Any] | None = None

    @property
    def final(self) -> bool:
        """True when nothing can change any more (see FINAL_STATUSES)."""
        return self.status in FINAL_STATUSES

    @property
    def position_side(self) -> str:
        """The positionSide the order was sent with: BOTH in one-way mode."""
        return str(self.params.get("positionSide") or "BOTH")

    @property
    def sent_quantity(self) -> Decimal:
        """The quantity the order was sent with (0 for one without: a closePosition stop closes whatever is
        held)."""
        return Decimal(str(self.params.get("quantity") or 0))

    @property
    def protective_targets(self) -> dict[str, dict[str, Any]]:
        """The stop-loss / take-profit this entry's request asked for, by role ({} for none)."""
        request = self.request
        return {role: request[role] for role in PROTECTIVE_ROLES if isinstance(request.get(role), dict)}

    @property
    def sort_key(self) -> str:
        """Its gsi1sk: where the order history's index sorts it (``<created ms>#<clientOrderId>``)."""
        return f"{iso_ms(self.created_at):013d}#{self.client_order_id}"

    @property
    def settled(self) -> bool:
        """True when the record holds Binance's own answer about the order (placed and known)."""
        return self.status not in (STATUS_PENDING, STATUS_UNKNOWN, STATUS_REJECTED)

    def to_item(self) -> dict[str, Any]:
        """The DynamoDB item (low-level attribute values)."""
        return to_item({
            "pk": f"USER#{self.user_id}",
            "sk": f"ORDER#{self.client_order_id}",
            "user_id": self.user_id,
            "client_order_id": self.client_order_id,
            "connection_id": self.connection_id,
            "symbol": self.symbol,
            "request": self.request,
            "params": self.params,
            "status": self.status,
            "attempt_ms": self.attempt_ms,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "order_id": self.order_id,
            "result": self.result,
            "error": self.error,
            "kind": self.kind,
            "origin": self.origin,
            "role": self.role,
            "parent_client_order_id": self.parent_client_order_id,
            "fills": self.fills,
            "fills_summary": self.fills_summary,
            "lease_until_ms": self.lease_until_ms,
            "send_by_ms": self.send_by_ms,
            "unmanaged_since": self.unmanaged_since,
            "unmanaged_reason": self.unmanaged_reason,
            "protective_generations": self.protective_generations,
            "position_left": self.position_left,
            "protective_resize": self.protective_resize,
            "protective_resized": self.protective_resized,
            "protective_refused_quantity": self.protective_refused_quantity,
            "position_gone_ms": self.position_gone_ms,
            "booked_estimate": self.booked_estimate,
            "fills_progress": self.fills_progress,
            **index_attributes(self),
        })

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> OrderRecord:
        """Build a record from a DynamoDB item (low-level attribute values)."""
        plain = {name: from_attr(value) for name, value in item.items()}
        order_id = plain.get("order_id")
        return cls(
            user_id=plain["user_id"],
            client_order_id=plain["client_order_id"],
            connection_id=plain["connection_id"],
            symbol=plain["symbol"],
            request=_plain_numbers(plain.get("request") or {}),
            params={k: str(v) for k, v in (plain.get("params") or {}).items()},
            status=plain["status"],
            attempt_ms=int(plain["attempt_ms"]),
            created_at=plain["created_at"],
            updated_at=plain["updated_at"],
            order_id=int(order_id) if order_id is not None else None,
            result=_plain_numbers(plain["result"]) if plain.get("result") is not None else None,
            error=_plain_numbers(plain["error"]) if plain.get("error") is not None else None,
            kind=plain.get("kind") or KIND_ORDER,
            origin=plain.get("origin") or ORIGIN_API,
            role=plain.get("role"),
            parent_client_order_id=plain.get("parent_client_order_id"),
            fills=_plain_numbers(plain["fills"]) if plain.get("fills") is not None else None,
            fills_summary=_plain_numbers(plain["fills_summary"]) if plain.get("fills_summary") else None,
            lease_until_ms=_int_or_none(plain.get("lease_until_ms")),
            send_by_ms=_int_or_none(plain.get("send_by_ms")),
            unmanaged_since=plain.get("unmanaged_since"),
            unmanaged_reason=plain.get("unmanaged_reason"),
            protective_generations=_int_or_none(plain.get("protective_generations")),
            position_left=plain.get("position_left"),
            protective_resize=_plain_numbers(plain["protective_resize"])
            if plain.get("protective_resize") is not None else None,
            protective_resized=_int_or_none(plain.get("protective_resized")),
            protective_refused_quantity=plain.get("protective_refused_quantity"),
            position_gone_ms=_int_or_none(plain.get("position_gone_ms")),
            booked_estimate=dict(plain["booked_estimate"]) if plain.get("booked_estimate") else None,
            fills_progress=_plain_numbers(plain["fills_progress"]) if plain.get("fills_progress") else None,
        )


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None else None


def fired_entry(record: OrderRecord) -> str | None:
    """The entry (its clientOrderId) whose position ``record``, one of its protective orders, closed by
    firing; None when ``record`` is not a protective order that fired.

    The sibling rule, of the reads of the open orders
    (``klineo.services.protective_siblings.cancel_fired_siblings``) and of the reconciler: every other
    protective order of that entry still open, of any role and any generation, is cancelled. They all
    protected the one position, which the fire closed.
    """
    fired = record.role in PROTECTIVE_ROLES and record.status in FIRED_PROTECTIVE
    return record.parent_client_order_id if fired else None


def protective_generations_update(user_id: str, entry_client_order_id: str,
                                  generations: int) -> dict[str, Any]:
    """A transaction's Update of an entry's record: ``generations`` of its protective orders were claimed
    (conditional on the record existing: a strategy's entry is recorded when it is claimed)."""
    update = Update(sets={"protective_generations": generations, "updated_at": _now_iso()})
    return {"Update": {"TableName": get_settings().data_table, "Key": _key(user_id, entry_client_order_id),
                       "ConditionExpression": "attribute_exists(pk)", **update.request()}}


def _conditional_update(user_id: str, client_order_id: str, update: Update, condition: str,
                        **values: dict[str, Any]) -> bool:
    """One conditional UpdateItem of an entry's record (``condition`` may name ``#protective_generations``);
    False when its condition failed. A storage failure is a retryable KlineoError (nothing was written)."""
    named = "#protective_generations" in condition  # DynamoDB refuses a name the expressions do not use
    request = update.request({"#protective_generations": "protective_generations"} if named else {}, **values)
    try:
        return conditional_write(aws.dynamodb().update_item, TableName=get_settings().data_table,
                                 Key=_key(user_id, client_order_id), ConditionExpression=condition, **request)
    except (ClientError, BotoCoreError) as exc:
        raise _storage_failed() from exc


def _storage_failed() -> KlineoError:
    return KlineoError(ErrorCategory.UPSTREAM_UNAVAILABLE, "Storage failed while re-placing protective "
                       "orders; they are resumed on the next read.", retryable=True)


def claim_protective_resize(user_id: str, entry_client_order_id: str, seen_generations: int,
                            claim: dict[str, Any]) -> bool:
    """Claim generation ``seen_generations`` of an API entry's protective orders for a re-placing (``claim``
    kept as ``protective_resize``; ``protective_generations`` moved on by one), iff nobody claimed one since
    the entry was read: True when claimed (``klineo.services.protective_resize``)."""
    update = Update(sets={"protective_resize": claim, "protective_generations": seen_generations + 1,
                          "updated_at": _now_iso()})
    condition = "#protective_generations = :seen"
    if seen_generations <= 1:  # never re-placed: the entry's record has no count yet
        condition = f"(attribute_not_exists(#protective_generations) OR {condition})"
    condition = f"attribute_exists(pk) AND {condition}"
    return _conditional_update(user_id, entry_client_order_id, update, condition,
                               **{":seen": to_attr(seen_generations)})


def end_protective_resize(user_id: str, entry_client_order_id: str, generation: int,
                          refused_quantity: str | None = None, placed: bool = True) -> bool:
    """Forget the claim of ``generation``, placed (``protective_resized``: each role it placed replaces its
    older orders), refused for good for some role (``refused_quantity`` is then kept so it is not tried again
    at that quantity; ``placed`` False when it placed none) or dropped (``placed`` False), iff no newer
    generation was claimed since: True when done."""
    sets: dict[str, Any] = {"updated_at": _now_iso()}
    if refused_quantity is not None:
        sets["protective_refused_quantity"] = refused_quantity
    if placed:
        sets["protective_resized"] = generation
    update = Update(sets=sets, removes=["protective_resize"])
    return _conditional_update(user_id, entry_client_order_id, update, "#protective_generations = :next",
                               **{":next": to_attr(generation + 1)})


def record_position_gone(user_id: str, entry_client_order_id: str) -> None:
    """The API entry's position was read gone (``OrderRecord.position_gone_ms``, now): one UpdateItem, nothing
    when the record is gone. A storage failure is a retryable KlineoError (the next read records it)."""
    update = Update(sets={"position_gone_ms": int(time.time() * 1000), "updated_at": _now_iso()})
    _conditional_update(user_id, entry_client_order_id, update, "attribute_exists(pk)")


def record_refit_given_up(user_id: str, client_order_id: str, held: str) -> None:
    """An API entry's protective order for more than its position's ``held`` that can never be re-fitted to
    it (its symbol will never trade again): ``protective_refused_quantity`` on its own record, so the
    reconciler's cleanup does not try that size again (one UpdateItem; nothing when the record is gone)."""
    update = Update(sets={"protective_refused_quantity": held, "updated_at": _now_iso()})
    conditional_write(aws.dynamodb().update_item, TableName=get_settings().data_table,
                      Key=_key(user_id, client_order_id), ConditionExpression="attribute_exists(pk)",
                      **update.request())


def _plain_numbers(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; whole ones become int again (maps and lists walked)."""
    if isinstance(value, dict):
        return {k: _plain_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_numbers(v) for v in value]
    if not isinstance(value, bool) and hasattr(value, "as_integer_ratio") and value == int(value):
        return int(value)
    return value


def pending_record(
    user_id: str,
    client_order_id: str,
    *,
    connection_id: str,
    symbol: str,
    request: dict[str, Any],
    params: dict[str, str],
    attempt_ms: int,
    lease_until_ms: int | None = None,
    kind: str = KIND_ORDER,
    role: str | None = None,
    parent_client_order_id: str | None = None,
    origin: str = ORIGIN_API,
    position_left: str | None = None,
    send_by_ms: int | None = None,
) -> OrderRecord:
    """A new PENDING record, created now (not written)."""
    now = _now_iso()
    return OrderRecord(
        user_id=user_id,
        client_order_id=client_order_id,
        connection_id=connection_id,
        symbol=symbol,
        request=request,
        params=params,
        status=STATUS_PENDING,
        attempt_ms=attempt_ms,
        created_at=now,
        updated_at=now,
        lease_until_ms=lease_until_ms,
        kind=kind,
        role=role,
        parent_client_order_id=parent_client_order_id,
        origin=origin,
        position_left=position_left,
        send_by_ms=send_by_ms,
    )


def create_order_record(
    user_id: str,
    client_order_id: str,
    *,
    connection_id: str,
    symbol: str,
    request: dict[str, Any],
    params: dict[str, str],
    attempt_ms: int,
    kind: str = KIND_ORDER,
    role: str | None = None,
    parent_client_order_id: str | None = None,
    origin: str = ORIGIN_API,
) -> tuple[OrderRecord, OrderRecord | None]:
    """Write the PENDING record unless one exists: (the new record, None) or (unused, the existing one).

    One conditional PutItem; on conflict the existing item comes back with the failed condition.
    `request` holds the caller's validated body (strings, bools, None), `params` what is sent to Binance;
    `kind`, `role` and `parent_client_order_id` label algo and protective orders (see OrderRecord).
    (API orders are claimed with klineo.store.order_claim instead; this writes a record without a lease.)
    """
    record = pending_record(user_id, client_order_id, connection_id=connection_id, symbol=symbol,
                            request=request, params=params, attempt_ms=attempt_ms, kind=kind, role=role,
                            parent_client_order_id=parent_client_order_id, origin=origin)
    try:
        aws.dynamodb().put_item(
            TableName=get_settings().data_table,
            Item=record.to_item(),
            ConditionExpression="attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as exc:
        if aws.error_code(exc) != aws.CONDITION_FAILED:
            raise
        old = exc.response.get("Item")
        existing = OrderRecord.from_item(old) if old else get_order_record(user_id, client_order_id)
        if existing is None:  # deleted between the two calls: nothing to recover from, write again
            return create_order_record(
                user_id,
                client_order_id,
                connection_id=connection_id,
                symbol=symbol,
                request=request,
                params=params,
                attempt_ms=attempt_ms,
                kind=kind, role=role, parent_client_order_id=parent_client_order_id, origin=origin,
            )
        return record, existing
    return record, None


def get_order_record(user_id: str, client_order_id: str) -> OrderRecord | None:
    """The caller's order record (strongly consistent GetItem), or None."""
    response = aws.dynamodb().get_item(
        TableName=get_settings().data_table,
        Key=_key(user_id, client_order_id),
        ConsistentRead=True,
    )
    item = response.get("Item")
    return OrderRecord.from_item(item) if item else None


def record_order_outcome(user_id: str, client_order_id: str, **outcome: Any) -> None:
    """Store what became of the order (one UpdateItem); a known result clears an earlier error.

    ``outcome``: the keywords of ``order_outcome_update`` (status, order_id, result, error, params, fills,
    fills_summary). The attempt's lease ends with it: a later retry with the same key may resume the order.
    A settled state (final with ``fills``, or REJECTED/UNKNOWN_PURGED) also leaves the unsettled
    index (REMOVE gsi2pk, gsi2sk).
    """
    aws.dynamodb().update_item(**order_outcome_update(user_id, client_order_id, **outcome))


def order_outcome_update(
    user_id: str,
    client_order_id: str,
    *,
    status: str,
    order_id: int | None = None,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
    fills: list[dict[str, Any]] | None = None,
    fills_summary: dict[str, Any] | None = None,
    booked_estimate: dict[str, Any] | None = None,
    estimate_replaced: Mapping[str, Any] | None = None,
    while_unsettled: bool = False,
) -> dict[str, Any]:
    """The UpdateItem request of ``record_order_outcome`` (also a transaction's ``Update``, e.g. the runner's
    settlement): conditional on the record existing. ``fills_summary`` (with ``fills`` shortened, see
    ``klineo.store.order_fills``; a summary once written stays) and ``booked_estimate``: see ``OrderRecord``;
    ``estimate_replaced``: the ``booked_estimate`` as read, the fills booked in its place, so it goes, on
    condition it is still the one read (the reconciler's ``klineo.store.runs.book_order_fills``: booked
    once, and no strategy's estimate kept on a forced order since is lost); ``while_unsettled``: on
    condition the record is still in the unsettled index, or let go (``record_unsettled_outcome``)."""
    sets = {"status": status, "updated_at": _now_iso(), "order_id": order_id, "result": result,
            "error": error, "params": params, "fills": fills, "fills_summary": fills_summary,
            "booked_estimate": booked_estimate}
    removes = ["lease_until_ms"] + ([] if error is not None else ["error"]) + (
        ["gsi2pk", "gsi2sk", "fills_progress"] if is_settled(status, fills) else []) + (
        ["booked_estimate"] if estimate_replaced is not None else [])
    update = Update(sets={name: value for name, value in sets.items() if value is not None}, removes=removes)
    replaced, values = _estimate_as_read(estimate_replaced) if estimate_replaced is not None else ("", {})
    condition = "attribute_exists(pk)" + (f" AND {replaced}" if replaced else "") + (
        " AND (attribute_exists(gsi2pk) OR attribute_exists(unmanaged_since))" if while_unsettled else "")
    return {"TableName": get_settings().data_table, "Key": _key(user_id, client_order_id),
            "ConditionExpression": condition, **update.request(**values)}


def _estimate_as_read(seen: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The condition that a record's ``booked_estimate`` is still ``seen`` (None: that it has none), with its
    values: a forced order's by its ``revision``; any other, still there and not a forced order's since."""
    if seen is None:
        return "attribute_not_exists(booked_estimate)", {}
    if "revision" in seen:
        return "booked_estimate.revision = :seen_revision", {":seen_revision": to_attr(seen["revision"])}
    return "attribute_exists(booked_estimate) AND attribute_not_exists(booked_estimate.revision)", {}


def record_unsettled_outcome(user_id: str, client_order_id: str, **outcome: Any) -> bool:
    """``record_order_outcome`` iff the record is still in the unsettled index (or was let go,
    ``mark_unmanaged``: its last known state may still be told); False when it is not (one conditional
    UpdateItem). For a reader that read the order before writing (the reconciler): once another reader
    settled the record meanwhile, an older answer read before that must not take it back to an earlier
    state, out of the index for good."""
    update = order_outcome_update(user_id, client_order_id, while_unsettled=True, **outcome)
    return conditional_write(aws.dynamodb().update_item, **update)


def record_fills_progress(user_id: str, client_order_id: str, progress: dict[str, Any]) -> bool:
    """Keep the fills a reconciler read of an order before its budget stopped it (``OrderRecord.
    fills_progress``), iff the record is still in the unsettled index: the next read goes on from there.
    False when it is not (settled meanwhile: nothing to keep)."""
    update = Update(sets={"fills_progress": progress, "updated_at": _now_iso()})
    return conditional_write(
        aws.dynamodb().update_item, TableName=get_settings().data_table, Key=_key(user_id, client_order_id),
        ConditionExpression="attribute_exists(gsi2pk)", **update.request())


def mark_unmanaged(user_id: str, client_order_id: str, reason: str) -> OrderRecord | None:
    """Stop following the record (one UpdateItem): it leaves the unsettled index, its state stays the
    last one Binance told us, and ``unmanaged_since``/``unmanaged_reason`` say when and why. The record
    as it is now, or None when it does not exist."""
    update = Update(sets={"unmanaged_since": _now_iso(), "unmanaged_reason": reason},
                    removes=["gsi2pk", "gsi2sk"])
    try:
        response = aws.dynamodb().update_item(
            TableName=get_settings().data_table, Key=_key(user_id, client_order_id),
            ConditionExpression="attribute_exists(pk)", ReturnValues="ALL_NEW", **update.request())
    except ClientError as exc:
        if aws.error_code(exc) != aws.CONDITION_FAILED:
            raise
        return None
    return OrderRecord.from_item(response["Attributes"])


def mark_all_unmanaged(user_id: str, client_order_ids: Sequence[str],
                       reason: str) -> list[OrderRecord | None]:
    """``mark_unmanaged`` of each record, answered in the order given: one conditional UpdateItem each, up
    to ``aws.IN_FLIGHT`` in flight at once (a deleted connection's wind-down lets go of thousands: one after
    another, ~5-10 ms each, they ran its 20 s delete out of time). Each mark stands alone: a failed one is
    raised as it is, those done stay done, and those not yet started are not sent."""
    return aws.concurrently(lambda client_order_id: mark_unmanaged(user_id, client_order_id, reason),
                            client_order_ids)


def record_order_outcome_quietly(user_id: str, client_order_id: str, *, unsettled_only: bool = False,
                                 **outcome: Any) -> bool:
    """``record_order_outcome`` (with ``unsettled_only``, ``record_unsettled_outcome``); a storage failure is
    logged, never allowed to hide the order's outcome. False only when ``unsettled_only`` refused it."""
    try:
        if unsettled_only:
            return record_unsettled_outcome(user_id, client_order_id, **outcome)
        record_order_outcome(user_id, client_order_id, **outcome)
    except (ClientError, BotoCoreError):
        logger.exception("order record update failed", extra={"client_order_id": client_order_id})
    return True


def claim_resend(user_id: str, client_order_id: str, *, previous_attempt_ms: int, attempt_ms: int) -> bool:
    """Move the record's attempt time forward iff nobody else did (optimistic lock); True when claimed.

    Two concurrent retries of the same order can both find it absent at Binance; only the one
    that wins this conditional update may send it again.
    """
    try:
        aws.dynamodb().update_item(**resend_update(
            user_id, client_order_id, previous_attempt_ms=previous_attempt_ms, attempt_ms=attempt_ms))
    except ClientError as exc:
        if aws.error_code(exc) == aws.CONDITION_FAILED:
            return False
        raise
    return True


def resend_update(user_id: str, client_order_id: str, *, previous_attempt_ms: int,
                  attempt_ms: int, send_by_ms: int | None = None) -> dict[str, Any]:
    """The UpdateItem request of ``claim_resend`` (also a transaction's ``Update``: a protective order's,
    ``klineo.store.order_claim.claim_protective_resend``, which stamps ``send_by_ms`` with it: None removes
    an earlier attempt's, never left to describe this one)."""
    update = Update(sets={"attempt_ms": attempt_ms, "status": STATUS_PENDING, "updated_at": _now_iso(),
                          **unsettled_keys(user_id, client_order_id)})
    if send_by_ms is None:
        update.removes.append("send_by_ms")
    else:
        update.sets["send_by_ms"] = send_by_ms
    return {"TableName": get_settings().data_table, "Key": _key(user_id, client_order_id),
            "ConditionExpression": "attempt_ms = :previous",
            **update.request(**{":previous": to_attr(previous_attempt_ms)})}


def get_order_records(user_id: str, client_order_ids: list[str]) -> dict[str, OrderRecord]:
    """The caller's records among ``client_order_ids`` (BatchGetItem, 100 keys a call), by id."""
    found: dict[str, OrderRecord] = {}
    table = get_settings().data_table
    ids = sorted(set(client_order_ids))
    for start in range(0, len(ids), 100):
        keys = [_key(user_id, i) for i in ids[start:start + 100]]
        request = {table: {"Keys": keys, "ConsistentRead": True}}
        while request:
            response = aws.dynamodb().batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(table, []):
                record = OrderRecord.from_item(item)
                found[record.client_order_id] = record
            request = response.get("UnprocessedKeys") or {}
    return found


def put_new_record(record: OrderRecord) -> bool:
    """Write ``record`` unless a record with its key exists (one conditional PutItem); True when written."""
    try:
        aws.dynamodb().put_item(
            TableName=get_settings().data_table,
            Item=record.to_item(),
            ConditionExpression="attribute_not_exists(pk)",
        )
    except ClientError as exc:
        if aws.error_code(exc) != aws.CONDITION_FAILED:
            raise
        return False
    return True


def estimate_kept_update(record: OrderRecord) -> dict[str, Any]:
    """The Update (a transaction's: the runner's ``klineo.store.runs.correct_position``) that keeps
    ``record.booked_estimate`` (one strategy's, naming it) on the record of an order Binance made without us
    (a liquidation or ADL that closed a strategy's position, its fills not listed yet), creating it as
    ``record`` when absent (as the reconciler records a foreign order, same key) and putting it (back) in the
    unsettled index, so that the reconciler reads its fills and books them in the estimate's place
    (``klineo.services.live_fills``). One forced order may close several strategies' positions: the record
    keeps each one's estimate (``kept_estimates``, from the record read now), on condition that it still
    keeps what was read (refused, the correction is not written: a later turn makes it again)."""
    plain = {name: from_attr(value) for name, value in record.to_item().items() if name not in ("pk", "sk")}
    ours = plain.pop("booked_estimate")
    keep = unsettled_keys(record.user_id, record.client_order_id)
    for name in keep:
        plain.pop(name, None)
    existing = get_order_record(record.user_id, record.client_order_id)
    seen = existing.booked_estimate if existing is not None else None
    update = Update(sets={"booked_estimate": kept_estimates(seen, ours), **keep}, defaults=plain)
    condition, values = _estimate_as_read(seen)
    return {"TableName": get_settings().data_table, "Key": _key(record.user_id, record.client_order_id),
            "ConditionExpression": condition, **update.request(**values)}


def kept_estimates(seen: Mapping[str, Any] | None, ours: Mapping[str, Any]) -> dict[str, Any]:
    """A forced order's ``booked_estimate`` once the estimate ``ours`` of the strategy it names joins those
    ``seen`` on the record (``estimates_by_strategy``): a counted one takes the place of that strategy's
    earlier one; a ``counted`` False one only where that strategy has none, so an estimate still to be
    replaced is never forgotten."""
    estimates = estimates_by_strategy(seen)
    strategy_id = str(ours["strategy_id"])
    if ours.get("counted", True) is not False or strategy_id not in estimates:
        estimates[strategy_id] = dict(ours)
    return {BY_STRATEGY: estimates, "revision": int((seen or {}).get("revision", 0)) + 1}


def estimates_by_strategy(booked_estimate: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The estimates a forced order's ``booked_estimate`` keeps, by strategy id ({} for none); one kept whole
    (written before several could be kept) under the strategy it names."""
    if not booked_estimate:
        return {}
    if BY_STRATEGY in booked_estimate:
        return {str(sid): dict(estimate) for sid, estimate in booked_estimate[BY_STRATEGY].items()}
    return {str(booked_estimate["strategy_id"]): dict(booked_estimate)}


def strategy_order_record(
    user_id: str,
    client_order_id: str,
    *,
    strategy_id: str,
    connection_id: str,
    symbol: str,
    params: dict[str, str],
    status: str = STATUS_PENDING,
    attempt_ms: int,
    order_id: int | None = None,
    result: dict[str, Any] | None = None,
) -> OrderRecord:
    """The record of an order a strategy places (origin = the strategy's id), created now (not written).

    Written as a Put of the runner's claim transaction (``klineo.store.runs.claim_live_order``)
    with its ``to_item()``; a non-final record is picked up by the reconciler (unsettled index), so
    an outcome the runner never learned is still settled.
    """
    now = _now_iso()
    return OrderRecord(
        user_id=user_id, client_order_id=client_order_id, connection_id=connection_id, symbol=symbol,
        request={"strategy_id": strategy_id}, params=params, status=status, attempt_ms=attempt_ms,
        created_at=now, updated_at=now, order_id=order_id, result=result, origin=strategy_id,
    )
