"""Property-based fuzzing of the whole local stack over HTTP, generated from openapi.json (schemathesis).

Two runs over every operation, each request sent with a bearer token:

- shallow: a user of its own with nothing stored, so generated ids mostly meet a 404;
- deep: on a stack of its own (BTCUSDT's mark pinned), a user with a tested, futures-enabled connection,
  an open long, resting limit orders, a queued backtest job, and a paper and a live strategy; most
  requests have their ids (a connection's, a strategy's, an order's ``clientOrderId``, a job's, and a
  body's or query's ``connection_id`` / ``symbol``) pointed at those, so generated requests reach the
  order, cancel, close, strategy, job and settings code behind the 404, and orders (MARKET, LIMIT and
  conditional ones priced around the mark) reach the simulator and its algo order service. It is
  derandomized (the same generated requests every run). This is how a body
  sent as a JSON array was found to be read as its first item, and a balance ending in zeros past
  DynamoDB's 38 digits to be a 500.

Every answer must be no server error, a status the document lists for the operation, the content
type it lists and a body its schema accepts; a request without (or with a wrong) token must get a 401.
Not checked here: schemathesis's ``negative_data_rejection`` (its invalid case loses its invalid part
on the way, e.g. a missing Authorization header we add back, and then a 200 reads as a failure) and
``missing_required_header`` (a missing Idempotency-Key is a deliberate 428, not in its list).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from local.binance_sim.market import SYMBOLS
from local.openapi import OPENAPI_PATH
from local.template import REPO_ROOT

from .conftest import RunningStack, start_stack

pytestmark = pytest.mark.e2e

# Enough to reach every field's edge cases once or twice; about a minute for all operations.
EXAMPLES_PER_OPERATION = 12
# The deep run's requests do more (Binance calls, transactions): about a minute in all.
DEEP_EXAMPLES_PER_OPERATION = 40
# How often a deep request is aimed at the stored resources rather than left as generated.
AIMED_SHARE = 0.85
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          ignored_auth]
# Fields of which a body takes exactly one (a rule the schema does not express): a generated body that
# has several keeps one, so that it can pass validation and reach the code behind it.
EXCLUSIVE = (("quantity", "quote_quantity"), ("size", "quote_size_usdt", "size_pct"), ("price", "percent"))
# The size a body generated with none gets: an order (it has "side"), a strategy (it has "interval").
DEFAULT_SIZE = {"side": ("quantity", "0.002"), "interval": ("size", "0.002")}
# An order's fields a MARKET order does not take.
NOT_FOR_MARKET = ("price", "triggerPrice", "callbackRate", "activationPrice", "timeInForce", "closePosition",
                  "workingType", "priceProtect")
# The deep stack's BTCUSDT mark price, pinned, so that a shaped order's prices sit where its type needs them.
MARK = Decimal("65000")
TICK = Decimal(SYMBOLS["BTCUSDT"].futures_tick).normalize()  # 0.1
# A backtest's window: six hours the simulator serves candles for, fixed so that a derandomized run repeats.
BACKTEST_WINDOW = {"start": "2026-11-01T00:00:00Z", "end": "2026-11-01T06:00:00Z"}
# Where a conditional order's trigger sits, as a share of the mark: a stop above it for a BUY, below for a
# SELL, a take-profit the other way round (Binance refuses a trigger that would fire at once, -2021).
TRIGGER_AT = {("STOP", "BUY"): Decimal("1.02"), ("STOP", "SELL"): Decimal("0.98"),
              ("TAKE_PROFIT", "BUY"): Decimal("0.98"), ("TAKE_PROFIT", "SELL"): Decimal("1.02")}
# The fields each order type takes beside the ones every order may have (README "Conditional orders").
TYPE_FIELDS = {
    "LIMIT": ("price", "timeInForce"),
    "STOP_MARKET": ("triggerPrice", "closePosition", "workingType", "priceProtect"),
    "TAKE_PROFIT_MARKET": ("triggerPrice", "closePosition", "workingType", "priceProtect"),
    "STOP": ("triggerPrice", "price", "timeInForce", "workingType", "priceProtect"),
    "TAKE_PROFIT": ("triggerPrice", "price", "timeInForce", "workingType", "priceProtect"),
    "TRAILING_STOP_MARKET": ("callbackRate", "activationPrice", "workingType", "priceProtect"),
}
# Limit buys the deep world leaves resting, for the order reads and cancels to find (each cancel takes one).
RESTING_ORDERS = 4
# A backtest over the request's candle limit: answered 202 with a job id to read.
LONG_BACKTEST = {"symbol": "BTCUSDT", "interval": "1m", "type": "sma_crossover",
                 "parameters": {"fast": 2, "slow": 3}, "size": "0.002",
                 "start": "2026-10-01T00:00:00Z", "end": "2026-10-09T00:00:00Z"}
# Settings a request may change that would stop every later order of the run (a kill switch on, a margin type
# Binance cannot switch with the world's long open, a tiny limit): kept at values that let orders through.
KEPT_OPEN = {
    "/kill-switch": {"enabled": False},
    "/exchange-connections/{id}": {"kill_switch": False, "margin_type": "cross", "max_leverage": 125,
                                   "max_notional_usdt": "100000000"},
    "/exchange-connections/{id}/futures/enable": {"margin_type": "cross"},
}
# Deleting the stored connection or strategies would leave every later operation nothing to reach.
KEEP = {("DELETE", "/exchange-connections/{id}"), ("DELETE", "/strategies/{id}")}

schema = schemathesis.openapi.from_path(OPENAPI_PATH)
DOCUMENT = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
# The parameters each strategy type takes, from the document's "<type> parameters" schemas: a generated body
# mixes them (an SMA's fast beside an RSI's period).
TYPE_PARAMETERS = {
    variant["title"].removesuffix(" parameters"): set(variant["properties"])
    for variant in DOCUMENT["components"]["schemas"]["BacktestRequest"]["properties"]["parameters"]["anyOf"]
}


@dataclass(frozen=True)
class FuzzWorld:
    """The deep run's user and what it has stored."""

    stack: RunningStack
    token: str
    connection_id: str
    strategy_ids: tuple[str, ...]
    order_ids: tuple[str, ...]  # the open long's MARKET order, then resting LIMIT buys: reads and cancels
    job_id: str  # a backtest job, for GET /strategies/backtest/{jobId}


@pytest.fixture(scope="module")
def fuzz_token(stack: RunningStack) -> str:
    """A user of the fuzz run's own: whatever it switches (its kill switch) touches no other test."""
    return stack.token_for("fuzz-0000-4000-8000-000000000000")


@pytest.fixture(scope="module")
def deep_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """A stack of the deep run's own: its orders, Binance weight and key changes reach no other test."""
    running = start_stack(tmp_path_factory.mktemp("deep-fuzz-stack"), "--no-schedule")
    yield running
    running.stop()


def _ok(response, status: int) -> dict:
    """The JSON of ``response``, which must have ``status`` (else the test stops with its body)."""
    assert response.status_code == status, response.text
    return response.json()


@pytest.fixture(scope="module")
def world(deep_stack: RunningStack) -> FuzzWorld:
    """A connection on the futures-full demo key, tested and futures-enabled, with a BTCUSDT long (for the
    close, stop and position routes), limit buys resting 10 % under the mark (for reads and cancels), a
    backtest job, and a paper and a live SMA strategy on it."""
    token = deep_stack.token_for("deepfuzz-0000-4000-8000-000000000000")
    account = next(a for a in json.loads((REPO_ROOT / "local" / "demo-accounts.json").read_text())["accounts"]
                   if a["id"] == "futures-full")
    connection = _ok(deep_stack.call("POST", "/exchange-connections", token=token, json={
        "label": "deep fuzz", "environment": "production", "key_type": "hmac",
        "api_key": account["api_key"], "secret": account["secret"]}), 201)
    base = f"/exchange-connections/{connection['id']}"
    pinned = requests.post(f"{deep_stack.simulator}/__sim__/mark",
                           json={"symbol": "BTCUSDT", "price": str(MARK)}, timeout=10)
    assert pinned.status_code == 200, pinned.text
    _ok(deep_stack.call("POST", f"{base}/test", token=token), 200)
    assert _ok(deep_stack.call("POST", f"{base}/futures/enable", token=token), 200)["futures_enabled"] is True
    long = {"connection_id": connection["id"], "symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
            "quantity": "0.01"}
    opened = _ok(deep_stack.call("POST", "/futures/order", token=token, json=long,
                                 headers={"Idempotency-Key": "deep-fuzz-open"}), 200)
    assert opened["status"] == "FILLED", opened
    limit = {**long, "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.002",
             "price": _on_grid(MARK * Decimal("0.9"))}
    resting = [_ok(deep_stack.call("POST", "/futures/order", token=token, json=limit,
                                   headers={"Idempotency-Key": f"deep-fuzz-rest-{n}"}), 200)
               for n in range(RESTING_ORDERS)]
    assert [order["status"] for order in resting] == ["NEW"] * RESTING_ORDERS, resting
    job = _ok(deep_stack.call("POST", "/strategies/backtest", token=token, json=LONG_BACKTEST), 202)
    strategy_ids = tuple(_ok(deep_stack.call("POST", "/strategies", token=token, json={
        "connection_id": connection["id"], "symbol": "BTCUSDT", "interval": "1m", "type": "sma_crossover",
        "parameters": {"fast": 2, "slow": 3}, "mode": mode, "size": "0.002", "leverage": 2}), 201)["id"]
        for mode in ("paper", "live"))
    order_ids = tuple(order["client_order_id"] for order in (opened, *resting))
    return FuzzWorld(deep_stack, token, connection["id"], strategy_ids, order_ids, job["job_id"])


def aim(case, world: FuzzWorld) -> None:
    """Point most of ``case``'s ids at ``world``'s resources (never a delete of them), give it an
    Idempotency-Key of its own, keep the settings that would stop later orders open, and shape most bodies
    to pass validation (one field of each exclusive group, a size where none, optional fields thinned, half
    of the orders made MARKET, the others given prices their type takes). A part generated invalid on
    purpose is left as it is; every choice is a function of the generated case, so a derandomized run sends
    the same requests every time."""
    seed = json.dumps([case.path, case.path_parameters, case.body], sort_keys=True, default=str)
    chance = random.Random(seed)
    if not _invalid_on_purpose(case, ParameterLocation.PATH):
        _aim_path(case, world, chance)
    if case.headers and "Idempotency-Key" in case.headers and not _invalid_on_purpose(
            case, ParameterLocation.HEADER):
        # One key per generated request: schemathesis repeats a few keys, and a reused one is a 409.
        case.headers["Idempotency-Key"] = "fuzz-" + hashlib.sha256(seed.encode()).hexdigest()[:32]
    if isinstance(case.body, dict) and not _invalid_on_purpose(case, ParameterLocation.BODY):
        _aim_body(case, world, chance)


def _aim_path(case, world: FuzzWorld, chance: random.Random) -> None:
    """The path's id at the stored connection, a stored strategy, order or backtest job, its symbol (and a
    query's) at a listed one, a query's connection at the stored one (mostly)."""
    parameters = case.path_parameters or {}
    kept = (case.method.upper(), case.path) in KEEP
    if "id" in parameters and not kept and chance.random() < AIMED_SHARE:
        strategy = case.path.startswith("/strategies/")
        parameters["id"] = chance.choice(world.strategy_ids) if strategy else world.connection_id
    if "clientOrderId" in parameters and chance.random() < AIMED_SHARE:
        parameters["clientOrderId"] = chance.choice(world.order_ids)
    if "jobId" in parameters and chance.random() < AIMED_SHARE:
        parameters["jobId"] = world.job_id
    if "symbol" in parameters and chance.random() < AIMED_SHARE:
        parameters["symbol"] = chance.choice(["BTCUSDT", "ETHUSDT"])
    query = case.query
    if isinstance(query, dict) and isinstance(query.get("symbol"), str) and chance.random() < AIMED_SHARE:
        query["symbol"] = "BTCUSDT"
    if isinstance(query, dict) and "connection_id" in query and chance.random() < AIMED_SHARE:
        query["connection_id"] = world.connection_id


def _aim_body(case, world: FuzzWorld, chance: random.Random) -> None:
    """The body's connection and symbol at the stored ones, settings that would stop later orders kept open
    (``KEPT_OPEN``), and (mostly) a shape that passes validation."""
    body = case.body
    if "connection_id" in body and chance.random() < AIMED_SHARE:
        body["connection_id"] = world.connection_id
    if "symbol" in body and chance.random() < AIMED_SHARE:
        body["symbol"] = "BTCUSDT"
    for name, value in KEPT_OPEN.get(case.path, {}).items():
        if name in body:
            body[name] = value
    if chance.random() >= AIMED_SHARE:
        return
    _keep_one_of_each(body, chance)
    _thin_optional_fields(body, _required_fields(case), chance)
    _fit_strategy_fields(body)
    if "side" in body and chance.random() < 0.5:
        _as_market_order(body)
    elif "side" in body:
        _priced_for_type(body)


def _invalid_on_purpose(case, location: ParameterLocation) -> bool:
    """Whether schemathesis generated ``case``'s part at ``location`` to break the schema."""
    return case.meta is None or case.meta.is_negative_at(location)


def _required_fields(case) -> frozenset[str]:
    """The fields the document requires in ``case``'s body (its schema's ``required``)."""
    content = case.operation.definition.raw.get("requestBody", {}).get("content", {})
    reference = content.get("application/json", {}).get("schema", {}).get("$ref", "")
    body_schema = DOCUMENT["components"]["schemas"].get(reference.rsplit("/", 1)[-1], {})
    return frozenset(body_schema.get("required", ()))


def _thin_optional_fields(body: dict, required: frozenset[str], chance: random.Random) -> None:
    """Drop each field ``body`` may leave out with even odds: generated bodies carry most of them, and
    fields that apply only to another order type or sizing keep them from passing validation."""
    grouped = {name for group in EXCLUSIVE for name in group}  # kept one of by _keep_one_of_each
    for name in [name for name in body if name not in required and name not in grouped]:
        if chance.random() < 0.5:
            del body[name]


def _as_market_order(body: dict) -> None:
    """Make ``body`` a MARKET order: generated orders are mostly conditional types, whose trigger and price
    rules stop most of them before anything reaches Binance."""
    body["type"] = "MARKET"
    for name in NOT_FOR_MARKET:
        body.pop(name, None)


def _fit_strategy_fields(body: dict) -> None:
    """A strategy's or backtest's parameters kept to those its type takes, a backtest's window one the
    simulator has candles for: generated dates and mixed parameters stopped every backtest at validation."""
    if "start" in body and "end" in body:
        body.update(BACKTEST_WINDOW)
    taken = TYPE_PARAMETERS.get(body.get("type"))
    if taken is not None and isinstance(body.get("parameters"), dict):
        body["parameters"] = {name: value for name, value in body["parameters"].items() if name in taken}


def _priced_for_type(body: dict) -> None:
    """Give a generated priced or conditional order the fields its type takes, at prices that fit the pinned
    mark: a limit 1 % inside it, a trigger 2 % away on the side that does not fire at once, a stop-limit's
    price at its trigger, a 1 % trailing callback, attached stops 3 % away, no size with closePosition.
    Generated prices are mostly off the tick grid or on the wrong side, which stops them before the algo
    order service."""
    order_type, side = body.get("type"), body.get("side")
    if order_type not in TYPE_FIELDS or side not in ("BUY", "SELL"):
        return
    for name in NOT_FOR_MARKET:
        if name not in TYPE_FIELDS[order_type]:
            body.pop(name, None)
    buying = side == "BUY"
    if "triggerPrice" in TYPE_FIELDS[order_type]:
        body["triggerPrice"] = _on_grid(MARK * TRIGGER_AT[(order_type.removesuffix("_MARKET"), side)])
    if "price" in TYPE_FIELDS[order_type]:
        body["price"] = body.get("triggerPrice") or _on_grid(MARK * Decimal("0.99" if buying else "1.01"))
    if order_type == "TRAILING_STOP_MARKET":
        body["callbackRate"] = "1"
        body.pop("activationPrice", None)
    if order_type != "LIMIT":  # stops attach to an entry: MARKET or LIMIT
        body.pop("stop_loss", None)
        body.pop("take_profit", None)
    if body.get("closePosition") is True:  # the position sets the size, and it is never reduce-only
        for name in ("quantity", "quote_quantity", "reduceOnly"):
            body.pop(name, None)
    for name, away in (("stop_loss", Decimal("0.03")), ("take_profit", Decimal("-0.03"))):
        target = body.get(name)
        if isinstance(target, dict) and "price" in target:
            target["price"] = _on_grid(MARK * (1 - away if buying else 1 + away))


def _on_grid(price: Decimal) -> str:
    """``price`` on BTCUSDT's tick grid, as the API takes a decimal."""
    return str(price.quantize(TICK))


def _keep_one_of_each(body: dict, chance: random.Random) -> None:
    """Of each ``EXCLUSIVE`` group ``body`` (or an object in it) has more than one field of, keep one; an
    order or a strategy with no size at all gets a plausible one."""
    for marker, (name, value) in DEFAULT_SIZE.items():
        group = next(group for group in EXCLUSIVE if name in group)
        if marker in body and not any(field in body for field in group):
            body[name] = value
    for group in EXCLUSIVE:
        present = [name for name in group if name in body]
        if len(present) > 1:
            kept = chance.choice(present)
            for name in present:
                if name != kept:
                    del body[name]
    for value in body.values():
        if isinstance(value, dict):
            _keep_one_of_each(value, chance)


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_generated_request_gets_an_answer_the_document_describes(case, stack, fuzz_token):
    """GIVEN generated requests per operation WHEN sent THEN no 5xx, and status, type, body as documented."""
    case.call_and_validate(base_url=stack.api, headers={"Authorization": f"Bearer {fuzz_token}"},
                           checks=CHECKS, timeout=60)


@schema.parametrize()
@settings(max_examples=DEEP_EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_generated_requests_on_stored_resources_get_answers_the_document_describes(case, world):
    """GIVEN generated requests aimed at a real connection and strategies WHEN sent THEN no 5xx, and
    status, type and body as documented."""
    aim(case, world)
    case.call_and_validate(base_url=world.stack.api, headers={"Authorization": f"Bearer {world.token}"},
                           checks=CHECKS, timeout=60)
