"""How bench/runner_kinds.py turns a phase's counts into per-tick figures."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.runner_kinds import KindFigures


def _live_phase() -> KindFigures:
    """Ten live ticks: eight orders (9 requests each) and two stale skips (4 each); 2 shared reads."""
    return KindFigures(
        kind="live", ticks=10, outcomes=Counter(ordered=8, skipped=2),
        dynamo={"turn": {"requests": 8 * 9 + 2 * 4, "wru": 8 * 17 + 2 * 4},
                "batch": {"requests": 1, "wru": 0}, "dispatcher": {"requests": 1, "wru": 0}},
        intended={"requests": 8 * 9, "wru": 8 * 17},
        operations={}, binance=Counter({"POST /fapi/v1/order": 8, "GET /fapi/v1/klines": 2}),
        cpu={"runner_all_in": 0.05}, invocations=1,
    )


def test_a_turn_counts_only_the_ticks_that_ended_as_the_kind_means() -> None:
    """A live order's requests are the orders' own (9), not diluted by stale skips (8.0 over all ten)."""
    figure = _live_phase()
    assert figure.per_tick("turn", "requests") == 9
    assert figure.per_tick("turn", "wru") == 17
    assert figure.purity == pytest.approx(0.8)


def test_shared_reads_are_spread_over_every_tick_of_the_phase() -> None:
    """The batch's and the dispatcher's requests add 2 / 10 ticks to each tick's own."""
    figure = _live_phase()
    assert figure.per_tick("batch", "requests") == pytest.approx(0.1)
    assert figure.per_tick(None, "requests") == pytest.approx(9.2)


def test_binance_calls_of_the_turns_leave_out_the_shared_klines() -> None:
    """Orders count as the turns' Binance calls (0.8 a tick); klines are the batch's."""
    figure = _live_phase()
    assert figure.turn_binance == pytest.approx(0.8)
    assert figure.cpu_ms("runner_all_in") == pytest.approx(5.0)
