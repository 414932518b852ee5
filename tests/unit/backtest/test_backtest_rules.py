"""The backtest loop on hand-made candles: exits, re-entry, direction, curve, drawdown, cache encoding.

SMA 1/2 is used as a controllable strategy: LONG when a close is above the one before, SHORT below.
"""

from __future__ import annotations

import random
from decimal import Decimal as D

import pytest
from klineo.binance import Candle, Market, SymbolRules
from klineo.services import backtest
from klineo.services.backtest import BacktestSpec, simulate, summarise
from klineo.services.kline_history import Pacer, _day_runs
from klineo.store.klines_cache import DAY_MS, decode_day, encode_day
from klineo.strategies.simulation import SLIPPAGE_BPS, Ledger

MINUTE = 60_000
RULES = SymbolRules(
    symbol="BTCUSDT", market=Market.FUTURES, status="TRADING", base_asset="BTC", quote_asset="USDT",
    tick_size=D("0.01"), min_price=D("0.01"), max_price=D(1_000_000), step_size=D("0.001"),
    min_qty=D("0.001"),
    max_qty=D(1000), market_step_size=D("0.001"), market_min_qty=D("0.001"), market_max_qty=D(120),
    min_notional=D(0), max_notional=D(0), apply_min_to_market=False, apply_max_to_market=False,
    order_types=("MARKET",),
)


def _candles(rows: list[tuple[str, str, str, str]]) -> list[Candle]:
    """(open, high, low, close) per minute from t=0."""
    return [Candle(i * MINUTE, D(o), D(h), D(low), D(c), D(1), (i + 1) * MINUTE - 1)
            for i, (o, h, low, c) in enumerate(rows)]


def _spec(**changes: object) -> BacktestSpec:
    data = {"environment": "production", "symbol": "BTCUSDT", "interval": "1m", "type": "sma_crossover",
            "parameters": {"fast": 1, "slow": 2}, "size": "1", "start_ms": 2 * MINUTE, "end_ms": 100 * MINUTE,
            "paper_balance_usdt": "1000", **changes}
    return BacktestSpec.from_json(data)


def _slip(price: str, side: str) -> D:
    move = D(price) * SLIPPAGE_BPS / 10_000
    return D(price) + move if side == "BUY" else D(price) - move


# closes 100, 100 (warm-up: SMA 1/2 reads 3 candles), 101 up -> long; 101.5 up with a low of 99 ->
# stop-loss; 102 up -> no re-entry; 101 down -> short.
STOPPED = _candles([("100", "100", "100", "100"), ("100", "100", "100", "100"), ("100", "101", "100", "101"),
                    ("101", "101.5", "99", "101.5"), ("101.5", "102", "101.5", "102"),
                    ("102", "102", "101", "101")])


def test_stop_loss_closes_the_long_and_the_same_signal_does_not_re_enter() -> None:
    """GIVEN a long with a 1 % stop WHEN a low reaches it THEN stop_loss; rising closes do not re-enter."""
    ledger = simulate(_spec(stop_loss_pct="1"), STOPPED, RULES).ledger
    long, short = ledger.trades
    entry = _slip("101", "BUY")
    assert (long.side, long.entry_price, long.exit_reason) == ("long", entry, "stop_loss")
    assert long.exit_price == _slip(str(entry * D("0.99")), "SELL")
    assert long.exit_time == STOPPED[3].close_time
    assert (short.side, short.entry_time) == ("short", STOPPED[5].close_time)
    assert short.entry_price == _slip("101", "SELL")


def test_direction_long_turns_the_short_signal_into_flat() -> None:
    """GIVEN direction long WHEN the closes fall after the stop THEN no short is opened."""
    ledger = simulate(_spec(stop_loss_pct="1", direction="long"), STOPPED, RULES).ledger
    assert [trade.side for trade in ledger.trades] == ["long"] and ledger.position == 0


def test_without_protection_the_long_flips_to_short_in_one_fill() -> None:
    """GIVEN no stop WHEN the signal turns short THEN one SELL of twice the size closes and reverses."""
    ledger = simulate(_spec(), STOPPED, RULES).ledger
    assert [(fill.side, fill.quantity) for fill in ledger.fills] == [("BUY", D(1)), ("SELL", D(2))]
    assert [trade.exit_reason for trade in ledger.trades] == ["signal", None]


# closes 100, 100 (warm-up), 101 up -> long; then falling closes 99, 98, 97 -> short.
FALLING = _candles([("100", "100", "100", "100"), ("100", "100", "100", "100"), ("100", "101", "100", "101"),
                    ("101", "101", "99", "99"), ("99", "99", "98", "98"), ("98", "98", "97", "97")])


def test_a_flip_above_the_market_lot_maximum_still_closes_the_old_side() -> None:
    """GIVEN a long of 70 (a market order may carry at most 120) WHEN the signal turns short THEN the flip's
    140 cannot be one order: the long closes alone on that candle, and the short opens on the next."""
    spec = _spec(size="70", paper_balance_usdt="1000000")
    state = simulate(spec, FALLING, RULES)
    assert [(fill.side, fill.quantity, fill.price, fill.time) for fill in state.ledger.fills] == [
        ("BUY", D(70), _slip("101", "BUY"), FALLING[2].close_time),
        ("SELL", D(70), _slip("99", "SELL"), FALLING[3].close_time),
        ("SELL", D(70), _slip("98", "SELL"), FALLING[4].close_time)]
    assert state.ledger.position == D(-70) and sum(state.skipped.values()) == 1


def test_a_flip_above_the_market_lot_maximum_counts_its_new_side_above_max_quantity() -> None:
    """GIVEN a long of 70 (a market order may carry at most 120) WHEN the signal turns short and the flip's
    one order of 140 is refused THEN its skipped new side is counted as above_max_quantity, the rule it
    broke, not the catch-all order_rules."""
    state = simulate(_spec(size="70", paper_balance_usdt="1000000"), FALLING, RULES)
    assert dict(state.skipped) == {"above_max_quantity": 1}


def test_an_entry_the_symbol_refuses_for_another_rule_counts_order_rules() -> None:
    """GIVEN a symbol that takes no market orders (the backtest route refuses it before the klines; the
    simulation alone does not) WHEN the signal asks for a long, then a short THEN both entries are skipped
    under the catch-all order_rules."""
    state = simulate(_spec(), STOPPED, RULES._replace(order_types=("LIMIT",)))
    assert state.ledger.fills == [] and dict(state.skipped) == {"order_rules": 2}


def test_quote_sizing_is_rounded_to_the_step() -> None:
    """GIVEN 50 USDT per entry at 101 WHEN entering THEN 0.495 contracts (50/101 rounded down to 0.001)."""
    ledger = simulate(_spec(size=None, quote_size_usdt="50"), STOPPED[:3], RULES).ledger
    assert ledger.fills[0].quantity == D("0.495")


def test_summary_counts_return_fees_and_win_rate() -> None:
    """GIVEN the stopped-out run WHEN summarised THEN one closed losing trade, 0 % win rate, all fees."""
    state = simulate(_spec(stop_loss_pct="1"), STOPPED, RULES)
    result = summarise(_spec(stop_loss_pct="1"), state)
    assert result["number_of_trades"] == 2 and result["win_rate_pct"] == "0"
    assert D(result["fees_paid"]) == state.ledger.fees.quantize(D("0.00000001"))
    assert result["candles"] == 4 and len(result["equity_curve"]) == 4
    assert result["open_position"] == "-1"


def _zigzag(count: int) -> list[Candle]:
    """``count`` candles whose close moves up or down 0.5 to 3 (a fixed pseudo-random walk): SMA 1/2 turns
    its signal every one or two candles, for trades that win and lose."""
    moves = random.Random(7)
    rows, close = [], D(1000)
    for _ in range(count):
        after = close + D(moves.randint(5, 30)) / 10 * moves.choice((1, -1))
        rows.append((str(close), str(max(close, after)), str(min(close, after)), str(after)))
        close = after
    return _candles(rows)


def test_a_run_with_more_trades_than_shown_keeps_only_the_shown_ones(monkeypatch) -> None:
    """GIVEN 400 candles flipping every one or two candles (over 100 trades) and 5 trades shown WHEN simulated
    THEN the simulation holds at most the 5 shown trades and the open one (not every trade, so its memory
    does not grow with the period), and its result is the one of a simulation that kept every trade."""
    spec, candles = _spec(end_ms=400 * MINUTE, paper_balance_usdt="100000"), _zigzag(400)
    monkeypatch.setattr(backtest, "TRADES_SHOWN", 5)
    bounded = simulate(spec, candles, RULES)
    monkeypatch.setattr(backtest, "TRADES_SHOWN", 10_000)
    every = simulate(spec, candles, RULES)
    assert len(every.ledger.trades) > 100

    monkeypatch.setattr(backtest, "TRADES_SHOWN", 5)
    assert len(bounded.ledger.trades) <= 6 and len(bounded.ledger.fills) <= 6
    result = summarise(spec, bounded)
    assert result == summarise(spec, every)
    assert result["number_of_trades"] == len(every.ledger.trades) and len(result["trades"]) == 5
    assert result["trades_truncated"] and 0 < float(result["win_rate_pct"]) < 100


def test_a_run_longer_than_the_curve_keeps_only_the_shown_equity_points(monkeypatch) -> None:
    """GIVEN 403 candles and 5 equity points shown WHEN simulated THEN the simulation holds at most the 5
    points it shows (not one per candle, so its memory does not grow with the period), and its result is
    the one of every candle's equity: the same figures, drawdown included, and every 81st point of it plus
    the last (403 is not a multiple of 81)."""
    spec, candles = _spec(end_ms=405 * MINUTE, paper_balance_usdt="100000"), _zigzag(405)
    monkeypatch.setattr(backtest, "EQUITY_POINTS", 10_000)
    every = simulate(spec, candles, RULES)
    assert len(every.equity) == 403 and summarise(spec, every)["equity_curve_step"] == 1

    monkeypatch.setattr(backtest, "EQUITY_POINTS", 5)
    bounded = simulate(spec, candles, RULES)
    assert len(bounded.equity) <= 5
    result, full = summarise(spec, bounded), summarise(spec, every)
    assert result["equity_curve_step"] == 81
    assert result["equity_curve"] == [{"time": time, "equity": backtest._text(value)}
                                      for time, value in [*every.equity[80::81], every.equity[-1]]]
    assert {name: value for name, value in result.items() if not name.startswith("equity_curve")} == {
        name: value for name, value in full.items() if not name.startswith("equity_curve")}
    assert result["max_drawdown_pct"] != "0" and result["final_equity"] == full["equity_curve"][-1]["equity"]


def _recorded(values: list[int], step: int = 1) -> backtest.Simulation:
    """A simulation that recorded ``values`` as the equity of candles closing at 0, 1, 2, ..."""
    state = backtest.Simulation(Ledger(), step=step)
    for time, value in enumerate(values):
        state.record(time, D(value))
    return state


def test_equity_curve_is_bounded_and_keeps_the_last_point() -> None:
    """GIVEN 1234 candles' equity, a 500 limit WHEN recorded THEN every 3rd, at most 500, the last kept."""
    state = _recorded(list(range(1234)), step=backtest.curve_step(1234))
    curve = backtest._curve(state)
    assert state.step == 3 and len(curve) <= 500
    assert curve[-1] == {"time": 1233, "equity": "1233"} and curve[0]["time"] == 2


def test_max_drawdown_is_the_largest_fall_from_a_peak() -> None:
    """GIVEN equity 100, 120, 90, 130, 117 WHEN measured THEN 25 % (120 -> 90), not 10 % (130 -> 117)."""
    assert _recorded([100, 120, 90, 130, 117]).max_drawdown_pct == 25


def test_a_cached_day_decodes_to_the_candles_it_stored() -> None:
    """GIVEN three 1h candles of a day WHEN encoded and decoded THEN the same candles, times derived."""
    day = 20_000 * DAY_MS
    candles = [Candle(day + i * 3_600_000, D("100.50"), D("101"), D("99.9"), D("100.25"), D("12.5"),
                      day + (i + 1) * 3_600_000 - 1) for i in (0, 1, 5)]
    assert decode_day(day, 3_600_000, encode_day(day, 3_600_000, candles)) == candles


def test_a_candle_off_the_days_grid_is_refused() -> None:
    """GIVEN a candle of the next day WHEN encoding a day THEN ValueError (nothing half-written)."""
    day = 20_000 * DAY_MS
    stray = Candle(day + DAY_MS, D(1), D(1), D(1), D(1), D(1), day + DAY_MS + 59_999)
    with pytest.raises(ValueError, match="outside the day"):
        encode_day(day, 60_000, [stray])


def test_missing_days_are_fetched_in_runs_of_consecutive_days() -> None:
    """GIVEN missing days 1, 2, 3, 5, 7, 8 WHEN grouped THEN three runs, so three fetch ranges."""
    days = [d * DAY_MS for d in (1, 2, 3, 5, 7, 8)]
    assert _day_runs(days) == [(DAY_MS, 3 * DAY_MS), (5 * DAY_MS, 5 * DAY_MS), (7 * DAY_MS, 8 * DAY_MS)]


def test_pacer_waits_until_the_oldest_request_leaves_the_minute_when_the_caller_allows() -> None:
    """GIVEN 10 weight a minute, two 5-weight requests at once WHEN a third may wait 10 s (or not at all)
    THEN rate_limit with the 45 s wait as retry_after, its reason apart from the advice to retry, and no
    sleep; allowed 60 s, it sleeps the 45 s."""
    from klineo.errors import RETRY_SHORTLY, ErrorCategory, KlineoError

    now = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(10, clock=lambda: now[0], sleep=sleep)
    assert [pacer.take(5), pacer.take(5)] == [0.0, 0.0]
    now[0] += 15
    for allowed in (None, 10.0):
        with pytest.raises(KlineoError) as refused:
            pacer.take(5, allowed)
        assert (refused.value.category, refused.value.retry_after) == (ErrorCategory.RATE_LIMIT, 45)
        assert (refused.value.reason, refused.value.advice) == (
            "Backtests are paused for the rest of this minute so that trading keeps its Binance request "
            "budget; the days already fetched are kept.", RETRY_SHORTLY)
    assert slept == []
    assert pacer.take(5, 60.0) == 45.0 and slept == [45.0]
