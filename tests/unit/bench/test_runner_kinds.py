"""How bench/runner_kinds.py turns a phase's counts into per-tick figures."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.report import Report
from bench.runner_kinds import KindFigures, cpu_figures, median_phase, report_kinds


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


def _ledger_seconds() -> dict[str, float]:
    """A live phase's ledger: 1 s in turns; AWS calls 0.5 s (moto 0.2, GC 0.05); HTTP 0.3 s (moto 0.1)."""
    return {
        "turns": 1.0, "stub:turn": 0.2, "passthrough:turn": 0.1, "gc:turn": 0.07,
        "aws_call:turn": 0.5, "gc_call:turn": 0.05,
        "http_call:turn": 0.3, "passthrough_http:turn": 0.1, "gc_http:turn": 0.02,
        "worker_process": 2.0, "simulator": 0.4, "dispatcher_process": 0.1,
    }


def test_requests_share_is_the_http_calls_without_moto_and_full_collections() -> None:
    """requests' client side is Session.send's CPU less moto's passthrough and GC passes inside it."""
    cpu = cpu_figures(_ledger_seconds(), {"turn": 0.03}, 0.03)
    assert cpu["requests_in_turns"] == pytest.approx(0.3 - 0.1 - 0.02)
    assert cpu["botocore_in_turns"] == pytest.approx(0.5 - 0.2 - 0.05 - 0.03)
    assert cpu["runner_in_turns"] == pytest.approx(1.0 - 0.2 - 0.1 - 0.07 - 0.03)


def test_the_runners_own_cpu_leaves_out_both_client_libraries() -> None:
    """Own CPU per tick = in turns - botocore - requests (ten ticks: 60 - 22 - 18 = 20 ms)."""
    figure = _live_phase()
    figure.cpu = cpu_figures(_ledger_seconds(), {"turn": 0.03}, 0.03)
    in_turns, botocore, requests = 60.0, 22.0, 18.0  # ms per tick over ten ticks
    assert figure.cpu_ms("runner_in_turns") == pytest.approx(in_turns)
    assert figure.own_cpu_ms == pytest.approx(in_turns - botocore - requests)


def test_a_phase_without_http_calls_counts_no_requests_share() -> None:
    """A hold phase (no Binance call in its turns) has a zero requests share, never a negative one."""
    seconds = {k: v for k, v in _ledger_seconds().items() if "http" not in k}
    cpu = cpu_figures(seconds, {}, 0.0)
    assert cpu["requests_in_turns"] == 0.0


def _phase_with_own_cpu(own_ms: float, kind: str = "live") -> KindFigures:
    """A ten-tick phase whose own CPU is ``own_ms`` per tick (nothing in botocore or requests)."""
    figure = _live_phase()
    figure.kind = kind
    seconds = own_ms * 10 / 1000
    figure.cpu = cpu_figures({"turns": seconds, "worker_process": seconds}, {}, 0.0)
    return figure


def test_the_median_phase_is_kept_whole_with_every_rounds_own_cpu() -> None:
    """Of three rounds (1.4, 0.9, 1.1 ms), the 1.1 ms phase is reported, and all three beside it."""
    phases = [_phase_with_own_cpu(1.4), _phase_with_own_cpu(0.9), _phase_with_own_cpu(1.1)]
    phases[2].outcomes = Counter(ordered=10)  # the median phase's own counts come along with it
    chosen = median_phase(phases)
    assert chosen.own_cpu_ms == pytest.approx(1.1)
    assert chosen.outcomes == Counter(ordered=10)
    assert chosen.own_rounds == pytest.approx((1.4, 0.9, 1.1))


def test_an_even_number_of_rounds_reports_the_lower_middle_phase() -> None:
    """Of two rounds the faster is reported; one round is reported as it is, with no spread to show."""
    assert median_phase([_phase_with_own_cpu(1.2), _phase_with_own_cpu(0.8)]).own_cpu_ms == pytest.approx(0.8)
    single = median_phase([_phase_with_own_cpu(1.2)])
    assert single.own_cpu_ms == pytest.approx(1.2) and single.own_rounds == pytest.approx((1.2,))
    with pytest.raises(ValueError):
        median_phase([])


def test_the_own_cpu_verdict_names_every_round_when_there_were_several() -> None:
    """The verdict line of a kind run three times says it is the median phase and lists the rounds."""
    figures = {kind: median_phase([_phase_with_own_cpu(own, kind) for own in (0.5, 0.7, 0.6)])
               for kind in ("hold", "paper", "live", "skipped")}
    report = Report("runner_tick", "unit", module="bench.runner_tick", argv=[])
    report_kinds(report, figures, order_every=20)
    live = next(t for t in report.targets if t.name.endswith("own CPU per tick (turn without botocore and "
                                                             "requests): live"))
    assert live.measured == "0.60 ms" and live.verdict == "PASS"
    assert "median phase of 3 rounds (0.50 / 0.70 / 0.60 ms)" in live.detail
