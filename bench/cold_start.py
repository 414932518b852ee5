"""Cold start: import a function's module and build its clients, each in a fresh interpreter.

Subjects, every one timed in its own new process (median of --runs, after one discarded warm-up
run; runs are interleaved round-robin so background load hits every subject alike):

- every function of template.yaml: ``import functions.<name>.app`` then the clients it uses (the
  boto3 clients its IAM policy names, through ``klineo.store.aws``; the Binance client of the market
  it calls, through ``klineo.binance.get_client``). Target: <= 400 ms.
- the Binance part of the layer: ``import klineo.binance`` + ``BinanceClient(spot, production)``.
  Target: <= 120 ms.
- peers, same run: ccxt, python-binance, binance-sdk-spot, binance-sdk-derivatives-trading-usds-futures
  (construction only, no network), and ``requests.Session()`` as the floor.

The headline target (issue 16): every function's import + clients is at most 0.8x ccxt's import
(``import ccxt`` alone). Machine load moves both by ±15% between runs, so the ratio is taken round
by round: ccxt is sampled REFERENCE_SAMPLES times in every round, spread through it; each function's
figure of a round is divided by the median of that round's ccxt samples; the verdict reads the
median of those per-round ratios, printed with their spread (lowest-highest) and how many rounds
were over the target.

The environment is Lambda's: the function's variables from template.yaml, fake credentials, and
LAMBDA_TASK_ROOT set so Powertools' Tracer is active and patches botocore/requests as under
``Tracing: Active``, and AWS_EXECUTION_ENV set so the init pauses garbage collection as on Lambda
(``klineo/__init__.py``; a function's ``@finish_init`` ends the pause before its clients are built).
Layer and function code are measured two ways: "as deployed" (copied to a
temporary folder without __pycache__ and run with PYTHONDONTWRITEBYTECODE, as on Lambda where the
layer's own .py files ship as ``make build`` leaves them: precompiled by ``compileall`` with
unchecked-hash bytecode, since /opt is read-only and zip timestamps would make checked bytecode
stale, and with botocore's data trimmed to our services by ``klineo.store.botocore_data``) and "with
pyc" (the repo tree, bytecode cached, botocore's own data). Installed packages have their bytecode in
both modes, as pip puts it there.

On a missed target the subject is re-run once under ``-X importtime`` and the heaviest imports
are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import LAYER_PATH, REPO_ROOT, Report, demo_keys, median

__all__ = [
    "RatioSummary",
    "Subject",
    "ccxt_ratios",
    "function_subjects",
    "import_profile",
    "layer_subject",
    "main",
    "measure",
    "peer_subjects",
    "per_round_ratios",
    "round_order",
]

FUNCTION_TARGET_MS = 400.0
LAYER_TARGET_MS = 120.0
# Every function's import + clients over ccxt's import, in the same run (issue 16 item 3).
CCXT_RATIO_TARGET = 0.8
# The peer every function is compared with, and how many times it runs in every round (spread
# through the round, so each function has a ccxt figure from the same minute of machine load).
REFERENCE_PEER = "ccxt"
REFERENCE_SAMPLES = 3
# Reference figures from design.md "Targets", measured earlier on this project's machines.
PEER_REFERENCE_MS = {"ccxt": 340, "python-binance": 300, "binance-sdk-spot": 780}

# A simulator demo account (local/demo-accounts.json): fake keys, never valid on Binance.
DEMO_API_KEY, DEMO_SECRET = demo_keys("futures-full")

# The Binance client each function's handler builds first (its market), built with the function's
# other clients: the client and the ``requests`` import it brings are some 20 ms of a cold start.
# Functions not listed call no Binance API. candles serves both markets; spot is the first one a
# request builds. tests/integration/api/test_cold_start_clients.py runs every function with its
# events/ file and checks this table against the clients the handler built.
BINANCE_MARKET = {
    "connection_test": "SPOT",
    "connection_create": "SPOT",
    "connection_test_stored": "SPOT",
    "connection_credentials": "SPOT",
    "connection_enable": "SPOT",
    "connection_update": "FUTURES",
    "connection_delete": "FUTURES",
    "balance": "SPOT",
    "candles": "SPOT",
    "futures_test": "FUTURES",
    "futures_enable": "FUTURES",
    "futures_order": "FUTURES",
    "futures_order_check": "FUTURES",
    "futures_order_status": "FUTURES",
    "futures_order_cancel": "FUTURES",
    "futures_orders": "FUTURES",
    "futures_positions": "FUTURES",
    "futures_open_orders": "FUTURES",
    "futures_open_orders_cancel": "FUTURES",
    "futures_position_close": "FUTURES",
    "futures_symbol_rules": "FUTURES",
    "strategy_create": "FUTURES",
    "strategy_run": "FUTURES",
    "strategy_backtest": "FUTURES",
    "strategy_worker": "FUTURES",
    "order_reconciler": "FUTURES",
    "backtest_worker": "FUTURES",
}
# Of those, the ones whose handler builds its client only on some data (the canonical event's data
# does not reach it); the bench times them with it, as their requests that do reach Binance run.
BINANCE_MARKET_WHEN = {
    "connection_update": "only when the position mode changes (set on Binance first)",
    "connection_delete": "only while the connection has orders not yet settled (wound down first)",
    "futures_order_cancel": "only for an order we have a record of",
    "backtest_worker": "only for a queued job that has not run yet",
}

# The child: time an import snippet, then a build snippet; print both in ms, by the wall clock and by
# the process's CPU time (user + system). Only sys and time are imported before the clocks start
# (both are built in), so nothing a subject needs comes for free.
_CHILD = """\
import sys, time
_ns = {}
_t0, _c0 = time.perf_counter(), time.process_time()
exec(sys.argv[1], _ns)
_t1, _c1 = time.perf_counter(), time.process_time()
exec(sys.argv[2], _ns)
_t2, _c2 = time.perf_counter(), time.process_time()
print("COLD-START %.3f %.3f %.3f %.3f" % ((_t1 - _t0) * 1000.0, (_t2 - _t1) * 1000.0,
                                          (_c1 - _c0) * 1000.0, (_c2 - _c1) * 1000.0))
"""
# "wall": elapsed time, what a cold start costs on an idle machine. "cpu": the process's CPU time,
# which a machine shared with other work inflates far less (waiting for a core is not counted).
CLOCKS = ("wall", "cpu")


@dataclass
class Subject:
    """One thing to cold-start: code to import, code to build its clients, and where it runs."""

    name: str
    kind: str  # "function", "layer", "peer", "floor"
    import_code: str
    build_code: str
    env: dict[str, str] = field(default_factory=dict)
    target_ms: float | None = None
    mode: str = ""  # "as deployed" / "with pyc" for our code, "" for others
    available: bool = True
    why_unavailable: str = ""
    import_ms: list[float] = field(default_factory=list)
    build_ms: list[float] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)  # the round of each figure (1 = first measured)
    error: str = ""

    @property
    def label(self) -> str:
        """Name plus mode."""
        return f"{self.name} [{self.mode}]" if self.mode else self.name

    @property
    def totals(self) -> list[float]:
        """import + build per run."""
        return [i + b for i, b in zip(self.import_ms, self.build_ms, strict=True)]

    def by_round(self, values: Sequence[float]) -> dict[int, list[float]]:
        """``values`` (one per run: import_ms, totals...) grouped by the round each was measured in."""
        grouped: dict[int, list[float]] = {}
        for round_number, value in zip(self.rounds, values, strict=True):
            grouped.setdefault(round_number, []).append(value)
        return grouped


# ----- environments ------------------------------------------------------------------------------
def _lambda_base_env(function_name: str) -> dict[str, str]:
    """What Lambda puts in every function's environment, with fake credentials."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "ap-northeast-1",
        "AWS_REGION": "ap-northeast-1",
        "LAMBDA_TASK_ROOT": "/var/task",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "POWERTOOLS_SERVICE_NAME": "klineo",
        "POWERTOOLS_METRICS_NAMESPACE": "Klineo",
    }


def _template_environments() -> dict[str, dict[str, str]]:
    """Function folder name -> its environment variables from template.yaml (stage dev)."""
    from local.template import Resolver, function_environment, function_specs, load_template

    template = load_template()
    resolver = Resolver(template, parameters={"Stage": "dev"})
    for logical, spec in template.get("Resources", {}).items():
        props = spec.get("Properties", {}) or {}
        if spec.get("Type") == "AWS::DynamoDB::Table":
            resolver.refs[logical] = resolver.resolve(props.get("TableName", logical))
        elif spec.get("Type") == "AWS::SQS::Queue":
            name = resolver.resolve(props.get("QueueName", logical))
            resolver.refs[logical] = f"https://sqs.ap-northeast-1.amazonaws.com/123456789012/{name}"
        else:
            resolver.refs.setdefault(logical, logical)
    environments = {}
    for spec in function_specs(template):
        env = {}
        for name, value in spec.properties.get("Environment", {}).get("Variables", {}).items():
            env[name] = value
        try:
            resolved = function_environment(resolver, spec)
        except KeyError:
            resolved = {}
            globals_env = template.get("Globals", {}).get("Function", {}).get("Environment", {})
            for name, value in {**globals_env.get("Variables", {}), **env}.items():
                try:
                    resolved[name] = str(resolver.resolve(value))
                except KeyError:
                    resolved[name] = f"unresolved-{name.lower()}"
        environments[spec.package] = {
            "__logical_id__": spec.logical_id,
            "__policies__": json.dumps(spec.properties.get("Policies", []), default=str),
            **resolved,
        }
    return environments


def _aws_services(policies_json: str) -> list[str]:
    """boto3 services a function may call, read from the IAM actions in its policies."""
    services = []
    for service in ("dynamodb", "secretsmanager", "sqs"):
        if f'"{service}:' in policies_json or f"'{service}:" in policies_json:
            services.append(service)
    return services


# ----- subjects ----------------------------------------------------------------------------------
def function_subjects(
    names: Sequence[str] | None = None,
    code_root: Path = REPO_ROOT,
    layer_root: Path = LAYER_PATH,
    mode: str = "with pyc",
) -> list[Subject]:
    """One subject per function in template.yaml (or only `names`)."""
    subjects = []
    for package, env in _template_environments().items():
        if names and package not in names:
            continue
        logical = env.pop("__logical_id__")
        services = _aws_services(env.pop("__policies__"))
        build = ["from klineo.store import aws as _aws"] + [f"_aws.{service}()" for service in services]
        market = BINANCE_MARKET.get(package)
        if market:
            build += [
                "from klineo.binance import Environment as _E, Market as _M, get_client as _get_client",
                f"_get_client(_M.{market}, _E.PRODUCTION)",
            ]
        subject = Subject(
            name=package,
            kind="function",
            import_code=f"import functions.{package}.app",
            build_code="\n".join(build),
            target_ms=FUNCTION_TARGET_MS,
            mode=mode,
            env={
                **_lambda_base_env(f"klineo-dev-{logical}"),
                **env,
                "PYTHONPATH": os.pathsep.join([str(layer_root), str(code_root)]),
            },
        )
        if not (code_root / "functions" / package / "app.py").is_file():
            subject.available, subject.why_unavailable = False, f"functions/{package}/app.py not written yet"
        subjects.append(subject)
    return subjects


def layer_subject(layer_root: Path = LAYER_PATH, mode: str = "with pyc") -> Subject:
    """`import klineo.binance` + constructing a spot production client."""
    subject = Subject(
        name="klineo.binance",
        kind="layer",
        import_code="import klineo.binance",
        # A function's init ends (klineo.end_init_pause: garbage collection on again) before it builds
        # a client; the layer alone has no app.py to end it, so the build does, as a function would.
        build_code=(
            "klineo.end_init_pause()\n"
            "klineo.binance.BinanceClient(klineo.binance.Market.SPOT, klineo.binance.Environment.PRODUCTION)"
        ),
        target_ms=LAYER_TARGET_MS,
        mode=mode,
        env={**_lambda_base_env("klineo-dev-bench"), "PYTHONPATH": str(layer_root)},
    )
    if not (layer_root / "klineo" / "binance" / "__init__.py").is_file():
        subject.available, subject.why_unavailable = False, "klineo/binance/__init__.py not written yet"
    return subject


def stack_floor_subject() -> Subject:
    """What any function pays before its own code: Powertools (Tracer active), a resolver, pydantic, boto3."""
    return Subject(
        name="stack floor (Powertools + resolver + pydantic + DynamoDB client)",
        kind="floor",
        import_code=(
            "from aws_lambda_powertools import Logger, Metrics, Tracer\n"
            "from aws_lambda_powertools.event_handler import APIGatewayHttpResolver\n"
            "import pydantic, boto3"
        ),
        build_code=(
            "Logger(); Metrics(); Tracer(); APIGatewayHttpResolver(enable_validation=True)\n"
            "type('M', (pydantic.BaseModel,), {'__annotations__': {'x': int}})\n"
            "boto3.session.Session().client('dynamodb')"
        ),
        env={**_lambda_base_env("klineo-dev-floor"), "PYTHONPATH": ""},
    )


def boto3_session_subjects() -> list[Subject]:
    """Two boto3 clients (DynamoDB, Secrets Manager) from one Session each, and from one shared Session."""
    env = {**_lambda_base_env("klineo-dev-floor"), "PYTHONPATH": ""}
    config = "Config(connect_timeout=2, read_timeout=5, retries={'mode': 'standard', 'max_attempts': 3})"
    imports = "import boto3\nfrom botocore.config import Config"
    return [
        Subject(
            name="boto3: 2 clients, a new Session each",
            kind="floor",
            import_code=imports,
            build_code=(
                f"boto3.session.Session().client('dynamodb', config={config})\n"
                f"boto3.session.Session().client('secretsmanager', config={config})"
            ),
            env=env,
        ),
        Subject(
            name="boto3: 2 clients, one shared Session",
            kind="floor",
            import_code=imports,
            build_code=(
                f"_s = boto3.session.Session()\n_s.client('dynamodb', config={config})\n"
                f"_s.client('secretsmanager', config={config})"
            ),
            env=env,
        ),
    ]


def peer_subjects() -> list[Subject]:
    """Other Binance clients, built without touching the network, and requests.Session as the floor."""
    key = f"{DEMO_API_KEY!r}, {DEMO_SECRET!r}"
    specs = [
        ("requests.Session (floor)", "floor", "requests", "import requests", "requests.Session()"),
        (
            "ccxt",
            "peer",
            "ccxt",
            "import ccxt",
            f"ccxt.binance({{'apiKey': {DEMO_API_KEY!r}, 'secret': {DEMO_SECRET!r}}})",
        ),
        # ping=False: the constructor otherwise calls GET /api/v3/ping.
        (
            "python-binance",
            "peer",
            "binance.client",
            "from binance.client import Client",
            f"Client({key}, ping=False)",
        ),
        # The REST client is built on first use of .rest_api (a property); no request is sent.
        (
            "binance-sdk-spot",
            "peer",
            "binance_sdk_spot",
            "from binance_sdk_spot.spot import ConfigurationRestAPI, Spot",
            f"Spot(config_rest_api=ConfigurationRestAPI(api_key={DEMO_API_KEY!r}, "
            f"api_secret={DEMO_SECRET!r})).rest_api",
        ),
        (
            "binance-sdk-derivatives-trading-usds-futures",
            "peer",
            "binance_sdk_derivatives_trading_usds_futures",
            "from binance_sdk_derivatives_trading_usds_futures.derivatives_trading_usds_futures import "
            "ConfigurationRestAPI, DerivativesTradingUsdsFutures",
            f"DerivativesTradingUsdsFutures(config_rest_api=ConfigurationRestAPI(api_key={DEMO_API_KEY!r}, "
            f"api_secret={DEMO_SECRET!r})).rest_api",
        ),
    ]
    subjects = [stack_floor_subject(), *boto3_session_subjects()]
    from importlib.util import find_spec

    for name, kind, probe, import_code, build_code in specs:
        subject = Subject(
            name=name, kind=kind, import_code=import_code, build_code=build_code, env={"PYTHONPATH": ""}
        )
        if find_spec(probe.split(".")[0]) is None:
            subject.available = False
            subject.why_unavailable = "not installed in this interpreter (use .venv-bench: make bench)"
        subjects.append(subject)
    return subjects


# ----- running -----------------------------------------------------------------------------------
def _child_env(subject: Subject) -> dict[str, str]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "VIRTUAL_ENV")
    }
    return {**keep, **subject.env}


def _run_once(
    subject: Subject, *, importtime: bool = False, timeout_s: float = 60.0, clock: str = "wall"
) -> tuple[float, float, str]:
    """(import ms, build ms, stderr) of one fresh process, by ``clock`` (one of CLOCKS)."""
    argv = [sys.executable]
    if importtime:
        argv += ["-X", "importtime"]
    argv += ["-c", _CHILD, subject.import_code, subject.build_code]
    done = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        argv,
        cwd=tempfile.gettempdir(),
        env=_child_env(subject),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    for line in done.stdout.splitlines():
        if line.startswith("COLD-START "):
            figures = [float(value) for value in line.split()[1:]]
            offset = 2 * CLOCKS.index(clock)
            return figures[offset], figures[offset + 1], done.stderr
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    raise RuntimeError(f"exit {done.returncode}: {tail}")


def round_order(subjects: Sequence[Subject], round_number: int,
                reference_samples: int = REFERENCE_SAMPLES) -> list[Subject]:
    """One round's running order: every subject once, the reference peer ``reference_samples`` times.

    The others are rotated by the round number (no subject always follows the same one); the
    reference opens the round and its other samples are spread evenly through it.
    """
    reference = next((s for s in subjects if s.name == REFERENCE_PEER), None)
    others = [s for s in subjects if s is not reference]
    if others:
        shift = round_number % len(others)
        others = others[shift:] + others[:shift]
    if reference is None:
        return others
    samples = max(1, reference_samples)
    order: list[Subject] = []
    for index in range(samples):
        order.append(reference)
        order += others[index * len(others) // samples : (index + 1) * len(others) // samples]
    return order


def measure(subjects: Sequence[Subject], runs: int, clock: str = "wall",
            reference_samples: int = REFERENCE_SAMPLES) -> None:
    """Fill each available subject's figures: one warm-up round, then `runs` interleaved rounds
    (``round_order``: ccxt sampled ``reference_samples`` times in each)."""
    for round_number in range(runs + 1):
        for subject in round_order(subjects, round_number, reference_samples):
            if not subject.available or subject.error:
                continue
            try:
                import_ms, build_ms, _ = _run_once(subject, clock=clock)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                subject.error = str(error)[:300]
                continue
            if round_number > 0:
                subject.import_ms.append(import_ms)
                subject.build_ms.append(build_ms)
                subject.rounds.append(round_number)


def import_profile(
    subject: Subject, top: int = 10
) -> tuple[list[tuple[float, float, str]], list[tuple[str, float]]]:
    """One `-X importtime` run: heaviest imports (cumulative ms, self ms, module) and self ms per package."""
    _, _, stderr = _run_once(subject, importtime=True)
    rows = []
    by_package: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        parts = line[len("import time:") :].split("|", 2)
        if len(parts) != 3:
            continue
        self_us, cumulative_us, module = parts
        module = module[1:] if module.startswith(" ") else module
        depth = len(module) - len(module.lstrip())
        name = module.strip()
        rows.append((float(cumulative_us) / 1000.0, float(self_us) / 1000.0, depth, name))
        package = name.split(".", 1)[0]
        by_package[package] = by_package.get(package, 0.0) + float(self_us) / 1000.0
    rows.sort(key=lambda row: row[0], reverse=True)
    heaviest = [
        (cumulative, own, ("  " * min(depth // 2, 6)) + name) for cumulative, own, depth, name in rows[:top]
    ]
    packages = sorted(by_package.items(), key=lambda item: item[1], reverse=True)
    return heaviest, packages


def _deployed_copy() -> Path:
    """The layer's klineo/ and functions/ as ``make build`` ships them: fresh copies, botocore data
    trimmed, precompiled."""
    root = Path(tempfile.mkdtemp(prefix="klineo-cold-start-"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(LAYER_PATH / "klineo", root / "layer" / "klineo", ignore=ignore)
    shutil.copytree(REPO_ROOT / "functions", root / "code" / "functions", ignore=ignore)
    trim_botocore_data(root / "layer")
    precompile(root)
    return root


def trim_botocore_data(layer_root: Path) -> None:
    """What ``make build`` writes into the layer: botocore's data cut to our services, from this botocore."""
    subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "klineo.store.botocore_data", str(layer_root)],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(layer_root)},
    )


def precompile(root: Path) -> None:
    """What ``make build`` does to the build folder: unchecked-hash bytecode, with this interpreter."""
    subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
         str(root)],
        check=True,
        capture_output=True,
    )


def _as_deployed(subject: Subject, root: Path) -> Subject:
    env = dict(subject.env)
    if subject.kind == "layer":
        env["PYTHONPATH"] = str(root / "layer")
    else:
        env["PYTHONPATH"] = os.pathsep.join([str(root / "layer"), str(root / "code")])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return Subject(
        name=subject.name,
        kind=subject.kind,
        import_code=subject.import_code,
        build_code=subject.build_code,
        env=env,
        target_ms=subject.target_ms,
        mode="as deployed",
        available=subject.available,
        why_unavailable=subject.why_unavailable,
    )


def run(
    runs: int = 5,
    functions: Sequence[str] | None = None,
    peers: bool = True,
    modes: Sequence[str] = ("as deployed", "with pyc"),
    profile: bool = True,
    report: Report | None = None,
    clock: str = "wall",
    only_peers: Sequence[str] | None = None,
    reference_samples: int = REFERENCE_SAMPLES,
) -> list[Subject]:
    """Measure everything and print the table and verdicts into `report`; returns the subjects."""
    ours = [layer_subject(), *function_subjects(functions)]
    subjects: list[Subject] = []
    deployed_root = _deployed_copy() if "as deployed" in modes else None
    try:
        for subject in ours:
            if "as deployed" in modes:
                subjects.append(_as_deployed(subject, deployed_root))
            if "with pyc" in modes:
                subjects.append(subject)
        if peers:
            subjects += [
                s for s in peer_subjects() if not only_peers or s.kind != "peer" or s.name in only_peers
            ]
        measure(subjects, runs, clock, reference_samples)
        if report is not None and clock != "wall":
            report.line(f"   clock: {clock} (each child's CPU time, user + system; not elapsed time)")
        if report is not None:
            _report(report, subjects, runs, profile)
    finally:
        if deployed_root is not None:
            shutil.rmtree(deployed_root, ignore_errors=True)
    return subjects


def _fmt(values: Sequence[float]) -> str:
    return f"{median(values):7.1f}" if values else "      -"


def _report(report: Report, subjects: list[Subject], runs: int, profile: bool) -> None:
    rows = []
    for s in subjects:
        if not s.available:
            rows.append([s.label, "-", "-", "-", "-", f"skipped: {s.why_unavailable}"])
        elif s.error:
            rows.append([s.label, "-", "-", "-", "-", f"error: {s.error}"])
        else:
            totals = s.totals
            reference = PEER_REFERENCE_MS.get(s.name)
            remark = f"ref ≈ {reference} ms" if reference else ""
            if s.target_ms is not None:
                remark = f"target ≤ {s.target_ms:.0f} ms: {'ok' if median(totals) <= s.target_ms else 'OVER'}"
            rows.append(
                [
                    s.label,
                    _fmt(s.import_ms),
                    _fmt(s.build_ms),
                    _fmt(totals),
                    f"{min(totals):7.1f}-{max(totals):.1f}",
                    remark,
                ]
            )
        report.figure(
            s.label,
            {
                "import_ms": s.import_ms,
                "build_ms": s.build_ms,
                "error": s.error,
                "skipped": s.why_unavailable,
            },
        )
    report.line(f"   median of {runs} rounds, a fresh process per subject per round ({REFERENCE_PEER}: "
                f"several per round, see below; 1 warm-up round discarded), milliseconds")
    report.table(["subject", "import", "clients", "total", "min-max", ""], rows)

    for mode in ("as deployed", "with pyc"):
        layer = [s for s in subjects if s.kind == "layer" and s.mode == mode]
        funcs = [s for s in subjects if s.kind == "function" and s.mode == mode]
        if not layer and not funcs:
            continue
        for s in layer:
            measured = [v for v in [median(s.totals)] if s.totals]
            report.target(
                f"klineo.binance import + client [{mode}]",
                f"≤ {LAYER_TARGET_MS:.0f} ms",
                f"{measured[0]:.1f} ms" if measured else "not measured",
                (measured[0] <= LAYER_TARGET_MS) if measured else None,
                s.why_unavailable or s.error,
            )
        measured_funcs = [s for s in funcs if s.totals]
        missing = [s.name for s in funcs if not s.totals]
        if funcs:
            if measured_funcs:
                worst = max(measured_funcs, key=lambda s: median(s.totals))
                ok = all(median(s.totals) <= FUNCTION_TARGET_MS for s in measured_funcs)
                medians = [median(s.totals) for s in measured_funcs]
                fastest_worst = max(min(s.totals) for s in measured_funcs)
                detail = (
                    f"{len(measured_funcs)}/{len(funcs)} functions measured; median over functions "
                    f"{median(medians):.0f} ms; over {FUNCTION_TARGET_MS:.0f} ms: "
                    f"{sum(m > FUNCTION_TARGET_MS for m in medians)}; worst function's best run "
                    f"{fastest_worst:.0f} ms"
                )
                if missing:
                    detail += f"; not measured: {', '.join(missing)}"
                report.target(
                    f"function import + clients, worst [{mode}]",
                    f"≤ {FUNCTION_TARGET_MS:.0f} ms",
                    f"{median(worst.totals):.1f} ms ({worst.name})",
                    ok if not missing else (None if ok else False),
                    detail,
                )
            else:
                report.target(
                    f"function import + clients, worst [{mode}]",
                    f"≤ {FUNCTION_TARGET_MS:.0f} ms",
                    "not measured",
                    None,
                    "no function module exists yet",
                )

    _report_ccxt_ratio(report, subjects)

    peers = {s.name: median(s.totals) for s in subjects if s.kind == "peer" and s.totals}
    layer_deployed = next((s for s in subjects if s.kind == "layer" and s.totals), None)
    if peers and layer_deployed is not None:
        ours = median(layer_deployed.totals)
        fastest = min(peers, key=peers.get)
        report.target(
            f"klineo.binance vs peers [{layer_deployed.mode}]",
            "faster than every peer",
            f"{ours:.1f} ms vs fastest peer {fastest} {peers[fastest]:.1f} ms",
            ours < peers[fastest],
        )

    if profile:
        over = [
            s for s in subjects if s.totals and s.target_ms is not None and median(s.totals) > s.target_ms
        ]
        over.sort(key=lambda s: median(s.totals) - (s.target_ms or 0), reverse=True)
        profiled: set[str] = set()
        for s in over:
            if s.kind in profiled:
                continue
            profiled.add(s.kind)
            report.line(
                f"-- where {s.label} spends its import time (one -X importtime run, which adds overhead)"
            )
            try:
                heaviest, packages = import_profile(s)
            except (RuntimeError, subprocess.TimeoutExpired) as error:
                report.line(f"   profile failed: {error}")
                continue
            report.line(
                "   self ms by top-level package: " + ", ".join(f"{p} {ms:.0f}" for p, ms in packages[:10])
            )
            report.line("   heaviest imports, cumulative / self ms:")
            for cumulative, own, module in heaviest:
                report.line(f"   {cumulative:8.1f} {own:7.1f}  {module}")


def per_round_ratios(values_by_round: Mapping[int, Sequence[float]],
                     reference_by_round: Mapping[int, Sequence[float]]) -> list[float]:
    """For each round both were measured in: median of the values over median of the reference."""
    ratios = []
    for round_number in sorted(values_by_round):
        reference = median(reference_by_round.get(round_number, ()))
        if values_by_round[round_number] and reference > 0:
            ratios.append(median(values_by_round[round_number]) / reference)
    return ratios


@dataclass(frozen=True)
class RatioSummary:
    """A function's import + clients over ccxt's import, one ratio per round, judged by their median."""

    ratios: tuple[float, ...]
    target: float = CCXT_RATIO_TARGET

    @property
    def median(self) -> float:
        """The median of the per-round ratios: what the verdict reads."""
        return median(self.ratios)

    @property
    def spread(self) -> tuple[float, float]:
        """The lowest and highest per-round ratio."""
        return (min(self.ratios), max(self.ratios)) if self.ratios else (0.0, 0.0)

    @property
    def rounds_over(self) -> int:
        """How many rounds' ratio was over the target."""
        return sum(ratio > self.target for ratio in self.ratios)

    @property
    def ok(self) -> bool:
        """Measured, and the median ratio is at most the target."""
        return bool(self.ratios) and self.median <= self.target


def ccxt_ratios(subjects: Sequence[Subject]) -> dict[str, dict[str, RatioSummary]]:
    """mode -> function -> its per-round ratios of import + clients over ccxt's import, from one run."""
    ccxt = next((s for s in subjects if s.name == REFERENCE_PEER and s.import_ms), None)
    if ccxt is None:
        return {}
    reference = ccxt.by_round(ccxt.import_ms)
    ratios: dict[str, dict[str, RatioSummary]] = {}
    for s in subjects:
        if s.kind == "function" and s.totals:
            summary = RatioSummary(tuple(per_round_ratios(s.by_round(s.totals), reference)))
            if summary.ratios:
                ratios.setdefault(s.mode, {})[s.name] = summary
    return ratios


def _report_ccxt_ratio(report: Report, subjects: Sequence[Subject]) -> None:
    """Per function: median, spread and rounds over of its per-round ratio to ccxt; one verdict per mode."""
    ratios = ccxt_ratios(subjects)
    ccxt = next((s for s in subjects if s.name == REFERENCE_PEER), None)
    if not ratios or ccxt is None:
        why = (ccxt.why_unavailable or ccxt.error) if ccxt is not None else "peers not measured"
        report.target("function import + clients / ccxt import (each function)",
                      f"≤ {CCXT_RATIO_TARGET}x", "not measured", None, why or "no function measured")
        return
    round_medians = [median(values) for values in ccxt.by_round(ccxt.import_ms).values()]
    reference = (f"ccxt import {median(ccxt.import_ms):.1f} ms, median of {len(ccxt.import_ms)} samples "
                 f"over {len(round_medians)} rounds; its round medians {min(round_medians):.0f}-"
                 f"{max(round_medians):.0f} ms")
    report.line("-- function import + clients / ccxt import of the same round, "
                f"target ≤ {CCXT_RATIO_TARGET}x")
    report.line(f"   median of the per-round ratios; spread: lowest-highest round; {reference}")
    for mode, by_function in ratios.items():
        ranked = sorted(by_function.items(), key=lambda item: -item[1].median)
        rows = [[name, f"{r.median:.2f}x", f"{r.spread[0]:.2f}-{r.spread[1]:.2f}x",
                 f"{r.rounds_over}/{len(r.ratios)}", "ok" if r.ok else "OVER"] for name, r in ranked]
        report.line(f"   [{mode}]")
        report.table(["function", "ratio", "spread", "rounds over", f"≤ {CCXT_RATIO_TARGET}x"], rows)
        worst_name, worst = ranked[0]
        over = sum(not r.ok for r in by_function.values())
        report.target(
            f"function import + clients / ccxt import, worst [{mode}]",
            f"≤ {CCXT_RATIO_TARGET}x every function (median of per-round ratios)",
            f"{worst.median:.2f}x ({worst_name}, rounds {worst.spread[0]:.2f}-{worst.spread[1]:.2f}x)",
            over == 0,
            f"{len(by_function)} functions; over the target: {over}; median over functions "
            f"{median([r.median for r in by_function.values()]):.2f}x; {reference}",
        )


def main(argv: list[str] | None = None) -> int:
    """CLI: python -m bench.cold_start [--runs N] [--function NAME ...] [--no-peers] [--json PATH]."""
    parser = argparse.ArgumentParser(prog="python -m bench.cold_start", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured rounds (after 1 warm-up round)")
    parser.add_argument(
        "--function", action="append", dest="functions", help="only this function (repeatable)"
    )
    parser.add_argument("--no-peers", action="store_true", help="skip the peer clients")
    parser.add_argument(
        "--mode",
        action="append",
        choices=["as deployed", "with pyc"],
        help="measure our code only this way (repeatable; default both)",
    )
    parser.add_argument("--clock", choices=CLOCKS, default="wall",
                        help="wall: elapsed time; cpu: the child's CPU time (for a shared machine)")
    parser.add_argument("--peer", action="append", dest="peers", help="only this peer (repeatable: ccxt)")
    parser.add_argument("--reference-samples", type=int, default=REFERENCE_SAMPLES,
                        help=f"ccxt imports per round, spread through it (default {REFERENCE_SAMPLES})")
    parser.add_argument("--no-profile", action="store_true", help="no -X importtime run for a missed target")
    parser.add_argument("--json", help="also write the results as JSON to this path")
    args = parser.parse_args(argv)
    shown = [a for a in (argv if argv is not None else sys.argv[1:])]
    json_index = shown.index("--json") if "--json" in shown else -1
    if json_index >= 0:
        del shown[json_index : json_index + 2]
    report = Report(
        "cold_start",
        "fresh-process import + client construction of every function, the Binance layer and peer clients",
        module="bench.cold_start",
        argv=shown,
    )
    run(
        runs=args.runs,
        functions=args.functions,
        peers=not args.no_peers,
        modes=tuple(args.mode or ("as deployed", "with pyc")),
        profile=not args.no_profile,
        report=report,
        clock=args.clock,
        only_peers=args.peers,
        reference_samples=args.reference_samples,
    )
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
