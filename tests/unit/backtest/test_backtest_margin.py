"""The backtest's margin and liquidation rules on hand-made candles (SMA 1/2: LONG on a rising close,
SHORT on a falling one; ``test_backtest_rules``' candles, rules and spec)."""

from __future__ import annotations

from decimal import Decimal as D

from klineo.services.backtest import simulate, summarise
from klineo.strategies.simulation import TAKER_FEE_RATE

from tests.unit.backtest.test_backtest_rules import RULES, STOPPED, _candles, _slip, _spec

# closes 100, 100 (warm-up), 101 up -> a long; then a crash whose low (40) passes the 10x long's
# bankruptcy price, and a recovery the liquidated account can no longer trade.
CRASH = _candles([("100", "100", "100", "100"), ("100", "100", "100", "100"), ("100", "101", "100", "101"),
                  ("101", "101", "40", "45"), ("45", "60", "45", "60"), ("60", "70", "50", "55")])


def test_a_leveraged_long_in_a_crash_is_liquidated_at_zero_equity_and_stops_trading() -> None:
    """GIVEN a 10x long WHEN a low falls 60 % THEN liquidation, equity 0, drawdown 100 %, no later trade."""
    spec = _spec(size=None, size_pct="100", leverage=10)
    state = simulate(spec, CRASH, RULES)
    result = summarise(spec, state)
    long, = state.ledger.trades
    assert (long.exit_reason, long.exit_time) == ("liquidation", CRASH[3].close_time)
    assert result["liquidated_at"] == CRASH[3].close_time and result["number_of_trades"] == 1
    assert [equity for _, equity in state.equity][1:] == [D(0)] * 3
    assert result["final_equity"] == "0" and result["max_drawdown_pct"] == "100"


def test_the_liquidation_price_leaves_no_equity_after_the_closing_fee() -> None:
    """GIVEN a liquidated 10x long WHEN its exit price is checked THEN equity after the closing fee is 0."""
    ledger = simulate(_spec(size=None, size_pct="100", leverage=10), CRASH, RULES).ledger
    long, = ledger.trades
    entry = _slip("101", "BUY")
    assert long.entry_price == entry and long.quantity == D("99.009")
    cash = D(1000) - long.quantity * entry * TAKER_FEE_RATE
    left = cash + (long.exit_price - entry) * long.quantity - long.quantity * long.exit_price * TAKER_FEE_RATE
    assert abs(left) < D("1e-12")


def test_an_entry_whose_margin_does_not_fit_the_equity_is_skipped_and_counted() -> None:
    """GIVEN 50 USDT for 1 contract at 101 (1x) WHEN a long is signalled on three candles, then a short THEN
    none taken, each signal run counted once: two skipped entries, not four candles."""
    spec = _spec(paper_balance_usdt="50")
    state = simulate(spec, STOPPED, RULES)
    result = summarise(spec, state)
    assert state.ledger.fills == [] and result["final_equity"] == "50"
    assert result["skipped_entries"] == 2 and result["skipped_reasons"] == {"insufficient_margin": 2}


def test_a_flip_whose_new_side_does_not_fit_still_closes_the_old_side() -> None:
    """GIVEN a long whose fees left under 101 USDT WHEN short at 101 THEN the long closes alone, counted."""
    spec = _spec(paper_balance_usdt="101.05")
    state = simulate(spec, STOPPED, RULES)
    assert [(fill.side, fill.quantity) for fill in state.ledger.fills] == [("BUY", D(1)), ("SELL", D(1))]
    assert state.ledger.position == 0 and dict(state.skipped) == {"insufficient_margin": 1}


def test_a_percent_size_rounding_below_the_minimum_quantity_says_so() -> None:
    """GIVEN 1 % of 5 USDT (under 0.001 contracts) WHEN a long run then a short are signalled THEN two skipped
    entries, below_min_quantity."""
    spec = _spec(size=None, size_pct="1", paper_balance_usdt="5")
    result = summarise(spec, simulate(spec, STOPPED, RULES))
    assert result["number_of_trades"] == 0
    assert result["skipped_entries"] == 2 and result["skipped_reasons"] == {"below_min_quantity": 2}


def _after_the_long(row: tuple[str, str, str, str]) -> list:
    """CRASH's warm-up and long entry, then one candle (open, high, low, close)."""
    return _candles([*[(str(c.open), str(c.high), str(c.low), str(c.close)) for c in CRASH[:3]], row])


# The CRASH long with a 1 % take-profit (102.03): the crash candle's high (103) reaches it and its low (40)
# passes the bankruptcy price, which of the two came first in the candle being unknown.
WICK = _after_the_long(("101", "103", "40", "45"))


def test_a_candle_reaching_the_take_profit_and_the_bankruptcy_price_liquidates() -> None:
    """GIVEN a 10x long with a take-profit WHEN one candle's high reaches it and its low the bankruptcy price
    THEN liquidation (the pessimistic order, as a stop-loss before a take-profit), not a winning exit."""
    spec = _spec(size=None, size_pct="100", leverage=10, take_profit_pct="1")
    state = simulate(spec, WICK, RULES)
    long, = state.ledger.trades
    assert (long.exit_reason, state.liquidated_at) == ("liquidation", WICK[3].close_time)
    assert summarise(spec, state)["final_equity"] == "0"


def test_a_stop_loss_whose_slipped_fill_would_pass_the_bankruptcy_price_still_closes_the_position() -> None:
    """GIVEN a 10x long whose stop-loss (9.89403321 %, 91.02523) lies under 2 bps above its bankruptcy price
    (91.01613) WHEN a candle's low (91.0252) reaches the stop but not that price THEN the position closes on
    that candle, at the bankruptcy price (its slipped fill would leave a negative equity), not kept open."""
    spec = _spec(size=None, size_pct="100", leverage=10, stop_loss_pct="9.89403321")
    candles = _after_the_long(("101", "101", "91.0252", "101"))
    state = simulate(spec, candles, RULES)
    long, = state.ledger.trades
    assert (long.exit_reason, long.exit_time) == ("liquidation", candles[3].close_time)
    assert state.ledger.position == 0 and summarise(spec, state)["final_equity"] == "0"
