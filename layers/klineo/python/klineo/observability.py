"""Logger, tracer and metrics, made once per container and shared by every module.

The service name and metrics namespace default to the values template.yaml sets, so a module
imported before the environment is in place (a test collector, a local tool) still emits metrics
under the namespace the alarms watch instead of failing to flush them.

Hot paths (the Binance client counts every call) use ``tally`` instead of ``metrics.add_metric``:
a plain dict update per call, folded into the Powertools metric set once, when the invocation's
``@metrics.log_metrics`` flushes (or whenever ``tally.drain()`` is called). Counts are summed and
gauges keep their maximum, so the Sum and Maximum statistics the dashboard and alarms read are the
same as with one ``add_metric`` per call, for a fraction of the cost.

The same goes for a warning that can repeat per call (a failed Binance call): ``tally.occurrence``
counts it in memory, and the flush writes one log line per distinct occurrence (its fields, with
``count``, ``first_at`` and ``last_at``). ``@metrics.log_metrics`` flushes in a ``finally``, so the
line is in the invocation's logs when the handler raises too; the runner's and reconciler's
handlers carry the same decorator.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from klineo import end_init_pause
from klineo.snapstart import register_hooks as register_snapstart_hooks

__all__ = [
    "METRICS_NAMESPACE",
    "SERVICE_NAME",
    "Tally",
    "finish_init",
    "logger",
    "metrics",
    "tally",
    "trace_botocore",
    "trace_requests",
    "tracer",
]

SERVICE_NAME = os.environ.get("POWERTOOLS_SERVICE_NAME") or "klineo"
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Klineo"


class Tally:
    """Counters (summed), gauges (maximum) and repeated log lines kept in memory until the next flush."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, float] = {}
        self._maxima: dict[str, tuple[float, str]] = {}
        # (message, fields) -> [count, first time, last time, latest values]
        self._occurrences: dict[tuple[str, tuple[tuple[str, Any], ...]], list[Any]] = {}

    def count(self, name: str, value: float = 1.0) -> None:
        """Add ``value`` to the counter ``name`` (unit Count)."""
        with self._lock:
            self._counts[name] = self._counts.get(name, 0.0) + value

    def gauge(self, name: str, value: float, unit: str = "Count") -> None:
        """Keep the largest ``value`` seen for ``name`` since the last flush."""
        with self._lock:
            current = self._maxima.get(name)
            if current is None or value > current[0]:
                self._maxima[name] = (value, unit)

    def occurrence(self, message: str, fields: Mapping[str, Any], **latest: Any) -> None:
        """Count one occurrence of the warning ``message`` with ``fields`` (hashable values).

        At the next drain, one warning line per distinct (message, fields) carries the fields,
        ``count``, ``first_at``, ``last_at`` and the ``latest`` values of its last occurrence.
        """
        now = time.time()
        key = (message, tuple(fields.items()))
        with self._lock:
            seen = self._occurrences.get(key)
            if seen is None:
                self._occurrences[key] = [1, now, now, latest]
            else:
                seen[0] += 1
                seen[2], seen[3] = now, latest

    def drain(self, target: AmazonCloudWatchEMFProvider | Metrics | None = None) -> None:
        """Log each pending occurrence once, hand every pending value to Powertools, start afresh."""
        with self._lock:
            counts, maxima, occurrences = self._counts, self._maxima, self._occurrences
            self._counts, self._maxima, self._occurrences = {}, {}, {}
        for (message, fields), (count, first, last, latest) in occurrences.items():
            logger.warning(message, extra={**dict(fields), **latest, "count": count,
                                           "first_at": _iso(first), "last_at": _iso(last)})
        sink = target if target is not None else metrics
        for name, value in counts.items():
            sink.add_metric(name=name, unit="Count", value=value)
        for name, (value, unit) in maxima.items():
            sink.add_metric(name=name, unit=unit, value=value)

    def clear(self) -> None:
        """Forget every pending value."""
        with self._lock:
            self._counts, self._maxima, self._occurrences = {}, {}, {}


def _iso(epoch_s: float) -> str:
    """UTC time with milliseconds, as the logger's own timestamp reads."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s)) + f".{int(epoch_s * 1000) % 1000:03d}Z"


tally = Tally()


class _TallyingProvider(AmazonCloudWatchEMFProvider):
    """The EMF provider, folding the tally in before each flush and clearing it with the metrics."""

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        tally.drain(self)
        super().flush_metrics(raise_on_empty_metrics=raise_on_empty_metrics)

    def clear_metrics(self) -> None:
        tally.clear()
        super().clear_metrics()


class _Formatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, without trying to JSON-decode a plain-text message.

    Powertools attempts ``json.loads`` on every string message (a failed parse raises and is
    caught, ~20 µs a line); our messages are fixed English phrases, so only a message that could be
    JSON (starting with ``{`` or ``[``) goes through that path. The output is the same.
    """

    def _extract_log_message(self, log_record: logging.LogRecord) -> Any:
        message = log_record.msg
        if isinstance(message, str) and not log_record.args and message[:1] not in ("{", "["):
            return message
        return super()._extract_log_message(log_record)


# Libraries whose own log lines carry what must never be logged, whatever level the runtime's root
# logger is at: urllib3 writes the full request URL, a signed query string with its signature, in a
# WARNING when an answer's headers are malformed ("Failed to parse headers (url=...)") and in every
# DEBUG line; botocore's DEBUG lines hold request and response bodies (CreateSecret, GetSecretValue:
# the API secret). urllib3 logs nothing at ERROR; botocore's warnings hold no body.
_QUIETED_LIBRARY_LOGGERS = {"urllib3": logging.ERROR, "botocore": logging.WARNING, "boto3": logging.WARNING}


def _quiet_library_loggers() -> None:
    """Raise the named libraries' loggers to levels at which they log no URL and no body."""
    for name, level in _QUIETED_LIBRARY_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


_quiet_library_loggers()

logger = Logger(service=SERVICE_NAME, logger_formatter=_Formatter())
# Nothing is patched at import: each traced library is patched where it is first loaded, botocore
# when the first AWS client is made (``trace_botocore``, from klineo.store.aws) and requests when
# the Binance client loads it (``trace_requests``). So the Binance part of the layer does not
# import botocore (X-Ray's botocore patch imports ``botocore.client``, about 50 ms of a cold start),
# functions that never call Binance do not import requests, and X-Ray's other patches (sqlite3,
# httplib, ...) are not probed.
tracer = Tracer(service=SERVICE_NAME, auto_patch=False)
# The provider shares Metrics' class-level sets, as the default provider does, so every Metrics
# instance (and metrics.metric_set) sees the same values.
metrics = Metrics(
    service=SERVICE_NAME,
    namespace=METRICS_NAMESPACE,
    provider=_TallyingProvider(
        namespace=METRICS_NAMESPACE,
        service=SERVICE_NAME,
        metric_set=Metrics._metrics,
        dimension_set=Metrics._dimensions,
        metadata_set=Metrics._metadata,
        default_dimensions=Metrics._default_dimensions,
    ),
)


def trace_botocore() -> None:
    """Patch botocore for X-Ray (a no-op when tracing is off, and when already patched); called where
    the AWS clients are made, before the first one."""
    tracer.patch(modules=["botocore"])


def trace_requests() -> None:
    """Patch requests for X-Ray (a no-op when tracing is off); called once, where requests is loaded."""
    tracer.patch(modules=["requests"])


# Every function imports this module, so its SnapStart hooks are registered in every function.
register_snapstart_hooks()


_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def finish_init(handler: _Handler) -> _Handler:
    """Outermost decorator of every ``lambda_handler``: the function's init ends here, and with it the
    garbage-collection pause of a Lambda init (``klineo.end_init_pause``). Returns ``handler`` as is."""
    end_init_pause()
    return handler
