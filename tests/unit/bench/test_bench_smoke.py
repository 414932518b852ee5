"""Smoke tests of bench/: every benchmark imports and its measuring core runs on tiny counts.

No figure is judged here (benchmarks judge figures, tests never time anything): these only make
sure a benchmark has not rotted when the code it measures changes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import __main__ as bench_main
from bench import aws_calls, backtest, cold_start, per_call, reliability, runner_kinds
from bench.report import Report, demo_keys
from bench.stack import count_aws_calls, local_stack
from bench.warm_turn import ColdTurns, WarmTurns

pytestmark = pytest.mark.slow


def test_cold_start_measures_layer_and_a_function_in_fresh_processes() -> None:
    """Cold start gives one import and one client-building figure per run for the layer and a function."""
    # GIVEN the Binance layer subject and one function subject
    subjects = [cold_start.layer_subject(), *cold_start.function_subjects(["kill_switch_get"])]
    # WHEN each is measured once (after its warm-up run)
    cold_start.measure(subjects, runs=1)
    # THEN each produced one figure and no error
    for subject in subjects:
        assert subject.available, subject.why_unavailable
        assert subject.error == ""
        assert len(subject.import_ms) == len(subject.build_ms) == 1


def test_cold_start_measures_the_code_as_make_build_ships_it() -> None:
    """The "as deployed" copy carries what make build adds (trimmed botocore data, bytecode) and runs."""
    import shutil

    from klineo.store import botocore_data

    # GIVEN the deployed copy of the layer and functions
    root = cold_start._deployed_copy()
    try:
        # THEN it holds botocore's trimmed data for this botocore and precompiled bytecode
        assert (botocore_data.data_path(root / "layer" / "klineo" / "store") / "endpoints.json").is_file()
        assert list((root / "layer" / "klineo" / "store").glob("__pycache__/aws.*.pyc"))
        # WHEN a function is measured from it
        subject = cold_start._as_deployed(cold_start.function_subjects(["kill_switch_get"])[0], root)
        cold_start.measure([subject], runs=1)
        # THEN it gives its figures without error
        assert subject.error == ""
        assert len(subject.import_ms) == 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_cold_start_reads_each_functions_aws_services_from_its_policies() -> None:
    """The clients a function builds come from the IAM actions template.yaml grants it."""
    # GIVEN the function subjects built from template.yaml
    subjects = {s.name: s for s in cold_start.function_subjects()}
    # WHEN / THEN the order function builds DynamoDB, Secrets Manager and a futures client; candles no secret
    assert "_aws.dynamodb()" in subjects["futures_order"].build_code
    assert "_aws.secretsmanager()" in subjects["futures_order"].build_code
    assert "_M.FUTURES" in subjects["futures_order"].build_code
    assert "secretsmanager" not in subjects["kill_switch_get"].build_code


def test_per_call_micro_benchmark_times_every_path() -> None:
    """The no-network micro-benchmark gives a per-call figure for the floor, our client and its error path."""
    # WHEN it runs on a tiny count
    result = per_call.micro(n=20, batches=1)
    # THEN every timed path has a positive figure, and every derived one (a difference of two timed
    # batches, which noise on a loaded machine can push below zero on 20 calls) a finite one
    for key in ("raw", "bare_signed", "ours", "ours_error", "raw_quiet"):
        assert result[key] > 0, key
    for key in ("ours_quiet", "ours_error_quiet", "added"):
        assert math.isfinite(result[key]), key


def test_per_call_added_cost_pairs_each_round_with_its_own_raw_batch() -> None:
    """A load spike that lifts one round's batches does not leak into the added cost (paired medians)."""
    # GIVEN three rounds: the second ran under load (both paths +50 us), the third's own batch was slow
    batches = {"raw": [40.0, 90.0, 41.0], "ours": [100.0, 150.0, 160.0]}
    # WHEN the added cost is taken
    added = per_call._added(batches, "ours")
    # THEN it is the median of the rounds' own differences (60), not median(ours) - median(raw) (109)
    assert added == 60.0


def test_per_call_throughput_runs_our_client_and_bare_requests_against_the_simulator(binance_sim) -> None:
    """Our client and the bare session both complete signed calls against the simulator."""
    # GIVEN the simulator with its weight limits raised, as the benchmark runs it
    binance_sim.configure(spot_weight_limit=per_call.HUGE_LIMIT, futures_weight_limit=per_call.HUGE_LIMIT)
    clients = {name: per_call.PEERS[name] for name in ("klineo BinanceClient", "bare requests.Session")}
    # WHEN each makes a few calls
    results = per_call.throughput(binance_sim.url, "futures", calls=3, rounds=1, warmup=1, clients=clients)
    # THEN each has a rate and no error
    for name, result in results.items():
        assert "error" not in result, (name, result)
        assert result["calls_per_s"] > 0


def test_per_call_starts_and_stops_the_simulator_process() -> None:
    """The benchmark's own simulator process answers on 127.0.0.1 and stops afterwards."""
    import requests

    # WHEN the simulator process is started
    with per_call.simulator_process() as url:
        # THEN it is on loopback and answers
        assert url.startswith("http://127.0.0.1:")
        assert requests.get(f"{url}/api/v3/time", timeout=5).status_code == 200


def test_aws_calls_counts_calls_of_warm_order_and_balance() -> None:
    """The AWS-call benchmark drives both handlers warm and lists their calls."""
    # GIVEN the in-process stack
    with local_stack() as stack:
        # WHEN the measurement runs without the idle wait
        results = aws_calls.measure(stack, idle_s=0)
    # THEN both warm invocations succeeded and their calls were counted
    assert 200 <= results["futures_order"]["warm"]["status"] < 300
    assert 200 <= results["balance"]["warm"]["status"] < 300
    assert results["futures_order"]["warm"]["calls"]
    warm_calls = results["futures_order"]["warm"]["calls"]
    split = aws_calls.classify_order_calls(warm_calls, results["tables"]["data"])
    assert set(split) == {"claims", "outcomes", "allowed", "extra"}
    assert len(split["claims"]) == 1 and split["extra"] == []


def test_count_aws_calls_sees_calls_of_any_client(aws) -> None:
    """count_aws_calls records a call made by a client created inside or outside the block."""
    import boto3

    # GIVEN a client made before counting starts
    client = boto3.client("dynamodb", region_name="ap-northeast-1")
    # WHEN it makes one call while counting
    with count_aws_calls() as calls:
        client.list_tables()
    # THEN that call is listed
    assert [(c.service, c.operation) for c in calls] == [("dynamodb", "ListTables")]


def test_reliability_chaos_run_reconciles_a_few_orders() -> None:
    """A tiny seeded chaos run answers every order and reconciles them with the exchange."""
    # GIVEN the in-process stack
    with local_stack() as stack:
        # WHEN three orders go through with seeded faults
        outcomes = reliability.chaos_run(stack, orders=3, seed=7, caller_budget_s=20)
        result = reliability.reconcile(stack, outcomes)
    # THEN each has a final outcome and the reconciliation reports its tallies
    assert len(outcomes) == 3
    assert all(o.final in {"accepted", "rejected", "unknown", "http500", "unclassified"} for o in outcomes)
    assert {"exchange_orders", "order_posts", "problems"} <= set(result)


def test_backtest_benchmark_counts_cold_and_warm_klines_requests(tmp_path: Path) -> None:
    """Two days of 1h candles: the cold request fetches one page, the warm one none, both answers equal."""
    # GIVEN / WHEN the benchmark runs on a tiny period
    assert backtest.main(["--days", "2", "--repeats", "1", "--latency-ms", "0",
                          "--json", str(tmp_path / "backtest.json")]) == 0
    # THEN its counted figures are the expected ones (its time targets are not judged here)
    document = json.loads((tmp_path / "backtest.json").read_text(encoding="utf-8"))
    for strategy_type in ("sma_crossover", "rsi_threshold"):
        figures = document["figures"][strategy_type]
        assert (figures["cold_requests"], figures["warm_requests"]) == (1, 0)
        assert figures["candles_per_s"] > 0


def test_report_writes_verdicts_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A report prints its verdicts, machine and command, and writes them as JSON when asked."""
    # GIVEN a report with one passed and one missed target
    report = Report("demo", "a demonstration", module="bench.demo", argv=["--n", "1"])
    report.target("fast", "≤ 1 ms", "0.5 ms", True)
    report.target("small", "≤ 1 call", "2 calls", False)
    report.figure("requests", {("spot", "BTCUSDT"): 1})
    # WHEN it finishes into a JSON file
    report.finish(str(tmp_path / "demo.json"))
    # THEN the JSON and the printed text carry the verdicts and the command
    document = json.loads((tmp_path / "demo.json").read_text(encoding="utf-8"))
    assert document["verdict"] == "MISS"
    assert [t["verdict"] for t in document["targets"]] == ["PASS", "MISS"]
    assert document["figures"]["requests"] == {"spot/BTCUSDT": 1}
    printed = capsys.readouterr().out
    assert "reproduce: PYTHONPATH=layers/klineo/python:. " in printed and "-m bench.demo --n 1" in printed
    assert "cores" in printed


def test_runner_records_a_dated_section_without_touching_earlier_ones(tmp_path: Path, monkeypatch) -> None:
    """`--record` appends a section to results.md and keeps what was there."""
    # GIVEN a results file with an earlier section
    results = tmp_path / "results.md"
    results.write_text("# Benchmark results\n\n## earlier\n", encoding="utf-8")
    monkeypatch.setattr(bench_main, "RESULTS_FILE", results)
    machine = bench_main.machine()
    # WHEN a run is recorded
    bench_main._record(
        [("bench.demo", "PASS", "fast: 0.5 ms")],
        [("bench.demo", "output")],
        machine,
        machine,
        "python -m bench",
        quick=True,
    )
    # THEN the earlier section is kept and the new one follows it
    text = results.read_text(encoding="utf-8")
    assert text.startswith("# Benchmark results\n\n## earlier\n")
    assert "| demo | PASS | fast: 0.5 ms |" in text and "load average" in text


def test_demo_keys_come_from_the_simulator_accounts_file() -> None:
    """The benchmarks' demo keys are the simulator's futures-full account."""
    # WHEN / THEN the key pair is read from local/demo-accounts.json
    api_key, secret = demo_keys("futures-full")
    assert len(api_key) == 64 and len(secret) == 64


def test_runner_kinds_counts_units_and_cpu_of_hold_and_live_ticks(capsys: pytest.CaptureFixture[str]) -> None:
    """Tiny hold and live phases: every request is priced and attributed, CPU split, each target reported."""
    # GIVEN / WHEN three strategies of each kind run one tick each
    figures = runner_kinds.measure_kinds(3, 2, 2, 0.0, kinds=("hold", "live"), latest_start_second=59)
    # THEN each tick's own requests were counted with units, and the batch's shared read apart
    for figure in figures.values():
        assert figure.ticks == 3
        assert figure.per_tick("turn", "requests") >= 1 and figure.per_tick("turn", "wru") >= 1
        assert figure.dynamo["batch"]["requests"] >= 1
        assert figure.cpu["runner_all_in"] >= figure.cpu["runner_in_turns"] > 0
    # AND a live order's Binance calls are timed as requests' client side, a hold has none
    assert figures["live"].cpu["requests_in_turns"] > 0 and figures["hold"].cpu["requests_in_turns"] == 0
    # AND the first live order's turn was replayed warm, with AWS and Binance stubbed (bench/warm_turn.py)
    warm = figures["live"].warm
    assert isinstance(warm, WarmTurns), warm
    assert warm.turns == 200 and 0 < warm.p10_ms <= warm.median_ms <= warm.p90_ms
    # AND replayed cold, the caches evicted around its calls: the same code costs more than warm
    cold = figures["live"].cold
    assert isinstance(cold, ColdTurns), cold
    assert cold.turns == 150 and 0 < cold.p10_ms <= cold.median_ms <= cold.p90_ms
    assert cold.median_ms > warm.median_ms
    # AND the report states each of issue 16's figures against its target
    report = Report("runner_tick", "smoke", module="bench.runner_tick", argv=[])
    runner_kinds.report_kinds(report, figures, order_every=20)
    names = {target.name for target in report.targets}
    assert {"hold: write units per tick",
            "DynamoDB $ per 1,000 strategy-months (every tick a hold, us-east-1)",
            "runner's own CPU per tick (turn without botocore and requests): hold",
            "fan-out: 10,000 strategies over 100 markets"} <= names
    printed = capsys.readouterr().out
    assert "per million WRU" in printed and "live turn replayed warm" in printed
    assert "live turn replayed cold" in printed


def test_remote_stack_serves_aws_and_binance_from_a_child_process() -> None:
    """The kinds bench's stack: tables on moto's server and the simulator's journal, both over loopback."""
    import os

    import boto3
    import requests

    from bench.stack import REGION, remote_stack

    # GIVEN the stack whose fakes run in a child process
    with remote_stack(symbols=("X01USDT",)) as stack:
        # WHEN this process lists the tables and asks the simulator for its time and symbols
        endpoint = os.environ["AWS_ENDPOINT_URL"]
        tables = boto3.client("dynamodb", region_name=REGION).list_tables()["TableNames"]
        requests.get(f"{stack.sim.url}/fapi/v1/time", timeout=10).raise_for_status()
        info = requests.get(f"{stack.sim.url}/fapi/v1/exchangeInfo", timeout=10).json()
        # THEN both answered over HTTP on 127.0.0.1, with the template's tables and the extra symbol
        assert endpoint.startswith("http://127.0.0.1:") and stack.sim.url.startswith("http://127.0.0.1:")
        assert any(name.endswith("-data") for name in tables)
        assert "X01USDT" in {entry["symbol"] for entry in info["symbols"]}
        # AND the journal is read and cleared through the simulator's control routes
        assert [record.path for record in stack.sim.journal] == ["/fapi/v1/time", "/fapi/v1/exchangeInfo"]
        stack.sim.clear_journal()
        assert stack.sim.journal == []
    # AND nothing of it is left in this process's environment
    assert os.environ.get("AWS_ENDPOINT_URL") != endpoint
