"""The whole backend on this machine: ``make run`` (``python -m local.stack``).

Starts, on 127.0.0.1 only and with no AWS account, no Docker and no internet:

- AWS emulation: a moto server holding every table, queue and schedule template.yaml declares;
- the Binance simulator (spot + USDT-M futures, production and /testnet) with the demo accounts;
- the HTTP API: template.yaml's routes, JWT authorizer and payload-2.0 events, the API page at
  /docs and the OpenAPI document at /openapi.json;
- the scheduler (the dispatcher on the template's rate) and the SQS → worker event source mapping.

It prints the URLs, a dev token, the demo keys and how to stop; Ctrl-C stops every part. Switches
(environment): ``KLINEO_LOCAL_BINANCE=testnet`` uses Binance's real testnet instead of the simulator;
``KLINEO_LOCAL_AWS=real`` uses the AWS account of ``AWS_PROFILE``/``AWS_REGION`` (a deployed stack's
tables and queue) instead of moto.
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import json
import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.auth import DEFAULT_TOKEN_TTL_S, DevJwtAuthority, authorizer_config
from local.aws_emulation import LOCAL_COGNITO_CLIENT, LOCAL_COGNITO_POOL
from local.binance_urls import REAL_TESTNET, binance_environment
from local.template import REPO_ROOT, Resolver, load_template

__all__ = ["DEFAULT_PORTS", "LocalStack", "StackOptions", "main", "parse_options"]

LAYER_PATH = REPO_ROOT / "layers" / "klineo" / "python"
DEFAULT_STATE_DIR = REPO_ROOT / "local" / ".state"
DEMO_ACCOUNTS_FILE = REPO_ROOT / "local" / "demo-accounts.json"
DEMO_USER = "demo-user"
REGION = "ap-northeast-1"
DEFAULT_PORTS = {"api": 3000, "sim": 8900, "moto": 5000}
# Binance's own hosts, used when KLINEO_LOCAL_BINANCE=testnet (the layer's defaults for testnet).


class PortTaken(Exception):
    """A port the stack needs is already in use."""


@dataclass(frozen=True)
class StackOptions:
    """How to run the stack (command line over environment over defaults)."""

    api_port: int
    sim_port: int
    moto_port: int
    state_dir: Path
    stage: str
    cors_origin: str | None
    binance: str
    aws: str
    schedules: bool
    token_ttl_s: int
    metrics: bool = False


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > 65535:
        raise SystemExit(f"{name}={raw!r} is not a port number (0-65535)")
    return int(raw)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local.stack",
        description="The whole KLINEO backend on 127.0.0.1: moto, Binance simulator, HTTP API, scheduler.",
    )
    parser.add_argument("--api-port", type=_port, help="HTTP API port (env KLINEO_API_PORT, default 3000)")
    parser.add_argument(
        "--sim-port", type=_port, help="Binance simulator port (env KLINEO_SIM_PORT, default 8900)"
    )
    parser.add_argument(
        "--moto-port", type=_port, help="moto (AWS) port (env KLINEO_MOTO_PORT, default 5000)"
    )
    parser.add_argument(
        "--state-dir", type=Path, help="dev JWT key folder (env KLINEO_LOCAL_STATE, default local/.state)"
    )
    parser.add_argument("--stage", help="template Stage parameter (env KLINEO_STAGE, default dev)")
    parser.add_argument("--cors-origin", help="template CorsOrigin parameter (env KLINEO_CORS_ORIGIN)")
    parser.add_argument(
        "--no-schedule",
        action="store_true",
        help="do not fire schedules on their rate (ticks only on demand; env KLINEO_LOCAL_SCHEDULE=off)",
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="print the functions' metric (EMF) JSON lines on the console (env KLINEO_LOCAL_METRICS=on)",
    )
    parser.add_argument(
        "--token-ttl", type=int, help=f"dev token lifetime in seconds (default {DEFAULT_TOKEN_TTL_S})"
    )
    parser.add_argument(
        "--print-token",
        metavar="USER",
        help="print a dev token for USER (valid for a stack using the same state dir) and exit",
    )
    return parser


def parse_options(argv: list[str] | None = None) -> tuple[StackOptions, argparse.Namespace]:
    """Options from the command line and KLINEO_* environment variables."""
    args = _parser().parse_args(argv)
    binance = os.environ.get("KLINEO_LOCAL_BINANCE", "simulator").strip().lower() or "simulator"
    aws = os.environ.get("KLINEO_LOCAL_AWS", "moto").strip().lower() or "moto"
    if binance not in ("simulator", "testnet"):
        raise SystemExit(f"KLINEO_LOCAL_BINANCE={binance!r}: use 'simulator' (default) or 'testnet'")
    if aws not in ("moto", "real"):
        raise SystemExit(f"KLINEO_LOCAL_AWS={aws!r}: use 'moto' (default) or 'real'")
    options = StackOptions(
        api_port=args.api_port
        if args.api_port is not None
        else _env_int("KLINEO_API_PORT", DEFAULT_PORTS["api"]),
        sim_port=args.sim_port
        if args.sim_port is not None
        else _env_int("KLINEO_SIM_PORT", DEFAULT_PORTS["sim"]),
        moto_port=args.moto_port
        if args.moto_port is not None
        else _env_int("KLINEO_MOTO_PORT", DEFAULT_PORTS["moto"]),
        state_dir=args.state_dir or Path(os.environ.get("KLINEO_LOCAL_STATE") or DEFAULT_STATE_DIR),
        stage=args.stage or os.environ.get("KLINEO_STAGE") or "dev",
        cors_origin=args.cors_origin or os.environ.get("KLINEO_CORS_ORIGIN") or None,
        binance=binance,
        aws=aws,
        schedules=not args.no_schedule and os.environ.get("KLINEO_LOCAL_SCHEDULE", "on").lower() != "off",
        token_ttl_s=args.token_ttl or DEFAULT_TOKEN_TTL_S,
        metrics=args.metrics or os.environ.get("KLINEO_LOCAL_METRICS", "off").lower() == "on",
    )
    return options, args


def local_resolver(options: StackOptions) -> Resolver:
    """The template resolver for the local stage (physical ids are filled in as resources appear)."""
    parameters = {"Stage": options.stage}
    if options.cors_origin:
        parameters["CorsOrigin"] = options.cors_origin
    resolver = Resolver(load_template(), parameters=parameters, region=os.environ.get("AWS_REGION") or REGION)
    resolver.refs.setdefault("UserPool", LOCAL_COGNITO_POOL)
    resolver.refs.setdefault("UserPoolClient", LOCAL_COGNITO_CLIENT)
    return resolver


def _check_port(label: str, port: int) -> None:
    if port == 0:
        return
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Like the servers themselves: a port whose old connections linger in TIME_WAIT is free.
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError as error:
        if error.errno in (errno.EADDRINUSE, errno.EACCES):
            raise PortTaken(label) from error
        raise
    finally:
        probe.close()


_PORT_FLAGS = {
    "api": ("API", "--api-port", "KLINEO_API_PORT"),
    "sim": ("Binance simulator", "--sim-port", "KLINEO_SIM_PORT"),
    "moto": ("AWS emulation (moto)", "--moto-port", "KLINEO_MOTO_PORT"),
}


def _port_message(label: str, port: int) -> str:
    name, flag, env = _PORT_FLAGS[label]
    return (
        f"local stack: port {port} on 127.0.0.1 ({name}) is already in use; "
        f"pick another with {flag} N (or {env}=N), or stop what is using it"
    )


class LocalStack:
    """Every part of the local stack; ``start()`` brings them up, ``stop()`` takes them down."""

    def __init__(self, options: StackOptions):
        self.options = options
        self.resolver = local_resolver(options)
        self.moto: Any = None
        self.simulator: Any = None
        self.api: Any = None
        self.sources: Any = None
        self.runtime: Any = None
        self.authority: DevJwtAuthority | None = None
        self.import_failures: dict[str, str] = {}
        self._openapi_cache: dict[str, bytes] = {}

    # ------------------------------------------------------------------ lifecycle
    def check_ports(self) -> None:
        """Raise PortTaken for the first needed port that is in use."""
        wanted = {"api": self.options.api_port}
        if self.options.binance == "simulator":
            wanted["sim"] = self.options.sim_port
        if self.options.aws == "moto":
            wanted["moto"] = self.options.moto_port
        seen: dict[int, str] = {}
        for label, port in wanted.items():
            if port and port in seen:
                raise PortTaken(label)
            seen[port] = label
            _check_port(label, port)

    def start(self) -> None:
        """Start AWS emulation, the simulator, the functions, the API and the event sources."""
        # Imported here: these need the layer (klineo) importable, which main() ensures.
        from local.api_router import ApiServer
        from local.aws_emulation import (
            FAKE_CREDENTIALS,
            MotoServer,
            discover_deployed,
            functions_environment,
            provision,
        )
        from local.binance_sim import Simulator
        from local.lambda_runtime import LambdaRuntime
        from local.scheduler import EventSources

        os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = self.resolver.region
        os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
        if self.options.aws == "moto":
            self.moto = MotoServer(self.options.moto_port)
            try:
                self.moto.start()
            except OSError as error:
                raise PortTaken("moto") from error
            os.environ.update(FAKE_CREDENTIALS)
            os.environ.pop("AWS_PROFILE", None)
            os.environ["AWS_ENDPOINT_URL"] = self.moto.url
            provision(self.resolver, self.moto.url)
        else:
            os.environ.pop("AWS_ENDPOINT_URL", None)
            self.resolver.account_id = _real_account_id(self.resolver.region)
            discover_deployed(self.resolver)

        if self.options.binance == "simulator":
            self.simulator = Simulator(port=self.options.sim_port)
            try:
                self.simulator.start()
            except OSError as error:
                raise PortTaken("sim") from error
            os.environ.update(binance_environment(self.simulator.url))
        else:
            os.environ.update(binance_environment(None))

        os.environ.update(functions_environment(self.resolver))
        self.runtime = LambdaRuntime(self.resolver, show_metrics=self.options.metrics)
        self.import_failures = self.runtime.preload()
        self.authority = DevJwtAuthority.load_or_create(
            self.options.state_dir, authorizer_config(self.resolver)
        )
        self.sources = EventSources(self.resolver, self.runtime)
        try:
            self.api = ApiServer(
                self.resolver,
                self.runtime,
                self.authority,
                self.options.api_port,
                extra_routes=self._extra_routes(),
            )
        except OSError as error:
            raise PortTaken("api") from error
        self.api.start()
        self.sources.start(schedules=self.options.schedules)

    def stop(self) -> None:
        """Stop every part that started, newest first."""
        for part in (self.sources, self.api, self.simulator, self.moto):
            if part is not None:
                part.stop()
        self.sources = self.api = self.simulator = self.moto = None

    # ------------------------------------------------------------------ local-only routes
    def _extra_routes(self) -> dict[tuple[str, str], Any]:
        from local.api_router import HttpResponse

        powertools_ui = Path(importlib.util.find_spec("aws_lambda_powertools").origin).parent
        swagger_dir = powertools_ui / "event_handler" / "openapi" / "swagger_ui"
        page = (REPO_ROOT / "local" / "docs" / "index.html").read_bytes()

        def static(body_path: Path, content_type: str):
            def serve(_request):
                return HttpResponse(
                    200,
                    [("content-type", content_type), ("cache-control", "max-age=3600")],
                    body_path.read_bytes(),
                )

            return serve

        def docs(_request):
            return HttpResponse(200, [("content-type", "text/html; charset=utf-8")], page)

        def openapi(_request):
            from local.openapi import build_document, render

            if "doc" not in self._openapi_cache:
                self._openapi_cache["doc"] = render(build_document()).encode()
            return HttpResponse(200, [("content-type", "application/json")], self._openapi_cache["doc"])

        def health(_request):
            return HttpResponse.json(
                200, {"status": "ok", "functions_not_loaded": sorted(self.import_failures)}
            )

        def tick(_request):
            return HttpResponse.json(200, self.sources.tick_and_drain())

        def token(request):
            try:
                body = json.loads(request.body or b"{}")
            except ValueError:
                body = None
            sub = body.get("sub") if isinstance(body, dict) else None
            if not isinstance(sub, str) or not sub.strip() or len(sub) > 128:
                return HttpResponse.json(400, {"message": 'send {"sub": "<user id>"}'})
            return HttpResponse.json(
                200, {"sub": sub, "token": self.authority.issue(sub, ttl_s=self.options.token_ttl_s)}
            )

        return {
            ("GET", "/docs"): docs,
            ("GET", "/docs/"): docs,
            ("GET", "/docs/swagger-ui.css"): static(
                swagger_dir / "swagger-ui.min.css", "text/css; charset=utf-8"
            ),
            ("GET", "/docs/swagger-ui-bundle.js"): static(
                swagger_dir / "swagger-ui-bundle.min.js", "application/javascript; charset=utf-8"
            ),
            ("GET", "/openapi.json"): openapi,
            ("GET", "/__local__/health"): health,
            ("POST", "/__local__/scheduler/tick"): tick,
            ("POST", "/__local__/token"): token,
        }

    # ------------------------------------------------------------------ banner
    def banner(self) -> str:
        """What the stack prints once it is up."""
        api = self.api.url
        lines = [
            "",
            "KLINEO local stack is up - everything on 127.0.0.1 (no AWS account, no Docker, no internet).",
            "",
            f"  API             {api}",
            f"  API page        {api}/docs   (OpenAPI document: {api}/openapi.json)",
        ]
        if self.simulator is not None:
            lines.append(
                f"  Binance sim     {self.simulator.url}   (testnet keys: {self.simulator.url}/testnet)"
            )
        else:
            lines.append(f"  Binance         real testnet: {REAL_TESTNET['spot']}, {REAL_TESTNET['futures']}")
        if self.moto is not None:
            tables = ", ".join(v for k, v in self.resolver.refs.items() if k.endswith("Table"))
            lines.append(f"  AWS (moto)      {self.moto.url}   tables: {tables}")
        else:
            lines.append(
                f"  AWS             real account {self.resolver.account_id}, region {self.resolver.region}"
            )
        for scheduler in self.sources.schedulers:
            state = "every" if self.options.schedules else "on demand only; would be every"
            lines.append(
                f"  Scheduler       {scheduler.schedule.name}: {state} {scheduler.interval_s} s -> "
                f"{scheduler.schedule.function.logical_id}"
            )
        for poller in self.sources.pollers:
            lines.append(
                f"  SQS mapping     {poller.mapping.queue_url} -> {poller.mapping.function.logical_id}"
            )
        if self.import_failures:
            lines += ["", "  Functions that failed to import (their routes answer 500 until fixed):"]
            lines += [f"    {name}: {error}" for name, error in sorted(self.import_failures.items())]
        token = self.authority.issue(DEMO_USER, ttl_s=self.options.token_ttl_s)
        hours = self.options.token_ttl_s / 3600
        lines += [
            "",
            f"Dev token for user {DEMO_USER} (valid {hours:g} h); paste this line into your shell:",
            f"  export TOKEN={token}",
            "A token for another user (to try isolation):",
            f"  .venv/bin/python -m local.stack --print-token other-user{self._state_flag()}",
            f'  or: curl -s -X POST {api}/__local__/token -d \'{{"sub":"other-user"}}\'',
            "",
        ]
        lines += self._demo_key_lines()
        lines += [
            "",
            "Run the strategy runner now (local-only: the dispatcher, then its queue drained by the worker):",
            f"  curl -s -X POST {api}/__local__/scheduler/tick",
            "",
            "Stop: Ctrl-C (stops the API, scheduler, simulator and AWS emulation).",
            "",
        ]
        return "\n".join(lines)

    def _state_flag(self) -> str:
        if self.options.state_dir.resolve() == DEFAULT_STATE_DIR.resolve():
            return ""
        return f" --state-dir {self.options.state_dir}"

    def _demo_key_lines(self) -> list[str]:
        if self.simulator is None:
            return ["Demo keys: none (KLINEO_LOCAL_BINANCE=testnet: use your own Binance testnet keys)."]
        accounts = json.loads(DEMO_ACCOUNTS_FILE.read_text(encoding="utf-8"))["accounts"]
        lines = [
            "Demo Binance keys (valid on the local simulator only; details in local/demo-accounts.json):"
        ]
        for account in accounts:
            kind = account["key_type"].lower()
            head = (
                f"  {account['id']:<20} {account['environment']:<10} {kind:<8} api_key={account['api_key']}"
            )
            if "secret" in account:
                lines.append(f"{head}\n  {'':<40} secret={account['secret']}")
            else:
                key_file = Path("local") / account["private_key_file"]
                lines.append(f"{head}\n  {'':<40} private key: {key_file}")
        return lines

    def summary(self) -> dict[str, Any]:
        """Machine-readable state of the stack (URLs), for tests and tools."""
        return {
            "api_url": self.api.url,
            "simulator_url": self.simulator.url if self.simulator else None,
            "moto_url": self.moto.url if self.moto else None,
        }


def _real_account_id(region: str) -> str:
    import boto3

    return boto3.session.Session(region_name=region).client("sts").get_caller_identity()["Account"]


def _ensure_layer_importable(argv: list[str]) -> None:
    """Re-run with the layer on PYTHONPATH if ``klineo`` is not importable (Lambda puts it on the path)."""
    if importlib.util.find_spec("klineo") is not None:
        return
    paths = [str(LAYER_PATH), str(REPO_ROOT)]
    current = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(paths + ([current] if current else []))
    os.execv(sys.executable, [sys.executable, "-m", "local.stack", *argv])  # noqa: S606 - same interpreter, same args


def _configure_console() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[local] %(message)s"))
    console = logging.getLogger("local")
    console.handlers[:] = [handler]
    console.setLevel(logging.INFO)
    console.propagate = False


def main(argv: list[str] | None = None) -> int:
    """Run the stack until Ctrl-C (exit 0); a port in use exits 2 with one line saying which."""
    argv = list(sys.argv[1:] if argv is None else argv)
    options, args = parse_options(argv)
    if args.print_token:
        resolver = local_resolver(options)
        authority = DevJwtAuthority.load_or_create(options.state_dir, authorizer_config(resolver))
        print(authority.issue(args.print_token, ttl_s=options.token_ttl_s))
        return 0
    _ensure_layer_importable(argv)
    _configure_console()
    stack = LocalStack(options)
    stopping = threading.Event()

    def request_stop(_signum, _frame) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        stack.check_ports()
        stack.start()
    except PortTaken as taken:
        stack.stop()
        label = taken.args[0]
        port = {"api": options.api_port, "sim": options.sim_port, "moto": options.moto_port}[label]
        print(_port_message(label, port), file=sys.stderr, flush=True)
        return 2
    except BaseException:
        stack.stop()
        raise
    print(stack.banner(), flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        print("[local] stopping...", file=sys.stderr, flush=True)
        stack.stop()
        print("[local] stopped.", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
