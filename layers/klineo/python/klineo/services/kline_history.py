"""Closed USDT-M futures klines over a period: from the day cache first, the rest from Binance page by page.

- Days are UTC days. The cache (``klineo.store.klines_cache``) is read for the whole period in one
  Query; the days it lacks are fetched from ``GET /fapi/v1/klines`` in runs of consecutive days.
- Page size ``PAGE_LIMIT`` = 1000 candles. Binance weighs this endpoint by ``limit``: [1,100) 1,
  [100,500) 2, [500,1000] 5, above 1000 (max 1500) 10 (docs/binance-facts.md §15). 1000 costs 5
  weight (200 candles per weight) where 1500 costs 10 (150 per weight), and needs half the requests
  of 499 (weight 2): a year of 1h candles is 9 requests, 45 weight, of the 2,400 a minute the IP has.
- Every request goes through the client, so through the shared weight budget
  (``klineo.binance.ratelimit``): a request that would exceed the minute's budget waits for the
  next window or fails fast with ``rate_limit`` (retryable).
- Backtests never take the weight trading needs. Before each page, like a chart request, the page
  must leave ``TRADING_RESERVE`` (40 %) of the IP's minute weight unspent
  (``BinanceClient.leave_trading_reserve``), judged on the usage every container shares. Past that a
  synchronous backtest stops with a 429 ``rate_limit`` (``BACKTEST_PAUSED``, ``retry_after`` at the
  next minute); a job waits for the next minute while its ``wait_until`` allows
  (``klineo.services.backtest_jobs``). Each day is kept as soon as the pages have covered it (saved
  once final), so a backtest stopped midway keeps the days it fetched and a retry continues there.
- A job's page refused for the minute's weight after that check (a retryable ``rate_limit`` with
  ``retry_after``: the limiter's 90 % ceiling, Binance's 429) is sent again after ``retry_after`` when
  that wait ends by ``wait_until``, at most ``PAGE_WAITS`` times a page (``_send_page``). Any other
  refusal is raised as before: a 418 ban (``ip_banned``) is never waited out here, and a synchronous
  backtest (no ``wait_until``) answers the 429 with its ``Retry-After``.
- Backtests also stay under their own share: the backtest worker runs at most
  ``BACKTEST_WORKERS`` jobs at once (its reserved concurrency and SQS MaximumConcurrency), and a
  ``Pacer`` per container keeps the klines weight it sends under its share of
  ``BACKTEST_WEIGHT_PER_MINUTE`` (600, a quarter of the futures IP's 2,400) in any 60 s, sleeping
  until older requests leave the window. A synchronous backtest (at most 11 pages, 55 weight) never
  sleeps: past its container's share it answers 429 ``rate_limit`` as past the reserve (it could not
  wait out a minute within API Gateway's 29 s). A job of a year of 1m candles (526 pages) is paced
  over about 9 minutes.
- A day is saved only when its last candle had closed at ``now_ms`` (final: never fetched again).
  The still-open candle is never returned.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from klineo.binance import BinanceClient, Candle, endpoints
from klineo.errors import RETRY_SHORTLY, ErrorCategory, KlineoError
from klineo.store import klines_cache
from klineo.store.klines_cache import DAY_MS
from klineo.strategies import INTERVALS_MS
from klineo.telemetry import child_logger, tally

__all__ = ["BACKTEST_PAUSED", "BACKTEST_WEIGHT_PER_MINUTE", "BACKTEST_WORKERS", "PAGE_LIMIT", "PAGE_WAITS",
           "PAGE_WEIGHT", "History", "Pacer", "closed_candles", "pacer"]

PAGE_LIMIT = 1000
PAGE_WEIGHT = 5
BACKTEST_WEIGHT_PER_MINUTE = 600
BACKTEST_WORKERS = 2
_WINDOW_S = 60.0
# A day is written to the cache (final, never fetched again) only this long after its last candle
# closed on our clock: Binance answers a candle that has just closed on our clock as still open when
# its clock is behind ours or its last trades are not aggregated yet (the runner's CLOSE_GRACE_MS).
FINAL_AFTER_MS = 60_000
# A job waits out a page's weight refusals at most this many times (each within its wait_until): an IP
# that stays saturated hands the job back instead of holding the worker until its deadline.
PAGE_WAITS = 3
# The refusal's reason; its advice (retry shortly) is the error's own, apart (``KlineoError.advice``).
BACKTEST_PAUSED = ("Backtests are paused for the rest of this minute so that trading keeps its Binance "
                   "request budget; the days already fetched are kept.")


class Pacer:
    """At most ``weight_per_minute`` of request weight in any 60 s: ``take`` sleeps until it fits."""

    def __init__(self, weight_per_minute: int = BACKTEST_WEIGHT_PER_MINUTE // BACKTEST_WORKERS, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.weight_per_minute = weight_per_minute
        self._clock, self._sleep = clock, sleep
        self._sent: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def take(self, weight: int, max_wait_s: float | None = None) -> float:
        """Reserve ``weight`` now or after a sleep; returns the seconds slept. A sleep that would end
        more than ``max_wait_s`` from the call (None: any sleep; a synchronous request cannot wait out
        a minute within API Gateway's 29 s) raises a retryable ``rate_limit`` instead."""
        slept = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and self._sent[0][0] <= now - _WINDOW_S:
                    self._sent.popleft()
                if sum(w for _, w in self._sent) + weight <= self.weight_per_minute or not self._sent:
                    self._sent.append((now, weight))
                    return slept
                wait = self._sent[0][0] + _WINDOW_S - now
            if max_wait_s is None or slept + wait > max_wait_s:
                raise KlineoError(ErrorCategory.RATE_LIMIT, BACKTEST_PAUSED,
                                  retry_after=max(1, math.ceil(wait)), advice=RETRY_SHORTLY)
            self._sleep(wait)
            slept += wait


_pacer = Pacer()


def pacer() -> Pacer:
    """The container's pacer of backtest klines requests."""
    return _pacer


@dataclass
class History:
    """The candles of a period, oldest first, and what it cost at Binance."""

    candles: list[Candle]
    requests: int = 0
    cached_days: int = 0
    fetched_days: int = 0


def _day_runs(days: list[int]) -> list[tuple[int, int]]:
    """Consecutive day starts grouped into (first day start, last day start) runs."""
    runs: list[tuple[int, int]] = []
    for day in days:
        if runs and runs[-1][1] + DAY_MS == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


# Sends one page: given the klines call, returns its candles (``_send_page`` bound to a backtest).
_SendPage = Callable[[Callable[[], list[Candle]]], list[Candle]]
_log = child_logger("backtest")


def _refusal_wait(client: BinanceClient, error: KlineoError, wait_until: float | None) -> float | None:
    """The seconds to wait before sending a refused page again, or None to raise ``error``: a retryable
    ``rate_limit`` (never a 418 ``ip_banned``) whose ``retry_after`` ends by ``wait_until``."""
    if (wait_until is None or error.category is not ErrorCategory.RATE_LIMIT or not error.retryable
            or error.retry_after is None):
        return None
    return error.retry_after if client.clock() + error.retry_after <= wait_until else None


def _send_page(client: BinanceClient, before_page: Callable[[], None], fetch: Callable[[], list[Candle]],
               *, wait_until: float | None) -> list[Candle]:
    """``before_page`` then ``fetch``; a refusal ``_refusal_wait`` accepts is waited out (the client's
    sleep) and the page sent again, at most ``PAGE_WAITS`` times."""
    waits = 0
    while True:
        try:
            before_page()
            return fetch()
        except KlineoError as error:
            wait_s = _refusal_wait(client, error, wait_until) if waits < PAGE_WAITS else None
            if wait_s is None:
                raise
            waits += 1
            _log.info("backtest page waits for the weight budget", extra={
                "wait_s": wait_s, "page_waits": waits, "error_category": error.category.value,
                "binance_status": error.status, "binance_code": error.code})
            tally.count("BacktestPageWaits")
        client.sleep(wait_s)


def _pages(client: BinanceClient, symbol: str, interval: str, start_ms: int, end_ms: int,
           send_page: _SendPage) -> Iterator[tuple[list[Candle], int]]:
    """Every candle opening in [start_ms, end_ms), page by page: each page, with the time before which
    every candle has now been received.

    Each page asks for a window of exactly ``PAGE_LIMIT`` candles (startTime and endTime), so the
    answer is the same whether Binance counts ``limit`` from the start or from the end of the window
    (its USDⓈ-M page does not say); an empty window (before a listing, a halt) moves on to the next.
    """
    interval_ms = INTERVALS_MS[interval]
    cursor = start_ms
    while cursor < end_ms:
        window_end = min(end_ms, cursor + PAGE_LIMIT * interval_ms)
        page = send_page(partial(endpoints.klines, client, symbol, interval, limit=PAGE_LIMIT,
                                 start_time=cursor, end_time=window_end - 1))
        page = [candle for candle in page if cursor <= candle.open_time < window_end]
        cursor = page[-1].open_time + interval_ms if page else window_end
        yield page, cursor


def _fetch_run(client: BinanceClient, symbol: str, interval: str, run: tuple[int, int], now_ms: int,
               days: dict[int, list[Candle]], history: History, send_page: _SendPage) -> None:
    """The days of one run of missing days into ``days``, each as soon as the pages have covered it
    and saved then if final: a run stopped midway (the trading reserve, the budget) keeps those."""
    environment, interval_ms = client.environment.value, INTERVALS_MS[interval]
    run_first, run_last = run
    by_day: dict[int, list[Candle]] = defaultdict(list)
    day = run_first
    for page, received_until in _pages(client, symbol, interval, run_first, run_last + DAY_MS, send_page):
        for candle in page:
            by_day[candle.open_time // DAY_MS * DAY_MS].append(candle)
        while day <= run_last and day + DAY_MS <= received_until:
            days[day] = by_day.pop(day, [])
            if day + DAY_MS - 1 + FINAL_AFTER_MS < now_ms:  # the day's last candle closed a while ago: final
                klines_cache.save_day(environment, symbol, interval, interval_ms, day, days[day])
                history.fetched_days += 1
            day += DAY_MS


def closed_candles(
    client: BinanceClient, symbol: str, interval: str, start_ms: int, end_ms: int, now_ms: int,
    *, wait_until: float | None = None,
) -> History:
    """Closed candles opening in [start_ms, end_ms), read through the day cache (see the module doc).

    A page that would eat into the trading reserve waits for the next minute while that is no later
    than ``wait_until`` (epoch s, the client's clock; None: never), else raises ``rate_limit``; so does
    a page refused for the minute's weight, for its ``retry_after`` (``_send_page``)."""
    environment, interval_ms = client.environment.value, INTERVALS_MS[interval]
    end_ms = min(end_ms, now_ms)
    if end_ms <= start_ms:
        return History([])
    first_day, last_day = start_ms // DAY_MS * DAY_MS, (end_ms - 1) // DAY_MS * DAY_MS
    days = dict(klines_cache.load_days(environment, symbol, interval, interval_ms, first_day, last_day))
    history = History([], cached_days=len(days))

    def before_page() -> None:
        pacer().take(PAGE_WEIGHT, None if wait_until is None else wait_until - client.clock())
        client.leave_trading_reserve(PAGE_WEIGHT, BACKTEST_PAUSED, wait_until=wait_until)
        history.requests += 1

    send_page = partial(_send_page, client, before_page, wait_until=wait_until)
    missing = [day for day in range(first_day, last_day + 1, DAY_MS) if day not in days]
    for run in _day_runs(missing):
        _fetch_run(client, symbol, interval, run, now_ms, days, history, send_page)
    history.candles = [
        candle for day in sorted(days) for candle in days[day]
        if start_ms <= candle.open_time < end_ms and candle.close_time < now_ms
    ]
    return history
