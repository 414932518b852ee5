"""The in-process stack of the AWS-call and reliability benchmarks: moto, Binance simulator, real handlers.

``local_stack()`` starts the simulator on 127.0.0.1, moto (in process) with every table of
template.yaml, sets each function's environment from the template and points every Binance base
URL at the simulator, all inside a patched ``os.environ`` that is restored on exit. The yielded
``Stack`` invokes ``functions.<name>.app.lambda_handler`` with the events under events/, and
creates connections through the real create and futures-enable routes.

``remote_stack()`` is the same stack with moto's server and the simulator in a child process
(``fakes_process``), reached over HTTP on 127.0.0.1 (``AWS_ENDPOINT_URL`` and the Binance base
URLs): this process then runs the functions only, as a Lambda container does (the per-kind runner
benchmark, ``bench.runner_kinds``, measures CPU in it). Its ``stack.sim`` reads and clears the
simulator's journal through the control routes.

``count_aws_calls()`` records every botocore API call made while it is active (any client, any
session): service, operation, table and whether the read was strongly consistent.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import os
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator
from typing import Any
from unittest import mock

__all__ = [
    "AwsCall",
    "LambdaContext",
    "RemoteSimulator",
    "Stack",
    "count_aws_calls",
    "fakes_process",
    "local_stack",
    "quiet_stdout",
    "remote_stack",
    "response_body",
]

REGION = "ap-northeast-1"
USER = "bench0000-0000-4000-8000-000000000001"


@dataclasses.dataclass(frozen=True)
class LambdaContext:
    """The attributes Powertools reads from a Lambda context."""

    function_name: str = "klineo-bench"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:ap-northeast-1:123456789012:function:klineo-bench"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    log_group_name: str = "/aws/lambda/klineo-bench"
    log_stream_name: str = "bench"
    remaining_ms: int = 29_000

    def get_remaining_time_in_millis(self) -> int:
        """A fixed budget, like a fresh invocation of the order function (Timeout 29 s)."""
        return self.remaining_ms


@dataclasses.dataclass(frozen=True)
class AwsCall:
    """One botocore API call."""

    service: str
    operation: str
    table: str = ""
    consistent: bool | None = None
    detail: str = ""

    def describe(self) -> str:
        """e.g. `dynamodb.BatchGetItem klineo-dev-data (ConsistentRead) 3 keys`."""
        parts = [f"{self.service}.{self.operation}"]
        if self.table:
            parts.append(self.table)
        if self.consistent:
            parts.append("(ConsistentRead)")
        if self.detail:
            parts.append(self.detail)
        return " ".join(parts)


def _describe_call(service: str, operation: str, params: dict[str, Any]) -> AwsCall:
    table, consistent, detail = params.get("TableName", ""), params.get("ConsistentRead"), ""
    if operation == "BatchGetItem":
        items = params.get("RequestItems", {})
        table = ",".join(items)
        consistent = all(v.get("ConsistentRead") for v in items.values()) if items else None
        detail = f"{sum(len(v.get('Keys', [])) for v in items.values())} keys"
    elif operation in ("PutItem", "UpdateItem", "DeleteItem", "GetItem"):
        key = params.get("Key") or params.get("Item") or {}
        for name in ("sk", "id", "pk"):
            value = key.get(name, {}).get("S") if isinstance(key.get(name), dict) else None
            if value:
                detail = f"{name}={value.split('#', 1)[0]}#…" if "#" in value else f"{name}=…"
                break
        if params.get("ConditionExpression"):
            detail += " (conditional)"
    elif operation == "TransactWriteItems":
        items = params.get("TransactItems", [])
        table = ",".join(sorted({op.get("TableName", "") for item in items for op in item.values()}))
        detail = " + ".join(next(iter(item)) for item in items)
    elif service == "secretsmanager":
        detail = "secret"
    return AwsCall(service, operation, table, consistent, detail.strip())


@contextlib.contextmanager
def count_aws_calls() -> Iterator[list[AwsCall]]:
    """Every botocore API call made inside the block, in order."""
    from botocore.client import BaseClient

    calls: list[AwsCall] = []
    original = BaseClient._make_api_call

    def counting(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        calls.append(_describe_call(self.meta.service_model.service_name, operation_name, api_params))
        return original(self, operation_name, api_params)

    with mock.patch.object(BaseClient, "_make_api_call", counting):
        yield calls


def response_body(response: dict[str, Any]) -> Any:
    """The JSON body of a Lambda proxy response (None when empty or not JSON)."""
    from tests.helpers import response_json

    try:
        return response_json(response)
    except ValueError:
        return None


@dataclasses.dataclass
class Stack:
    """Handles on the running stack."""

    sim: Any
    user: str = USER

    def invoke(self, function: str, event: dict[str, Any], **context: Any) -> dict[str, Any]:
        """functions.<function>.app.lambda_handler(event, context), as Lambda would call it."""
        module = importlib.import_module(f"functions.{function}.app")
        lambda_context = LambdaContext(function_name=function, aws_request_id=str(uuid.uuid4()), **context)
        return module.lambda_handler(copy.deepcopy(event), lambda_context)

    def event(
        self,
        name: str,
        *,
        body: Any = None,
        path: str | None = None,
        path_parameters: dict[str, str] | None = None,
        headers: dict[str, str | None] | None = None,
        query: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """events/<name>.json for this stack's user, with body, concrete path, headers and query changed."""
        from tests.helpers import load_event, with_body, with_user

        event = with_user(load_event(name), self.user)
        if body is not None:
            event = with_body(event, body)
            event["headers"].pop("content-length", None)
        if path is not None:
            stage = event["requestContext"].get("stage", "$default")
            raw = path if stage == "$default" else f"/{stage}{path}"
            event["rawPath"] = raw
            event["requestContext"]["http"]["path"] = raw
        if path_parameters is not None:
            event["pathParameters"] = dict(path_parameters)
        for name_, value in (headers or {}).items():
            if value is None:
                event["headers"].pop(name_, None)
            else:
                event["headers"][name_] = value
        if query is not None:
            event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
            event["queryStringParameters"] = dict(query) or None
        return event

    def clear_caches(self) -> None:
        """Forget every per-container cache (clients, secrets, exchangeInfo), as a new container would."""
        _clear_layer_caches()

    def create_connection(self, account_id: str = "futures-full", *, futures: bool = True) -> str:
        """A connection of this user on a demo account, through the create (and futures-enable) routes."""
        account = self.sim.account(account_id)
        secret = account.secret if account.key_type == "HMAC" else account.private_key_pem
        body = {
            "label": "bench",
            "environment": account.environment,
            "key_type": account.key_type.lower(),
            "api_key": account.api_key,
            "secret": secret,
        }
        response = self.invoke("connection_create", self.event("connection_create", body=body))
        if response["statusCode"] != 201:
            raise RuntimeError(f"connection_create answered {response['statusCode']}: {response.get('body')}")
        connection_id = response_body(response)["id"]
        if futures:
            path = f"/exchange-connections/{connection_id}/futures/enable"
            response = self.invoke(
                "futures_enable",
                self.event("futures_enable", path=path, path_parameters={"id": connection_id}),
            )
            if response["statusCode"] != 200:
                raise RuntimeError(
                    f"futures_enable answered {response['statusCode']}: {response.get('body')}"
                )
        return connection_id


def _clear_layer_caches() -> None:
    from klineo.binance import clear_all_caches
    from klineo.settings import get_settings
    from klineo.store import aws as aws_clients
    from klineo.store import secrets as secret_store
    from klineo.store.order_claim import forget_connection

    forget_connection()
    clear_all_caches()
    secret_store.clear_cache()
    get_settings.cache_clear()
    aws_clients.clear_clients()


@contextlib.contextmanager
def local_stack(**simulator_config: Any) -> Iterator[Stack]:
    """moto + simulator + the functions' environment; everything restored on exit."""
    from moto import mock_aws

    from local.aws_emulation import serialize_dynamodb
    from local.binance_sim import Simulator

    serialize_dynamodb()
    sim = Simulator(**simulator_config).start()
    try:
        with _functions_environment(sim.url, None, mock_aws):
            yield Stack(sim)
    finally:
        sim.stop()


@contextlib.contextmanager
def remote_stack(*, symbols: tuple[str, ...] = (), **simulator_config: Any) -> Iterator[Stack]:
    """As ``local_stack``, with moto's server and the simulator in a CHILD process, over HTTP on 127.0.0.1.

    This process then holds the functions only, as a Lambda container does: no moto tables in its
    heap, no fake's thread in its interpreter. ``symbols``: names the simulator lists besides its
    own (cloned from BNBUSDT's filters, ``bench.runner_tick.simulator_symbols``).
    ``stack.sim`` reads and clears the journal through the simulator's control routes.
    """
    with fakes_process(symbols, **simulator_config) as (moto_url, sim_url):
        with _functions_environment(sim_url, moto_url, contextlib.nullcontext):
            yield Stack(RemoteSimulator(sim_url))


@dataclasses.dataclass(frozen=True)
class RemoteSimulator:
    """The simulator of ``fakes_process``, reached through its control routes (``/__sim__/``)."""

    url: str

    def _control(self, method: str, path: str) -> dict[str, Any]:
        import requests

        answer = requests.request(method, f"{self.url}/__sim__/{path}", timeout=30)
        answer.raise_for_status()
        return answer.json() if answer.content else {}

    @property
    def journal(self) -> list[Any]:
        """Every Binance-API request so far, as the in-process simulator's ``JournalRecord``s."""
        from local.binance_sim import JournalRecord

        return [JournalRecord(**record) for record in self._control("GET", "journal")["records"]]

    def clear_journal(self) -> None:
        """Forget the journal's records."""
        self._control("DELETE", "journal")


def _serve_fakes(connection: Any, symbols: list[str], simulator_config: dict[str, Any]) -> None:
    """The child process of ``fakes_process``: moto's server and the simulator until told to stop."""
    from bench.runner_tick import simulator_symbols
    from local.aws_emulation import MotoServer
    from local.binance_sim import Simulator

    with simulator_symbols(symbols):
        moto = MotoServer(0)
        moto.start()
        sim = Simulator(**simulator_config).start()
        try:
            connection.send((moto.url, sim.url))
            connection.recv()  # anything (or the parent gone: EOFError) means stop
        except EOFError:
            pass
        finally:
            sim.stop()
            moto.stop()


@contextlib.contextmanager
def fakes_process(symbols: Iterable[str] = (), **simulator_config: Any) -> Iterator[tuple[str, str]]:
    """moto's server and the Binance simulator in a child process; (moto URL, simulator URL) while it runs."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of this one's heap
    parent, child = context.Pipe()
    process = context.Process(target=_serve_fakes, args=(child, list(symbols), simulator_config),
                              name="klineo-bench-fakes", daemon=True)
    process.start()
    try:
        deadline = time.monotonic() + 120
        while not parent.poll(0.1):
            if not process.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the fakes' process did not start (exit code {process.exitcode})")
        yield parent.recv()
    finally:
        with contextlib.suppress(OSError):
            parent.send("stop")
        process.join(15)
        if process.is_alive():
            process.terminate()
            process.join(5)


@contextlib.contextmanager
def _functions_environment(sim_url: str, aws_endpoint: str | None, aws_backend: Any) -> Iterator[None]:
    """The functions' environment on the simulator at ``sim_url`` and AWS at ``aws_endpoint``.

    ``aws_backend()`` is entered once the environment is set (``moto.mock_aws`` in process, or
    nothing when ``aws_endpoint`` is moto's server); the tables are created on it.
    """
    from local.binance_urls import binance_environment
    from local.template import (
        Resolver,
        function_environment,
        function_specs,
        load_template,
        table_definitions,
    )

    base_env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "Klineo",
        "POWERTOOLS_SERVICE_NAME": "klineo",
        "POWERTOOLS_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "ERROR"),
    }
    removed = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "BINANCE_HTTPS_PROXY")
    with mock.patch.dict(os.environ, base_env), aws_backend(), warnings.catch_warnings():
        # Powertools warns when an invocation published no metric; expected for some routes.
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        for name in removed:
            os.environ.pop(name, None)
        if aws_endpoint:
            os.environ["AWS_ENDPOINT_URL"] = aws_endpoint
        os.environ.update(binance_environment(sim_url))
        import boto3

        # Tables are made here rather than by local.aws_emulation.provision(), which also turns TTL
        # on: moto may then pay for expiry checks real DynamoDB does not (one runner_tick run was
        # 39 s with it, 28-34 s without; too few runs to be sure), and bench/results.md was
        # recorded with this setup.
        template = load_template()
        resolver = Resolver(template, parameters={"Stage": "dev"}, region=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        for logical, table in table_definitions(resolver).items():
            dynamodb.create_table(**table["create"])
            resolver.refs[logical] = table["create"]["TableName"]
            resolver.attributes[(logical, "Arn")] = (
                f"arn:aws:dynamodb:{REGION}:123456789012:table/{table['create']['TableName']}"
            )
        for logical, spec in template.get("Resources", {}).items():
            if spec.get("Type") == "AWS::SQS::Queue":
                name = resolver.resolve(spec.get("Properties", {}).get("QueueName", logical))
                resolver.refs[logical] = f"https://sqs.{REGION}.amazonaws.com/123456789012/{name}"
                resolver.attributes[(logical, "Arn")] = f"arn:aws:sqs:{REGION}:123456789012:{name}"
                resolver.attributes[(logical, "QueueName")] = name
        for spec in function_specs(template):
            with contextlib.suppress(KeyError):
                os.environ.update(function_environment(resolver, spec))
        _clear_layer_caches()
        from klineo.observability import logger, metrics

        saved_namespace, saved_level = metrics.provider.namespace, logger.level
        metrics.provider.namespace = "Klineo"
        logger.setLevel(base_env["POWERTOOLS_LOG_LEVEL"])
        try:
            yield
        finally:
            metrics.provider.namespace = saved_namespace
            logger.setLevel(saved_level)
            metrics.clear_metrics()
            _clear_layer_caches()


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send stdout (EMF metric lines) and the klineo logger's lines to /dev/null; their cost stays."""
    from klineo.observability import logger

    with open(os.devnull, "w", encoding="utf-8") as sink, contextlib.redirect_stdout(sink):
        handlers = [h for h in logger.handlers if hasattr(h, "stream")]
        saved = [h.stream for h in handlers]
        for handler in handlers:
            handler.stream = sink
        try:
            yield
        finally:
            for handler, stream in zip(handlers, saved, strict=True):
                handler.stream = stream
