"""Backtests: a strategy definition run over Binance's closed futures klines of a period.

The same code as paper mode, candle by candle (``simulate``):
1. an open position whose stop-loss or take-profit the candle reaches is closed first
   (``simulation.protective_exit``: pessimistic, stop-loss first), or liquidated where its equity
   after the closing fee is zero (``simulation.liquidation_price``) when the candle's low (long) or
   high (short) reaches that price first: the equity is 0 from then on and nothing more is traded;
2. the type's ``decide`` reads exactly its ``lookback`` newest closed candles (the runner's window),
   and ``direction`` turns the forbidden side into flat (``simulation.apply_direction``);
3. a signal on the side already held keeps the position (no re-sizing); after a protective exit the
   strategy does not re-enter on the same side until its signal has changed;
4. an entry is sized by ``simulation.size_quantity`` at the close (size_pct on the simulated equity),
   the order from the position to the target is the runner's ``plan_order`` (rounded to the
   symbol's rules; an order below the symbol's minimum is skipped), filled by
   ``simulation.market_fill`` and booked in a ``simulation.Ledger`` (taker fee). An entry whose
   initial margin does not fit the equity at the close (``simulation.entry_fits``) is skipped (a
   flip still closes its old side); each skipped entry is counted once per signal run, by the reason
   of its first refusal (``skipped_entries`` / ``skipped_reasons``): the candles after it that ask for
   the same side (a hold between them included) are the same entry, until the signal turns to the other
   side or flat, or the entry is taken;
5. the equity (``Ledger.equity`` at the close) is measured after every candle (``Simulation.record``): the
   running peak (from the starting equity: an entry's fee on the first candle is a fall) and max drawdown,
   the last point, and every ``equity_curve_step``-th point (the step is set before the first candle, from
   their count), so the memory does not grow with the period.
The strategy warms up on the ``lookback`` candles before ``start``, so it can act from the first.

Where the candles come from and what is answered when:
- ``klineo.services.kline_history`` (the day cache, then Binance page by page, each page leaving the
  trading reserve of the IP's minute weight: past it a synchronous backtest answers 429 ``rate_limit``
  with ``Retry-After`` at the next minute, a job waits for that minute).
- Up to ``SYNC_MAX_CANDLES`` candles (10,000: a year of 1h candles is 8,760) the answer comes in
  the request (the benchmark measures a year of 1h well inside API Gateway's 29 s). Longer periods
  (up to ``MAX_CANDLES``) become a job: ``202`` with a ``job_id``, run by the backtest worker from
  the backtest queue (``klineo.services.backtest_jobs``) and polled with
  ``GET /strategies/backtest/{jobId}`` (``klineo.services.backtest_status``).
- The result is bounded: at most ``TRADES_SHOWN`` trades (the first ones; ``trades_truncated``
  says so; the simulation keeps no others, only their counts: its memory does not grow with them) and
  at most ``EQUITY_POINTS`` equity points: every ``equity_curve_step``-th candle's equity, plus the last
  candle's (the simulation keeps no others). Max drawdown is measured on every candle, before downsampling.
- Same inputs, same result: Decimal arithmetic, no clock in the simulation, closed candles only.
- A symbol that takes no MARKET orders (exchangeInfo's ``orderTypes``: every simulated order is one), and a
  sizing that no entry can pass whatever the price (``klineo.runner.planning.sizing_refusal``: a ``size``
  outside the symbol's market lot, a ``quote_size_usdt`` below its minimum order value; the rule POST and
  PATCH /strategies apply too), are refused before any klines are fetched: 422
  naming the field (``symbol``, or the sizing's), for a queued backtest too (before its job is made; a job
  whose symbol's rules changed since: failed, with the same message). A sizing that fails at some prices,
  or for the margin, is simulated and its skipped entries counted: whether it could trade depends on the
  period.
- No candle opens before the symbol's listing (exchangeInfo's ``onboardDate``, docs/binance-facts.md §15):
  a period that ends by then is refused 422 naming ``start`` and saying when the symbol was listed, before
  any klines; one that starts before it starts at it (the result's ``start`` says so), so no page of
  klines is asked for the empty time before it (the warm-up neither).
- An optional Idempotency-Key makes a queued job once per key (a double click, a retry after a lost
  answer): the key's record and the job are one conditional write (``klineo.store.backtest_jobs``); the
  same key and body answer the first job as GET /strategies/backtest/{jobId} shows it now (202), another
  body with that key is 409 naming Idempotency-Key. A period answered at once (200) stores nothing: sent
  again, it is answered again, the same result (the key is only checked, 400 when malformed).
"""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from klineo.binance import (
    BinanceClient,
    Candle,
    Environment,
    Market,
    SymbolRules,
    get_client,
    listed_symbol_rules,
)
from klineo.errors import ErrorCategory, InvalidField, KlineoError
from klineo.models.backtest import BacktestResponse, BacktestResult
from klineo.models.backtest_request import BacktestRequest
from klineo.runner.planning import OrderPlan, plan_order, require_market_orders, require_tradable_sizing
from klineo.services.backtest_status import get_backtest
from klineo.services.kline_history import closed_candles
from klineo.settings import get_settings
from klineo.store import backtest_jobs as job_store
from klineo.store.connections import require_connection
from klineo.store.strategies import CreateKey
from klineo.strategies import INTERVALS_MS, Signal, get_strategy_type, parse_parameters
from klineo.strategies import simulation as sim
from klineo.validation import IDEMPOTENCY_HEADER, decimal_or_none, keyed_request_digests, plain_text

__all__ = [
    "EQUITY_POINTS",
    "JOB_ATTEMPTS",
    "MAX_CANDLES",
    "SYNC_MAX_CANDLES",
    "TRADES_SHOWN",
    "BacktestSpec",
    "Simulation",
    "curve_step",
    "run_backtest_job",
    "run_spec",
    "simulate",
    "start_backtest",
]

SYNC_MAX_CANDLES = 10_000
MAX_CANDLES = 600_000
TRADES_SHOWN = 500
EQUITY_POINTS = 500
JOB_ATTEMPTS = job_store.JOB_ATTEMPTS  # deliveries of a job's message (the queue's maxReceiveCount)
_PLACES = Decimal("0.00000001")
_PCT_PLACES = Decimal("0.01")


@dataclass(frozen=True)
class BacktestSpec:
    """A validated backtest request with its environment resolved; JSON round-trips for jobs."""

    environment: str
    symbol: str
    interval: str
    type: str
    parameters: dict[str, Any]
    sizing: sim.Sizing
    direction: str
    stop_loss_pct: Decimal | None
    take_profit_pct: Decimal | None
    starting_equity: Decimal
    start_ms: int
    end_ms: int

    @classmethod
    def of(cls, body: BacktestRequest, environment: str) -> BacktestSpec:
        """The spec of a request model (its parameters already checked for the type)."""
        return cls.from_json({**body.model_dump(mode="json"), "environment": environment,
                              "start_ms": body.start_ms(), "end_ms": body.end_ms()})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BacktestSpec:
        """A spec from ``to_json``'s form (or a request dumped as JSON)."""
        return cls(
            environment=data["environment"], symbol=data["symbol"], interval=data["interval"],
            type=data["type"], parameters=dict(data.get("parameters") or {}), sizing=sim.Sizing.of(data),
            direction=data.get("direction") or "both",
            stop_loss_pct=decimal_or_none(data.get("stop_loss_pct")),
            take_profit_pct=decimal_or_none(data.get("take_profit_pct")),
            starting_equity=Decimal(str(data.get("paper_balance_usdt") or 10_000)),
            start_ms=int(data["start_ms"]), end_ms=int(data["end_ms"]),
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (Decimals as strings)."""
        def text(value: Any) -> Any:
            return str(value) if isinstance(value, Decimal) else value
        return {
            "environment": self.environment, "symbol": self.symbol, "interval": self.interval,
            "type": self.type, "parameters": {k: text(v) for k, v in self.parameters.items()},
            "size": text(self.sizing.size), "quote_size_usdt": text(self.sizing.quote_size_usdt),
            "size_pct": text(self.sizing.size_pct), "leverage": self.sizing.leverage,
            "direction": self.direction, "stop_loss_pct": text(self.stop_loss_pct),
            "take_profit_pct": text(self.take_profit_pct), "paper_balance_usdt": text(self.starting_equity),
            "start_ms": self.start_ms, "end_ms": self.end_ms,
        }

    def candle_count(self) -> int:
        """How many candles open in [start_ms, end_ms), the ones the backtest reads (the open one
        included: a job may run once it has closed). Opens are multiples of the interval, so a start
        between two opens counts from the next one; the period's length rounded up could be one more."""
        interval_ms = INTERVALS_MS[self.interval]
        return -(-self.end_ms // interval_ms) - -(-self.start_ms // interval_ms)


def curve_step(candles: int) -> int:
    """Candles per equity point, for at most ``EQUITY_POINTS`` points over ``candles`` candles."""
    return max(1, math.ceil(candles / EQUITY_POINTS))


@dataclass
class Simulation:
    """A simulation's ledger, its equity curve (``record``), the entries it could not take (by reason, the
    keys ``BacktestResult.skipped_reasons`` documents: one per signal run, ``refused``), and the close time
    of the candle that liquidated it (it trades no more after)."""

    ledger: sim.Ledger
    # Of the equity after every candle only every ``step``-th point is kept (``curve_step``), the last one,
    # the running peak and the largest drawdown from it (percent), so that a long backtest's memory does
    # not grow with its candles.
    step: int = 1
    equity: list[tuple[int, Decimal]] = field(default_factory=list)
    last: tuple[int, Decimal] | None = None
    peak: Decimal | None = None
    max_drawdown_pct: Decimal = Decimal(0)
    skipped: Counter[str] = field(default_factory=Counter)
    candles: int = 0
    liquidated_at: int | None = None
    # The side whose entry was refused and that the signal still asks for (a hold keeps asking): its
    # later refusals are the same skipped entry. Another side, flat, or the entry taken ends it.
    refused: Signal | None = None

    def skip(self, side: Signal, reason: str) -> None:
        """An entry on ``side`` not taken: counted under ``reason`` unless its signal run was refused."""
        if self.refused is not side:
            self.skipped[reason] += 1
        self.refused = side

    def record(self, time: int, equity: Decimal) -> None:
        """The equity at one candle's close: counted, kept when it is a ``step``-th point, measured against
        the running peak for the largest fall from it, in percent of that peak."""
        self.candles += 1
        if self.candles % self.step == 0:
            self.equity.append((time, equity))
        self.last = (time, equity)
        self.peak = equity if self.peak is None or equity > self.peak else self.peak
        if self.peak > 0:
            self.max_drawdown_pct = max(self.max_drawdown_pct, (self.peak - equity) / self.peak * 100)


@dataclass
class _Protection:
    """The armed stop-loss/take-profit of the open position, and the side last stopped out."""

    sl: Decimal | None = None
    tp: Decimal | None = None
    stopped: Signal | None = None


def _exit_step(candle: Candle, state: Simulation, guard: _Protection) -> None:
    """Close the position when the candle reaches its liquidation price or, before that, its stop-loss or
    take-profit (``simulation.position_exit``); a liquidation ends the trading."""
    ledger = state.ledger
    hit = sim.position_exit(ledger, guard.sl, guard.tp, candle)
    if hit is None:
        return
    reason, price = hit
    if reason == "liquidation":
        state.liquidated_at = candle.close_time
    long = ledger.position > 0
    ledger.fill("SELL" if long else "BUY", abs(ledger.position), price, candle.close_time, reason)
    guard.sl = guard.tp = None
    guard.stopped = Signal.LONG if long else Signal.SHORT


def _entry_refusal(rules: SymbolRules, quantity: Decimal, price: Decimal, held: Decimal) -> str:
    """Which of the symbol's rules a market entry of ``quantity`` valued at ``price`` breaks (a
    ``BacktestResult.skipped_reasons`` key, else the catch-all ``order_rules``), for an entry ``plan_order``
    refused. ``held``: the opposite position a flip's one order also closes (that order is ``held +
    quantity``: above the maximum, the flip closes alone)."""
    _, min_qty, max_qty = rules.lot_for(market_order=True)
    if quantity <= 0 or quantity < min_qty:
        return "below_min_quantity"
    if max_qty > 0 and held + quantity > max_qty:
        return "above_max_quantity"
    return "below_min_notional" if quantity * price < rules.min_notional else "order_rules"


def _entry_size(spec: BacktestSpec, signal: Signal, candle: Candle, rules: SymbolRules,
                equity: Decimal) -> tuple[Decimal, str | None]:
    """(contracts of the signal's entry at the close, None); (0, "insufficient_margin") when its initial
    margin does not fit the equity, so that ``plan_order`` only closes a flip's old side."""
    if signal is Signal.FLAT:
        return Decimal(0), None
    unit = sim.size_quantity(spec.sizing, candle.close, equity, rules)
    if unit > 0 and not sim.entry_fits(unit, candle.close, spec.sizing, equity):
        return Decimal(0), "insufficient_margin"
    return unit, None


def _trade_step(spec: BacktestSpec, signal: Signal, candle: Candle, rules: SymbolRules,
                state: Simulation, guard: _Protection) -> None:
    """The order from the position to the signal's target, filled at the close with slippage and fee;
    an entry that cannot be taken is counted in ``state.skipped`` by reason."""
    ledger = state.ledger
    signal, guard.stopped = sim.effective_signal(signal, ledger.position, guard.stopped)
    if signal is Signal.HOLD:
        return
    state.refused = state.refused if signal is state.refused else None  # another side, or flat: a new run
    if signal is Signal.FLAT and ledger.position == 0:
        return
    unit, refused = _entry_size(spec, signal, candle, rules, ledger.equity(candle.close))
    try:
        plan: OrderPlan | None = plan_order(signal, unit, ledger.position, rules, candle.close)
    except KlineoError:  # an entry from flat the margin or the symbol's rules refuse: no order
        plan = None
    # The signal's side not entered: refused from flat, or a flip whose order closes alone (target 0).
    if plan is None or (plan.side is not None and signal is not Signal.FLAT and plan.target == 0):
        state.skip(signal, refused or _entry_refusal(rules, unit, candle.close, abs(ledger.position)))
    elif plan.side is not None:
        state.refused = None
    if plan is None or plan.side is None or plan.quantity is None:
        return
    price = sim.market_fill(plan.side, candle.close)
    ledger.fill(plan.side, plan.quantity, price, candle.close_time)
    guard.sl = guard.tp = None
    if ledger.position != 0:
        entry_side = "BUY" if ledger.position > 0 else "SELL"
        guard.sl, guard.tp = sim.protective_prices(
            entry_side, price, spec.stop_loss_pct, spec.take_profit_pct)


def simulate(spec: BacktestSpec, candles: Sequence[Candle], rules: SymbolRules) -> Simulation:
    """Run the strategy over ``candles`` (warm-up before ``spec.start_ms`` included); see the module doc."""
    strategy_type = get_strategy_type(spec.type)
    params = parse_parameters(spec.type, spec.parameters)
    lookback = strategy_type.lookback(params)
    ledger = sim.Ledger(starting_equity=spec.starting_equity, kept=TRADES_SHOWN)  # all the result shows
    counted = sum(1 for candle in candles if candle.open_time >= spec.start_ms)
    # The starting equity is the first peak: an entry's fee and slippage already fall from it.
    state = Simulation(ledger, step=curve_step(counted), peak=spec.starting_equity)
    guard = _Protection()
    for index, candle in enumerate(candles):
        if candle.open_time < spec.start_ms:
            continue
        if state.liquidated_at is None:
            _exit_step(candle, state, guard)
        if state.liquidated_at is None:
            decision = strategy_type.decide(params, candles[max(0, index + 1 - lookback):index + 1])
            signal = sim.apply_direction(decision.signal, spec.direction)
            _trade_step(spec, signal, candle, rules, state, guard)
        # A liquidated account holds nothing (the rest of the Decimal division's dust is no money).
        equity = Decimal(0) if state.liquidated_at is not None else state.ledger.equity(candle.close)
        state.record(candle.close_time, equity)
    return state


def _text(value: Decimal, places: Decimal = _PLACES) -> str:
    """``value`` rounded to ``places``, as plain text."""
    return plain_text(value.quantize(places))


def _curve(state: Simulation) -> list[dict[str, Any]]:
    """At most EQUITY_POINTS points: the kept every step-th candle's, and always the last one."""
    picked = list(state.equity)
    if state.last is not None and (not picked or picked[-1] != state.last):
        picked = [*picked[:EQUITY_POINTS - 1], state.last]
    return [{"time": time, "equity": _text(value)} for time, value in picked]


def _trade(trade: sim.Trade) -> dict[str, Any]:
    return {
        "side": trade.side, "entry_time": trade.entry_time, "entry_price": _text(trade.entry_price),
        "quantity": _text(trade.quantity), "exit_time": trade.exit_time,
        "exit_price": None if trade.exit_price is None else _text(trade.exit_price),
        "exit_reason": trade.exit_reason, "fees": _text(trade.fees), "pnl": _text(trade.pnl),
    }


_MODEL = {
    "taker_fee_rate": str(sim.TAKER_FEE_RATE), "slippage_bps": str(sim.SLIPPAGE_BPS),
    "fill": "market orders fill at the candle close moved slippage_bps against the taker",
    "exits": "stop-loss/take-profit checked on each later candle's high/low; stop-loss first when both, "
             "liquidation first when a candle reaches it and the take-profit",
    "margin": "an entry is taken when its initial margin (quantity x close / leverage) is at most the "
              "equity at that close; else it is skipped (skipped_reasons: insufficient_margin)",
    "liquidation": "the position is closed where the equity after the closing fee is zero (no maintenance "
                   "margin: Binance liquidates earlier); the backtest then stops trading",
    "ignored": "trailing_stop_pct (live only)",
}


def summarise(spec: BacktestSpec, state: Simulation) -> dict[str, Any]:
    """The result body of a simulation (see ``BacktestResult``)."""
    ledger = state.ledger
    final = state.last[1] if state.last is not None else spec.starting_equity
    closed, wins = ledger.closed_trades, ledger.winning_trades
    return {
        "environment": spec.environment, "symbol": spec.symbol, "interval": spec.interval, "type": spec.type,
        "start": spec.start_ms, "end": spec.end_ms, "candles": state.candles,
        "starting_equity": _text(spec.starting_equity), "final_equity": _text(final),
        "total_return_pct": _text((final - spec.starting_equity) / spec.starting_equity * 100, _PCT_PLACES),
        "max_drawdown_pct": _text(state.max_drawdown_pct, _PCT_PLACES),
        "win_rate_pct": _text(Decimal(wins * 100) / closed, _PCT_PLACES) if closed else None,
        "fees_paid": _text(ledger.fees), "number_of_trades": ledger.trade_count,
        "open_position": _text(ledger.position),
        "trades": [_trade(trade) for trade in ledger.trades[:TRADES_SHOWN]],
        "trades_truncated": ledger.trade_count > TRADES_SHOWN,
        "equity_curve": _curve(state), "equity_curve_step": state.step,
        "skipped_entries": sum(state.skipped.values()),
        "skipped_reasons": dict(sorted(state.skipped.items())),
        "liquidated_at": state.liquidated_at,
        "model": {**_MODEL, "leverage": str(sim.leverage_of(spec.sizing))},
    }


def _tradable(spec: BacktestSpec) -> tuple[BinanceClient, SymbolRules]:
    """The futures client and the symbol's rules, when the spec can trade under them, before any klines:
    else the 422 naming ``symbol`` for a symbol that takes no MARKET orders (every simulated order is one),
    or naming the sizing field (``planning.sizing_refusal``, the strategy routes' own rule). The symbol's
    status today is no refusal: a backtest places no order, and reads the history of a symbol halted or
    being delisted now as Binance kept it."""
    client = get_client(Market.FUTURES, Environment(spec.environment))
    rules = listed_symbol_rules(client, spec.symbol)
    require_market_orders(rules, "which the backtest simulates")
    require_tradable_sizing(rules, spec.sizing.size, spec.sizing.quote_size_usdt)
    return client, rules


def run_spec(spec: BacktestSpec, now_ms: int, wait_until: float | None = None) -> dict[str, Any]:
    """Fetch (through the cache) and simulate; the result body. Klines kept from the trading reserve, or
    refused for the minute's weight, wait up to ``wait_until`` (epoch s; None: a ``rate_limit`` at once)."""
    # Checked again for a job: the symbol's rules may have changed since it was queued (then: failed).
    client, rules = _tradable(spec)
    strategy_type = get_strategy_type(spec.type)
    warmup = strategy_type.lookback(parse_parameters(spec.type, spec.parameters))
    interval_ms = INTERVALS_MS[spec.interval]
    first = spec.start_ms // interval_ms * interval_ms - warmup * interval_ms
    first = max(first, rules.onboard_ms // interval_ms * interval_ms)  # nothing opens before the listing
    history = closed_candles(client, spec.symbol, spec.interval, first, spec.end_ms, now_ms,
                             wait_until=wait_until)
    return summarise(spec, simulate(spec, history.candles, rules))


def _from_listing(spec: BacktestSpec, rules: SymbolRules) -> BacktestSpec:
    """The spec's period from the symbol's listing on: 422 naming start when it ends by then (no candle
    exists); a start before it moved to it."""
    if spec.end_ms <= rules.onboard_ms:
        listed = dt.datetime.fromtimestamp(rules.onboard_ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise InvalidField("start", f"{spec.symbol} was listed on Binance USDⓈ-M futures at {listed}; the "
                                    "period ends before then, so it has no candles: start after that")
    return replace(spec, start_ms=max(spec.start_ms, rules.onboard_ms))


def _environment(user_id: str, body: BacktestRequest) -> str:
    """The connection's environment when one is named (404 when not the caller's), else the body's."""
    if body.connection_id is None:
        return body.environment
    return require_connection(user_id, body.connection_id, field="connection_id").environment


def _now_ms() -> int:
    return int(time.time() * 1000)


def start_backtest(
    user_id: str, body: BacktestRequest, now_ms: int | None = None, idempotency_key: str | None = None,
) -> tuple[int, BacktestResponse]:
    """200 with the result for up to SYNC_MAX_CANDLES candles; 202 with a queued job for longer periods
    (once per Idempotency-Key, see the module docstring)."""
    now_ms = _now_ms() if now_ms is None else now_ms
    key = CreateKey(*keyed_request_digests(idempotency_key, body)) if idempotency_key is not None else None
    spec = BacktestSpec.of(body, _environment(user_id, body))
    if spec.start_ms >= now_ms:
        raise InvalidField("start", "start must be in the past")
    spec = replace(spec, end_ms=min(spec.end_ms, now_ms))  # only candles that exist can be closed
    # A sizing that can never trade: 422 before any klines (a queued one: before its job is made).
    spec = _from_listing(spec, _tradable(spec)[1])
    count = spec.candle_count()
    if count > MAX_CANDLES:
        message = f"the period spans {count} candles; at most {MAX_CANDLES} per backtest"
        raise InvalidField("end", message)
    if count <= SYNC_MAX_CANDLES:
        result = BacktestResult.model_validate(run_spec(spec, now_ms))
        return 200, BacktestResponse(status="done", result=result)
    return 202, _queue(user_id, spec, key, now_ms)


def _queue(user_id: str, spec: BacktestSpec, key: CreateKey | None, now_ms: int) -> BacktestResponse:
    """A new queued job of ``spec``; with ``key``, the job the key already names when it does."""
    queue_url = get_settings().backtest_queue_url
    if not queue_url:
        raise KlineoError(ErrorCategory.OTHER, "BACKTEST_QUEUE_URL is not set")
    holder = job_store.get_job_key(user_id, key) if key is not None else None
    if holder is None:
        job_id = uuid.uuid4().hex
        holder = job_store.queue_job(queue_url, user_id, job_id, spec.to_json(), now_s=now_ms / 1000, key=key)
        if holder is None:
            return BacktestResponse(job_id=job_id, status="queued")
    if key is None or holder.body_digest != key.body_digest:
        raise KlineoError(ErrorCategory.CONFLICT, f"This {IDEMPOTENCY_HEADER} was already used for a "
                          "different backtest; use a new key.", field=IDEMPOTENCY_HEADER)
    return get_backtest(user_id, holder.job_id)  # the key's job as it is now (GET's answer)


def run_backtest_job(user_id: str, job_id: str, now_ms: int | None = None, delivery: int = 1,
                     wait_until: float | None = None) -> str:
    """Run a queued job once, as this ``delivery`` of its message: its final status; "already_finished"
    when another delivery finished it first, "already_running" when another holds a live claim on it
    (``start_job``: nothing is computed). Klines kept from the trading reserve wait up to ``wait_until``
    (see ``run_spec``); a retryable failure raises (the message is redelivered)."""
    claimed = job_store.start_job(user_id, job_id, delivery)
    job = job_store.get_job(user_id, job_id)
    if not claimed or job is None:
        return "already_running" if job is not None and job.status == "running" else "already_finished"
    try:
        result = run_spec(BacktestSpec.from_json(job.request), _now_ms() if now_ms is None else now_ms,
                          wait_until)
    except KlineoError as exc:
        if exc.retryable:
            raise
        return "failed" if job_store.finish_job(user_id, job_id, None, exc.message) else "already_finished"
    return "done" if job_store.finish_job(user_id, job_id, result) else "already_finished"
