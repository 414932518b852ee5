"""Strategy runs (pk=STRAT#<id>, sk=RUN#<candle close ms>, with a ``ttl``) and the runner's state moves.

One run per (strategy, candle): the run is the candle's exactly-once anchor. It is written only
if absent (``attribute_not_exists(sk)``), and an order can only be claimed while it is absent, so
a redelivered message or a second dispatcher tick for the same candle can neither evaluate nor
order twice. The runner's state lives on the strategy item (``klineo.store.strategies``). Each
move of the runner is ONE write request, atomic, so there is no crash point inside a move:

- A hold (``no_change``), and a skip that pauses nothing: ONE conditional PutItem of the run
  (``record_run`` / ``record_skip`` without ``advance``), no strategy write, no event. Why a
  single put is enough: nothing on the strategy changes on a hold, and every guard that used to
  need ``last_close`` moved on is the run itself (a repeat is refused: ``not_run``; the claim
  below requires the run to be absent). The run item stays under 1 KB (one write unit; see
  ``tests/unit/runner/test_run_writes.py``, which sizes a realistic run with the biggest indicators
  by DynamoDB's item-size rules), so a hold tick costs 1 request and 1 write unit. The one exception:
  the first hold after failed runs clears the strategy's ``failed_runs`` in the same request, a
  transaction of the run and that update (``klineo.runner.failures``).
  (``last_close`` therefore moves only with a change the strategy item makes anyway; the API's
  ``last_run_close_time`` is the latest of it and the newest run: ``latest_run_close_time``.)
- Any other final run (a paper fill, a failed run, a skip that pauses): ONE TransactWriteItems of
  the run's Put (only if absent), the strategy's Update (``advance``: position from -> to, book,
  key_failures, failed_runs, pause; conditions: behind this candle, no pending order, position as sized and,
  from the runner, ``updated_at`` as read = unchanged since read) and the Puts of the turn's events.
  A skip whose order the risk gate refused (its ``risk_block``) also puts that refused order attempt
  (``klineo.store.order_attempts``) in the same transaction: no request of its own; so does any run of a
  candle whose flip's new side a limit refused before its close was claimed.
- ``claim_live_order``: ONE TransactWriteItems: the strategy's Update setting ``pending`` (the
  order and the decision behind it; conditions: active, live, no pending order, behind this
  candle, position as sized, unchanged since read), a ConditionCheck that this candle has no run,
  the gates' ConditionChecks (``klineo.store.order_claim.gate_condition_checks``: kill switches,
  futures_enabled, connection not disabled), the Put of the order history's PENDING record and the
  Puts of the events before the send (signal, order_submit). Only this transaction lets an order
  out; a refusal names what failed (``Claim.failed``).
- ``hand_over_live_order``: a hedge-mode flip's first leg (the old side's close) settled and its
  second leg (the new side's entry) claimed in ONE TransactWriteItems: the strategy's Update (position
  after the close, live book, ``pending`` moved to the second leg; conditions: still this first leg
  pending, active, live), the first record's outcome, the gates' ConditionChecks and the second leg's
  PENDING record (only if absent) with the events. No run: the candle's run is written when the second
  leg settles, by ``settle_live_order``, so the two legs are one candle's run.
- ``extend_lease``: a later attempt takes over a pending order whose claimer's lease ran out.
- ``settle_live_order``: ONE TransactWriteItems: the run's Put (unconditional: what Binance did is
  the truth for the candle), the strategy's Update (position, ``pending`` cleared on condition that
  it is still this order, live book, key_failures, failed_runs written relative to the item's own so a
  resume meanwhile is not undone, pause), the order history record's outcome
  Update and the events of the fill. A settle that finds the order no longer pending was done by
  another attempt: nothing more is written.
- ``book_order_fills``: the reconciler's, for a live order whose fills were estimated when it settled:
  ONE TransactWriteItems of the strategy's Update (of each strategy's, for a forced order that closed
  several strategies' positions: the live book with Binance's fills in place of the estimate; conditions:
  no pending order, unchanged since read), the order record's outcome (its fills, its ``booked_estimate``
  removed on condition it is still the one read) and the ``fills_booked`` events.
- ``correct_position`` / ``set_protective`` / ``replace_protective`` / ``set_paper_book``: one Update,
  in one transaction with its events (``correct_position``'s also with the records of the liquidation / ADL
  orders whose fills the live book counted by estimate, each keeping that estimate for the reconciler).
  ``set_protective`` (an entry's stops, or their record forgotten, after the strategy's own order settled)
  writes only while no order is pending and the position, its entry and its protective record are as that
  turn read them: the settle lets a newer turn trade, and its record is never overwritten by an older
  turn's late one (``add_superseded`` hands that turn's orders whose cancel failed to it).

What a crash leaves (every write is atomic, so only the points between writes matter):
- before a run's put or transaction: nothing; the redelivered message plays the candle again.
- after it: everything; a repeat is refused (``not_run``) and changes nothing.
- between the claim and the send: ``pending`` (with its lease), the PENDING record, the signal and
  order_submit events. Once the lease ran out the next attempt looks the order up by its
  clientOrderId and sends it only when proven never to have reached Binance (after recvWindow).
- between the send and the settle: the same; the next attempt finds the order at Binance by its
  clientOrderId and settles it once (the settle is conditional on this order still pending).
- between a flip's hand-over and its second send: the second leg is the pending order, resumed the same
  way (looked up by its own clientOrderId, sent only when proven never to have reached Binance).
- after the settle: the protective orders of an entry and the live PnL's fills read are extra calls
  after it (``klineo.runner.execution``); a crash there leaves the entry without its stops (placed by
  the next turn: ``klineo.runner.reprice``).
Transactions cost 2 write units per item, so they are only for writes that move money or
state; a hold never pays for one.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from klineo.settings import get_settings
from klineo.store import aws
from klineo.store.dynamo import Update, conditional_write, from_attr, to_attr, to_item, transact
from klineo.store.events import StrategyEvent, WriteTime, decode_cursor, event_put, query_page, write_time
from klineo.store.strategies import ACTIVE, PAUSED, PendingOrder, now_iso, strategy_key
from klineo.validation import decimal_or_none

__all__ = [
    "RUN_KEY",
    "RUN_READERS",
    "RUN_STATUSES",
    "Claim",
    "Run",
    "Settled",
    "StrategyAdvance",
    "StrategyChanged",
    "add_superseded",
    "book_order_fills",
    "claim_live_order",
    "clear_reentry_block",
    "correct_position",
    "extend_lease",
    "get_run",
    "hand_over_live_order",
    "latest_run_close_time",
    "latest_run_close_times",
    "list_runs",
    "list_runs_page",
    "record_run",
    "record_skip",
    "reentry_block_sets",
    "replace_protective",
    "run_key",
    "set_paper_book",
    "set_protective",
    "settle_live_order",
    "settle_unknown_close",
]

_log = logging.getLogger(__name__)

# ordered: a live order settled at Binance (its fill added to the position);
# simulated: a paper fill; no_change: the target equals the position; skipped: not evaluated or
# not traded for a stated reason (kill switch, futures disabled, stale candle, ...); failed: an
# order could not be placed (error category recorded).
RUN_STATUSES = ("ordered", "simulated", "no_change", "skipped", "failed")
# The most newest-run Queries ``latest_run_close_times`` has in flight: the AWS SDK's connection pool holds
# 10 connections (klineo.store.aws); more threads would only queue on it.
RUN_READERS = aws.IN_FLIGHT
# The shape of every run's sort key (``run_key``): what a runs cursor may name.
RUN_KEY = re.compile(r"RUN#\d{1,13}")


def run_key(strategy_id: str, close_time: int) -> dict[str, Any]:
    """The primary key of one run."""
    return {"pk": {"S": f"STRAT#{strategy_id}"}, "sk": {"S": f"RUN#{close_time}"}}


@dataclass(frozen=True)
class StrategyAdvance:
    """Runner-state changes written with a final run; ``None`` fields are left as they are."""

    position_attribute: str | None = None  # "live_position" or "paper_position"
    position_from: Decimal | None = None
    position_to: Decimal | None = None
    key_failures: int | None = None
    failed_runs: int | None = None  # consecutive failed runs (klineo.runner.failures)
    pause_reason: str | None = None
    # Skips only: pause even while an older live order awaits settlement (a skip changes no
    # position; it leaves ``last_close`` alone, so settling that order never moves it back).
    allow_pending: bool = False
    # Further runner attributes set with the same write (paper_book, protective; {} clears a map).
    extra: dict[str, Any] | None = None
    # The strategy's ``updated_at`` as the turn read it: the write requires it unchanged.
    seen_updated_at: str | None = None


class StrategyChanged(Exception):
    """The strategy is not as the turn read it (edited, traded, claimed): read it again, play again.

    ``item`` is the strategy item as it is now when DynamoDB handed it back (None: deleted, or not
    handed back).
    """

    def __init__(self, item: dict[str, Any] | None):
        super().__init__("the strategy changed since it was read")
        self.item = item


@dataclass(frozen=True)
class Claim:
    """A claim transaction's answer: truthy when the order is claimed; else ``failed`` names what failed.

    Names: "strategy" (not as read; its current item), "run" (the candle has a run), "record" (the
    clientOrderId is taken), and the gates' "connection", "user_flags", "global_flags" (their items).
    """

    failed: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class Settled:
    """A settle's answer (``settle_live_order``): truthy when written; ``paused`` when its pause was stored
    too (a resume meanwhile drops it: the settle is then written without it)."""

    written: bool
    paused: bool = False

    def __bool__(self) -> bool:
        return self.written


@dataclass(frozen=True)
class Run:
    """What the runner did for one strategy on one closed candle."""

    strategy_id: str
    user_id: str
    close_time: int
    status: str
    mode: str
    signal: str | None = None
    reason: str | None = None
    indicators: dict[str, str] = field(default_factory=dict)
    position_before: Decimal | None = None
    target_position: Decimal | None = None
    order: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    skip_reason: str | None = None
    created_at: str = ""
    updated_at: str = ""
    # A hedge-mode flip's first order (the old side's close) when ``order`` is its second (the new side's).
    close_order: dict[str, Any] | None = None

    def to_item(self, when: WriteTime) -> dict[str, Any]:
        """The DynamoDB item written at ``when``: ``ttl`` the event retention (``EVENT_RETENTION_DAYS``)."""
        stamp = self.created_at or when.now
        return {**run_key(self.strategy_id, self.close_time), **to_item({
            "entity": "run", "strategy_id": self.strategy_id, "user_id": self.user_id,
            "close_time": self.close_time, "status": self.status, "mode": self.mode,
            "indicators": dict(self.indicators), "created_at": stamp,
            "updated_at": self.updated_at if self.updated_at and self.updated_at != stamp else None,
            "ttl": when.ttl,
            "signal": self.signal, "reason": self.reason, "position_before": self.position_before,
            "target_position": self.target_position, "order": self.order, "error": self.error,
            "skip_reason": self.skip_reason, "close_order": self.close_order,
        })}

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Run:
        """A run from its raw DynamoDB item (a run stored by an older version may carry more)."""
        data = {k: from_attr(v) for k, v in item.items()}
        created = str(data.get("created_at", ""))
        return cls(
            strategy_id=str(data["strategy_id"]),
            user_id=str(data["user_id"]),
            close_time=int(data["close_time"]),
            status=str(data["status"]),
            mode=str(data["mode"]),
            signal=data.get("signal"),
            reason=data.get("reason"),
            indicators={str(k): str(v) for k, v in (data.get("indicators") or {}).items()},
            # Numbers; text or worse in a record an older version wrote: read by the one rule.
            position_before=decimal_or_none(data.get("position_before")),
            target_position=decimal_or_none(data.get("target_position")),
            order=_plain_map(data.get("order")),
            error=_plain_map(data.get("error")),
            skip_reason=data.get("skip_reason"),
            created_at=created,
            updated_at=str(data.get("updated_at") or created),
            close_order=_plain_map(data.get("close_order")),
        )


def _plain_map(value: Any) -> dict[str, Any] | None:
    """A stored map back as a dict; whole numbers (order ids, times) become int again."""
    if value is None:
        return None
    return {
        str(k): int(v) if isinstance(v, Decimal) and v == v.to_integral_value() else v
        for k, v in dict(value).items()
    }


def _table() -> str:
    return get_settings().data_table


def _run_put(run: Run, when: WriteTime, *, only_new: bool) -> dict[str, Any]:
    put: dict[str, Any] = {"TableName": _table(), "Item": run.to_item(when)}
    if only_new:
        put["ConditionExpression"] = "attribute_not_exists(sk)"
    return {"Put": put}


def _strategy_update(user_id: str, strategy_id: str, update: Update, condition: str,
                     **values: dict[str, Any]) -> dict[str, Any]:
    """A conditional Update of the strategy item (handing back its current item when refused)."""
    return {"Update": {
        "TableName": _table(), "Key": strategy_key(user_id, strategy_id), "ConditionExpression": condition,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD", **update.request(**values),
    }}


def _commit(named: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any] | None]:
    """Write ``named`` atomically: one single-item request when there is one write (no transaction's
    double cost), else ONE TransactWriteItems; {} when written, else the failed names (see ``transact``)."""
    if len(named) > 1:
        return transact(named)
    name, write = named[0]
    (verb, request), = write.items()
    call = {"Put": aws.dynamodb().put_item, "Update": aws.dynamodb().update_item}[verb]
    try:
        call(**request)
    except ClientError as exc:
        if aws.error_code(exc) != aws.CONDITION_FAILED:
            raise
        return {name: exc.response.get("Item")}
    return {}


def _events(events: Iterable[StrategyEvent], when: WriteTime) -> list[tuple[str, dict[str, Any]]]:
    """The events' Puts in the write made at ``when``, the first of each key only (a transaction
    refuses two actions on one item): the same event handed twice. Two events of a turn never share a
    key (the runner numbers the second of one kind and tag: ``klineo.store.events``)."""
    firsts: dict[str, StrategyEvent] = {}
    for event in events:
        firsts.setdefault(event.sort_key, event)
    return [(f"event:{event.kind}", event_put(event, when)) for event in firsts.values()]


def get_run(strategy_id: str, close_time: int) -> Run | None:
    """One run, strongly consistent (None when absent)."""
    item = aws.dynamodb().get_item(
        TableName=_table(), Key=run_key(strategy_id, close_time), ConsistentRead=True,
    ).get("Item")
    return Run.from_item(item) if item else None


def _advance_update(user_id: str, strategy_id: str, close_time: int,
                    advance: StrategyAdvance, when: WriteTime) -> dict[str, Any]:
    """The strategy's Update for ``advance`` past ``close_time`` in the write made at ``when``, under its
    conditions (module doc)."""
    update = Update(sets={"updated_at": when.now})
    conditions = ["attribute_exists(pk)"]
    values: dict[str, Any] = {}
    if not advance.allow_pending:
        update.sets["last_close"] = close_time
        conditions += ["(attribute_not_exists(last_close) OR last_close < :last_close)",
                       "attribute_not_exists(pending)"]
    if advance.position_attribute is not None:
        update.sets[advance.position_attribute] = advance.position_to
        if advance.position_from is not None:
            conditions.append(f"#{advance.position_attribute} = :position_from")
            values[":position_from"] = to_attr(advance.position_from)
    if advance.key_failures is not None:
        update.sets["key_failures"] = advance.key_failures
    if advance.failed_runs is not None:
        update.sets["failed_runs"] = advance.failed_runs
    update.sets.update(advance.extra or {})
    if advance.pause_reason is not None:
        update.sets.update(status=PAUSED, status_reason=advance.pause_reason)
        update.removes.extend(["gsi1pk", "gsi1sk"])
    if advance.seen_updated_at is not None:
        conditions.append("#updated_at = :seen")
        values[":seen"] = {"S": advance.seen_updated_at}
    return _strategy_update(user_id, strategy_id, update, " AND ".join(conditions), **values)


def _past(item: dict[str, Any] | None, close_time: int) -> bool:
    """True when the strategy item is already at or past ``close_time`` (the candle is done)."""
    last = (item or {}).get("last_close", {}).get("N")
    return last is not None and int(last) >= close_time


def record_run(run: Run, *, advance: StrategyAdvance | None = None,
               events: Iterable[StrategyEvent] = (), attempts: Iterable[dict[str, Any]] = ()) -> bool:
    """Record a final run with the strategy change it implies and its events, atomically (module doc).

    True when written; False when the candle already had a run (or the strategy is already past it):
    nothing was written. StrategyChanged when the strategy is not as ``advance`` expects (the caller
    reads it again and plays the turn once more). Without ``advance`` and events: ONE PutItem.
    ``attempts``: the Puts of the refused order attempts of the run's candle (``klineo.store.order_attempts``:
    the order the run skipped, a flip's new side a limit refused), in the same write, so each is recorded
    exactly when the run is: a redelivered message finds the run and writes neither again.
    """
    when = write_time()
    named = [("run", _run_put(run, when, only_new=True))]
    if advance is not None:
        update = _advance_update(run.user_id, run.strategy_id, run.close_time, advance, when)
        named.append(("strategy", update))
    named += [(f"attempt:{at}", put) for at, put in enumerate(attempts)]
    failed = _commit(named + _events(events, when))
    if not failed or "run" in failed:
        return not failed
    if _past(failed.get("strategy"), run.close_time):
        return False
    raise StrategyChanged(failed.get("strategy"))


def record_skip(run: Run, advance: StrategyAdvance | None = None,
                events: Iterable[StrategyEvent] = (), attempts: Iterable[dict[str, Any]] = ()) -> bool:
    """Record a skipped candle; False when it already had a run.

    A skip that pauses nothing is ONE PutItem of the run (the run alone keeps the candle from ever
    being traded: the claim requires it absent); one that pauses writes the pause in one transaction
    with it, even while an older live order awaits settlement, and only while the strategy is as the turn
    read it when ``advance`` says so (``seen_updated_at``). ``attempts``: as ``record_run``'s.
    """
    pause = advance.pause_reason if advance is not None else None
    change = None if advance is None or pause is None else StrategyAdvance(
        pause_reason=pause, allow_pending=True, seen_updated_at=advance.seen_updated_at)
    return record_run(run, advance=change, events=events, attempts=attempts)


def _newest_close(client: Any, strategy_id: str) -> int | None:
    """Close time of the strategy's newest run (one eventually consistent Query of one key), or None."""
    answer = client.query(
        TableName=_table(), KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": {"S": f"STRAT#{strategy_id}"}, ":prefix": {"S": "RUN#"}},
        ProjectionExpression="sk", ScanIndexForward=False, Limit=1,
    )
    items = answer.get("Items", [])
    return int(items[0]["sk"]["S"].removeprefix("RUN#")) if items else None


def latest_run_close_time(strategy_id: str) -> int | None:
    """Close time of the strategy's newest run (one eventually consistent Query of one key), or None."""
    return _newest_close(aws.dynamodb(), strategy_id)


def latest_run_close_times(strategy_ids: Sequence[str]) -> dict[str, int | None]:
    """``latest_run_close_time`` of each strategy, keyed by id in the order given: one Query each, up to
    ``RUN_READERS`` in flight at once (GET /strategies reads thousands: one after another, ~10 ms each,
    they took it past API Gateway's 30 s). Every Query shares the container's one client (thread-safe once
    made, so it is made here first). A failed Query's error is raised as it is, and the Queries not yet
    started are not sent: never a partial answer."""
    ids = list(dict.fromkeys(strategy_ids))
    client = aws.dynamodb()
    closes = aws.concurrently(lambda strategy_id: _newest_close(client, strategy_id), ids, RUN_READERS)
    return dict(zip(ids, closes, strict=True))


def claim_live_order(
    user_id: str, strategy_id: str, pending: PendingOrder, *, seen_updated_at: str | None = None,
    gates: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
    record: dict[str, Any] | None = None, events: Iterable[StrategyEvent] = (),
    attempt: dict[str, Any] | None = None,
) -> Claim:
    """Take the strategy's pending order for one candle in ONE TransactWriteItems (module doc).

    ``gates``: the gates' ConditionChecks (``gate_condition_checks``); ``record``: the order history's
    PENDING item (``OrderRecord.to_item()``); ``events``: those before the send; ``attempt``: the Put of a
    hedge flip's entry the gate refused (``klineo.store.order_attempts``). Truthy for the one
    claimer; only this transaction lets an order out, so two workers can never both send one.
    """
    when = write_time()
    update = Update(sets={"pending": pending.as_attr_value(), "updated_at": when.now})
    condition = ("attribute_exists(pk) AND #status = :active AND #mode = :live "
                 "AND attribute_not_exists(pending) "
                 "AND (attribute_not_exists(last_close) OR last_close < :close) "
                 "AND live_position = :position")
    values = {":active": {"S": ACTIVE}, ":live": {"S": "live"}, ":close": to_attr(pending.close_time),
              ":position": to_attr(pending.position_before)}
    if seen_updated_at is not None:
        condition += " AND #updated_at = :seen"
        values[":seen"] = {"S": seen_updated_at}
    strategy = {"Update": {
        "TableName": _table(), "Key": strategy_key(user_id, strategy_id), "ConditionExpression": condition,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        **update.request({"#status": "status", "#mode": "mode"}, **values),
    }}
    no_run = {"ConditionCheck": {"TableName": _table(), "Key": run_key(strategy_id, pending.close_time),
                                 "ConditionExpression": "attribute_not_exists(sk)"}}
    named = [("strategy", strategy), ("run", no_run), *gates]
    if attempt is not None:
        named.append(("attempt", attempt))
    if record is not None:
        named.append(("record", {"Put": {"TableName": _table(), "Item": record,
                                         "ConditionExpression": "attribute_not_exists(pk)"}}))
    return Claim(transact(named + _events(events, when)))


def extend_lease(user_id: str, strategy_id: str, pending: PendingOrder, lease_until_ms: int) -> bool:
    """Take over a pending order whose lease expired (one taker wins); False when it changed meanwhile."""
    update = Update(sets={"pending.lease_until_ms": lease_until_ms, "updated_at": now_iso()})
    return conditional_write(
        aws.dynamodb().update_item,
        TableName=_table(),
        Key=strategy_key(user_id, strategy_id),
        ConditionExpression="pending.client_order_id = :cid AND pending.lease_until_ms = :old",
        **update.request(**{":old": to_attr(pending.lease_until_ms), ":cid": {"S": pending.client_order_id}}),
    )


def settle_live_order(
    user_id: str,
    strategy_id: str,
    pending: PendingOrder,
    run: Run,
    *,
    position_to: Decimal,
    key_failures: int | None = None,
    failed_runs: int | None = None,
    seen: Mapping[str, int] | None = None,
    pause_reason: str | None = None,
    live_book: Mapping[str, Any] | None = None,
    outcome: dict[str, Any] | None = None,
    events: Iterable[StrategyEvent] = (),
    attempt: dict[str, Any] | None = None,
    watch: dict[str, Any] | None = None,
) -> Settled:
    """Settle ``pending`` in ONE TransactWriteItems (module doc); falsy when another attempt already did.

    ``outcome``: the order history record's Update (``klineo.store.orders.order_outcome_update``);
    ``attempt``: the Put of a hedge flip's entry the gate refused (``klineo.store.order_attempts``);
    ``watch``: the Update of the symbol's watch (``klineo.store.order_history.watch_update``);
    ``key_failures`` / ``failed_runs``: the strategy's new counts (None: left as they are), computed from
    the counts the turn read (``seen``, by name; absent = 0). ``pause_reason``: the pause those new counts
    reach. ``last_close`` moves to the order's candle (nothing moves it further while an order is pending).

    The counts are written relative to the item's current ones (``_count_writes``): a resume between the
    claim and this settle (PATCH status active clears them) is never undone. A pause is written only if the
    counts it was reached from are still as read; otherwise the settle is written again without it and its
    ``paused`` events (the one extra request, only in that race): ``Settled.paused`` says which was stored.
    """
    when = write_time()
    counts = {"key_failures": key_failures, "failed_runs": failed_runs}
    for pausing in ((True, False) if pause_reason is not None else (False,)):
        update, condition, values = _settle_update(pending, position_to, counts, seen or {},
                                                   pause_reason if pausing else None, when)
        if live_book is not None:  # the order's fills, counted once: the same write clears the pending order
            update.sets["live_book"] = dict(live_book)
        strategy = _strategy_update(user_id, strategy_id, update, condition, **values)
        kept = [event for event in events if pausing or event.kind != "paused"]
        named = [("run", _run_put(run, when, only_new=False)), ("strategy", strategy), *_events(kept, when)]
        if attempt is not None:
            named.append(("attempt", attempt))
        if watch is not None:
            named.append(("watch", {"Update": watch}))
        record = [("record", {"Update": outcome})] if outcome is not None else []
        failed = transact(named + record)
        if not (pausing and _still_pending(failed.get("strategy"), pending)):
            break
    if set(failed) == {"record"}:
        # No order history record (an order claimed by an older version): settle the strategy anyway.
        _log.warning("strategy order settled without its order history record",
                     extra={"client_order_id": pending.client_order_id})
        failed = transact(named)
    return Settled(written=not failed, paused=pausing and not failed)


def _settle_update(pending: PendingOrder, position_to: Decimal, counts: Mapping[str, int | None],
                   seen: Mapping[str, int], pause_reason: str | None,
                   when: WriteTime) -> tuple[Update, str, dict[str, Any]]:
    """The settle's strategy Update, its condition and the condition's values (``settle_live_order``)."""
    update = Update(
        sets={"live_position": position_to, "last_close": pending.close_time,
              "updated_at": when.now, "last_fill_ms": int(time.time() * 1000)},
        removes=["pending"],
    )
    raised = _count_writes(update, counts, seen)
    conditions = ["pending.client_order_id = :cid"]
    values: dict[str, Any] = {":cid": {"S": pending.client_order_id}}
    if pause_reason is not None:
        update.sets.update(status=PAUSED, status_reason=pause_reason)
        update.removes.extend(["gsi1pk", "gsi1sk"])
        for name, before in raised.items():  # the pause was reached from these counts: still as read
            unset = f"attribute_not_exists(#{name}) OR " if before == 0 else ""
            conditions.append(f"({unset}#{name} = :seen_{name})")
            values[f":seen_{name}"] = to_attr(before)
    return update, " AND ".join(conditions), values


def _count_writes(update: Update, counts: Mapping[str, int | None],
                  seen: Mapping[str, int]) -> dict[str, int]:
    """Add each new count to ``update`` so that it never restores a count cleared since it was read: a
    reset is SET 0, a rise is ADDed to the item's current value (as read + the rise, or the rise alone
    after a resume cleared it), an unchanged count is not written. Returns the raised counts as read."""
    raised = {}
    for name, value in counts.items():
        if value is None:
            continue
        if value != 0 and name not in seen:
            raise ValueError(f"{name} rises from a count as read: pass it in seen")
        before = seen.get(name, 0)
        if value == before and value != 0:
            continue
        if value == 0:
            update.sets[name] = 0
        else:
            update.adds[name] = value - before
            raised[name] = before
    return raised


def _still_pending(item: dict[str, Any] | None, pending: PendingOrder) -> bool:
    """True when a refused settle's strategy item (as handed back) still has ``pending`` as its order: the
    settle was refused for its pause's counts, not because another attempt settled the order."""
    order = (item or {}).get("pending", {}).get("M", {})
    return order.get("client_order_id", {}).get("S") == pending.client_order_id


def hand_over_live_order(
    user_id: str,
    strategy_id: str,
    pending: PendingOrder,
    following: PendingOrder,
    *,
    position_to: Decimal,
    key_failures: int,
    failed_runs: int | None = None,
    live_book: Mapping[str, Any] | None = None,
    outcome: dict[str, Any] | None = None,
    gates: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
    record: dict[str, Any] | None = None,
    events: Iterable[StrategyEvent] = (),
    filled: bool = True,
) -> Claim:
    """Settle ``pending`` (a hedge flip's close) and claim ``following`` (its entry) in ONE
    TransactWriteItems (module doc). Truthy when done; else ``failed`` names what failed ("strategy": no
    longer this order pending, or not active and live; "record": the entry's clientOrderId is taken; the
    gates' names). ``outcome``: the close's record Update (left out again when only it failed: a record an
    older version never wrote); ``record``: the entry's PENDING item; ``events``: the close's fill and the
    entry's order_submit. ``filled`` False: ``pending`` executed nothing (a one-way flip never sent, handing
    over to its close alone: ``klineo.runner.execution``), so the strategy's last fill stays as it was."""
    when = write_time()
    update = Update(sets={"live_position": position_to, "pending": following.as_attr_value(),
                          "key_failures": key_failures, "updated_at": when.now})
    if filled:
        update.sets["last_fill_ms"] = int(time.time() * 1000)
    if failed_runs is not None:
        update.sets["failed_runs"] = failed_runs
    if live_book is not None:
        update.sets["live_book"] = dict(live_book)
    strategy = {"Update": {
        "TableName": _table(), "Key": strategy_key(user_id, strategy_id),
        "ConditionExpression": "pending.client_order_id = :cid AND #status = :active AND #mode = :live",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        **update.request({"#status": "status", "#mode": "mode"}, **{
            ":cid": {"S": pending.client_order_id}, ":active": {"S": ACTIVE}, ":live": {"S": "live"}}),
    }}
    named = [("strategy", strategy), *gates, *_events(events, when)]
    if record is not None:
        named.append(("record", {"Put": {"TableName": _table(), "Item": record,
                                         "ConditionExpression": "attribute_not_exists(pk)"}}))
    settled = [("outcome", {"Update": outcome})] if outcome is not None else []
    failed = transact(named + settled)
    if set(failed) == {"outcome"}:
        _log.warning("strategy order settled without its order history record",
                     extra={"client_order_id": pending.client_order_id})
        failed = transact(named)
    return Claim(failed)


def correct_position(
    user_id: str, strategy_id: str, attribute: str, moved: tuple[Decimal, Decimal], *,
    reentry_block: str | None, sets: dict[str, Any] | None = None, events: Iterable[StrategyEvent] = (),
    forget_protective: bool = True, records: Sequence[dict[str, Any]] = (),
) -> bool:
    """Move ``attribute`` (live/paper_position) from moved[0] to moved[1] after a close the strategy
    did not order, with the events that tell it (one transaction); False when the strategy moved on
    meanwhile (another attempt did it). Flat, it forgets ``protective`` (the live position's stops)
    unless ``forget_protective`` is False (a paper close: the live record is another position's).
    ``records``: order records' Updates written with it (a liquidation's estimate kept for the reconciler,
    ``klineo.store.orders.estimate_kept_update``)."""
    position_from, position_to = moved
    when = write_time()
    update = Update(sets={attribute: position_to, "updated_at": when.now, **(sets or {})})
    if reentry_block is not None:
        update.sets.update(reentry_block_sets(attribute, reentry_block))
    if position_to == 0 and forget_protective:
        update.removes.append("protective")
    write = _strategy_update(
        user_id, strategy_id, update,
        f"attribute_exists(pk) AND attribute_not_exists(pending) AND #{attribute} = :stale",
        **{":stale": to_attr(position_from)},
    )
    kept = [(f"record:{i}", {"Update": record}) for i, record in enumerate(records)]
    return not _commit([("strategy", write), *kept, *_events(events, when)])


def reentry_block_sets(attribute: str, side: str) -> dict[str, str]:
    """The attributes that keep ``side`` from re-opening the position ``attribute`` (live/paper_position)
    lost: the block names that position's mode, so the other mode's entries stay free."""
    return {"reentry_block": side, "reentry_block_mode": "live" if attribute == "live_position" else "paper"}


def clear_reentry_block(user_id: str, strategy_id: str) -> bool:
    """The signal changed since a position was lost: the strategy may enter again.

    Leaves ``updated_at`` alone: the turn that clears it goes on to write with the ``updated_at`` it read.
    """
    update = Update(removes=["reentry_block", "reentry_block_mode"])
    return not _commit([("strategy", _strategy_update(user_id, strategy_id, update, "attribute_exists(pk)"))])


def settle_unknown_close(user_id: str, strategy_id: str, seen: Mapping[str, Any],
                         after: Mapping[str, Any] | None, events: Iterable[StrategyEvent] = ()) -> bool:
    """Replace the strategy's ``unknown_close`` (a close whose cause could not be read,
    ``klineo.runner.positions``) read as ``seen`` by ``after`` (None: removed, settled or read enough), with
    ``events`` (the one that settles it), in one transaction; False when it is no longer ``seen`` (another
    attempt did it). Leaves ``updated_at`` alone, as ``clear_reentry_block``: the turn writes on with the one
    it read."""
    update = Update(sets={"unknown_close": dict(after)}) if after else Update(removes=["unknown_close"])
    write = _strategy_update(user_id, strategy_id, update, "#unknown_close = :seen_close",
                             **{":seen_close": to_attr(dict(seen))})
    return not _commit([("strategy", write), *_events(events, write_time())])


def set_protective(user_id: str, strategy_id: str, protective: Mapping[str, Any] | None, *, held: Decimal,
                   seen: Mapping[str, Any] | None, entry: str | None = None,
                   events: Iterable[StrategyEvent] = (), sets: Mapping[str, Any] | None = None) -> bool:
    """Record (or, with None, forget) the protective orders of the live position the strategy's own order
    just settled, with the events that tell it (one transaction); ``sets``: further attributes of the same
    write. False, nothing written, when another turn moved on since: an order pending, the position no
    longer ``held``, its entry no longer ``entry`` (an entry's record), or the record not the one this turn
    read (``seen``: the same entry and generations; without an entry, none with one)."""
    when = write_time()
    update = Update(sets={"updated_at": when.now, **(sets or {})})
    if protective is None:
        update.removes.append("protective")
    else:
        update.sets["protective"] = dict(protective)
    values = {":held": to_attr(held)}
    condition = "attribute_not_exists(pending) AND live_position = :held" + _as_seen(seen, values)
    if entry is not None:
        condition += " AND live_book.entry_client_order_id = :entry"
        values[":entry"] = to_attr(entry)
    write = _strategy_update(user_id, strategy_id, update, condition, **values)
    return not _commit([("strategy", write), *_events(events, when)])


def _as_seen(seen: Mapping[str, Any] | None, values: dict[str, Any]) -> str:
    """The condition that the live position's protective record is the one read (``seen``): its entry
    (``parent_client_order_id``) and ``generations`` unchanged, so neither a newer entry's record nor a
    re-pricing's claim written meanwhile is overwritten; a record read without an entry: none with one."""
    parent = (seen or {}).get("parent_client_order_id")
    if not parent:
        return " AND attribute_not_exists(protective.parent_client_order_id)"
    values[":seen_parent"] = to_attr(str(parent))
    generations = (seen or {}).get("generations")
    if generations is None:
        return (" AND protective.parent_client_order_id = :seen_parent"
                " AND attribute_not_exists(protective.generations)")
    values[":seen_generations"] = to_attr(int(generations))
    return (" AND protective.parent_client_order_id = :seen_parent"
            " AND protective.generations = :seen_generations")


def add_superseded(user_id: str, strategy_id: str, client_algo_ids: Iterable[str]) -> bool:
    """Hand protective orders whose cancel failed to the live position's record as it is now: appended to
    its ``superseded``, cancelled again by its next turns (``LiveReprice.retire``) or its next order
    (``disarm_previous``); False when the strategy has no record with an entry to hold them."""
    request = {
        "TableName": _table(), "Key": strategy_key(user_id, strategy_id),
        "UpdateExpression": "SET #p.#s = list_append(if_not_exists(#p.#s, :none), :ids)",
        "ConditionExpression": "attribute_exists(#p.#e)",
        "ExpressionAttributeNames": {"#p": "protective", "#s": "superseded", "#e": "parent_client_order_id"},
        "ExpressionAttributeValues": {":none": to_attr([]), ":ids": to_attr(list(client_algo_ids))},
    }
    return not _commit([("strategy", {"Update": request})])


def replace_protective(user_id: str, strategy_id: str, protective: Mapping[str, Any] | None, *,
                       held: Decimal, parent: str, events: Iterable[StrategyEvent] = (),
                       seen_generations: int | None = None,
                       entry_update: dict[str, Any] | None = None, first: bool = False) -> bool:
    """Record (None: forget) the live position's re-priced protective orders (``klineo.runner.reprice``),
    with their events; False when the position or its entry moved meanwhile (nothing written).

    A claim of the next generation gives ``seen_generations`` (``protective.generations`` as read, 1 when
    absent: written only while it still is, so each generation is claimed once) and ``entry_update``, the
    entry's record's Update written in the same transaction
    (``klineo.store.orders.protective_generations_update``; without it when the entry has no record).
    ``first``: the position has no record of its own (it was entered without protection), see ``_first``.
    """
    when = write_time()
    update = Update(sets={"updated_at": when.now})
    if protective is None:
        update.removes.append("protective")
    else:
        update.sets["protective"] = dict(protective)
    condition = "attribute_not_exists(pending) AND live_position = :held"
    values = {":held": to_attr(held)}
    if first:
        condition += _first(parent, values)
    else:
        condition += " AND protective.parent_client_order_id = :parent"
        values[":parent"] = to_attr(parent)
    if seen_generations is not None and not first:
        absent = " OR attribute_not_exists(protective.generations)" if seen_generations == 1 else ""
        condition += f" AND (protective.generations = :seen{absent})"
        values[":seen"] = to_attr(seen_generations)
    named = [("strategy", _strategy_update(user_id, strategy_id, update, condition, **values)),
             *_events(events, when)]
    failed = _commit(named + ([("entry", entry_update)] if entry_update is not None else []))
    if set(failed) == {"entry"}:
        # No order history record of the entry (claimed by an older version): claim anyway; the
        # reconciler still cancels its orders once one fired (same parent) or the position reads 0.
        _log.warning("protective generations not counted on the entry's record",
                     extra={"strategy_id": strategy_id})
        failed = _commit(named)
    return not failed


def _first(parent: str, values: dict[str, Any]) -> str:
    """The condition of a first record for a position that has none: its entry is still ``parent``
    (``live_book.entry_client_order_id``) and no record was written meanwhile, so a racing entry or
    another attempt wins and this one writes nothing. ``parent`` "": an entry no order is recorded for
    (placed by an older version): only the note that nothing can be placed
    (``protective.unrecorded_entry``) is written, replaced or forgotten."""
    none_yet = " AND (attribute_not_exists(protective) OR attribute_exists(protective.unrecorded_entry))"
    if not parent:
        return " AND attribute_not_exists(live_book.entry_client_order_id)" + none_yet
    # A note may outlive the entry that named an order (a crash between its settle and its arming, which
    # forgets notes): it is no record of orders, so it never blocks the first one.
    values[":parent"] = to_attr(parent)
    return " AND live_book.entry_client_order_id = :parent" + none_yet


def set_paper_book(user_id: str, strategy_id: str, book: Mapping[str, Any], *, held: Decimal,
                   events: Iterable[StrategyEvent] = (), sets: Mapping[str, Any] | None = None) -> bool:
    """Replace the open paper position's book (its levels re-priced, ``klineo.runner.reprice``), with its
    events; False when the paper position moved meanwhile (nothing written)."""
    when = write_time()
    update = Update(sets={"paper_book": dict(book), "updated_at": when.now, **(sets or {})})
    write = _strategy_update(user_id, strategy_id, update, "paper_position = :held",
                             **{":held": to_attr(held)})
    return not _commit([("strategy", write), *_events(events, when)])


def book_order_fills(user_id: str, books: Sequence[tuple[str, Mapping[str, Any], str]], *,
                     record: dict[str, Any], events: Iterable[StrategyEvent] = ()) -> dict[str, Any]:
    """Replace an order's estimated fills in the live book of each strategy that counted them by Binance's
    (``books``: (strategy id, its book from ``klineo.runner.pnl.book_exact``, the ``updated_at`` it was read
    at); several for a forced order that closed several strategies' positions) in ONE TransactWriteItems with
    ``record``, the order record's Update storing its fills (``order_outcome_update`` with
    ``estimate_replaced``), and the events that tell it.

    Each strategy's write requires it unchanged since read (``updated_at``, which it moves: a turn that read
    the book before is refused and plays again) and no order pending (whose settle would write a book read
    before this one); the record's, its estimate still the one read: booked once. {} when written, else the
    failed names (see ``transact``: "record", or "strategy:<id>")."""
    when = write_time()
    strategies = [(f"strategy:{strategy_id}", _strategy_update(
        user_id, strategy_id, Update(sets={"live_book": dict(book), "updated_at": when.now}),
        "attribute_not_exists(pending) AND #updated_at = :seen", **{":seen": {"S": seen_updated_at}}))
        for strategy_id, book, seen_updated_at in books]
    return transact([*strategies, ("record", {"Update": record}), *_events(events, when)])


def list_runs_page(strategy_id: str, limit: int, cursor: str | None = None) -> tuple[list[Run], str | None]:
    """A page of the strategy's runs, newest candle first, and the next page's cursor.

    ValueError when ``cursor`` is not a cursor of this listing.
    """
    cursor_sk = decode_cursor(cursor, RUN_KEY) if cursor else None
    if cursor and cursor_sk is None:
        raise ValueError("not a cursor of this listing")
    items, next_cursor = query_page(strategy_id, "RUN#", limit, cursor_sk)
    return [Run.from_item(item) for item in items], next_cursor


def list_runs(strategy_id: str, limit: int = 20) -> list[Run]:
    """The strategy's latest runs, newest candle first."""
    answer = aws.dynamodb().query(
        TableName=get_settings().data_table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": {"S": f"STRAT#{strategy_id}"}, ":prefix": {"S": "RUN#"}},
        ScanIndexForward=False,
        Limit=limit,
    )
    return [Run.from_item(item) for item in answer.get("Items", [])]
