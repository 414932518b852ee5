"""Strategy money semantics the runner and the backtest must share: paper stops on candles the runner
skipped, live stops kept apart from paper ones, and flips that a limit or the symbol's minimum refuses
still closing the position the signal left."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any

from klineo.binance import Market, get_client, get_symbol_rules
from klineo.binance.endpoints import Candle
from klineo.runner.candles import CandleGroup
from klineo.runner.execution import TickContext, run_strategy
from klineo.runner.messages import StrategyRef, WorkMessage
from klineo.runner.schedule import MINUTE_MS
from klineo.services.backtest import BacktestSpec, simulate
from klineo.services.protective_siblings import protective_client_algo_id
from klineo.store import strategies as strategy_store
from klineo.store.connections import update_settings as update_connection
from klineo.store.events import list_events
from klineo.store.strategies import update_settings as update_strategy

from tests.helpers import put_paper_strategy

SL_TP = ("stop_loss", "take_profit")  # the roles a strategy arms without a trailing stop

USER = "d4d4d4d4-0000-4000-8000-00000000000d"
CONNECTION = "d" * 32
SYMBOL, INTERVAL = "BTCUSDT", "1m"
PARAMETERS = {"fast": 1, "slow": 2, "allow_short": False}  # long while the close rises
START = int(dt.datetime(2025, 1, 5, tzinfo=dt.UTC).timestamp() * 1000)
D = Decimal


def _candles(rows: list[tuple[str, str, str, str]]) -> list[Candle]:
    """1m candles from START - 3 minutes (three warm-up candles), (open, high, low, close) each."""
    first = START - 3 * 60_000
    return [Candle(first + i * 60_000, D(o), D(h), D(lo), D(c), D(1), first + i * 60_000 + 59_999)
            for i, (o, h, lo, c) in enumerate(rows)]


# Warm-up flat at 100; entry LONG on the first candle (close 101); the next candle dips to 95 (far
# below a 1 % stop-loss) and closes higher (102); the one after stays high (low 101.5, close 103).
ROWS = [("100", "100", "100", "100")] * 3 + [
    ("100", "101", "100", "101"),   # START: LONG -> entry at ~101.02, stop-loss ~100.01
    ("101", "102", "95", "102"),    # reaches the stop-loss
    ("102", "103", "101.5", "103"),  # above the stop-loss
]


def _paper_strategy(**settings: Any) -> str:
    strategy_id = put_paper_strategy(USER, CONNECTION, symbol=SYMBOL, interval=INTERVAL,
                                     parameters=PARAMETERS, size=D("2"))
    stored = strategy_store.get_strategy(USER, strategy_id, consistent=True)
    strategy_store.update_settings(USER, strategy_id, stored, changes=settings)
    return strategy_id


def _tick(candles: list[Candle], index: int, strategy_id: str, seen_at_ms: int | None = None) -> Any:
    candle = candles[index]
    message = WorkMessage(tick=candle.close_time + 1, environment="production", symbol=SYMBOL,
                          interval=INTERVAL, close_time=candle.close_time,
                          strategies=[StrategyRef(user_id=USER, strategy_id=strategy_id)])
    group = CandleGroup("production", SYMBOL, INTERVAL, candle.close_time, tuple(candles[:index + 1]))
    seen_at = (seen_at_ms if seen_at_ms is not None else candle.close_time + 1_000) / 1000
    ctx = TickContext(message, group, deadline_ms=int(seen_at * 1000) + 60_000, clock=lambda: seen_at)
    return run_strategy(strategy_store.get_strategy(USER, strategy_id, consistent=True), ctx)


def test_paper_stop_loss_reached_on_a_skipped_candle_is_applied(sim_env) -> None:
    """GIVEN a paper long with a 1 % stop-loss WHEN the candle that reaches it is skipped (stale tick) THEN
    the next turn still closes the position on it, as the backtest does."""
    candles = _candles(ROWS)
    strategy_id = _paper_strategy(stop_loss_pct=D("1"))
    assert _tick(candles, 3, strategy_id).outcome == "simulated"  # the entry
    # The message of the dipping candle arrives after the next candle closed: skipped (stale_candle).
    late = _tick(candles, 4, strategy_id, seen_at_ms=candles[5].close_time + 1_000)
    assert late.outcome == "skipped" and late.detail == "stale_candle"
    _tick(candles, 5, strategy_id)
    paper = strategy_store.get_strategy(USER, strategy_id, consistent=True)

    spec = BacktestSpec.from_json({
        "environment": "production", "symbol": SYMBOL, "interval": INTERVAL, "type": "sma_crossover",
        "parameters": PARAMETERS, "size": "2", "stop_loss_pct": "1",
        "start_ms": START, "end_ms": candles[-1].close_time + 1})
    rules = get_symbol_rules(get_client(Market.FUTURES, "production"), SYMBOL)
    backtest = simulate(spec, candles, rules).ledger
    assert [f.reason for f in backtest.fills] == ["signal", "stop_loss"] and backtest.position == 0
    assert paper.paper_position == backtest.position, "the paper position survived its stop-loss"


RSI_LONG = {"period": 14, "oversold": 99.99, "overbought": 99.999, "allow_short": True}
RSI_SHORT = {"period": 14, "oversold": 0.001, "overbought": 0.01, "allow_short": True}
RSI_FLAT = {**RSI_SHORT, "allow_short": False}


def test_live_stops_survive_a_paper_interlude_and_are_cancelled_when_the_live_position_closes(runner) -> None:
    """GIVEN a live long with its SL/TP armed WHEN the strategy trades in paper for a while and, back in
    live, closes the long THEN the live entry's stops are cancelled (a paper fill never overwrote them)."""

    user = "user-review-modes"
    sid = runner.strategy(user, runner.connection(user), type="rsi_threshold", parameters=RSI_LONG,
                          stop_loss_pct="2", take_profit_pct="3")
    now = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS + 1000
    runner.run_tick(now - 2 * MINUTE_MS)  # live long, its SL/TP armed on Binance
    long_entry = runner.runs(sid)[-1].order["client_order_id"]
    assert runner.stored(user, sid).protective["parent_client_order_id"] == long_entry

    # The user switches to paper: the live position stays open at the exchange, untouched (documented).
    update_strategy(user, sid, runner.stored(user, sid), changes={"mode": "paper", "parameters": RSI_SHORT})
    runner.run_tick(now - MINUTE_MS)  # a paper short entry
    assert runner.stored(user, sid).paper_position < 0

    # Back to live; the signal now says flat: the strategy closes its live long.
    update_strategy(user, sid, runner.stored(user, sid), changes={"mode": "live", "parameters": RSI_FLAT})
    runner.run_tick(now)
    stored = runner.stored(user, sid)
    assert stored.live_position == 0 and runner.runs(sid)[0].order["side"] == "SELL"

    state = runner.sim.state.futures.state_for(runner.sim.account("futures-full"), time.time() * 1000)
    algos = {a.client_algo_id: a for a in state.algo_orders.values()}
    assert [algos[protective_client_algo_id(long_entry, r)].status for r in SL_TP] == ["CANCELED"] * 2, (
        "the closed live position's stop-loss/take-profit are still open on Binance")


def test_a_flip_over_max_notional_still_closes_the_position_the_signal_left(runner) -> None:
    """GIVEN a live long of ~140 USDT and max_notional_usdt 200 WHEN a SHORT signal's flip (~280) is
    refused by the limit THEN the long is still closed: a limit never traps a position."""

    user = "user-review-flip"
    connection = runner.connection(user)
    update_connection(user, connection, {"max_notional_usdt": D("200")})
    sid = runner.strategy(user, connection, type="rsi_threshold", parameters=RSI_LONG)
    now = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS + 1000
    runner.run_tick(now - MINUTE_MS)
    assert runner.stored(user, sid).live_position == D("0.002")  # the long entry (~140 USDT) passed

    update_strategy(user, sid, runner.stored(user, sid), changes={"parameters": RSI_SHORT})
    runner.run_tick(now)

    run = runner.runs(sid)[0]
    assert runner.stored(user, sid).live_position <= 0, (
        f"the long is still open against a short signal (run {run.status}, {run.skip_reason})")


def test_a_flip_whose_new_entry_is_below_the_minimum_still_closes_the_old_position(sim_env) -> None:
    """GIVEN a long of 0.1 entered at 1001 WHEN a SHORT at 990 cannot open 0.1 (99 < the 100 USDT
    minimum) THEN the long is closed all the same (backtest, paper and live share plan_order)."""
    rows = [("1000", "1000", "1000", "1000")] * 3 + [
        ("1000", "1001", "1000", "1001"),  # LONG: 0.1 x 1001 = 100.1 USDT, above the 100 minimum
        ("1001", "1001", "990", "990"),    # SHORT: a new 0.1 short is worth 99 USDT (below the minimum)
        ("990", "990", "980", "980"),      # still SHORT, the price keeps falling
    ]
    candles = _candles(rows)
    spec = BacktestSpec.from_json({
        "environment": "production", "symbol": SYMBOL, "interval": INTERVAL, "type": "sma_crossover",
        "parameters": {"fast": 1, "slow": 2, "allow_short": True}, "size": "0.1",
        "start_ms": START, "end_ms": candles[-1].close_time + 1})
    rules = get_symbol_rules(get_client(Market.FUTURES, "production"), SYMBOL)
    state = simulate(spec, candles, rules)
    assert [f.side for f in state.ledger.fills][:1] == ["BUY"]
    assert state.ledger.position <= 0, (
        f"the long is held through two SHORT signals (entries skipped: {dict(state.skipped)})")


def test_a_flip_refused_by_max_leverage_closes_without_applying_that_leverage(runner) -> None:
    """GIVEN a live long entered at 5x and the connection's max_leverage then lowered to 3 WHEN a SHORT
    signal's flip is refused by max_leverage THEN the reduce-only close goes alone, and the refused 5x
    is never applied to the symbol on Binance (a close needs no leverage, as for API closes)."""
    user = "user-review-leverage"
    connection = runner.connection(user)
    sid = runner.strategy(user, connection, type="rsi_threshold", parameters=RSI_LONG, leverage=5)
    now = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS + 1000
    runner.run_tick(now - MINUTE_MS)
    assert runner.stored(user, sid).live_position == D("0.002")
    update_connection(user, connection, {"max_leverage": 3})
    update_strategy(user, sid, runner.stored(user, sid), changes={"parameters": RSI_SHORT})
    applied = len(runner.journal("POST", "/fapi/v1/leverage"))

    runner.run_tick(now)

    assert runner.stored(user, sid).live_position == 0
    blocks = [e for e in list_events(sid, 50).events if e.kind == "risk_block"]
    assert [e.details["gate"] for e in blocks] == ["max_leverage"]
    assert len(runner.journal("POST", "/fapi/v1/leverage")) == applied
