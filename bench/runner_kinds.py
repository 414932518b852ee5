"""What one strategy tick costs, per kind of tick: DynamoDB requests and units, dollars, runner CPU, fan-out.

Issue 16 item 2's figures. The real dispatcher and worker run in this process on moto's server and
the Binance simulator, both in a CHILD process reached over HTTP on 127.0.0.1
(``bench.stack.remote_stack``), in one phase per kind of tick, each with its own strategies (the
earlier phases' strategies are paused, off the active index, so the dispatcher never sees them again):

- ``hold``: live RSI(14) strategies with levels 0.01 / 99.99, which the price never reaches:
  the decision is "hold", nothing is sent (run status ``no_change``);
- ``paper``: paper SMA 2/3 strategies on their first tick: a simulated fill (``simulated``);
- ``live``: live SMA 2/3 strategies on their first tick: one MARKET order (``ordered``);
- ``skipped``: live SMA 2/3 strategies whose users' kill switches are on (``skipped``).

Strategies are spread over users ``per_user`` at a time (default 20, as the timed tick's 1,000
over 50 users) and over the symbols round-robin: what the worker reads once per user or per
batch is shared by that many ticks.

Why the fakes run in another process (changed in round 16): a Lambda container holds the runner
only. With moto and the simulator in the runner's process (as ``bench.runner_tick``'s timed tick
still runs them), their tables sat in its heap and their threads in its interpreter, sharing its
GIL, allocator and caches; the runner's CPU was measured in that company and moto's share taken
out by timing its hooks. Now nothing of the fakes runs here: the AWS calls are real HTTP to moto's
server (botocore's client side then includes its HTTP exchange, as on Lambda), the Binance calls
real HTTP to the simulator. The hooks on moto's stub, its ``responses`` passthrough and the
simulator's handler stay installed and count (next to) nothing; ``fakes="inline"``
(``--fakes inline``) runs the earlier in-process setup for a comparison.

What that changed, measured on this 2-core machine while other work ran on it: the runner's own
CPU per tick moved within the run-to-run spread (paper 1.24 ms inline, 1.09 ms out of process;
live 3.07 ms inline, 2.84-2.90 ms out of process). Fixed pieces of the runner's work (one event
item, ``json.loads`` of an order reply, one ``encode_params`` + HMAC signature, one emitted Logger
line) timed inside live turns take 1.3-2.4x their time alone in a quiet thread with the fakes
inline, 1.6-2.2x out of process, and still 1.7-2.6x out of process with ONE strategy thread and
the unit meter turned off. So the inflation is neither the fakes, the meter's probes nor the
worker's threads: it is the pieces running cold between the turn's network waits and library
work, against the same piece repeated warm, and a Lambda container runs them that way too.

Measured since (paper turns run one after another in one thread, the fakes in a child process):
the same turns' own code costs 0.40-0.55 ms when the DynamoDB call is replaced by a no-op, about
1.0-1.2 ms with the real call, and 1.2 ms with a 40 ms JSON-encoding stand-in for it that touches
no AWS code. The run-to-run spread of this figure on the shared 2-core machine (about +-15 %,
botocore's share moving with it) is larger than most single cuts; compare runs by the ratio of
the own figure to botocore's as well.

The same effect, called twice in a row inside live turns (round 8: the first call is the turn's,
the second repeats it at once with the same arguments; medians of 100 turns, thread CPU): the
HMAC signature 96 -> 15 us, the client order id 46 -> 2.5 us, the order plan 81 -> 24 us, the
risk gate 15.5 -> 3.6 us, decoding an order answer 53 -> 23 us, the claim's gate checks 42 -> 23 us.
A live turn runs some 80 such pieces once each, so its own CPU is set by how much code and data it
touches more than by any loop in it: cutting it to 1 ms means touching about a third as much.
The report prints the whole of it too: the first live order's turn is replayed warm after the
phases (``bench.warm_turn``: the same strategy and batch context, AWS and Binance answered at once
by stubs in that thread, 200 turns back to back) and its own CPU is shown beside the phase's.

After the warm-up the process collects garbage as a warm Lambda container does
(``_as_a_warm_container``: ``klineo.lambda_collection_regime``, which a Lambda runtime's init sets up
and a plain Python process does not): what the warm-up left frozen, young passes every 20,000
allocations. Until stop 44 the phases ran at CPython's default threshold, and a generation-1 pass
of 10-15 ms landing in a turn's own code could move a phase's own CPU by 0.1-0.3 ms per tick.

Each kind runs ``rounds`` times (``--rounds``, 3 in the bench), the kinds interleaved, and each
kind's figures are those of its phase with the median own CPU, every round's figure printed beside
it (``median_phase``): a single phase's own CPU moved by +-15 % from the next one in the same
process on this shared machine, enough to flip a verdict near its line.

A first, unreported live phase (one strategy per (user, symbol) pair the phases trade) warms the
container's caches as a warm Lambda container has them, and makes each pair's once-per-symbol leverage
check as a connection that traded before has made it. Each phase's messages are drained by ONE
worker, invocation after invocation, so that the process CPU of an invocation is that invocation's
own. A live phase starts in a minute whose request weight leaves every order its fills read
(``_wait_for_weight_to_spare``), so that it measures the turn every order makes at a quiet minute,
on any machine. What is counted:

- DynamoDB: every request of any botocore client, priced by ``bench.dynamo_units`` (sizes from
  the items sent and returned, before/after items read by uncounted GetItems), attributed to
  ``turn`` (inside ``klineo.runner.worker.run_strategy``, one strategy's turn), ``batch`` (the
  worker's shared reads outside the turns) or ``dispatcher``. Per tick: the turns' requests over
  the turns that ended as the kind means (a live phase's strategy skipped for a stale candle
  when the machine is slow is not an order), plus the shared ones over every tick.
- CPU, in thread CPU time (``time.thread_time``) and process CPU time:
  * ``fakes``: the meter's own GetItems (over HTTP, in the calling thread) and sizing, and the
    garbage collector's full passes (generation 2: with the fakes inline they walked moto's tables
    too); with ``fakes="inline"`` also moto's handling of every AWS request (its botocore
    ``before-send`` hook, timed in the calling thread, and its ``responses`` patch every Binance
    request passes) and the simulator's request handling (``handle_one_request`` in its threads);
  * ``runner, all in``: the process CPU of each worker invocation minus the fakes during it: the
    handler, Powertools, the thread pools, botocore and requests building and parsing requests,
    the strategies' logic (a Lambda container pays all of it); the simulator's accept loop and
    thread start-up are left in (a few µs per connection, pessimistic);
  * ``runner, in turns``: the thread CPU inside ``run_strategy`` minus the fakes in those threads;
    of it, ``botocore``: the client side of the AWS calls (building, signing, sending, parsing), and
    ``requests``: the client side of the Binance HTTP calls, everything inside
    ``requests.Session.send`` (requests, urllib3 and http.client sending the prepared request,
    reading and parsing the raw response) less moto's passthrough and full collections in it
    (the simulator's handling is in its own threads, never in a turn's);
  * the runner's OWN CPU (the verdict's figure): in turns minus botocore and requests, the two
    libraries' client sides being the AWS SDK's and the HTTP library's work, not ours. Ours stays
    ours: the strategies' logic, building items and requests, the Binance client's query encoding,
    signing, rate limits, metrics and logs, and decoding the JSON into our types.
  Per tick = sum / strategies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from bench.dynamo_units import DynamoMeter

__all__ = [
    "EXPECTED_OUTCOME", "KINDS", "CpuLedger", "KindFigures", "cpu_figures", "deployment_shape",
    "fanout_inputs",
    "measure_kinds", "median_phase", "report_kinds",
]

KINDS = ("hold", "paper", "live", "skipped")
FAKES = ("process", "inline")  # where moto and the simulator run: a child process (the measure), or here
EXPECTED_OUTCOME = {"hold": "no_change", "paper": "simulated", "live": "ordered", "skipped": "skipped"}
HOLD_PARAMETERS = {"period": 14, "oversold": "0.01", "overbought": "99.99", "allow_short": True}
SMA_PARAMETERS = {"fast": 2, "slow": 3, "allow_short": True}
# Binance requests every batch shares (the klines of its groups; the container's caches' refills).
SHARED_BINANCE_PATHS = frozenset({"/fapi/v1/klines", "/fapi/v1/exchangeInfo", "/fapi/v1/time"})


@dataclasses.dataclass
class KindFigures:
    """What one phase measured, per kind of tick."""

    kind: str
    ticks: int
    outcomes: Counter[str]
    dynamo: dict[str, dict[str, float]]  # scope -> totals (requests, rru, wru, index_wru, read_bytes)
    intended: dict[str, float]  # the same over the turns that ended as the kind means, only
    operations: dict[str, dict[str, int]]  # scope -> operation -> count
    binance: Counter[str]
    cpu: dict[str, float]
    invocations: int
    # live only: the same turn replayed warm with instant stubs (bench.warm_turn), or why not measured
    warm: Any = None
    # live only: the same turn replayed with the caches evicted around its calls (bench.warm_turn.cold_turns)
    cold: Any = None
    # the own CPU (ms per tick) of every round's phase of this kind, in the order they ran
    own_rounds: tuple[float, ...] = ()

    def per_tick(self, scope: str | None, key: str) -> float:
        """A DynamoDB figure per tick, of one scope or of all (turn + batch + dispatcher).

        The turn's share counts only the turns that ended as the kind means (a live order, not a
        live strategy skipped for a stale candle); the shared reads are spread over every tick.
        """
        turn = self.intended.get(key, 0.0) / max(1, self.outcomes.get(EXPECTED_OUTCOME[self.kind], 0))
        if scope == "turn":
            return turn
        shared = [scope] if scope else ["batch", "dispatcher"]
        return sum(self.dynamo.get(s, {}).get(key, 0.0) for s in shared) / max(1, self.ticks) + (
            turn if scope is None else 0.0
        )

    @property
    def purity(self) -> float:
        """Share of the phase's ticks that ended as the kind intends."""
        return self.outcomes.get(EXPECTED_OUTCOME[self.kind], 0) / max(1, self.ticks)

    @property
    def turn_binance(self) -> float:
        """Binance requests per tick made for the strategy itself (orders, position reads...)."""
        own = sum(n for endpoint, n in self.binance.items()
                  if endpoint.split(" ", 1)[-1] not in SHARED_BINANCE_PATHS)
        return own / max(1, self.ticks)

    def cpu_ms(self, key: str) -> float:
        """A CPU figure in ms per tick."""
        return 1000 * self.cpu.get(key, 0.0) / max(1, self.ticks)

    @property
    def own_cpu_ms(self) -> float:
        """The runner's own CPU per tick: the turns without botocore's and requests' client sides."""
        libraries = self.cpu_ms("botocore_in_turns") + self.cpu_ms("requests_in_turns")
        return max(0.0, self.cpu_ms("runner_in_turns") - libraries)


class CpuLedger:
    """Thread CPU of the in-process fakes (moto, the simulator) by the meter's scope, and of the turns."""

    def __init__(self, meter: DynamoMeter):
        self.meter = meter
        self.seconds: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.turn_outcomes: dict[int, str] = {}
        # (strategy, ctx, epoch s just after the turn) of the first live order: replayed warm at the end
        self.first_order: tuple[Any, Any, float] | None = None
        self._lock = threading.Lock()
        self._where = threading.local()  # this thread is inside: "fake" (moto), "call" (an AWS call)

    @contextlib.contextmanager
    def inside(self, place: str) -> Iterator[None]:
        """Mark this thread as inside ``place`` for the block (where a full GC pass lands)."""
        saved = getattr(self._where, place, False)
        setattr(self._where, place, True)
        try:
            yield
        finally:
            setattr(self._where, place, saved)

    def is_inside(self, place: str) -> bool:
        """True while this thread is inside ``place``."""
        return bool(getattr(self._where, place, False))

    def add(self, key: str, seconds: float) -> None:
        """Add CPU seconds under ``key``."""
        with self._lock:
            self.seconds[key] += seconds

    def reset(self) -> None:
        """Start a new phase."""
        with self._lock:
            self.seconds.clear()
            self.outcomes.clear()
            self.turn_outcomes.clear()

    @contextlib.contextmanager
    def hooks(self) -> Iterator[CpuLedger]:
        """Time moto's request handling, the simulator's, and every strategy turn, while active."""
        from moto.core.botocore_stubber import BotocoreStubber

        from local.binance_sim import server

        ledger, meter = self, self.meter
        stub_call, handle_one = BotocoreStubber.__call__, server._Handler.handle_one_request

        def timed_stub(stubber: Any, *args: Any, **kwargs: Any) -> Any:
            if meter.probing:
                return stub_call(stubber, *args, **kwargs)
            started = time.thread_time()
            try:
                with ledger.inside("fake"):
                    return stub_call(stubber, *args, **kwargs)
            finally:
                ledger.add(f"stub:{meter.current_scope()}", time.thread_time() - started)

        def timed_handle(handler: Any) -> None:
            started = time.thread_time()
            try:
                handle_one(handler)
            finally:
                ledger.add("simulator", time.thread_time() - started)

        BotocoreStubber.__call__, server._Handler.handle_one_request = timed_stub, timed_handle
        try:
            with (self._passthrough(), self._aws_calls(), self._http_calls(), self._full_collections(),
                  self._turns()):
                yield self
        finally:
            BotocoreStubber.__call__, server._Handler.handle_one_request = stub_call, handle_one

    @contextlib.contextmanager
    def _full_collections(self) -> Iterator[None]:
        """Time the garbage collector's full (generation 2) passes: they walk moto's in-memory tables."""
        import gc

        ledger, local = self, threading.local()

        def callback(phase: str, info: dict[str, Any]) -> None:
            # A pass inside moto or the meter is already in their time; one inside an AWS call or a
            # Binance HTTP exchange is also noted apart, so that botocore's or requests' share leaves it out.
            if info.get("generation") != 2 or ledger.is_inside("fake") or ledger.meter.probing:
                return
            if phase == "start":
                local.started = time.thread_time()
            elif getattr(local, "started", None) is not None:
                spent, scope = time.thread_time() - local.started, ledger.meter.current_scope()
                ledger.add(f"gc:{scope}", spent)
                if ledger.is_inside("call"):
                    ledger.add(f"gc_call:{scope}", spent)
                if ledger.is_inside("http"):
                    ledger.add(f"gc_http:{scope}", spent)
                local.started = None

        gc.callbacks.append(callback)
        try:
            yield
        finally:
            gc.callbacks.remove(callback)

    @contextlib.contextmanager
    def _aws_calls(self) -> Iterator[None]:
        """Time every botocore API call (client side + moto + the meter), to tell botocore's own share."""
        from botocore.client import BaseClient

        ledger, meter, original = self, self.meter, BaseClient._make_api_call

        def timed_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            if meter.probing:
                return original(client, operation, params)
            started = time.thread_time()
            try:
                with ledger.inside("call"):
                    return original(client, operation, params)
            finally:
                ledger.add(f"aws_call:{meter.current_scope()}", time.thread_time() - started)

        BaseClient._make_api_call = timed_call
        try:
            yield
        finally:
            BaseClient._make_api_call = original

    @contextlib.contextmanager
    def _http_calls(self) -> Iterator[None]:
        """Time every ``requests.Session.send`` (requests + urllib3 + http.client, and moto's passthrough).

        The Binance client builds its own query, signature and headers, then hands a prepared request
        to ``Session.send``; what happens inside (sending, reading and parsing the raw response) is
        the HTTP library's work, as botocore's is for the AWS calls.
        """
        import requests

        ledger, meter, original = self, self.meter, requests.Session.send

        def timed_send(session: Any, request: Any, **kwargs: Any) -> Any:
            if ledger.is_inside("http"):  # a redirect's or an adapter's nested send: counted once
                return original(session, request, **kwargs)
            started = time.thread_time()
            try:
                with ledger.inside("http"):
                    return original(session, request, **kwargs)
            finally:
                ledger.add(f"http_call:{meter.current_scope()}", time.thread_time() - started)

        requests.Session.send = timed_send  # type: ignore[method-assign]
        try:
            yield
        finally:
            requests.Session.send = original  # type: ignore[method-assign]

    @contextlib.contextmanager
    def _passthrough(self) -> Iterator[None]:
        """Time moto's ``responses`` patch of requests (every Binance call passes it), not the send."""
        from moto.core.models import responses_mock

        ledger, meter, local = self, self.meter, threading.local()
        on_request, real_send = responses_mock._on_request, responses_mock._real_send

        def timed_on_request(*args: Any, **kwargs: Any) -> Any:
            started, local.sent = time.thread_time(), 0.0
            try:
                return on_request(*args, **kwargs)
            finally:
                spent, scope = time.thread_time() - started - local.sent, meter.current_scope()
                ledger.add(f"passthrough:{scope}", spent)
                if ledger.is_inside("http"):
                    ledger.add(f"passthrough_http:{scope}", spent)

        def timed_send(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return real_send(*args, **kwargs)
            finally:
                local.sent = getattr(local, "sent", 0.0) + time.thread_time() - started

        responses_mock._on_request, responses_mock._real_send = timed_on_request, timed_send
        try:
            yield
        finally:
            del responses_mock._on_request
            responses_mock._real_send = real_send

    @contextlib.contextmanager
    def _turns(self) -> Iterator[None]:
        """Wrap the worker's ``run_strategy`` (when it has one): scope "turn", thread CPU, outcome."""
        from klineo.runner import worker

        original = getattr(worker, "run_strategy", None)
        if original is None:  # another design: every request then counts as the batch's
            yield
            return
        ledger, meter = self, self.meter

        labels = itertools.count()

        def timed_turn(*args: Any, **kwargs: Any) -> Any:
            label, started = next(labels), time.thread_time()
            with meter.scope("turn"), meter.turn(label):
                try:
                    result = original(*args, **kwargs)
                finally:
                    ledger.add("turns", time.thread_time() - started)
            outcome = getattr(result, "outcome", "unknown")
            with ledger._lock:
                ledger.outcomes[outcome] += 1
                ledger.turn_outcomes[label] = outcome
                if outcome == "ordered" and ledger.first_order is None:
                    ledger.first_order = (*args, time.time())
            return result

        worker.run_strategy = timed_turn
        try:
            yield
        finally:
            worker.run_strategy = original


def _phase_strategies(kind: str, count: int, symbols: dict[str, str], users: list[tuple[str, str]]) -> list:
    """Store ``count`` active strategies of ``kind``; their (user, strategy id)."""
    from decimal import Decimal

    from klineo.store import strategies as strategy_store

    from bench.runner_tick import made_before_the_tick

    now, names, refs = made_before_the_tick(), list(symbols), []
    for index in range(count):
        user, connection_id = users[index % len(users)]
        symbol = names[index % len(names)]
        strategy = strategy_store.Strategy(
            user_id=user, strategy_id=strategy_store.new_strategy_id(), connection_id=connection_id,
            environment="production", symbol=symbol, interval="1m",
            type="rsi_threshold" if kind == "hold" else "sma_crossover",
            parameters=HOLD_PARAMETERS if kind == "hold" else SMA_PARAMETERS,
            size=Decimal(symbols[symbol]), mode="paper" if kind == "paper" else "live",
            status="active", created_at=now, updated_at=now,
        )
        strategy_store.put_new_strategy(strategy)
        refs.append((user, strategy.strategy_id))
    return refs


def _drain_one_by_one(stack: Any, queue: tuple[str, str], total: int, meter: DynamoMeter,
                      ledger: CpuLedger) -> int:
    """Hand the queued messages to one worker, batch after batch; count each invocation's process CPU."""
    import boto3

    from bench.runner_tick import REGION
    from local.scheduler import sqs_event

    queue_url, queue_arn = queue
    sqs, done, invocations = boto3.client("sqs", region_name=REGION), 0, 0
    deadline = time.monotonic() + 300
    while done < total and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=360).get(
            "Messages", []
        )
        if not messages:
            time.sleep(0.02)  # as Lambda's poller: SQS may hide a message for a moment
            continue
        meter.default_scope = "batch"
        started = time.process_time()
        stack.invoke("strategy_worker", sqs_event(messages, queue_arn, REGION), remaining_ms=60_000)
        ledger.add("worker_process", time.process_time() - started)
        meter.default_scope = "other"
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        done, invocations = done + len(messages), invocations + 1
    return invocations


def _dispatch(stack: Any, meter: DynamoMeter, ledger: CpuLedger) -> dict[str, Any]:
    from bench.runner_tick import REGION
    from local.scheduler import scheduler_event

    event = scheduler_event(
        f"arn:aws:scheduler:{REGION}:123456789012:schedule/default/klineo-dev-strategy-tick",
        REGION, "123456789012",
    )
    meter.default_scope = "dispatcher"
    started = time.process_time()
    summary = stack.invoke("strategy_dispatcher", event, remaining_ms=50_000)
    ledger.add("dispatcher_process", time.process_time() - started)
    meter.default_scope = "other"
    return summary


def cpu_figures(
    seconds: Mapping[str, float], probes: Mapping[str, float], probe_total: float,
) -> dict[str, float]:
    """A phase's CPU seconds, raw and with the fakes taken out (see the module docstring).

    ``seconds`` is the ledger's (by key and scope), ``probes`` the meter's own CPU by scope and
    ``probe_total`` all of it. botocore's and requests' shares are their calls' thread CPU in the
    turns without what the fakes spent inside them (moto's stub or passthrough, the meter's reads,
    full garbage collections).
    """
    s = Counter(seconds)

    def fakes(*scopes: str) -> float:
        return sum(s[f"stub:{x}"] + s[f"passthrough:{x}"] + s[f"gc:{x}"] + probes.get(x, 0.0) for x in scopes)

    return {
        "worker_process": s["worker_process"],
        "moto": sum(v for k, v in s.items() if k.startswith(("stub:", "passthrough:"))),
        "simulator": s["simulator"],
        "meter": probe_total,
        "full_gc": sum(v for k, v in s.items() if k.startswith("gc:")),
        "runner_all_in": max(0.0, s["worker_process"] - fakes("batch", "turn") - s["simulator"]),
        "runner_in_turns": max(0.0, s["turns"] - fakes("turn")),
        "botocore_in_turns": max(
            0.0, s["aws_call:turn"] - s["stub:turn"] - s["gc_call:turn"] - probes.get("turn", 0.0)
        ),
        "requests_in_turns": max(0.0, s["http_call:turn"] - s["passthrough_http:turn"] - s["gc_http:turn"]),
        "dispatcher": max(0.0, s["dispatcher_process"] - fakes("dispatcher")),
    }


def _cpu(ledger: CpuLedger, meter: DynamoMeter) -> dict[str, float]:
    return cpu_figures(ledger.seconds, meter.probe_cpu, meter.probe_cpu_s)


def _run_phase(
    kind: str, count: int, env: dict[str, Any], meter: DynamoMeter, ledger: CpuLedger,
) -> KindFigures:
    from klineo.store.flags import set_user_kill_switch
    from klineo.store.strategies import pause_strategy

    from bench.runner_tick import _wait_for_early_minute

    stack, users = env["stack"], env["users"]
    refs = _phase_strategies(kind, count, env["symbols"], users)
    for user, _ in users:
        set_user_kill_switch(user, kind == "skipped")
    if kind == "live":
        _wait_for_weight_to_spare(count, len(env["symbols"]))
    _wait_for_early_minute(env["latest_start_second"])
    stack.sim.clear_journal()
    meter.reset()
    ledger.reset()
    summary = _dispatch(stack, meter, ledger)
    invocations = _drain_one_by_one(stack, env["queue"], summary["messages"], meter, ledger)
    figures = KindFigures(
        kind=kind, ticks=summary["strategies"], outcomes=Counter(ledger.outcomes),
        dynamo={scope: meter.totals(scope) for scope in ("turn", "batch", "dispatcher")},
        intended=meter.totals("turn", turns={
            label for label, outcome in ledger.turn_outcomes.items() if outcome == EXPECTED_OUTCOME[kind]
        }),
        operations={scope: meter.by_operation(scope) for scope in ("turn", "batch", "dispatcher")},
        binance=Counter(f"{r.method} {r.path}" for r in stack.sim.journal),
        cpu=_cpu(ledger, meter), invocations=invocations,
    )
    for user, strategy_id in refs:
        pause_strategy(user, strategy_id, "bench phase over")
    return figures


def _wait_for_weight_to_spare(orders: int, symbols: int) -> None:
    """Start a live phase in a minute whose request weight lets every one of its ``orders`` read its fills.

    A live turn reads its order's fills (userTrades, weight 5) only while the minute's spare weight is at
    least ``FILLS_READ_RESERVE``; the rest are estimated and left to the reconciler. A phase that starts in
    the minute of heavier work before it (the warm-up, or a live phase just before on a fast machine) read
    the fills of only its first orders: the median live phase of a run recorded on a faster machine read
    40 of its 100, and so measured a lighter turn than the one every order makes at a quiet minute. When
    this container's spare weight cannot cover every fills read and the phase's klines (at most weight 10
    a symbol) above the reserve, wait for the next minute.
    """
    from klineo.binance.client import get_client
    from klineo.binance.enums import Environment, Market
    from klineo.binance.ratelimit import endpoint_weight
    from klineo.runner.execution import FILLS_READ_RESERVE

    needed = FILLS_READ_RESERVE + orders * endpoint_weight("GET", "/fapi/v1/userTrades") + symbols * 10
    if get_client(Market.FUTURES, Environment.PRODUCTION).spare_weight() < needed:
        time.sleep(60 - time.time() % 60 + 0.2)


def measure_kinds(
    per_kind: int, symbols: int, per_user: int, latency_ms: float, kinds: tuple[str, ...] = KINDS,
    *, latest_start_second: int = 30, fakes: str = "process", rounds: int = 1,
) -> dict[str, KindFigures]:
    """``rounds`` phases per kind of tick on a fresh stack, ``per_user`` strategies per user; the figures
    of each kind's median phase (``median_phase``).

    The rounds interleave the kinds (hold, paper, live, skipped, hold, ...), so that a slow stretch of
    a shared machine lands on every kind alike rather than on one. ``fakes``: "process" runs moto's
    server and the simulator in a child process (the measure), "inline" in this one, as before (to
    see what they cost the runner's figures).
    """
    import math
    import tempfile
    from pathlib import Path

    import boto3

    from bench.dynamo_units import schemas_from_create_params
    from bench.runner_tick import REGION, _store_users, _symbols, accounts_file, simulator_symbols
    from bench.stack import local_stack, quiet_stdout, remote_stack
    from local.template import Resolver, load_template, table_definitions

    chosen = _symbols(symbols)
    template = load_template()
    resolver = Resolver(template, parameters={"Stage": "dev"}, region=REGION)
    schemas = schemas_from_create_params({k: v["create"] for k, v in table_definitions(resolver).items()})
    queue_name = resolver.resolve(template["Resources"]["StrategyQueue"]["Properties"]["QueueName"])
    with (
        tempfile.TemporaryDirectory(prefix="klineo-runner-kinds-") as folder,
        simulator_symbols(list(chosen)),
    ):
        path, accounts = accounts_file(Path(folder), max(1, math.ceil(per_kind / per_user)))
        if fakes not in FAKES:
            raise ValueError(f"fakes must be one of {FAKES}")
        stack_of = (local_stack if fakes == "inline"
                    else functools.partial(remote_stack, symbols=tuple(chosen)))
        with stack_of(latency_ms=latency_ms, accounts_file=path) as stack, quiet_stdout():
            sqs = boto3.client("sqs", region_name=REGION)
            url = sqs.create_queue(QueueName=queue_name, Attributes={"VisibilityTimeout": "360"})["QueueUrl"]
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
            arn = attributes["QueueArn"]
            env = {"stack": stack, "users": _store_users(accounts), "symbols": chosen, "queue": (url, arn),
                   "latest_start_second": latest_start_second}
            meter = DynamoMeter(schemas)
            ledger = CpuLedger(meter)
            with meter.active(), ledger.hooks():
                # Warm-up, not reported: the first live tick of every connection fills the container's
                # caches (clients, secrets, exchangeInfo, server time), as a warm Lambda container has them,
                # and on every (connection, symbol) pair the phases trade (strategy i: user i mod users,
                # symbol i mod symbols) makes the once-per-symbol check of its leverage against
                # max_leverage (klineo.services.symbol_settings), as connections that traded before.
                _run_phase("live", max(len(env["users"]), len(chosen)), env, meter, ledger)
                phases: dict[str, list[KindFigures]] = {kind: [] for kind in kinds}
                with _as_a_warm_container():
                    for _ in range(max(1, rounds)):
                        for kind in kinds:
                            phases[kind].append(_run_phase(kind, per_kind, env, meter, ledger))
                    figures = {kind: median_phase(runs) for kind, runs in phases.items()}
                    if "live" in figures:
                        figures["live"].warm = _replay_warm(ledger.first_order)
                        figures["live"].cold = _replay_warm(ledger.first_order, cold=True)
                return figures


@contextlib.contextmanager
def _as_a_warm_container() -> Iterator[None]:
    """This process collects garbage as a warm Lambda container does for the block: what exists frozen
    (the warm-up stands for the init), young passes at the warm threshold. A Lambda runtime's init sets
    that up (``klineo.lambda_collection_regime``), a plain Python process does not. Undone after."""
    import gc

    from klineo import lambda_collection_regime

    thresholds = gc.get_threshold()
    lambda_collection_regime()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def median_phase(phases: list[KindFigures]) -> KindFigures:
    """Of one kind's phases, the one whose own CPU is the median (the lower of the middle two), with
    every phase's own CPU in ``own_rounds``.

    A whole phase is kept, not a median per column, so that its requests, units, outcomes and CPU
    split stay one consistent measurement. The rounds' spread is printed beside it: on a shared
    machine one phase's own CPU moves by +-15 % from the next, which a single phase's verdict hid.
    """
    if not phases:
        raise ValueError("no phase to choose from")
    ranked = sorted(phases, key=lambda phase: phase.own_cpu_ms)
    chosen = ranked[(len(ranked) - 1) // 2]
    return dataclasses.replace(chosen, own_rounds=tuple(phase.own_cpu_ms for phase in phases))


def _replay_warm(first_order: tuple[Any, Any, float] | None, *, cold: bool = False) -> Any:
    """The first live order's turn replayed warm (``bench.warm_turn``), or with its caches evicted around its
    calls (``cold``), or the reason it was not."""
    from bench.warm_turn import cold_turns, warm_turns

    if first_order is None:
        return "no live order was placed"
    try:
        return (cold_turns if cold else warm_turns)(*first_order)
    except ValueError as refusal:
        return str(refusal)


# ------------------------------------------------------------------ report


def _mixed(figures: dict[str, KindFigures], order_every: int, value: Any) -> float:
    """``value(figure)`` for the realistic mix: a live order every ``order_every`` ticks, else holds."""
    share = 1 / order_every
    return (1 - share) * value(figures["hold"]) + share * value(figures["live"])


def _kind_table(report: Any, figures: dict[str, KindFigures]) -> None:
    report.line("   per strategy tick, by kind (DynamoDB: turn + the batch's shared reads + dispatcher):")
    report.table(
        ["kind", "ticks", "as intended", "requests", "turn / batch / dispatcher", "RRU", "WRU (GSI)",
         "Binance own", "CPU all in ms", "CPU in turns ms (botocore / requests)", "own CPU ms"],
        [[f.kind, f.ticks, f"{f.purity:.0%}", f"{f.per_tick(None, 'requests'):.2f}",
          " / ".join(f"{f.per_tick(s, 'requests'):.2f}" for s in ("turn", "batch", "dispatcher")),
          f"{f.per_tick(None, 'rru'):.2f}",
          f"{f.per_tick(None, 'wru'):.2f} ({f.per_tick(None, 'index_wru'):.2f})",
          f"{f.turn_binance:.2f}", f"{f.cpu_ms('runner_all_in'):.2f}",
          f"{f.cpu_ms('runner_in_turns'):.2f} ({f.cpu_ms('botocore_in_turns'):.2f} / "
          f"{f.cpu_ms('requests_in_turns'):.2f})", f"{f.own_cpu_ms:.2f}"]
         for f in figures.values()],
    )
    for f in figures.values():
        ops = "; ".join(f"{scope}: " + ", ".join(f"{op} {n}" for op, n in counts.items())
                        for scope, counts in f.operations.items() if counts)
        report.line(f"   {f.kind}: requests in the phase by scope: {ops}; outcomes {dict(f.outcomes)}")
    if "live" in figures:
        live = figures["live"].binance
        report.line(f"   live: fills read in the turn for {live['GET /fapi/v1/userTrades']} of its "
                    f"{live['POST /fapi/v1/order']} orders (a turn reads them while the minute's weight "
                    "leaves FILLS_READ_RESERVE; the phase starts in a minute that leaves room for all)")
    fakes = {k: sum(f.cpu[k] for f in figures.values()) for k in ("moto", "simulator", "meter", "full_gc")}
    report.line(
        "   CPU taken out as the fakes' (all phases): moto " + f"{fakes['moto']:.2f} s, simulator "
        f"{fakes['simulator']:.2f} s (both 0 when they run in a child process), the unit meter's own reads "
        f"and sizing {fakes['meter']:.2f} s, full garbage collections {fakes['full_gc']:.2f} s"
    )
    if "live" in figures:
        _replay_lines(report, figures["live"])


def _rounds_text(figure: KindFigures) -> str:
    """"median phase of 3 rounds (1.10 / 1.32 / 1.17 ms); " when the kind ran more than once, else ""."""
    if len(figure.own_rounds) < 2:
        return ""
    each = " / ".join(f"{own:.2f}" for own in figure.own_rounds)
    return f"median phase of {len(figure.own_rounds)} rounds ({each} ms); "


# How each replay of the live turn (bench/warm_turn.py) was played, and what its figure is for.
_REPLAYS = {
    "warm": ("its first order's turn played {turns} times back to back in one thread, AWS and Binance "
             "answered at once by stubs",
             ", where the same code runs between botocore's and requests' work; a floor for the code, not a "
             "deployment figure"),
    "cold": ("the same turn {turns} times, the caches evicted before it and around each call as the "
             "libraries' work evicts them, that work's time taken out",
             "; it moves about 1 % run to run where the phase moves 5-15 %: compare changes on it, judge on "
             "the phase"),
}


def _replay_lines(report: Any, live: KindFigures) -> None:
    """The live turn's own code replayed warm, then cold (bench/warm_turn.py), beside its phase figure."""
    from bench.warm_turn import ColdTurns, WarmTurns

    for kind, (played, meant) in _REPLAYS.items():
        replay = getattr(live, kind)
        if not isinstance(replay, WarmTurns):
            report.line(f"   live turn replayed {kind}: not measured ({replay})")
            continue
        reads = f"; {replay.reads} expired-cache reads let through" if isinstance(replay, ColdTurns) else ""
        report.line(
            f"   live turn replayed {kind} (bench/warm_turn.py: {played.format(turns=replay.turns)}): "
            f"own CPU {replay.median_ms:.2f} ms (p10 {replay.p10_ms:.2f}, p90 {replay.p90_ms:.2f}{reads}) "
            f"against {live.own_cpu_ms:.2f} ms in the phase{meant}"
        )
        report.figure(f"live_{kind}_own_cpu_ms", dataclasses.asdict(replay))


def _dollars(report: Any, figures: dict[str, KindFigures], order_every: int) -> float:
    from bench.dynamo_units import DEFAULT_PRICE_REGION, ON_DEMAND_PRICES, dollars_per_month

    minutes = 60 * 24 * 30
    report.line(f"   DynamoDB on-demand $ per 1,000 strategy-months, 1m candles ({minutes:,} ticks a month):")
    rows, headline = [], 0.0
    cases = [(f"mix: 1 live order every {order_every} ticks, holds otherwise", None)]
    cases += [(f"every tick a {kind}", kind) for kind in figures]
    for region, price in ON_DEMAND_PRICES.items():
        for name, kind in cases:
            def units(key: str, kind: str | None = kind) -> float:
                if kind is None:
                    return _mixed(figures, order_every, lambda f: f.per_tick(None, key))
                return figures[kind].per_tick(None, key)
            dollars = dollars_per_month(units("wru"), units("rru"), price, ticks_per_month=minutes)
            rows.append([region, name, f"{units('wru'):.2f}", f"{units('rru'):.2f}", f"${dollars:,.2f}"])
            if region == DEFAULT_PRICE_REGION and kind == "hold":
                headline = dollars
    report.table(["region", "ticks", "WRU/tick", "RRU/tick", "$ / 1,000 strategy-months"], rows)
    for price in ON_DEMAND_PRICES.values():
        report.line(f"   price {price.region}: ${price.per_million_wru} per million WRU, "
                    f"${price.per_million_rru} per million RRU ({price.source})")
    _break_even(report, figures, minutes)
    return headline


def _break_even(report: Any, figures: dict[str, KindFigures], minutes: int) -> None:
    """How many live orders a strategy-month may hold before the $30 target is crossed."""
    from bench.dynamo_units import DEFAULT_PRICE_REGION, ON_DEMAND_PRICES, dollars_per_month

    if "hold" not in figures or "live" not in figures:
        return
    price = ON_DEMAND_PRICES[DEFAULT_PRICE_REGION]
    hold, live = figures["hold"], figures["live"]

    def dollars(kind: KindFigures) -> float:
        return dollars_per_month(kind.per_tick(None, "wru"), kind.per_tick(None, "rru"), price,
                                 ticks_per_month=minutes)

    per_order = (dollars(live) - dollars(hold)) / minutes  # per 1,000 strategies, one order each
    room = 30 - dollars(hold)
    if per_order > 0 and room > 0:
        orders = room / per_order
        report.line(f"   break-even ({DEFAULT_PRICE_REGION}): up to {orders:,.0f} live orders per "
                    f"strategy-month ({orders / 30:.1f} a day) keep a strategy under $30 per 1,000 "
                    "strategy-months")


def deployment_shape() -> dict[str, Any]:
    """The worker's deployment figures the fan-out model needs, from template.yaml and klineo.runner."""
    from klineo.runner import dispatcher as dispatcher_module
    from klineo.runner import messages, worker

    from local.template import load_template

    template = load_template()
    resources = template["Resources"]
    function = resources["StrategyWorkerFunction"]["Properties"]
    queue = next(event["Properties"] for event in function["Events"].values() if event["Type"] == "SQS")
    globals_ = template.get("Globals", {}).get("Function", {})
    memory = function.get("MemorySize", globals_.get("MemorySize", 128))
    dispatcher = resources["StrategyDispatcherFunction"]["Properties"]
    return {
        "concurrency": int(template["Parameters"]["WorkerReservedConcurrency"]["Default"]),
        "batch_size": int(queue.get("BatchSize", 10)),
        "batching_window_s": float(queue.get("MaximumBatchingWindowInSeconds", 0)),
        "memory_mb": int(memory),
        "dispatcher_memory_mb": int(dispatcher.get("MemorySize", globals_.get("MemorySize", 128))),
        "strategy_threads": int(getattr(worker, "STRATEGY_THREADS", 10)),
        "candle_threads": int(getattr(worker, "CANDLE_THREADS", 8)),
        "send_threads": int(getattr(dispatcher_module, "_SEND_THREADS", 4)),
        "per_message": int(getattr(messages, "MAX_STRATEGIES_PER_MESSAGE", 100)),
    }


def fanout_inputs(figures: dict[str, KindFigures], order_every: int) -> Any:
    """The fan-out model's inputs: the deployment's shape and the mix's measured per-tick costs."""
    from bench.fanout import FanoutInputs

    def mix(value: Any) -> float:
        return _mixed(figures, order_every, value)

    hold = figures["hold"]
    return FanoutInputs(
        **deployment_shape(),
        cpu_ms=mix(lambda f: f.cpu_ms("runner_all_in")),
        turn_dynamo_calls=mix(lambda f: f.per_tick("turn", "requests")),
        turn_binance_calls=mix(lambda f: f.turn_binance),
        shared_dynamo_calls=mix(lambda f: f.per_tick("batch", "requests")),
        dispatcher_cpu_ms=mix(lambda f: f.cpu_ms("dispatcher")),
        index_bytes=hold.per_tick("dispatcher", "read_bytes") or 1000.0,
    )


def _lambda_cost(report: Any, inputs: Any, result: Any) -> None:
    """What the fan-out model's load costs in Lambda, per architecture (the deployed one first)."""
    from bench.fanout import LAMBDA_PRICES, lambda_dollars
    from local.template import load_template

    deployed = load_template()["Parameters"]["Architecture"]["Default"]
    minutes = 60 * 24 * 30
    dollars = {arch: lambda_dollars(inputs, result, price, minutes) for arch, price in LAMBDA_PRICES.items()}
    shown = "; ".join(f"{arch}{' (deployed)' if arch == deployed else ''} ${value:,.2f}"
                      for arch, value in sorted(dollars.items(), key=lambda item: item[0] != deployed))
    price = LAMBDA_PRICES[deployed]
    report.line(
        f"   Lambda (the worker's batches and the dispatcher, by the model above, 1m candles): $ per 1,000 "
        f"strategy-months {shown}; price {price.region}: ${price.per_gb_second} per GB-s, "
        f"${price.per_million_requests} per million requests ({price.source}); SQS not priced"
    )
    report.figure("lambda_dollars_per_1000_strategy_months", dollars)


def report_kinds(report: Any, figures: dict[str, KindFigures], order_every: int) -> None:
    """Print the per-kind figures, the dollars and the fan-out model, and record issue 16's targets."""
    import dataclasses as dc

    from bench.fanout import fanout

    _kind_table(report, figures)
    for kind, figure in figures.items():
        report.figure(f"kind_{kind}", {
            "ticks": figure.ticks, "outcomes": dict(figure.outcomes), "dynamo": figure.dynamo,
            "operations": figure.operations, "binance": dict(figure.binance), "cpu": figure.cpu,
            "own_cpu_ms_by_round": list(figure.own_rounds),
        })
    hold, live = figures["hold"], figures["live"]
    dollars = _dollars(report, figures, order_every)
    inputs = fanout_inputs(figures, order_every)
    result = fanout(inputs)
    report.line(f"   fan-out model (bench/fanout.py), mix as above: inputs {dc.asdict(inputs)}")
    report.line(
        f"   -> {result.messages} messages in {result.batches} batches of ~{result.strategies_per_batch} "
        f"strategies, {result.waves} waves; dispatcher {result.dispatch_s:.2f} s, "
        f"one batch {result.batch_s:.2f} s, "
        f"last strategy done {result.total_s:.1f} s after the close"
    )
    report.figure("fanout", {"inputs": dc.asdict(inputs), "result": dc.asdict(result)})
    _lambda_cost(report, inputs, result)
    # The issue counts the batch's gate read apart ("read the gates once per (user, connection)
    # per worker batch"): the verdicts are on the turn's own requests, the shared share beside them.
    report.target("hold: DynamoDB requests per tick (the turn's own)", "<= 1",
                  f"{hold.per_tick('turn', 'requests'):.2f}", hold.per_tick("turn", "requests") <= 1,
                  f"with the batch's and dispatcher's shared reads {hold.per_tick(None, 'requests'):.2f}")
    report.target("hold: write units per tick", "<= 1", f"{hold.per_tick(None, 'wru'):.2f} WRU",
                  hold.per_tick(None, "wru") <= 1)
    report.target("live order: DynamoDB requests per tick (the turn's own)", "<= 3",
                  f"{live.per_tick('turn', 'requests'):.2f}", live.per_tick("turn", "requests") <= 3,
                  f"with the shared reads {live.per_tick(None, 'requests'):.2f}")
    from bench.dynamo_units import DEFAULT_PRICE_REGION

    # The issue's own figure ("$0.08 per strategy-month") priced a hold tick's units: the verdict
    # is on that basis; the mix and the break-even order rate are printed above.
    report.target(f"DynamoDB $ per 1,000 strategy-months (every tick a hold, {DEFAULT_PRICE_REGION})",
                  "<= $30", f"${dollars:,.2f}", dollars <= 30,
                  f"mix of 1 order every {order_every} ticks: see the table")
    for kind, figure in figures.items():
        own = figure.own_cpu_ms
        report.target(f"runner's own CPU per tick (turn without botocore and requests): {kind}", "<= 1 ms",
                      f"{own:.2f} ms", own <= 1, f"{_rounds_text(figure)}all in "
                      f"{figure.cpu_ms('runner_all_in'):.2f} ms, in turns "
                      f"{figure.cpu_ms('runner_in_turns'):.2f} ms, of it botocore "
                      f"{figure.cpu_ms('botocore_in_turns'):.2f} ms, requests "
                      f"{figure.cpu_ms('requests_in_turns'):.2f} ms")
    report.target("fan-out: 10,000 strategies over 100 markets", "<= 20 s", f"{result.total_s:.1f} s",
                  result.total_s <= 20)
