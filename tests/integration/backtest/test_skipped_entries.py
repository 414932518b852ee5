"""A backtest's ``skipped_entries`` counts entries, not candles: a signal that keeps asking for the same side
while its entry is refused is one skipped entry, counted by the reason of its first refusal.

``simulate`` and ``summarise`` over hand-made 1m candles (SMA 1/2 both ways: LONG on a rising close, SHORT
on a falling one, HOLD on an unchanged one), the simulator's BTCUSDT rules (step 0.001, minimum order value
100 USDT); 100 USDT of equity cannot back 2 contracts at about 100 (margin about 200).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from klineo.binance import Market, get_client, get_symbol_rules
from klineo.services.backtest import BacktestSpec, simulate, summarise

from tests.integration.api.conftest import sim_env as sim_env  # fixture
from tests.integration.runner.test_strategy_money import INTERVAL, START, SYMBOL, _candles

D = Decimal
WARM_UP = [("100", "100", "100", "100")] * 3


def _rows(*closes: str) -> list[tuple[str, str, str, str]]:
    """Warm-up at 100, then one candle per close (open = high = low = close: no stop is reached)."""
    return [*WARM_UP, *((close,) * 4 for close in closes)]


def _result(closes: tuple[str, ...], **changes: Any) -> dict[str, Any]:
    """The backtest result of size 2 on 100 USDT over the candles of ``closes``."""
    candles = _candles(_rows(*closes))
    spec = BacktestSpec.from_json({
        "environment": "production", "symbol": SYMBOL, "interval": INTERVAL, "type": "sma_crossover",
        "parameters": {"fast": 1, "slow": 2, "allow_short": True}, "size": "2", "paper_balance_usdt": "100",
        "start_ms": START, "end_ms": candles[-1].close_time + 1, **changes})
    rules = get_symbol_rules(get_client(Market.FUTURES, "production"), SYMBOL)
    return summarise(spec, simulate(spec, candles, rules))


def test_a_long_signal_refused_on_six_candles_is_one_skipped_entry(sim_env) -> None:
    """GIVEN a signal that stays long for six candles whose margin never fits WHEN backtested THEN one skipped
    entry (insufficient_margin), not six."""
    result = _result(("101", "102", "103", "104", "105", "106"))

    assert result["number_of_trades"] == 0
    assert (result["skipped_entries"], result["skipped_reasons"]) == (1, {"insufficient_margin": 1})


def test_each_new_signal_run_is_a_skipped_entry_and_a_hold_does_not_end_one(sim_env) -> None:
    """GIVEN long, hold, long (one run), short twice (a second), long again (a third) WHEN none fits THEN
    three skipped entries; their reasons add up to them."""
    result = _result(("101", "101", "102", "101", "100", "101"))

    assert (result["skipped_entries"], result["skipped_reasons"]) == (3, {"insufficient_margin": 3})


def test_a_flat_signal_ends_the_run_of_a_refused_entry(sim_env) -> None:
    """GIVEN direction long (a short signal is flat) WHEN long is refused, flat, then long is refused again
    THEN two skipped entries."""
    result = _result(("101", "102", "101", "102", "103"), direction="long")

    assert (result["skipped_entries"], result["skipped_reasons"]) == (2, {"insufficient_margin": 2})
