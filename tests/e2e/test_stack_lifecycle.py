"""`make run`'s command: every part up on 127.0.0.1, the banner says how to use it, Ctrl-C stops it all."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import requests

from local.template import REPO_ROOT

from .conftest import start_stack

pytestmark = pytest.mark.e2e


def _listening(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex((host, int(port))) == 0


def test_stack_starts_every_part_prints_how_to_use_it_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """API, simulator and moto answer on loopback; the banner has URLs, token, keys, tick, stop; SIGINT: 0."""
    # GIVEN / WHEN the stack is started as `make run` starts it (no PYTHONPATH, no AWS settings)
    stack = start_stack(tmp_path)
    try:
        # THEN every part answers on loopback
        assert requests.get(f"{stack.api}/__local__/health", timeout=10).json()["status"] == "ok"
        assert requests.get(f"{stack.simulator}/api/v3/ping", timeout=10).json() == {}
        assert requests.get(f"{stack.moto}/moto-api/", timeout=10).status_code == 200
        # AND the banner says what a developer needs
        accounts = json.loads((REPO_ROOT / "local" / "demo-accounts.json").read_text())["accounts"]
        for expected in (
            stack.api,
            f"{stack.api}/docs",
            stack.simulator,
            "export TOKEN=",
            "/__local__/scheduler/tick",
            "Ctrl-C",
            "--print-token",
            "local/demo-keys/ed25519-private.pem",
            "local/demo-keys/rsa-private.pem",
        ):
            assert expected in stack.banner, expected
        for account in accounts:
            assert account["api_key"] in stack.banner
            assert account.get("secret", "") in stack.banner
        assert "failed to import" not in stack.banner, stack.banner
    finally:
        # WHEN Ctrl-C is pressed
        code = stack.stop()
    # THEN it exits 0 and nothing listens any more
    assert code == 0, stack.console()
    for url in (stack.api, stack.simulator, stack.moto):
        assert not _listening(url), url
