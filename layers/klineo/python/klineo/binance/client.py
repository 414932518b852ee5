"""The one Binance HTTP client: server-time-synced signing, weight budget, retries and error mapping.

One ``send`` path serves public and signed calls. A signed call's query is percent-encoded once,
``recvWindow`` and a ``timestamp`` taken from Binance server time (offset per client = per base
URL, synced on first use and when older than ``time_sync_max_age_s``) are appended, the string is
signed and sent byte for byte as signed in a prepared URL (requests never re-encodes it).

Retry policy (one place, every retry with a fresh timestamp and signature):
- 429 / -1003: wait ``Retry-After`` (else 1 s, 2 s, …) and retry, at most ``max_retries`` times;
  a Retry-After longer than ``max_retry_wait_s`` fails fast with ``rate_limit``.
- 418 (or a -1003 "banned until"): never retried; the ban end is remembered (and shared through
  the rate-limit store) so no call goes out before it passes.
- -1021 / -5028: resync server time, then retry once (this retry is extra to ``max_retries``).
- Connect errors (nothing reached Binance): retried for every method.
- Inside a ``call_deadline``, no POST is signed once it has passed, a retry's neither: it fails with
  ``upstream_unavailable`` (retryable) saying it was not sent for lack of time, nothing sent (so no POST of a
  call can land after deadline + recvWindow), counted held back like a call our weight budget holds, never
  as a Binance error: Binance refused nothing.
- Read timeouts, lost connections, 5xx, 408, -1000, -1007: retried for GET only. For any other
  method they raise ``unknown_outcome`` and the request is never re-sent; the order service
  settles it by querying the order by ``origClientOrderId``.

Nothing here logs or raises a secret, a signature, a query string or a raw Binance body: logs carry
method, path, status, code, category and weight only, and transport exceptions are replaced (not
chained) because their text holds the signed URL.

``requests`` is imported on first use, not at import time, so that importing ``klineo.binance``
stays cheap for cold starts. Calls are counted and logged through ``klineo.telemetry`` (the
standard library only), never Powertools: in a function, the handler's ``klineo.observability``
writes them; the client alone loads neither Powertools nor the X-Ray SDK.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

from klineo.binance.codes import Classification, classify_detail
from klineo.binance.credentials import Credentials
from klineo.binance.enums import Environment, Market
from klineo.binance.environments import PROXY_ENV, URL_ENV, default_recv_window_ms, https_proxy
from klineo.binance.environments import base_url as resolve_base_url
from klineo.binance.ratelimit import (
    DEFAULT_BAN_S,
    DEFAULT_WEIGHT_LIMITS,
    TRADING_RESERVE,
    RateLimiter,
    RateLimitStore,
    endpoint_weight,
)
from klineo.binance.signing import encode_params, signature
from klineo.errors import RETRY, RETRY_SHORTLY, ErrorCategory, KlineoError
from klineo.telemetry import child_logger, tally

if TYPE_CHECKING:
    import requests

__all__ = [
    "BinanceClient", "call_deadline", "call_time_left", "clear_client_cache", "default_rate_limiter",
    "get_client", "invocation_ends", "posts_signed_by", "share_rate_limits_through", "weight_meter",
]

MAX_RECV_WINDOW_MS = 60000
_TIME_PATHS = {Market.SPOT: "/api/v3/time", Market.FUTURES: "/fapi/v1/time"}
_WRITE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})
# -1008 "Request throttled by system-level protection" and -4117 "stop order is triggering": refused.
_DEFINITE_FAILURE_CODES = frozenset({-1008, -4117})
# Retry-After given to a rate_limit answer that came without one (Binance's firewall 403): unverified
# value, long enough that a client which waits it does not hit the same block again at once.
FIREWALL_RETRY_AFTER_S = 60.0
_BAN_UNTIL = re.compile(r"until (\d{12,13})")
_USER_AGENT = "klineo-binance/1.0"
_USAGE_PREFIXES = ("x-mbx-used-weight", "x-mbx-order-count", "x-sapi-used")


@cache
def _http() -> tuple[Any, tuple[type[BaseException], ...]]:
    """(requests, the urllib3 errors meaning "nothing was sent"), imported on first use.

    requests is not patched for X-Ray: the patch wraps ``Session.request``, and this client sends
    prepared requests through ``Session.send``, so it would record nothing (and only cost a cold
    start the X-Ray SDK's import). A Binance call is the gap between the DynamoDB subsegments of a
    trace; its method, path, status and weight are in the ``binance call`` log line. A subsegment
    per call was measured at 50-70 µs of CPU, more than the client's own per-call overhead.
    """
    import requests
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    return requests, (NewConnectionError, ConnectTimeoutError)


# What every answered call records: its count, the used weight and its share of the limit (gauges).
_CALL_METRICS = {"calls": "BinanceCalls", "used": "BinanceWeightUsed", "percent": "BinanceWeightUsedPercent"}


def _metric(name: str, value: float) -> None:
    """Count ``name`` until the invocation flushes its metrics."""
    tally.count(name, value)


def _definite_failure(status: int, code: int | None, msg: str) -> bool:
    """True when a failed write provably did nothing (facts §11): Binance documents these as failures.

    Everything else a write gets with a 5xx, -1001 (internal error) or an unknown-outcome code may
    have been executed, so it is unknown_outcome and the caller settles it by looking the order up.
    """
    if code in _DEFINITE_FAILURE_CODES:
        return True
    # The documented 503 text decides, whatever code comes with it (the codes are not documented).
    return status == 503 and "service unavailable" in msg.lower()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _error_body(content: bytes) -> tuple[int | None, str]:
    """(code, msg) from a Binance error body; (None, "") for HTML, empty or otherwise odd bodies."""
    if not content or content[:1] != b"{":
        return None, ""
    try:
        data = json.loads(content)
    except ValueError:
        return None, ""
    if not isinstance(data, dict):
        return None, ""
    code, msg = data.get("code"), data.get("msg")
    return (code if isinstance(code, int) and not isinstance(code, bool) else None), (
        msg if isinstance(msg, str) else ""
    )


class _Outcome:
    """Why an attempt failed, decided inside ``except`` and raised outside it (no exception chaining)."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "not_sent" | "maybe_sent" | "config"


class _Request:
    """One call as every attempt sends it: the query encoded once, the headers (API key included) fixed.

    A plain class, not a dataclass: importing ``klineo.binance`` stays free of ``dataclasses``, and
    its repr never shows the headers or credentials.
    """

    __slots__ = ("creds", "headers", "method", "path", "query", "weight")

    def __init__(
        self,
        method: str,
        path: str,
        weight: int,
        query: str,
        headers: dict[str, str],
        creds: Credentials | None,
    ) -> None:
        self.method, self.path, self.weight, self.query = method, path, weight, query
        self.headers, self.creds = headers, creds

    def __repr__(self) -> str:
        return f"_Request({self.method} {self.path})"

    @property
    def is_read(self) -> bool:
        """Only a GET may be re-sent after an answer that may have been processed."""
        return self.method == "GET"


# Wall-clock (time.time) instant after which no call of this thread/task may still wait or send:
# set by ``call_deadline`` around an order-sending route, it caps timeouts and retry waits.
_DEADLINE: ContextVar[float | None] = ContextVar("klineo_binance_deadline", default=None)
# A request never gets a timeout shorter than this, even past the deadline (it would fail at once).
_MIN_TIMEOUT_S = 0.1
# A signed POST (an order, a stop) is never signed once the ``call_deadline`` has passed, a retry's
# neither (after a 429's Retry-After, a time resync, a connect error): a caller that records the deadline
# with its attempt knows no POST of it can land later than deadline + recvWindow (Binance refuses an older
# timestamp), and a resend of that attempt counts its wait from there (``klineo.services.protective``).
_NOT_SIGNED_AFTER_DEADLINE = ("Not sent: this request ran out of time before the order was signed; nothing "
                              "reached Binance.")


@contextmanager
def _holding(variable: ContextVar[Any], value: Any) -> Iterator[None]:
    """``variable`` set to ``value`` for this thread/task within the block, as it was after it."""
    token = variable.set(value)
    try:
        yield
    finally:
        variable.reset(token)


def call_deadline(at: float | None) -> AbstractContextManager[None]:
    """Within the block, every call's connect/read timeouts and retry waits end by ``at`` (epoch s)."""
    return _holding(_DEADLINE, at)


def call_time_left() -> float | None:
    """Seconds left before the ``call_deadline`` in force (negative once passed); None without one."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.time()


# Wall-clock (epoch s) end of the invocation running this thread/task's calls, set by ``invocation_ends``
# around work that runs under no ``call_deadline`` (the strategy worker's turns): Lambda stops the invocation
# then, so nothing of it is signed later, though the client refuses nothing for it.
_INVOCATION_END: ContextVar[float | None] = ContextVar("klineo_binance_invocation_end", default=None)


def invocation_ends(at: float) -> AbstractContextManager[None]:
    """Within the block, calls belong to an invocation that Lambda stops at ``at`` (epoch s)."""
    return _holding(_INVOCATION_END, at)


def posts_signed_by() -> float | None:
    """The latest instant (epoch s) a POST of a call made now can be signed: the ``call_deadline`` in force
    (the client signs none after it), else the end of the invocation making it (``invocation_ends``); None
    when neither is known."""
    deadline = _DEADLINE.get()
    return deadline if deadline is not None else _INVOCATION_END.get()


def _past_deadline() -> bool:
    deadline = _DEADLINE.get()
    return deadline is not None and time.time() >= deadline


# The request weight this thread/task's attempts took from the budget while ``weight_meter`` counts.
_METER: ContextVar[list[int] | None] = ContextVar("klineo_binance_weight_meter", default=None)


@contextmanager
def weight_meter() -> Iterator[Callable[[], int]]:
    """Within the block, count the request weight every attempt of this thread/task takes (its time syncs and
    retries included: each is weight Binance counts); yields a reader of the total so far."""
    spent = [0]
    with _holding(_METER, spent):
        yield lambda: spent[0]


class _Budget:
    """What one call has spent: retries (against ``max_retries``), its one resync, and when it began."""

    __slots__ = ("resynced", "retries", "started")

    def __init__(self, started: float) -> None:
        self.started = started
        self.retries = 0
        self.resynced = False


class _Step(NamedTuple):
    """What an attempt decided: return ``data``, raise ``error``, or retry (after ``delay`` s, or resync)."""

    data: Any = None
    error: KlineoError | None = None
    retry: ErrorCategory | None = None
    delay: float = 0.0
    resync: bool = False
    # Why the call was held back, never sent (our weight budget's 90 % ceiling, the call's deadline): Binance
    # refused nothing. None: the error is Binance's answer or about it.
    held: str | None = None


class BinanceClient:
    """A client for one Binance base URL (spot or USDT-M futures, one environment)."""

    def __init__(
        self,
        market: Market | str,
        environment: Environment | str,
        *,
        base_url: str | None = None,
        session: requests.Session | None = None,
        rate_limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        recv_window_ms: float | None = None,
        max_retries: int = 2,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        time_sync_max_age_s: float = 300,
        max_retry_wait_s: float = 10.0,
        deadline_s: float = 15.0,
    ) -> None:
        self.market = Market(market)
        self.environment = Environment(environment)
        self.base_url = (base_url or resolve_base_url(self.market, self.environment)).rstrip("/")
        self.host = self.base_url.split("://", 1)[-1].split("/", 1)[0]
        if recv_window_ms is None:
            recv_window_ms = default_recv_window_ms()
        if not 0 < recv_window_ms <= MAX_RECV_WINDOW_MS:
            raise ValueError(f"recv_window_ms must be in (0, {MAX_RECV_WINDOW_MS}]")
        if recv_window_ms == int(recv_window_ms):
            self.recv_window = str(int(recv_window_ms))
        elif self.market is Market.SPOT:
            # Spot takes 3 decimals since 2025-08; futures documents integers only (unverified), so round.
            self.recv_window = f"{recv_window_ms:.3f}".rstrip("0").rstrip(".")
        else:
            self.recv_window = str(round(recv_window_ms))
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.max_retries = max_retries
        self.timeout = (connect_timeout, read_timeout)
        self.time_sync_max_age_s = time_sync_max_age_s
        self.max_retry_wait_s = max_retry_wait_s
        self.deadline_s = deadline_s
        self._clock = clock
        self._sleep = sleep
        self._rq, self._never_sent = _http()
        proxy = https_proxy()
        self._session = session if session is not None else _shared_session(self.base_url, proxy)
        self._proxies = dict(self._session.proxies)
        if proxy:
            self._proxies.update({"https": proxy, "http": proxy})
        self._limiter = rate_limiter if rate_limiter is not None else default_rate_limiter()
        self._time_path = _TIME_PATHS[self.market]
        self._offset_ms: float | None = None
        self._synced_at = 0.0
        self._sync_lock = threading.Lock()
        self._headers = {
            "User-Agent": _USER_AGENT,
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
            "Connection": "keep-alive",
        }
        self.usage: dict[str, int] = {}

    @property
    def clock(self) -> Callable[[], float]:
        """The clock (epoch seconds) this client uses; caches keyed on it stay consistent in tests."""
        return self._clock

    @property
    def sleep(self) -> Callable[[float], None]:
        """The sleep this client waits with (retries, the trading reserve's minute); tests inject one."""
        return self._sleep

    def spare_weight(self) -> int:
        """Request weight this container may still spend on this host in the current minute."""
        return self._limiter.spare_weight(self.host, self.market, self._now_ms())

    def leave_trading_reserve(self, weight: int, refusal: str, *, wait_until: float | None = None) -> None:
        """Return once ``weight`` can be spent now and still leave ``TRADING_RESERVE`` of the IP's minute
        weight unspent for trading (orders, closes, strategy ticks); charts and backtests call this
        before each klines request. Until then: wait for the next minute (this client's clock and
        sleep) while that is no later than ``wait_until`` (epoch s; None: never wait), else raise a
        retryable ``rate_limit`` whose reason is ``refusal`` (no advice in it: the advice to retry shortly is
        the error's own), with ``retry_after`` at the next minute."""
        keep = DEFAULT_WEIGHT_LIMITS[self.market] * TRADING_RESERVE
        while self.spare_weight() - weight < keep:
            wait_s = max(1, math.ceil(60 - self._now_ms() / 1000 % 60))
            if wait_until is None or self._clock() + wait_s > wait_until:
                raise KlineoError(ErrorCategory.RATE_LIMIT, refusal, retry_after=wait_s, advice=RETRY_SHORTLY)
            self._sleep(wait_s)

    def __repr__(self) -> str:
        return (
            f"BinanceClient(market={self.market.value!r}, environment={self.environment.value!r}, "
            f"base_url={self.base_url!r})"
        )

    # ------------------------------------------------------------------ public API
    def public(self, method: str, path: str, params: dict[str, Any] | None = None) -> Any:
        """Send an unsigned call and return its parsed JSON."""
        return self._call(method.upper(), path, params, None)

    def signed(self, method: str, path: str, params: dict[str, Any] | None, credentials: Credentials) -> Any:
        """Send a signed call (server-time timestamp, explicit recvWindow) and return its parsed JSON."""
        if not isinstance(credentials, Credentials):
            raise TypeError("credentials must be a klineo.binance.Credentials")
        return self._call(method.upper(), path, params, credentials)

    def sync_time(self) -> float:
        """Fetch Binance server time and store the offset (ms, server minus local); return it."""
        t0 = self._clock()
        data = self._call("GET", self._time_path, None, None)
        t1 = self._clock()
        server_time = data.get("serverTime") if isinstance(data, dict) else None
        if not isinstance(server_time, int) or isinstance(server_time, bool):
            raise KlineoError(
                ErrorCategory.UPSTREAM_UNAVAILABLE, "Binance returned an unreadable server time."
            )
        self._offset_ms = server_time - (t0 + t1) * 500.0
        self._synced_at = t1
        return self._offset_ms

    def server_time_offset_ms(self) -> float:
        """The server-time offset used for signing, synced first when missing or stale."""
        self._ensure_time_sync()
        return self._offset_ms or 0.0

    # ------------------------------------------------------------------ internals
    def _ensure_time_sync(self) -> None:
        if self._offset_ms is not None and self._clock() - self._synced_at < self.time_sync_max_age_s:
            return
        with self._sync_lock:
            if self._offset_ms is None or self._clock() - self._synced_at >= self.time_sync_max_age_s:
                self.sync_time()

    def _now_ms(self) -> float:
        return self._clock() * 1000.0 + (self._offset_ms or 0.0)

    def _call(self, method: str, path: str, params: dict[str, Any] | None, creds: Credentials | None) -> Any:
        """Attempt the call until an attempt says return or raise; retries sleep or resync as it says."""
        request = self._request(method, path, params, creds)
        budget = _Budget(started=self._clock())
        while True:
            step = self._attempt(request, budget)
            if step.error is not None:
                raise self._report(step.error, method, path, request.weight, held=step.held)
            if step.retry is None:
                return step.data
            if step.resync:
                budget.resynced = True
            else:
                budget.retries += 1
            self._log_retry(method, path, step.retry, step.delay)
            if step.resync:
                self.sync_time()
            else:
                self._sleep(step.delay)

    def _request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        creds: Credentials | None,
    ) -> _Request:
        headers = self._headers if creds is None else {**self._headers, "X-MBX-APIKEY": creds.api_key}
        if method in _WRITE_METHODS:
            headers = {**headers, "Content-Length": "0"}
        return _Request(
            method=method,
            path=path,
            weight=endpoint_weight(method, path, params),
            query=encode_params(params),
            headers=headers,
            creds=creds,
        )

    def _url(self, request: _Request) -> str:
        """One attempt's URL: the query as encoded once, then (signed) recvWindow, timestamp, signature."""
        prefix = self.base_url + request.path
        if request.creds is None:
            return f"{prefix}?{request.query}" if request.query else prefix
        stamp = f"recvWindow={self.recv_window}&timestamp={int(self._now_ms())}"
        payload = f"{request.query}&{stamp}" if request.query else stamp
        return f"{prefix}?{payload}&signature={signature(payload, request.creds)}"

    def _attempt(self, request: _Request, budget: _Budget) -> _Step:
        """One attempt (time sync, weight budget, HTTP exchange) and what to do after it."""
        if request.method == "POST" and request.creds is not None and _past_deadline():
            held = KlineoError(ErrorCategory.UPSTREAM_UNAVAILABLE, _NOT_SIGNED_AFTER_DEADLINE, advice=RETRY)
            return _Step(error=held, held="at the call's deadline")
        if request.creds is not None:
            self._ensure_time_sync()
        try:
            self._limiter.acquire(self.host, self.market, request.weight, self._now_ms())
        except KlineoError as err:
            # status None: the budget's ceiling; a block after Binance's 429 / 418 carries that status.
            return _Step(error=err, held="by the weight budget" if err.status is None else None)
        meter = _METER.get()
        if meter is not None:
            meter[0] += request.weight
        response, outcome = self._send(request.method, self._url(request), request.headers)
        if outcome is not None:
            return self._after_transport_failure(outcome, request, budget)
        status = response.status_code
        used = self._read_usage(response)
        self._limiter.observe(self.host, self.market, used, self._now_ms())
        # One tally call per answer (the count and both gauges under one lock): every call pays it.
        tally.count_with_gauges(_CALL_METRICS["calls"], () if used is None else (
            (_CALL_METRICS["used"], used, "Count"),
            (_CALL_METRICS["percent"], 100 * used / DEFAULT_WEIGHT_LIMITS[self.market], "Percent")))
        if 200 <= status < 300:
            return self._after_success(response.content, status, used, request, budget)
        return self._after_error_status(response, request, budget)

    def _backoff(
        self,
        budget: _Budget,
        category: ErrorCategory,
        delay: float | None = None,
        *,
        max_wait: float | None = None,
    ) -> _Step | None:
        """A retry after ``delay`` (default 1 s, 2 s, …) while retries and time remain; else None."""
        delay = float(2**budget.retries) if delay is None else delay
        if (
            budget.retries < self.max_retries
            and (max_wait is None or delay <= max_wait)
            and self._has_time(budget.started, delay)
        ):
            return _Step(retry=category, delay=delay)
        return None

    def _after_transport_failure(self, outcome: _Outcome, request: _Request, budget: _Budget) -> _Step:
        if outcome.kind == "config":
            return _Step(error=KlineoError(ErrorCategory.OTHER, "The Binance connection is misconfigured."))
        if outcome.kind == "not_sent" or request.is_read:
            return self._backoff(budget, ErrorCategory.NETWORK) or _Step(
                error=KlineoError(ErrorCategory.NETWORK)
            )
        return _Step(error=KlineoError(ErrorCategory.UNKNOWN_OUTCOME))

    def _after_success(
        self, content: bytes, status: int, used: int | None, request: _Request, budget: _Budget
    ) -> _Step:
        data, ok = _parse_json(content)
        if ok:
            self._log_ok(request.method, request.path, status, request.weight, used)
            return _Step(data=data)
        if not request.is_read:
            return _Step(error=KlineoError(ErrorCategory.UNKNOWN_OUTCOME, status=status))
        return self._backoff(budget, ErrorCategory.UPSTREAM_UNAVAILABLE) or _Step(
            error=KlineoError(
                ErrorCategory.UPSTREAM_UNAVAILABLE,
                "Binance returned an unreadable answer.",
                status=status,
            )
        )

    def _after_error_status(self, response: Any, request: _Request, budget: _Budget) -> _Step:
        status = response.status_code
        code, msg = _error_body(response.content)
        result: Classification | None = classify_detail(status, code, msg)
        category = result.category
        retry_after = _retry_after(response.headers.get("Retry-After"))
        if category is ErrorCategory.IP_BANNED:
            return self._after_ban(result, status, code, retry_after, msg)
        if status == 429 or code in (-1003, -1015):
            return self._after_rate_limit(result, status, code, retry_after, budget)
        if category is ErrorCategory.TIMESTAMP and request.creds is not None and not budget.resynced:
            return _Step(retry=category, resync=True)
        if category in (ErrorCategory.UNKNOWN_OUTCOME, ErrorCategory.UPSTREAM_UNAVAILABLE) or status >= 500:
            if request.is_read:
                retry = self._backoff(budget, category)
                if retry is not None:
                    return retry
                if category is ErrorCategory.UNKNOWN_OUTCOME:
                    # A read has no outcome to settle: it simply failed.
                    category, result = ErrorCategory.UPSTREAM_UNAVAILABLE, None
            elif not _definite_failure(status, code, msg):
                category, result = ErrorCategory.UNKNOWN_OUTCOME, None
        if category is ErrorCategory.RATE_LIMIT and retry_after is None:
            retry_after = FIREWALL_RETRY_AFTER_S  # the WAF's 403 names no wait: every rate_limit gets one
        return _Step(
            error=KlineoError(
                category,
                result.message if result is not None else None,
                status=status,
                code=code,
                retry_after=retry_after,
                field=result.field if result is not None else None,
                retryable=result.retryable if result is not None else None,
                advice=result.advice if result is not None else None,
            )
        )

    def _after_ban(
        self,
        result: Classification,
        status: int,
        code: int | None,
        retry_after: float | None,
        msg: str,
    ) -> _Step:
        """A 418 ban: remembered (and shared) until it ends, never retried."""
        until_ms = self._ban_until_ms(retry_after, msg)
        self._limiter.block(self.host, self.market, until_ms, 418)
        return _Step(
            error=KlineoError(
                result.category,
                result.message,
                status=status,
                code=code,
                retry_after=max(1, round((until_ms - self._now_ms()) / 1000)),
                advice=result.advice,
            )
        )

    def _after_rate_limit(
        self,
        result: Classification,
        status: int,
        code: int | None,
        retry_after: float | None,
        budget: _Budget,
    ) -> _Step:
        """429 / -1003 / -1015: wait Retry-After (else back off) when it is short enough, else fail fast."""
        delay = retry_after if retry_after is not None else float(2**budget.retries)
        if code != -1015:  # -1015 is the account's order limit, not the IP's weight: keep the host open
            self._limiter.block(self.host, self.market, self._now_ms() + delay * 1000, 429)
        retry = self._backoff(budget, ErrorCategory.RATE_LIMIT, delay, max_wait=self.max_retry_wait_s)
        return retry or _Step(
            error=KlineoError(
                ErrorCategory.RATE_LIMIT,
                result.message,
                status=status,
                code=code,
                retry_after=max(1, round(delay)),
                advice=result.advice,
            )
        )

    def _send(self, method: str, url: str, headers: dict[str, str]) -> tuple[Any, _Outcome | None]:
        """One HTTP exchange: (response, None) or (None, why it failed); never raises a transport error."""
        rq = self._rq
        request = rq.PreparedRequest()
        request.method = method
        request.url = url
        request.headers = headers
        request.body = None
        outcome: _Outcome | None = None
        left = call_time_left()
        timeout = self.timeout if left is None else tuple(
            min(limit, max(left, _MIN_TIMEOUT_S)) for limit in self.timeout)
        try:
            response = self._session.send(
                request, timeout=timeout, allow_redirects=False, proxies=self._proxies, stream=False
            )
        except (rq.exceptions.ConnectTimeout, rq.exceptions.ProxyError):
            outcome = _Outcome("not_sent")
        except (
            rq.exceptions.InvalidURL,
            rq.exceptions.InvalidSchema,
            rq.exceptions.MissingSchema,
            rq.exceptions.InvalidHeader,
        ):
            outcome = _Outcome("config")
        except rq.exceptions.ConnectionError as exc:
            reason = getattr(exc.args[0], "reason", None) if exc.args else None
            outcome = _Outcome("not_sent" if isinstance(reason, self._never_sent) else "maybe_sent")
        except rq.exceptions.RequestException:
            # Read timeouts, broken chunked bodies, decoding errors: the request may have been processed.
            outcome = _Outcome("maybe_sent")
        if outcome is not None:
            return None, outcome
        return response, None

    def _read_usage(self, response: Any) -> int | None:
        """Copy X-MBX-USED-WEIGHT-* / X-MBX-ORDER-COUNT-* into ``usage``; return the 1-minute used weight."""
        usage, used = self.usage, None
        for lowered, value in response.headers.lower_items():  # requests keeps each name lower-cased too
            if lowered.startswith(_USAGE_PREFIXES):
                try:
                    usage[lowered] = int(value)
                except ValueError:
                    continue
                if lowered == "x-mbx-used-weight-1m":
                    used = usage[lowered]
        return used

    def _ban_until_ms(self, retry_after: float | None, msg: str) -> float:
        if retry_after is not None:
            return self._now_ms() + retry_after * 1000
        match = _BAN_UNTIL.search(msg)
        if match:
            return float(match.group(1))
        return self._now_ms() + DEFAULT_BAN_S * 1000

    def _has_time(self, started: float, delay: float) -> bool:
        left = call_time_left()
        within_call = left is None or delay + _MIN_TIMEOUT_S < left
        return within_call and self._clock() - started + delay < self.deadline_s

    def _report(
        self, err: KlineoError, method: str, path: str, weight: int, held: str | None = None,
    ) -> KlineoError:
        """Tally (safely) and count an error about to be raised; return it.

        The "binance call failed" warning is not written per call (a Powertools JSON line costs
        about three times the rest of the error path): the invocation's flush writes one line per
        distinct failure, with its count and first/last time (``klineo.telemetry.Tally``). A call ``held``
        back (our weight budget, the call's deadline) was never sent: counted apart
        (``BinanceCallsHeldBack``), so that ``BinanceErrors`` and ``Binance<Category>`` count only what
        Binance refused or failed.
        """
        if held:
            tally.occurrence(f"binance call held back {held}", {
                "binance_method": method, "binance_path": path, "binance_weight": weight,
            }, binance_used_weight=self._limiter.used_weight(self.host))
            _metric("BinanceCallsHeldBack", 1)
            return err
        tally.occurrence("binance call failed", {
            "binance_method": method, "binance_path": path, "binance_status": err.status,
            "binance_code": err.code, "error_category": err.category.value, "binance_weight": weight,
        }, binance_used_weight=self._limiter.used_weight(self.host))
        _metric("BinanceErrors", 1)
        _metric(err.category.metric_name, 1)
        return err

    def _log_retry(self, method: str, path: str, category: ErrorCategory, delay: float) -> None:
        _log_call("info", "binance call retried", method, path, error_category=category.value,
                  retry_delay_s=delay)

    def _log_ok(self, method: str, path: str, status: int, weight: int, used: int | None) -> None:
        _log_call("debug", "binance call", method, path, binance_status=status, binance_weight=weight,
                  binance_used_weight=used)


_logger = child_logger("binance")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def _log_call(level: str, message: str, method: str, path: str, **fields: Any) -> None:
    """One log line about a Binance call: method and path only, never the query string or signature."""
    if _logger.isEnabledFor(_LEVELS[level]):
        getattr(_logger, level)(message, extra={"binance_method": method, "binance_path": path, **fields})


def _parse_json(content: bytes) -> tuple[Any, bool]:
    try:
        return json.loads(content), True
    except ValueError:
        return None, False


# ---------------------------------------------------------------------- per-container caches
_lock = threading.Lock()
_clients: dict[tuple[Market, Environment, str, str | None], BinanceClient] = {}
_by_raw_settings: dict[tuple[str, str, str | None, str | None], BinanceClient] = {}
_sessions: dict[tuple[str, str | None], Any] = {}
_limiter: RateLimiter | None = None
_store_factory: Callable[[], RateLimitStore | None] | None = None


def _shared_session(base: str, proxy: str | None) -> Any:
    """The container's keep-alive Session for a base URL (env proxies ignored: BINANCE_HTTPS_PROXY rules)."""
    key = (base, proxy)
    session = _sessions.get(key)
    if session is None:
        with _lock:
            session = _sessions.get(key)
            if session is None:
                rq, _ = _http()
                session = rq.Session()
                session.trust_env = False
                # No hidden urllib3 retries: the client decides what may be re-sent.
                adapter = rq.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                if proxy:
                    session.proxies.update({"https": proxy, "http": proxy})
                _sessions[key] = session
    return session


def share_rate_limits_through(factory: Callable[[], RateLimitStore | None] | None) -> None:
    """Install where default limiters keep shared state: ``factory()`` (None: in this container only).

    The composition root calls it (``klineo.services``, with ``klineo.store.rate_limit``), so this
    package never imports the store. The factory runs each time a default limiter is made.
    """
    global _store_factory, _limiter
    with _lock:
        _store_factory = factory
        _limiter = None


def default_rate_limiter() -> RateLimiter:
    """The container's rate limiter: on the installed shared store when it gives one, else in memory."""
    global _limiter
    if _limiter is None:
        with _lock:
            if _limiter is None:
                store = _store_factory() if _store_factory is not None else None
                _limiter = RateLimiter(store) if store is not None else RateLimiter()
    return _limiter


def get_client(market: Market | str, environment: Environment | str) -> BinanceClient:
    """The container's client for a market and environment (one per base URL and proxy, made on first use).

    A turn of the runner asks for its client several times: the same raw settings (the market's URL
    variable and BINANCE_HTTPS_PROXY as they are now) find the client again without resolving them.
    """
    url_env = URL_ENV.get((market, environment))  # type: ignore[call-overload]  # StrEnum: str or enum
    if url_env is not None:
        raw = (market, environment, os.environ.get(url_env), os.environ.get(PROXY_ENV))
        client = _by_raw_settings.get(raw)
        if client is not None:
            return client
    market, environment = Market(market), Environment(environment)
    url = resolve_base_url(market, environment)
    key = (market, environment, url, https_proxy())
    client = _clients.get(key)
    if client is None:
        client = BinanceClient(market, environment, base_url=url)
        _clients[key] = client
    if url_env is not None:
        _by_raw_settings[raw] = client
    return client


def clear_client_cache() -> None:
    """Forget cached clients, sessions and the default rate limiter (tests)."""
    global _limiter
    with _lock:
        for session in _sessions.values():
            session.close()
        _clients.clear()
        _by_raw_settings.clear()
        _sessions.clear()
        _limiter = None
