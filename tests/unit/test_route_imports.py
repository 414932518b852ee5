"""Cold start: a function's module loads its own route's models and services, not its neighbours'.

Each class statement and each module costs every cold start of every function that imports it
(issue 16 item 3), so model and service modules are split by route. These checks import a
function in a fresh interpreter, as Lambda does, and name what must stay unloaded.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# function -> modules its import must not load (another route's models or the order path)
NOT_LOADED = {
    "connection_list": ("klineo.models.candles", "klineo.models.balances", "klineo.models.kill_switch",
                        "klineo.models.futures", "klineo.models.strategy_requests"),
    "kill_switch_get": ("klineo.models.common", "klineo.models.candles", "klineo.models.futures"),
    "strategy_get": ("klineo.models.strategy_requests", "klineo.store.connections", "klineo.runner.pnl"),
    # creating answers with the new strategy only: no runs or events, nor their models
    "strategy_create": ("klineo.store.runs", "klineo.store.events", "klineo.services.strategies",
                        "klineo.models.strategy_runs", "klineo.services.strategy_updates"),
    "strategy_list": ("klineo.models.strategy_requests", "klineo.models.common", "klineo.services.futures",
                      "klineo.services.strategy_changes", "klineo.store.connections", "klineo.store.secrets"),
    "strategy_events": ("klineo.services.strategy_changes", "klineo.store.connections"),
    # the worker: the protective (SL/TP) algo-order path loads on a live entry with stops only
    "strategy_worker": ("klineo.services.strategy_protection", "klineo.services.algo_orders",
                        "klineo.services.protective", "klineo.models.futures", "klineo.api",
                        "klineo.services.futures_account", "klineo.models.futures_account",
                        "klineo.store.order_attempts",  # a refused attempt's store: on a refusal only
                        "klineo.runner.paper_turn"),  # a paper turn's steps: on a paper turn only
    # an order applies the symbol's settings (services.symbol_settings), not the futures account routes'
    "futures_order": ("klineo.services.futures_account", "klineo.models.futures_account",
                      "klineo.models.common", "klineo.models.strategy_requests",
                      "klineo.services.order_check", "klineo.models.order_check",
                      # a refused attempt's store, and the history and strategy stores it brings: on a
                      # refusal only
                      "klineo.store.order_attempts", "klineo.store.order_history", "klineo.store.strategies",
                      # re-fitting the stops a reduction left: on a reducing order only
                      "klineo.services.protective_resize", "klineo.services.strategy_protection"),
    # closing reads the position's rows only: not the positions view, its models and foreign fills
    "futures_position_close": ("klineo.services.positions", "klineo.models.positions",
                               "klineo.services.reconcile", "klineo.store.order_history"),
    # the positions view reads Binance and our records: not the reconciler that records the foreign
    # fills it shows, nor the order path that reconciler brings
    "futures_positions": ("klineo.services.reconcile", "klineo.services.orders",
                          "klineo.services.algo_orders", "klineo.services.risk"),
    # listing open orders applies the sibling rule only: not the protective orders' placing half (its
    # request models, claim transaction and risk gate)
    "futures_open_orders": ("klineo.services.protective", "klineo.models.futures", "klineo.store.order_claim",
                            "klineo.services.risk"),
    # a symbol's rules are public data: not the order path
    "futures_symbol_rules": ("klineo.services.futures", "klineo.models.futures", "klineo.models.common"),
    "strategy_backtest_get": ("klineo.models.backtest_request", "klineo.models.strategy_requests"),
    "futures_disable": ("klineo.models.futures", "klineo.services.futures"),
    # the test of stored keys answers with the test's model only; enabling futures with its settings'
    "connection_test_stored": ("klineo.models.common", "klineo.services.connection_records",
                               "klineo.models.connection_settings", "klineo.models.futures"),
    "futures_enable": ("klineo.models.common", "klineo.models.connection_settings", "klineo.services.futures",
                       "klineo.models.futures"),
    "futures_order_cancel": ("klineo.services.futures", "klineo.models.strategy_requests"),
    # the attempts listing reads our records only: not the reconciler, nor the order path
    "futures_order_attempts": ("klineo.services.reconcile", "klineo.services.futures",
                               "klineo.models.futures"),
}

# what proves the import ran the layer: the API adapter, or for the SQS worker its runner
LOADED_MARKER = {"strategy_worker": "klineo.runner.worker"}


def _run_fresh(code: str, **extra_env: str) -> list:
    """Run ``code`` in a new interpreter with a function's settings; its last stdout line, as JSON."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": f"{REPO / 'layers/klineo/python'}{os.pathsep}{REPO}",
        # the settings a function's import checks (values never used: nothing is called)
        "AWS_DEFAULT_REGION": "ap-northeast-1", "CORS_ORIGIN": "http://localhost", "DATA_TABLE": "data",
        "SECRET_PREFIX": "klineo/test/", "POWERTOOLS_TRACE_DISABLED": "true", **extra_env,
    }
    done = subprocess.run(  # noqa: S603 - our own interpreter and fixed code
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _loaded_after_import(function: str) -> set[str]:
    """The klineo modules in sys.modules after ``import functions.<function>.app`` in a new process."""
    return set(_run_fresh(f"import sys, json, functions.{function}.app\n"
                          "print(json.dumps(sorted(m for m in sys.modules if m.startswith('klineo'))))"))


@pytest.mark.parametrize("function", sorted(NOT_LOADED))
def test_a_function_loads_only_its_own_routes_modules(function: str) -> None:
    """Importing the function leaves its neighbours' model and service modules unloaded."""
    loaded = _loaded_after_import(function)
    assert LOADED_MARKER.get(function, "klineo.api") in loaded  # the import really ran the layer
    assert loaded.isdisjoint(NOT_LOADED[function]), sorted(loaded & set(NOT_LOADED[function]))


@pytest.mark.parametrize("function", ["backtest_worker", "strategy_worker"])
def test_an_sqs_worker_leaves_powertools_parser_models_unloaded(function: str) -> None:
    """Powertools' batch utility loads its pydantic parser models (about 25 ms, unused here) when
    pydantic is imported before it: each worker imports the batch utility first."""
    code = f"import sys, json, functions.{function}.app\nprint(json.dumps(sorted(sys.modules)))"
    loaded = set(_run_fresh(code))
    assert "aws_lambda_powertools.utilities.batch" in loaded  # the import really ran the worker
    assert "aws_lambda_powertools.utilities.parser" not in loaded


_GC_STATE = ("import gc, json, klineo\n"
             "during = gc.isenabled()\n"
             "import functions.{function}.app\n"
             "print(json.dumps([during, gc.isenabled(), gc.get_freeze_count() > 0, gc.get_threshold()[0]]))")


@pytest.mark.parametrize("function", ["kill_switch_get", "strategy_worker"])
def test_a_lambda_init_pauses_garbage_collection_until_the_function_module_is_loaded(function: str) -> None:
    """In a Lambda runtime no collection runs during the imports; after them it is on, the init frozen,
    young passes at the warm threshold."""
    from klineo import WARM_GEN0_THRESHOLD

    during, after, frozen, young = _run_fresh(_GC_STATE.format(function=function),
                                              AWS_EXECUTION_ENV="AWS_Lambda_python3.13")
    assert (during, after, frozen, young) == (False, True, True, WARM_GEN0_THRESHOLD)


def test_outside_lambda_importing_the_layer_leaves_garbage_collection_alone() -> None:
    """Tests, the local stack and tools import the layer with collection untouched and nothing frozen."""
    default_young = _run_fresh("import gc, json\nprint(json.dumps(gc.get_threshold()[0]))")
    assert _run_fresh(_GC_STATE.format(function="kill_switch_get")) == [True, True, False, default_young]


_ALL_FUNCTIONS = sorted(app.parent.name for app in (REPO / "functions").glob("*/app.py"))
_DEFERRED_STATE = ("import sys, json\n"
                   "{imports}\n"
                   "print(json.dumps([type(sys.modules.get('asyncio')).__name__,"
                   " 'asyncio.base_events' in sys.modules]))")


def test_in_lambda_no_function_import_loads_asyncio() -> None:
    """In a Lambda runtime, importing every function leaves asyncio a stand-in: nothing at init uses it,
    so none of its modules are loaded (Powertools' AppSync resolver imports it)."""
    imports = "\n".join(f"import functions.{function}.app" for function in _ALL_FUNCTIONS)
    state = _run_fresh(_DEFERRED_STATE.format(imports=imports), AWS_EXECUTION_ENV="AWS_Lambda_python3.13")
    assert state == ["_ImportedOnFirstUse", False]


def test_in_lambda_the_asyncio_stand_in_works_as_asyncio_at_first_use() -> None:
    """Code that does use asyncio in a Lambda runtime gets the real module at its first attribute read:
    a coroutine runs, and later imports get the real module itself."""
    code = ("import sys, json, functions.kill_switch_get.app\n"
            "import asyncio\n"
            "async def answer():\n"
            "    await asyncio.sleep(0)\n"
            "    return 42\n"
            "ran = asyncio.run(answer())\n"
            "import asyncio as again\n"
            "print(json.dumps([ran, type(again).__name__, again.run is asyncio.run,"
            " 'asyncio.base_events' in sys.modules]))")
    assert _run_fresh(code, AWS_EXECUTION_ENV="AWS_Lambda_python3.13") == [42, "module", True, True]


def test_outside_lambda_asyncio_is_the_real_module() -> None:
    """Tests, the local stack and tools get asyncio as Python imports it: no stand-in."""
    state = _run_fresh(_DEFERRED_STATE.format(imports="import functions.kill_switch_get.app, asyncio"))
    assert state == ["module", True]


def test_every_function_module_ends_with_a_handler_decorated_by_finish_init() -> None:
    """Each app.py ends with ``lambda_handler`` whose outermost decorator is ``finish_init``: in a
    module that forgot it, collection would stay off for the container's life."""
    for app in sorted((REPO / "functions").glob("*/app.py")):
        last = ast.parse(app.read_text(encoding="utf-8")).body[-1]
        assert isinstance(last, ast.FunctionDef) and last.name == "lambda_handler", app
        outermost = last.decorator_list[0]
        assert isinstance(outermost, ast.Name) and outermost.id == "finish_init", app


def test_no_function_imports_powertools_before_the_layer() -> None:
    """Each app.py takes Powertools' names through klineo.api, so the layer's import (which pauses
    collection in Lambda) comes before Powertools' event handler is loaded."""
    for app in sorted((REPO / "functions").glob("*/app.py")):
        modules = [node.module or "" for node in ast.parse(app.read_text(encoding="utf-8")).body
                   if isinstance(node, ast.ImportFrom)]
        assert not any(m.startswith("aws_lambda_powertools") for m in modules), app
        assert next(m for m in modules if m != "typing").startswith("klineo."), app


# Tracing on, as under ``Tracing: Active`` (Powertools traces only inside a Lambda runtime).
_TRACED = {"POWERTOOLS_TRACE_DISABLED": "false", "LAMBDA_TASK_ROOT": "/var/task",
           "AWS_LAMBDA_FUNCTION_NAME": "klineo-test", "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13"}
_PATCHES = ("import sys, json\n"
            "{code}\n"
            "patched = [m.rsplit('.', 2)[-2] for m in sorted(sys.modules)"
            " if m.startswith('aws_xray_sdk.ext.') and m.endswith('.patch')]\n"
            "print(json.dumps(['botocore.client' in sys.modules, 'requests' in sys.modules, patched]))")


def test_the_binance_client_with_tracing_on_loads_neither_x_ray_nor_botocore() -> None:
    """With tracing on, the Binance part of the layer (import, a client, a failed call counted and
    logged) loads requests only: no X-Ray patch (requests' would not see ``Session.send``), no X-Ray
    SDK, no botocore client module (X-Ray's botocore patch waits for the first AWS client) and no
    Powertools."""
    code = ("import logging, klineo.binance\n"
            "from klineo.binance import BinanceClient, Environment, KlineoError, Market\n"
            "from klineo.telemetry import tally\n"
            "logging.basicConfig(level=logging.DEBUG)\n"
            "client = BinanceClient(Market.SPOT, Environment.PRODUCTION)\n"
            "closed = BinanceClient(Market.SPOT, Environment.PRODUCTION, base_url='http://127.0.0.1:9',\n"
            "                       max_retries=0, sleep=lambda s: None)\n"
            "try:\n"
            "    closed.public('GET', '/api/v3/ping')\n"
            "except KlineoError:\n"
            "    pass\n"
            "assert tally._counts, 'the failed call was counted'\n"
            "unwanted = ('aws_xray_sdk', 'aws_lambda_powertools')\n"
            "assert not [m for m in sys.modules if m.startswith(unwanted)]")
    assert _run_fresh(_PATCHES.format(code=code), **_TRACED) == [False, True, []]


def test_the_first_aws_client_with_tracing_on_is_traced_by_x_ray() -> None:
    """With tracing on, importing a function patches nothing; making its first AWS client patches
    botocore for X-Ray, once, so every AWS call of the container is traced."""
    code = ("import functions.kill_switch_get.app\n"
            "before = [m for m in sys.modules if m.startswith('aws_xray_sdk.ext.')]\n"
            "assert before == [], before\n"
            "from klineo.store import aws\n"
            "aws.dynamodb()\n"
            "import botocore.client, wrapt\n"
            "assert isinstance(botocore.client.BaseClient.__dict__['_make_api_call'], wrapt.ObjectProxy)\n"
            "aws.clear_clients()\n"  # as after a SnapStart restore: clients made again, wrapped once
            "aws.dynamodb()\n"
            "wrapper = botocore.client.BaseClient.__dict__['_make_api_call']\n"
            "assert not isinstance(wrapper.__wrapped__, wrapt.ObjectProxy)")
    assert _run_fresh(_PATCHES.format(code=code), **_TRACED) == [True, False, ["botocore"]]
