"""Timestamps: datetimes as epoch milliseconds in integer arithmetic, and the ISO-8601 texts we store.

``int(value.timestamp() * 1000)`` goes through a float of seconds: from 2038 on, a whole millisecond can
come out as the one before (2038-07-15T11:09:33.654Z as ...653). Subtracting the epoch and dividing
timedeltas is exact for every datetime; it rounds down to the millisecond, as that truncation did.

The texts (``utc_iso``): UTC with milliseconds, ``2026-12-04T21:05:09.123+00:00`` (a strategy's
``updated_at``, the version its writes are conditional on) or ``...Z`` (order records). They read as
``datetime.now(UTC).isoformat(timespec="milliseconds")`` does, but are made from the epoch milliseconds
and the minute's text (cached: a container lives in a few minutes at once), in integer arithmetic,
so exact for every millisecond. A live strategy turn writes several and reads one back; run cold, as a
turn runs them between botocore's and requests' work, datetime's now and isoformat took about 10 µs a
text and this about half, and the captured live turn of ``bench.runner_kinds`` replayed with its caches
evicted between calls spent about 4 % less own CPU. ``iso_epoch_ms`` reads those ``...Z`` texts back the
same way, and any other ISO-8601 text through ``datetime.fromisoformat``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache

__all__ = ["epoch_ms", "iso_epoch_ms", "utc_iso", "utc_now_iso"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_MINUTE_MS = 60_000
_OWN_ZULU_LENGTH = len("2026-12-04T21:05:09.123Z")


def epoch_ms(value: datetime) -> int:
    """``value`` in epoch ms, rounded down (a naive datetime is local time, as ``datetime.timestamp``
    reads it)."""
    aware = value if value.tzinfo is not None else value.astimezone()
    return (aware - _EPOCH) // _MILLISECOND


def utc_iso(ms: int, *, zulu: bool = False) -> str:
    """Epoch ms ``ms`` as ISO-8601 UTC with milliseconds: ``...+00:00``, or ``...Z`` with ``zulu``."""
    minute, rest = divmod(ms, _MINUTE_MS)
    return f"{_minute_text(minute)}{rest // 1000:02d}.{rest % 1000:03d}{'Z' if zulu else '+00:00'}"


def utc_now_iso(*, zulu: bool = False) -> str:
    """Now (rounded down to the millisecond, as ``datetime.now`` and ``isoformat`` give it) as ``utc_iso``."""
    return utc_iso(time.time_ns() // 1_000_000, zulu=zulu)


def iso_epoch_ms(text: str) -> int:
    """An ISO-8601 timestamp (``...Z``, an offset, or naive as local time) as epoch ms, rounded down."""
    if len(text) == _OWN_ZULU_LENGTH and text[19] == "." and text[-1] == "Z" and text[17:19].isdigit() \
            and text[20:23].isdigit():
        return _minute_epoch_ms(text[:17]) + int(text[17:19]) * 1000 + int(text[20:23])
    return epoch_ms(datetime.fromisoformat(text.replace("Z", "+00:00")))


@lru_cache(maxsize=8)
def _minute_text(minute: int) -> str:
    """``YYYY-MM-DDTHH:MM:`` of the epoch minute ``minute`` (UTC)."""
    return (_EPOCH + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:")


@lru_cache(maxsize=8)
def _minute_epoch_ms(text: str) -> int:
    """Epoch ms of a minute's ``YYYY-MM-DDTHH:MM:`` text (UTC); ValueError when it is not one."""
    return epoch_ms(datetime.fromisoformat(f"{text}00+00:00"))
