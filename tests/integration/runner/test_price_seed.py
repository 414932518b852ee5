"""The runner tests' simulator never starts on a minute where the default strategy would hold."""

from __future__ import annotations

import pytest

from local.binance_sim.config import SimulatorConfig
from local.binance_sim.market import SYMBOLS, PriceSeries
from tests.integration.runner.conftest import TRADED_SYMBOLS, sma_2_3_ties, untied_price_seed

# 2026-11-30 16:35 UTC: the default seed's BTCUSDT closes of 16:33, 16:34 and 16:35 give SMA 2 = SMA 3.
TIED_BOUNDARY_S = 1796056500
# Ten minutes later: no traded symbol ties from one minute before to three after, under the default seed.
LATER_S = 600


def _ties(seed: int, boundary_s: int) -> list[str]:
    """The traded symbols whose SMA 2 equals SMA 3 on the candle closing at ``boundary_s``."""
    return [symbol for symbol in TRADED_SYMBOLS
            if sma_2_3_ties(PriceSeries(SYMBOLS[symbol], seed), boundary_s)]


@pytest.mark.usefixtures("extra_symbols")
def test_a_minute_wheresma_2_3_ties_gets_another_seed() -> None:
    """GIVEN a minute where the default seed makes SMA 2 equal SMA 3 on BTCUSDT (a hold, which once failed
    ten runner tests) WHEN the seed is chosen THEN another one, with a side on every symbol."""
    default_seed = SimulatorConfig().price_seed
    assert "BTCUSDT" in _ties(default_seed, TIED_BOUNDARY_S)
    seed = untied_price_seed(TIED_BOUNDARY_S + 5)
    assert seed != default_seed
    assert [_ties(seed, TIED_BOUNDARY_S + 60 * k) for k in range(-1, 4)] == [[]] * 5


@pytest.mark.usefixtures("extra_symbols")
def test_a_minute_without_a_tie_keeps_the_default_seed() -> None:
    """GIVEN the minute after, where no symbol ties under the default seed WHEN the seed is chosen THEN
    the default one, so the other tests see the usual prices."""
    default_seed = SimulatorConfig().price_seed
    later = TIED_BOUNDARY_S + LATER_S
    assert [_ties(default_seed, later + 60 * k) for k in range(-1, 4)] == [[]] * 5
    assert untied_price_seed(later + 5) == default_seed
