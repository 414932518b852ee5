"""`python -m bench`: run every benchmark, each in its own process, then print one summary of the targets.

Each benchmark module also runs alone (`python -m bench.cold_start` etc.). Here every one gets
PYTHONPATH = the layer's python/ folder and the repo root, and writes its verdicts as JSON that
this runner summarises. `--record` appends the summary and every benchmark's full output, with
the machine and load average, as a dated section of bench/results.md. `bench/runner_tick.py`
(the runner's benchmark, another engineer's) is run too when it exists.

Exit status: 0 when every benchmark ran (whatever its verdicts), 1 when one crashed; with
`--strict`, also 1 when a target was missed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import BENCH_DIR, REPO_ROOT, bench_environment, machine

# Cold start is measured "as deployed" only (how Lambda runs it; "with pyc" stays on its own command
# line): half the subjects of both modes, so about twice the rounds in the same time, for a verdict
# the machine's noise cannot flip (bench/cold_start.py: per-round ratios to ccxt).
COLD_START_MODE = ["--mode", "as deployed"]

# (module, arguments for a full run, arguments for --quick)
BENCHMARKS: list[tuple[str, list[str], list[str]]] = [
    ("bench.cold_start", [*COLD_START_MODE, "--runs", "9"], [*COLD_START_MODE, "--runs", "2"]),
    ("bench.per_call", [], ["--n", "1000", "--batches", "3", "--calls", "100", "--rounds", "3"]),
    ("bench.aws_calls", [], ["--idle-s", "0"]),
    ("bench.reliability", [], ["--orders", "40"]),
    ("bench.runner_tick", [], ["--strategies", "100", "--symbols", "5", "--users", "10", "--per-kind", "20"]),
    ("bench.backtest", [], ["--days", "30", "--repeats", "1"]),
]
RESULTS_FILE = BENCH_DIR / "results.md"


def _run_one(module: str, args: list[str], json_path: Path, timeout_s: float) -> tuple[int, str, float]:
    """Run one benchmark module; echo its output live; return (exit code, output, seconds)."""
    started = time.monotonic()
    command = [sys.executable, "-m", module, *args]
    source = (REPO_ROOT / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8")
    if '"--json"' in source:  # every benchmark of this folder takes it; runner_tick may or may not
        command += ["--json", str(json_path)]
    process = subprocess.Popen(  # noqa: S603 - this interpreter, our own modules
        command,
        cwd=REPO_ROOT,
        env=bench_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    try:
        code = process.wait(timeout=max(1.0, timeout_s - (time.monotonic() - started)))
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    return code, "".join(lines), time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, print the summary, optionally record it."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", action="append", help="run only this benchmark, e.g. cold_start (repeatable)"
    )
    parser.add_argument("--quick", action="store_true", help="small counts: a fast check, not for the record")
    parser.add_argument("--record", action="store_true", help="append the results to bench/results.md")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="per benchmark")
    args = parser.parse_args(argv)

    wanted = {name if name.startswith("bench.") else f"bench.{name}" for name in args.only or []}
    summary: list[tuple[str, str, str]] = []
    outputs: list[tuple[str, str]] = []
    crashed = missed = False
    before = machine()
    with tempfile.TemporaryDirectory(prefix="klineo-bench-") as folder:
        for module, full, quick in BENCHMARKS:
            if wanted and module not in wanted:
                continue
            if not (REPO_ROOT / (module.replace(".", "/") + ".py")).is_file():
                summary.append((module, "SKIP", "module not written yet"))
                continue
            json_path = Path(folder) / f"{module}.json"
            code, output, seconds = _run_one(module, quick if args.quick else full, json_path, args.timeout_s)
            outputs.append((module, output))
            if code != 0:
                crashed = True
                summary.append((module, "ERROR", f"exit {code} after {seconds:.0f} s"))
                continue
            if json_path.is_file():
                document = json.loads(json_path.read_text(encoding="utf-8"))
                for target in document["targets"]:
                    missed |= target["verdict"] == "MISS"
                    summary.append((module, target["verdict"], f"{target['name']}: {target['measured']}"))
            else:
                summary.append((module, "DONE", f"{seconds:.0f} s (prints its own verdicts)"))
    after = machine()

    print("\n== summary")
    for module, verdict, text in summary:
        print(f"   {verdict:5} {module.removeprefix('bench.'):12} {text}")
    print(f"   machine: {after.describe()}")
    print(f"   load average at start: {' '.join(f'{v:.2f}' for v in before.load_average)}")
    shown_args = list(argv if argv is not None else sys.argv[1:])
    command = "PYTHONPATH=layers/klineo/python:. " + " ".join([_shown_python(), "-m", "bench", *shown_args])
    print(f"   reproduce: {command}")
    if args.record:
        _record(summary, outputs, before, after, command, quick=args.quick)
        print(f"   recorded in {RESULTS_FILE.relative_to(REPO_ROOT)}")
    if crashed:
        return 1
    return 1 if (args.strict and missed) else 0


def _shown_python() -> str:
    python = Path(sys.executable)
    return str(python.relative_to(REPO_ROOT)) if python.is_relative_to(REPO_ROOT) else str(python)


def _record(summary, outputs, before, after, command: str, *, quick: bool) -> None:
    """Append a dated section to bench/results.md (never rewrites what is there)."""
    caveat = " — quick counts, not for comparison" if quick else ""
    lines = [
        "",
        f"## {after.when} — benchmarks (`python -m bench`){caveat}",
        "",
        f"- machine: {after.cores} cores, {after.cpu_model}, Python {after.python}, {after.platform}",
        f"- load average: {' '.join(f'{v:.2f}' for v in before.load_average)} at start, "
        f"{' '.join(f'{v:.2f}' for v in after.load_average)} at end",
        f"- command: `{command}`",
        "",
        "| benchmark | verdict | figure |",
        "|---|---|---|",
    ]
    lines += [f"| {m.removeprefix('bench.')} | {v} | {t.replace('|', '/')} |" for m, v, t in summary]
    for module, output in outputs:
        lines += [
            "",
            f"<details><summary>{module} output</summary>",
            "",
            "```",
            output.rstrip(),
            "```",
            "",
            "</details>",
        ]
    if not RESULTS_FILE.exists():
        RESULTS_FILE.write_text(
            "# Benchmark results\n\nDated sections, newest last; each names its machine.\n", encoding="utf-8"
        )
    with RESULTS_FILE.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
