"""Runner fixtures: moto (tables, queues from template.yaml), the Binance simulator, the real handlers.

Reused from tests/integration/api/conftest.py: ``sim_env`` (every Binance URL on a fresh
simulator, layer caches cleared) and ``invoke`` (a function's lambda_handler with a context).
Added here:
- ``extra_symbols``: more USDT-M symbols in the simulator (it lists three), made before it starts;
- ``runner``: a ``Runner`` that creates users, connections and strategies in the stores, runs a
  dispatcher tick through ``functions.strategy_dispatcher.app`` and drains the queue through
  ``functions.strategy_worker.app`` in SQS events, and reads back runs, strategies and the journal;
- ``atomic_dynamodb``: moto's item writes and transactions serialised (DynamoDB's are atomic).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import wraps
from typing import Any
from unittest.mock import patch

import boto3
import pytest
from klineo.binance import Credentials, KeyType
from klineo.runner import candles as candle_cache
from klineo.runner import execution, worker
from klineo.runner.schedule import MINUTE_MS
from klineo.runner.worker import DEFAULT_TIMEOUT_MS, handle_batch
from klineo.services import orders as order_core
from klineo.settings import get_settings
from klineo.store import aws as aws_clients
from klineo.store import runs as run_store
from klineo.store import strategies as strategy_store
from klineo.store.connections import Connection, put_connection
from klineo.store.flags import set_global_kill_switch, set_user_kill_switch
from klineo.store.secrets import put_credentials
from klineo.timestamps import utc_iso
from moto.dynamodb.models import DynamoDBBackend

from local.binance_sim import config as sim_config
from local.binance_sim import market as sim_market
from local.binance_sim.accounts import DemoAccount
from local.scheduler import scheduler_event, sqs_event
from tests.helpers import load_event
from tests.iam_policy import PolicyGuard
from tests.integration.api.conftest import LambdaContext, sim_env  # noqa: F401 - fixture re-exported here
from tests.integration.api.conftest import iam as iam  # fixture
from tests.integration.api.conftest import invoke as invoke
from tests.integration.api.conftest import reconcile as reconcile  # fixture

EXTRA_SYMBOLS = tuple(f"X{index:02d}USDT" for index in range(1, 18))
# The symbols the runner tests put strategies on (the price seed keeps SMA 2/3 from tying on them).
TRADED_SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "X01USDT", "X02USDT")
ORDER_PATH = "/fapi/v1/order"
# How long before now a test's strategy was created by default: before any candle a test ticks.
CREATED_BEFORE_MS = 24 * 60 * MINUTE_MS
KLINES_PATH = "/fapi/v1/klines"


def crash_first_call(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> None:
    """Make ``owner.name`` raise once, as a container lost mid-turn, then behave as before."""
    real = getattr(owner, name)
    calls = {"n": 0}

    def crash_once(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("container lost")
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, crash_once)


def add_simulator_symbols(names: tuple[str, ...]) -> dict[str, Any]:
    """Specs for more symbols, cloned from BNBUSDT's filters (each gets its own price path)."""
    template = sim_market.SYMBOLS["BNBUSDT"]
    return {name: dataclasses.replace(template, symbol=name, base_asset=name.removesuffix("USDT"))
            for name in names}


def sma_2_3_ties(series: sim_market.PriceSeries, boundary_s: int) -> bool:
    """SMA 2 equals SMA 3 on the 1m closes up to the candle that closes at ``boundary_s`` (c1 + c2 = 2 c3)."""
    c1, c2, c3 = (Decimal(f"{series.price_at(boundary_s - 60 * back):.8f}") for back in range(3))
    return c1 + c2 == 2 * c3


def untied_price_seed(now_s: float, minutes: int = 4) -> int:
    """The first price seed, from the simulator's default, under which the default strategy (SMA 2/3) has
    a side on every symbol the runner tests trade, for the candles closing from one minute before
    ``now_s`` to ``minutes`` later.

    The simulator's prices have a few decimals, so SMA 2 and SMA 3 are exactly equal (a hold) at about
    one minute in 200 to 1,500 per symbol. A test that expects the first run to trade would then fail
    for that whole minute.
    """
    seed = sim_config.SimulatorConfig().price_seed
    boundaries = [(int(now_s) // 60 + offset) * 60 for offset in range(-1, minutes)]
    specs = [sim_market.SYMBOLS[symbol] for symbol in TRADED_SYMBOLS]
    while any(sma_2_3_ties(sim_market.PriceSeries(spec, seed), boundary)
              for spec in specs for boundary in boundaries):
        seed += 1
    return seed


@pytest.fixture
def binance_sim(binance_sim_factory: Callable[..., Any], extra_symbols: tuple[str, ...]) -> Any:
    """A fresh simulator (with the extra symbols) on a price seed where SMA 2/3 never ties near now."""
    return binance_sim_factory(price_seed=untied_price_seed(time.time()))


@pytest.fixture
def extra_symbols(monkeypatch: pytest.MonkeyPatch) -> tuple[str, ...]:
    """The simulator knows 17 more symbols (X01USDT..X17USDT) besides BTC, ETH and BNB."""
    for name, spec in add_simulator_symbols(EXTRA_SYMBOLS).items():
        monkeypatch.setitem(sim_market.SYMBOLS, name, spec)
    return EXTRA_SYMBOLS


@pytest.fixture(autouse=True)
def atomic_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serialise moto's writes: DynamoDB checks a condition and writes atomically, moto in two steps."""
    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)

        def locked(*args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return __original(*args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, wraps(original)(locked))


@pytest.fixture(autouse=True)
def clock_of_last_tick(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The stale-candle check sees the clock as it was when the last tick was dispatched (+2 s, within
    the tick's minute).

    Tests run in real time: a tick dispatched at second 58 would find its 1m candle superseded two
    seconds later, which never happens to the real dispatcher (it runs at second 0). Tests that
    want a stale candle use one minutes old, which is stale either way.
    """
    pinned: dict[str, int] = {}
    real = execution.is_superseded

    def superseded(close_time: int, interval: str, now_ms: int) -> bool:
        if "tick_ms" in pinned:
            # Never past the tick's own minute either: a tick dispatched at second 59 stays in it.
            minute_end = pinned["tick_ms"] // 60_000 * 60_000 + 59_999
            now_ms = min(now_ms, pinned["tick_ms"] + 2_000, minute_end)
        return real(close_time, interval, now_ms)

    monkeypatch.setattr(execution, "is_superseded", superseded)
    return pinned


@pytest.fixture(autouse=True)
def fast_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorter pauses between order lookups and candle re-checks (same number of tries)."""
    monkeypatch.setattr(order_core, "QUERY_DELAYS_S", (0.05, 0.1, 0.2, 0.4))
    monkeypatch.setattr(candle_cache, "RECHECK_DELAYS_S", (0.2, 0.4))
    candle_cache.clear_cache()


@dataclasses.dataclass(frozen=True)
class ShortContext(LambdaContext):
    """A Lambda context with little time left: the lease a worker takes ends almost at once."""

    remaining_ms: int = 1

    def get_remaining_time_in_millis(self) -> int:
        """What this context was given."""
        return self.remaining_ms


@dataclasses.dataclass
class Tick:
    """One tick: what the dispatcher returned and what the worker invocations answered."""

    dispatch: dict[str, Any]
    bodies: list[dict[str, Any]]
    responses: list[dict[str, Any]]

    @property
    def failures(self) -> list[str]:
        """Message ids the worker asked SQS to redeliver."""
        return [f["itemIdentifier"] for r in self.responses for f in r.get("batchItemFailures", [])]


class Runner:
    """Builds users' strategies in the stores and runs the real dispatcher and worker against them."""

    def __init__(self, simulator: Any, aws: Any, invoker: Callable[[str, dict[str, Any]], Any],
                 pinned: dict[str, int], iam: PolicyGuard):
        self.pinned = pinned
        self.iam = iam
        self.sim = simulator
        self.aws = aws
        self.invoke = invoker
        self.sqs = boto3.client("sqs", region_name=aws.region)
        self.queue_url = aws.refs["StrategyQueue"]
        self.queue_arn = aws.attributes[("StrategyQueue", "Arn")]
        self.deliveries: dict[str, int] = {}  # message id -> times work_event handed it to the worker

    # ------------------------------------------------------------------ setup
    def connection(self, user_id: str, account_id: str = "futures-full", *, futures_enabled: bool = True,
                   account: DemoAccount | None = None, connection_id: str | None = None) -> str:
        """A stored connection (secret + item) of ``user_id`` on a demo account's keys; returns its id."""
        account = account or self.sim.account(account_id)
        connection_id = connection_id or uuid.uuid4().hex
        secret = account.secret if account.key_type == "HMAC" else account.private_key_pem
        name = put_credentials(user_id, connection_id, Credentials(
            api_key=account.api_key, secret=secret, key_type=KeyType(account.key_type.lower())))
        put_connection(Connection(
            user_id=user_id, connection_id=connection_id, label="runner test",
            environment=account.environment,
            key_type=account.key_type.lower(), api_key_masked=account.api_key[:4] + "...",
            secret_name=name, futures_enabled=futures_enabled, created_at="2026-01-01T00:00:00+00:00",
        ))
        return connection_id

    def strategy(self, user_id: str, connection_id: str, *, symbol: str = "BTCUSDT", interval: str = "1m",
                 type: str = "sma_crossover", parameters: dict[str, Any] | None = None,
                 size: str | None = "0.002", mode: str = "live", environment: str = "production",
                 strategy_id: str | None = None, key_failures: int = 0, created_at: str | None = None,
                 failed_runs: int = 0, **settings: Any) -> str:
        """A stored active strategy; SMA 2/3 by default (always long or short: it trades on its first run).

        ``settings``: trading settings (``TradingSettings`` fields, e.g. stop_loss_pct="2");
        ``size=None`` with quote_size_usdt or size_pct there; ``created_at`` (also the first
        ``updated_at``) defaults to ``CREATED_BEFORE_MS`` before now, before every candle a test ticks (the
        dispatcher sends a strategy only the candles that close after it became active); ``key_failures``
        and ``failed_runs``: the runner's counts so far.
        """
        now = created_at or utc_iso(int(time.time() * 1000) - CREATED_BEFORE_MS)
        strategy = strategy_store.Strategy(
            user_id=user_id, strategy_id=strategy_id or strategy_store.new_strategy_id(),
            connection_id=connection_id, key_failures=key_failures, failed_runs=failed_runs,
            environment=environment, symbol=symbol, interval=interval, type=type,
            parameters=parameters if parameters is not None else {"fast": 2, "slow": 3, "allow_short": True},
            size=Decimal(size) if size is not None else None, mode=mode, status="active", created_at=now,
            updated_at=now, settings=strategy_store.TradingSettings(
                **{k: Decimal(v) if isinstance(v, str) and k != "direction" and k != "margin_type" else v
                   for k, v in settings.items()}),
        )
        strategy_store.put_new_strategy(strategy)
        return strategy.strategy_id

    def active_before(self, user_id: str, strategy_id: str) -> None:
        """Move the moment a strategy became active (its last resume, else its creation) ``CREATED_BEFORE_MS``
        before now, before every candle a test ticks: a strategy created or resumed through the API now is
        otherwise first dispatched on the candle that closes after it, the next minute's."""
        before = int(time.time() * 1000) - CREATED_BEFORE_MS
        key = {"TableName": get_settings().data_table,
               "Key": strategy_store.strategy_key(user_id, strategy_id)}
        resumed = "active_since" in aws_clients.dynamodb().get_item(**key, ConsistentRead=True)["Item"]
        at = {":at": {"N": str(before)}} if resumed else {":at": {"S": utc_iso(before)}}
        aws_clients.dynamodb().update_item(
            **key, UpdateExpression=f"SET {'active_since' if resumed else 'created_at'} = :at",
            ExpressionAttributeValues=at)

    def kill_switch(self, user_id: str | None, on: bool = True) -> None:
        """Turn a user's (or, with None, the global) kill switch on or off."""
        if user_id is None:
            set_global_kill_switch(on)
        else:
            set_user_kill_switch(user_id, on)

    # ------------------------------------------------------------------ running
    def tick(self, now_ms: int | None = None, *, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run the dispatcher once with the Scheduler event for ``now_ms`` (default: now)."""
        now_s = (now_ms if now_ms is not None else int(time.time() * 1000)) / 1000
        self.pinned["tick_ms"] = int(now_s * 1000)
        event = event or scheduler_event(
            "arn:aws:scheduler:ap-northeast-1:123456789012:schedule/default/klineo-test-strategy-tick",
            self.aws.region, self.aws.account_id, now=now_s)
        return self.invoke("strategy_dispatcher", event)

    def receive(self) -> list[dict[str, Any]]:
        """Every message now visible on the strategy queue (received, not deleted)."""
        found: list[dict[str, Any]] = []
        while True:
            answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                              AttributeNames=["All"], VisibilityTimeout=30)
            messages = answer.get("Messages", [])
            if not messages:
                return found
            found.extend(messages)

    def work(self, messages: list[dict[str, Any]], batch_size: int = 10) -> list[dict[str, Any]]:
        """Hand messages to the worker in SQS events of ``batch_size``; delete the ones it did not fail."""
        responses = []
        for start in range(0, len(messages), batch_size):
            batch = messages[start:start + batch_size]
            response = self.worker(sqs_event(batch, self.queue_arn, self.aws.region))
            responses.append(response)
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
            for message in batch:
                if message["MessageId"] not in failed:
                    self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return responses

    def work_event(self, event: dict[str, Any], remaining_ms: int | None = None,
                   later_ms: int | None = None) -> dict[str, Any]:
        """Invoke the worker on an SQS event (optionally with a context that has ``remaining_ms`` left).

        ``remaining_ms``: the leases its turns take end that soon, yet its turns are all played (the
        worker's deadline guard, ``TURN_MARGIN_MS``, is lifted): an attempt whose invocation timed out
        right after. ``later_ms``: the batch runs on a runner clock that far ahead of now (leases,
        recvWindow waits); Binance and AWS still see the real time, and the stale-candle check still
        sees the last tick's time (``pinned``) unless the test moves it.
        """
        event = self.delivered(event)
        if remaining_ms is None and later_ms is None:
            return self.worker(event)
        context = ShortContext(function_name="strategy_worker",
                               remaining_ms=remaining_ms or DEFAULT_TIMEOUT_MS)
        guard = -DEFAULT_TIMEOUT_MS if remaining_ms is not None else worker.TURN_MARGIN_MS
        with self.iam.acting_as("strategy_worker"), patch.object(worker, "TURN_MARGIN_MS", guard):
            if later_ms is None:
                from functions.strategy_worker import app

                return app.lambda_handler(event, context)
            return handle_batch(event, context, clock=lambda: time.time() + later_ms / 1000)

    def worker(self, event: dict[str, Any]) -> dict[str, Any]:
        """The worker function on ``event`` with its own Timeout (template.yaml) left, as in a real
        invocation, so that its deadline guard (``TURN_MARGIN_MS``) starts the batch's turns as it would
        there, however slow the machine running the tests."""
        context = ShortContext(function_name="strategy_worker", remaining_ms=DEFAULT_TIMEOUT_MS)
        with self.iam.acting_as("strategy_worker"):
            from functions.strategy_worker import app

            return app.lambda_handler(copy.deepcopy(event), context)

    def work_event_at_once(self, event: dict[str, Any], workers: int = 2) -> None:
        """Hand ``event`` to ``workers`` workers released at the same moment (a message SQS delivered
        twice, run concurrently); returns once all have finished."""
        barrier = threading.Barrier(workers)

        def deliver() -> None:
            barrier.wait()
            self.work_event(event)

        threads = [threading.Thread(target=deliver) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    def delivered(self, event: dict[str, Any]) -> dict[str, Any]:
        """``event`` as SQS hands it over this time: a message given out before counts its receives.

        SQS raises ``ApproximateReceiveCount`` on every receive; a test that hands the worker the
        same event again is a redelivery, and the worker must see it as one (it then reads the
        strategies strongly consistent instead of trusting the dispatcher's snapshots).
        """
        records = []
        for record in event.get("Records", []):
            message_id = record["messageId"]
            self.deliveries[message_id] = self.deliveries.get(message_id, 0) + 1
            count = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
            count += self.deliveries[message_id] - 1
            records.append({**record, "attributes": {**record.get("attributes", {}),
                                                     "ApproximateReceiveCount": str(count)}})
        return {**event, "Records": records}

    def dispatched_event(self) -> dict[str, Any]:
        """Run a tick and return the SQS event holding every message it queued (deleted from the queue)."""
        self.tick()
        messages = self.receive()
        for message in messages:
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return sqs_event(messages, self.queue_arn, self.aws.region)

    def run_tick(self, now_ms: int | None = None) -> Tick:
        """A dispatcher tick, then every message it queued through the worker."""
        dispatch = self.tick(now_ms)
        messages = self.receive()
        responses = self.work(messages)
        return Tick(dispatch=dispatch, bodies=[json.loads(m["Body"]) for m in messages], responses=responses)

    # ------------------------------------------------------------------ reading back
    @property
    def tick_close(self) -> int:
        """Close time of the 1m candle the last tick targeted."""
        return current_close(self.pinned["tick_ms"])

    def runs(self, strategy_id: str) -> list[run_store.Run]:
        """The strategy's runs, newest first."""
        return run_store.list_runs(strategy_id, limit=50)

    def stored(self, user_id: str, strategy_id: str) -> strategy_store.Strategy | None:
        """The strategy as stored now."""
        return strategy_store.get_strategy(user_id, strategy_id, consistent=True)

    def journal(self, method: str | None = None, path: str | None = None) -> list[Any]:
        """The simulator's journal, optionally filtered."""
        return [r for r in self.sim.journal
                if (method is None or r.method == method) and (path is None or r.path == path)]

    def signed_calls(self) -> list[Any]:
        """Journal records of calls made with an API key (every signed call carries one)."""
        return [r for r in self.sim.journal if r.api_key]


@pytest.fixture
def runner(extra_symbols, sim_env, aws, invoke, clock_of_last_tick, iam) -> Iterator[Runner]:  # noqa: F811 - fixture parameters
    """A Runner on moto and a fresh simulator (extra symbols), its handlers under their IAM policies."""
    yield Runner(sim_env, aws, invoke, clock_of_last_tick, iam)


def tick_times(count: int) -> list[int]:
    """The tick times (second 1 of the last ``count`` minutes, oldest first)."""
    now = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS + 1000
    return [now - back * MINUTE_MS for back in range(count - 1, -1, -1)]


def algo_orders(runner: Runner, account: str) -> dict[str, Any]:
    """The simulator's algo orders of ``account``, by clientAlgoId."""
    state = runner.sim.state.futures.state_for(runner.sim.account(account), time.time() * 1000)
    return {a.client_algo_id: a for a in state.algo_orders.values()}


def current_close(now_ms: int | None = None) -> int:
    """Close time of the latest closed 1m candle."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return now_ms // MINUTE_MS * MINUTE_MS - 1


def worker_event_from(bodies: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """An SQS event (as Lambda builds it) carrying these message bodies."""
    event = load_event("strategy_worker")
    template = event["Records"][0]
    records = []
    for body in bodies:
        record = dict(template)
        record["messageId"] = str(uuid.uuid4())
        record["body"] = json.dumps(body)
        record["eventSourceARN"] = queue_arn
        records.append(record)
    event["Records"] = records
    return event
