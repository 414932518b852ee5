"""The runner benchmark's core runs on tiny counts (no timing judged here)."""

from __future__ import annotations

from bench import runner_tick


def test_runner_benchmark_ticks_a_few_strategies_through_the_real_functions() -> None:
    """GIVEN 12 live strategies over 3 symbols WHEN the benchmark's tick runs THEN 3 klines requests and
    one order per strategy that trades, every message handled."""
    result = runner_tick.run_tick(
        strategies=12, symbols=3, users=3, latency_ms=0.0, workers=2, mode="live", latest_start_second=55,
    )
    assert result.failed_messages == 0 and result.strategies == 12
    assert result.binance_requests["GET /fapi/v1/klines"] == result.groups == 3
    assert result.binance_requests["POST /fapi/v1/order"] == result.runs["ordered"]
    assert sum(result.runs.values()) == 12
    # Every strategy starts flat: nothing of theirs to verify, so no position read is spent.
    assert (result.position_reads, result.binance_requests["GET /fapi/v3/positionRisk"]) == (0, 0)
