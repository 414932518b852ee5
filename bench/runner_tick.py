"""Runner benchmark: one dispatcher tick of N active strategies over M symbols, through the real functions.

What it simulates: the Scheduler's event goes to ``functions.strategy_dispatcher.app``; the
messages it queues (moto SQS) are drained by ``--workers`` concurrent pollers, each handing
batches of up to 10 messages to ``functions.strategy_worker.app`` as Lambda's SQS event source
mapping would (the template's ReservedConcurrentExecutions is 4). Binance is the local simulator
with ``--latency-ms`` added to every request; AWS is moto. Both run in a child process reached over
HTTP on 127.0.0.1 (``--fakes process``, as the per-kind phases of ``bench.runner_kinds``: a Lambda
container holds the functions only, and DynamoDB's work is done on AWS's servers), or in this process
(``--fakes inline``, the setup before stop 44, where moto's CPU shared the workers' interpreter and GIL).

Figures: wall time of the tick (dispatch start to the last message done), Binance requests per
tick by endpoint, request weight used, orders placed, runs by status, AWS calls by operation.
Targets (design.md): the tick takes <= 10 s for 1,000 strategies over 20 symbols at 20 ms per
request, and klines requests per tick = distinct (environment, symbol, interval) groups.

Setup, not timed: ``--users`` HMAC accounts in a generated accounts file (the simulator counts
orders per account: 1,000 orders on one account would hit its 300-per-10-s limit, and real users
each trade their own account), one connection per user written straight to the stores (futures
enabled), and the strategies (live SMA 2/3 by default: nearly every one enters a position on its
first tick, so the tick places about one order per strategy, the heaviest tick there is).

Caveats printed with the result: every worker runs in ONE process on this machine's two cores
(sharing the GIL, and the cores with the fakes), where Lambda gives every worker its own CPU, so the
wall time is pessimistic; in-process workers also share the per-container caches (exchangeInfo,
server time, secrets) that separate containers would each fill once.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.report import Report
from bench.stack import count_aws_calls, local_stack, quiet_stdout, remote_stack

__all__ = ["TickResult", "main", "run_tick"]

TARGET_WALL_S = 10.0
FAKES_PLACES = {"process": "in a child process (over HTTP on 127.0.0.1)", "inline": "in this process"}
REGION = "ap-northeast-1"
# Symbol -> size per order, chosen above each symbol's minimum order value in the simulator.
BASE_SYMBOLS = {"BTCUSDT": "0.002", "ETHUSDT": "0.01", "BNBUSDT": "0.05"}
EXTRA_SIZE = "0.05"
# SQS calls made by the benchmark's stand-in for Lambda's event source mapping, not by the functions.
_EVENT_SOURCE_CALLS = frozenset(
    {"ReceiveMessage", "DeleteMessage", "GetQueueAttributes"}
)  # extra symbols copy BNBUSDT's filters (min notional 5 USDT at ~580)


POSITION_PATH = "/fapi/v3/positionRisk"
# What the runner's check of the exchange's truth may call (klineo.runner.positions, klineo.runner.pnl).
TRUTH_PATHS = frozenset({POSITION_PATH, "/fapi/v1/forceOrders", "/fapi/v1/userTrades"})

@dataclasses.dataclass
class TickResult:
    """What one measured tick did."""

    wall_s: float
    dispatch_s: float
    strategies: int
    messages: int
    worker_invocations: int
    failed_messages: int
    binance_requests: Counter[str]
    weight: int
    runs: Counter[str]
    aws_calls: Counter[str]
    groups: int
    cpu: dict[str, float]
    position_reads: int = 0  # GET /fapi/v3/positionRisk (klineo.runner.positions)
    position_weight: int = 0  # their request weight, forceOrders/userTrades look-ups included


def _symbols(count: int) -> dict[str, str]:
    names = dict(BASE_SYMBOLS)
    for index in range(1, max(0, count - len(names)) + 1):
        names[f"X{index:02d}USDT"] = EXTRA_SIZE
    return dict(list(names.items())[:count])


@contextlib.contextmanager
def simulator_symbols(names: list[str]) -> Iterator[None]:
    """The simulator lists three symbols; add the others (cloned from BNBUSDT's filters) while it runs."""
    from local.binance_sim import market

    template = market.SYMBOLS["BNBUSDT"]
    added = [name for name in names if name not in market.SYMBOLS]
    for name in added:
        market.SYMBOLS[name] = dataclasses.replace(
            template, symbol=name, base_asset=name.removesuffix("USDT")
        )
    try:
        yield
    finally:
        for name in added:
            market.SYMBOLS.pop(name, None)


def accounts_file(folder: Path, users: int) -> tuple[Path, list[dict[str, Any]]]:
    """A simulator accounts file with ``users`` production HMAC accounts that may trade futures."""
    accounts = []
    for index in range(users):
        seed = f"klineo-bench-runner-{index}".encode()
        accounts.append(
            {
                "id": f"bench-runner-{index:03d}",
                "description": "runner benchmark account (fake keys, 127.0.0.1 only)",
                "environment": "production",
                "key_type": "HMAC",
                "api_key": hashlib.sha256(seed + b"/key").hexdigest(),
                "secret": hashlib.sha256(seed + b"/secret").hexdigest(),
                "permissions": {
                    "reading": True,
                    "spot_trading": True,
                    "margin": False,
                    "futures": True,
                    "withdrawals": False,
                    "ip_allow_list": [],
                },
                "balances": {"spot": {"USDT": "1000.00000000"}, "futures": {"USDT": "1000000.00000000"}},
            }
        )
    path = folder / "runner-accounts.json"
    path.write_text(json.dumps({"accounts": accounts}), encoding="utf-8")
    return path, accounts


def _store_users(accounts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """One user and one futures-enabled connection per account, written to the stores; (user, connection)."""
    from klineo.binance import Credentials, KeyType
    from klineo.store.connections import Connection, put_connection
    from klineo.store.secrets import put_credentials

    pairs = []
    for account in accounts:
        user, connection_id = f"bench-user-{account['id']}", uuid.uuid4().hex
        name = put_credentials(
            user, connection_id, Credentials(account["api_key"], account["secret"], KeyType.HMAC)
        )
        put_connection(
            Connection(
                user_id=user,
                connection_id=connection_id,
                label="bench",
                environment="production",
                key_type="hmac",
                api_key_masked=account["api_key"][:4] + "…",
                secret_name=name,
                futures_enabled=True,
                created_at="2026-01-01T00:00:00+00:00",
            )
        )
        pairs.append((user, connection_id))
    return pairs


def made_before_the_tick() -> str:
    """When a benchmark's strategies are stored as made: an hour ago. The dispatcher sends a strategy no
    candle that closed before it became active (``klineo.runner.dispatcher``), so strategies stored "now"
    would sit out the very tick they are stored for."""
    from klineo.timestamps import utc_iso

    return utc_iso(int(time.time() * 1000) - 3_600_000)


def _store_strategies(count: int, symbols: dict[str, str], users: list[tuple[str, str]], mode: str) -> None:
    from klineo.store import strategies as strategy_store

    now = made_before_the_tick()
    names = list(symbols)
    for index in range(count):
        user, connection_id = users[index % len(users)]
        symbol = names[index % len(names)]
        strategy_mode = mode if mode != "mixed" else ("live" if index % 2 == 0 else "paper")
        strategy_store.put_new_strategy(
            strategy_store.Strategy(
                user_id=user,
                strategy_id=strategy_store.new_strategy_id(),
                connection_id=connection_id,
                environment="production",
                symbol=symbol,
                interval="1m",
                type="sma_crossover",
                parameters={"fast": 2, "slow": 3, "allow_short": True},
                size=Decimal(symbols[symbol]),
                mode=strategy_mode,
                status="active",
                created_at=now,
                updated_at=now,
            )
        )


def _wait_for_early_minute(latest_second: int = 40) -> None:
    """Start early in a minute, as the Scheduler does: a 1m candle is stale a minute after it closes."""
    second = time.time() % 60
    if second > latest_second:
        time.sleep(60 - second + 0.2)


@contextlib.contextmanager
def cpu_accounting() -> Iterator[dict[str, float]]:
    """CPU seconds of the process, split: AWS calls (botocore + moto), SQS polling, simulator requests."""
    from botocore.client import BaseClient

    from local.binance_sim import server

    cpu = {"process": 0.0, "aws_calls": 0.0, "event_source": 0.0, "simulator": 0.0}
    lock = threading.Lock()
    original_call, original_handle = BaseClient._make_api_call, server._Handler._handle

    def timed_call(self: Any, operation: str, params: dict[str, Any]) -> Any:
        started = time.thread_time()
        try:
            return original_call(self, operation, params)
        finally:
            key = "event_source" if operation in _EVENT_SOURCE_CALLS else "aws_calls"
            with lock:
                cpu[key] += time.thread_time() - started

    def timed_handle(self: Any) -> None:
        started = time.thread_time()
        try:
            original_handle(self)
        finally:
            with lock:
                cpu["simulator"] += time.thread_time() - started

    process_started = time.process_time()
    BaseClient._make_api_call, server._Handler._handle = timed_call, timed_handle
    try:
        yield cpu
    finally:
        BaseClient._make_api_call, server._Handler._handle = original_call, original_handle
        cpu["process"] = time.process_time() - process_started
        cpu["functions_and_clients"] = (
            cpu["process"] - cpu["aws_calls"] - cpu["event_source"] - cpu["simulator"]
        )


# The event source stand-in's wait after an empty receive: doubled on each empty one up to the
# maximum, as Lambda's pollers back off on an idle queue, so idle pollers do not take the GIL from the
# worker invocations (their polling is AWS's work, not the functions'); woken when the tick is done.
_POLL_IDLE_S, _POLL_IDLE_MAX_S = 0.02, 0.5


def _drain(
    stack: Any, queue_url: str, queue_arn: str, total: int, workers: int,
) -> tuple[int, int, float]:
    """Poll with ``workers`` pollers until ``total`` messages were handled.

    (invocations, failed messages, ``time.perf_counter()`` when the last message was handled).
    """
    import boto3
    from botocore.exceptions import ClientError

    from local.scheduler import sqs_event

    sqs = boto3.client("sqs", region_name=REGION)
    lock = threading.Lock()
    state = {"invocations": 0, "failed": 0, "done_at": time.perf_counter()}
    handled: set[str] = set()  # by MessageId, should a message still come twice
    # moto's SQS checks a message visible and marks it received without a lock, so two concurrent receives
    # can both take it (seen: one group's klines fetched twice, its claims refused the second time). SQS
    # hides a received message from every other receive: the pollers take their turns to receive.
    receiving = threading.Lock()
    done = threading.Event()
    if total <= 0:
        done.set()
    deadline = time.monotonic() + 300

    def delete(message: dict[str, Any]) -> None:
        try:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        except ClientError as exc:  # the other receive of the same message deleted it first
            if exc.response.get("Error", {}).get("Code") != "ReceiptHandleIsInvalid":
                raise

    def poll() -> None:
        idle = _POLL_IDLE_S
        while time.monotonic() < deadline and not done.is_set():
            with receiving:
                messages = sqs.receive_message(
                    QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=360
                ).get("Messages", [])
            if not messages:
                done.wait(idle)
                idle = min(2 * idle, _POLL_IDLE_MAX_S)
                continue
            idle = _POLL_IDLE_S
            response = stack.invoke(
                "strategy_worker", sqs_event(messages, queue_arn, REGION), remaining_ms=60_000
            )
            failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
            for message in messages:
                if message["MessageId"] not in failed:
                    delete(message)
            with lock:
                handled.update(message["MessageId"] for message in messages)
                state["invocations"] += 1
                state["failed"] += len(failed)
                if len(handled) >= total and not done.is_set():
                    state["done_at"] = time.perf_counter()
                    done.set()

    threads = [threading.Thread(target=poll, name=f"worker-{n}") for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return state["invocations"], state["failed"], state["done_at"]


def _latest_run_statuses() -> dict[str, str]:
    """Each strategy's latest run status, by strategy id, from ONE scan of the table.

    Not a query per strategy: the emulated table answers a query by walking every item, so a thousand
    of them after the tick took minutes of the benchmark's time (outside the timed window).
    """
    import boto3
    from klineo.settings import get_settings
    from klineo.store.runs import Run

    latest: dict[str, tuple[int, str]] = {}
    pages = boto3.client("dynamodb", region_name=REGION).get_paginator("scan").paginate(
        TableName=get_settings().data_table,
        FilterExpression="begins_with(pk, :strategy) AND begins_with(sk, :run)",
        ExpressionAttributeValues={":strategy": {"S": "STRAT#"}, ":run": {"S": "RUN#"}},
    )
    for item in (item for page in pages for item in page["Items"]):
        run = Run.from_item(item)
        if run.close_time >= latest.get(run.strategy_id, (-1, ""))[0]:
            latest[run.strategy_id] = (run.close_time, run.status)
    return {strategy_id: status for strategy_id, (_, status) in latest.items()}


@contextlib.contextmanager
def _tick_stack(fakes: str, chosen: dict[str, str], **simulator_config: Any) -> Iterator[Any]:
    """The timed tick's stack: moto and the simulator (listing ``chosen``) in a child process, over HTTP on
    127.0.0.1, as a Lambda container holds only the functions (``process``), or in this process."""
    if fakes not in FAKES_PLACES:
        raise ValueError(f"fakes must be one of {sorted(FAKES_PLACES)}")
    if fakes == "process":
        with remote_stack(symbols=tuple(chosen), **simulator_config) as stack:
            yield stack
        return
    with simulator_symbols(list(chosen)), local_stack(**simulator_config) as stack:
        yield stack


def run_tick(
    strategies: int,
    symbols: int,
    users: int,
    latency_ms: float,
    workers: int,
    mode: str,
    *,
    latest_start_second: int = 40,
    fakes: str = "process",
) -> TickResult:
    """Build the strategies, then measure one dispatcher tick and the worker runs it causes; moto and the
    simulator in a child process (``fakes="process"``) or in this one (``"inline"``)."""
    import boto3
    from klineo.store import strategies as strategy_store

    from local.scheduler import scheduler_event

    chosen = _symbols(symbols)
    with tempfile.TemporaryDirectory(prefix="klineo-runner-bench-") as folder:
        path, accounts = accounts_file(Path(folder), users)
        with _tick_stack(fakes, chosen, latency_ms=latency_ms, accounts_file=path) as stack, quiet_stdout():
            from local.template import Resolver, load_template

            resolver = Resolver(load_template(), parameters={"Stage": "dev"}, region=REGION)
            queue_name = resolver.resolve(
                load_template()["Resources"]["StrategyQueue"]["Properties"]["QueueName"]
            )
            sqs = boto3.client("sqs", region_name=REGION)
            queue_url = sqs.create_queue(QueueName=queue_name, Attributes={"VisibilityTimeout": "360"})[
                "QueueUrl"
            ]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            _store_strategies(strategies, chosen, _store_users(accounts), mode)
            _wait_for_early_minute(latest_start_second)
            stack.sim.clear_journal()
            event = scheduler_event(
                f"arn:aws:scheduler:{REGION}:123456789012:schedule/default/klineo-dev-strategy-tick",
                REGION,
                "123456789012",
            )
            with cpu_accounting() as cpu, count_aws_calls() as calls:
                started = time.perf_counter()
                summary = stack.invoke("strategy_dispatcher", event, remaining_ms=50_000)
                dispatched = time.perf_counter()
                invocations, failed, finished = _drain(
                    stack, queue_url, queue_arn, summary["messages"], workers
                )
            journal = stack.sim.journal
            active = [strategy.strategy_id for strategy in strategy_store.query_active("1m")]
            latest = _latest_run_statuses()
            runs = Counter(latest.get(strategy_id, "no run") for strategy_id in active)
            return TickResult(
                wall_s=finished - started,
                dispatch_s=dispatched - started,
                strategies=summary["strategies"],
                messages=summary["messages"],
                worker_invocations=invocations,
                failed_messages=failed,
                binance_requests=Counter(f"{r.method} {r.path}" for r in journal),
                weight=sum(r.weight for r in journal),
                runs=runs,
                aws_calls=Counter(
                    f"{c.service}.{c.operation}" for c in calls if c.operation not in _EVENT_SOURCE_CALLS
                ),
                groups=summary["groups"],
                cpu=dict(cpu),
                position_reads=sum(1 for r in journal if r.path == POSITION_PATH),
                position_weight=sum(r.weight for r in journal if r.path in TRUTH_PATHS),
            )


def _report_tick_cpu(report: Report, cpu: dict[str, float], fakes: str) -> None:
    """The tick's CPU by part, and where moto and the simulator ran."""
    if fakes == "inline":
        report.line(
            f"   CPU during the tick: {cpu['process']:.1f} s in all (on {os.cpu_count()} cores, one GIL): "
            f"AWS calls {cpu['aws_calls']:.1f} s (botocore + moto's emulated DynamoDB/SQS), "
            f"simulator {cpu['simulator']:.1f} s, SQS polling {cpu['event_source']:.1f} s, "
            f"the functions with their HTTP and boto3 clients {cpu['functions_and_clients']:.1f} s"
        )
        report.note(
            "one process: moto, the simulator and every worker share this machine's cores and the GIL; "
            "Lambda gives each worker container its own CPU, so this wall time is pessimistic"
        )
        return
    report.line(
        f"   CPU of the functions' process during the tick: {cpu['process']:.1f} s (on {os.cpu_count()} "
        f"cores, one GIL): AWS calls {cpu['aws_calls']:.1f} s (botocore's client side, its HTTP included), "
        f"SQS polling {cpu['event_source']:.1f} s, the functions with their HTTP clients "
        f"{cpu['functions_and_clients']:.1f} s; moto and the simulator in a child process, not counted here"
    )
    report.note(
        "two processes on this machine's cores: the fakes' and the functions' (every worker in one "
        "interpreter, one GIL); Lambda gives each worker container its own CPU and DynamoDB its own "
        "servers, so this wall time is pessimistic"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report."""
    parser = argparse.ArgumentParser(prog="python -m bench.runner_tick", description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", type=int, default=1000)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--users", type=int, default=50, help="accounts the strategies belong to")
    parser.add_argument(
        "--latency-ms", type=float, default=20.0, help="added to every simulated Binance request"
    )
    parser.add_argument(
        "--workers", type=int, default=4, help="concurrent worker invocations (reserved concurrency)"
    )
    parser.add_argument("--mode", choices=("live", "paper", "mixed"), default="live")
    parser.add_argument(
        "--per-kind", type=int, default=100,
        help="strategies per kind-of-tick phase (hold, paper, live, skipped); 0 skips the phases",
    )
    parser.add_argument(
        "--per-user", type=int, default=20, help="per-kind phases: strategies per user (connection)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3,
        help="per-kind phases: rounds of every kind, interleaved; each kind reports its median phase",
    )
    parser.add_argument(
        "--fakes", choices=("process", "inline"), default="process",
        help="the tick and the per-kind phases: moto and the simulator in a child process (the measure) or "
             "in this one",
    )
    parser.add_argument(
        "--order-every", type=int, default=20, help="cost mix: a live order every N ticks, else holds"
    )
    parser.add_argument("--json", help="write the results as JSON here (python -m bench)")
    args = parser.parse_args(argv)
    shown = list(argv if argv is not None else sys.argv[1:])
    if "--json" in shown:
        index = shown.index("--json")
        del shown[index : index + 2]
    report = Report(
        "runner_tick",
        f"one tick: {args.strategies} {args.mode} strategies, {args.symbols} symbols, {args.users} users, "
        f"{args.latency_ms:g} ms per Binance request, {args.workers} workers",
        module="bench.runner_tick",
        argv=shown,
    )
    result = run_tick(args.strategies, args.symbols, args.users, args.latency_ms, args.workers, args.mode,
                      fakes=args.fakes)
    klines = result.binance_requests.get("GET /fapi/v1/klines", 0)
    report.line(
        f"   wall time of the tick: {result.wall_s:.2f} s (dispatcher {result.dispatch_s:.2f} s, "
        f"{result.messages} messages, {result.worker_invocations} worker invocations, "
        f"{result.failed_messages} failed messages)"
    )
    report.line(
        f"   Binance requests: {sum(result.binance_requests.values())}, request weight used: {result.weight}"
    )
    report.table(["endpoint", "requests"], sorted(result.binance_requests.items()))
    report.line(
        f"   exchange truth: {result.position_reads} position reads, weight {result.position_weight} "
        f"(read once per connection per batch, only for live strategies holding a position that are about "
        f"to trade or have protective orders: none on a first tick, when every strategy starts flat)"
    )
    report.line("   runs by status:")
    report.table(["status", "strategies"], sorted(result.runs.items()))
    ordered = result.runs.get("ordered", 0)
    report.line(
        f"   the wall time follows the orders placed (each is a claim and a settle transaction, emulated "
        f"by moto {FAKES_PLACES[args.fakes]}): {ordered} orders, "
        f"{result.wall_s * 1000 / max(1, ordered):.1f} ms of wall time per order, "
        f"{result.wall_s * 1000 / max(1, result.strategies):.1f} ms per strategy; "
        "compare runs by these (and the runs by status), not by the wall time alone"
    )
    report.figure("wall_ms_per_order", result.wall_s * 1000 / max(1, ordered))
    report.line(
        "   AWS calls made by the functions during the tick (SQS polling by the event source excluded):"
    )
    report.table(["call", "count"], sorted(result.aws_calls.items()))
    _report_tick_cpu(report, result.cpu, args.fakes)
    report.note(
        "in-process workers share per-container caches (exchangeInfo, server time, secrets); separate "
        "containers would each add about one exchangeInfo and one time request"
    )
    for key, value in dataclasses.asdict(result).items():
        report.figure(key, dict(value) if isinstance(value, Counter) else value)
    report.target(
        "tick wall time",
        f"<= {TARGET_WALL_S:g} s",
        f"{result.wall_s:.2f} s",
        result.wall_s <= TARGET_WALL_S and result.failed_messages == 0,
    )
    report.target(
        "klines requests per tick",
        f"= distinct (environment, symbol, interval) = {result.groups}",
        str(klines),
        klines == result.groups,
    )
    if args.per_kind > 0:
        from bench.runner_kinds import measure_kinds, report_kinds

        report.line(
            f"-- per kind of tick: {args.per_kind} strategies a phase, {args.rounds} rounds of every kind "
            f"interleaved (each kind's median phase reported), {args.per_user} per user, one worker, "
            f"{args.symbols} symbols, moto and the simulator {FAKES_PLACES[args.fakes]} "
            "(bench/runner_kinds.py says what is counted)"
        )
        figures = measure_kinds(args.per_kind, args.symbols, args.per_user, args.latency_ms, fakes=args.fakes,
                                rounds=args.rounds)
        report_kinds(report, figures, args.order_every)
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
