"""The sam-local stacks for these tests, the demo data the events refer to, and the run's summary.

Each ``sam local invoke`` takes seconds (a container start, and SAM rebuilds the image holding a
template-defined layer on every invoke), so the functions run in waves of SLOTS at a time, each
slot with its own docker network and emulator container. The in-process path runs on the first slot.
"""

from __future__ import annotations

import contextlib
import json
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
from unittest import mock

import pytest

from local.aws_emulation import FAKE_CREDENTIALS, functions_environment
from local.binance_urls import binance_environment
from local.lambda_runtime import LambdaRuntime
from local.sam_local.stack import REGION, SamLocal, SamLocalOptions
from local.template import REPO_ROOT, FunctionSpec, function_specs
from tests.helpers import EVENTS_DIR

# The ids events/*.json use: user (JWT sub), connection, strategy, and strategy_create's connection.
EVENT_USER = "5f3c2a1e-7b9d-4c8e-a6f0-123456789abc"
EVENT_CONNECTION = "0123456789abcdef0123456789abcdef"
EVENT_STRATEGY = "0123456789abcdef0123456789abcdef"
EVENT_OTHER_CONNECTION = "fedcba9876543210fedcba9876543210"
SLOTS = 7

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


def _clear_layer_caches() -> None:
    from klineo.binance import clear_all_caches
    from klineo.settings import get_settings
    from klineo.store import aws as aws_clients
    from klineo.store import secrets as secret_store

    clear_all_caches()
    secret_store.clear_cache()
    get_settings.cache_clear()
    aws_clients.clear_clients()


def host_environment(stack: SamLocal) -> dict[str, str]:
    """This process's variables as a function's, aimed at ``stack``'s published 127.0.0.1 ports."""
    return {
        **FAKE_CREDENTIALS,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": stack.moto_url,
        "POWERTOOLS_TRACE_DISABLED": "true",
        **binance_environment(stack.sim_url),
        **functions_environment(stack.resolver),
    }


@contextlib.contextmanager
def _aimed_at(stack: SamLocal) -> Iterator[None]:
    """os.environ and the layer's caches pointed at ``stack`` for a while, then restored."""
    values = host_environment(stack)
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    _clear_layer_caches()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _clear_layer_caches()


def _demo_key() -> dict[str, str]:
    accounts = json.loads((REPO_ROOT / "local" / "demo-accounts.json").read_text(encoding="utf-8"))
    account = next(a for a in accounts["accounts"] if a["id"] == "futures-full")
    return {"api_key": account["api_key"], "secret": account["secret"]}


def seed() -> None:
    """What the events refer to, made through the services: two connections (futures on) and a strategy."""
    from klineo.models.common import ConnectionCreateRequest
    from klineo.models.strategies import StrategyCreateRequest
    from klineo.services import connections, strategies
    from klineo.store import connections as connection_store

    ids = iter([EVENT_CONNECTION, EVENT_OTHER_CONNECTION])
    with mock.patch.object(connection_store, "new_connection_id", lambda: next(ids)):
        for label in ("demo futures", "demo other"):
            connections.create_connection(
                EVENT_USER,
                ConnectionCreateRequest(
                    label=label, environment="production", key_type="hmac", **_demo_key()
                ),
            )
    connection_store.set_futures_enabled(EVENT_USER, EVENT_CONNECTION, True)
    with mock.patch.object(strategies.strategy_store, "new_strategy_id", lambda: EVENT_STRATEGY):
        strategies.create_strategy(
            EVENT_USER,
            StrategyCreateRequest(
                connection_id=EVENT_CONNECTION, symbol="BTCUSDT", interval="15m", type="sma_crossover",
                parameters={"fast": 9, "slow": 21}, size="0.002", mode="paper",
            ),
        )


def fresh_state(stack: SamLocal) -> None:
    """Empty ``stack``'s emulators and seed the events' data again (one stack at a time)."""
    with _ENVIRONMENT_LOCK, _aimed_at(stack):
        stack.reset()
        _clear_layer_caches()
        seed()


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
    with _ENVIRONMENT_LOCK, _aimed_at(stack):
        yield LambdaRuntime(stack.resolver).invoke


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Every function invoked through ``sam local invoke``, with its status."""
    if _SUMMARY:
        terminalreporter.section("sam local invoke (every function, in a Lambda container)")
        for line in _SUMMARY:
            terminalreporter.write_line(line)
