"""Per call: what our client adds to a request, and its throughput against peers on loopback.

Part 1, micro-benchmark without network: the same ``requests.Session`` has a transport adapter
that answers at once with a canned Binance response (JSON body, X-MBX-USED-WEIGHT-1M header), so
everything above the socket is real. We time, per call:
  - raw: a prepared GET with a prebuilt signed URL sent through that session, JSON parsed (the floor);
  - ours: ``BinanceClient.signed("GET", "/api/v3/account", {}, creds)`` through the same session
    (query build, server-time timestamp, HMAC signature, rate-limit bookkeeping, header parsing,
    JSON parsing, metrics and logging as in Lambda);
  - ours, error path: the adapter answers 400 -1102, so classification and the failure tally run too.
  "Added" = ours - raw, paired: the median over rounds of each round's difference (the batches of a
  round run back to back, so a load spike on the shared machine lifts both). Targets: <= 0.2 ms on
  a 200, <= 0.1 ms on an error (issue 16 item 4: the client's metrics and its "binance call failed"
  warning are tallied per call; the invocation's flush writes one line per distinct failure, timed
  apart as "flush", paid once per invocation).

Part 2, throughput over loopback against the Binance simulator (its own process, weight limits
raised so nothing throttles): N sequential signed calls of the same endpoint per client, after a
warm-up, in interleaved rounds (median of rounds): our client; a bare requests.Session with the
HMAC signing written inline; python-binance; the official SDK; ccxt (its client-side throttle
off). Target: ours >= 0.9x bare, and ahead of every peer.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

from bench.report import REPO_ROOT, Report, bench_environment, demo_keys, median
from bench.stack import quiet_stdout

__all__ = ["MicroResult", "main", "micro", "simulator_process", "throughput"]

ADDED_TARGET_US = 200.0
ERROR_ADDED_TARGET_US = 100.0
THROUGHPUT_RATIO_TARGET = 0.9

# A simulator demo account (local/demo-accounts.json): fake keys, never valid on Binance.
DEMO_API_KEY, DEMO_SECRET = demo_keys("futures-full")
RECV_WINDOW_MS = 10000
HUGE_LIMIT = 1_000_000_000

ENDPOINTS = {"spot": "/api/v3/account", "futures": "/fapi/v3/account"}

# A realistic spot /api/v3/account answer (facts §3) for the canned transport.
_ACCOUNT_BODY = json.dumps(
    {
        "makerCommission": 15,
        "takerCommission": 15,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": "0.00150000",
            "taker": "0.00150000",
            "buyer": "0.00000000",
            "seller": "0.00000000",
        },
        "canTrade": True,
        "canWithdraw": False,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": 123456789,
        "accountType": "SPOT",
        "balances": [
            {"asset": a, "free": "1.00000000", "locked": "0.00000000"} for a in ("BTC", "ETH", "USDT", "BNB")
        ],
        "permissions": ["SPOT"],
        "uid": 354937868,
    }
).encode()
_ERROR_BODY = (
    b'{"code":-1102,"msg":"Mandatory parameter \'symbol\' was not sent, was empty/null, or malformed."}'
)


# ----- part 1: without network ------------------------------------------------------------------
def _canned_session(status: int, body: bytes) -> Any:
    """A requests.Session whose http:// transport answers every request at once with (status, body)."""
    import requests
    from requests.adapters import BaseAdapter
    from requests.structures import CaseInsensitiveDict

    class CannedAdapter(BaseAdapter):
        def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
            response = requests.Response()
            if "/time" in request.url:  # server-time sync, once per client
                response.status_code, content = 200, b'{"serverTime":%d}' % int(time.time() * 1000)
            else:
                response.status_code, content = status, body
            response.headers = CaseInsensitiveDict(
                {
                    "Content-Type": "application/json;charset=UTF-8",
                    "Content-Length": str(len(content)),
                    "X-MBX-USED-WEIGHT-1M": "20",
                    "X-MBX-USED-WEIGHT": "20",
                }
            )
            response._content = content
            response.encoding = "utf-8"
            response.url = request.url
            response.request = request
            response.reason = "OK" if response.status_code == 200 else "Bad Request"
            return response

        def close(self):
            return None

    session = requests.Session()
    session.trust_env = False
    session.mount("http://", CannedAdapter())
    return session


# Part 1's clock: the wall clock, or this process's CPU time (``--clock cpu``), which a machine shared
# with other work inflates far less (waiting for a core is not counted).
_CLOCK: list[Callable[[], float]] = [time.perf_counter]


def _time_batches(fns: dict[str, Callable[[], Any]], n: int, batches: int) -> dict[str, list[float]]:
    """Per name: the mean µs per call of each batch. Batches are interleaved round-robin (one batch of
    each function per round), so a change of the machine's load hits every path of a round alike."""
    results: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(batches):
        for name, fn in fns.items():
            start = _CLOCK[0]()
            for _ in range(n):
                fn()
            results[name].append((_CLOCK[0]() - start) * 1e6 / n)
    return results


def _added(batches: dict[str, list[float]], name: str) -> float:
    """What ``name`` adds over ``raw``: the median over rounds of the round's difference (paired).

    Paired, because a load spike on the shared machine lifts every batch of its round: the
    difference of two separate medians could take one path's slow round and the other's fast one.
    """
    return median([ours - raw for ours, raw in zip(batches[name], batches["raw"], strict=True)])


class MicroResult(dict):
    """µs per call: raw, ours, ours_error, bare_signed; added = ours - raw."""


def micro(n: int = 5000, batches: int = 5, profile_over_us: float | None = None) -> MicroResult:
    """Per-call µs of the raw floor, our signed call (ok and error path) and an inline-signed bare call."""
    import requests
    from klineo.binance import BinanceClient, Credentials, ErrorCategory, KeyType, KlineoError, Market
    from klineo.binance import Environment as Env
    from klineo.binance.ratelimit import RateLimiter

    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Klineo")
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "klineo")
    base = "http://binance.bench.invalid"
    creds = Credentials(DEMO_API_KEY, DEMO_SECRET, KeyType.HMAC)
    ok_session = _canned_session(200, _ACCOUNT_BODY)
    err_session = _canned_session(400, _ERROR_BODY)

    def client_for(session: Any) -> Any:
        # Server time is synced on the first call (warm-up) and then reused, as in a warm container.
        return BinanceClient(
            Market.SPOT,
            Env.PRODUCTION,
            base_url=base,
            session=session,
            rate_limiter=RateLimiter(),
            recv_window_ms=RECV_WINDOW_MS,
        )

    ours_client = client_for(ok_session)
    error_client = client_for(err_session)
    secret = DEMO_SECRET.encode()
    headers = {"X-MBX-APIKEY": DEMO_API_KEY}
    query = f"recvWindow={RECV_WINDOW_MS}&timestamp={int(time.time() * 1000)}"
    query_signature = hmac.new(secret, query.encode(), hashlib.sha256).hexdigest()
    prebuilt = f"{base}/api/v3/account?{query}&signature={query_signature}"

    def raw() -> Any:
        request = requests.PreparedRequest()
        request.method, request.url, request.headers, request.body = "GET", prebuilt, dict(headers), None
        response = ok_session.send(request, timeout=(3.05, 10.0), allow_redirects=False)
        return json.loads(response.content)

    def bare_signed() -> Any:
        q = f"recvWindow={RECV_WINDOW_MS}&timestamp={int(time.time() * 1000)}"
        sig = hmac.new(secret, q.encode(), hashlib.sha256).hexdigest()
        response = ok_session.get(
            f"{base}/api/v3/account?{q}&signature={sig}", headers=headers, timeout=(3.05, 10.0)
        )
        return response.json()

    def ours() -> Any:
        return ours_client.signed("GET", "/api/v3/account", {}, creds)

    def ours_error() -> Any:
        try:
            error_client.signed("GET", "/api/v3/account", {}, creds)
        except KlineoError as error:
            if error.category is not ErrorCategory.INVALID_REQUEST:
                raise
            return error
        raise AssertionError("the canned 400 -1102 answer did not raise")

    from klineo.observability import logger, metrics

    with quiet_stdout():
        assert ours()["accountType"] == "SPOT" and raw()["uid"] == bare_signed()["uid"]
        ours_error()
        warm = max(50, n // 10)
        for fn in (raw, bare_signed, ours, ours_error):
            for _ in range(warm):
                fn()
        timed = _time_batches(
            {"raw": raw, "bare_signed": bare_signed, "ours": ours, "ours_error": ours_error}, n, batches
        )
        result = MicroResult({name: median(values) for name, values in timed.items()})
        result["added_ok"], result["added_error"] = _added(timed, "ours"), _added(timed, "ours_error")
        result["flush"] = _flush_cost(ours_error, batches)
        # The same client with its log lines and metrics switched off: the client's own work alone.
        namespace, level = metrics.provider.namespace, logger.level
        metrics.provider.namespace = None
        logger.setLevel("ERROR")
        try:
            # Timed beside their own raw batches; shown as the first raw plus their own added cost.
            quiet = _time_batches({"raw": raw, "ours": ours, "ours_error": ours_error}, n, batches)
            result["raw_quiet"] = median(quiet["raw"])
            result["added_quiet"] = _added(quiet, "ours")
            result["added_error_quiet"] = _added(quiet, "ours_error")
        finally:
            metrics.provider.namespace = namespace
            logger.setLevel(level)
            metrics.clear_metrics()
    result["ours_quiet"] = result["raw"] + result["added_quiet"]
    result["ours_error_quiet"] = result["raw"] + result["added_error_quiet"]
    result["added"] = result["added_ok"]
    if profile_over_us is not None:
        for name, fn, added in (
            ("ok", ours, result["added_ok"]),
            ("error", ours_error, result["added_error"]),
        ):
            if added > profile_over_us:
                with quiet_stdout():
                    result[f"profile_{name}"] = self_time_by_file(fn, n)
    return result


class _DiscardMetrics:
    """A metrics sink that keeps nothing, so repeated flushes do not pile values into Powertools' set."""

    def add_metric(self, name: str, unit: str, value: float) -> None:
        """Drop the value."""


def _flush_cost(fail: Callable[[], Any], batches: int, n: int = 200) -> float:
    """µs of one invocation end's tally flush holding one failure kind (its one warning line written)."""
    from klineo.observability import tally

    sink, results = _DiscardMetrics(), []
    for _ in range(batches):
        spent = 0.0
        for _ in range(n):
            fail()
            start = _CLOCK[0]()
            tally.drain(sink)
            spent += _CLOCK[0]() - start
        results.append(spent * 1e6 / n)
    return median(results)


def self_time_by_file(fn: Callable[[], Any], n: int, top: int = 8) -> list[tuple[str, float]]:
    """cProfile over n calls of fn: (source file, share of self time in %), largest first."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        fn()
    profiler.disable()
    totals: dict[str, float] = {}
    for (filename, _, function), (_, _, own, _, _) in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        marker = next((m for m in ("site-packages/", "python/klineo/", "lib/python3") if m in filename), None)
        if marker == "python/klineo/":
            where = "klineo/" + filename.split(marker, 1)[1]
        elif marker == "lib/python3":
            where = "stdlib " + "/".join(filename.split(marker, 1)[1].split("/")[1:3])
        elif marker:
            where = "/".join(filename.split(marker, 1)[1].split("/")[:3])
        else:
            where = filename if filename != "~" else f"builtin {function}"
        totals[where] = totals.get(where, 0.0) + own
    whole = sum(totals.values()) or 1.0
    return [(where, 100.0 * own / whole) for where, own in sorted(totals.items(), key=lambda i: -i[1])[:top]]


# ----- part 2: loopback ----------------------------------------------------------------------------
@contextlib.contextmanager
def simulator_process(weight_limit: int = HUGE_LIMIT, startup_timeout_s: float = 30.0) -> Iterator[str]:
    """The Binance simulator in its own process on 127.0.0.1 (free port); yields its base URL."""
    argv = [
        sys.executable,
        "-m",
        "local.binance_sim",
        "--port",
        "0",
        "--spot-weight-limit",
        str(weight_limit),
        "--futures-weight-limit",
        str(weight_limit),
    ]
    process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        argv,
        cwd=REPO_ROOT,
        env=bench_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + startup_timeout_s
        url = None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
            if match:
                url = match.group(1)
                break
        if url is None:
            raise RuntimeError("the Binance simulator did not start")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def _ours(url: str, market: str) -> Callable[[], Any]:
    from klineo.binance import BinanceClient, Credentials, Environment, KeyType, Market
    from klineo.binance.ratelimit import RateLimiter

    client = BinanceClient(
        Market(market),
        Environment.PRODUCTION,
        base_url=url,
        rate_limiter=RateLimiter(),
        recv_window_ms=RECV_WINDOW_MS,
    )
    creds = Credentials(DEMO_API_KEY, DEMO_SECRET, KeyType.HMAC)
    path = ENDPOINTS[market]
    return lambda: client.signed("GET", path, {}, creds)


def _bare(url: str, market: str, trust_env: bool = True) -> Callable[[], Any]:
    import requests

    session = requests.Session()
    session.trust_env = trust_env
    secret = DEMO_SECRET.encode()
    headers = {"X-MBX-APIKEY": DEMO_API_KEY}
    endpoint = url + ENDPOINTS[market]

    def call() -> Any:
        query = f"recvWindow={RECV_WINDOW_MS}&timestamp={int(time.time() * 1000)}"
        sig = hmac.new(secret, query.encode(), hashlib.sha256).hexdigest()
        response = session.get(f"{endpoint}?{query}&signature={sig}", headers=headers, timeout=(3.05, 10.0))
        if response.status_code != 200:
            raise RuntimeError(f"bare call answered {response.status_code}")
        return response.json()

    return call


def _python_binance(url: str, market: str) -> Callable[[], Any]:
    from binance.client import Client

    client = Client(DEMO_API_KEY, DEMO_SECRET, ping=False)
    client.API_URL = url + "/api"
    client.FUTURES_URL = url + "/fapi"
    if market == "spot":
        return lambda: client.get_account(recvWindow=RECV_WINDOW_MS)
    return lambda: client.futures_account(version=3, recvWindow=RECV_WINDOW_MS)


def _official_sdk(url: str, market: str) -> Callable[[], Any]:
    if market == "spot":
        from binance_sdk_spot.spot import ConfigurationRestAPI, Spot

        rest = Spot(
            config_rest_api=ConfigurationRestAPI(
                api_key=DEMO_API_KEY, api_secret=DEMO_SECRET, base_path=url, timeout=10000, retries=0
            )
        ).rest_api
        # .data() is how the SDK hands the answer over (a typed model): part of its call.
        return lambda: rest.get_account(recv_window=RECV_WINDOW_MS).data()
    from binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures import (
        ConfigurationRestAPI,
        DerivativesTradingUsdsFutures,
    )

    rest = DerivativesTradingUsdsFutures(
        config_rest_api=ConfigurationRestAPI(
            api_key=DEMO_API_KEY, api_secret=DEMO_SECRET, base_path=url, timeout=10000, retries=0
        )
    ).rest_api
    return lambda: rest.account_information_v3(recv_window=RECV_WINDOW_MS).data()


def _ccxt(url: str, market: str) -> Callable[[], Any]:
    import ccxt

    # enableRateLimit off: ccxt otherwise sleeps between calls on purpose, which is not what is measured.
    exchange = ccxt.binance(
        {
            "apiKey": DEMO_API_KEY,
            "secret": DEMO_SECRET,
            "enableRateLimit": False,
            "options": {"recvWindow": RECV_WINDOW_MS},
        }
    )
    hosts = ("https://api.binance.com", "https://fapi.binance.com")
    api = exchange.urls["api"]
    for name, value in list(api.items()):
        if isinstance(value, str):
            for host in hosts:
                if value.startswith(host):
                    api[name] = url + value[len(host) :]
    if market == "spot":
        return lambda: exchange.private_get_account()
    return lambda: exchange.fapiprivatev3_get_account()


PEERS: dict[str, Callable[[str, str], Callable[[], Any]]] = {
    "klineo BinanceClient": _ours,
    "bare requests.Session": _bare,
    # Context, not judged: the same bare session without per-request environment lookups (proxies, .netrc).
    "bare, trust_env=False": lambda url, market: _bare(url, market, trust_env=False),
    "python-binance": _python_binance,
    "binance-sdk (official)": _official_sdk,
    "ccxt": _ccxt,
}


def throughput(
    url: str,
    market: str = "spot",
    calls: int = 300,
    rounds: int = 5,
    warmup: int = 20,
    clients: dict[str, Callable[[str, str], Callable[[], Any]]] | None = None,
) -> dict[str, dict]:
    """Calls per second of each client against the simulator at `url`: median over interleaved rounds."""
    from klineo.binance import ratelimit

    clients = clients or PEERS
    made: dict[str, Callable[[], Any]] = {}
    results: dict[str, dict] = {}
    # Our limiter keeps its code path but gets the simulator's raised budget, so it never throttles.
    with (
        mock.patch.dict(
            ratelimit.DEFAULT_WEIGHT_LIMITS, {k: HUGE_LIMIT for k in ratelimit.DEFAULT_WEIGHT_LIMITS}
        ),
        quiet_stdout(),
    ):
        for name, factory in clients.items():
            try:
                call = factory(url, market)
                for _ in range(warmup):
                    call()
                made[name] = call
                results[name] = {"per_round": []}
            except Exception as error:  # noqa: BLE001 - a peer that cannot run is reported, not fatal
                results[name] = {"error": f"{type(error).__name__}: {str(error)[:160]}"}
        names = list(made)
        for round_number in range(rounds):
            order = names[round_number % len(names) :] + names[: round_number % len(names)] if names else []
            for name in order:
                call = made[name]
                start = time.perf_counter()
                try:
                    for _ in range(calls):
                        call()
                except Exception as error:  # noqa: BLE001
                    results[name]["error"] = f"{type(error).__name__}: {str(error)[:160]}"
                    made.pop(name)
                    names.remove(name)
                    break
                results[name]["per_round"].append(calls / (time.perf_counter() - start))
    for result in results.values():
        rates = result.get("per_round") or []
        result["calls_per_s"] = median(rates) if rates else None
    return results


# ----- report --------------------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in (
        "requests",
        "python-binance",
        "binance-sdk-spot",
        "binance-sdk-derivatives-trading-usds-futures",
        "ccxt",
    ):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def run(report: Report, n: int, batches: int, calls: int, rounds: int, markets: list[str]) -> None:
    """Both parts, printed into `report`."""
    report.line("-- part 1: per-call cost without network (µs per call, median of batches)")
    try:
        result = micro(n=n, batches=batches, profile_over_us=ERROR_ADDED_TARGET_US * 0.8)
    except ImportError as error:
        report.target(
            "added by signing + bookkeeping + classification",
            f"≤ {ADDED_TARGET_US:.0f} µs",
            "not measured",
            None,
            f"klineo.binance not importable: {error}",
        )
    else:
        report.table(
            ["path", "µs/call"],
            [
                ["raw: prebuilt signed URL through the session, JSON parsed", f"{result['raw']:.1f}"],
                ["bare: inline HMAC + Session.get + .json()", f"{result['bare_signed']:.1f}"],
                ["ours: BinanceClient.signed, 200", f"{result['ours']:.1f}"],
                ["ours: BinanceClient.signed, 400 -1102 (classified, tallied)",
                 f"{result['ours_error']:.1f}"],
                ["flush at the invocation's end: one failure kind, its one line", f"{result['flush']:.1f}"],
                ["ours, log lines and metrics off: 200", f"{result['ours_quiet']:.1f}"],
                ["ours, log lines and metrics off: 400 -1102", f"{result['ours_error_quiet']:.1f}"],
            ],
        )
        report.figure("micro", dict(result))
        for name in ("ok", "error"):
            if f"profile_{name}" in result:
                shares = ", ".join(f"{where} {share:.0f}%" for where, share in result[f"profile_{name}"])
                report.line(f"   where the {name} path spends its time (cProfile self time): {shares}")
        report.target(
            "added by our client on a 200 (ours - raw), as in Lambda",
            f"≤ {ADDED_TARGET_US:.0f} µs",
            f"{result['added_ok']:.1f} µs",
            result["added_ok"] <= ADDED_TARGET_US,
            f"{result['added_quiet']:.1f} µs without log lines and metrics",
        )
        report.target(
            "added by our client on an error (ours - raw), as in Lambda",
            f"≤ {ERROR_ADDED_TARGET_US:.0f} µs",
            f"{result['added_error']:.1f} µs",
            result["added_error"] <= ERROR_ADDED_TARGET_US,
            f"{result['added_error_quiet']:.1f} µs without log lines and metrics; plus "
            f"{result['flush']:.1f} µs once per invocation for the failure line",
        )

    report.line(
        f"-- part 2: loopback throughput, {calls} sequential signed calls x {rounds} rounds per client"
    )
    report.line(f"   versions: {', '.join(f'{k} {v}' for k, v in _versions().items())}")
    with simulator_process() as url:
        for market in markets:
            results = throughput(url, market=market, calls=calls, rounds=rounds)
            report.figure(f"throughput_{market}", results)
            bare = results.get("bare requests.Session", {}).get("calls_per_s")
            ours = results.get("klineo BinanceClient", {}).get("calls_per_s")
            rows = []
            for name, result in results.items():
                rate = result.get("calls_per_s")
                if rate is None:
                    rows.append([name, "-", "-", f"failed: {result.get('error', 'no result')}"])
                    continue
                ratio = f"{rate / bare:.2f}x" if bare else "-"
                rows.append([name, f"{rate:8.0f}", ratio, f"{1000.0 / rate:.3f} ms/call"])
            report.line(
                f"   GET {ENDPOINTS[market]} ({market}), calls/s median of rounds; ratio to bare requests"
            )
            report.table(["client", "calls/s", "vs bare", ""], rows)
            if ours is None or bare is None:
                report.target(
                    f"{market}: ours vs bare requests",
                    f"≥ {THROUGHPUT_RATIO_TARGET}x",
                    "not measured",
                    None,
                    results.get("klineo BinanceClient", {}).get("error", ""),
                )
                continue
            tuned = results.get("bare, trust_env=False", {}).get("calls_per_s")
            report.target(
                f"{market}: ours vs bare requests",
                f"≥ {THROUGHPUT_RATIO_TARGET}x",
                f"{ours / bare:.2f}x ({ours:.0f} vs {bare:.0f} calls/s)",
                ours / bare >= THROUGHPUT_RATIO_TARGET,
                f"{ours / tuned:.2f}x a bare session with trust_env=False" if tuned else "",
            )
            peers = {
                k: v["calls_per_s"]
                for k, v in results.items()
                if k not in ("klineo BinanceClient", "bare requests.Session", "bare, trust_env=False")
                and v.get("calls_per_s")
            }
            failed = [k for k, v in results.items() if v.get("calls_per_s") is None]
            if peers:
                best = max(peers, key=peers.get)
                report.target(
                    f"{market}: ours vs best peer",
                    "ahead of python-binance, the official SDK and ccxt",
                    f"{ours:.0f} vs {best} {peers[best]:.0f} calls/s",
                    ours > peers[best] if not failed else (None if ours > peers[best] else False),
                    f"peers that could not run: {', '.join(failed)}" if failed else "",
                )


def main(argv: list[str] | None = None) -> int:
    """CLI: python -m bench.per_call [--n N] [--calls N] [--rounds N] [--market M] [--json PATH]."""
    parser = argparse.ArgumentParser(prog="python -m bench.per_call", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="micro-benchmark calls per batch")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="part 1's clock: wall, or this process's CPU time (for a shared machine)")
    parser.add_argument("--calls", type=int, default=300, help="loopback calls per client per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--market",
        action="append",
        choices=["spot", "futures"],
        help="endpoint family for part 2 (repeatable; default spot and futures)",
    )
    parser.add_argument("--json", help="also write the results as JSON to this path")
    args = parser.parse_args(argv)
    shown = list(argv if argv is not None else sys.argv[1:])
    if "--json" in shown:
        index = shown.index("--json")
        del shown[index : index + 2]
    report = Report(
        "per_call",
        "our client's per-call overhead without network, and loopback throughput "
        "against a bare requests.Session and peer clients",
        module="bench.per_call",
        argv=shown,
    )
    _CLOCK[0] = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.clock == "cpu":
        report.line("   part 1 clock: this process's CPU time (user + system), not elapsed time")
    run(report, args.n, args.batches, args.calls, args.rounds, args.market or ["spot", "futures"])
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
