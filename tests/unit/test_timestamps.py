"""The stored ISO-8601 texts (klineo.timestamps): the same as datetime's, read back to the millisecond."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from klineo.timestamps import epoch_ms, iso_epoch_ms, utc_iso, utc_now_iso

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Edges of a minute, an hour, a day, a leap day, a year, the 2038 float edge, and the epoch.
EDGES_MS = [0, 59_999, 60_000, 1_733_300_000_000, 1_733_302_799_999, 1_733_302_800_000,
            epoch_ms(datetime(2028, 2, 29, 23, 59, 59, 999_000, tzinfo=UTC)),
            epoch_ms(datetime(2026, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)),
            epoch_ms(datetime(2027, 1, 1, tzinfo=UTC)),
            epoch_ms(datetime(2038, 7, 15, 11, 9, 33, 654_000, tzinfo=UTC))]


@pytest.mark.parametrize("ms", EDGES_MS)
def test_a_text_reads_as_datetimes_isoformat_to_the_millisecond(ms: int) -> None:
    """utc_iso writes what datetime's isoformat(timespec="milliseconds") writes, with +00:00 or Z."""
    expected = (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")
    assert utc_iso(ms) == expected
    assert utc_iso(ms, zulu=True) == expected.replace("+00:00", "Z")


@pytest.mark.parametrize("ms", EDGES_MS)
def test_an_own_text_reads_back_as_its_millisecond(ms: int) -> None:
    """iso_epoch_ms gives back the epoch ms of a Z text utc_iso wrote, and of its +00:00 twin."""
    assert iso_epoch_ms(utc_iso(ms, zulu=True)) == ms
    assert iso_epoch_ms(utc_iso(ms)) == ms


def test_now_is_between_two_readings_of_datetime_now() -> None:
    """utc_now_iso is now, rounded down to the millisecond as datetime.now and isoformat round it."""
    before = datetime.now(UTC).isoformat(timespec="milliseconds")
    now = utc_now_iso()
    after = datetime.now(UTC).isoformat(timespec="milliseconds")
    assert before <= now <= after
    assert utc_now_iso(zulu=True).endswith("Z")


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-12-04T21:05:09Z", epoch_ms(datetime(2026, 12, 4, 21, 5, 9, tzinfo=UTC))),
    ("2026-12-04T21:05:09.123456Z", epoch_ms(datetime(2026, 12, 4, 21, 5, 9, 123_000, tzinfo=UTC))),
    ("2026-12-04T22:05:09.123+01:00", epoch_ms(datetime(2026, 12, 4, 21, 5, 9, 123_000, tzinfo=UTC))),
    ("2026-12-04T21:05:09.123", epoch_ms(datetime(2026, 12, 4, 21, 5, 9, 123_000))),  # naive: local time
])
def test_other_iso_texts_read_as_datetime_reads_them(text: str, expected: int) -> None:
    """Texts of another shape than ours (no ms, µs, an offset, naive) read through datetime.fromisoformat."""
    assert iso_epoch_ms(text) == expected


@pytest.mark.parametrize("text", ["2026-13-04T21:05:09.123Z", "2026-12-04T21:05:xx.123Z", "not a time"])
def test_a_text_that_is_no_time_is_a_value_error(text: str) -> None:
    """A malformed text is refused as datetime refuses it, never read as some other time."""
    with pytest.raises(ValueError):
        iso_epoch_ms(text)


def test_an_offset_other_than_utc_is_never_written() -> None:
    """The texts are UTC: the offset is +00:00 (or Z), whatever the process's local zone."""
    assert datetime.fromisoformat(utc_now_iso()).utcoffset() == UTC.utcoffset(None)
