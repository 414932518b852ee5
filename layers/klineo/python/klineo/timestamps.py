"""Datetimes as epoch milliseconds, in integer arithmetic.

``int(value.timestamp() * 1000)`` goes through a float of seconds: from 2038 on, a whole millisecond can
come out as the one before (2038-07-15T11:09:33.654Z as ...653). Subtracting the epoch and dividing
timedeltas is exact for every datetime; it rounds down to the millisecond, as that truncation did.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["epoch_ms"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


def epoch_ms(value: datetime) -> int:
    """``value`` in epoch ms, rounded down (a naive datetime is local time, as ``datetime.timestamp``
    reads it)."""
    aware = value if value.tzinfo is not None else value.astimezone()
    return (aware - _EPOCH) // _MILLISECOND
