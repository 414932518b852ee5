"""Runs the template's functions in this process, one invocation at a time, as Lambda would run them.

Each function is imported as its own package (``functions.<folder>.app``), so no two ``app.py``
collide, and called with a Lambda-like context (name, ARN, memory, request id, remaining time).
Invocations are serialised by one lock: a Lambda container handles one event at a time, and the
functions share the layer's module-level state (logger, metrics, cached clients) in this process.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from local.template import FunctionSpec, Resolver, function_specs

__all__ = ["FunctionError", "LambdaContext", "LambdaRuntime", "console", "without_metric_lines"]

console = logging.getLogger("local")
# Powertools prints each metric flush as one EMF JSON object whose first key is "_aws".
_METRIC_LINE_PREFIX = '{"_aws":'


@contextlib.contextmanager
def without_metric_lines() -> Iterator[None]:
    """Hold back what is printed meanwhile, then pass on every line except the EMF metric lines.

    Only ``print`` goes through ``sys.stdout`` at call time; the functions' log lines keep the
    stream their logger was made with, so they are neither held nor dropped.
    """
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            yield
    finally:
        lines = captured.getvalue().splitlines(keepends=True)
        sys.stdout.write("".join(line for line in lines if not line.startswith(_METRIC_LINE_PREFIX)))


class FunctionError(Exception):
    """A function raised instead of returning; Lambda would report an unhandled error."""

    def __init__(self, logical_id: str, error: BaseException):
        super().__init__(f"{logical_id} raised {type(error).__name__}")
        self.logical_id = logical_id
        self.error = error


@dataclass
class LambdaContext:
    """The attributes and method of the Python runtime's context object that code reads."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_s: float
    log_group_name: str
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity: Any = None
    client_context: Any = None
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's configured timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LambdaRuntime:
    """Imports and invokes the template's functions by logical id."""

    def __init__(
        self, resolver: Resolver, specs: list[FunctionSpec] | None = None, *, show_metrics: bool = True
    ):
        self._resolver = resolver
        self._show_metrics = show_metrics
        self.specs = {spec.logical_id: spec for spec in (specs or function_specs(resolver.template))}
        self._globals = resolver.template.get("Globals", {}).get("Function", {})
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}
        self._lock = threading.RLock()

    def _setting(self, spec: FunctionSpec, name: str, default: Any) -> Any:
        return self._resolver.resolve(spec.properties.get(name, self._globals.get(name, default)))

    def handler(self, logical_id: str) -> Callable[[Any, Any], Any]:
        """The function's handler, importing ``functions.<folder>.app`` on first use."""
        with self._lock:
            if logical_id not in self._handlers:
                spec = self.specs[logical_id]
                module = importlib.import_module(spec.module)
                self._handlers[logical_id] = getattr(module, spec.handler_name)
            return self._handlers[logical_id]

    def preload(self) -> dict[str, str]:
        """Import every function now; returns logical id -> error text for those that fail to import."""
        failures = {}
        for logical_id in self.specs:
            try:
                self.handler(logical_id)
            except Exception as error:  # noqa: BLE001 - reported on the console, the stack still starts
                failures[logical_id] = f"{type(error).__name__}: {error}"
        return failures

    def context_for(self, logical_id: str) -> LambdaContext:
        """A fresh context for one invocation of ``logical_id``."""
        spec = self.specs[logical_id]
        name = self._resolver.refs.get(logical_id, logical_id)
        log_config = self._setting(spec, "LoggingConfig", {}) or {}
        return LambdaContext(
            function_name=name,
            invoked_function_arn=f"arn:aws:lambda:{self._resolver.region}:{self._resolver.account_id}:function:{name}",
            memory_limit_in_mb=int(self._setting(spec, "MemorySize", 128)),
            timeout_s=float(self._setting(spec, "Timeout", 3)),
            log_group_name=str(log_config.get("LogGroup", f"/aws/lambda/{name}")),
        )

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Call the function with ``event``; raises FunctionError (traceback on the console) if it raises."""
        handler = self.handler(logical_id)
        with self._lock:
            context = self.context_for(logical_id)
            previous = {key: os.environ.get(key) for key in _RUNTIME_VARIABLES}
            os.environ.update(
                {
                    "AWS_LAMBDA_FUNCTION_NAME": context.function_name,
                    "AWS_LAMBDA_FUNCTION_VERSION": context.function_version,
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(context.memory_limit_in_mb),
                    "AWS_LAMBDA_LOG_GROUP_NAME": context.log_group_name,
                    "AWS_LAMBDA_LOG_STREAM_NAME": context.log_stream_name,
                }
            )
            started = time.monotonic()
            output = contextlib.nullcontext() if self._show_metrics else without_metric_lines()
            try:
                with output:
                    return handler(event, context)
            except Exception as error:
                console.error(
                    "%s crashed (request %s):\n%s",
                    logical_id,
                    context.aws_request_id,
                    "".join(traceback.format_exception(error)).rstrip(),
                )
                raise FunctionError(logical_id, error) from error
            finally:
                elapsed = time.monotonic() - started
                if elapsed > context.timeout_s:
                    console.warning(
                        "%s took %.1f s; Lambda would have stopped it after its %.0f s timeout",
                        logical_id,
                        elapsed,
                        context.timeout_s,
                    )
                for key, value in previous.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value


_RUNTIME_VARIABLES = (
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
)
