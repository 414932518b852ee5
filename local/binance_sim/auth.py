"""Signed-request security: the signature over raw bytes and the timing rules (facts §2).

The signed payload is rebuilt from the bytes as received: the raw query string without its
`signature=` pair, then the raw body without its `signature=` pair, with no separator. Nothing
is decoded before verifying, so any parameter order, encoding or placement the client signed
is what gets checked.
"""

from __future__ import annotations

from . import errors

__all__ = ["check_timing", "parse_timestamp_ms", "signed_payload", "split_signature"]

_SIGNATURE_PREFIX = b"signature="
RECV_WINDOW_DEFAULT = 5000
RECV_WINDOW_MAX = 60000


def split_signature(raw: bytes) -> tuple[bytes, bytes | None]:
    """Remove the `signature=` pair from a raw `a=1&b=2` string; return (rest, signature value)."""
    if _SIGNATURE_PREFIX not in raw:
        return raw, None
    kept, signature = [], None
    for pair in raw.split(b"&"):
        if pair.startswith(_SIGNATURE_PREFIX):
            if signature is None:
                signature = pair[len(_SIGNATURE_PREFIX) :]
        else:
            kept.append(pair)
    return b"&".join(kept), signature


def signed_payload(raw_query: bytes, raw_body: bytes) -> tuple[bytes, bytes | None]:
    """(payload that was signed, signature bytes or None). The query's signature wins."""
    query, query_signature = split_signature(raw_query)
    body, body_signature = split_signature(raw_body)
    signature = query_signature if query_signature is not None else body_signature
    return query + body, signature


def parse_timestamp_ms(value: str, allow_microseconds: bool) -> float:
    """A `timestamp` parameter in ms; spot also takes µs (16 digits) since 2024-12-17."""
    try:
        number = int(value)
    except ValueError:
        raise errors.mandatory("timestamp") from None
    if allow_microseconds and number >= 10**15:
        return number / 1000.0
    return float(number)


def parse_recv_window(value: str | None, allow_decimals: bool) -> float:
    """`recvWindow` in ms (spot allows up to 3 decimals); above 60000 is -1131."""
    if value is None or value == "":
        return float(RECV_WINDOW_DEFAULT)
    try:
        window = float(value) if allow_decimals else float(int(value))
    except ValueError:
        raise errors.mandatory("recvWindow") from None
    if window > RECV_WINDOW_MAX:
        raise errors.recv_window_too_large()
    if window <= 0:
        raise errors.mandatory("recvWindow")
    return window


def check_timing(timestamp_ms: float, recv_window_ms: float, server_time_ms: float) -> None:
    """Binance's rule: timestamp < serverTime + 1000 and serverTime - timestamp <= recvWindow."""
    if timestamp_ms >= server_time_ms + 1000:
        raise errors.timestamp_ahead()
    if server_time_ms - timestamp_ms > recv_window_ms:
        raise errors.timestamp_outside_window()
