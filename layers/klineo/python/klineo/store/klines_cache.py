"""Closed Binance klines cached by (environment, symbol, interval, UTC day) in the klines cache table.

One item per day: ``pk = <environment>#<symbol>#<interval>``, ``sk = <YYYY-MM-DD>`` (so one Query
with ``sk BETWEEN`` reads a whole period), ``candles`` = the day's candles as zlib-compressed text,
one line per candle: ``<index in the day>,<open>,<high>,<low>,<close>,<volume>`` with the numbers
in Binance's decimal text, trailing zeros dropped. The open time is ``day start + index * interval``
and the close time ``open + interval - 1`` (Binance's kline times), so neither is stored.
1440 one-minute candles take ~70 KB as text and ~27 KB compressed, far under DynamoDB's 400 KB.
Only a day whose last candle had closed when it was fetched is written, so a cached day is final
and never asked of Binance again. Items expire after ``CACHE_DAYS`` (the ``ttl`` attribute).
"""

from __future__ import annotations

import datetime as dt
import time
import zlib
from collections.abc import Iterable
from decimal import Decimal

from klineo.binance import Candle
from klineo.settings import get_settings
from klineo.store import aws
from klineo.store.dynamo import query_items

__all__ = ["CACHE_DAYS", "DAY_MS", "day_key", "decode_day", "encode_day", "load_days", "save_day"]

DAY_MS = 86_400_000
CACHE_DAYS = 400


def day_key(day_start_ms: int) -> str:
    """The sort key of the UTC day starting at ``day_start_ms``: ``YYYY-MM-DD``."""
    return dt.datetime.fromtimestamp(day_start_ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def _number(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def encode_day(day_start_ms: int, interval_ms: int, candles: Iterable[Candle]) -> bytes:
    """The compact form of one day's candles (see the module doc)."""
    lines = []
    for candle in candles:
        index, rest = divmod(candle.open_time - day_start_ms, interval_ms)
        if rest or not 0 <= index < DAY_MS // interval_ms:
            raise ValueError("a candle outside the day or off the interval grid")
        numbers = (candle.open, candle.high, candle.low, candle.close, candle.volume)
        lines.append(",".join([str(index), *map(_number, numbers)]))
    return zlib.compress("\n".join(lines).encode("ascii"), 9)


def decode_day(day_start_ms: int, interval_ms: int, blob: bytes) -> list[Candle]:
    """The candles ``encode_day`` stored, oldest first."""
    text = zlib.decompress(blob).decode("ascii")
    candles = []
    for line in text.split("\n") if text else []:
        index, open_, high, low, close, volume = line.split(",")
        open_time = day_start_ms + int(index) * interval_ms
        candles.append(Candle(open_time, Decimal(open_), Decimal(high), Decimal(low), Decimal(close),
                              Decimal(volume), open_time + interval_ms - 1))
    return candles


def _pk(environment: str, symbol: str, interval: str) -> str:
    return f"{environment}#{symbol}#{interval}"


def load_days(
    environment: str, symbol: str, interval: str, interval_ms: int, first_day_ms: int, last_day_ms: int,
) -> dict[int, list[Candle]]:
    """Cached days between two day starts (inclusive): day start ms -> its candles."""
    found: dict[int, list[Candle]] = {}
    items = query_items(
        TableName=get_settings().klines_cache_table,
        KeyConditionExpression="pk = :pk AND sk BETWEEN :first AND :last",
        ExpressionAttributeValues={
            ":pk": {"S": _pk(environment, symbol, interval)},
            ":first": {"S": day_key(first_day_ms)}, ":last": {"S": day_key(last_day_ms)},
        },
    )
    for item in items:
        day_start = int(item["day_start"]["N"])
        found[day_start] = decode_day(day_start, interval_ms, item["candles"]["B"])
    return found


def save_day(
    environment: str, symbol: str, interval: str, interval_ms: int, day_start_ms: int,
    candles: list[Candle], *, now_s: float | None = None,
) -> None:
    """Store one fully closed day (an unconditional put: the same closed day is the same data)."""
    expires = int(now_s if now_s is not None else time.time()) + CACHE_DAYS * 86_400
    aws.dynamodb().put_item(
        TableName=get_settings().klines_cache_table,
        Item={
            "pk": {"S": _pk(environment, symbol, interval)}, "sk": {"S": day_key(day_start_ms)},
            "day_start": {"N": str(day_start_ms)}, "count": {"N": str(len(candles))},
            "candles": {"B": encode_day(day_start_ms, interval_ms, candles)}, "ttl": {"N": str(expires)},
        },
    )
