"""The local stack for ``sam local invoke``: a docker network with the emulators, a build, an env file.

``make sam-local`` (``python -m local.sam_local up``) makes, on this machine or a laptop with Docker:

- a user-defined docker network (SAM's ``--docker-network host`` gives no host networking, a user
  network does) with one emulator container on it: moto and the Binance simulator, reached by
  functions by the container's name, and from the host on published 127.0.0.1 ports;
- every table, queue and schedule of template.yaml in that moto (as ``make run`` makes them), and
  the connections and strategy ``events/*.json`` refer to;
- ``sam build`` for this machine's CPU (template parameter ``Architecture``);
- an ``--env-vars`` file from the template: each function's variables with the physical names, and
  the local overrides (``AWS_ENDPOINT_URL``, ``BINANCE_*_URL``) pointing at the emulator container.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from local.aws_emulation import provision
from local.binance_urls import binance_environment
from local.sam_local.demo_data import aimed_at, seed
from local.sam_local.images import KEY_LABEL, WORK_DIR, ensure_emulator_image, host_architecture
from local.template import REPO_ROOT, Resolver, function_environment, function_specs, load_template

__all__ = ["SamLocal", "SamLocalOptions", "sam_command"]

REGION = "ap-northeast-1"
CONTAINER_PORTS = {"moto": 5000, "sim": 8900}
# Docker's refusal to start a container whose host port another took first (see ``SamLocal.invoke``).
PORT_TAKEN = "port is already allocated"
PORT_RACE_ATTEMPTS = 3


@dataclass(frozen=True)
class SamLocalOptions:
    """Names and ports of one sam-local stack (the tests make their own, apart from the developer's)."""

    network: str = "klineo-sam-local"
    container: str = "klineo-sam-local-emulators"
    moto_port: int = 5001
    sim_port: int = 8901
    stage: str = "dev"
    arch: str = ""
    # The tests' allowance per invoke on a loaded machine (they check answers, not timeouts): a copy of
    # the built template with this Timeout for every function. 0 = the template's own timeouts.
    function_timeout_s: int = 0

    @property
    def architecture(self) -> str:
        """The CPU functions are built for: the host's unless given."""
        return self.arch or host_architecture()

    @property
    def build_dir(self) -> Path:
        return WORK_DIR / f"build-{self.architecture}"

    @property
    def template(self) -> Path:
        """The built template ``sam local invoke`` reads."""
        if self.function_timeout_s:
            return self.build_dir / f"template-timeout-{self.function_timeout_s}.yaml"
        return self.build_dir / "template.yaml"

    @property
    def env_file(self) -> Path:
        return WORK_DIR / f"env-{self.container}.json"


def sam_command() -> str:
    """The SAM CLI: the project's tools venv, else whatever ``sam`` is on PATH."""
    local = REPO_ROOT / ".venv-tools" / "bin" / "sam"
    return str(local) if local.exists() else (shutil.which("sam") or "sam")


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=check, text=True, capture_output=True)  # noqa: S603,S607


def _wait_http(url: str, timeout_s: float = 60.0) -> None:
    """Wait until ``url`` answers at all (any HTTP status), or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()  # noqa: S310 - our own 127.0.0.1 port
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"sam-local: {url} did not answer within {timeout_s:.0f} s") from None
            time.sleep(0.2)


class SamLocal:
    """One sam-local stack: ``up()`` makes it, ``invoke()`` runs a function in it, ``down()`` removes it."""

    def __init__(self, options: SamLocalOptions | None = None):
        self.options = options or SamLocalOptions()
        self.resolver = Resolver(load_template(), parameters={"Stage": self.options.stage}, region=REGION)

    # ----------------------------------------------------------------- addresses
    @property
    def moto_url(self) -> str:
        """moto as the host reaches it (published port on 127.0.0.1)."""
        return f"http://127.0.0.1:{self.options.moto_port}"

    @property
    def sim_url(self) -> str:
        """The simulator as the host reaches it."""
        return f"http://127.0.0.1:{self.options.sim_port}"

    def network_url(self, service: str) -> str:
        """moto or the simulator as a function on the docker network reaches it."""
        return f"http://{self.options.container}:{CONTAINER_PORTS[service]}"

    # ----------------------------------------------------------------- lifecycle
    def up(self, build: bool = True) -> None:
        """Images, network, emulator container, tables and queues, build (unless told not to) and env file."""
        image = ensure_emulator_image(self.options.architecture)
        self.down()
        _docker("network", "create", self.options.network)
        _docker(
            "run", "-d", "--rm", "--name", self.options.container, "--network", self.options.network,
            "-p", f"127.0.0.1:{self.options.moto_port}:{CONTAINER_PORTS['moto']}",
            "-p", f"127.0.0.1:{self.options.sim_port}:{CONTAINER_PORTS['sim']}",
            "-v", f"{REPO_ROOT}:/klineo:ro", image,
        )
        _wait_http(f"{self.moto_url}/moto-api/")
        _wait_http(f"{self.sim_url}/api/v3/ping")
        self.reset()
        if build:
            self.build()
        if self.options.function_timeout_s:
            self._write_timeout_template()
        self.write_env_file()

    def down(self) -> None:
        """Remove the emulator container and the network (no error if they are not there), and the
        untagged images SAM's per-invoke layer builds left (ours carry KEY_LABEL from the base image)."""
        _docker("rm", "-f", self.options.container, check=False)
        _docker("network", "rm", self.options.network, check=False)
        _docker("image", "prune", "--force", "--filter", f"label={KEY_LABEL}", check=False)

    def reset(self) -> None:
        """Empty moto and the simulator, create the template's tables, queues and schedules again,
        and the data the events refer to (``demo_data``)."""
        for url in (f"{self.moto_url}/moto-api/reset", f"{self.sim_url}/__sim__/reset"):
            urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10).close()  # noqa: S310
        self.resolver.refs.clear()
        self.resolver.attributes.clear()
        provision(self.resolver, self.moto_url)
        with aimed_at(self):
            seed()

    def build(self) -> None:
        """``sam build`` for this machine's CPU, into a folder of its own (cached between runs), then the
        layer's botocore data trimmed as ``make build`` ships it (klineo.store.botocore_data)."""
        arch = self.options.architecture
        subprocess.run(  # noqa: S603 - fixed SAM argv
            [sam_command(), "build", "--cached", "--parallel", "--build-dir", str(self.options.build_dir),
             "--cache-dir", str(WORK_DIR / f"cache-{arch}"), "--parameter-overrides",
             f"Architecture={arch}"],
            check=True, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
        )
        layer = self.options.build_dir / "KlineoLayer" / "python"
        subprocess.run(  # noqa: S603 - our own module, run with the botocore the built layer ships
            [sys.executable, "-m", "klineo.store.botocore_data", str(layer)],
            check=True, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(layer)},
            stdout=subprocess.DEVNULL,
        )

    def _write_timeout_template(self) -> None:
        built = yaml.safe_load((self.options.build_dir / "template.yaml").read_text(encoding="utf-8"))
        built["Globals"]["Function"]["Timeout"] = self.options.function_timeout_s
        for resource in built["Resources"].values():
            if resource.get("Type") == "AWS::Serverless::Function":
                resource["Properties"].pop("Timeout", None)
        self.options.template.write_text(yaml.safe_dump(built, sort_keys=False), encoding="utf-8")

    # ----------------------------------------------------------------- functions
    def function_variables(self) -> dict[str, dict[str, str]]:
        """The ``--env-vars`` content: per function, what Lambda would set, aimed at the emulators."""
        overrides = {
            "AWS_ENDPOINT_URL": self.network_url("moto"),
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here (as in `make run`)
            **binance_environment(self.network_url("sim")),
        }
        variables = {}
        for spec in function_specs(self.resolver.template):
            own = {
                name: value.replace(self.moto_url, self.network_url("moto"))
                for name, value in function_environment(self.resolver, spec).items()
            }
            variables[spec.logical_id] = {**own, **overrides}
        return variables

    def write_env_file(self) -> Path:
        """Write the env-vars file and return its path."""
        self.options.env_file.parent.mkdir(exist_ok=True)
        self.options.env_file.write_text(json.dumps(self.function_variables(), indent=2) + "\n")
        return self.options.env_file

    def invoke_argv(self, logical_id: str, event_file: Path) -> list[str]:
        """The ``sam local invoke`` command line for one function and event."""
        return [
            sam_command(), "local", "invoke", logical_id, "-e", str(event_file),
            "-t", str(self.options.template), "--skip-pull-image",
            "--docker-network", self.options.network, "--env-vars", str(self.options.env_file),
            "--region", REGION, "--parameter-overrides",
            f"Architecture={self.options.architecture} Stage={self.options.stage}",
        ]

    def invoke(self, logical_id: str, event_file: Path) -> tuple[Any, str]:
        """Run one function through ``sam local invoke``: (its JSON answer, SAM's log output).

        SAM picks the Lambda container's host port by binding a random one in 5000-9000 and closing it
        (``samcli.local.docker.utils.find_free_port``); Docker binds it later, so two invocations at once
        (the tests run one per slot), or a container still releasing it, can take the same port and
        Docker refuses to start the second container ("port is already allocated"). That container never
        started, so the function did not run: it is invoked again, a bounded number of times.
        """
        # No shell credentials (SAM would call STS, which hangs offline): SAM gives the container
        # fake ones, which moto accepts.
        environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        environment["SAM_CLI_TELEMETRY"] = "0"
        for _ in range(PORT_RACE_ATTEMPTS):
            done = subprocess.run(  # noqa: S603 - fixed SAM argv
                self.invoke_argv(logical_id, event_file),
                cwd=REPO_ROOT, env=environment, text=True, capture_output=True, timeout=600,
            )
            if done.returncode == 0 or PORT_TAKEN not in done.stderr:
                break
        if done.returncode != 0 or not done.stdout.strip():
            raise RuntimeError(f"sam local invoke {logical_id} failed ({done.returncode}):\n{done.stderr}")
        return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr
