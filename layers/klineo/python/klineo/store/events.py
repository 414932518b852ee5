"""A strategy's append-only event log (pk=STRAT#<id>, sk=EVT#<at ms>#<step>#<kind>#<tag>[#<seq>]), ``ttl``.

What the runner and the API saw and did, one item per event, never updated:

    position_closed   the exchange no longer holds the position the strategy believed (cause:
                      liquidation, adl, protective (one of its stops fired and executed, as Binance
                      says), manual, unknown (its stops could not be read)), or a paper
                      stop-loss/take-profit
    signal            a decision on a closed candle that acts: an order to send or refused
                      (signal, reason, indicators); a hold is only in its run (which carries the
                      same fields), so a hold tick writes no event
    risk_block        the risk gate refused the order (``gate`` names it); nothing was sent
    order_submit      a live order claimed and sent (or a paper order simulated)
    order_fill        what filled (quantity, average price, fee)
    protective_placed / protective_triggered / error / paused / resumed (a protective_placed with
                      ``lost``: those roles' orders, lost past Binance's retention, placed again;
                      ``klineo.runner.reprice``)
    protective_repriced  changed percents moved the open position's levels (old_* and new_* levels;
                      ``klineo.runner.reprice``), or its orders were re-placed for what is left of
                      it (``quantity``, ``old_quantity``)
    paper_reset       the user set a new ``paper_balance_usdt`` on a flat strategy: the paper ledger
                      starts again from it (the old balance and equity; ``klineo.services.strategy_updates``)
    fills_booked      Binance's fills of a live order whose PnL was estimated when it settled replaced the
                      estimate in the live book (exact and estimated realised PnL and fees;
                      ``klineo.services.live_fills``)
    still_paused      the connection's enable left paused a strategy its disable had paused: a resume would
                      be refused now (its reason, the refusal's field and message;
                      ``klineo.services.key_health``)
    close_cause_settled  a position_closed whose cause was "unknown" (its stops could not be read then), as
                      a later turn read its stops on Binance (cause: protective or manual;
                      position_closed_at: that event's time)

Exactly once: an event of a candle has a key derived from (candle close time, kind, tag). A turn that
makes a second event of the same kind and tag on one candle (two gates refusing, a refused flip's new side
and then its close refused) numbers it: ``seq`` 2, 3, ... in the order the turn made them (the runner's
``make_event``), a suffix ``#02`` of its key; the first keeps the key it always had. So no event of a turn
replaces another (in its transaction, or in a later write of the turn), and the turn played again makes
the same keys. A live order's claim that made more than its signal and order_submit leaves its counts with
the pending order (``events_made``): a later attempt that settles it (the first one lost between the two)
numbers on from them, so its settle replaces none of the claim's events either.
The runner writes an event in the TransactWriteItems of the state change it describes
(``event_put``; see ``klineo.store.runs``): it is never lost when that change committed, never there when
it did not, and a repeat can only put the same key again. Other writers append with
``attribute_not_exists(sk)`` (``append_event``), so a second attempt appends nothing more.
Events without a candle (paused, resumed by the user) carry the time they happened and a random
tag. The step number in the key orders the events of one candle as they happen (a position seen
closed before the signal, the signal before its order).

Retention: ``ttl`` = now + ``EVENT_RETENTION_DAYS`` (template parameter ``EventRetentionDays``,
default 90); runs use the same retention (``klineo.store.runs``).
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, NamedTuple

from klineo.settings import get_settings
from klineo.store import aws
from klineo.store.dynamo import conditional_write, from_attr, page_of, query_items, to_item
from klineo.store.strategies import now_iso

__all__ = [
    "EVENT_KEY",
    "EVENT_KINDS",
    "EventPage",
    "StrategyEvent",
    "WriteTime",
    "append_event",
    "append_events",
    "decode_cursor",
    "encode_cursor",
    "event_put",
    "list_events",
    "query_page",
    "retention_ttl",
    "write_time",
]

# The kinds, in the order they happen within one candle (the key's step number). A kind added later
# goes last (protective_repriced, paper_reset, fills_booked, still_paused, close_cause_settled): the step
# numbers of the keys already stored never change.
EVENT_KINDS = ("position_closed", "protective_triggered", "signal", "risk_block", "order_submit",
               "order_fill", "protective_placed", "error", "paused", "resumed", "protective_repriced",
               "paper_reset", "fills_booked", "still_paused", "close_cause_settled")
_PREFIX = "EVT#"
# The shape of every event's sort key (``StrategyEvent.sort_key``): what an events cursor may name.
EVENT_KEY = re.compile(_PREFIX + r"\d{13}#\d{2}#(?:" + "|".join(EVENT_KINDS) + r")#[!-~]*")


def retention_ttl(now_s: float | None = None) -> int:
    """The ``ttl`` (epoch seconds) of an item written now: the configured retention from now."""
    now_s = time.time() if now_s is None else now_s
    return int(now_s) + get_settings().event_retention_days * 86_400


class WriteTime(NamedTuple):
    """The time of one write: ``now`` (ISO text: created_at, updated_at) and the ``ttl`` of its items.

    Made once per write (``write_time``) and handed to every item of it, so they share one time.
    """

    now: str
    ttl: int


def write_time() -> WriteTime:
    """The time of a write about to be made."""
    return WriteTime(now_iso(), retention_ttl())


@dataclass(frozen=True)
class StrategyEvent:
    """One entry of a strategy's log; ``details`` holds plain strings, numbers and small maps."""

    strategy_id: str
    user_id: str
    kind: str
    at_ms: int
    details: dict[str, Any] = field(default_factory=dict)
    close_time: int | None = None
    tag: str = ""
    created_at: str = ""
    # 1 for the turn's first event of its candle, kind and tag; 2, 3, ... for the next ones (module doc).
    seq: int = 1

    @cached_property
    def sort_key(self) -> str:
        """``EVT#<at ms, 13 digits>#<step>#<kind>#<tag>``, then ``#<seq>`` from the second event of one kind
        and tag on: time order, then the order within a candle."""
        step = EVENT_KINDS.index(self.kind)
        key = f"{_PREFIX}{self.at_ms:013d}#{step:02d}#{self.kind}#{self.tag}"
        return key if self.seq == 1 else f"{key}#{self.seq:02d}"

    def to_item(self, when: WriteTime) -> dict[str, Any]:
        """The DynamoDB item written at ``when`` (its created_at unless it has one, and its ttl)."""
        item = {"pk": {"S": f"STRAT#{self.strategy_id}"}, "sk": {"S": self.sort_key}, **to_item({
            "entity": "event", "strategy_id": self.strategy_id, "user_id": self.user_id, "kind": self.kind,
            "at_ms": self.at_ms, "close_time": self.close_time, "tag": self.tag, "details": self.details,
            "created_at": self.created_at or when.now, "ttl": when.ttl,
        })}
        if self.seq != 1:  # the first of its kind and tag has none: its item is as it always was
            item["seq"] = {"N": str(self.seq)}
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> StrategyEvent:
        """An event from its raw item (whole numbers back as int)."""
        data = {k: from_attr(v) for k, v in item.items()}
        return cls(
            strategy_id=str(data["strategy_id"]), user_id=str(data["user_id"]), kind=str(data["kind"]),
            at_ms=int(data["at_ms"]), details=_plain(data.get("details") or {}),
            close_time=int(data["close_time"]) if data.get("close_time") is not None else None,
            tag=str(data.get("tag", "")), created_at=str(data.get("created_at", "")),
            seq=int(data.get("seq", 1)),
        )


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "to_integral_value"):
        return int(value) if value == value.to_integral_value() else str(value)
    return value


def _event_item(event: StrategyEvent, when: WriteTime) -> dict[str, Any]:
    """The item of a known kind of event (an event without a candle gets its random tag here)."""
    if event.kind not in EVENT_KINDS:
        raise ValueError(f"unknown event kind {event.kind!r}")
    if event.close_time is None and not event.tag:
        event = replace(event, tag=uuid.uuid4().hex[:12])
    return event.to_item(when)


def append_event(event: StrategyEvent) -> bool:
    """Append ``event`` once; False when an event with its key is already there (a repeat)."""
    return conditional_write(
        aws.dynamodb().put_item, TableName=get_settings().data_table, Item=_event_item(event, write_time()),
        ConditionExpression="attribute_not_exists(sk)",
    )


def append_events(events: Sequence[StrategyEvent]) -> list[bool]:
    """``append_event`` of each, answered in the order given, several in flight at once
    (``aws.concurrently``: a connection's thousands of strategies); a failed write is raised as it is."""
    return aws.concurrently(append_event, events)


def event_put(event: StrategyEvent, when: WriteTime) -> dict[str, Any]:
    """``event`` as the ``Put`` of a TransactWriteItems that makes the state change it describes.

    Unconditional on purpose: the transaction's own guard (the run not there yet, this pending
    order still pending, ...) makes it commit once, and the event's key (candle, kind, tag) makes
    a repeated put the same item, never a second event. (A condition here would let an event of
    the same key written by an older version cancel the state change for ever.) ``when``: the time
    of that write, shared by all its items.
    """
    return {"Put": {"TableName": get_settings().data_table, "Item": _event_item(event, when)}}


@dataclass(frozen=True)
class EventPage:
    """One page of a strategy's events (newest first) and the cursor of the next page, if any."""

    events: list[StrategyEvent]
    next_cursor: str | None


def encode_cursor(last_key: Mapping[str, Any] | None) -> str | None:
    """An opaque cursor from the key of a page's last item (its sort key only; the pk is the caller's)."""
    if not last_key:
        return None
    return base64.urlsafe_b64encode(json.dumps({"sk": last_key["sk"]["S"]}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, shape: re.Pattern[str]) -> str | None:
    """The sort key a cursor names, or None when it is not one of ours: not of this listing's key ``shape``
    (``EVENT_KEY``, ``klineo.store.runs.RUN_KEY``), so a made-up key behind the right prefix is refused too,
    never a page read from wherever it sorts. Ours are printable ASCII: anything else (a lone surrogate, a
    control character) would reach DynamoDB as a key it refuses (a ValidationException), not a 400."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        sk = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())["sk"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(sk, str) or not (sk.isascii() and sk.isprintable()) or len(sk) > 200:
        return None
    return sk if shape.fullmatch(sk) else None


def query_page(
    strategy_id: str, prefix: str, limit: int, cursor_sk: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Items of the strategy's partition under ``prefix``, newest first, and the next page's cursor (None
    on the last page: one item more is asked for, ``page_of``)."""
    request: dict[str, Any] = {
        "TableName": get_settings().data_table,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": {":pk": {"S": f"STRAT#{strategy_id}"}, ":prefix": {"S": prefix}},
        "ScanIndexForward": False, "Limit": limit + 1,
    }
    if cursor_sk is not None:
        request["ExclusiveStartKey"] = {"pk": {"S": f"STRAT#{strategy_id}"}, "sk": {"S": cursor_sk}}
    items, last_sk = page_of(query_items(**request), limit, "sk")
    return items, encode_cursor({"sk": {"S": last_sk}} if last_sk else None)


def list_events(strategy_id: str, limit: int, cursor: str | None = None) -> EventPage:
    """The strategy's events newest first, ``limit`` a page, after ``cursor`` (ValueError when not ours)."""
    cursor_sk = decode_cursor(cursor, EVENT_KEY) if cursor else None
    if cursor and cursor_sk is None:
        raise ValueError("not a cursor of this listing")
    items, next_cursor = query_page(strategy_id, _PREFIX, limit, cursor_sk)
    return EventPage([StrategyEvent.from_item(item) for item in items], next_cursor)
