"""What every benchmark prints (machine, figures against targets, how to reproduce) and the bits they share.

A benchmark builds one ``Report``, adds figures and target verdicts, and calls ``finish()``: that
prints the machine (cores, CPU model, Python, load average) and the exact command, and, when the
benchmark was given ``--json PATH``, writes the same facts as JSON for ``python -m bench`` to
summarise and record in bench/results.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "BENCH_DIR",
    "LAYER_PATH",
    "REPO_ROOT",
    "Machine",
    "Report",
    "Target",
    "bench_environment",
    "demo_keys",
    "machine",
    "median",
    "percentile",
    "reproduce_command",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
LAYER_PATH = REPO_ROOT / "layers" / "klineo" / "python"

PASS, MISS, SKIP = "PASS", "MISS", "SKIP"


@dataclasses.dataclass(frozen=True)
class Machine:
    """Where a figure was measured."""

    cores: int
    cpu_model: str
    python: str
    platform: str
    load_average: tuple[float, float, float]
    when: str

    def describe(self) -> str:
        """One line for a report."""
        load = " ".join(f"{value:.2f}" for value in self.load_average)
        return (
            f"{self.cores} cores, {self.cpu_model}, Python {self.python}, {self.platform}, "
            f"load average {load}, {self.when}"
        )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> Machine:
    """The machine this process runs on, with the load average right now."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)
    implementation = platform.python_implementation()
    return Machine(
        cores=cores,
        cpu_model=_cpu_model(),
        python=f"{platform.python_version()} ({implementation})",
        platform=f"{platform.system()} {platform.release()} {platform.machine()}",
        load_average=tuple(round(value, 2) for value in os.getloadavg()),
        when=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )


def demo_keys(account_id: str = "futures-full") -> tuple[str, str]:
    """(api_key, secret) of a simulator demo account in local/demo-accounts.json: fake, 127.0.0.1 only."""
    document = json.loads((REPO_ROOT / "local" / "demo-accounts.json").read_text(encoding="utf-8"))
    for account in document["accounts"]:
        if account["id"] == account_id:
            return account["api_key"], account["secret"]
    raise KeyError(f"no demo account {account_id!r}")


def median(values: Sequence[float]) -> float:
    """The median (0.0 for no values)."""
    return statistics.median(values) if values else 0.0


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile, e.g. fraction=0.95 (0.0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def bench_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ with PYTHONPATH = the layer's python/ folder and the repo root (what pytest uses)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(LAYER_PATH), str(REPO_ROOT)])
    env.update(extra or {})
    return env


def reproduce_command(module: str, argv: Iterable[str]) -> str:
    """The shell command, run from the repo root, that repeats this benchmark exactly."""
    python = Path(sys.executable)
    try:
        shown = str(python.relative_to(REPO_ROOT)) if python.is_relative_to(REPO_ROOT) else str(python)
    except ValueError:
        shown = str(python)
    args = " ".join(shlex.quote(arg) for arg in argv)
    return f"PYTHONPATH=layers/klineo/python:. {shown} -m {module}{' ' + args if args else ''}"


def _jsonable(value: Any) -> Any:
    """The value with every mapping key made a string (tuples joined with "/"), for json.dumps."""
    if isinstance(value, dict):
        return {
            (
                "/".join(map(str, k)) if isinstance(k, tuple) else k if isinstance(k, str) else str(k)
            ): _jsonable(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


@dataclasses.dataclass
class Target:
    """One target and how this run did against it."""

    name: str
    target: str
    measured: str
    verdict: str
    detail: str = ""


class Report:
    """The printed (and optionally JSON) result of one benchmark module."""

    def __init__(self, name: str, measures: str, *, module: str, argv: Iterable[str]):
        self.name = name
        self.measures = measures
        self.command = reproduce_command(module, argv)
        self.machine = machine()
        self.targets: list[Target] = []
        self.figures: dict[str, Any] = {}
        self.notes: list[str] = []
        print(f"== {name}: {measures}", flush=True)
        print(f"   machine: {self.machine.describe()}", flush=True)

    def line(self, text: str = "") -> None:
        """Print one line of the benchmark's own output."""
        print(text, flush=True)

    def table(self, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Print rows as an aligned text table."""
        rows = [[str(cell) for cell in row] for row in rows]
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
        self.line("   " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for row in rows:
            self.line("   " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))

    def note(self, text: str) -> None:
        """A remark printed now and kept with the results."""
        self.notes.append(text)
        self.line(f"   note: {text}")

    def figure(self, key: str, value: Any) -> None:
        """A raw figure kept in the JSON results (not printed)."""
        self.figures[key] = value

    def target(self, name: str, target: str, measured: str, passed: bool | None, detail: str = "") -> Target:
        """Record a verdict: passed=True PASS, False MISS, None SKIP (could not be measured)."""
        verdict = SKIP if passed is None else (PASS if passed else MISS)
        result = Target(name, target, measured, verdict, detail)
        self.targets.append(result)
        return result

    @property
    def verdict(self) -> str:
        """MISS if any target missed, else SKIP if any was skipped, else PASS."""
        verdicts = {t.verdict for t in self.targets}
        if MISS in verdicts:
            return MISS
        if SKIP in verdicts or not verdicts:
            return SKIP
        return PASS

    def finish(self, json_path: str | None = None) -> int:
        """Print the verdicts, machine and command; write JSON if asked. Returns 0."""
        self.line(f"-- {self.name} targets")
        for t in self.targets:
            detail = f"  ({t.detail})" if t.detail else ""
            self.line(f"   {t.verdict:4}  {t.name}: {t.measured}  [target {t.target}]{detail}")
        now = machine()
        self.line(
            f"   machine: {now.describe()} (load average at start: "
            f"{' '.join(f'{v:.2f}' for v in self.machine.load_average)})"
        )
        self.line(f"   reproduce: {self.command}")
        if json_path:
            document = {
                "name": self.name,
                "measures": self.measures,
                "verdict": self.verdict,
                "targets": [dataclasses.asdict(t) for t in self.targets],
                "figures": self.figures,
                "notes": self.notes,
                "machine": dataclasses.asdict(self.machine),
                "load_average_at_end": now.load_average,
                "command": self.command,
            }
            Path(json_path).write_text(
                json.dumps(_jsonable(document), indent=2, default=str), encoding="utf-8"
            )
        return 0
