"""Reconciling our order records with what Binance did: settle, read fills, label foreign trades, clean up.

One run (the scheduled reconciler Lambda, or a read of the order history with a small budget):
1. **Settle.** Every record not yet settled (the sparse ``gsi2`` index, never a scan) is read back:
   regular orders by clientOrderId (``GET /fapi/v1/order``), algo orders by clientAlgoId
   (``GET /fapi/v1/algoOrder``; a fired one through its child order, ``actualOrderId``, whose executed
   quantity and average price become the algo order's). Once
   final, its fills come from ``GET /fapi/v1/userTrades?orderId=`` (none read when nothing
   executed; in windows of 7 days from its ``time`` when placed earlier, facts §14) and the record
   leaves the index. What Binance says is stored as it is, iff the record is
   still in the index (``record_unsettled_outcome``): another reader (a read of the history, the order
   route, another run) that settled it since it was listed wrote a later state. A live strategy's
   order whose fills its settle estimated has them booked into the strategy's PnL in the same write
   (``klineo.services.live_fills``; while the strategy has an order pending it stays in the index for
   the next run). A live strategy's order read final while its strategy still holds it pending (its turn
   could not settle it: the lookups failed until its message was dead-lettered) gets that strategy's settle
   turn queued by the scheduled run (``klineo.runner.stranded``), so its fill and stops need not wait for
   the strategy's next candle. An API entry that
   asked for a stop-loss / take-profit and filled gets them placed first
   (``klineo.services.protective``, behind the risk gate); when one could not be placed for a
   transient reason or behind a gate that may open again (futures off, connection disabled), the
   entry's state is stored but it stays in the index, so a later run places it (a halted symbol too; one
   whose contract ended or that Binance no longer lists never trades again: the entry then leaves the
   index, logged once, ``Reconciler._given_up``). While every one missing waits out a refusal whose resend
   is not due yet (refused for the key while its key health says it fails, counted once when refused; or for
   the location: ``klineo.services.protective.stops_kept_off``), the filled
   entry is not read at all (it changes no more): no weight is spent on it until one is due. Likewise a
   reducing API order (reduce-only, a hedge close, the close route's) that executed re-fits the API entries'
   stops of the side it reduced to what is left (``klineo.services.protective_resize``); a close route's order
   that closed the position in full instead cancels again the stops its route had to cancel (those on that
   side Binance created by the time it filled, ours or not: the route only logs a cancel that failed): it
   stays in the index until that is done or refused for good, so a transient failure or a crash is resumed (a
   halt is waited out; once its symbol will never trade again it leaves the index, logged once, as an entry
   does).
2. **Purged.** An order Binance does not know (-2013) although the record and its last attempt
   (``attempt_ms``: a resend moves it) are older than Binance's shortest retention (3 days:
   canceled/expired orders without fills) becomes ``UNKNOWN_PURGED``,
   final; nothing ever sends it again (facts §9, §14). A younger unknown record is left alone: it may
   still be settled by the order route's own lookup. So is an order we did not place, recorded while it
   was filling, once Binance no longer knows its orderId; and a fired algo order whose triggered order
   (``actualOrderId``) Binance no longer knows, past the retention since it fired: what it executed can
   never be read again. Each is written once and leaves the index; none is read again.
3. **OCO-like cleanup.** When a protective order of ours fired, its siblings (same
   ``parent_client_order_id``: any role, any generation, ``klineo.store.orders.fired_entry``) that are
   still open are cancelled (``DELETE /fapi/v1/algoOrder``), also when the one that fired was settled
   before this run (by a read of the order history, or a run its budget stopped before its cleanup): the
   siblings' records are read with each armed protective order's (no request weight). So are our open
   protective orders on a symbol/side whose position reads 0 (``GET /fapi/v3/positionRisk``, once per
   connection). A stale stop never survives the next run to close a later position. An API entry's
   stop-loss / take-profit for MORE than the position now holds (reduced by something other than a reducing
   API order of ours, which re-fits them itself: a trade on Binance's own apps, a strategy's order, another
   entry's fired stop, a partial liquidation) is re-placed for what is left
   (``klineo.services.protective_resize``): Binance may refuse it when it fires (-2022,
   docs/binance-facts.md §4), leaving the rest unprotected. Once the symbol will never trade again (its
   contract ended, or Binance no longer lists it), that size is given up once (logged, counted
   ``protection_given_up``, kept on the orders' records) and later runs send nothing for it.
   A record whose connection was deleted can no longer be read: it is marked unmanaged (its last
   known state kept) and leaves the index (``klineo.services.connection_orders`` does this, and
   cancels what would open a position, while deleting the connection; this catches the rest).
   So is an entry whose stop-loss / take-profit this run would place while its connection is being
   deleted: a run loads a connection once, possibly before the delete began, and a stop placed after
   the delete's wind-down answered would be on Binance unlisted and unmanaged. Each protective order's
   record write checks the connection's deletion mark atomically (``klineo.services.protective``); a
   refusal sends nothing, and the entry is let go as the wind-down lets go of what it did not settle
   (no retry, no error). The wind-down's own run (``wind_down``: the delete's token) still places them.
4. **Trades we did not place.** For each watched (connection, symbol) — any symbol we settled an order on,
   until it has had no position and no activity for 7 days — ``userTrades`` since the last reconciled trade id
   are read (by ``fromId`` while that trade, or the last read that found none after it, is under 7 days old;
   older, in windows of 7 days from then, as Binance answers a query sent no time with the last 7 days only:
   ``endpoints.futures_trades_after``); a trade whose order is not one of our records is recorded once as an
   order of origin ``liquidation`` (clientOrderId ``autoclose-…``), ``adl`` (``adl_autoclose``),
   ``settlement`` (``settlement_autoclose-…``) or ``manual`` (anything else), with its fills (facts §8, §14),
   and one Binance no longer knows (placed over 90 days ago) as ``manual``, UNKNOWN_PURGED, from its trades,
   unless a record of ours names its orderId; its trades a later run reads (a page that ended inside them) are
   added to that record. When the trades read (and the record's) fall short of what Binance says the order
   executed (it began filling before the first window a newly watched symbol is read from, the last 7 days, or
   goes on past the page), every trade of it is read by orderId instead, so its totals are Binance's exactly
   however many fills it has.

Budget: a run spends at most ``weight`` request weight (default ``RUN_WEIGHT``: a tenth of the futures IP
limit of 2,400 per minute, so trading keeps the rest), and sends nothing once the ``call_deadline`` it runs in
(if any; a scheduled run's is its invocation's remaining time less ``RUN_MARGIN_S``) has passed; the shared
limiter (``klineo.binance.ratelimit``) still refuses anything past 90 % of the IP's window, and the run stops
at the first ``rate_limit``/``ip_banned``. A scheduled run's settling stops before it would leave less than
half its weight (the first record excepted), so the cleanup of the records it settled and the trades we did
not place always get their share, however large the backlog. What is left waits for the next run, which
settles from the record and follows from the watched symbol this one stopped at (kept as
``klineo.store.order_history.resume_points``), each round to its start: a backlog larger than one run's budget
is worked through in turn, never the same first records or symbols over and over. So is one order with more
pages of fills than a run's weight: the fills read so far are kept on its record (``fills_progress``), and
the next run reads on from the last of them.

Key health: Binance refusing a connection's key on the run's own signed reads (orders, fills, positions, the
watched symbols' trades: ``Reconciler.read``) and on its own cancels (a flat side's stops, a deleted
connection's orders) counts on the connection's key health once a run, not once per record
(``klineo.services.key_health.note_futures_outcome``, for the key version the run signs with): three
runs in a row disable a connection whose key was revoked or whose IP left the allow-list, pausing its
strategies, and the trader is told. The stops it places (an entry's, a re-fit's, a lost one's again) are
armed with the run's own count of the connection (``klineo.services.key_health.KeyCount``): a refusal of
them counts on the same once a run, however many entries of the connection the run arms. A read Binance
answers clears what a read disproves of the count, and a cancel it carries out what a trade does, once a run
and kind of call (``KeyCount.worked``: written only when the connection's item holds such a count), never
after the run counted a refusal of the connection's key. Once every read of a
connection this run was refused for the key, its other records and watches are not read in this run
(counted ``left_for_key_refusal``): each would spend weight on the same refusal.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from functools import partial
from typing import Any

from klineo.binance import BinanceClient, call_deadline, call_time_left, endpoints, weight_meter
from klineo.binance.credentials import Credentials
from klineo.binance.ratelimit import endpoint_weight
from klineo.errors import ErrorCategory, KlineoError
from klineo.observability import logger
from klineo.services.algo_orders import algo_result, triggered_order_id
from klineo.services.key_health import READ, TRADE, KeyCall, KeyCount, is_key_failure, note_futures_outcome
from klineo.services.orders import OrderResult
from klineo.services.protective_siblings import entry_protective_ids
from klineo.services.risk import CONNECTION_DELETING, params_reduce
from klineo.services.symbol_settings import futures_client
from klineo.store import order_history
from klineo.store.aws import STORAGE_ERRORS
from klineo.store.connections import Connection, connection_credentials, get_connection
from klineo.store.order_fills import fill_totals, stored_fills
from klineo.store.orders import (
    FINAL_STATUSES,
    FOREIGN_ORIGINS,
    KIND_ALGO,
    ORIGIN_ADL,
    ORIGIN_API,
    ORIGIN_LIQUIDATION,
    ORIGIN_MANUAL,
    ORIGIN_SETTLEMENT,
    PROTECTIVE_ROLES,
    STATUS_UNKNOWN_PURGED,
    UNMANAGED_CONNECTION_DELETED,
    OrderRecord,
    fired_entry,
    get_order_record,
    get_order_records,
    is_settled,
    iso_ms,
    mark_unmanaged,
    put_new_record,
    record_fills_progress,
    record_order_outcome,
    record_refit_given_up,
    record_unsettled_outcome,
)
from klineo.timestamps import utc_iso
from klineo.validation import plain_text

__all__ = [
    "PURGE_AFTER_MS",
    "RUN_MARGIN_S",
    "RUN_WEIGHT",
    "Reconciler",
    "foreign_label",
    "run_reconciler",
]

DAY_MS = 86_400_000
# Binance forgets canceled/expired orders without fills after 3 days (facts §9): a record older
# than that which Binance does not know can never be settled any more.
PURGE_AFTER_MS = 3 * DAY_MS
# A trade's order that Binance does not know is taken as forgotten (placed over 90 days ago) only once the
# trade is this old: a read made just after a fill may not find its order yet, and taken as forgotten then,
# a liquidation would be recorded as a manual order for good. Until then the watch waits, as for any failed
# read.
FORGOTTEN_ORDER_AFTER_MS = 15 * 60 * 1000
RUN_WEIGHT = 240
# What a scheduled run keeps of its invocation's time after its last Binance call: that call's writes, the
# resume points and the summary (a call's own timeouts already end by the deadline: klineo.binance).
RUN_MARGIN_S = 10.0
OPEN_ALGO = frozenset({"NEW", "TRIGGERING"})
_STOPPING = frozenset({ErrorCategory.RATE_LIMIT, ErrorCategory.IP_BANNED})


class BudgetSpent(Exception):
    """The run's request weight is used up, or Binance asked us to slow down: stop, go on next run.
    ``final`` False: only the share of it kept for later steps is left (``Reconciler.settle``'s ``keep``)."""

    def __init__(self, final: bool = True) -> None:
        super().__init__()
        self.final = final


def foreign_label(client_order_id: str) -> str:
    """Who placed an order that is not ours: Binance (liquidation, ADL, settlement), else the user."""
    if client_order_id.startswith("autoclose-"):
        return ORIGIN_LIQUIDATION
    if client_order_id.startswith("adl_autoclose"):
        return ORIGIN_ADL
    if client_order_id.startswith("settlement_autoclose-"):
        return ORIGIN_SETTLEMENT
    return ORIGIN_MANUAL


def _merged(record: OrderRecord | None, rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``fills`` and ``fills_summary`` of ``record`` (None: a new one) with the userTrades ``rows`` in: each
    trade once, a long list shortened to its exact totals (``klineo.store.order_fills``)."""
    if record is None:
        return stored_fills(rows)
    return stored_fills(rows, record.fills, record.fills_summary)


def _unchanged(record: OrderRecord, changes: dict[str, Any]) -> bool:
    """True when Binance told us nothing new (an order still open): no write is needed."""
    return changes.get("fills") is None and all(
        value == getattr(record, name) for name, value in changes.items() if value is not None)


def _settle_count(status: str, fills: list[dict[str, Any]] | None) -> str:
    """The run's count a record whose read was stored goes under: ``settled`` only when that write took it out
    of the unsettled index (``is_settled``); else ``open_left_for_next_run`` (Binance still holds it open) or
    ``final_left_for_next_run`` (final, kept until its protection is placed or re-fitted, or its fills are
    booked)."""
    if is_settled(status, fills):
        return "settled"
    return "final_left_for_next_run" if status in FINAL_STATUSES else "open_left_for_next_run"


def _armed(record: OrderRecord) -> bool:
    """True for a protective order of ours that Binance still holds armed (as last read)."""
    return record.role in PROTECTIVE_ROLES and record.kind == KIND_ALGO and record.status in OPEN_ALGO


def _flipped_past(record: OrderRecord, amount: Decimal) -> bool:
    """True for a one-way protective order whose side would add to the position ``amount`` (a SELL stop of a
    long on a short, a BUY one of a short on a long): the position was flipped since it was placed."""
    side = record.params.get("side")
    adds = (side == "SELL" and amount < 0) or (side == "BUY" and amount > 0)
    return record.position_side == "BOTH" and adds


def _protects(record: OrderRecord) -> bool:
    """True for an API entry that asked for a stop-loss / take-profit (the reconciler places them)."""
    return record.kind != KIND_ALGO and record.origin == ORIGIN_API and bool(record.protective_targets)


def _fired_entries(records: list[OrderRecord]) -> set[tuple[str, str]]:
    """The entries (user, clientOrderId) one of whose protective orders fired (``fired_entry``): among
    ``records``, or recorded so before, for the entries of ``records``' armed protective orders (any role,
    any generation). A sibling that fired may have been settled elsewhere (a read of the order history, a
    run its budget stopped before its cleanup): it is no longer in the index, but its record says so."""
    fired = {(r.user_id, fired_entry(r)) for r in records if fired_entry(r) is not None}
    batch = {(r.user_id, r.client_order_id) for r in records}
    parents: dict[str, set[str]] = defaultdict(set)
    for record in records:
        if _armed(record) and record.parent_client_order_id and (
                record.user_id, record.parent_client_order_id) not in fired:
            parents[record.user_id].add(record.parent_client_order_id)
    for user_id, entry_ids in parents.items():
        entries = get_order_records(user_id, sorted(entry_ids))
        ids = [i for entry in sorted(entry_ids) for i in entry_protective_ids(
            entry, (entries[entry].protective_generations or 1) if entry in entries else 1)
            if (user_id, i) not in batch]
        siblings = get_order_records(user_id, ids).values()
        fired |= {(user_id, entry) for entry in map(fired_entry, siblings) if entry is not None}
    return fired


# Where a step of a scheduled run lists an item (``klineo.store.order_history.resume_points``).
_POSITIONS = {"settle": order_history.unsettled_position, "follow": order_history.watch_position}


def _resumed(resume: dict[str, tuple[str, str]], step: str, items: list[Any]) -> list[Any]:
    """``items`` (as listed) from the first at or after where ``step`` left off, round to the start."""
    at = resume.get(step)
    if at is None:
        return items
    start = next((i for i, item in enumerate(items) if _POSITIONS[step](item) >= at), 0)
    return items[start:] + items[:start]


def _left_off(resume: dict[str, tuple[str, str]], step: str, items: list[Any], reached: int) -> None:
    """Keep where ``step`` stopped (``items[reached]``) for the next run; forget it once it went through."""
    if reached < len(items):
        order_history.save_resume_point(step, _POSITIONS[step](items[reached]))
    elif step in resume:
        order_history.save_resume_point(step, None)


@dataclasses.dataclass
class _Account:
    connection: Connection
    client: BinanceClient
    creds: Credentials
    positions: dict[tuple[str, str], Decimal] | None = None
    # The run's one count on the connection's key health: its reads, cancels and the stops it arms.
    key: KeyCount = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.key = KeyCount(self.connection, note_futures_outcome)


class Reconciler:
    """One reconciliation run: a weight budget, a clock, and the connections it has opened.

    A run inside ``klineo.binance.call_deadline`` sends nothing once it has passed (the client only
    shortens its timeouts). ``cancelled``: the clientOrderIds this run cancelled at Binance, in order.
    ``wind_down``: the token of the delete this run winds down for (``klineo.services.connection_orders``).
    """

    def __init__(self, weight: int = RUN_WEIGHT, now_ms: int | None = None,
                 wind_down: str | None = None) -> None:
        self.wind_down = wind_down
        self.weight_left = weight
        self.now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        self._accounts: dict[tuple[str, str], _Account | None] = {}
        self.counts: dict[str, int] = defaultdict(int)
        self.cancelled: list[str] = []
        self.stopped = False
        # Weight a ``settle`` in progress leaves to the steps after it (its ``keep``).
        self.keep = 0
        # How many of the records its last ``settle`` was given it went through before its budget stopped it.
        self.reached = 0
        # Key health, per (user, connection): counted once a run (``_Account.key``); a read that worked; the
        # refusal of a connection none of whose reads worked, whose remaining reads this run sends no more.
        self._key_worked: set[tuple[str, str]] = set()
        self._key_refused: dict[tuple[str, str], KlineoError] = {}

    # ------------------------------------------------------------------ Binance calls, within budget
    def call(self, method: str, path: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one endpoint helper, or a step that sends requests (``method path``: its first), if the budget
        (and the call deadline) allows; rate limits end the run. Charged that endpoint's weight up front, then
        what the step's requests took beyond it (``weight_meter``: placing stops, cancelling replaced ones,
        a time sync, a retry), so the budget is what Binance counted."""
        weight = endpoint_weight(method, path, kwargs or None)
        left = call_time_left()
        if weight > self.weight_left or (left is not None and left <= 0):
            raise BudgetSpent
        if weight > self.weight_left - self.keep:
            raise BudgetSpent(final=False)
        self.weight_left -= weight
        with weight_meter() as spent:
            try:
                return fn(*args, **kwargs)
            except KlineoError as exc:
                if exc.category in _STOPPING:
                    raise BudgetSpent from exc
                raise
            finally:
                self.weight_left -= max(spent() - weight, 0)

    def account(self, user_id: str, connection_id: str) -> _Account | None:
        """The connection's client and credentials (None when the connection is gone)."""
        key = (user_id, connection_id)
        if key not in self._accounts:
            connection = get_connection(user_id, connection_id)
            self._accounts[key] = None if connection is None else _Account(
                connection, futures_client(connection), connection_credentials(connection))
        return self._accounts[key]

    def read(self, account: _Account, path: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """One signed read (GET ``path``) of the connection within budget (``call``). A refusal of the key
        counts on its key health (``_key_failed``); none is sent for a connection whose reads this run were
        all refused for the key: its refusal is raised again instead."""
        key = (account.connection.user_id, account.connection.connection_id)
        refused = self._key_refused.get(key)
        if refused is not None:
            raise refused
        try:
            body = self.call("GET", path, fn, *args, **kwargs)
        except KlineoError as exc:
            if is_key_failure(exc):
                self._key_failed(account, exc)
            raise
        self._key_worked.add(key)
        account.key.worked(READ)  # clears what a read disproves, once a run (writes only when there is some)
        return body

    def _key_failed(self, account: _Account, exc: KlineoError) -> None:
        """Binance refused the connection's key on a read of ours: counted on its key health once a run
        (``note_futures_outcome``: ``note_key_outcome`` for the key version the run signs with, a third run in
        a row disabling the connection; a permission refusal while its futures are off counts nothing, as for
        any futures read), not once per record; when none of its reads worked this run, the rest are not
        sent."""
        key = (account.connection.user_id, account.connection.connection_id)
        if key not in self._key_worked:
            self._key_refused[key] = exc
        self._count_key(account, exc, READ)

    @staticmethod
    def _count_key(account: _Account, exc: KlineoError, call: KeyCall) -> None:
        """A refusal of the connection's key (a read's, or a cancel's of ours: the key must be able to
        cancel the orders it placed) counted on its key health once a run (``_Account.key``, the count the
        stops this run arms for the connection are handed too)."""
        account.key.refused(exc, call)

    def position_amounts(self, account: _Account) -> dict[tuple[str, str], Decimal]:
        """(symbol, positionSide) → positionAmt, read once per run and connection (weight 5)."""
        if account.positions is None:
            rows = self.read(account, "/fapi/v3/positionRisk", endpoints.futures_position_risk,
                             account.client, account.creds)
            account.positions = {(str(r.get("symbol")), str(r.get("positionSide") or "BOTH")):
                                 Decimal(str(r.get("positionAmt") or "0")) for r in rows}
        return account.positions

    def trades_of(self, account: _Account, symbol: str, order_id: int, order: dict[str, Any],
                  after: tuple[int, int] | None = None, read: list[dict[str, Any]] | None = None,
                  ) -> list[dict[str, Any]]:
        """One order's fills (userTrades by orderId, every page: ``endpoints.futures_order_trades``; in
        windows from its ``time`` on when that is over 7 days ago, as Binance answers no more without one),
        each page one request within the budget; from ``after`` on (its ``after``). Each page's rows are
        also added to ``read`` as they come: what a budget spent midway leaves (``order_fills``)."""
        placed = order.get("time")

        def page(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = self.read(account, "/fapi/v1/userTrades", *args, **kwargs)
            if read is not None:
                read.extend(rows)
            return rows

        return endpoints.futures_order_trades(account.client, account.creds, symbol, order_id,
                                              placed_ms=None if placed is None else int(placed), via=page,
                                              after=after)

    def order_fills(self, account: _Account, record: OrderRecord, order_id: int,
                    order: dict[str, Any]) -> dict[str, Any]:
        """``fills`` and ``fills_summary`` of the record's order once final: its own (or those an earlier run
        kept, ``fills_progress``) with every trade from there on. When the budget runs out midway, what was
        read is kept on the record (``record_fills_progress``), so the next run goes on from the last trade
        read instead of reading the same first pages again, and an order of any number of fills settles."""
        progress = record.fills_progress
        base = record if progress is None else dataclasses.replace(
            record, fills=progress["fills"], fills_summary=progress.get("fills_summary"))
        after = None if progress is None else (int(progress["after"][0]), int(progress["after"][1]))
        read: list[dict[str, Any]] = []
        try:
            return _merged(base, self.trades_of(account, record.symbol, order_id, order, after, read))
        except BudgetSpent:
            if read:
                last = max(read, key=lambda row: int(row["id"]))
                kept = {**_merged(base, read), "after": [int(last["id"]), int(last["time"])]}
                try:
                    record_fills_progress(record.user_id, record.client_order_id, kept)
                except STORAGE_ERRORS:  # the run still stops on its budget; the next one reads them again
                    logger.warning("fills read not kept", extra={"client_order_id": record.client_order_id})
                self.counts["fills_left_for_next_run"] += 1
            raise

    # ------------------------------------------------------------------ whole runs
    def run(self) -> dict[str, Any]:
        """Settle every unsettled record, clean up protective orders, follow watched symbols; each step from
        where the last run its budget stopped left off, round to its beginning. The summary (logged and
        returned) counts what the run did by name: ``settled`` only for a record it took out of the unsettled
        index; one whose read it stored but left there is ``open_left_for_next_run`` or
        ``final_left_for_next_run`` (``_settle_count``)."""
        resume = order_history.resume_points()
        records = _resumed(resume, "settle", list(order_history.list_unsettled()))
        settled = self.settle(records, keep=self.weight_left // 2)
        _left_off(resume, "settle", records, self.reached)
        self._queue_settle_turns(settled[:self.reached])
        if not self.stopped:
            watches = _resumed(resume, "follow", list(order_history.list_watched()))
            followed = 0
            try:
                for watch in watches:
                    self._guarded(self.follow, watch)
                    followed += 1
            except BudgetSpent:
                self._stop()
            _left_off(resume, "follow", watches, followed)
        summary = {**self.counts, "weight_left": self.weight_left}
        logger.info("reconciler run", extra=summary)
        return summary

    def settle(self, records: list[OrderRecord], keep: int = 0) -> list[OrderRecord]:
        """Settle these records (a run's or a page's), then clean up after those it reached; the records as
        they are now, in the same order. Settling stops before it would leave less than ``keep`` weight:
        that is the cleanup's and the later steps' (the rest is settled by the next run). The first record
        may use it: each settle goes through one at least, however costly."""
        settled: list[OrderRecord] = []
        try:
            for record in records:
                self.keep = keep if settled else 0
                settled.append(self._guarded(self.settle_one, record) or record)
        except BudgetSpent as spent:
            if spent.final:
                self._stop()
            else:
                self.counts["settling_left_for_next_run"] += 1
        finally:
            self.keep = 0
            self.reached = len(settled)
        try:
            if not self.stopped:
                self._cleanup(settled)
        except BudgetSpent:
            self._stop()
        return settled + records[len(settled):]

    def _queue_settle_turns(self, records: list[OrderRecord]) -> None:
        """Queue the settle turn of each strategy still holding one of these orders (read final) pending
        (``klineo.runner.stranded``): its fill and stops then need not wait for its next candle. A failure
        is logged: those orders wait for that candle, as before."""
        from klineo.runner.stranded import queue_settle_turns  # the scheduled run's only: not the history's

        try:
            queued = queue_settle_turns(records, self.now_ms)
        except (KlineoError, *STORAGE_ERRORS):
            self.counts["errors"] += 1
            logger.warning("strategy settle turns not queued: they wait for their next candle", exc_info=True)
            return
        if queued:
            self.counts["settle_turns_queued"] += queued

    def _stop(self) -> None:
        """The budget is spent (or Binance asked us to slow down): what is left waits for the next run."""
        self.stopped = True
        self.counts["stopped_on_budget"] += 1

    def _guarded(self, step: Any, subject: Any) -> Any:
        """One step for one record or watch; a Binance refusal for it is logged, the run goes on."""
        try:
            return step(subject)
        except KlineoError as exc:
            self.counts["errors"] += 1
            logger.warning("reconcile step failed", extra={"category": exc.category.value,
                                                            "step": step.__name__})
            return None

    # ------------------------------------------------------------------ settling one record
    def settle_one(self, record: OrderRecord) -> OrderRecord | None:
        """Read the record's order back and store its state (and fills once final)."""
        account = self.account(record.user_id, record.connection_id)
        if account is None:
            return self._let_go(record)
        if self._refused(account):
            return None
        if self._kept_off(record, account.connection):
            self.counts["protection_waiting"] += 1
            return None
        read = self._read_algo if record.kind == KIND_ALGO else self._read_order
        if record.origin in FOREIGN_ORIGINS:
            read = self._read_foreign
        changes = read(account, record)
        if changes is None or _unchanged(record, changes):
            return None
        now = dataclasses.replace(record, **{k: v for k, v in changes.items() if v is not None})
        protected = changes.get("fills") is None or self._protected(account, now)
        if protected is True and self._reduced(record, now):
            protected = self._followed(account, now)
        booked = self._booked(now, changes) if protected is True else None
        if protected is not True or booked is False:
            # Not settled: it stays in the index until its protection is placed or its fills are booked.
            changes["fills"] = changes["fills_summary"] = None
            now = dataclasses.replace(now, fills=record.fills, fills_summary=record.fills_summary)
        if not booked and not record_unsettled_outcome(record.user_id, record.client_order_id, **changes):
            # Settled by another reader since listed: what this run read may be older than what it wrote.
            self.counts["settled_elsewhere"] += 1
            return get_order_record(record.user_id, record.client_order_id)
        if protected is None:  # the connection is being deleted: let go, as its wind-down does
            return self._let_go(now)
        order_history.watch_symbol(record.user_id, record.connection_id, record.symbol, self.now_ms)
        self.counts[_settle_count(now.status, changes.get("fills"))] += 1
        return now

    def _booked(self, order: OrderRecord, changes: dict[str, Any]) -> bool | None:
        """A strategy order whose PnL its settle estimated, now with its fills: they are booked into the
        strategy's live book with ``changes`` (``klineo.services.live_fills``). True when written; False
        when not now (it stays in the index); None when there is nothing to book."""
        if order.booked_estimate is None or changes.get("fills") is None:
            return None
        # Loaded here: only an order whose fills were estimated reaches this line.
        from klineo.services.live_fills import book_fills

        booked = book_fills(order, changes, self.now_ms)
        if booked is not None:
            self.counts["fills_booked" if booked else "fills_not_booked_yet"] += 1
        return booked

    def _let_go(self, record: OrderRecord) -> OrderRecord | None:
        """The record's connection is gone, so Binance can no longer be asked: stop following it."""
        self.counts["unmanaged"] += 1
        logger.info("order record no longer followed", extra={
            "client_order_id": record.client_order_id, "reason": UNMANAGED_CONNECTION_DELETED})
        return mark_unmanaged(record.user_id, record.client_order_id, UNMANAGED_CONNECTION_DELETED)

    def _refused(self, account: _Account) -> bool:
        """True (counted) when every read of the connection this run was refused for the key: reading its
        other records and watches would spend weight on the same refusal (``read``)."""
        if (account.connection.user_id, account.connection.connection_id) not in self._key_refused:
            return False
        self.counts["left_for_key_refusal"] += 1
        return True

    @staticmethod
    def _kept_off(record: OrderRecord, connection: Connection) -> bool:
        """True for a filled API entry whose missing stops wait out a refusal before their POST is due again
        (``klineo.services.protective.stops_kept_off``: the key's, while the connection's key health says it
        fails; the location's, for a period): reading it from Binance (its order, weight 1, and its trades,
        5) would tell nothing it can use before then."""
        if not _protects(record):
            return False
        from klineo.services.protective import stops_kept_off  # only an entry with stops reaches this line

        return stops_kept_off(record, connection)

    def _protected(self, account: _Account, entry: OrderRecord) -> bool | None:
        """Place a filled API entry's missing stop-loss / take-profit (again, in a new generation, one lost
        past Binance's retention while its position stands: ``klineo.services.protective_resize``'s
        ``arm_entry_stops``, its positionRisk read metered with the step); False when one could not be placed
        yet (a transient failure, a halt, a state gate or a refusal of the key that may be lifted); a stop
        Binance refused for good (recorded, not raised), or a symbol that will never trade again
        (``_given_up``), is final.
        None when the connection is being deleted (by another delete than ``wind_down``): nothing sent."""
        if not _protects(entry):
            return True
        # Loaded here: only an entry with stops reaches this line (the order history's read of a page
        # reconciles too, and should not import the whole order path for it).
        from klineo.services.protective_resize import arm_entry_stops

        try:
            self.call("POST", "/fapi/v1/algoOrder", arm_entry_stops, entry.user_id, entry,
                      account.client, account.creds, connection=account.connection, wind_down=self.wind_down,
                      key_count=account.key)
        except KlineoError as exc:
            if exc.field == CONNECTION_DELETING:
                self.counts["protection_let_go"] += 1
                logger.info("protective orders not placed: the connection is being deleted",
                            extra={"client_order_id": entry.client_order_id})
                return None
            if self._given_up(entry, exc):
                return True
            self.counts["protection_failed"] += 1
            logger.warning("protective orders not placed by the reconciler", extra={
                "client_order_id": entry.client_order_id, "category": exc.category.value,
                "field": exc.field, "retryable": exc.retryable})
            # A transient failure, a closed gate (futures switched off, connection disabled) or a refusal
            # lifted later (the key, the server's location) may pass again: the entry stays in the index so
            # its protection is placed then, never dropped for good (a stop refused for good is answered, not
            # raised; a symbol that ended is given up above).
            return False
        return True

    def _given_up(self, record: OrderRecord, exc: KlineoError) -> bool:
        """True (counted, logged once: the record then leaves the index) when the stops of ``record`` (an
        entry's, or those a reducing order re-fits) can never be placed: its symbol's contract ended or
        Binance no longer lists it, as ``klineo.services.protective`` judges it (final, field symbol). A
        halt comes back retryable: False, the next run tries again."""
        if exc.field != "symbol" or exc.retryable:
            return False
        self.counts["protection_given_up"] += 1
        logger.info("protective orders given up: Binance no longer trades the order's symbol",
                    extra={"client_order_id": record.client_order_id, "symbol": record.symbol})
        return True

    @staticmethod
    def _reduced(record: OrderRecord, now: OrderRecord) -> bool:
        """True when ``now`` (``record`` as just read) is a reducing API regular order that executed more
        than was recorded, or is being settled: the stops of what it left are re-fitted (``_followed``;
        this only spares the other orders loading the order path)."""
        if now.origin != ORIGIN_API or now.kind == KIND_ALGO or not params_reduce(now.params):
            return False
        executed = {str((r.result or {}).get("executed_quantity")) for r in (record, now)}
        fills = [(r.fills, r.fills_summary) for r in (record, now)]
        return (now.fills is not None and fills[0] != fills[1]) or len(executed) > 1

    def _followed(self, account: _Account, order: OrderRecord) -> bool:
        """Re-fit the stops of the position side a reducing API order left, or cancel those a close left
        standing (``klineo.services.protective_resize.follow_settled``); False when that is not done yet (a
        transient failure, a closed gate, a halt): the order then stays in the index and the next run resumes
        it. True once the symbol will never trade again (``_given_up``): nothing can be re-fitted."""
        # Loaded here: only a reducing API order reaches this line (the order history reads too).
        from klineo.services.protective_resize import follow_settled

        try:
            self.call("GET", "/fapi/v3/positionRisk", follow_settled, order.user_id, order, account.client,
                      account.creds, account.connection, account.key)
        except KlineoError as exc:
            if self._given_up(order, exc):
                return True
            self.counts["refit_failed"] += 1
            logger.warning("protective orders not re-fitted by the reconciler", extra={
                "client_order_id": order.client_order_id, "category": exc.category.value})
            return False
        return True

    def _known(self, account: _Account, path: str, fn: Any, *args: Any) -> dict[str, Any] | None:
        """Binance's answer to one order read of the connection (GET ``path``, ``read``); None when it does
        not know the order (-2013)."""
        try:
            return self.read(account, path, fn, account.client, account.creds, *args)
        except KlineoError as exc:
            if exc.category is ErrorCategory.ORDER_NOT_FOUND:
                return None
            raise

    def _vanished(self, record: OrderRecord) -> dict[str, Any] | None:
        """Binance does not know the order: once older than its retention, UNKNOWN_PURGED (a state we
        already knew as final stays, with the fills we have); younger, wait. Its age is its last
        attempt's (``attempt_ms``, as the order core's rule, ``klineo.services.orders``), never only its
        record's: an order sent again days after its record was created (a REJECTED one retried with its
        key) may still reach Binance."""
        if not self._purged(record):
            return None
        if record.final:
            return {"status": record.status, "fills": record.fills or []}
        return {"status": STATUS_UNKNOWN_PURGED, "fills": record.fills or []}

    def _purged(self, record: OrderRecord, since_ms: int = 0) -> bool:
        """True (counted, logged once: the record then leaves the index) when an order Binance does not know
        is older than its retention: its record, its last attempt, and ``since_ms`` (when a fired algo order
        placed the order it no longer knows) all more than ``PURGE_AFTER_MS`` ago. Younger, -2013 is no
        purge: the record is left as it is for a later run."""
        if self.now_ms - max(iso_ms(record.created_at), record.attempt_ms, since_ms) <= PURGE_AFTER_MS:
            return False
        self.counts["purged"] += 1
        logger.info("order no longer known to Binance", extra={"client_order_id": record.client_order_id})
        return True

    def _read_foreign(self, account: _Account, record: OrderRecord) -> dict[str, Any] | None:
        """An order we did not place, recorded before it was final: read it by orderId until it is."""
        if record.order_id is None:
            return {"status": record.status, "fills": record.fills or []}
        body = self._known(account, "/fapi/v1/order", endpoints.futures_order_by_id, record.symbol,
                           record.order_id)
        if body is None:
            return self._vanished(record)
        changes: dict[str, Any] = {"status": str(body.get("status", record.status)),
                                   "result": OrderResult.from_binance(body, "queried").to_record()}
        if changes["status"] in FINAL_STATUSES:
            changes.update(self.order_fills(account, record, record.order_id, body))
        return changes

    def _read_order(self, account: _Account, record: OrderRecord) -> dict[str, Any] | None:
        body = self._known(account, "/fapi/v1/order", endpoints.futures_query_order, record.symbol,
                           record.client_order_id)
        if body is None:
            return self._vanished(record)
        result = OrderResult.from_binance(body, "queried")
        changes: dict[str, Any] = {"status": result.status, "order_id": result.order_id,
                                   "result": result.to_record()}
        if result.status in FINAL_STATUSES and result.order_id is not None:
            changes.update(self.order_fills(account, record, result.order_id, body)
                           if result.executed_quantity else _merged(record, []))
        return changes

    def _read_algo(self, account: _Account, record: OrderRecord) -> dict[str, Any] | None:
        body = self._known(account, "/fapi/v1/algoOrder", endpoints.futures_query_algo_order,
                           record.client_order_id)
        if body is None:
            return self._vanished(record)
        status = str(body.get("algoStatus", ""))
        changes: dict[str, Any] = {"status": status}
        child = triggered_order_id(body)
        if child is not None:
            order = self._known(account, "/fapi/v1/order", endpoints.futures_order_by_id, record.symbol,
                                child)
            if order is None:
                return self._child_vanished(record, body)
            # What it executed is its triggered order's (klineo.services.algo_orders): shown by the history.
            changes["result"] = algo_result(body, "queried", order).to_record()
            if str(order.get("status")) in FINAL_STATUSES:
                changes.update(self.order_fills(account, record, child, order))
        elif status in FINAL_STATUSES:
            changes["fills"] = record.fills or []
        return changes

    def _child_vanished(self, record: OrderRecord, body: dict[str, Any]) -> dict[str, Any] | None:
        """A fired algo order whose triggered order Binance no longer knows: what it executed can never be
        read again. Once past the retention since it fired, UNKNOWN_PURGED with the fills we have (the algo
        order's own answer kept as its result); younger, wait (``_purged``)."""
        if not self._purged(record, int(body.get("triggerTime") or 0)):
            return None
        return {"status": STATUS_UNKNOWN_PURGED, "result": algo_result(body, "queried").to_record(),
                "fills": record.fills or []}

    # ------------------------------------------------------------------ protective orders
    def _cleanup(self, records: list[OrderRecord]) -> None:
        """Cancel our open protective orders whose sibling fired or whose position reads 0 (or, one-way, was
        flipped past it); re-fit an API entry's that are for more than the position holds (``_refit``)."""
        fired = _fired_entries(records)
        oversized: dict[tuple[str, str, str, str], list[OrderRecord]] = {}
        for record in records:
            if not _armed(record):
                continue
            if (record.user_id, record.parent_client_order_id) in fired:
                self._guarded(self.cancel_protective, record)
                continue
            held = self._held(record)
            if held == 0:
                self._guarded(self.cancel_protective, record)
            elif held is not None and record.origin == ORIGIN_API and record.sent_quantity > held and (
                    record.protective_refused_quantity != plain_text(held)):  # not given up at this size
                side = (record.user_id, record.connection_id, record.symbol, record.position_side)
                oversized.setdefault(side, []).append(record)
        for side in sorted(oversized):
            self._guarded(self._refit, (side, oversized[side]))

    def _held(self, record: OrderRecord) -> Decimal | None:
        """The size of the position this protective order guards (None when its connection is gone); 0 for a
        one-way position flipped past zero since: the position it was made for is gone (it could only add to
        the new one, or close a later one it was never made for)."""
        account = self.account(record.user_id, record.connection_id)
        if account is None:
            return None
        amount = self.position_amounts(account).get((record.symbol, record.position_side), Decimal(0))
        return Decimal(0) if _flipped_past(record, amount) else abs(amount)

    def _side_size(self, account: _Account, symbol: str, position_side: str) -> Decimal:
        """The size of one side of a symbol's position, from this run's read (``position_amounts``)."""
        return abs(self.position_amounts(account).get((symbol, position_side), Decimal(0)))

    def _refit(self, oversized: tuple[tuple[str, str, str, str], list[OrderRecord]]) -> None:
        """An API entry's stops (``oversized``: a side and its records) are for more than their position
        holds: it was reduced by an order that is not a reducing API order of ours (a trade on Binance's own
        apps, a strategy's order, a fired stop of another entry, a partial liquidation): re-placed for what is
        left as after our own reductions (``klineo.services.protective_resize``, exactly once), sized by this
        run's read of the position (not read again). Once its symbol will never trade again (``_given_up``),
        its records keep that size as given up (``record_refit_given_up``): later runs skip it, no call."""
        from klineo.services.protective_resize import refit_position  # only a run that finds one loads it

        (user_id, connection_id, symbol, position_side), records = oversized
        account = self.account(user_id, connection_id)
        if account is None:
            return
        held = self._side_size(account, symbol, position_side)
        try:
            self.call("GET", "/fapi/v1/openAlgoOrders", refit_position, user_id, account.connection,
                      account.client, account.creds, symbol=symbol, position_side=position_side, held=held,
                      key_count=account.key)
        except KlineoError as exc:
            if not self._given_up(records[0], exc):
                raise
            for record in records:
                record_refit_given_up(user_id, record.client_order_id, plain_text(held))
            return
        self.counts["oversized_protective"] += 1

    def cancel_protective(self, record: OrderRecord) -> None:
        """Cancel a protective order of ours whose sibling fired or whose position reads 0."""
        account = self.account(record.user_id, record.connection_id)
        if account is None:
            return
        if not self._cancel_algo(account, record):
            self.settle_one(record)  # no longer open: it fired or was cancelled meanwhile; read it
            return
        self.counts["protective_cancelled"] += 1
        logger.info("protective order cancelled", extra={"client_order_id": record.client_order_id,
                                                        "reason": "sibling fired or position closed"})

    def _cancel_algo(self, account: _Account, record: OrderRecord) -> bool:
        """DELETE /fapi/v1/algoOrder by clientAlgoId; True when Binance confirmed, and the record then says
        CANCELED, settled (an algo order that fired is no longer open, so nothing executed). False on
        -2011: it fired or was cancelled meanwhile, which only a read tells apart."""
        try:
            self.call("DELETE", "/fapi/v1/algoOrder", endpoints.futures_cancel_algo_order,
                      account.client, account.creds, record.client_order_id)
        except KlineoError as exc:
            if exc.category is not ErrorCategory.ORDER_NOT_FOUND:
                self._count_key(account, exc, TRADE)
                raise
            return False
        account.key.worked(TRADE)
        record_order_outcome(record.user_id, record.client_order_id, status="CANCELED",
                             fills=record.fills or [])
        self.cancelled.append(record.client_order_id)
        return True

    # ---------------------------------------------------------- cancelling orders (a deleted connection's)
    def cancel_orders(self, records: list[OrderRecord]) -> None:
        """Cancel these orders of ours, then read back the ones the cancel's answer did not settle
        (its fills; for an entry that partly filled, its protection). Every cancel goes before any read,
        so a budget that runs out spends itself on cancelling first; a refusal for one order does not
        stop the rest."""
        unread: list[OrderRecord] = []
        try:
            for record in records:
                if self._guarded(self.cancel_order, record) is not False:
                    unread.append(record)
            for record in unread:
                self._guarded(self.settle_one, record)
        except BudgetSpent:
            self._stop()

    def cancel_order(self, record: OrderRecord) -> bool | None:
        """DELETE /fapi/v1/order by clientOrderId (a conditional order: /fapi/v1/algoOrder by clientAlgoId)
        and store Binance's answer; False when that settled the record (cancelled with nothing executed).
        -2011 (no longer open: it filled, fired, was cancelled, or never reached Binance) is left for a
        read to tell apart."""
        account = self.account(record.user_id, record.connection_id)
        if account is None:
            return None
        if record.kind == KIND_ALGO:
            if not self._cancel_algo(account, record):
                return None
            self.counts["orders_cancelled"] += 1
            return False
        try:
            body = self.call("DELETE", "/fapi/v1/order", endpoints.futures_cancel_order, account.client,
                             account.creds, record.symbol, orig_client_order_id=record.client_order_id)
        except KlineoError as exc:
            if exc.category is not ErrorCategory.ORDER_NOT_FOUND:
                self._count_key(account, exc, TRADE)
                raise
            return None
        account.key.worked(TRADE)
        result = OrderResult.from_binance(body, "placed")
        nothing_executed = result.status in FINAL_STATUSES and not result.executed_quantity
        record_order_outcome(record.user_id, record.client_order_id, status=result.status,
                             order_id=result.order_id, result=result.to_record(),
                             fills=(record.fills or []) if nothing_executed else None)
        self.cancelled.append(record.client_order_id)
        self.counts["orders_cancelled"] += 1
        return not nothing_executed

    # ------------------------------------------------------------------ trades we did not place
    def follow(self, watch: order_history.Watch) -> None:
        """Read the symbol's new trades; record those of orders that are not ours; move the watermark."""
        account = self.account(watch.user_id, watch.connection_id)
        if account is None:
            order_history.unwatch_symbol(watch.user_id, watch.connection_id, watch.symbol)
            return
        if self._refused(account):
            return
        if watch.last_trade_id is None:  # newly watched: the last 7 days
            rows = self.read(account, "/fapi/v1/userTrades", endpoints.futures_user_trades, account.client,
                             account.creds, watch.symbol,
                             start_time=self.now_ms - order_history.WATCH_IDLE_MS)
        else:
            rows = endpoints.futures_trades_after(account.client, account.creds, watch.symbol,
                                                  watch.last_trade_id, watch.read_ms,
                                                  via=partial(self.read, account, "/fapi/v1/userTrades"))
        if not rows:
            # None after it up to Binance's now (our clock's, less skew); said once a day, not every run:
            # a read under 7 days old stays one request by fromId.
            if watch.last_trade_id is not None and self.now_ms - (watch.read_ms or 0) > DAY_MS:
                order_history.mark_read(watch.user_id, watch.connection_id, watch.symbol,
                                        self.now_ms - endpoints.CLOCK_SKEW_MS)
            self._maybe_unwatch(account, watch)
            return
        # Our orders' ids; not a foreign record's: a later page of its trades is merged into it.
        ours = {r.order_id for r in order_history.list_recent_records(
            watch.user_id, min(int(r["time"]) for r in rows) - DAY_MS)
            if r.connection_id == watch.connection_id and r.symbol == watch.symbol
            and r.origin not in FOREIGN_ORIGINS}
        by_order: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            if int(row["orderId"]) not in ours:
                by_order[int(row["orderId"])].append(row)
        for order_id, trades in by_order.items():
            self._record_foreign(account, watch, order_id, trades)
        newest = max(rows, key=lambda r: int(r["id"]))
        order_history.advance_watermark(watch.user_id, watch.connection_id, watch.symbol,
                                        int(newest["id"]), int(newest["time"]))
        order_history.watch_symbol(watch.user_id, watch.connection_id, watch.symbol, self.now_ms)

    def _maybe_unwatch(self, account: _Account, watch: order_history.Watch) -> None:
        if self.now_ms - watch.active_ms < order_history.WATCH_IDLE_MS:
            return
        amounts = self.position_amounts(account)
        if all(amount == 0 for (symbol, _), amount in amounts.items() if symbol == watch.symbol):
            order_history.unwatch_symbol(watch.user_id, watch.connection_id, watch.symbol)

    def _record_foreign(self, account: _Account, watch: order_history.Watch, order_id: int,
                        trades: list[dict[str, Any]]) -> None:
        """Name the trades' order; unless it is one of our records, record it once with its label."""
        body = self._foreign_order(account, watch, order_id, trades)
        if body is None:
            return  # ours (e.g. an algo order's child carries the clientAlgoId): settled on its own
        label = foreign_label(str(body.get("clientOrderId", "")))
        result = OrderResult.from_binance(body, "queried").to_record()
        created = int(body.get("time") or trades[0]["time"])
        record_id = f"{label}-{order_id}"
        existing = get_order_record(watch.user_id, record_id)
        if existing is not None and existing.booked_estimate is not None:
            return  # a strategy's estimate waits on it: settling it (``settle_one``) books its fills
        fills = self._foreign_fills(account, watch.symbol, body, existing, trades)
        record = OrderRecord(
            user_id=watch.user_id, client_order_id=record_id, connection_id=watch.connection_id,
            symbol=watch.symbol, request={}, params={}, status=str(body.get("status", "FILLED")),
            attempt_ms=created, created_at=utc_iso(created, zulu=True),
            updated_at=utc_iso(self.now_ms, zulu=True), order_id=order_id,
            result=result, origin=label, **fills,
        )
        if existing is not None or not put_new_record(record):
            if existing is None:  # recorded by another run since it was read: its fills merged too
                fills = self._foreign_fills(account, watch.symbol, body,
                                            get_order_record(watch.user_id, record_id), trades)
            record_order_outcome(watch.user_id, record_id, status=record.status, **fills)
        self.counts[f"foreign_{label}"] += 1

    def _foreign_order(self, account: _Account, watch: order_history.Watch, order_id: int,
                       trades: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Binance's answer for the trades' order; None when it is one of our records. Binance forgets an
        order 90 days after it was placed, whatever its trades: one placed by hand (a GTC order left resting;
        Binance's own closing orders fill as they are placed) is then answered from its trades,
        UNKNOWN_PURGED, as a read would only fail again and the watch never read past it; not before its
        first trade is ``FORGOTTEN_ORDER_AFTER_MS`` old (a fresh order may not be found yet: the step fails,
        and a later run reads it again)."""
        body = self._known(account, "/fapi/v1/order", endpoints.futures_order_by_id, watch.symbol,
                           order_id)
        if body is None:
            first = min(trades, key=lambda row: int(row["id"]))
            if self.now_ms - int(first["time"]) < FORGOTTEN_ORDER_AFTER_MS:
                raise KlineoError(ErrorCategory.ORDER_NOT_FOUND, "The trades' order is not found yet.",
                                  retryable=True)
            known = order_history.order_record_of(watch.user_id, watch.connection_id, watch.symbol, order_id,
                                                  int(first["time"]))
            if known is not None and known.origin not in FOREIGN_ORIGINS:
                return None
            return {"orderId": order_id, "symbol": watch.symbol, "side": first.get("side"),
                    "status": STATUS_UNKNOWN_PURGED, "time": int(first["time"])}
        client_order_id = str(body.get("clientOrderId", ""))
        if client_order_id and get_order_record(watch.user_id, client_order_id) is not None:
            return None
        return body

    def _foreign_fills(self, account: _Account, symbol: str, body: dict[str, Any],
                       existing: OrderRecord | None, trades: list[dict[str, Any]]) -> dict[str, Any]:
        """``fills`` and ``fills_summary`` of a foreign order: its record's (None: a new one) with the trades
        the watch read; when they fall short of what Binance says it executed (trades made before the watch's
        first window, or past the end of its page), every trade of it by orderId instead (``trades_of``, each
        page within the budget), so its totals are Binance's exactly."""
        merged = _merged(existing, trades)
        counted = fill_totals(merged["fills"], merged["fills_summary"]).quantity
        if counted >= Decimal(str(body.get("executedQty") or 0)):
            return merged
        self.counts["foreign_fills_read_by_order"] += 1
        return _merged(None, self.trades_of(account, symbol, int(trades[0]["orderId"]), body))


def run_reconciler(lambda_context: Any = None, weight: int = RUN_WEIGHT,
                   now_ms: int | None = None) -> dict[str, Any]:
    """One scheduled run (see the module docstring); a summary of what it did. It sends nothing once its
    invocation has less than ``RUN_MARGIN_S`` left, and stops then as on a spent budget: the next run goes
    on where it stopped, and no timeout cuts it between a read and its write."""
    remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
    deadline = None if remaining is None else time.time() + remaining() / 1000.0 - RUN_MARGIN_S
    with call_deadline(deadline):
        return Reconciler(weight, now_ms).run()
