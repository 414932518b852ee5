"""Reliability: a seeded chaos run of futures orders through the real handler, reconciled with the exchange.

Each of --orders requests goes through ``functions.futures_order.app.lambda_handler`` (moto + the
Binance simulator) with its own Idempotency-Key, after arming at most one fault drawn from a
fixed seed: 429, 418, 500 (executed or not), the three 503s, 408 -1007, a lost answer
(``delay_after``: the order executes, the client's read times out), a dropped connection, or a
server clock jump (ahead or behind). Faults hit the order POST, and sometimes the lookup or the
mark-price read instead. A share of the requests is invalid on purpose (below the minimum
quantity: refused before anything is sent) or more than the account's margin can carry (Binance
refuses it).

The caller behaves like the frontend: on a retryable error, and on ``unknown_outcome`` (whose
message says to repeat the request with the same Idempotency-Key), it waits (Retry-After when
given) and repeats the SAME request with the SAME key, for at most --caller-budget-s s per order.

Checked for every response: never a 500, and every error is ``{"error": {"category", ...}}``
with a known category. Then reconciled against the simulator's order book (every order of the
account, open or filled): exactly one exchange order per accepted request (the one answered),
none for a rejected one, none without a request; an order still "unknown" at the end may have
0 or 1 (the caller was told so) and is listed. Tallies are printed.

Timing kept short so the run stays bounded (logic unchanged): the futures service's Binance
client reads with a 1 s timeout (lost answers are 1.5 s delays), recvWindow is 5000 ms, and the
lookups after a lost answer pause 0.05/0.1/0.2/0.4 s instead of 0.25/0.5/1/2 s.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import random
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock

from bench.report import Report
from bench.stack import Stack, local_stack, quiet_stdout, response_body

__all__ = ["FAULT_PLAN", "Outcome", "chaos_run", "main", "reconcile", "run"]

READ_TIMEOUT_S = 1.0
LOST_ANSWER_DELAY_MS = 1500
RECV_WINDOW_MS = "5000"
FAST_LOOKUPS = (0.05, 0.1, 0.2, 0.4)
ORDER_PATH = "/fapi/v1/order"

# (weight, name, fault spec). Spec: kind plus optional method/path/execute/retry_after_s/delay_ms;
# "clock" specs shift the server clock instead of arming a fault.
FAULT_PLAN: list[tuple[int, str, dict[str, Any] | None]] = [
    (34, "none", None),
    (8, "429 on POST", {"kind": "http_429", "method": "POST", "retry_after_s": 1}),
    (4, "418 on POST", {"kind": "http_418", "method": "POST", "retry_after_s": 1}),
    (3, "500 on POST, not executed", {"kind": "http_500", "method": "POST"}),
    (4, "500 on POST, executed", {"kind": "http_500", "method": "POST", "execute": True}),
    (5, "503 unknown on POST (executed)", {"kind": "http_503_unknown", "method": "POST"}),
    (4, "503 unavailable on POST", {"kind": "http_503_unavailable", "method": "POST"}),
    (3, "503 throttled -1008 on POST", {"kind": "http_503_throttled", "method": "POST"}),
    (5, "408 -1007 on POST (executed)", {"kind": "timeout_1007", "method": "POST"}),
    (
        6,
        "lost answer (delay_after)",
        {"kind": "delay_after", "method": "POST", "delay_ms": LOST_ANSWER_DELAY_MS},
    ),
    (3, "dropped connection on POST", {"kind": "drop_connection", "method": "POST"}),
    (
        3,
        "503 on lookup after a lost answer",
        {
            "kind": "delay_after",
            "method": "POST",
            "delay_ms": LOST_ANSWER_DELAY_MS,
            "then": {"kind": "http_503_unavailable", "method": "GET"},
        },
    ),
    (
        3,
        "429 on mark-price read",
        {"kind": "http_429", "method": "GET", "path": "/fapi/v1/premiumIndex", "retry_after_s": 1},
    ),
    (4, "server clock 8 s ahead", {"clock": 8000}),
    (3, "server clock 3 s behind", {"clock": -3000}),
    (9, "invalid order (quantity below minimum)", {"invalid": True}),
    (3, "order the exchange refuses (margin)", {"unaffordable": True}),
]


class Outcome:
    """What the caller ended with for one Idempotency-Key."""

    __slots__ = (
        "answers",
        "attempts",
        "body",
        "category",
        "client_order_id",
        "fault",
        "key",
        "order_id",
        "statuses",
    )

    def __init__(self, key: str, fault: str):
        self.key, self.fault = key, fault
        self.attempts = 0
        self.statuses: list[int] = []
        self.answers: list[str] = []  # "HTTP <status> <category>" per attempt
        self.body: Any = None
        self.category: str | None = None
        self.client_order_id: str | None = None
        self.order_id: int | None = None

    @property
    def final(self) -> str:
        """accepted | rejected | unknown | http500 | unclassified."""
        if 500 in self.statuses:
            return "http500"
        if self.statuses and 200 <= self.statuses[-1] < 300:
            return "accepted"
        if self.category is None:
            return "unclassified"
        return "unknown" if self.category == "unknown_outcome" else "rejected"


def _categories() -> set[str]:
    from klineo.binance import ErrorCategory

    return {category.value for category in ErrorCategory}


@contextlib.contextmanager
def _bounded_timing() -> Iterator[None]:
    """Short read timeout for the futures service's clients, fast lookups (see the module docstring)."""
    from klineo.binance import BinanceClient, Environment, Market
    from klineo.services import futures as futures_service
    from klineo.services import orders as order_core

    clients: dict[tuple[Market, Environment], BinanceClient] = {}

    def get_client(market: Market, environment: Environment) -> BinanceClient:
        key = (Market(market), Environment(environment))
        if key not in clients:
            clients[key] = BinanceClient(market, environment, read_timeout=READ_TIMEOUT_S)
        return clients[key]

    with (
        mock.patch.object(futures_service, "get_client", get_client),
        mock.patch.object(order_core, "QUERY_DELAYS_S", FAST_LOOKUPS),
    ):
        yield


def _arm(stack: Stack, spec: dict[str, Any] | None) -> None:
    sim = stack.sim
    if not spec or spec.get("invalid") or spec.get("unaffordable"):
        return
    if "clock" in spec:
        sim.set_clock_skew_ms(spec["clock"])
        return
    for fault in (spec, spec.get("then")):
        if not fault:
            continue
        options = {k: fault[k] for k in ("execute", "retry_after_s", "delay_ms") if k in fault}
        sim.faults.add(
            fault["kind"], 1, method=fault.get("method"), path=fault.get("path", ORDER_PATH), **options
        )


def _disarm(stack: Stack) -> None:
    stack.sim.faults.clear()
    stack.sim.set_clock_skew_ms(0)


def _order_body(rng: random.Random, connection_id: str, spec: dict[str, Any] | None) -> dict[str, Any]:
    side = rng.choice(["BUY", "SELL"])
    invalid = bool(spec and spec.get("invalid"))
    if spec and spec.get("unaffordable"):
        # Valid for the filters, far beyond the account's margin: Binance refuses it (-2019).
        return {
            "connection_id": connection_id,
            "symbol": "BTCUSDT",
            "side": side,
            "type": "MARKET",
            "quantity": "50",
        }
    if invalid:
        return {
            "connection_id": connection_id,
            "symbol": "BTCUSDT",
            "side": side,
            "type": "MARKET",
            "quantity": "0.0001",
        }
    if rng.random() < 0.5:
        # Far from the mark: rests as NEW.
        price = "20000" if side == "BUY" else "200000"
        return {
            "connection_id": connection_id,
            "symbol": "BTCUSDT",
            "side": side,
            "type": "LIMIT",
            "quantity": "0.010",
            "price": price,
            "timeInForce": "GTC",
        }
    return {
        "connection_id": connection_id,
        "symbol": "BTCUSDT",
        "side": side,
        "type": "MARKET",
        "quantity": "0.010",
    }


def chaos_run(stack: Stack, orders: int, seed: int, caller_budget_s: float = 30.0) -> list[Outcome]:
    """Send `orders` requests with seeded faults; the caller retries retryable errors with the same key."""
    rng = random.Random(seed)
    weights = [w for w, _, _ in FAULT_PLAN]
    with quiet_stdout():
        connection_id = stack.create_connection("futures-full", futures=True)
    outcomes = []
    known = _categories()
    with _bounded_timing(), quiet_stdout():
        for _ in range(orders):
            _, name, spec = rng.choices(FAULT_PLAN, weights=weights)[0]
            key = str(uuid.uuid4())
            outcome = Outcome(key, name)
            body = _order_body(rng, connection_id, spec)
            event = stack.event("futures_order", body=body, headers={"idempotency-key": key})
            started = time.monotonic()
            _arm(stack, spec)
            try:
                while True:
                    outcome.attempts += 1
                    response = stack.invoke("futures_order", event)
                    status = response["statusCode"]
                    outcome.statuses.append(status)
                    outcome.body = response_body(response)
                    if 200 <= status < 300:
                        outcome.answers.append(f"{status} ok")
                        outcome.category = None
                        outcome.client_order_id = (outcome.body or {}).get("client_order_id")
                        outcome.order_id = (outcome.body or {}).get("order_id")
                        break
                    error = (outcome.body or {}).get("error") if isinstance(outcome.body, dict) else None
                    category = error.get("category") if isinstance(error, dict) else None
                    outcome.category = category if category in known else None
                    outcome.answers.append(f"{status} {category if category in known else 'UNCLASSIFIED'}")
                    if status >= 500 and status != 503 and category is None:
                        break
                    # unknown_outcome says "retryable": false (do not re-send blindly), and its message
                    # says to repeat the request with the same Idempotency-Key: that is what we do.
                    retryable = bool(error and (error.get("retryable") or category == "unknown_outcome"))
                    wait = _retry_wait(response, outcome.attempts)
                    if not retryable or time.monotonic() - started + wait > caller_budget_s:
                        break
                    _disarm(stack)  # the fault was one-shot; the caller's retry meets a healthy exchange
                    time.sleep(wait)
            finally:
                _disarm(stack)
            outcomes.append(outcome)
    return outcomes


def _retry_wait(response: dict[str, Any], attempt: int) -> float:
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    try:
        return min(5.0, float(headers["retry-after"]))
    except (KeyError, ValueError):
        return min(4.0, 0.5 * 2 ** (attempt - 1))


def reconcile(stack: Stack, outcomes: list[Outcome]) -> dict[str, Any]:
    """Compare every outcome with the exchange's orders for the account (open, filled or cancelled)."""
    from klineo.services.orders import idempotent_client_order_id

    account = stack.sim.account("futures-full")
    state = stack.sim.state.futures.state_for(account, time.time() * 1000)
    by_client_id: dict[str, list[Any]] = collections.defaultdict(list)
    for order in list(state.orders.values()):
        by_client_id[order.client_order_id].append(order)
    problems: list[str] = []
    unknown_with_order = unknown_without = 0
    expected_ids = set()
    for outcome in outcomes:
        client_id = outcome.client_order_id or idempotent_client_order_id(stack.user, outcome.key)
        expected_ids.add(client_id)
        found = by_client_id.get(client_id, [])
        final = outcome.final
        if final == "accepted":
            if len(found) != 1:
                problems.append(f"accepted {outcome.key[:8]} ({outcome.fault}): {len(found)} exchange orders")
            elif outcome.order_id is not None and found[0].order_id != outcome.order_id:
                problems.append(
                    f"accepted {outcome.key[:8]} ({outcome.fault}): answered order "
                    f"{outcome.order_id}, exchange has {found[0].order_id}"
                )
        elif final == "rejected":
            if found:
                problems.append(
                    f"rejected {outcome.key[:8]} ({outcome.fault}, {outcome.category}): "
                    f"{len(found)} exchange order(s) exist"
                )
        elif final == "unknown":
            if len(found) > 1:
                problems.append(f"unknown {outcome.key[:8]} ({outcome.fault}): {len(found)} exchange orders")
            elif found:
                unknown_with_order += 1
            else:
                unknown_without += 1
        else:
            problems.append(f"{final} {outcome.key[:8]} ({outcome.fault}): HTTP {outcome.statuses}")
    orphans = [cid for cid in by_client_id if cid not in expected_ids]
    if orphans:
        problems.append(f"{len(orphans)} exchange order(s) with no request: {', '.join(orphans[:5])}")
    posts = [r for r in stack.sim.journal if r.method == "POST" and r.path == ORDER_PATH]
    return {
        "exchange_orders": sum(len(v) for v in by_client_id.values()),
        "order_posts": len(posts),
        "unknown_with_order": unknown_with_order,
        "unknown_without_order": unknown_without,
        "problems": problems,
    }


def run(report: Report, orders: int, seed: int, caller_budget_s: float) -> dict[str, Any]:
    """Chaos run + reconciliation, printed into `report`."""
    started = time.monotonic()
    with local_stack() as stack, mock.patch.dict("os.environ", {"BINANCE_RECV_WINDOW_MS": RECV_WINDOW_MS}):
        from klineo.settings import get_settings

        get_settings.cache_clear()
        outcomes = chaos_run(stack, orders, seed, caller_budget_s)
        result = reconcile(stack, outcomes)
    seconds = time.monotonic() - started
    finals = collections.Counter(o.final for o in outcomes)
    by_fault: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for outcome in outcomes:
        by_fault[outcome.fault][outcome.final] += 1
    categories = collections.Counter(o.category for o in outcomes if o.category)
    retried = sum(1 for o in outcomes if o.attempts > 1)
    report.line(
        f"   {orders} orders, seed {seed}, {seconds:.0f} s; caller retried {retried} of them "
        f"({sum(o.attempts for o in outcomes)} invocations in all)"
    )
    report.table(
        ["injected", "n", "accepted", "rejected", "unknown", "HTTP 500", "unclassified"],
        [
            [
                name,
                sum(c.values()),
                c["accepted"],
                c["rejected"],
                c["unknown"],
                c["http500"],
                c["unclassified"],
            ]
            for name, c in sorted(by_fault.items(), key=lambda item: -sum(item[1].values()))
        ],
    )
    report.line(f"   final: {dict(finals)}")
    report.line(f"   final error categories: {dict(categories)}")
    answers = collections.Counter(a for o in outcomes for a in o.answers if not a.endswith(" ok"))
    report.line(
        "   error answers seen by the caller (every attempt, HTTP status + category): "
        + ", ".join(f"{a} x{n}" for a, n in sorted(answers.items()))
    )
    report.line(
        f"   exchange: {result['exchange_orders']} orders for {finals['accepted']} accepted requests; "
        f"{result['order_posts']} POST /fapi/v1/order reached the simulator"
    )
    if result["unknown_with_order"] or result["unknown_without_order"]:
        report.line(
            f"   still unknown at the caller's budget: {result['unknown_with_order']} with an exchange "
            f"order, {result['unknown_without_order']} without (the caller was told 'unknown_outcome')"
        )
    for problem in result["problems"][:20]:
        report.line(f"   PROBLEM: {problem}")
    report.figure("finals", dict(finals))
    report.figure("by_fault", {k: dict(v) for k, v in by_fault.items()})
    report.figure("reconcile", result)
    doubled_or_lost = [p for p in result["problems"] if "exchange order" in p]
    report.target(
        "orders doubled or silently lost",
        "0",
        str(len(doubled_or_lost)),
        not doubled_or_lost,
        "; ".join(doubled_or_lost[:3]),
    )
    bad_answers = finals["http500"] + finals["unclassified"]
    report.target("answers that were a 500 or unclassified", "0", str(bad_answers), bad_answers == 0)
    return result


def main(argv: list[str] | None = None) -> int:
    """CLI: python -m bench.reliability [--orders N] [--seed N] [--caller-budget-s S] [--json PATH]."""
    parser = argparse.ArgumentParser(prog="python -m bench.reliability", description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument(
        "--caller-budget-s", type=float, default=30.0, help="per order, for the caller's retries"
    )
    parser.add_argument("--json", help="also write the results as JSON to this path")
    args = parser.parse_args(argv)
    shown = [
        "--orders",
        str(args.orders),
        "--seed",
        str(args.seed),
        "--caller-budget-s",
        f"{args.caller_budget_s:g}",
    ]
    report = Report(
        "reliability",
        "seeded fault injection on futures orders through the real handler, reconciled with the exchange",
        module="bench.reliability",
        argv=shown,
    )
    run(report, args.orders, args.seed, args.caller_budget_s)
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
