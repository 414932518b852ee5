"""The whole local stack (`make run`'s command) as a subprocess on free ports, driven over real HTTP."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from local.template import REPO_ROOT

START_TIMEOUT_S = 120


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RunningStack:
    """A started `python -m local.stack`: its URLs, printed banner and dev token."""

    process: subprocess.Popen
    api: str
    simulator: str
    moto: str
    state_dir: Path
    stdout_path: Path
    stderr_path: Path
    banner: str
    token: str

    def token_for(self, sub: str) -> str:
        """A dev token for another user, from the stack's local-only token route."""
        response = requests.post(f"{self.api}/__local__/token", json={"sub": sub}, timeout=10)
        response.raise_for_status()
        return response.json()["token"]

    def call(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> requests.Response:
        """One API request as the demo user (or with ``token``)."""
        headers = {"Authorization": f"Bearer {token or self.token}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.api}{path}", headers=headers, timeout=60, **kwargs)

    def console(self, since: tuple[int, int] = (0, 0)) -> str:
        """What the stack printed so far (stdout then stderr), from ``since`` (a ``console_mark``) on.

        The stack is shared by the whole session: a test that looks for its own lines reads from a
        mark taken before it acted, never what earlier tests made the stack print.
        """
        out, err = self.stdout_path.read_bytes(), self.stderr_path.read_bytes()
        return (out[since[0]:] + err[since[1]:]).decode(errors="replace")

    def console_mark(self) -> tuple[int, int]:
        """Where the console ends now (bytes of stdout, of stderr): pass it to ``console(since=...)``."""
        return self.stdout_path.stat().st_size, self.stderr_path.stat().st_size

    def stop(self, timeout_s: float = 60) -> int:
        """Ctrl-C (SIGINT), as a user would; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def stack_environment() -> dict[str, str]:
    """A new user's shell: no PYTHONPATH, no AWS or KLINEO settings (the stack sets up its own)."""
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("KLINEO_", "AWS_", "POWERTOOLS_"))
    }
    environment.pop("PYTHONPATH", None)
    return environment


def start_stack(work_dir: Path, *extra_args: str) -> RunningStack:
    """Start the stack on free ports and wait for its banner (it prints that once every part is up)."""
    api, sim, moto = free_port(), free_port(), free_port()
    state_dir = work_dir / "state"
    stdout_path, stderr_path = work_dir / "stdout.log", work_dir / "stderr.log"
    command = [
        sys.executable,
        "-m",
        "local.stack",
        "--api-port",
        str(api),
        "--sim-port",
        str(sim),
        "--moto-port",
        str(moto),
        "--state-dir",
        str(state_dir),
        *extra_args,
    ]
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - fixed arguments
            command, cwd=REPO_ROOT, env=stack_environment(), stdout=stdout, stderr=stderr
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        text = stdout_path.read_text(errors="replace")
        if "Stop: Ctrl-C" in text:
            break
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(
                f"local stack did not come up (exit {process.poll()}):\n{text}\n{stderr_path.read_text()}"
            )
        time.sleep(0.2)
    token = re.search(r"export TOKEN=(\S+)", text)
    assert token, text
    return RunningStack(
        process=process,
        api=f"http://127.0.0.1:{api}",
        simulator=f"http://127.0.0.1:{sim}",
        moto=f"http://127.0.0.1:{moto}",
        state_dir=state_dir,
        stdout_path=stdout_path,
        stderr_path=stderr_path,
        banner=text,
        token=token.group(1),
    )


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """One local stack for the e2e session (schedules fire on demand only, so runs are deterministic)."""
    running = start_stack(tmp_path_factory.mktemp("stack"), "--no-schedule")
    yield running
    running.stop()
