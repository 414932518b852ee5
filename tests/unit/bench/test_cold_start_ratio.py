"""The cold-start verdict's statistic (bench/cold_start.py): per-round ratios to ccxt and their median."""

from __future__ import annotations

import pytest

from bench.cold_start import (
    REFERENCE_PEER,
    RatioSummary,
    Subject,
    ccxt_ratios,
    per_round_ratios,
    round_order,
)


def _subject(name: str, kind: str = "function", mode: str = "as deployed") -> Subject:
    mode = mode if kind == "function" else ""
    return Subject(name=name, kind=kind, import_code="", build_code="", mode=mode)


def _measured(subject: Subject, figures: list[tuple[int, float]]) -> Subject:
    """Give ``subject`` one (round, import ms) figure each, with no client-building time."""
    for round_number, import_ms in figures:
        subject.rounds.append(round_number)
        subject.import_ms.append(import_ms)
        subject.build_ms.append(0.0)
    return subject


def test_each_round_is_divided_by_that_rounds_own_reference_median() -> None:
    """A function at 80 ms in a round whose ccxt samples are 90/100/110 has ratio 0.8 for that round."""
    ratios = per_round_ratios({1: [80.0], 2: [60.0]}, {1: [110.0, 90.0, 100.0], 2: [200.0, 100.0, 150.0]})
    assert ratios == pytest.approx([0.8, 0.4])


def test_a_round_without_a_reference_figure_gives_no_ratio() -> None:
    """A round in which ccxt was not measured (it failed, say) is left out, not divided by zero."""
    assert per_round_ratios({1: [80.0], 2: [70.0]}, {2: [100.0]}) == pytest.approx([0.7])


def test_a_slow_machine_round_moves_both_figures_and_leaves_the_ratio_alone() -> None:
    """Load that slows ccxt and the function alike in one round does not flip the verdict."""
    ccxt = _measured(_subject(REFERENCE_PEER, kind="peer"),
                     [(1, 900.0), (1, 920.0), (1, 880.0), (2, 1300.0), (2, 1250.0), (2, 1350.0)])
    function = _measured(_subject("strategy_list"), [(1, 630.0), (2, 1040.0)])
    summary = ccxt_ratios([ccxt, function])["as deployed"]["strategy_list"]
    assert summary.ratios == pytest.approx((0.7, 0.8))
    assert summary.ok


def test_the_verdict_reads_the_median_round_not_the_worst_one() -> None:
    """One noisy round over the target does not make a function OVER; the median of its rounds does."""
    summary = RatioSummary((0.72, 0.95, 0.74))
    assert summary.median == pytest.approx(0.74)
    assert summary.spread == pytest.approx((0.72, 0.95))
    assert summary.rounds_over == 1
    assert summary.ok
    assert not RatioSummary((0.82, 0.95, 0.74)).ok


def test_nothing_measured_is_never_a_pass() -> None:
    """A function with no ratio at all is not judged ok."""
    assert not RatioSummary(()).ok


def test_ratios_are_given_per_mode_and_only_for_functions() -> None:
    """Each mode has its own ratios; peers and the layer get none."""
    ccxt = _measured(_subject(REFERENCE_PEER, kind="peer"), [(1, 1000.0)])
    deployed = _measured(_subject("balance"), [(1, 700.0)])
    cached = _measured(_subject("balance", mode="with pyc"), [(1, 600.0)])
    layer = _measured(_subject("klineo.binance", kind="layer"), [(1, 100.0)])
    ratios = ccxt_ratios([ccxt, deployed, cached, layer])
    medians = {(mode, name): r.median for mode, by in ratios.items() for name, r in by.items()}
    assert medians == pytest.approx({("as deployed", "balance"): 0.7, ("with pyc", "balance"): 0.6})


def test_no_reference_measured_gives_no_ratio() -> None:
    """Without a ccxt figure there is nothing to divide by: no ratios rather than made-up ones."""
    assert ccxt_ratios([_measured(_subject("balance"), [(1, 700.0)])]) == {}


def test_a_round_runs_every_subject_once_and_the_reference_spread_through_it() -> None:
    """Nine subjects and ccxt three times: ccxt opens each third of the round."""
    others = [_subject(f"f{i}") for i in range(9)]
    ccxt = _subject(REFERENCE_PEER, kind="peer")
    order = round_order([*others, ccxt], round_number=0, reference_samples=3)
    assert [s.name for s in order] == [REFERENCE_PEER, "f0", "f1", "f2", REFERENCE_PEER, "f3", "f4", "f5",
                                       REFERENCE_PEER, "f6", "f7", "f8"]


def test_rounds_rotate_so_no_subject_always_runs_in_the_same_place() -> None:
    """Round 1 starts the others one place further on; each still runs exactly once."""
    others = [_subject(f"f{i}") for i in range(4)]
    order = round_order([_subject(REFERENCE_PEER, kind="peer"), *others], round_number=1, reference_samples=2)
    assert [s.name for s in order] == [REFERENCE_PEER, "f1", "f2", REFERENCE_PEER, "f3", "f0"]


def test_without_the_reference_a_round_is_every_subject_once() -> None:
    """No ccxt among the subjects (--no-peers): each subject once, nothing added."""
    others = [_subject(f"f{i}") for i in range(3)]
    assert [s.name for s in round_order(others, round_number=0)] == ["f0", "f1", "f2"]
