"""Closed USDT-M futures klines over a period: from the day cache first, the rest from Binance page by page.

- Days are UTC days. The cache (``klineo.store.klines_cache``) is read for the whole period in one
  Query; the days it lacks are fetched from ``GET /fapi/v1/klines`` in runs of consecutive days.
- Page size ``PAGE_LIMIT`` = 1000 candles. Binance weighs this endpoint by ``limit``: [1,100) 1,
  [100,500) 2, [500,1000] 5, above 1000 (max 1500) 10 (docs/binance-facts.md §15). 1000 costs 5
  weight (200 candles per weight) where 1500 costs 10 (150 per weight), and needs half the requests
  of 499 (weight 2): a year of 1h candles is 9 requests, 45 weight, of the 2,400 a minute the IP has.
- Every request goes through the client, so through the shared weight budget
  (``klineo.binance.ratelimit``): a request that would exceed the minute's budget waits for the
  next window or fails fast with ``rate_limit`` (retryable). Days already saved stay saved, so a
  retried job continues where it stopped.
- Backtests must not starve live trading of that budget: the backtest worker runs at most
  ``BACKTEST_WORKERS`` jobs at once (its reserved concurrency and SQS MaximumConcurrency), and a
  ``Pacer`` per container keeps the klines weight it sends under its share of
  ``BACKTEST_WEIGHT_PER_MINUTE`` (600, a quarter of the futures IP's 2,400) in any 60 s, sleeping
  until older requests leave the window. A synchronous backtest (at most 11 pages, 55 weight) never
  waits; a job of a year of 1m candles (526 pages) is paced over about 9 minutes.
- A day is saved only when its last candle had closed at ``now_ms`` (final: never fetched again).
  The still-open candle is never returned.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

from klineo.binance import BinanceClient, Candle, endpoints
from klineo.store import klines_cache
from klineo.store.klines_cache import DAY_MS
from klineo.strategies import INTERVALS_MS

__all__ = ["BACKTEST_WEIGHT_PER_MINUTE", "BACKTEST_WORKERS", "PAGE_LIMIT", "PAGE_WEIGHT", "History", "Pacer",
           "closed_candles", "pacer"]

PAGE_LIMIT = 1000
PAGE_WEIGHT = 5
BACKTEST_WEIGHT_PER_MINUTE = 600
BACKTEST_WORKERS = 2
_WINDOW_S = 60.0
# A day is written to the cache (final, never fetched again) only this long after its last candle
# closed on our clock: Binance answers a candle that has just closed on our clock as still open when
# its clock is behind ours or its last trades are not aggregated yet (the runner's CLOSE_GRACE_MS).
FINAL_AFTER_MS = 60_000


class Pacer:
    """At most ``weight_per_minute`` of request weight in any 60 s: ``take`` sleeps until it fits."""

    def __init__(self, weight_per_minute: int = BACKTEST_WEIGHT_PER_MINUTE // BACKTEST_WORKERS, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.weight_per_minute = weight_per_minute
        self._clock, self._sleep = clock, sleep
        self._sent: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def take(self, weight: int) -> float:
        """Reserve ``weight`` now or after a sleep; returns the seconds slept."""
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


def _fetch(client: BinanceClient, symbol: str, interval: str, start_ms: int, end_ms: int,
           on_request: Callable[[], None]) -> list[Candle]:
    """Every candle opening in [start_ms, end_ms), page by page.

    Each page asks for a window of exactly ``PAGE_LIMIT`` candles (startTime and endTime), so the
    answer is the same whether Binance counts ``limit`` from the start or from the end of the window
    (its USDⓈ-M page does not say); an empty window (before a listing, a halt) moves on to the next.
    """
    interval_ms = INTERVALS_MS[interval]
    found: list[Candle] = []
    cursor = start_ms
    while cursor < end_ms:
        window_end = min(end_ms, cursor + PAGE_LIMIT * interval_ms)
        on_request()
        page = endpoints.klines(client, symbol, interval, limit=PAGE_LIMIT, start_time=cursor,
                                end_time=window_end - 1)
        page = [candle for candle in page if cursor <= candle.open_time < window_end]
        found.extend(page)
        cursor = page[-1].open_time + interval_ms if page else window_end
    return found


def closed_candles(
    client: BinanceClient, symbol: str, interval: str, start_ms: int, end_ms: int, now_ms: int,
) -> History:
    """Closed candles opening in [start_ms, end_ms), read through the day cache (see the module doc)."""
    environment, interval_ms = client.environment.value, INTERVALS_MS[interval]
    end_ms = min(end_ms, now_ms)
    if end_ms <= start_ms:
        return History([])
    first_day, last_day = start_ms // DAY_MS * DAY_MS, (end_ms - 1) // DAY_MS * DAY_MS
    days = dict(klines_cache.load_days(environment, symbol, interval, interval_ms, first_day, last_day))
    history = History([], cached_days=len(days))
    missing = [day for day in range(first_day, last_day + 1, DAY_MS) if day not in days]
    for run_first, run_last in _day_runs(missing):
        def count() -> None:
            pacer().take(PAGE_WEIGHT)
            history.requests += 1
        fetched = _fetch(client, symbol, interval, run_first, run_last + DAY_MS, count)
        by_day: dict[int, list[Candle]] = defaultdict(list)
        for candle in fetched:
            by_day[candle.open_time // DAY_MS * DAY_MS].append(candle)
        for day in range(run_first, run_last + 1, DAY_MS):
            days[day] = by_day.get(day, [])
            if day + DAY_MS - 1 + FINAL_AFTER_MS < now_ms:  # the day's last candle closed a while ago: final
                klines_cache.save_day(environment, symbol, interval, interval_ms, day, days[day])
                history.fetched_days += 1
    history.candles = [
        candle for day in sorted(days) for candle in days[day]
        if start_ms <= candle.open_time < end_ms and candle.close_time < now_ms
    ]
    return history
