"""`python -m local.stack` (make run): a taken port is one clear line and exit 2; tokens can be printed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from local.auth import DevJwtAuthority, authorizer_config
from local.stack import StackOptions, local_resolver
from local.template import REPO_ROOT


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment() -> dict[str, str]:
    """The caller's environment without PYTHONPATH: the stack must set up the layer path itself."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("KLINEO_", "AWS_"))}
    environment.pop("PYTHONPATH", None)
    return environment


@pytest.mark.parametrize(
    ("part", "flag"), [("api", "--api-port"), ("sim", "--sim-port"), ("moto", "--moto-port")]
)
def test_a_taken_port_is_one_clear_line_and_exit_code_2(tmp_path: Path, part: str, flag: str) -> None:
    """Whichever port is taken, the stack names it and the flag that changes it, and exits 2."""
    # GIVEN one of the three ports held by another listener
    ports = {"api": _free_port(), "sim": _free_port(), "moto": _free_port()}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[part]))
        holder.listen()
        # WHEN the stack is started on it
        result = subprocess.run(  # noqa: S603 - fixed arguments
            [
                sys.executable,
                "-m",
                "local.stack",
                "--api-port",
                str(ports["api"]),
                "--sim-port",
                str(ports["sim"]),
                "--moto-port",
                str(ports["moto"]),
                "--state-dir",
                str(tmp_path),
            ],
            cwd=REPO_ROOT,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    # THEN one line says which port, which part and which flag; exit code 2
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"port {ports[part]}" in lines[0]
    assert flag in lines[0]
    assert "already in use" in lines[0]


def test_print_token_gives_a_token_the_stack_accepts(tmp_path: Path) -> None:
    """--print-token USER prints only a token, signed by the key the stack in that state dir uses."""
    # GIVEN a state folder
    # WHEN a token is printed for other-user
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "-m", "local.stack", "--print-token", "other-user", "--state-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = result.stdout.strip()
    # THEN the stack's authority (same folder) accepts it as other-user
    options = StackOptions(
        api_port=0,
        sim_port=0,
        moto_port=0,
        state_dir=tmp_path,
        stage="dev",
        cors_origin=None,
        binance="simulator",
        aws="moto",
        schedules=False,
        token_ttl_s=60,
    )
    resolver = local_resolver(options)
    authority = DevJwtAuthority.load_or_create(tmp_path, authorizer_config(resolver))
    assert "\n" not in token
    assert authority.verify(f"Bearer {token}")["sub"] == "other-user"
