"""The live turn's own code run warm: how much of its measured CPU is the code, how much its company.

``bench.runner_kinds`` measures the runner's own CPU inside real live turns, where every piece of
our code runs between botocore's and requests' work (about 11 ms and 3 ms of a live turn) and so
runs cold: its instructions and data were pushed out of the core's caches meanwhile. Here the same
turn (a strategy and its batch's context captured from the live phase, as the worker handed them to
``run_strategy``) is played again and again in one thread, back to back, with the AWS calls and the
Binance HTTP exchanges answered at once by in-thread stubs. What is left is our code with its caches
warm: a floor, not a deployment figure (a Lambda container runs the turn with the libraries between).

The same turn replayed COLD (``cold_turns``): the same stubs, but each one first evicts the core's caches
the way the libraries' work does between our pieces in a real turn (``evict_caches``: botocore serialising
the AWS request, a JSON round trip of some 50 KB, 2 MB of memory touched), its time taken out like the
stubs', and once more before each turn. On this project's 2-core machine it lands where the phase does
(1.10 ms against 0.95-1.16 ms in phases of the same code), but moves about 1 % from one run to the next
where the phase moves 5-15 %: a change to the turn can be compared on it (the median of a few sets of
turns before and after), which the phase's figure cannot resolve below about 10 %. The eviction is a
stand-in for the libraries, calibrated on this machine; the verdict stays the phase's.

The stubs answer only this thread (every other thread still reaches the real botocore and HTTP):
DynamoDB writes (``TransactWriteItems``, ``PutItem``, ``UpdateItem``) succeed with an empty answer;
``POST /fapi/v1/order`` answers FILLED with the request's own quantity, side and client order id
(``newOrderRespType=RESULT``); ``GET /fapi/v1/userTrades`` answers one fill of the last order's whole
quantity (the turn books only fills that add up to it). Any other call fails
the measurement (it is then reported as not measured, and the bench goes on), except, in a cold replay,
a read of a container cache that expired meanwhile (``GetItem``, ``BatchGetItem``, ``Query``), which goes to
the real store and is counted (``reads``). The time spent in the stubs is taken out; the ctx's clock stays
at the first play, so that its candle is the latest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import statistics
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["ColdTurns", "WarmTurns", "canned_binance", "cold_turns", "evict_caches", "warm_turns"]

# The DynamoDB operations a live turn may write with; their stubs answer {} (success).
WRITE_OPERATIONS = frozenset({"TransactWriteItems", "PutItem", "UpdateItem"})
# The reads a cold replay lets through to the real store (a container cache that expired during the replay).
READ_OPERATIONS = frozenset({"GetItem", "BatchGetItem", "Query"})
_ORDER_ID = 880_001
# What ``evict_caches`` walks: about as much memory and JSON as botocore's and requests' work between two of
# the turn's pieces touches (calibrated so that the cold replay lands where the live phase does).
_EVICTING_BYTES = bytearray(2 * 1024 * 1024)
_EVICTING_JSON = {f"k{i}": {"a": [i, str(i), {"b": i * 1.5}], "c": "x" * 20} for i in range(800)}


@dataclasses.dataclass(frozen=True)
class WarmTurns:
    """Own CPU of the same live turn played ``turns`` times warm, in ms: median and spread."""

    turns: int
    median_ms: float
    p10_ms: float
    p90_ms: float


def canned_binance(method: str, url: str, filled: str = "0.01") -> tuple[int, Any]:
    """(status, JSON body) Binance would answer a live turn's order or fills read (one fill of ``filled``, the
    order's executed quantity); ValueError otherwise."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    now_ms = int(time.time() * 1000)
    if method == "POST" and parts.path == "/fapi/v1/order":
        quantity = query["quantity"]
        return 200, {
            "orderId": _ORDER_ID, "symbol": query["symbol"], "status": "FILLED",
            "clientOrderId": query["newClientOrderId"], "price": "0", "avgPrice": "100.0",
            "origQty": quantity, "executedQty": quantity, "cumQuote": quantity, "timeInForce": "GTC",
            "type": "MARKET", "reduceOnly": query.get("reduceOnly") == "true", "closePosition": False,
            "side": query["side"], "positionSide": "BOTH", "stopPrice": "0", "workingType": "CONTRACT_PRICE",
            "priceProtect": False, "origType": "MARKET", "updateTime": now_ms,
        }
    if method == "GET" and parts.path == "/fapi/v1/userTrades":
        return 200, [{
            "symbol": query["symbol"], "id": 1, "orderId": _ORDER_ID, "side": "BUY", "price": "100.0",
            "qty": filled, "realizedPnl": "0", "quoteQty": str(Decimal(filled) * 100), "commission": "0.0005",
            "commissionAsset": "USDT", "time": now_ms, "positionSide": "BOTH", "maker": False, "buyer": True,
        }]
    raise ValueError(f"no canned answer for {method} {parts.path}")


@dataclasses.dataclass(frozen=True)
class ColdTurns(WarmTurns):
    """Own CPU of the same live turn played ``turns`` times with the caches evicted around its calls, in ms;
    ``reads``: expired container caches read from the real store meanwhile."""

    reads: int = 0


def evict_caches(client: Any = None, operation: str | None = None,
                 params: dict[str, Any] | None = None) -> None:
    """Push the turn's code and data out of the core's caches, as the libraries' work between its pieces
    does: botocore serialising ``operation`` (when given), a JSON round trip, a walk over 2 MB."""
    if client is not None and operation is not None:
        model = client.meta.service_model.operation_model(operation)
        client._serializer.serialize_to_request(params or {}, model)
    json.loads(json.dumps(_EVICTING_JSON))
    memory = _EVICTING_BYTES
    for index in range(0, len(memory), 64):
        memory[index] ^= 1


class _Stubs:
    """Class-level stand-ins for botocore's API call and requests' send, for one thread only; with ``cold``,
    each evicts the caches first (``evict_caches``) and expired-cache reads go to the real store."""

    def __init__(self, *, cold: bool = False) -> None:
        self.thread = threading.get_ident()
        self.cold = cold
        self.seconds = 0.0  # thread CPU spent inside the stubs, taken out of the turns
        self.filled = "0.01"  # the last order's executed quantity: what its fills add up to
        self.reads = 0  # cold: reads let through to the real store

    def response(self, request: Any) -> Any:
        import requests
        from requests.structures import CaseInsensitiveDict

        started = time.thread_time()
        if self.cold:
            evict_caches()
        status, body = canned_binance(request.method, request.url, self.filled)
        if isinstance(body, dict) and "executedQty" in body:
            self.filled = body["executedQty"]
        response = requests.Response()
        response.status_code, response._content = status, json.dumps(body).encode()
        response.headers = CaseInsensitiveDict(
            {"Content-Type": "application/json", "X-MBX-USED-WEIGHT-1M": "1"}
        )
        response.url, response.request, response.encoding = request.url, request, "utf-8"
        self.seconds += time.thread_time() - started
        return response

    @contextlib.contextmanager
    def installed(self) -> Iterator[_Stubs]:
        import botocore.client
        import requests

        real_send, real_call = requests.Session.send, botocore.client.BaseClient._make_api_call
        stubs = self

        def send(session: Any, request: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != stubs.thread:
                return real_send(session, request, **kwargs)
            return stubs.response(request)

        def api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            if threading.get_ident() != stubs.thread:
                return real_call(client, operation, params)
            started = time.thread_time()
            try:
                if stubs.cold:
                    evict_caches(client, operation, params)
                    if operation in READ_OPERATIONS:
                        stubs.reads += 1
                        return real_call(client, operation, params)
                if operation not in WRITE_OPERATIONS:
                    raise ValueError(f"no canned answer for the AWS call {operation}")
                return {}
            finally:
                stubs.seconds += time.thread_time() - started

        requests.Session.send, botocore.client.BaseClient._make_api_call = send, api_call
        try:
            yield self
        finally:
            requests.Session.send, botocore.client.BaseClient._make_api_call = real_send, real_call


def warm_turns(strategy: Any, ctx: Any, played_at: float, turns: int = 200) -> WarmTurns:
    """Play the captured live turn ``turns`` times with instant stubs; its own CPU, warm.

    ``played_at`` (epoch s) is when the turn was first played: the replays' clock stays there, so
    their candle is still the latest. Raises ValueError when the turn makes a call the stubs cannot
    answer or does not end ``ordered``.
    """
    with _Stubs().installed() as stubs:
        samples = _played(strategy, ctx, played_at, turns, stubs)
    return WarmTurns(turns, *_spread(samples))


def cold_turns(strategy: Any, ctx: Any, played_at: float, turns: int = 150) -> ColdTurns:
    """Play the captured live turn ``turns`` times with the caches evicted before it and inside each stub
    (module docstring); its own CPU, cold. Raises ValueError as ``warm_turns`` does."""
    with _Stubs(cold=True).installed() as stubs:
        samples = _played(strategy, ctx, played_at, turns, stubs)
    return ColdTurns(turns, *_spread(samples), reads=stubs.reads)


def _played(strategy: Any, ctx: Any, played_at: float, turns: int, stubs: _Stubs) -> list[float]:
    """The own CPU (ms) of each of ``turns`` plays of the captured turn under ``stubs`` (cold stubs: the
    caches evicted before each play too), the stubs' time taken out; ValueError unless each is ordered."""
    from klineo.runner.execution import run_strategy

    ctx = dataclasses.replace(ctx, clock=lambda: played_at)
    samples = []
    for _ in range(turns):
        if stubs.cold:
            evict_caches()
        stubs.seconds = 0.0
        started = time.thread_time()
        result = run_strategy(strategy, ctx)
        spent = time.thread_time() - started - stubs.seconds
        if result.outcome != "ordered":
            raise ValueError(f"the replayed turn ended {result.outcome} ({result.detail})")
        samples.append(spent * 1000)
    return samples


def _spread(samples: list[float]) -> tuple[float, float, float]:
    """(median, p10, p90) of ``samples``."""
    ordered = sorted(samples)
    return statistics.median(samples), ordered[len(ordered) // 10], ordered[(9 * len(ordered)) // 10]
