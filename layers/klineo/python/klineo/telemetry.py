"""What hot paths record without loading Powertools: the service's logger names and the tally.

The Binance client counts every call and logs at debug; the order service counts every outcome.
Both go through this module, which imports only the standard library, so the Binance part of the
layer (``import klineo.binance`` + a client + its calls) never loads Powertools or the X-Ray SDK
(issue 16 item 3: its import + client is measured on its own). ``klineo.observability``, which
every function imports, gives these their outputs:

- ``child_logger(name)`` is the standard logger ``<service>.<name>``: its records propagate to the
  Powertools logger ``<service>`` and are written by its handler and JSON formatter, at its level.
  Outside a function (no Powertools logger configured) they go wherever the root logger sends them.
- ``tally`` keeps counters (summed), gauges (maximum) and repeated warnings in memory: a dict update
  per call instead of a Powertools ``add_metric`` or a JSON log line. ``klineo.observability``
  connects it to its logger and metrics, and its metrics flush (``@metrics.log_metrics``, in a
  ``finally``) drains it: the Sum and Maximum statistics the dashboard and alarms read are the same
  as with one ``add_metric`` per call, and a warning that repeats per call is one line per distinct
  occurrence, with ``count``, ``first_at`` and ``last_at``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

__all__ = ["METRICS_NAMESPACE", "SERVICE_NAME", "MetricSink", "Tally", "child_logger", "tally"]

SERVICE_NAME = os.environ.get("POWERTOOLS_SERVICE_NAME") or "klineo"
METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "Klineo"


def child_logger(name: str) -> logging.Logger:
    """The standard logger ``<service>.<name>``, written by the service's Powertools logger once set up."""
    return logging.getLogger(f"{SERVICE_NAME}.{name}")


class MetricSink(Protocol):
    """What a drain hands values to: Powertools' ``Metrics`` or its EMF provider."""

    def add_metric(self, name: str, unit: Any, value: float) -> None: ...


def _unconnected_warning(message: str, fields: dict[str, Any]) -> None:
    child_logger("tally").warning(message, extra=fields)


class Tally:
    """Counters (summed), gauges (maximum) and repeated log lines kept in memory until the next flush."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, float] = {}
        self._maxima: dict[str, tuple[float, str]] = {}
        # (message, fields) -> [count, first time, last time, latest values]
        self._occurrences: dict[tuple[str, tuple[tuple[str, Any], ...]], list[Any]] = {}
        self._warn: Callable[[str, dict[str, Any]], None] = _unconnected_warning
        self._sink: MetricSink | None = None

    def count(self, name: str, value: float = 1.0) -> None:
        """Add ``value`` to the counter ``name`` (unit Count)."""
        with self._lock:
            self._counts[name] = self._counts.get(name, 0.0) + value

    def gauge(self, name: str, value: float, unit: str = "Count") -> None:
        """Keep the largest ``value`` seen for ``name`` since the last flush."""
        with self._lock:
            self._keep_max(name, value, unit)

    def count_with_gauges(self, name: str, gauges: tuple[tuple[str, float, str], ...]) -> None:
        """``count(name)`` and ``gauge`` of every (name, value, unit) under one lock (a Binance call's)."""
        with self._lock:
            self._counts[name] = self._counts.get(name, 0.0) + 1.0
            for gauge, value, unit in gauges:
                self._keep_max(gauge, value, unit)

    def _keep_max(self, name: str, value: float, unit: str) -> None:
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

    def connect(self, warn: Callable[[str, dict[str, Any]], None], sink: MetricSink) -> None:
        """Where a drain writes: ``warn(message, fields)`` per occurrence, ``sink`` for the values."""
        self._warn, self._sink = warn, sink

    def drain(self, target: MetricSink | None = None) -> None:
        """Log each pending occurrence once, hand every pending value to ``target`` (default: the
        connected sink), start afresh. Before anything is connected, everything stays pending."""
        sink = target if target is not None else self._sink
        if sink is None:
            return
        with self._lock:
            counts, maxima, occurrences = self._counts, self._maxima, self._occurrences
            self._counts, self._maxima, self._occurrences = {}, {}, {}
        for (message, fields), (count, first, last, latest) in occurrences.items():
            self._warn(message, {**dict(fields), **latest, "count": count,
                                 "first_at": _iso(first), "last_at": _iso(last)})
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
