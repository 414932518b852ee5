"""Ticks and candles: which closed candle each interval's strategies act on, and its client order id.

The dispatcher runs every minute. For a tick at minute T (the schedule's time, floored to the
minute) an interval of length I is *due* when one of its candles closed within the last
``CATCH_UP_MS`` (T - boundary < CATCH_UP_MS, boundary = floor(T / I) * I); its target candle closes
at boundary - 1. So 1m strategies run every tick, 1h strategies at minutes 0-1 of each hour: the
second look catches a tick that was late or lost (the Scheduler does not retry). The dispatcher
makes it only when the boundary's tick did not complete (its tick record, ``klineo.store.ticks``),
and strategies that already ran that candle are filtered out (``last_close``) or refused by the run
record.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from klineo.strategies import INTERVALS_MS
from klineo.timestamps import epoch_ms

__all__ = [
    "CATCH_UP_MS",
    "MINUTE_MS",
    "base36",
    "client_order_id",
    "due_candles",
    "is_superseded",
    "tick_time_ms",
]

MINUTE_MS = 60_000
CATCH_UP_MS = 2 * MINUTE_MS
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def tick_time_ms(event: Mapping[str, Any] | None, now_ms: int | None = None) -> int:
    """The tick's minute in epoch ms: the Scheduler event's ``time`` (never later than now), else now."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    stamp = (event or {}).get("time")
    tick = now_ms
    if isinstance(stamp, str):
        try:
            tick = min(epoch_ms(datetime.fromisoformat(stamp)), now_ms)
        except ValueError:
            tick = now_ms
    return tick // MINUTE_MS * MINUTE_MS


def due_candles(tick_ms: int) -> dict[str, int]:
    """{interval: close time (ms) of the candle to act on} for the intervals due at this tick."""
    due: dict[str, int] = {}
    for interval, length in INTERVALS_MS.items():
        boundary = tick_ms // length * length
        if tick_ms - boundary < CATCH_UP_MS:
            due[interval] = boundary - 1
    return due


def is_superseded(close_time: int, interval: str, now_ms: int) -> bool:
    """True once the candle after ``close_time`` has closed too: acting on the older one would be stale."""
    return now_ms > close_time + INTERVALS_MS[interval]


def base36(value: int) -> str:
    """A non-negative integer in lower-case base 36."""
    if value < 0:
        raise ValueError("base36 takes non-negative integers")
    digits = ""
    while True:
        value, rest = divmod(value, 36)
        digits = _BASE36[rest] + digits
        if value == 0:
            return digits


def client_order_id(strategy_id: str, close_time: int, leg: int = 1) -> str:
    """``ks`` + 20 hex of sha256(strategy id) + ``_`` + base36(close ms): one id per (strategy, candle).

    31 characters today, within Binance's ``^[\\.A-Z\\:/a-z0-9_-]{1,36}$``; a redelivered message or a
    re-run derives the same id, so the exchange-level lookup finds the first order instead of
    placing a second one. A hedge-mode flip's second order (``leg`` 2, the new side's entry) starts with
    ``kf`` instead: as long, and every id derived from it (its protective orders', its first characters +
    ``-sl`` / ``-tp``, ``klineo.services.protective``) differs from every one derived from the first's.
    """
    return f"{'ks' if leg == 1 else 'kf'}{_digest(strategy_id)}_{base36(close_time)}"


@lru_cache(maxsize=4096)
def _digest(strategy_id: str) -> str:
    """The first 20 hex of sha256(strategy id): the same every tick, so a container computes it once."""
    return hashlib.sha256(strategy_id.encode()).hexdigest()[:20]
