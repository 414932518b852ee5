"""Logger, tracer and metrics, made once per container and shared by every module.

The service name and metrics namespace default to the values template.yaml sets, so a module
imported before the environment is in place (a test collector, a local tool) still emits metrics
under the namespace the alarms watch instead of failing to flush them.

Hot paths (the Binance client counts every call) use ``tally`` (``klineo.telemetry``) instead of
``metrics.add_metric``: a plain dict update per call, folded into the Powertools metric set once,
when the invocation's ``@metrics.log_metrics`` flushes (or whenever ``tally.drain()`` is called).
This module connects the tally to the logger and metrics below. A warning that can repeat per call
(a failed Binance call) is counted by ``tally.occurrence``, and the flush writes one log line per
distinct occurrence. ``@metrics.log_metrics`` flushes in a ``finally``, so the line is in the
invocation's logs when the handler raises too; the runner's and reconciler's handlers carry the
same decorator. Loggers made by ``klineo.telemetry.child_logger`` are written by ``logger``'s
handler and formatter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from klineo import end_init_pause
from klineo.snapstart import register_hooks as register_snapstart_hooks
from klineo.telemetry import METRICS_NAMESPACE, SERVICE_NAME, Tally, tally

__all__ = [
    "METRICS_NAMESPACE",
    "SERVICE_NAME",
    "Tally",
    "finish_init",
    "logger",
    "metrics",
    "tally",
    "trace_botocore",
    "tracer",
]


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
# Nothing is patched at import: botocore is patched when the first AWS client is made
# (``trace_botocore``, from klineo.store.aws), so the Binance part of the layer does not import
# botocore (X-Ray's botocore patch imports ``botocore.client``, about 50 ms of a cold start), and
# X-Ray's other patches (sqlite3, httplib, ...) are not probed. requests is not patched at all (see
# ``klineo.binance.client._http``: the patch would not see this client's calls).
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




def _warn_occurrence(message: str, fields: dict[str, Any]) -> None:
    logger.warning(message, extra=fields)


tally.connect(_warn_occurrence, metrics)


def trace_botocore() -> None:
    """Patch botocore for X-Ray (a no-op when tracing is off, and when already patched); called where
    the AWS clients are made, before the first one."""
    tracer.patch(modules=["botocore"])


# Every function imports this module, so its SnapStart hooks are registered in every function.
register_snapstart_hooks()


_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def finish_init(handler: _Handler) -> _Handler:
    """Outermost decorator of every ``lambda_handler``: the function's init ends here, and with it the
    garbage-collection pause of a Lambda init (``klineo.end_init_pause``). Returns ``handler`` as is."""
    end_init_pause()
    return handler
