"""Binance error answers: the exception the simulator raises and the documented codes and texts.

Messages follow binance-facts.md §4; where spot and futures texts differ the futures text is
chosen when the request is a futures one (see `ApiError.for_family`).
"""

from __future__ import annotations

__all__ = ["FAMILIES", "FUTURES", "SAPI", "SPOT", "ApiError"]

SPOT = "spot"
SAPI = "sapi"
FUTURES = "futures"
FAMILIES = (SPOT, SAPI, FUTURES)


class ApiError(Exception):
    """An answer in Binance's error format: HTTP status plus `{"code": ..., "msg": ...}`."""

    def __init__(self, status: int, code: int, msg: str, headers: dict[str, str] | None = None):
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg
        self.headers = headers or {}

    def body(self) -> dict:
        """The JSON body Binance sends for this error."""
        return {"code": self.code, "msg": self.msg}


def unknown_error(family: str) -> ApiError:
    """-1000, spelled as each API spells it."""
    text = "occured" if family == FUTURES else "occurred"
    return ApiError(500, -1000, f"An unknown error {text} while processing the request.")


def invalid_api_key(family: str, client_ip: str) -> ApiError:
    """-2015 with HTTP 401; futures append the caller's IP (3rd-party traces)."""
    msg = "Invalid API-key, IP, or permissions for action"
    msg = f"{msg}, request ip: {client_ip}" if family == FUTURES else f"{msg}."
    return ApiError(401, -2015, msg)


def api_key_format_invalid() -> ApiError:
    """-2014: the X-MBX-APIKEY header is missing or malformed."""
    return ApiError(401, -2014, "API-key format invalid.")


def invalid_signature() -> ApiError:
    """-1022."""
    return ApiError(400, -1022, "Signature for this request is not valid.")


def timestamp_ahead() -> ApiError:
    """-1021 when the timestamp is 1000 ms or more ahead of server time."""
    return ApiError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")


def timestamp_outside_window() -> ApiError:
    """-1021 when the timestamp is older than recvWindow."""
    return ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")


def recv_window_too_large() -> ApiError:
    """-1131 (spot BAD_RECV_WINDOW; applied to futures as well, unverified there)."""
    return ApiError(400, -1131, "recvWindow must be less than 60000")


def mandatory(name: str) -> ApiError:
    """-1102 for one missing parameter."""
    return ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def one_of_mandatory(first: str, second: str) -> ApiError:
    """-1102 when neither of two alternative parameters was sent."""
    return ApiError(400, -1102, f"Param '{first}' or '{second}' must be sent, but both were empty/null!")


def illegal_characters(name: str, legal_range: str) -> ApiError:
    """-1100."""
    return ApiError(
        400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal_range}'."
    )


def interval_too_long(hours: int) -> ApiError:
    """-1127: a startTime-endTime span over what the endpoint allows (its text on the error code page)."""
    return ApiError(400, -1127, f"More than {hours} hours between startTime and endTime.")


def bad_combination() -> ApiError:
    """-1128: optional parameters that cannot be sent together."""
    return ApiError(400, -1128, "Combination of optional parameters invalid.")


def invalid_symbol() -> ApiError:
    """-1121."""
    return ApiError(400, -1121, "Invalid symbol.")


def invalid_interval() -> ApiError:
    """-1120."""
    return ApiError(400, -1120, "Invalid interval.")


def too_much_weight(family: str, limit: int, retry_after_s: int) -> ApiError:
    """429 -1003 with Retry-After (seconds until the weight window ends)."""
    if family == FUTURES:
        msg = (
            f"Too many requests; current limit is {limit} requests per minute. "
            "Please use the websocket for live updates to avoid polling the API."
        )
    else:
        msg = (
            f"Too much request weight used; current limit is {limit} request weight per 1 MINUTE. "
            "Please use WebSocket Streams for live updates to avoid polling the API."
        )
    return ApiError(429, -1003, msg, {"Retry-After": str(retry_after_s)})


def ip_banned(family: str, banned_until_ms: int, retry_after_s: int) -> ApiError:
    """418 -1003 with Retry-After (seconds until the ban ends)."""
    if family == FUTURES:
        msg = (
            f"Way too many requests; IP banned until {banned_until_ms}. "
            "Please use the websocket for live updates to avoid bans."
        )
    else:
        msg = (
            f"Way too much request weight used; IP banned until {banned_until_ms}. "
            "Please use WebSocket Streams for live updates to avoid bans."
        )
    return ApiError(418, -1003, msg, {"Retry-After": str(retry_after_s)})


def too_many_orders(limit: int, interval: str, retry_after_s: int) -> ApiError:
    """429 -1015 when the per-account order count limit is exceeded."""
    return ApiError(
        429,
        -1015,
        f"Too many new orders; current limit is {limit} orders per {interval}.",
        {"Retry-After": str(retry_after_s)},
    )


def endpoint_not_found(method: str, path: str) -> ApiError:
    """404 for a path the API does not have (e.g. /sapi on the testnet).

    Binance's exact body for a missing path is not documented; the simulator answers JSON with
    code -1000 so clients that parse every body still get Binance's shape.
    """
    return ApiError(404, -1000, f"Not Found: {method} {path}")
