"""Reading order records back: one user's history (gsi1), the unsettled ones and the watch marks (gsi2).

Key design (also in ``klineo.store.orders`` and the DataTable comment in template.yaml):
- history: ``gsi1pk = ORDERS#<sub>``, ``gsi1sk = <created ms, 13 digits>#<clientOrderId>``; a page is
  one Query newest first, the time range is a BETWEEN on the sort key, connection/symbol/status
  are filters. A page resumes after the ``gsi1sk`` of its last record (the service makes the
  opaque cursor of it; every other key part is derived from the caller, so a cursor can never
  reach another user's partition).
- unsettled: ``gsi2pk = UNSETTLED#<shard 0-7>`` until the record is settled (final, fills known). A
  scheduled reconciler run that its budget stopped keeps where it left off (``pk GLOBAL``,
  ``sk RECONCILE_RESUME``: the gsi2 keys of the record, ``settle_pk``/``settle_sk``, and of the watch,
  ``follow_pk``/``follow_sk``, it stopped at), so the next run starts there, not over.
- watch marks: one item per (user, connection, symbol) the reconciler reads ``userTrades`` for,
  ``pk USER#<sub>``, ``sk WATCH#<connection>#<symbol>``, holding ``last_trade_id`` (the last trade
  reconciled) and ``active_ms`` (the last activity seen). While watched it carries
  ``gsi2pk = WATCH#<shard>``, ``gsi2sk = <sub>#<connection>#<symbol>``; unwatching removes those two
  and keeps the watermark, so watching again resumes after the last reconciled trade.
- fills Binance made without us (manual, liquidation, ADL) are order records too
  (``origin`` = the label), keyed ``ORDER#<label>-<Binance orderId>`` so each is written once.
- refused order attempts (``klineo.store.order_attempts``) share the history's gsi1 partition and
  sort-key shape, marked ``entity = order_attempt`` (order records carry no ``entity``): every read
  of the order history filters them out here (``ORDERS_ONLY``), so no reader of ``ORDERS#`` meets one.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

from cachetools import TTLCache

from klineo.settings import get_settings
from klineo.store import aws
from klineo.store.dynamo import (
    Update,
    conditional_write,
    from_attr,
    page_of,
    query_growing,
    query_items,
    to_attr,
)
from klineo.store.flags import GLOBAL_PK
from klineo.store.orders import (
    FOREIGN_ORIGINS,
    ORDERS_INDEX_PREFIX,
    UNSETTLED_PREFIX,
    UNSETTLED_SHARDS,
    OrderRecord,
    unsettled_keys,
)

__all__ = [
    "ATTEMPT_ENTITY",
    "ORDERS_ONLY",
    "WATCH_IDLE_MS",
    "HistoryFilter",
    "Watch",
    "advance_watermark",
    "forget_watches",
    "list_history_items",
    "list_order_page",
    "list_recent_records",
    "list_unsettled",
    "list_unsettled_of",
    "list_watched",
    "mark_read",
    "order_record_of",
    "recent_foreign_fills",
    "resume_points",
    "save_resume_point",
    "unsettled_position",
    "unwatch_symbol",
    "watch_due",
    "watch_position",
    "watch_symbol",
    "watch_update",
    "watched",
]

UNSETTLED_INDEX = "gsi2"
# The item (pk GLOBAL) where a scheduled reconciler run that its budget stopped leaves off settling.
RESUME_SK = "RECONCILE_RESUME"
RESUME_STEPS = ("settle", "follow")
HISTORY_INDEX = "gsi1"
WATCH_PREFIX = "WATCH#"
# A watched symbol with no position and no activity for this long is no longer followed
# (klineo.services.reconcile); the positions view shows the trades we did not place of the same window.
WATCH_IDLE_MS = 7 * 86_400_000
# A container writes a symbol's watch for the orders it settles without the reconciler at most once in this
# long (``watch_due``): far inside WATCH_IDLE_MS, so such a watch is never let go as idle meanwhile.
WATCH_REFRESH_S = 86_400
_watched_lately: TTLCache[tuple[str, str, str], bool] = TTLCache(maxsize=10_000, ttl=WATCH_REFRESH_S)
_watched_lock = threading.Lock()  # cachetools caches are not thread-safe; a worker's turns run in threads
_MAX_SK = "9" * 13 + "#~"
# The ``entity`` of a refused order attempt in the history's partition (klineo.store.order_attempts).
ATTEMPT_ENTITY = "order_attempt"
# The kind condition of the order history's reads: order records only (attempts carry ``entity``).
ORDERS_ONLY = "attribute_not_exists(#entity)"


@dataclasses.dataclass(frozen=True)
class HistoryFilter:
    """What the caller asked for: optional connection, symbol and status, and a created-time range (ms)."""

    connection_id: str | None = None
    symbol: str | None = None
    status: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None

    def key_condition(self, user_id: str, after_sk: str | None) -> dict[str, Any]:
        """KeyConditionExpression and values: the user's partition, the time range, before the cursor."""
        low = f"{self.from_ms or 0:013d}#"
        high = f"{self.to_ms:013d}#~" if self.to_ms is not None else _MAX_SK
        if after_sk is not None and after_sk < high:
            high = after_sk
        return {
            "KeyConditionExpression": "gsi1pk = :pk AND gsi1sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": {":pk": to_attr(f"{ORDERS_INDEX_PREFIX}{user_id}"),
                                          ":low": to_attr(low), ":high": to_attr(high)},
        }

    def filter_expression(self, kind: str) -> dict[str, Any]:
        """FilterExpression parts: ``kind`` (a condition on ``#entity`` / ``#origin``, values bound by the
        caller) and the equality filters on connection, symbol and status that are set."""
        wanted = {"connection_id": self.connection_id, "symbol": self.symbol, "status": self.status}
        wanted = {name: value for name, value in wanted.items() if value is not None}
        names = {f"#{name}": name for name in wanted}
        names.update({f"#{name}": name for name in ("entity", "origin") if f"#{name}" in kind})
        return {
            "FilterExpression": " AND ".join([f"({kind})", *(f"#{name} = :{name}" for name in wanted)]),
            "ExpressionAttributeNames": names,
            "values": {f":{name}": to_attr(value) for name, value in wanted.items()},
        }


def list_history_items(
    user_id: str, history: HistoryFilter, limit: int, after_sk: str | None = None, *,
    kind: str = ORDERS_ONLY, kind_values: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``limit`` raw items of the user's gsi1 partition that meet ``kind`` and ``history``, newest
    first, and the gsi1sk to resume after (None: the end). ONE Query (DynamoDB's own pages aside).

    DynamoDB's first page reads ``limit`` + 1 items (``page_of`` reads one past the page to know whether
    another follows), + 1 from a cursor (BETWEEN is inclusive: the cursor's own record is read first, then
    dropped); when the filters leave some out, each next one reads twice as many (``query_growing``).
    Without a Limit every listing page read up to 1 MB of records (each charged, however few it showed).
    The Limit changes no cursor: the page ends at a record's own gsi1sk, never at a LastEvaluatedKey, so a
    page the answer's size bound stopped short (``fitted_page``) still resumes at the first it left out.
    """
    request: dict[str, Any] = {
        "TableName": get_settings().data_table, "IndexName": HISTORY_INDEX, "ScanIndexForward": False,
        **history.key_condition(user_id, after_sk),
    }
    filters = history.filter_expression(kind)
    request["FilterExpression"] = filters["FilterExpression"]
    request["ExpressionAttributeNames"] = filters["ExpressionAttributeNames"]
    request["ExpressionAttributeValues"].update({**filters["values"], **(kind_values or {})})
    # BETWEEN is inclusive: the cursor's own record was on the last page.
    first_read = limit + 1 + (after_sk is not None)
    items = (item for item in query_growing(first_read, **request) if item["gsi1sk"]["S"] != after_sk)
    return page_of(items, limit, "gsi1sk")


def list_order_page(
    user_id: str, history: HistoryFilter, limit: int, after_sk: str | None = None
) -> tuple[list[OrderRecord], str | None]:
    """Up to ``limit`` of the user's order records, newest first, and the gsi1sk to resume after (None:
    the end); refused attempts are not order records and never among them."""
    items, last_sk = list_history_items(user_id, history, limit, after_sk)
    return [OrderRecord.from_item(item) for item in items], last_sk


def list_recent_records(user_id: str, since_ms: int) -> list[OrderRecord]:
    """The user's order records created at or after ``since_ms``, newest first."""
    records, _ = list_order_page(user_id, HistoryFilter(from_ms=since_ms), limit=10_000)
    return records


def order_record_of(user_id: str, connection_id: str, symbol: str, order_id: int,
                    created_to_ms: int) -> OrderRecord | None:
    """The user's record of Binance's order ``order_id`` on this connection and symbol, created at or before
    ``created_to_ms`` (None: there is none). It may read much of that part of the history (filtered on the
    order id): only for the order of a trade that Binance no longer knows, so placed over 90 days ago."""
    history = HistoryFilter(connection_id=connection_id, symbol=symbol, to_ms=created_to_ms)
    items, _ = list_history_items(user_id, history, 1, kind=f"{ORDERS_ONLY} AND order_id = :order_id",
                                  kind_values={":order_id": to_attr(int(order_id))})
    return OrderRecord.from_item(items[0]) if items else None


def recent_foreign_fills(user_id: str, connection_id: str, symbol: str | None = None,
                         since_ms: int | None = None, limit: int = 200) -> list[OrderRecord]:
    """Orders we did not place (manual, liquidation, ADL) on this connection (and symbol), newest first.

    For the positions view: the labels to show next to the positions (default: the last 7 days, among
    the connection's newest ``limit`` records of that time). Here, with the history's other reads, so
    the positions view does not load the reconciler that records them (and its order path).
    """
    since = since_ms if since_ms is not None else int(time.time() * 1000) - WATCH_IDLE_MS
    records, _ = list_order_page(user_id, HistoryFilter(connection_id=connection_id, symbol=symbol,
                                                        from_ms=since), limit=limit)
    return [r for r in records if r.origin in FOREIGN_ORIGINS]


def list_unsettled() -> Iterator[OrderRecord]:
    """Every record the reconciler has not finished with (each shard of the sparse gsi2)."""
    for shard in range(UNSETTLED_SHARDS):
        for item in _query_gsi2(f"{UNSETTLED_PREFIX}{shard}"):
            yield OrderRecord.from_item(item)


def unsettled_position(record: OrderRecord) -> tuple[str, str]:
    """Where ``list_unsettled`` lists the record: its (gsi2pk, gsi2sk), in the listing's order."""
    keys = unsettled_keys(record.user_id, record.client_order_id)
    return keys["gsi2pk"], keys["gsi2sk"]


def _resume_key() -> dict[str, Any]:
    return {"pk": to_attr(GLOBAL_PK), "sk": to_attr(RESUME_SK)}


def resume_points() -> dict[str, tuple[str, str]]:
    """Where the last scheduled reconciler run that its budget stopped left off, by step (``settle``: an
    ``unsettled_position``, ``follow``: a ``watch_position``); a step missing starts from its beginning.
    One strongly consistent GetItem."""
    item = aws.dynamodb().get_item(TableName=get_settings().data_table, Key=_resume_key(),
                                   ConsistentRead=True).get("Item") or {}
    return {step: (str(from_attr(item[f"{step}_pk"])), str(from_attr(item[f"{step}_sk"])))
            for step in RESUME_STEPS if f"{step}_pk" in item and f"{step}_sk" in item}


def save_resume_point(step: str, position: tuple[str, str] | None) -> None:
    """Remember where the next scheduled run starts ``step`` (None: from its beginning). One UpdateItem."""
    names = [f"{step}_pk", f"{step}_sk"]
    if position is None:
        update = Update(removes=names)
    else:
        update = Update(sets=dict(zip(names, position, strict=True)))
    aws.dynamodb().update_item(TableName=get_settings().data_table, Key=_resume_key(), **update.request())


def list_unsettled_of(user_id: str, connection_id: str) -> list[OrderRecord]:
    """The records of one connection the reconciler has not finished with (one Query of the user's
    shard of gsi2, from the user's own sort-key prefix)."""
    keys = unsettled_keys(user_id, "")
    items = query_items(
        TableName=get_settings().data_table, IndexName=UNSETTLED_INDEX,
        KeyConditionExpression="gsi2pk = :pk AND begins_with(gsi2sk, :user)",
        FilterExpression="connection_id = :connection",
        ExpressionAttributeValues={":pk": to_attr(keys["gsi2pk"]), ":user": to_attr(keys["gsi2sk"]),
                                   ":connection": to_attr(connection_id)},
    )
    return [OrderRecord.from_item(item) for item in items]


def _query_gsi2(partition: str) -> Iterator[dict[str, Any]]:
    return query_items(
        TableName=get_settings().data_table, IndexName=UNSETTLED_INDEX,
        KeyConditionExpression="gsi2pk = :pk", ExpressionAttributeValues={":pk": to_attr(partition)},
    )


# ---------------------------------------------------------------------- watch marks
@dataclasses.dataclass(frozen=True)
class Watch:
    """A (user, connection, symbol) whose trades the reconciler follows, and how far it got."""

    user_id: str
    connection_id: str
    symbol: str
    last_trade_id: int | None
    active_ms: int
    # How far (ms, Binance's trade times) the symbol's trades are read: every trade made before it has an id
    # of at most last_trade_id (None: a watermark stored before this was kept).
    read_ms: int | None = None


def _watch_key(user_id: str, connection_id: str, symbol: str) -> dict[str, Any]:
    return {"pk": to_attr(f"USER#{user_id}"), "sk": to_attr(f"{WATCH_PREFIX}{connection_id}#{symbol}")}


def _watch_shard(user_id: str) -> str:
    return f"{WATCH_PREFIX}{zlib.crc32(user_id.encode()) % UNSETTLED_SHARDS}"


def watch_symbol(user_id: str, connection_id: str, symbol: str, active_ms: int) -> None:
    """Follow this symbol's trades on this connection (again); the watermark, if any, is kept."""
    aws.dynamodb().update_item(**watch_update(user_id, connection_id, symbol, active_ms))


def watch_update(user_id: str, connection_id: str, symbol: str, active_ms: int) -> dict[str, Any]:
    """The UpdateItem request of ``watch_symbol`` (also a transaction's ``Update``)."""
    update = Update(sets={
        "user_id": user_id, "connection_id": connection_id, "symbol": symbol, "active_ms": active_ms,
        "gsi2pk": _watch_shard(user_id), "gsi2sk": f"{user_id}#{connection_id}#{symbol}",
    })
    return {"TableName": get_settings().data_table, "Key": _watch_key(user_id, connection_id, symbol),
            **update.request()}


def watch_due(user_id: str, connection_id: str, symbol: str) -> bool:
    """Whether an order of ours settled without the reconciler (a strategy order whose turn stored its
    fills) writes its symbol's watch (``watch_update``) with it: the reconciler, which watches the symbol
    of every order it settles, never sees that one. Not when this container wrote it in the last
    ``WATCH_REFRESH_S`` (``watched``)."""
    with _watched_lock:
        return (user_id, connection_id, symbol) not in _watched_lately


def watched(user_id: str, connection_id: str, symbol: str) -> None:
    """The symbol's watch was written with a settled order (``watch_due``)."""
    with _watched_lock:
        _watched_lately[(user_id, connection_id, symbol)] = True


def forget_watches() -> None:
    """Forget which watches this container wrote lately (``watch_due``), for tests."""
    with _watched_lock:
        _watched_lately.clear()


def watch_position(watch: Watch) -> tuple[str, str]:
    """Where ``list_watched`` lists the watch: its (gsi2pk, gsi2sk), in the listing's order."""
    return _watch_shard(watch.user_id), f"{watch.user_id}#{watch.connection_id}#{watch.symbol}"


def unwatch_symbol(user_id: str, connection_id: str, symbol: str) -> None:
    """Stop following the symbol (no exposure, no recent activity); the watermark stays."""
    update = Update(removes=["gsi2pk", "gsi2sk"])
    aws.dynamodb().update_item(TableName=get_settings().data_table,
                               Key=_watch_key(user_id, connection_id, symbol), **update.request())


def advance_watermark(user_id: str, connection_id: str, symbol: str, last_trade_id: int,
                      read_ms: int) -> bool:
    """Move the last reconciled trade id, and ``read_ms`` (that trade's time), forward (never back); False
    when it was already there."""
    update = Update(sets={"last_trade_id": last_trade_id, "read_ms": read_ms})
    return conditional_write(
        aws.dynamodb().update_item, TableName=get_settings().data_table,
        Key=_watch_key(user_id, connection_id, symbol),
        ConditionExpression="attribute_not_exists(last_trade_id) OR last_trade_id < :last_trade_id",
        **update.request(),
    )


def mark_read(user_id: str, connection_id: str, symbol: str, read_ms: int) -> None:
    """Binance answered no trade after the watermark up to ``read_ms``: move ``read_ms`` there (never back;
    a watch without a watermark has nothing to move)."""
    update = Update(sets={"read_ms": read_ms})
    conditional_write(
        aws.dynamodb().update_item, TableName=get_settings().data_table,
        Key=_watch_key(user_id, connection_id, symbol),
        ConditionExpression="attribute_exists(last_trade_id) AND "
                            "(attribute_not_exists(read_ms) OR read_ms < :read_ms)",
        **update.request(),
    )


def list_watched() -> Iterator[Watch]:
    """Every watched (user, connection, symbol), from the WATCH# shards of gsi2."""
    for shard in range(UNSETTLED_SHARDS):
        for item in _query_gsi2(f"{WATCH_PREFIX}{shard}"):
            plain = {name: from_attr(value) for name, value in item.items()}
            last, last_ms = plain.get("last_trade_id"), plain.get("read_ms")
            yield Watch(plain["user_id"], plain["connection_id"], plain["symbol"],
                        int(last) if last is not None else None, int(plain.get("active_ms") or 0),
                        int(last_ms) if last_ms is not None else None)
