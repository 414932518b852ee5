"""The sam-local stacks for these tests (with the data the events refer to) and the run's summary.

Each ``sam local invoke`` takes seconds (a container start, and SAM rebuilds the image holding a
template-defined layer on every invoke), so the functions run in waves of SLOTS at a time, each
slot with its own docker network and emulator container. The in-process path runs on the first slot.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local.lambda_runtime import LambdaRuntime
from local.sam_local.demo_data import aimed_at
from local.sam_local.stack import SamLocal, SamLocalOptions
from local.template import FunctionSpec, function_specs
from tests.helpers import EVENTS_DIR

SLOTS = 3
# Answers are what these tests check, not timeouts: other engineers' and CI's work share 2 cores, and
# a cold start there can take longer than the template's 20 s.
FUNCTION_TIMEOUT_S = 180

_SUMMARY: list[str] = []
_ENVIRONMENT_LOCK = threading.Lock()


@dataclass
class ContainerRun:
    """What one ``sam local invoke`` gave: the answer (or the error) and SAM's log output."""

    answer: Any = None
    logs: str = ""
    error: str = ""
    seconds: float = 0.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _docker_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0  # noqa: S607


def fresh_state(stack: SamLocal) -> None:
    """Empty ``stack``'s emulators and seed the events' data again (one stack at a time)."""
    with _ENVIRONMENT_LOCK:
        stack.reset()


def event_file(spec: FunctionSpec) -> Path:
    """``events/<folder>.json`` of a function."""
    return EVENTS_DIR / f"{spec.package}.json"


@pytest.fixture(scope="session")
def sam_stacks() -> Iterator[list[SamLocal]]:
    """Images (cached), a build for this CPU, and SLOTS networks with an emulator container each."""
    if not _docker_answers():
        if os.environ.get("CI"):
            pytest.fail("no Docker daemon answers: `make test` starts one (local/sam_local/docker-up.sh)")
        pytest.skip("no Docker daemon answers (run `make test`, which starts one)")
    suffix = f"test-{os.getpid()}"
    stacks = [
        SamLocal(
            SamLocalOptions(
                network=f"klineo-sam-{suffix}-{slot}",
                container=f"klineo-sam-{suffix}-{slot}-emulators",
                moto_port=_free_port(),
                sim_port=_free_port(),
                function_timeout_s=FUNCTION_TIMEOUT_S,
            )
        )
        for slot in range(SLOTS)
    ]
    try:
        for slot, stack in enumerate(stacks):
            stack.up(build=slot == 0)
        yield stacks
    finally:
        for stack in stacks:
            stack.down()
            stack.options.env_file.unlink(missing_ok=True)


def _run_in_container(spec: FunctionSpec, stack: SamLocal) -> ContainerRun:
    started = time.monotonic()
    try:
        answer, logs = stack.invoke(spec.logical_id, event_file(spec))
    except Exception as error:  # noqa: BLE001 - reported by the function's own test
        return ContainerRun(error=str(error), seconds=time.monotonic() - started)
    return ContainerRun(answer=answer, logs=logs, seconds=time.monotonic() - started)


@pytest.fixture(scope="session")
def container_runs(sam_stacks: list[SamLocal]) -> dict[str, ContainerRun]:
    """Every function of the template through ``sam local invoke``, in waves of one per slot.

    The invokes of a wave start together, so they share the one image build SAM makes for the layer.
    """
    specs = [spec for spec in function_specs() if event_file(spec).is_file()]
    runs: dict[str, ContainerRun] = {}
    with ThreadPoolExecutor(max_workers=len(sam_stacks)) as pool:
        for first in range(0, len(specs), len(sam_stacks)):
            wave = list(zip(specs[first:first + len(sam_stacks)], sam_stacks, strict=False))
            for _, stack in wave:
                fresh_state(stack)
            results = pool.map(lambda item: _run_in_container(*item), wave)
            runs.update({spec.logical_id: run for (spec, _), run in zip(wave, results, strict=True)})
    for logical_id, run in runs.items():
        _SUMMARY.append(f"  {logical_id:<30} {_status(run):<12} {run.seconds:5.1f} s")
    return runs


def _status(run: ContainerRun) -> str:
    if run.error:
        return "FAILED"
    if isinstance(run.answer, dict) and "statusCode" in run.answer:
        return f"HTTP {run.answer['statusCode']}"
    return "returned"


@pytest.fixture
def in_process(sam_stacks: list[SamLocal]) -> Iterator[Callable[[str, Any], Any]]:
    """Invokes a function in this process (the path ``make run`` uses), on fresh data of the first slot."""
    stack = sam_stacks[0]
    fresh_state(stack)
    with _ENVIRONMENT_LOCK, aimed_at(stack):
        yield LambdaRuntime(stack.resolver).invoke


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Every function invoked through ``sam local invoke``, with its status."""
    if _SUMMARY:
        terminalreporter.section("sam local invoke (every function, in a Lambda container)")
        for line in _SUMMARY:
            terminalreporter.write_line(line)
