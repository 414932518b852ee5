"""Closed klines for the runner: one request per (environment, symbol, interval, candle), shared and cached.

The request asks for the candles up to ``close_time + 1`` (``endTime`` is an open time): the answer
then ends with the candle AFTER the target when the target has closed on Binance's clock, which
is the proof the target is final. Only candles closing at or before the target are kept, so the
open candle never reaches a strategy. Closed candles never change, so a container keeps them in a
small LRU cache: a group split over several messages (or redelivered) costs no second request
from the same container.

``limit`` is at least 99: Binance futures charges weight 1 for any limit below 100 (facts §3), so
asking for 99 costs the same as asking for 20 and lets every strategy of a group share one answer.

A candle Binance never makes ends the tick rather than failing it (``ends_the_tick``): a symbol that
stopped trading makes no more candles, so waiting for one would retry every tick's message into the
dead-letter queue while its strategies never record why. Its status is read again then (exchangeInfo at
most ``klineo.binance.filters.STATUS_MAX_AGE_S`` old): a contract that ended (``ENDED_STATUSES``:
delisted, ``SETTLING``, or settled) refuses the symbol (field ``symbol``: the strategies pause
``invalid_symbol``); any other status but ``TRADING`` (a halt, ``TRADING_HALT``, ``TRADING_CANCEL_ONLY``)
refuses the candle (field ``close_time``: that tick is skipped, ``no_candle``, nothing paused, and the
strategies trade again with the market: ``get_symbol_rules`` reads a cached halt again before it refuses).
So does a candle missing although a later one exists (its market made none then). A turn whose candles
came reads the symbol's rules by the same rule (``trading_rules``): halted now, that tick is skipped too.

``CandleGroup.since`` adds the closed candles a group does not reach back to (``closed_between``: a paper
position's candles since its last check, ``klineo.runner.paper.unchecked_since``), read oldest first in
pages of at most ``GAP_PAGE_LIMIT``, each page's ``limit`` the candles it still needs (a gap of fewer than
100 candles costs weight 1; 1000 costs 5, the most candles per weight above 500: facts §15).

A gap longer than ``FINE_GAP_MAX`` candles (a position paused for days or months, a kill switch lifted
after a long hold) is not read whole: given what closes the position (``GapFilter``), ``since`` scans it
coarse to fine (``first_closing``) and keeps only the first candle of the gap that closes it, if any. A
coarser candle's low and high are the lowest and highest of the finer candles it spans (Binance makes both
from the same trades; every interval up to 1d divides a day, so a coarse interval that is a multiple of
the fine one nests its candles, weekly and monthly ones never), so a coarse candle whose range reaches no
level is certain to hold no candle that closes the position: only those that reach one are read finer.
Each read asks for fewer than 100 candles where it can (the coarsest interval needed for that, weight 1),
so a 3-day gap of 1m candles costs about 2 requests of weight 1 instead of 5 pages of weight up to 5, and
3 months about 3 instead of 130.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cachetools import LRUCache

from klineo.binance import (
    BinanceClient,
    Candle,
    ErrorCategory,
    Market,
    SymbolRules,
    current_symbol_rules,
    get_client,
    get_symbol_rules,
    klines,
    listed_symbol_rules,
)
from klineo.errors import KlineoError
from klineo.strategies import INTERVALS_MS

__all__ = [
    "CACHE_MAX_ENTRIES",
    "CandleGroup",
    "GapFilter",
    "clear_cache",
    "closed_between",
    "closed_candles",
    "ends_the_tick",
    "fetch_limit",
    "first_closing",
    "status_refusal",
    "trading_rules",
    "type_refusal",
]

CACHE_MAX_ENTRIES = 256
MIN_LIMIT = 99
MAX_LIMIT = 1500
GAP_PAGE_LIMIT = 1000
# A gap of at most this many candles is read whole (at most 2 pages); a longer one coarse to fine.
FINE_GAP_MAX = 2 * GAP_PAGE_LIMIT
# The most candles one read of the coarse-to-fine scan asks for where it can: a limit below 100, weight 1.
SCAN_LIMIT = 99
# When Binance has not yet shown the next candle: look again after these pauses, then accept the
# target as closed if Binance's clock is at least CLOSE_GRACE_MS past it (a market with no trade yet; the
# client's server-time offset, which costs one GET time of weight 1 when the client has none yet).
RECHECK_DELAYS_S: tuple[float, ...] = (0.5, 1.0)
CLOSE_GRACE_MS = 5_000
# The fields of a klines refusal that ends the tick for every strategy of its group (``ends_the_tick``).
_TICK_ENDING_FIELDS = ("symbol", "close_time")
# Symbol statuses of a contract that ended (delisted perpetuals are SETTLING, docs/binance-facts.md §15):
# no candle ever comes again, so its strategies pause. Any other status but TRADING is waited out.
ENDED_STATUSES = frozenset({"PRE_SETTLE", "SETTLING", "CLOSE", "PRE_DELIVERING", "DELIVERING", "DELIVERED"})


class GapFilter(Protocol):
    """What closes a position on the candles of a gap (``first_closing``)."""

    def may_close(self, candle: Candle) -> bool:
        """False only when no candle within ``candle``'s span (of any finer interval) can close it: its
        range reaches none of the position's levels."""
        ...

    def closes(self, candle: Candle) -> bool:
        """Whether ``candle`` (of the position's own interval) closes it."""
        ...


@dataclass(frozen=True)
class CandleGroup:
    """The closed candles of one market and interval, oldest first, ending with the target candle.

    ``asked``: how many closed candles the read asked Binance for (fewer came: the market has no more);
    None when ``candles`` are all there are (a sequence given whole, as a backtest's)."""

    environment: str
    symbol: str
    interval: str
    close_time: int
    candles: tuple[Candle, ...]
    asked: int | None = None

    def short_of(self, count: int) -> bool:
        """True when a strategy reading ``count`` candles needs more than this read asked for (read again
        for ``count``); False when it holds them, or holds all the market has."""
        return len(self.candles) < count and self.asked is not None and self.asked < count

    def for_lookback(self, count: int) -> tuple[Candle, ...]:
        """The closed candles of a strategy reading ``count`` of them: these, or, when this read asked for
        fewer (``short_of``: its parameters raised after the dispatcher's snapshot), the group read again for
        ``count`` (``closed_candles``: one klines request, then the container's cache). A market younger than
        ``count`` is not read again: the type holds saying so. Raises as ``closed_candles``."""
        if not self.short_of(count):
            return self.candles
        return closed_candles(self.environment, self.symbol, self.interval, self.close_time, count).candles

    def since(self, close_time: int, gap_filter: GapFilter | None = None) -> tuple[Candle, ...]:
        """The closed candles after the one closing at ``close_time``, oldest first, ending with the target:
        these, preceded by those this group does not reach back to (``closed_between``: klines requests).
        With ``gap_filter``, a gap longer than ``FINE_GAP_MAX`` candles is scanned coarse to fine instead,
        and only its first candle that closes (``first_closing``), if any, precedes these: the others close
        nothing. Raises as ``klines``."""
        if not self.candles or self.candles[0].open_time <= close_time + 1:
            return tuple(c for c in self.candles if c.close_time > close_time)
        start, end = close_time + 1, self.candles[0].open_time
        if gap_filter is not None and end - start > FINE_GAP_MAX * INTERVALS_MS.get(self.interval, end):
            first = first_closing(self.environment, self.symbol, self.interval, close_time, end,
                                  self.close_time, gap_filter)
            return (() if first is None else (first,)) + self.candles
        before = closed_between(self.environment, self.symbol, self.interval, close_time, end)
        return before + self.candles


# key -> (the limit it was fetched with, the group): a later need is served when its limit fits.
# Bounded, least recently used first out; the lock because cachetools caches are not thread-safe.
_cache: LRUCache[tuple[str, str, str, int], tuple[int, CandleGroup]] = LRUCache(maxsize=CACHE_MAX_ENTRIES)
_lock = threading.Lock()


def clear_cache() -> None:
    """Forget cached candles (tests)."""
    with _lock:
        _cache.clear()


def fetch_limit(count: int) -> int:
    """The klines ``limit`` for ``count`` closed candles plus the next one: >= 99 (weight 1), <= 1500."""
    return min(max(count + 1, MIN_LIMIT), MAX_LIMIT)


def _cached(key: tuple[str, str, str, int], limit: int) -> CandleGroup | None:
    with _lock:
        entry = _cache.get(key)
    return entry[1] if entry is not None and entry[0] >= limit else None


def _store(key: tuple[str, str, str, int], limit: int, group: CandleGroup) -> None:
    with _lock:
        old = _cache.get(key)
        if old is None or limit >= old[0]:
            _cache[key] = (limit, group)


def closed_candles(
    environment: str,
    symbol: str,
    interval: str,
    close_time: int,
    count: int,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> CandleGroup:
    """Up to ``count`` closed futures candles ending with the one closing at ``close_time``.

    Raises KlineoError: the client's categories for a failed request (retryable ones are retried
    by the caller later), UPSTREAM_UNAVAILABLE when the target candle is not closed yet (retryable),
    INVALID_REQUEST (field symbol) when the symbol is unknown or no longer trading, or NOT_FOUND (field
    close_time) when Binance has no candle closing at ``close_time`` but a later one (module doc).
    """
    key = (environment, symbol, interval, close_time)
    limit = fetch_limit(count)
    cached = _cached(key, limit)
    if cached is not None:
        return cached
    client = get_client(Market.FUTURES, environment)
    attempt = 0
    while True:
        rows = klines(client, symbol, interval, limit=limit, end_time=close_time + 1)
        closed = tuple(row for row in rows if row.close_time <= close_time)
        proven = any(row.open_time > close_time for row in rows)
        if closed and closed[-1].close_time == close_time:
            if proven or _binance_now_ms(client, clock) >= close_time + CLOSE_GRACE_MS:
                break
        elif proven:
            _require_trading(client, symbol)
            raise _no_candle(f"Binance has no {interval} candle of {symbol} closing at {close_time} (its "
                             f"market made none then)")
        if attempt >= len(RECHECK_DELAYS_S):
            _require_trading(client, symbol)
            raise KlineoError(
                ErrorCategory.UPSTREAM_UNAVAILABLE,
                f"the {interval} candle of {symbol} closing at {close_time} is not closed on Binance yet",
            )
        sleep(RECHECK_DELAYS_S[attempt])
        attempt += 1
    group = CandleGroup(environment, symbol, interval, close_time, closed[-(limit - 1):], asked=limit - 1)
    _store(key, limit, group)
    return group


def closed_between(
    environment: str, symbol: str, interval: str, after_close: int, before_open: int,
) -> tuple[Candle, ...]:
    """The candles opening after ``after_close`` and before ``before_open`` (both closed candles' times),
    oldest first, in pages of at most ``GAP_PAGE_LIMIT`` (the module doc). Raises KlineoError as ``klines``
    (a retryable one: the turn is played again later)."""
    return _read_between(get_client(Market.FUTURES, environment), symbol, interval, after_close, before_open)


def _read_between(
    client: BinanceClient, symbol: str, interval: str, after_close: int, before_open: int,
) -> tuple[Candle, ...]:
    """``closed_between`` on ``client``."""
    step = INTERVALS_MS.get(interval, 1)
    found: list[Candle] = []
    start = after_close + 1
    while start < before_open:
        limit = max(1, min(-(-(before_open - start) // step), GAP_PAGE_LIMIT))
        rows = [row for row in klines(client, symbol, interval, limit=limit, start_time=start,
                                      end_time=before_open - 1) if start <= row.open_time < before_open]
        if not rows:
            break
        found.extend(rows)
        start = rows[-1].close_time + 1
    return tuple(found)


def first_closing(
    environment: str, symbol: str, interval: str, after_close: int, before_open: int, last_close: int,
    gap_filter: GapFilter,
) -> Candle | None:
    """The first candle opening after ``after_close`` and before ``before_open`` that closes the position
    (``gap_filter``), read coarse to fine (the module doc); None when none does. ``last_close``: the close
    time of a candle known closed (the turn's): a coarse candle closing later is read finer, its range so
    far is not relied on. Raises KlineoError as ``klines``."""
    scan = _Scan(get_client(Market.FUTURES, environment), symbol, interval, last_close, gap_filter)
    return scan.first_closing(after_close + 1, before_open)


def _coarser(interval: str, start: int, end: int) -> str | None:
    """The interval a span [start, end) of ``interval`` candles is scanned with: None (read whole) when it
    holds at most ``SCAN_LIMIT`` of them; else the finest interval shorter than the span, a multiple of
    ``interval`` (its candles nest: the module doc), that covers it in at most ``SCAN_LIMIT`` candles, or
    the coarsest such interval when none does."""
    step = INTERVALS_MS[interval]
    if -(-(end - start) // step) <= SCAN_LIMIT:
        return None
    nesting = [name for name, size in sorted(INTERVALS_MS.items(), key=lambda item: item[1])
               if step < size < end - start and size % step == 0]
    covering = [name for name in nesting
                if (end - 1) // INTERVALS_MS[name] - start // INTERVALS_MS[name] < SCAN_LIMIT]
    return covering[0] if covering else (nesting[-1] if nesting else None)


@dataclass(frozen=True)
class _Scan:
    """One coarse-to-fine scan of a gap (``first_closing``)."""

    client: BinanceClient
    symbol: str
    interval: str
    last_close: int
    gap_filter: GapFilter

    def first_closing(self, start: int, end: int) -> Candle | None:
        """The first candle of ``interval`` opening in [start, end) that closes the position, or None."""
        coarse = _coarser(self.interval, start, end)
        if coarse is None:
            rows = _read_between(self.client, self.symbol, self.interval, start - 1, end)
            return next((row for row in rows if self.gap_filter.closes(row)), None)
        size = INTERVALS_MS[coarse]
        for candle in _read_between(self.client, self.symbol, coarse, start // size * size - 1, end):
            if candle.close_time <= self.last_close and not self.gap_filter.may_close(candle):
                continue
            found = self.first_closing(max(candle.open_time, start), min(candle.close_time + 1, end))
            if found is not None:
                return found
        return None


def _binance_now_ms(client: BinanceClient, clock: Callable[[], float]) -> float:
    """Now on Binance's clock (``clock`` plus the client's server-time offset, synced when it has none): a
    candle is closed when Binance's clock passed it, whatever ours says."""
    return clock() * 1000 + client.server_time_offset_ms()


def ends_the_tick(exc: KlineoError) -> bool:
    """True when a klines failure is final for its tick: each strategy of the group records it (a symbol
    Binance does not list or trade, a candle it never made); otherwise the whole message comes again."""
    return not exc.retryable and exc.field in _TICK_ENDING_FIELDS


def trading_rules(client: BinanceClient, symbol: str) -> SymbolRules:
    """``get_symbol_rules`` for a turn whose candles came: a symbol Binance does not trade now is refused by
    the tick's one rule (``_require_trading``, on the status just read: no request), so a halt skips the
    tick (field close_time, ``no_candle``) while an ended or unlisted contract refuses the symbol."""
    try:
        return get_symbol_rules(client, symbol)
    except KlineoError as exc:
        if exc.field == "symbol":
            _require_trading(client, symbol)
        raise


def status_refusal(client: BinanceClient, symbol: str, exc: KlineoError, *,
                   fresh: bool = True) -> KlineoError:
    """Binance's refusal ``exc`` of an order for its symbol's status (field symbol, docs/binance-facts.md
    §15) judged by the tick's one rule (``_require_trading``) on the status read again now (the container's
    exchangeInfo may predate the halt; the read refreshes it, so later turns refuse before sending), or
    (``fresh`` False) on one at most ``filters.STATUS_MAX_AGE_S`` old, shared by the container's callers: the
    refusal that rule makes, or ``exc`` itself when there is none."""
    if exc.field != "symbol":
        return exc
    try:
        _require_trading(client, symbol, fresh=fresh)
    except KlineoError as refusal:
        return refusal
    return exc


def type_refusal(client: BinanceClient, symbol: str, exc: KlineoError) -> KlineoError:
    """Binance's refusal ``exc`` of a MARKET order's type (field type, -1116) judged on the symbol's rules
    read again now (the container's exchangeInfo, kept up to an hour, may still list MARKET; the read
    refreshes it, so later turns refuse before sending): the refusal those rules make when the symbol no
    longer takes MARKET orders (``SymbolRules.require_type``), or ``exc`` itself when they still take them,
    or cannot be read now (the refusal then counts as any other)."""
    if exc.field != "type":
        return exc
    try:
        listed_symbol_rules(client, symbol, max_age_s=0.0).require_type("MARKET")
    except KlineoError as refusal:
        return refusal if refusal.field == "type" else exc
    return exc


def _require_trading(client: BinanceClient, symbol: str, *, fresh: bool = False) -> None:
    """Refuse the tick of a symbol Binance does not trade now, by its current status
    (``current_symbol_rules``; ``fresh``: read now): unlisted or ended, the symbol (field symbol); halted,
    the candle (field close_time). Nothing when it trades, or when its status cannot be read now: the
    candle is then waited for."""
    try:
        rules = listed_symbol_rules(client, symbol, max_age_s=0.0) if fresh else current_symbol_rules(
            client, symbol)
        status = rules.status
    except KlineoError as exc:
        if ends_the_tick(exc):
            raise
        return
    if status in ENDED_STATUSES:
        raise KlineoError(ErrorCategory.INVALID_REQUEST, f"{symbol} is not trading now (status {status})",
                          field="symbol")
    if status != "TRADING":
        raise _no_candle(f"Binance is not trading {symbol} now (status {status}): it makes no candle")


def _no_candle(message: str) -> KlineoError:
    """A candle Binance did not make: that tick is skipped (``no_candle``), nothing is paused."""
    return KlineoError(ErrorCategory.NOT_FOUND, message, field="close_time", retryable=False)
