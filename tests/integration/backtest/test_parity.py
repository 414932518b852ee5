"""Parity: the runner's paper mode and a backtest over the same recorded candles make the same trades.

The candle sequence is recorded once from the simulator (deterministic past klines). Paper mode runs
through the runner itself (``run_strategy`` on each candle, a paper strategy stored under moto, the
simulator only answering exchangeInfo); its run records are turned back into fills. The backtest is
``simulate`` over the same candles. Both must hold the same fills, hence the same trades and PnL.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from klineo.binance import Market, endpoints, get_client, get_symbol_rules
from klineo.runner.candles import CandleGroup
from klineo.runner.execution import TickContext, run_strategy
from klineo.runner.messages import StrategyRef, WorkMessage
from klineo.runner.paper import ledger_of
from klineo.services.backtest import BacktestSpec, simulate
from klineo.store import strategies as strategy_store
from klineo.store.events import list_events
from klineo.store.runs import list_runs
from klineo.strategies import get_strategy_type, parse_parameters
from klineo.strategies.simulation import Fill, Ledger

from tests.helpers import put_paper_strategy
from tests.integration.api.conftest import sim_env as sim_env  # fixture

USER = "c3c3c3c3-0000-4000-8000-00000000000c"
CONNECTION = "c" * 32
SYMBOL, INTERVAL, SIZE = "BTCUSDT", "1m", Decimal("0.002")
PARAMETERS = {"fast": 3, "slow": 8, "allow_short": True}
START = int(dt.datetime(2025, 1, 5, tzinfo=dt.UTC).timestamp() * 1000)
CANDLES = 240


def _recorded_candles() -> list[Any]:
    """The sequence both sides see: warm-up before START, then CANDLES candles."""
    client = get_client(Market.FUTURES, "production")
    lookback = get_strategy_type("sma_crossover").lookback(parse_parameters("sma_crossover", PARAMETERS))
    return endpoints.klines(client, SYMBOL, INTERVAL, limit=CANDLES + lookback,
                            start_time=START - lookback * 60_000)


def _paper_strategy() -> str:
    return put_paper_strategy(USER, CONNECTION, symbol=SYMBOL, interval=INTERVAL, parameters=PARAMETERS,
                              size=SIZE, label="parity")


def _paper_fills(candles: list[Any], strategy_id: str,
                 outcomes: tuple[str, ...] = ("simulated", "no_change")) -> list[Fill]:
    """Run the runner's paper path on every candle from START (each turn ending in one of ``outcomes``);
    the fills its run records hold."""
    for index, candle in enumerate(candles):
        if candle.open_time < START:
            continue
        message = WorkMessage(tick=candle.close_time + 1, environment="production", symbol=SYMBOL,
                              interval=INTERVAL, close_time=candle.close_time,
                              strategies=[StrategyRef(user_id=USER, strategy_id=strategy_id)])
        group = CandleGroup("production", SYMBOL, INTERVAL, candle.close_time, tuple(candles[:index + 1]))
        seen_at = (candle.close_time + 1_000) / 1000
        ctx = TickContext(message, group, deadline_ms=candle.close_time + 60_000, clock=lambda at=seen_at: at)
        result = run_strategy(strategy_store.get_strategy(USER, strategy_id, consistent=True), ctx)
        assert result.outcome in outcomes, result
    runs = sorted(list_runs(strategy_id, limit=CANDLES + 10), key=lambda run: run.close_time)
    return [
        Fill(run.close_time, run.order["side"], Decimal(run.order["executed_quantity"]),
             Decimal(run.order["average_price"]), Decimal(run.order["fee"]))
        for run in runs if run.order is not None
    ]


def test_paper_mode_and_backtest_make_identical_trades(sim_env) -> None:
    """GIVEN recorded candles WHEN paper mode and a backtest run over them THEN identical fills and trades."""
    candles = _recorded_candles()
    paper = Ledger.replay(_paper_fills(candles, _paper_strategy()))
    spec = BacktestSpec.from_json({
        "environment": "production", "symbol": SYMBOL, "interval": INTERVAL, "type": "sma_crossover",
        "parameters": PARAMETERS, "size": str(SIZE), "start_ms": START, "end_ms": candles[-1].close_time + 1,
    })
    rules = get_symbol_rules(get_client(Market.FUTURES, "production"), SYMBOL)
    backtest = simulate(spec, candles, rules).ledger
    assert len(backtest.trades) >= 3  # the sequence is long enough to trade both ways
    assert [(f.time, f.side, f.quantity, f.price, f.fee) for f in paper.fills] == [
        (f.time, f.side, f.quantity, f.price, f.fee) for f in backtest.fills]
    assert paper.trades == backtest.trades
    assert paper.realised_pnl == backtest.realised_pnl


def test_paper_mode_and_backtest_size_a_percent_flip_alike(sim_env) -> None:
    """GIVEN recorded candles and a strategy sized at 50 % of equity, 10x WHEN paper mode and a backtest
    run THEN the same fills: both size each entry on the equity at the decision candle's close (realised
    plus the open position's unrealised PnL), also on a flip."""
    candles = _recorded_candles()
    strategy_id = _paper_strategy()
    stored = strategy_store.get_strategy(USER, strategy_id, consistent=True)
    strategy_store.update_settings(USER, strategy_id, stored,
                                   changes={"size_pct": Decimal("50"), "leverage": 10, "size": None})
    paper = Ledger.replay(_paper_fills(candles, strategy_id))
    spec = BacktestSpec.from_json({
        "environment": "production", "symbol": SYMBOL, "interval": INTERVAL, "type": "sma_crossover",
        "parameters": PARAMETERS, "size_pct": "50", "leverage": 10, "start_ms": START,
        "end_ms": candles[-1].close_time + 1,
    })
    rules = get_symbol_rules(get_client(Market.FUTURES, "production"), SYMBOL)
    backtest = simulate(spec, candles, rules).ledger
    assert len(backtest.fills) >= 3  # a flip is sized while a position is open
    assert [(f.time, f.side, f.quantity, f.price, f.fee) for f in paper.fills] == [
        (f.time, f.side, f.quantity, f.price, f.fee) for f in backtest.fills]


def _protected_paper_strategy() -> str:
    """A paper strategy sized in USDT with a tight stop-loss and take-profit, so that exits happen."""
    strategy_id = _paper_strategy()
    stored = strategy_store.get_strategy(USER, strategy_id, consistent=True)
    settings = {"quote_size_usdt": Decimal("150"), "stop_loss_pct": Decimal("0.1"),
                "take_profit_pct": Decimal("0.15")}
    strategy_store.update_settings(USER, strategy_id, stored, changes={**settings, "size": None})
    return strategy_id


def test_paper_mode_and_backtest_agree_with_quote_sizing_and_stop_loss_take_profit(sim_env) -> None:
    """GIVEN recorded candles and a strategy sized in USDT with SL/TP WHEN paper mode and a backtest run
    THEN the same entries at the same prices and fees, stop-loss/take-profit exits on both sides (the
    backtest's exit fills), and the same realised PnL, fees and final position."""
    candles = _recorded_candles()
    strategy_id = _protected_paper_strategy()
    entries = _paper_fills(candles, strategy_id)
    stored = strategy_store.get_strategy(USER, strategy_id, consistent=True)
    spec = BacktestSpec.from_json({
        "environment": "production", "symbol": SYMBOL, "interval": INTERVAL, "type": "sma_crossover",
        "parameters": PARAMETERS, "quote_size_usdt": "150", "stop_loss_pct": "0.1", "take_profit_pct": "0.15",
        "start_ms": START, "end_ms": candles[-1].close_time + 1,
    })
    rules = get_symbol_rules(get_client(Market.FUTURES, "production"), SYMBOL)
    backtest = simulate(spec, candles, rules).ledger
    exits = [f for f in backtest.fills if f.reason != "signal"]
    assert exits, "the stop-loss/take-profit levels are tight enough to be reached in this sequence"
    assert [(f.time, f.side, f.quantity, f.price, f.fee) for f in entries] == [
        (f.time, f.side, f.quantity, f.price, f.fee) for f in backtest.fills if f.reason == "signal"]
    book = stored.paper_book or {}
    assert Decimal(str(book["gross_pnl"])) == backtest.gross_pnl
    assert Decimal(str(book["fees"])) == backtest.fees
    assert stored.paper_position == backtest.position


def _backtest(candles: list[Any], strategy_type: str, parameters: dict[str, Any], **sizing: Any) -> Any:
    """``simulate`` over ``candles`` from START with ``sizing`` (and leverage, paper balance)."""
    spec = BacktestSpec.from_json({
        "environment": "production", "symbol": SYMBOL, "interval": INTERVAL, "type": strategy_type,
        "parameters": parameters, **sizing, "start_ms": START, "end_ms": candles[-1].close_time + 1,
    })
    return simulate(spec, candles, get_symbol_rules(get_client(Market.FUTURES, "production"), SYMBOL))


def _changed_paper_strategy(**changes: Any) -> str:
    """The parity paper strategy with ``changes`` (type, parameters, sizing, settings) applied."""
    strategy_id = _paper_strategy()
    stored = strategy_store.get_strategy(USER, strategy_id, consistent=True)
    strategy_store.update_settings(USER, strategy_id, stored, changes={"size": None, **changes})
    return strategy_id


def _fill_rows(fills: list[Fill]) -> list[tuple[Any, ...]]:
    return [(f.time, f.side, f.quantity, f.price, f.fee) for f in fills]


def _refused_signal_runs(strategy_id: str) -> int:
    """The paper strategy's margin refusals counted as the backtest counts skipped entries: a risk_block
    candle counts unless the last candle that acted (not a hold) was refused for the same signal."""
    blocked = {e.close_time for e in list_events(strategy_id, 1000).events
               if e.kind == "risk_block" and e.details["gate"] == "insufficient_margin"}
    count, refused = 0, None
    for run in sorted(list_runs(strategy_id, limit=CANDLES + 10), key=lambda run: run.close_time):
        if run.signal == "hold":
            continue
        if run.close_time in blocked:
            count += run.signal != refused
        refused = run.signal if run.close_time in blocked else None
    return count


def test_paper_mode_and_backtest_skip_the_same_entries_that_do_not_fit(sim_env) -> None:
    """GIVEN 100 USDT of paper equity and 199.5 USDT entries at 2x (margin ~99.75) WHEN paper mode and a
    backtest run THEN the same fills, and the backtest's skipped entries (one per signal run) are the paper
    risk_blocks grouped the same way (the strategy trades again once an entry fits: nothing pauses it)."""
    candles = _recorded_candles()
    sizing = {"quote_size_usdt": Decimal("199.5"), "leverage": 2, "paper_balance_usdt": Decimal("100")}
    strategy_id = _changed_paper_strategy(**sizing)
    paper = _paper_fills(candles, strategy_id, ("simulated", "no_change", "skipped"))
    backtest = _backtest(candles, "sma_crossover", PARAMETERS, **{k: str(v) for k, v in sizing.items()})
    assert backtest.skipped["insufficient_margin"] >= 3 and len(backtest.ledger.fills) > 10
    assert _fill_rows(paper) == _fill_rows(backtest.ledger.fills)
    assert _refused_signal_runs(strategy_id) == backtest.skipped["insufficient_margin"]
    stored = strategy_store.get_strategy(USER, strategy_id, consistent=True)
    assert (stored.status, stored.failed_runs) == ("active", 0)


ALWAYS_SHORT = {"period": 14, "oversold": "0.001", "overbought": "0.002", "allow_short": True}


def test_paper_mode_and_backtest_liquidate_alike(sim_env) -> None:
    """GIVEN an always-short strategy at 75x on its whole equity WHEN paper mode and a backtest run over a
    rising sequence THEN the same entry, a liquidation on the same candle at the same price, paper equity
    0 like the backtest's, and the paper strategy paused (the backtest trades nothing more either)."""
    candles = _recorded_candles()
    sizing = {"size_pct": Decimal("100"), "leverage": 75, "paper_balance_usdt": Decimal("1000")}
    strategy_id = _changed_paper_strategy(type="rsi_threshold", parameters=ALWAYS_SHORT, **sizing)
    entries = _paper_fills(candles, strategy_id, ("simulated", "no_change", "skipped", "not_run"))
    state = _backtest(candles, "rsi_threshold", ALWAYS_SHORT, **{k: str(v) for k, v in sizing.items()})
    entry, liquidation = state.ledger.fills
    assert liquidation.reason == "liquidation" and state.liquidated_at is not None
    assert _fill_rows(entries) == _fill_rows([entry])
    closed, = [e for e in list_events(strategy_id, 1000).events if e.kind == "position_closed"]
    assert (closed.close_time, closed.details["cause"]) == (state.liquidated_at, "liquidation")
    assert Decimal(closed.details["price"]) == liquidation.price
    stored = strategy_store.get_strategy(USER, strategy_id, consistent=True)
    assert (stored.status, stored.status_reason) == ("paused", "paper_liquidated")
    assert ledger_of(stored).equity() == 0 == state.equity[-1][1]


def test_paper_mode_and_backtest_check_the_margin_of_a_size_off_the_step_alike(sim_env) -> None:
    """GIVEN a size of 0.0029 (traded as 0.002, the step being 0.001) and a paper balance that backs 0.002
    but not 0.0029 WHEN paper mode and a backtest run THEN the same fills: both check the margin of the
    quantity the order carries, not of the size as typed."""
    candles = _recorded_candles()
    closes = [c.close for c in candles if c.open_time >= START]
    balance = (Decimal("0.0024") * max(closes)).quantize(Decimal(1))
    assert Decimal("0.0029") * min(closes) > balance  # the unrounded size never fits, the rounded always
    sizing = {"size": Decimal("0.0029"), "paper_balance_usdt": balance}
    strategy_id = _changed_paper_strategy(**sizing)
    paper = _paper_fills(candles, strategy_id, ("simulated", "no_change", "skipped"))
    backtest = _backtest(candles, "sma_crossover", PARAMETERS, **{k: str(v) for k, v in sizing.items()})
    assert len(backtest.ledger.fills) >= 3 and not backtest.skipped
    assert _fill_rows(paper) == _fill_rows(backtest.ledger.fills)
