"""The request journal: one record per Binance-API request, readable by tests.

Records carry the path without its query string (signatures never stored) and the API key
(not a secret); secrets are never seen here.
"""

from __future__ import annotations

import dataclasses
import threading

__all__ = ["Journal", "JournalRecord"]


@dataclasses.dataclass(frozen=True)
class JournalRecord:
    """What happened to one request."""

    ts: int
    method: str
    path: str
    env: str
    api_key: str | None
    status: int
    code: int | None
    weight: int
    fault: str | None = None

    def as_dict(self) -> dict:
        """JSON-able form."""
        return dataclasses.asdict(self)


class Journal:
    """Thread-safe, append-only list of JournalRecord."""

    def __init__(self):
        self._lock = threading.Lock()
        self._records: list[JournalRecord] = []

    def append(self, record: JournalRecord) -> None:
        """Add one record."""
        with self._lock:
            self._records.append(record)

    def records(self) -> list[JournalRecord]:
        """A snapshot copy of every record so far."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        """Forget all records."""
        with self._lock:
            self._records.clear()
