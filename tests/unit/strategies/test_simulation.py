"""The simulation rules on worked numbers: slippage, fees, direction, sizing, protective exits, ledger."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from klineo.binance import Market, SymbolRules
from klineo.strategies import Bar, Signal
from klineo.strategies.simulation import (
    Ledger,
    Sizing,
    apply_direction,
    effective_signal,
    fee,
    market_fill,
    protective_exit,
    protective_prices,
    size_quantity,
)


def _rules(step: str = "0.001") -> SymbolRules:
    return SymbolRules(
        symbol="BTCUSDT", market=Market.FUTURES, status="TRADING", base_asset="BTC", quote_asset="USDT",
        tick_size=D("0.1"), min_price=D("0.1"), max_price=D(1_000_000), step_size=D(step), min_qty=D(step),
        max_qty=D(1000), market_step_size=D(step), market_min_qty=D(step), market_max_qty=D(120),
        min_notional=D(5), max_notional=D(0), apply_min_to_market=True, apply_max_to_market=False,
        order_types=("MARKET",),
    )


def _candle(open_: str, high: str, low: str, close: str = "0") -> Bar:
    return Bar(close=D(close), close_time=1, open=D(open_), high=D(high), low=D(low))


def test_market_fill_moves_two_bps_against_the_taker() -> None:
    """GIVEN a close of 50000 WHEN filling THEN a BUY pays 50010 and a SELL receives 49990."""
    assert market_fill("BUY", D(50000)) == D(50010)
    assert market_fill("SELL", D(50000)) == D(49990)


def test_market_fill_refuses_an_unknown_side() -> None:
    """GIVEN a side that is neither BUY nor SELL WHEN filling THEN ValueError."""
    with pytest.raises(ValueError, match="side"):
        market_fill("LONG", D(1))


def test_fee_is_five_bps_of_the_notional_whatever_the_sign() -> None:
    """GIVEN 0.1 at 50000 (notional 5000) WHEN charging THEN 2.5 USDT, the same for -0.1."""
    assert fee(D("0.1"), D(50000)) == D("2.5")
    assert fee(D("-0.1"), D(50000)) == D("2.5")


@pytest.mark.parametrize(("direction", "signal", "expected"), [
    ("long", Signal.SHORT, Signal.FLAT), ("long", Signal.LONG, Signal.LONG),
    ("short", Signal.LONG, Signal.FLAT), ("short", Signal.SHORT, Signal.SHORT),
    ("both", Signal.SHORT, Signal.SHORT), ("long", Signal.HOLD, Signal.HOLD),
])
def test_direction_turns_the_forbidden_side_into_flat(
    direction: str, signal: Signal, expected: Signal,
) -> None:
    """GIVEN a direction WHEN a signal comes THEN the other side means flat, the rest passes."""
    assert apply_direction(signal, direction) is expected


def test_sizing_in_contracts_is_rounded_down_to_the_step() -> None:
    """GIVEN size 0.0029 and a 0.001 step WHEN sizing THEN 0.002."""
    assert size_quantity(Sizing(size=D("0.0029")), D(50000), D(10000), _rules()) == D("0.002")


def test_sizing_in_quote_divides_by_the_price() -> None:
    """GIVEN 1000 USDT at 40000 WHEN sizing THEN 0.025 contracts."""
    assert size_quantity(Sizing(quote_size_usdt=D(1000)), D(40000), D(0), _rules()) == D("0.025")


def test_sizing_in_percent_uses_equity_times_leverage() -> None:
    """GIVEN 10 % of 10000 at leverage 3, price 30000 WHEN sizing THEN 3000/30000 = 0.1."""
    sizing = Sizing(size_pct=D(10), leverage=3)
    assert size_quantity(sizing, D(30000), D(10000), _rules()) == D("0.1")


def test_sizing_without_rules_is_not_rounded() -> None:
    """GIVEN no symbol rules WHEN sizing 100 USDT at 3 THEN the exact quotient."""
    assert size_quantity(Sizing(quote_size_usdt=D(100)), D(4), D(0), None) == D(25)


@pytest.mark.parametrize("fields", [{}, {"size": 1, "size_pct": 5}, {"size": 0}, {"size_pct": 101}])
def test_sizing_needs_exactly_one_positive_rule(fields: dict) -> None:
    """GIVEN no sizing, two sizings, a zero size or over 100 % WHEN building THEN ValueError."""
    with pytest.raises(ValueError):
        Sizing.of(fields)


def test_protective_prices_of_a_long_and_a_short() -> None:
    """GIVEN entry 100, SL 2 %, TP 5 % WHEN long THEN 98/105; WHEN short THEN 102/95."""
    assert protective_prices("BUY", D(100), D(2), D(5)) == (D(98), D(105))
    assert protective_prices("SELL", D(100), D(2), D(5)) == (D(102), D(95))
    assert protective_prices("BUY", D(100), None, None) == (None, None)


def test_protective_exit_fills_a_long_stop_at_its_level_minus_slippage() -> None:
    """GIVEN a long with SL 98 WHEN a candle's low reaches 97 THEN stop_loss at 98 * (1 - 0.0002)."""
    assert protective_exit("LONG", D(98), D(105), _candle("100", "101", "97")) == ("stop_loss", D("97.9804"))


def test_protective_exit_takes_profit_of_a_short() -> None:
    """GIVEN a short with TP 95 WHEN a candle's low reaches 94 THEN take_profit at 95 * (1 + 0.0002)."""
    assert protective_exit("SHORT", D(102), D(95), _candle("99", "100", "94")) == ("take_profit", D("95.019"))


def test_protective_exit_is_pessimistic_when_both_levels_are_inside_one_candle() -> None:
    """GIVEN a long with SL 98 and TP 105 WHEN one candle spans 97..106 THEN the stop-loss is taken."""
    reason, _ = protective_exit("LONG", D(98), D(105), _candle("100", "106", "97"))
    assert reason == "stop_loss"


def test_protective_exit_fills_a_gapped_stop_at_the_open() -> None:
    """GIVEN a long with SL 98 WHEN the candle opens at 90 THEN the stop fills at 90 * (1 - 0.0002)."""
    assert protective_exit("LONG", D(98), None, _candle("90", "91", "89")) == ("stop_loss", D("89.982"))


def test_protective_exit_is_none_inside_the_range() -> None:
    """GIVEN a long with SL 98 and TP 105 WHEN a candle stays within 99..104 THEN no exit."""
    assert protective_exit("LONG", D(98), D(105), _candle("100", "104", "99")) is None


def test_ledger_round_trip_realises_pnl_net_of_both_fees() -> None:
    """GIVEN a long 1 @ 100 closed @ 110 WHEN booked THEN gross 10, fees 0.05 + 0.055, net 9.895."""
    ledger = Ledger(starting_equity=D(1000))
    ledger.fill("BUY", D(1), D(100), time=1)
    assert ledger.unrealised(D(105)) == D(5)
    assert ledger.equity(D(105)) == D(1000) - D("0.05") + D(5)
    ledger.fill("SELL", D(1), D(110), time=2, reason="take_profit")
    assert ledger.position == 0
    assert ledger.realised_pnl == D("9.895")
    (trade,) = ledger.trades
    assert (trade.side, trade.exit_price, trade.exit_reason) == ("long", D(110), "take_profit")
    assert trade.pnl == D("9.895")
    assert ledger.equity(D(1)) == D("1009.895")


def test_ledger_flip_closes_one_trade_and_opens_the_next() -> None:
    """GIVEN long 1 @ 100 WHEN selling 2 @ 90 THEN the long closes at -10 and a short of 1 opens at 90."""
    ledger = Ledger()
    ledger.fill("BUY", D(1), D(100), time=1)
    ledger.fill("SELL", D(2), D(90), time=2)
    assert ledger.position == D(-1) and ledger.entry_price == D(90)
    first, second = ledger.trades
    assert first.gross_pnl == D(-10) and first.fees == D("0.05") + D("0.045")
    assert (second.side, second.entry_price, second.quantity) == ("short", D(90), D(1))
    assert second.fees == D("0.045")
    assert ledger.unrealised(D(80)) == D(10)


def test_ledger_adding_averages_the_entry_and_partial_close_keeps_the_trade_open() -> None:
    """GIVEN buys 1 @ 100 and 1 @ 110 WHEN selling 1 @ 120 THEN entry 105, realised gross 15, still open."""
    ledger = Ledger()
    ledger.fill("BUY", D(1), D(100), time=1)
    ledger.fill("BUY", D(1), D(110), time=2)
    ledger.fill("SELL", D(1), D(120), time=3)
    assert ledger.entry_price == D(105) and ledger.position == D(1)
    assert ledger.gross_pnl == D(15)
    assert ledger.open_trade is not None and ledger.open_trade.exit_time is None


def test_ledger_replay_rebuilds_the_same_state_from_recorded_fills() -> None:
    """GIVEN a ledger's fills WHEN replayed THEN the same trades, fees and realised PnL."""
    ledger = Ledger()
    ledger.fill("SELL", D("0.5"), D(200), time=1)
    ledger.fill("BUY", D("0.5"), D(190), time=2, reason="take_profit")
    again = Ledger.replay(ledger.fills)
    assert again.trades == ledger.trades and again.realised_pnl == ledger.realised_pnl


def test_effective_signal_holds_the_side_held_and_the_side_stopped_out_of() -> None:
    """GIVEN a long held THEN LONG holds; GIVEN flat after a long stop THEN LONG holds until FLAT clears."""
    assert effective_signal(Signal.LONG, D(1), None) == (Signal.HOLD, None)
    assert effective_signal(Signal.SHORT, D(1), None) == (Signal.SHORT, None)
    assert effective_signal(Signal.LONG, D(0), Signal.LONG) == (Signal.HOLD, Signal.LONG)
    assert effective_signal(Signal.HOLD, D(0), Signal.LONG) == (Signal.HOLD, Signal.LONG)
    assert effective_signal(Signal.FLAT, D(0), Signal.LONG) == (Signal.FLAT, None)
    assert effective_signal(Signal.LONG, D(0), None) == (Signal.LONG, None)
