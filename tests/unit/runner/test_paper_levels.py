"""``PaperLevels.may_close``: the coarse filter of a long gap's scan (``klineo.runner.candles.first_closing``)
says "no level reached" only when no finer candle of its span closes the paper position."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from klineo.binance import Candle
from klineo.runner.paper import PaperLevels
from klineo.strategies.simulation import Ledger, liquidation_price

D = Decimal


def _minutes(rng: random.Random, start: Decimal, count: int) -> list[Candle]:
    """``count`` 1m candles of a random walk from ``start`` (each opening at the last one's close, or
    gapped away from it one time in ten)."""
    candles, price = [], start
    for i in range(count):
        open_ = price * D(1 + rng.uniform(-0.01, 0.01)) if rng.random() < 0.1 else price
        close = open_ * D(1 + rng.uniform(-0.006, 0.006))
        high = max(open_, close) * D(1 + rng.uniform(0, 0.004))
        low = min(open_, close) * D(1 - rng.uniform(0, 0.004))
        candles.append(Candle(i * 60_000, open_, high, low, close, D(1), i * 60_000 + 59_999))
        price = close
    return candles


def _hour(minutes: list[Candle]) -> Candle:
    """The coarse candle spanning ``minutes``: first open, highest high, lowest low, last close."""
    return Candle(minutes[0].open_time, minutes[0].open, max(c.high for c in minutes),
                  min(c.low for c in minutes), minutes[-1].close, D(len(minutes)), minutes[-1].close_time)


@pytest.mark.parametrize("position", [D(300), D(-300)], ids=["long", "short"])
@pytest.mark.parametrize("levels", ["both", "stop_loss", "take_profit", "none"])
def test_a_coarse_candle_no_level_reaches_holds_no_candle_that_closes(position: Decimal, levels: str) -> None:
    """Over random hours of 1m candles (gaps at the open, a stop within slippage of the liquidation price,
    which ``position_exit`` passes over), every hour holding a closing minute may close; some hours
    reach nothing (the filter is not trivial)."""
    rng = random.Random(f"{position}{levels}")
    ledger = Ledger(starting_equity=D(1000), position=position, entry_price=D(100))
    liquidation = liquidation_price(ledger)
    assert liquidation is not None
    sign = 1 if position > 0 else -1
    sl = liquidation * (1 + sign * D("0.0003")) if levels in ("both", "stop_loss") else None
    tp = D(100) * (1 + sign * D("0.04")) if levels in ("both", "take_profit") else None
    rule = PaperLevels(ledger, sl, tp)
    skipped = 0
    for _ in range(300):
        minutes = _minutes(rng, D(100) * D(1 + rng.uniform(-0.03, 0.03)), 60)
        hour = _hour(minutes)
        if any(rule.closes(c) for c in minutes):
            assert rule.may_close(hour), f"{hour} skipped although a minute of it closes the position"
        skipped += not rule.may_close(hour)
    assert 0 < skipped < 300
