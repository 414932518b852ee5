"""Strategy runs (pk=STRAT#<id>, sk=RUN#<candle close ms>, with a ``ttl``) and the runner's state moves.

One run per (strategy, candle): a run is first written with a conditional put
(``attribute_not_exists(sk)``), so a redelivered message or a second dispatcher tick for the same
candle can neither evaluate nor order twice. The runner's state lives on the strategy item
(``klineo.store.strategies``); every move below is a short sequence of single-item conditional
writes, ordered so that a crash between two of them is repaired by the next attempt and never
acts twice (no multi-item transactions: they cost twice the write capacity, and a conflict
between two of them fails both):

- ``record_run``: a final run (no change, skipped, paper fill, failed before sending) carries the
  strategy change it implies (``advance``). Put the run, then apply ``advance`` to the strategy
  under conditions (behind this candle, no pending order, position as sized). When the put finds
  the run already there, its stored ``advance`` is applied instead (same conditions): a crash
  after the put is repaired, and a duplicate worker changes nothing more.
- ``record_skip``: a skipped candle moves the strategy past it first, then the run is written.
- ``claim_live_order``: set the strategy's ``pending`` order (with the decision behind it) under
  conditions (active, live, no pending order, behind this candle, position as sized). Only that
  conditional update lets an order out, so two workers can never both send one.
- ``extend_lease``: a later attempt takes over a pending order whose claimer's lease ran out.
- ``settle_live_order``: write the run (conditional put), then add the fill to ``live_position``
  and clear ``pending`` on condition that this very order is still pending. A crash in between
  leaves the order pending: the next attempt looks it up again and settles it once.
- ``correct_position``: the exchange (or a paper stop) closed (part of) the position outside the strategy:
  set the belief to what is left, under the condition that it is still the stale one and no
  order is pending (the caller appended the ``position_closed`` event first).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import Any

from klineo.settings import get_settings
from klineo.store import aws
from klineo.store.dynamo import Update, conditional_write, from_attr, to_attr, to_item
from klineo.store.events import decode_cursor, query_page, retention_ttl
from klineo.store.strategies import ACTIVE, PAUSED, PendingOrder, now_iso, strategy_key

__all__ = [
    "RUN_STATUSES",
    "Run",
    "StrategyAdvance",
    "advance_strategy",
    "claim_live_order",
    "clear_reentry_block",
    "correct_position",
    "extend_lease",
    "get_run",
    "list_runs",
    "list_runs_page",
    "record_run",
    "record_skip",
    "run_key",
    "set_protective",
    "settle_live_order",
]

# ordered: a live order settled at Binance (its fill added to the position);
# simulated: a paper fill; no_change: the target equals the position; skipped: not evaluated or
# not traded for a stated reason (kill switch, futures disabled, stale candle, ...); failed: an
# order could not be placed (error category recorded).
RUN_STATUSES = ("ordered", "simulated", "no_change", "skipped", "failed")



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
    pause_reason: str | None = None
    # Skips only: move past the candle even while an older live order awaits settlement (a skip
    # changes no position, and settling that order later never moves ``last_close`` back).
    allow_pending: bool = False
    # Further runner attributes set with the same write (paper_book, protective; {} clears a map).
    extra: dict[str, Any] | None = None

    def as_value(self) -> dict[str, Any]:
        """The plain dict stored on the run (``None`` fields left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_value(cls, value: Mapping[str, Any]) -> StrategyAdvance:
        """Inverse of ``as_value`` (numbers arrive as Decimal)."""
        failures = value.get("key_failures")
        return cls(
            position_attribute=value.get("position_attribute"),
            position_from=value.get("position_from"),
            position_to=value.get("position_to"),
            key_failures=int(failures) if failures is not None else None,
            pause_reason=value.get("pause_reason"),
            allow_pending=bool(value.get("allow_pending", False)),
            extra=dict(value["extra"]) if value.get("extra") else None,
        )


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
    advance: StrategyAdvance | None = None
    created_at: str = ""
    updated_at: str = ""

    def to_item(self, now_s: float | None = None) -> dict[str, Any]:
        """The DynamoDB item, with ``ttl`` the event retention from now (``EVENT_RETENTION_DAYS``)."""
        now_s = time.time() if now_s is None else now_s
        stamp = self.created_at or now_iso()
        return {**run_key(self.strategy_id, self.close_time), **to_item({
            "entity": "run", "strategy_id": self.strategy_id, "user_id": self.user_id,
            "close_time": self.close_time, "status": self.status, "mode": self.mode,
            "indicators": dict(self.indicators), "created_at": stamp, "updated_at": self.updated_at or stamp,
            "ttl": retention_ttl(now_s),
            "signal": self.signal, "reason": self.reason, "position_before": self.position_before,
            "target_position": self.target_position, "order": self.order, "error": self.error,
            "skip_reason": self.skip_reason,
            "advance": self.advance.as_value() if self.advance is not None else None,
        })}

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Run:
        """A run from its raw DynamoDB item."""
        data = {k: from_attr(v) for k, v in item.items()}
        return cls(
            strategy_id=str(data["strategy_id"]),
            user_id=str(data["user_id"]),
            close_time=int(data["close_time"]),
            status=str(data["status"]),
            mode=str(data["mode"]),
            signal=data.get("signal"),
            reason=data.get("reason"),
            indicators={str(k): str(v) for k, v in (data.get("indicators") or {}).items()},
            position_before=data.get("position_before"),
            target_position=data.get("target_position"),
            order=_plain_map(data.get("order")),
            error=_plain_map(data.get("error")),
            skip_reason=data.get("skip_reason"),
            advance=StrategyAdvance.from_value(data["advance"]) if data.get("advance") else None,
            created_at=str(data.get("created_at", "")),
            updated_at=str(data.get("updated_at", "")),
        )


def _plain_map(value: Any) -> dict[str, Any] | None:
    """A stored map back as a dict; whole numbers (order ids, times) become int again."""
    if value is None:
        return None
    return {
        str(k): int(v) if isinstance(v, Decimal) and v == v.to_integral_value() else v
        for k, v in dict(value).items()
    }


def _put_run(run: Run, *, only_new: bool) -> bool:
    request: dict[str, Any] = {"TableName": get_settings().data_table, "Item": run.to_item()}
    if only_new:
        request["ConditionExpression"] = "attribute_not_exists(sk)"
    return conditional_write(aws.dynamodb().put_item, **request)


def get_run(strategy_id: str, close_time: int) -> Run | None:
    """One run, strongly consistent (None when absent)."""
    item = aws.dynamodb().get_item(
        TableName=get_settings().data_table, Key=run_key(strategy_id, close_time), ConsistentRead=True,
    ).get("Item")
    return Run.from_item(item) if item else None


def advance_strategy(user_id: str, strategy_id: str, close_time: int, advance: StrategyAdvance) -> bool:
    """Move a strategy past ``close_time`` with ``advance``; False unless it was behind, free and as sized."""
    update = Update(sets={"last_close": close_time, "updated_at": now_iso()})
    conditions = ["attribute_exists(pk)", "(attribute_not_exists(last_close) OR last_close < :last_close)"]
    extra_values: dict[str, Any] = {}
    if not advance.allow_pending:
        conditions.append("attribute_not_exists(pending)")
    if advance.position_attribute is not None:
        update.sets[advance.position_attribute] = advance.position_to
        if advance.position_from is not None:
            conditions.append(f"#{advance.position_attribute} = :position_from")
            extra_values[":position_from"] = to_attr(advance.position_from)
    if advance.key_failures is not None:
        update.sets["key_failures"] = advance.key_failures
    update.sets.update(advance.extra or {})
    if advance.pause_reason is not None:
        update.sets.update(status=PAUSED, status_reason=advance.pause_reason)
        update.removes.extend(["gsi1pk", "gsi1sk"])
    return conditional_write(
        aws.dynamodb().update_item, TableName=get_settings().data_table,
        Key=strategy_key(user_id, strategy_id), ConditionExpression=" AND ".join(conditions),
        **update.request(**extra_values),
    )


def record_run(run: Run, *, advance: StrategyAdvance | None = None) -> bool:
    """Record a final run and apply ``advance`` to its strategy; False when the candle already had a run.

    When the run is already there, the ``advance`` stored with it is applied (if still due): that
    finishes the work of an attempt that died between its two writes, and is a no-op otherwise.
    """
    run = replace(run, advance=advance)
    if _put_run(run, only_new=True):
        if advance is not None:
            advance_strategy(run.user_id, run.strategy_id, run.close_time, advance)
        return True
    existing = get_run(run.strategy_id, run.close_time)
    if existing is not None and existing.advance is not None:
        advance_strategy(run.user_id, run.strategy_id, run.close_time, existing.advance)
    return False


def record_skip(run: Run, advance: StrategyAdvance) -> bool:
    """Record a skipped candle: move the strategy past it first, then write the run; False when already past.

    The strategy moves first so that a candle with a run on record is always behind the strategy
    (a crash in between loses the record, never lets the candle be traded later).
    """
    if not advance_strategy(run.user_id, run.strategy_id, run.close_time, advance):
        return False
    _put_run(run, only_new=True)
    return True


def claim_live_order(user_id: str, strategy_id: str, pending: PendingOrder) -> bool:
    """Take the strategy's pending order for one candle (ONE conditional update); True for the one claimer.

    Conditions: the strategy exists, is active and live, has no pending order, is behind this
    candle, and still holds the position the order was sized from. Only this update lets an order
    out, so two workers can never both send one.
    """
    update = Update(sets={"pending": pending.as_attr_value(), "updated_at": now_iso()})
    return conditional_write(
        aws.dynamodb().update_item,
        TableName=get_settings().data_table,
        Key=strategy_key(user_id, strategy_id),
        ConditionExpression="attribute_exists(pk) AND #status = :active AND #mode = :live "
        "AND attribute_not_exists(pending) "
        "AND (attribute_not_exists(last_close) OR last_close < :close) "
        "AND live_position = :position",
        **update.request(
            {"#status": "status", "#mode": "mode"},
            **{":active": {"S": ACTIVE}, ":live": {"S": "live"}, ":close": to_attr(pending.close_time),
               ":position": to_attr(pending.position_before)},
        ),
    )


def extend_lease(user_id: str, strategy_id: str, pending: PendingOrder, lease_until_ms: int) -> bool:
    """Take over a pending order whose lease expired (one taker wins); False when it changed meanwhile."""
    update = Update(sets={"pending.lease_until_ms": lease_until_ms, "updated_at": now_iso()})
    return conditional_write(
        aws.dynamodb().update_item,
        TableName=get_settings().data_table,
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
    key_failures: int,
    pause_reason: str | None = None,
    live_book: Mapping[str, Any] | None = None,
) -> bool:
    """Write the order's run, then add its fill to the strategy and clear ``pending`` (this order only).

    The run is put unconditionally: what Binance did with the order is the truth for its candle
    (a repeated settlement writes the same outcome). ``last_close`` moves to the order's candle
    unless skips already took the strategy further.
    """
    _put_run(run, only_new=False)
    update = Update(
        sets={"live_position": position_to, "last_close": pending.close_time, "key_failures": key_failures,
              "updated_at": now_iso(), "last_fill_ms": int(time.time() * 1000)},
        removes=["pending"],
    )
    if pause_reason is not None:
        update.sets.update(status=PAUSED, status_reason=pause_reason)
        update.removes.extend(["gsi1pk", "gsi1sk"])
    if live_book is not None:  # the order's fills, counted once: the same write clears the pending order
        update.sets["live_book"] = dict(live_book)
    this_order = {":cid": {"S": pending.client_order_id}}
    key = {"TableName": get_settings().data_table, "Key": strategy_key(user_id, strategy_id)}
    if conditional_write(
        aws.dynamodb().update_item, **key, **update.request(**this_order),
        ConditionExpression="pending.client_order_id = :cid "
        "AND (attribute_not_exists(last_close) OR last_close < :last_close)",
    ):
        return True
    # Skips moved the strategy past this order's candle meanwhile: settle without moving it back.
    return conditional_write(
        aws.dynamodb().update_item, **key, **update.without("last_close").request(**this_order),
        ConditionExpression="pending.client_order_id = :cid",
    )


def _strategy_write(user_id: str, strategy_id: str, update: Update, condition: str, **values: Any) -> bool:
    return conditional_write(
        aws.dynamodb().update_item, TableName=get_settings().data_table,
        Key=strategy_key(user_id, strategy_id), ConditionExpression=condition, **update.request(**values),
    )


def correct_position(
    user_id: str, strategy_id: str, attribute: str, moved: tuple[Decimal, Decimal], *,
    reentry_block: str | None, sets: dict[str, Any] | None = None,
) -> bool:
    """Move ``attribute`` (live/paper_position) from moved[0] to moved[1] after a close the strategy
    did not order; False when the strategy moved on meanwhile (another attempt did it)."""
    position_from, position_to = moved
    update = Update(sets={attribute: position_to, "updated_at": now_iso(), **(sets or {})})
    if reentry_block is not None:
        update.sets["reentry_block"] = reentry_block
    if position_to == 0:
        update.removes.append("protective")
    return _strategy_write(
        user_id, strategy_id, update,
        f"attribute_exists(pk) AND attribute_not_exists(pending) AND #{attribute} = :stale",
        **{":stale": to_attr(position_from)},
    )


def clear_reentry_block(user_id: str, strategy_id: str) -> bool:
    """The signal changed since a position was lost: the strategy may enter again."""
    update = Update(sets={"updated_at": now_iso()}, removes=["reentry_block"])
    return _strategy_write(user_id, strategy_id, update, "attribute_exists(pk)")


def set_protective(user_id: str, strategy_id: str, protective: Mapping[str, Any] | None) -> bool:
    """Record (or, with None, forget) the protective orders wanted/armed for the live position."""
    update = Update(sets={"updated_at": now_iso()})
    if protective is None:
        update.removes.append("protective")
    else:
        update.sets["protective"] = dict(protective)
    return _strategy_write(user_id, strategy_id, update, "attribute_exists(pk)")


def list_runs_page(strategy_id: str, limit: int, cursor: str | None = None) -> tuple[list[Run], str | None]:
    """A page of the strategy's runs, newest candle first, and the next page's cursor.

    ValueError when ``cursor`` is not a cursor of this listing.
    """
    cursor_sk = decode_cursor(cursor, "RUN#") if cursor else None
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
