"""A paper strategy trades within its paper balance, as a backtest does: an entry whose initial margin does
not fit the paper equity is not taken (a flip still closes its old side), and a position whose candle
reaches its liquidation price is closed there, the equity 0 and the strategy paused.

Turns are played through ``run_strategy`` on hand-made 1m candles (``test_strategy_money``'s: SMA 1/2,
long while the close rises, short while it falls), the simulator answering exchangeInfo only (BTCUSDT:
step 0.001, minimum order value 100 USDT), the strategy stored under moto; what each turn wrote is read
back (runs, events, the strategy item) and compared with ``simulate`` over the same candles.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from klineo.binance import Market, get_client, get_symbol_rules
from klineo.runner.paper import LIQUIDATED_MESSAGE, MARGIN_MESSAGE, ledger_of
from klineo.services.backtest import BacktestSpec, simulate
from klineo.store import strategies as strategy_store
from klineo.store.events import list_events
from klineo.store.runs import list_runs

from tests.helpers import load_event, put_paper_strategy, response_json, with_body, with_user
from tests.integration.api.conftest import at_path
from tests.integration.runner.test_runner_writes import _Writes
from tests.integration.runner.test_strategy_money import (
    CONNECTION,
    INTERVAL,
    START,
    SYMBOL,
    USER,
    _candles,
    _tick,
)

D = Decimal
BOTH_WAYS = {"fast": 1, "slow": 2, "allow_short": True}
WARM_UP = [("100", "100", "100", "100")] * 3
RISING = [*WARM_UP, ("100", "101", "100", "101"), ("101", "102", "101", "102"), ("102", "103", "102", "103"),
          ("103", "104", "103", "104"), ("104", "105", "104", "105"), ("105", "106", "105", "106")]
# A long at 101, then a falling close: the short's margin (1 x 100.5) is above the equity left (~100.48).
FLIP = [*WARM_UP, ("100", "101", "100", "101"), ("101", "101", "100.5", "100.5")]
# A 10x long at 101, a rising candle (held), then a crash whose low (40) passes its liquidation price,
# then a recovery.
CRASH = [*WARM_UP, ("100", "101", "100", "101"), ("101", "102", "100.5", "102"), ("102", "102", "40", "45"),
         ("45", "60", "45", "60")]


def _strategy(size: str | None = "2", **settings: Any) -> str:
    """A paper SMA 1/2 strategy (both ways) with ``settings`` (strings become Decimals)."""
    sid = put_paper_strategy(USER, CONNECTION, symbol=SYMBOL, interval=INTERVAL, parameters=BOTH_WAYS,
                             size=D(size) if size is not None else None)
    stored = strategy_store.get_strategy(USER, sid, consistent=True)
    changes = {k: D(v) if isinstance(v, str) else v for k, v in settings.items()}
    strategy_store.update_settings(USER, sid, stored, changes=changes)
    return sid


def _backtest(candles: list[Any], size: str | None = "2", **settings: Any) -> Any:
    """``simulate`` over ``candles`` with the same strategy."""
    sizing = {"size": size} if size is not None else {}
    spec = BacktestSpec.from_json({
        "environment": "production", "symbol": SYMBOL, "interval": INTERVAL, "type": "sma_crossover",
        "parameters": BOTH_WAYS, **sizing, **settings,
        "start_ms": START, "end_ms": candles[-1].close_time + 1})
    return simulate(spec, candles, get_symbol_rules(get_client(Market.FUTURES, "production"), SYMBOL))


def _events(sid: str) -> list[Any]:
    """The strategy's events, oldest first."""
    return list(reversed(list_events(sid, 100).events))


def _stored(sid: str) -> strategy_store.Strategy:
    stored = strategy_store.get_strategy(USER, sid, consistent=True)
    assert stored is not None
    return stored


def test_an_entry_whose_margin_does_not_fit_is_a_skipped_run_with_a_risk_block_in_one_write(sim_env) -> None:
    """GIVEN 100 USDT of paper equity and size 2 at 101 (margin 202) WHEN the signal asks for the entry THEN
    no fill: ONE transaction of a skipped run (insufficient_margin, with the signal) and its signal and
    risk_block events (margin, equity, leverage); nothing counted towards a pause."""
    candles = _candles(RISING)
    sid = _strategy(paper_balance_usdt="100")
    writes = _Writes()

    result = _tick(candles, 3, sid)

    assert (result.outcome, result.detail) == ("skipped", "insufficient_margin")
    assert writes.counts == Counter({"TransactWriteItems": 1})
    run, = list_runs(sid)
    assert (run.status, run.skip_reason, run.order) == ("skipped", "insufficient_margin", None)
    assert run.signal == "long"
    assert (run.position_before, run.target_position) == (0, 0)
    signal, block = _events(sid)
    assert (signal.kind, block.kind) == ("signal", "risk_block")
    assert block.details == {"gate": "insufficient_margin", "message": MARGIN_MESSAGE,
                             "initial_margin": "202", "equity": "100", "leverage": "1"}
    stored = _stored(sid)
    assert (stored.paper_position, stored.failed_runs, stored.status) == (0, 0, "active")


def test_refused_entries_on_every_candle_never_pause_and_match_the_backtests_skips(sim_env) -> None:
    """GIVEN an entry that never fits WHEN six candles in a row ask for it THEN six skipped runs (one per
    candle), the strategy still active with no failed runs, and the backtest counts that one signal run as
    one skipped entry."""
    candles = _candles(RISING)
    sid = _strategy(paper_balance_usdt="100")

    outcomes = [_tick(candles, index, sid).outcome for index in range(3, len(candles))]

    assert outcomes == ["skipped"] * 6
    stored = _stored(sid)
    assert (stored.status, stored.failed_runs, stored.paper_position) == ("active", 0, 0)
    backtest = _backtest(candles, paper_balance_usdt="100")
    assert backtest.ledger.fills == [] and dict(backtest.skipped) == {"insufficient_margin": 1}


def test_a_flip_whose_new_side_does_not_fit_closes_the_old_side_as_the_backtest_does(sim_env) -> None:
    """GIVEN a long whose equity fell under the short's margin WHEN the signal flips THEN the long closes
    alone (a simulated run, target 0, a risk_block event), the same fills as the backtest's."""
    candles = _candles(FLIP)
    sid = _strategy(size="1", paper_balance_usdt="101.05")
    assert _tick(candles, 3, sid).outcome == "simulated"

    result = _tick(candles, 4, sid)

    assert result.outcome == "simulated"
    flip = list_runs(sid)[0]
    assert (flip.signal, flip.target_position) == ("short", 0)
    assert (flip.order["side"], flip.order["quantity"]) == ("SELL", "1")
    assert flip.order["reduce_only"] is True
    blocks = [e for e in _events(sid) if e.kind == "risk_block"]
    assert [(e.close_time, e.details["gate"]) for e in blocks] == [
        (candles[4].close_time, "insufficient_margin")]
    assert _stored(sid).paper_position == 0
    backtest = _backtest(candles, size="1", paper_balance_usdt="101.05")
    paper = [(r.close_time, r.order["side"], D(r.order["quantity"]), D(r.order["average_price"]))
             for r in sorted(list_runs(sid), key=lambda r: r.close_time)]
    assert paper == [(f.time, f.side, f.quantity, f.price) for f in backtest.ledger.fills]


def test_a_liquidated_paper_position_closes_at_zero_equity_and_pauses_in_one_write(sim_env) -> None:
    """GIVEN a 10x paper long whose hold turns stay ONE put WHEN a candle's low passes its liquidation price
    THEN ONE transaction: a skipped run (paper_liquidated), position_closed (cause liquidation, the
    backtest's price) and paused events, the position 0, the paper equity exactly 0 and the strategy
    paused; later candles do not run."""
    candles = _candles(CRASH)
    sid = _strategy(size=None, size_pct="100", leverage=10, paper_balance_usdt="1000")
    assert _tick(candles, 3, sid).outcome == "simulated"
    writes = _Writes()
    assert _tick(candles, 4, sid).outcome == "no_change"
    assert writes.counts == Counter({"PutItem": 1})  # a hold with an open position: its run alone
    writes.clear()

    result = _tick(candles, 5, sid)

    assert (result.outcome, result.detail) == ("skipped", "paper_liquidated")
    assert writes.counts == Counter({"TransactWriteItems": 1})
    run = list_runs(sid)[0]
    assert (run.status, run.skip_reason) == ("skipped", "paper_liquidated")
    assert run.close_time == candles[5].close_time
    backtest = _backtest(candles, size=None, size_pct="100", leverage=10, paper_balance_usdt="1000")
    liquidation = backtest.ledger.fills[-1]
    assert (liquidation.reason, backtest.liquidated_at) == ("liquidation", candles[5].close_time)
    closed, paused = [e for e in _events(sid) if e.kind in ("position_closed", "paused")]
    assert (closed.details["cause"], D(closed.details["price"])) == ("liquidation", liquidation.price)
    assert paused.details == {"reason": "paper_liquidated", "message": LIQUIDATED_MESSAGE}
    stored = _stored(sid)
    assert (stored.status, stored.status_reason, stored.paper_position) == ("paused", "paper_liquidated", 0)
    assert ledger_of(stored).equity() == 0 and ledger_of(stored).realised_pnl == D(-1000)
    assert _tick(candles, 6, sid).outcome == "not_run"


def test_a_liquidation_on_a_candle_the_runner_skipped_is_applied_on_the_next_turn(sim_env) -> None:
    """GIVEN a 10x paper long WHEN the crash candle's message comes too late (stale) THEN the next turn
    still liquidates on the crash candle, at the backtest's price, and pauses."""
    candles = _candles(CRASH)
    sid = _strategy(size=None, size_pct="100", leverage=10, paper_balance_usdt="1000")
    assert [_tick(candles, index, sid).outcome for index in (3, 4)] == ["simulated", "no_change"]
    assert _tick(candles, 5, sid, seen_at_ms=candles[6].close_time + 1_000).detail == "stale_candle"

    assert _tick(candles, 6, sid).detail == "paper_liquidated"

    backtest = _backtest(candles, size=None, size_pct="100", leverage=10, paper_balance_usdt="1000")
    closed, = [e for e in _events(sid) if e.kind == "position_closed"]
    assert D(closed.details["price"]) == backtest.ledger.fills[-1].price
    assert backtest.liquidated_at == candles[5].close_time
    assert _stored(sid).status == "paused" and ledger_of(_stored(sid)).equity() == 0


def _patch(runner: Any, sid: str, body: dict[str, Any]) -> dict[str, Any]:
    event = at_path(load_event("strategy_update"), f"/strategies/{sid}", id=sid)
    return runner.invoke("strategy_update", with_user(with_body(event, body), USER))


def test_resuming_a_liquidated_paper_strategy_is_refused_until_it_has_paper_equity(runner) -> None:
    """GIVEN a paper strategy liquidated to 0 equity WHEN it is resumed THEN 409 naming paper_balance_usdt,
    still paused; resumed with a paper_balance_usdt in the same request THEN 200, active, the paper ledger
    started again from it (equity 1500, not 1500 - the 1000 lost)."""
    candles = _candles(CRASH)
    sid = _strategy(size=None, size_pct="100", leverage=10, paper_balance_usdt="1000")
    assert [_tick(candles, index, sid).detail for index in (3, 4, 5)][-1] == "paper_liquidated"

    refused = _patch(runner, sid, {"status": "active"})

    assert refused["statusCode"] == 409, refused["body"]
    error = response_json(refused)["error"]
    assert (error["category"], error["field"]) == ("conflict", "paper_balance_usdt")
    assert _stored(sid).status == "paused"
    resumed = _patch(runner, sid, {"status": "active", "paper_balance_usdt": "1500"})
    assert resumed["statusCode"] == 200, resumed["body"]
    assert _stored(sid).status == "active" and ledger_of(_stored(sid)).equity() == D(1500)
