"""Request-weight and order-count limits, per IP (weight) and per account (orders).

Weight: fixed windows of `weight_window_s` (60 s: one wall-clock minute) per (IP, API family);
spot and /sapi share one counter, futures has its own. Going over the limit answers 429 -1003
with Retry-After = seconds left in the window; after `rejections_before_ban` such answers in one
window the next request is 418 and the IP is banned for `ban_seconds` (Retry-After = time left).
Orders: futures counts per account in 10 s and 1 min windows (X-MBX-ORDER-COUNT-10S/-1M).
"""

from __future__ import annotations

import math
import threading
import time

from . import errors
from .config import SimulatorConfig

__all__ = ["RateLimiter"]


class _IpWindow:
    __slots__ = ("banned_until", "rejections", "used", "window")

    def __init__(self):
        self.window = -1
        self.used = 0
        self.rejections = 0
        self.banned_until = 0.0


class RateLimiter:
    """Thread-safe weight and order counters; reads limits from the live config each time."""

    def __init__(self, config: SimulatorConfig):
        self._config = config
        self._lock = threading.Lock()
        self._ips: dict[tuple[str, str], _IpWindow] = {}
        self._orders: dict[tuple[str, int], list[int]] = {}

    def reset(self) -> None:
        """Forget all counters and bans."""
        with self._lock:
            self._ips.clear()
            self._orders.clear()

    def _limit(self, family: str) -> int:
        return (
            self._config.futures_weight_limit if family == errors.FUTURES else self._config.spot_weight_limit
        )

    @staticmethod
    def _bucket(family: str) -> str:
        return errors.FUTURES if family == errors.FUTURES else errors.SPOT

    def charge(self, ip: str, family: str, weight: int) -> int:
        """Add `weight`; return the weight used in the window, or raise 429/418 ApiError."""
        now = time.time()
        window_s = self._config.weight_window_s
        window = int(now // window_s)
        with self._lock:
            state = self._ips.get((ip, self._bucket(family)))
            if state is None:
                state = self._ips[(ip, self._bucket(family))] = _IpWindow()
            if state.banned_until > now:
                raise errors.ip_banned(
                    family, int(state.banned_until * 1000), max(1, math.ceil(state.banned_until - now))
                )
            if state.window != window:
                state.window, state.used, state.rejections = window, 0, 0
            limit = self._limit(family)
            if state.used + weight > limit:
                if state.rejections >= self._config.rejections_before_ban:
                    state.banned_until = now + self._config.ban_seconds
                    raise errors.ip_banned(family, int(state.banned_until * 1000), self._config.ban_seconds)
                state.rejections += 1
                retry_after = max(1, math.ceil((window + 1) * window_s - now))
                raise errors.too_much_weight(family, limit, retry_after)
            state.used += weight
            return state.used

    def used(self, ip: str, family: str) -> int:
        """Weight used by `ip` in the current window (0 when the window has rolled over)."""
        window = int(time.time() // self._config.weight_window_s)
        with self._lock:
            state = self._ips.get((ip, self._bucket(family)))
            return state.used if state and state.window == window else 0

    def count_order(self, account_key: str) -> tuple[int, int]:
        """Count one futures order; return (orders in 10 s window, orders in 1 min window)."""
        now = time.time()
        counts = []
        with self._lock:
            for span, limit, label in (
                (10, self._config.futures_orders_10s_limit, "10 SECOND"),
                (60, self._config.futures_orders_1m_limit, "1 MINUTE"),
            ):
                window = int(now // span)
                slot = self._orders.get((account_key, span))
                if slot is None or slot[0] != window:
                    slot = self._orders[(account_key, span)] = [window, 0]
                if slot[1] >= limit:
                    raise errors.too_many_orders(limit, label, max(1, math.ceil((window + 1) * span - now)))
                counts.append(slot)
            for slot in counts:
                slot[1] += 1
        return counts[0][1], counts[1][1]
