"""The runner's pure pieces of issue 13: direction and re-entry, sizing, closes seen at the exchange,
paper SL/TP exits and the PnL books (no AWS, no Binance)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from klineo.runner.paper import ledger_of, paper_exit, protective_record
from klineo.runner.pnl import (
    Fills,
    book_exact,
    estimated_fills,
    fills_of,
    live_book_after,
    moved_entry,
    strategy_pnl,
)
from klineo.runner.positions import position_left
from klineo.runner.trading import acted_signal, entry_size
from klineo.store.strategies import Strategy, TradingSettings, from_item
from klineo.strategies import Bar, Signal
from klineo.strategies.simulation import slipped

D = Decimal


class Rules:
    """Just the rounding sizing needs: a 0.001 step."""

    def round_quantity(self, quantity: Decimal, market_order: bool = False) -> Decimal:
        """Down to the step."""
        return quantity.quantize(D("0.001"), rounding="ROUND_DOWN")


def strategy(**changes) -> Strategy:
    """A paper strategy on BTCUSDT, size 0.002, with ``changes`` (settings=TradingSettings(...))."""
    fields = {"user_id": "u", "strategy_id": "s" * 32, "connection_id": "c" * 32, "environment": "production",
              "symbol": "BTCUSDT", "interval": "1m", "type": "sma_crossover", "parameters": {},
              "size": D("0.002"), "mode": "paper", "status": "active", "created_at": "", "updated_at": ""}
    return Strategy(**{**fields, **changes})


@pytest.mark.parametrize(("signal", "direction", "position", "block", "acted", "after"), [
    (Signal.SHORT, "long", D(1), None, Signal.FLAT, None),
    (Signal.LONG, "short", D(0), None, Signal.FLAT, None),
    (Signal.SHORT, "both", D(0), None, Signal.SHORT, None),
    (Signal.LONG, "both", D(1), None, Signal.HOLD, None),  # already long: kept as sized
    (Signal.LONG, "both", D(0), "long", Signal.HOLD, "long"),  # the lost side stays blocked
    (Signal.HOLD, "both", D(0), "long", Signal.HOLD, "long"),
    (Signal.SHORT, "both", D(0), "long", Signal.SHORT, None),  # a new signal clears the block
])
def test_direction_and_the_reentry_block_shape_the_signal(
    signal, direction, position, block, acted, after,
) -> None:
    """A long-only strategy goes flat on a short; a lost long is not re-opened by the same long signal."""
    assert acted_signal(signal, direction, position, block) == (acted, after)


def test_quote_sizing_enters_once_and_keeps_the_position() -> None:
    """quote 300 at 60000 is 0.005 rounded down; the same side again keeps the position (None)."""
    quoted = strategy(size=None, settings=TradingSettings(quote_size_usdt=D(300)))
    assert entry_size(quoted, Signal.LONG, D(0), D(60_000), Rules(), lambda: D(0)) == D("0.005")
    assert entry_size(quoted, Signal.LONG, D("0.005"), D(50_000), Rules(), lambda: D(0)) is None
    assert entry_size(quoted, Signal.SHORT, D("0.005"), D(60_000), Rules(), lambda: D(0)) == D("0.005")


def test_percent_sizing_uses_the_balance_times_leverage() -> None:
    """10 % of 1,000 USDT x 3 at 60,000 = 0.005; the balance is read only for percent sizing."""
    pct = strategy(size=None, settings=TradingSettings(size_pct=D(10), leverage=3))
    assert entry_size(pct, Signal.SHORT, D(0), D(60_000), Rules(), lambda: D(1000)) == D("0.005")
    fixed = strategy()
    assert entry_size(fixed, Signal.LONG, D(0), D(60_000), Rules(), lambda: pytest.fail("read")) == D("0.002")


@pytest.mark.parametrize(("belief", "exchange", "left"), [
    (D("0.002"), D(0), D(0)),  # closed
    (D("0.002"), D("-0.001"), D(0)),  # closed and someone opened the other side
    (D("0.002"), D("0.001"), D("0.001")),  # closed in part
    (D("0.002"), D("0.005"), None),  # more than ours (other strategies or manual): ours stands
    (D(0), D("0.005"), None),  # nothing of ours to lose
    (D("-0.002"), D("-0.002"), None),
])
def test_position_left_after_what_the_exchange_holds(belief, exchange, left) -> None:
    """The belief is cut to what the exchange still holds on its side; otherwise it stands."""
    assert position_left(belief, exchange) == left


def test_paper_stop_loss_exit_on_a_later_candle_closes_with_fee_and_slippage() -> None:
    """A long paper position with SL 1 % at entry 100: a candle down to 98 fills the stop at 99 - slippage."""
    record = protective_record(strategy(settings=TradingSettings(stop_loss_pct=D(1))), "BUY", D(100), "paper")
    held = strategy(paper_position=D(2), protective=record,
                    paper_book={"entry_price": D(100), "gross_pnl": D(0), "fees": D("0.1")})
    hit = paper_exit(held, [Bar(close=D(98), close_time=1, open=D(100), high=D(100), low=D(98))], 1)
    assert hit is not None and hit.reason == "stop_loss" and hit.price == slipped("SELL", D(99))
    assert hit.ledger.position == 0
    expected = (hit.price - D(100)) * 2 - D("0.1") - hit.price * 2 * D("0.0005")
    assert hit.ledger.realised_pnl == expected
    calm = Bar(close=D(100), close_time=1, open=D(100), high=D(101), low=D("99.5"))
    assert paper_exit(held, [calm], 1) is None


def test_live_position_protective_levels_are_not_simulated() -> None:
    """A live protective record is Binance's business: paper_exit ignores it."""
    record = protective_record(strategy(settings=TradingSettings(stop_loss_pct=D(1))), "BUY", D(100), "live")
    held = strategy(mode="live", live_position=D(1), paper_position=D(1), protective=record)
    assert paper_exit(held, [Bar(close=D(50), close_time=1, open=D(50), high=D(50), low=D(50))], 1) is None


@pytest.mark.parametrize(("position", "entry", "fill", "price", "after"), [
    (D(0), D(0), D(1), D(100), D(100)),
    (D(1), D(100), D(1), D(110), D(105)),
    (D(2), D(100), D(-1), D(120), D(100)),
    (D(1), D(100), D(-1), D(120), D(0)),
    (D(1), D(100), D(-3), D(90), D(90)),
])
def test_moved_entry(position, entry, fill, price, after) -> None:
    """Averaged when adding, kept when reducing, reset when flat, the fill price when flipped."""
    assert moved_entry(position, entry, fill, price) == after


def test_paper_pnl_realised_net_of_fees_and_open_at_the_mark() -> None:
    """Paper: realised is the ledger's (fees paid), unrealised (mark - entry) x position."""
    held = strategy(paper_position=D(2), paper_book={"entry_price": D(100), "gross_pnl": D(5), "fees": D(1)})
    pnl = strategy_pnl(held, D(103))
    assert (pnl["realised_pnl"], pnl["fees"], pnl["unrealised_pnl"]) == (D(4), D(1), D(6))
    assert ledger_of(held).equity(D(103)) == D(10_000) + D(4) + D(6)


def test_a_stored_strategy_without_the_new_fields_reads_with_the_old_behaviour() -> None:
    """Migration: an item written before issue 13 reads as direction both, its size, 10,000 paper USDT."""
    item = {name: {"S": value} for name, value in {
        "user_id": "u", "strategy_id": "s", "connection_id": "c", "environment": "production",
        "symbol": "BTCUSDT", "interval": "1m", "type": "sma_crossover", "mode": "live", "status": "active",
        "created_at": "", "updated_at": ""}.items()} | {"size": {"N": "0.002"}}
    old = from_item(item)
    assert old.settings == TradingSettings() and old.size == D("0.002")
    settings = old.settings
    assert (settings.direction, settings.paper_balance_usdt, old.reentry_block) == ("both", D(10_000), None)


def test_an_estimated_fill_booked_then_replaced_by_binances_leaves_the_book_binances_alone() -> None:
    """GIVEN a long closed at a profit, its close's fill estimated (taker fee, PnL from our entry) WHEN
    Binance's fills (one paid in BNB) are booked in the estimate's place THEN the book equals the one the
    exact fills would have made: realised and fees from Binance, BNB counted apart, nothing estimated."""
    long = strategy(mode="live", live_position=D("0.002"),
                    live_book={"entry_price": D(100), "realised_pnl": D("-0.0001"), "fees": D("0.0001"),
                               "fees_other_assets": 0, "estimated_fills": 0})
    estimate = estimated_fills(long, D("-0.002"), D(110), D("0.002"))
    estimated = live_book_after(long, estimate, D("-0.002"), D(110), D("0.002"))
    exact = fills_of([("0.012", "0.00008", "USDT"), ("0.008", "0.0000001", "BNB")])

    booked = book_exact(estimated, estimate.recorded(), exact)

    assert (estimate.realised, estimate.fees, estimated["estimated_fills"]) == (D("0.020"), D("0.00011"), 1)
    assert booked == live_book_after(long, exact, D("-0.002"), D(110), D("0.002"))
    assert (booked["realised_pnl"], booked["fees"], booked["fees_other_assets"]) == (
        D("0.01982"), D("0.00018"), 1)
    assert exact == Fills(D("0.020"), D("0.00008"), 1)
