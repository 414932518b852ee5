"""Runs the template's functions in this process, concurrently and within their timeouts, as Lambda would.

Each function is imported as its own package (``functions.<folder>.app``), so no two ``app.py``
collide, and called with a Lambda-like context (name, ARN, memory, request id, remaining time).

Concurrency: every invocation runs in its own thread, so two requests that arrive together race
inside the backend as they do on AWS, where each gets its own execution environment. Unlike
Lambda, the environments are not isolated: all invocations share this process's module state
(logger, metrics, cached clients, the rate limiter), like a pool of warm containers sharing one
memory. That state is built for concurrent use (locks around the caches); a test that needs two
cold starts must use two processes.

Timeouts: an invocation that outlives its function's ``Timeout`` (template, else Globals, else
3 s) is stopped as Lambda stops it: ``LambdaTimeout`` (a BaseException, so no ``except
Exception`` swallows it) is raised inside the function's thread, and the caller gets
``FunctionTimeout``. Python can raise it only between bytecodes: a function blocked in a socket
read stops when the read returns (every client here has a read timeout). A caller with a shorter
deadline of its own (API Gateway's integration timeout) gets ``CallerTimeout`` when it passes, and
the invocation goes on until it ends or reaches its own timeout, as on AWS.
"""

from __future__ import annotations

import contextlib
import ctypes
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

__all__ = [
    "CallerTimeout",
    "FunctionError",
    "FunctionTimeout",
    "LambdaContext",
    "LambdaRuntime",
    "LambdaTimeout",
    "console",
    "without_metric_lines",
]

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


class FunctionTimeout(FunctionError):
    """The function ran past its configured timeout and was stopped ("Task timed out")."""

    def __init__(self, logical_id: str, timeout_s: float):
        Exception.__init__(self, f"{logical_id} timed out after {timeout_s:g} s")
        self.logical_id = logical_id
        self.error = None
        self.timeout_s = timeout_s


class CallerTimeout(Exception):
    """The caller's own deadline passed first; the invocation goes on without anyone waiting for it."""

    def __init__(self, logical_id: str, timeout_s: float):
        super().__init__(f"nobody waited for {logical_id} after {timeout_s:g} s")
        self.logical_id = logical_id
        self.timeout_s = timeout_s


class LambdaTimeout(BaseException):
    """Raised inside a function's thread when its timeout passes: Lambda would stop it there."""


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
        self,
        resolver: Resolver,
        specs: list[FunctionSpec] | None = None,
        *,
        show_metrics: bool = True,
        timeouts_s: dict[str, float] | None = None,
    ):
        self._resolver = resolver
        self._show_metrics = show_metrics
        self.specs = {spec.logical_id: spec for spec in (specs or function_specs(resolver.template))}
        self._globals = resolver.template.get("Globals", {}).get("Function", {})
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}
        self._import_lock = threading.RLock()
        self._environment = _RuntimeVariables()
        self._stdout = _QuietStdout()
        # Test hook: logical id -> timeout in seconds, instead of the template's.
        self._timeouts_s = dict(timeouts_s or {})

    def _setting(self, spec: FunctionSpec, name: str, default: Any) -> Any:
        return self._resolver.resolve(spec.properties.get(name, self._globals.get(name, default)))

    def handler(self, logical_id: str) -> Callable[[Any, Any], Any]:
        """The function's handler, importing ``functions.<folder>.app`` on first use."""
        with self._import_lock:
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

    def timeout_s(self, logical_id: str) -> float:
        """The function's timeout: the test override, else the template's Timeout (Globals, else 3 s)."""
        if logical_id in self._timeouts_s:
            return self._timeouts_s[logical_id]
        return float(self._setting(self.specs[logical_id], "Timeout", 3))

    def context_for(self, logical_id: str) -> LambdaContext:
        """A fresh context for one invocation of ``logical_id``."""
        spec = self.specs[logical_id]
        name = self._resolver.refs.get(logical_id, logical_id)
        log_config = self._setting(spec, "LoggingConfig", {}) or {}
        return LambdaContext(
            function_name=name,
            invoked_function_arn=f"arn:aws:lambda:{self._resolver.region}:{self._resolver.account_id}:function:{name}",
            memory_limit_in_mb=int(self._setting(spec, "MemorySize", 128)),
            timeout_s=self.timeout_s(logical_id),
            log_group_name=str(log_config.get("LogGroup", f"/aws/lambda/{name}")),
        )

    def invoke(self, logical_id: str, event: Any, *, caller_timeout_s: float | None = None) -> Any:
        """Call the function with ``event`` in its own thread and wait for its answer.

        Raises FunctionError (traceback on the console) if it raises, FunctionTimeout if it runs past
        its timeout (it is stopped), CallerTimeout if ``caller_timeout_s`` passes first (it goes on).
        """
        handler = self.handler(logical_id)
        context = self.context_for(logical_id)
        invocation = _Invocation(logical_id, handler, event, context, self)
        invocation.start()
        waited = context.timeout_s if caller_timeout_s is None else min(caller_timeout_s, context.timeout_s)
        if invocation.done.wait(waited):
            return invocation.outcome()
        if caller_timeout_s is not None and caller_timeout_s < context.timeout_s:
            threading.Thread(target=invocation.stop_at_timeout, name="lambda-timeout", daemon=True).start()
            raise CallerTimeout(logical_id, caller_timeout_s)
        invocation.stop_at_timeout()
        raise FunctionTimeout(logical_id, context.timeout_s)


class _Invocation:
    """One call of a handler in its own thread, with what it returned or raised."""

    def __init__(self, logical_id: str, handler: Callable[[Any, Any], Any], event: Any,
                 context: LambdaContext, runtime: LambdaRuntime):
        self.logical_id, self.context, self.done = logical_id, context, threading.Event()
        self._handler, self._event, self._runtime = handler, event, runtime
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"lambda-{logical_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        runtime = self._runtime
        quiet = not runtime._show_metrics
        try:
            with runtime._environment.set_for(self.context), runtime._stdout.quiet_thread(quiet):
                self._call()
        except LambdaTimeout:  # arrived just after the handler returned: the caller has given up anyway
            pass
        finally:
            self.done.set()

    def _call(self) -> None:
        context = self.context
        try:
            self._result = self._handler(self._event, context)
        except LambdaTimeout:
            console.error("%s timed out after %.0f s (request %s): stopped, as Lambda stops it",
                          self.logical_id, context.timeout_s, context.aws_request_id)
        except BaseException as error:  # noqa: BLE001 - reported to the caller as Lambda would
            self._error = error
            console.error("%s crashed (request %s):\n%s", self.logical_id, context.aws_request_id,
                          "".join(traceback.format_exception(error)).rstrip())

    def outcome(self) -> Any:
        """The handler's answer, or FunctionError carrying what it raised."""
        if self._error is not None:
            raise FunctionError(self.logical_id, self._error) from self._error
        return self._result

    def stop_at_timeout(self) -> None:
        """Wait for the function's deadline; if it is still running then, raise LambdaTimeout inside it."""
        if self.done.wait(self.context.get_remaining_time_in_millis() / 1000):
            return
        ident = self._thread.ident
        if ident is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(LambdaTimeout))


class _RuntimeVariables:
    """Lambda's per-function variables, set while invocations run and removed after the last one.

    The process has one environment: while invocations of different functions overlap, the
    variables name the one that started last (nothing in the layer reads them during a call).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._saved: dict[str, str | None] = {}

    @contextlib.contextmanager
    def set_for(self, context: LambdaContext) -> Iterator[None]:
        with self._lock:
            if self._running == 0:
                self._saved = {key: os.environ.get(key) for key in _RUNTIME_VARIABLES}
            self._running += 1
            os.environ.update(
                {
                    "AWS_LAMBDA_FUNCTION_NAME": context.function_name,
                    "AWS_LAMBDA_FUNCTION_VERSION": context.function_version,
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(context.memory_limit_in_mb),
                    "AWS_LAMBDA_LOG_GROUP_NAME": context.log_group_name,
                    "AWS_LAMBDA_LOG_STREAM_NAME": context.log_stream_name,
                }
            )
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0:
                    for key, value in self._saved.items():
                        if value is None:
                            os.environ.pop(key, None)
                        else:
                            os.environ[key] = value


class _QuietStdout:
    """sys.stdout while quiet invocations run: their threads' EMF metric lines are dropped, whole lines
    of everything else pass on; other threads write straight through."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._quiet: dict[int, str] = {}  # thread id -> its unfinished line
        self._target: Any = None

    @contextlib.contextmanager
    def quiet_thread(self, quiet: bool) -> Iterator[None]:
        if not quiet:
            yield
            return
        ident = threading.get_ident()
        with self._lock:
            if not self._quiet:
                self._target = sys.stdout
                sys.stdout = self  # type: ignore[assignment]
            self._quiet[ident] = ""
        try:
            yield
        finally:
            with self._lock:
                rest = self._quiet.pop(ident, "")
                if rest and not rest.startswith(_METRIC_LINE_PREFIX):
                    self._target.write(rest)
                if not self._quiet and sys.stdout is self:
                    sys.stdout = self._target

    def write(self, text: str) -> int:
        ident = threading.get_ident()
        with self._lock:
            if ident not in self._quiet:
                return self._target.write(text)
            *lines, self._quiet[ident] = (self._quiet[ident] + text).split("\n")
            kept = "".join(f"{line}\n" for line in lines if not line.startswith(_METRIC_LINE_PREFIX))
            if kept:
                self._target.write(kept)
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


_RUNTIME_VARIABLES = (
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
)
