"""Request-weight budget and IP-ban state, per Binance host, shared through a small store interface.

Binance counts request weight per IP in one-minute windows and bans an IP (418) that keeps going
after 429s. Every response carries ``X-MBX-USED-WEIGHT-1M`` (the IP's total, so it already counts
the calls of every container behind the same egress IP). The ``RateLimiter`` keeps, per host:
the last known used weight of the current window plus what this container has sent since, and
any block (418 ban or 429 back-off) with its end time. Before a call it estimates the call's
weight (facts §3); if the window's budget would be exceeded it waits for the next window when
that is at most ``max_wait_s`` away, else it fails fast with ``rate_limit``; during a block no
call goes out (``ip_banned`` / ``rate_limit`` with ``retry_after``). Charts and backtests stop
earlier, leaving ``TRADING_RESERVE`` of the minute to trading (``BinanceClient.leave_trading_reserve``).

Sharing between containers goes through a ``RateLimitStore``: ``InMemoryRateLimitStore`` (one
container, tests) or ``klineo.store.rate_limit.DynamoDBRateLimitStore`` (RateLimitTable). DynamoDB
stays off the hot path: the limiter writes only when a block starts and when the used weight
first crosses 50/80/95 % of the limit in a window. It reads the shared state once when a container
first calls a host, and after that only while usage is elevated (this window's known weight at or
above the first threshold, or a block known), at most every ``refresh_s`` (1.5 s). A quiet warm
call therefore costs no AWS call at all (``quiet_refresh_s`` can add a periodic read; default off).
The trade-off, chosen on purpose: a quiet container learns of a ban another container recorded
only from its own next answer (one rejected request, which Binance counts but never executes);
any container under load, the ones that can actually cause a ban, sees it within ~1.5 s.
A store failure never fails a trade: it is logged and the limiter goes on with local state.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Protocol

from klineo.binance.enums import Market
from klineo.errors import RETRY_SHORTLY, ErrorCategory, KlineoError

__all__ = [
    "DEFAULT_WEIGHT_LIMITS",
    "TRADING_RESERVE",
    "InMemoryRateLimitStore",
    "RateLimitStore",
    "RateLimiter",
    "SharedState",
    "endpoint_weight",
]

# Request weight per IP per minute (facts §5).
DEFAULT_WEIGHT_LIMITS: dict[Market, int] = {Market.SPOT: 6000, Market.FUTURES: 2400}
# The share of the IP's minute weight that charts and backtests leave unspent below the 90 % every call
# stops at, for orders, closes and strategy ticks (``BinanceClient.leave_trading_reserve``): charts and
# backtests stop at 50 % of the minute (1,200 of the futures 2,400).
TRADING_RESERVE = 0.4

_WINDOW_MS = 60_000
# A ban whose end Binance did not state lasts at least this long (bans start at 2 minutes, facts §5).
DEFAULT_BAN_S = 120.0

# Endpoint weights (facts §3). /sapi has its own pool at Binance; counting it here only makes us more careful.
_WEIGHTS: dict[tuple[str, str], int] = {
    ("GET", "/api/v3/ping"): 1,
    ("GET", "/api/v3/time"): 1,
    ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/klines"): 2,
    ("GET", "/api/v3/account"): 20,
    ("GET", "/api/v3/account/commission"): 20,
    ("GET", "/api/v3/ticker/price"): 2,
    ("GET", "/api/v3/avgPrice"): 2,
    ("POST", "/api/v3/order"): 1,
    ("GET", "/api/v3/order"): 4,
    ("DELETE", "/api/v3/order"): 1,
    ("GET", "/sapi/v1/account/apiRestrictions"): 1,
    ("GET", "/fapi/v1/ping"): 1,
    ("GET", "/fapi/v1/time"): 1,
    ("GET", "/fapi/v1/exchangeInfo"): 1,
    ("GET", "/fapi/v2/account"): 5,
    ("GET", "/fapi/v3/account"): 5,
    ("GET", "/fapi/v2/balance"): 5,
    ("GET", "/fapi/v3/balance"): 5,
    ("GET", "/fapi/v1/accountConfig"): 5,
    ("POST", "/fapi/v1/order"): 0,  # 0 IP weight; counts on X-MBX-ORDER-COUNT-* instead
    ("GET", "/fapi/v1/order"): 1,
    ("DELETE", "/fapi/v1/order"): 1,
    ("POST", "/fapi/v1/leverage"): 1,
    ("GET", "/fapi/v2/positionRisk"): 5,
    ("GET", "/fapi/v3/positionRisk"): 5,
    ("GET", "/fapi/v1/premiumIndex"): 1,
    ("GET", "/fapi/v2/ticker/price"): 1,
    ("GET", "/fapi/v1/symbolConfig"): 5,
    ("GET", "/fapi/v1/openAlgoOrders"): 1,
    ("GET", "/fapi/v1/openOrders"): 1,
    ("GET", "/fapi/v1/positionSide/dual"): 30,
    ("POST", "/fapi/v1/algoOrder"): 0,  # 0 IP weight; counts on X-MBX-ORDER-COUNT-* instead
    ("GET", "/fapi/v1/userTrades"): 5,
    ("GET", "/fapi/v1/algoOrder"): 1,
    ("DELETE", "/fapi/v1/algoOrder"): 1,
    ("GET", "/fapi/v1/forceOrders"): 20,
}
# The GET endpoints whose weight grows when no `symbol` is sent (every symbol at once), facts §3.
_WEIGHTS_WITHOUT_SYMBOL: dict[str, int] = {
    "/api/v3/ticker/price": 4,
    "/fapi/v2/ticker/price": 2,
    "/fapi/v1/openOrders": 40,
    "/fapi/v1/openAlgoOrders": 40,
    "/fapi/v1/forceOrders": 50,
}


def endpoint_weight(method: str, path: str, params: dict | None = None) -> int:
    """The request weight a call is expected to cost (facts §3); unknown endpoints count 1."""
    if path == "/fapi/v1/klines":
        limit = int((params or {}).get("limit") or 500)
        return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10
    if path in _WEIGHTS_WITHOUT_SYMBOL and not (params or {}).get("symbol"):
        return _WEIGHTS_WITHOUT_SYMBOL[path]
    return _WEIGHTS.get((method, path), 1)


class SharedState:
    """What containers share about one host: used weight in a window, and a block with its end."""

    __slots__ = ("blocked_status", "blocked_until_ms", "used", "window")

    def __init__(
        self, window: int = -1, used: int = 0, blocked_until_ms: int = 0, blocked_status: int = 0
    ) -> None:
        self.window = window  # minute index (epoch ms // 60000) the weight belongs to
        self.used = used
        self.blocked_until_ms = blocked_until_ms
        self.blocked_status = blocked_status  # 418 (ban) or 429 (back-off)

    def _key(self) -> tuple[int, int, int, int]:
        return (self.window, self.used, self.blocked_until_ms, self.blocked_status)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SharedState) and self._key() == other._key()

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return (
            f"SharedState(window={self.window}, used={self.used}, blocked_until_ms={self.blocked_until_ms}, "
            f"blocked_status={self.blocked_status})"
        )


class RateLimitStore(Protocol):
    """Where the shared budget and ban state lives (in memory, or DynamoDB for every container)."""

    def load(self, host: str) -> SharedState | None:
        """The shared state for a host, or None when nothing is recorded."""
        ...

    def save_usage(self, host: str, window: int, used: int) -> None:
        """Record the used weight of a window (keep the larger value if one is already there)."""
        ...

    def save_block(self, host: str, until_ms: int, status: int) -> None:
        """Record a 418 ban or a 429 back-off ending at ``until_ms`` (keep the later end)."""
        ...


class InMemoryRateLimitStore:
    """A store local to this container (the default without RATE_LIMIT_TABLE, and for tests)."""

    def __init__(self) -> None:
        self._states: dict[str, SharedState] = {}
        self._lock = threading.Lock()
        self.loads = 0
        self.writes = 0

    def load(self, host: str) -> SharedState | None:
        """The shared state for a host, or None when nothing is recorded."""
        with self._lock:
            self.loads += 1
            state = self._states.get(host)
            return (
                None
                if state is None
                else SharedState(state.window, state.used, state.blocked_until_ms, state.blocked_status)
            )

    def save_usage(self, host: str, window: int, used: int) -> None:
        """Record the used weight of a window (keep the larger value if one is already there)."""
        with self._lock:
            self.writes += 1
            state = self._states.setdefault(host, SharedState())
            if window > state.window:
                state.window, state.used = window, used
            elif window == state.window:
                state.used = max(state.used, used)

    def save_block(self, host: str, until_ms: int, status: int) -> None:
        """Record a 418 ban or a 429 back-off ending at ``until_ms`` (keep the later end)."""
        with self._lock:
            self.writes += 1
            state = self._states.setdefault(host, SharedState())
            if until_ms > state.blocked_until_ms:
                state.blocked_until_ms, state.blocked_status = until_ms, status


class _HostState:
    __slots__ = ("blocked_status", "blocked_until_ms", "crossed", "last_load_ms", "limit", "used", "window")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.window = -1
        self.used = 0
        self.blocked_until_ms = 0
        self.blocked_status = 0
        self.crossed = 0  # how many thresholds this container has reported for `window`
        self.last_load_ms = -math.inf


class RateLimiter:
    """Keeps calls inside Binance's weight budget and away from a banned or backed-off IP."""

    def __init__(
        self,
        store: RateLimitStore | None = None,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        budget_fraction: float = 0.9,
        max_wait_s: float = 2.0,
        refresh_s: float = 1.5,
        quiet_refresh_s: float | None = None,
        thresholds: tuple[float, ...] = (0.5, 0.8, 0.95),
    ) -> None:
        import time

        self.store: RateLimitStore = store if store is not None else InMemoryRateLimitStore()
        self._clock = clock or time.time
        self._sleep = sleep or time.sleep
        self.budget_fraction = budget_fraction
        self.max_wait_s = max_wait_s
        self.refresh_ms = refresh_s * 1000
        self.quiet_refresh_ms = math.inf if quiet_refresh_s is None else quiet_refresh_s * 1000
        self.thresholds = tuple(sorted(thresholds))
        self._hosts: dict[str, _HostState] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ before a call
    def acquire(self, host: str, market: Market, weight: int, now_ms: float | None = None) -> None:
        """Reserve ``weight`` for a call to ``host``: wait briefly for the next window, or raise."""
        if now_ms is None:
            now_ms = self._clock() * 1000
        state = self._state(host, market)
        self._maybe_refresh(host, state, now_ms)
        with self._lock:
            if state.blocked_until_ms > now_ms:
                raise self._blocked_error(state, now_ms)
            window = int(now_ms // _WINDOW_MS)
            if window != state.window:
                state.window, state.used, state.crossed = window, 0, 0
            budget = state.limit * self.budget_fraction
            if weight and state.used + weight > budget:
                wait_s = ((window + 1) * _WINDOW_MS - now_ms) / 1000
                if wait_s > self.max_wait_s:
                    raise KlineoError(
                        ErrorCategory.RATE_LIMIT,
                        "Binance request budget for this minute is used up.", advice=RETRY_SHORTLY,
                        retry_after=math.ceil(wait_s),
                    )
            else:
                state.used += weight
                return
        # Outside the lock: sleep into the next window, then reserve there.
        self._sleep(wait_s)
        with self._lock:
            state.window, state.used, state.crossed = window + 1, weight, 0

    # ------------------------------------------------------------------ after a call
    def observe(
        self, host: str, market: Market, used_weight: int | None, now_ms: float | None = None
    ) -> None:
        """Reconcile with the ``X-MBX-USED-WEIGHT-1M`` a response carried; share threshold crossings."""
        if used_weight is None:
            return
        if now_ms is None:
            now_ms = self._clock() * 1000
        state = self._state(host, market)
        window = int(now_ms // _WINDOW_MS)
        with self._lock:
            if window != state.window:
                state.window, state.crossed = window, 0
            state.used = used_weight
            crossed = sum(1 for t in self.thresholds if used_weight >= t * state.limit)
            report = crossed > state.crossed
            if report:
                state.crossed = crossed
        if report:
            self.store.save_usage(host, window, used_weight)

    def block(
        self, host: str, market: Market, until_ms: float, status: int, now_ms: float | None = None
    ) -> None:
        """Remember (and share) that no call may go to ``host`` before ``until_ms`` (418 ban or 429)."""
        state = self._state(host, market)
        until_ms = int(until_ms)
        with self._lock:
            if until_ms <= state.blocked_until_ms:
                return
            state.blocked_until_ms, state.blocked_status = until_ms, status
        self.store.save_block(host, until_ms, status)

    def blocked_until_ms(self, host: str) -> int:
        """The end (epoch ms) of the block known for ``host``, 0 when none."""
        state = self._hosts.get(host)
        return state.blocked_until_ms if state else 0

    def spare_weight(self, host: str, market: Market, now_ms: float | None = None) -> int:
        """The weight this container may still spend on ``host`` in the current window (its budget share)."""
        if now_ms is None:
            now_ms = self._clock() * 1000
        state = self._state(host, market)
        # What other containers shared (read on this container's first look at the host, and while usage
        # is elevated, as before a call): a cold container must not take the IP as unused.
        self._maybe_refresh(host, state, now_ms)
        used = state.used if state.window == int(now_ms // _WINDOW_MS) else 0
        if state.blocked_until_ms > now_ms:
            return 0
        return max(0, int(state.limit * self.budget_fraction) - used)

    def used_weight(self, host: str) -> int:
        """The used weight this container knows for ``host`` in the current window."""
        state = self._hosts.get(host)
        return state.used if state else 0

    # ------------------------------------------------------------------ internals
    def _state(self, host: str, market: Market) -> _HostState:
        state = self._hosts.get(host)
        if state is None:
            with self._lock:
                state = self._hosts.setdefault(host, _HostState(DEFAULT_WEIGHT_LIMITS[Market(market)]))
        return state

    def _maybe_refresh(self, host: str, state: _HostState, now_ms: float) -> None:
        elevated = (
            state.blocked_until_ms > now_ms
            or state.crossed > 0
            or (state.window == int(now_ms // _WINDOW_MS) and state.used >= self.thresholds[0] * state.limit)
        )
        max_age = self.refresh_ms if elevated else self.quiet_refresh_ms
        if now_ms - state.last_load_ms < max_age:
            return
        state.last_load_ms = now_ms
        shared = self.store.load(host)
        if shared is None:
            return
        with self._lock:
            if shared.blocked_until_ms > state.blocked_until_ms:
                state.blocked_until_ms, state.blocked_status = shared.blocked_until_ms, shared.blocked_status
            if shared.window > state.window:
                state.window, state.used, state.crossed = shared.window, shared.used, 0
            elif shared.window == state.window and shared.used > state.used:
                state.used = shared.used

    @staticmethod
    def _blocked_error(state: _HostState, now_ms: float) -> KlineoError:
        retry_after = max(1, math.ceil((state.blocked_until_ms - now_ms) / 1000))
        if state.blocked_status == 418:
            return KlineoError(ErrorCategory.IP_BANNED, status=418, retry_after=retry_after)
        return KlineoError(
            ErrorCategory.RATE_LIMIT, status=state.blocked_status or 429, retry_after=retry_after
        )
