"""The contract command: `python -m local.binance_sim --port N` serves in the foreground."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_module_cli_starts_on_the_given_port_and_prints_its_url():
    """`python -m local.binance_sim --port N` prints http://127.0.0.1:N and answers ping."""
    # GIVEN a free port, and a shell as a newcomer's: no PYTHONPATH (only the Makefile sets one)
    port = _free_port()
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    # WHEN the CLI is started from the repository root
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "local.binance_sim", "--port", str(port)],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        first_line = process.stdout.readline()
        deadline = time.monotonic() + 10
        while True:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/fapi/v1/ping", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "simulator did not start"
                time.sleep(0.05)
        # THEN it printed its URL and serves both APIs
        assert f"http://127.0.0.1:{port}" in first_line
        assert response.json() == {}
        assert requests.get(f"http://127.0.0.1:{port}/api/v3/ping", timeout=1).json() == {}
    finally:
        process.terminate()
        process.wait(timeout=10)
