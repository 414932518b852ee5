"""KLINEO's one error taxonomy: categories, the one exception class, and the Binance code table.

Every failure a caller can see is a ``KlineoError`` carrying an ``ErrorCategory``. Binance answers
are mapped by ``classify(status, code, msg)`` through ONE table keyed by Binance code (with a few
message-dependent splits, still data in that table) and, when the code is absent or unknown, by
HTTP status. Messages are written here, never copied from Binance: a Binance message only picks
which of our messages applies, and the only things lifted from it are a parameter or filter name
that matches a strict identifier pattern.

Note on -2015 ("Invalid API-key, IP, or permissions for action", futures appends ", request ip: …"):
Binance uses the same code for a wrong key, a missing permission and an IP outside the key's
allow-list, so the code alone cannot say ``ip_whitelist``. It is classified ``permission``; the
connection-test service (``klineo.services.connections``) tells the IP case apart by repeating the
call signed with a throwaway secret: -1022 then proves Binance knows the key, so the first -2015
came from the allow-list. (``apiRestrictions`` cannot help: it answers -2015 for the same reason.)
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import NamedTuple

__all__ = [
    "Classification",
    "ErrorCategory",
    "KlineoError",
    "classify",
    "classify_detail",
]


class ErrorCategory(StrEnum):
    """What went wrong, in terms a caller can act on; ``.retryable`` says whether retrying is safe."""

    PERMISSION = "permission"
    TIMESTAMP = "timestamp"
    SIGNATURE = "signature"
    IP_WHITELIST = "ip_whitelist"
    RATE_LIMIT = "rate_limit"
    IP_BANNED = "ip_banned"
    RESTRICTED = "restricted"
    INVALID_REQUEST = "invalid_request"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    ORDER_REJECTED = "order_rejected"
    DUPLICATE_ORDER = "duplicate_order"
    ORDER_NOT_FOUND = "order_not_found"
    UNKNOWN_OUTCOME = "unknown_outcome"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    NETWORK = "network"
    OTHER = "other"
    # App-level categories raised by the services, never by classify().
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"

    @property
    def retryable(self) -> bool:
        """True when sending the same request again later is safe and may succeed.

        UNKNOWN_OUTCOME is deliberately False: the order may exist, so it must be looked up, not re-sent.
        RATE_LIMIT and IP_BANNED are True but only after ``KlineoError.retry_after`` seconds.
        """
        return self in _RETRYABLE

    @property
    def metric_name(self) -> str:
        """The CloudWatch metric counting this category, e.g. ``BinanceIpBanned`` for ip_banned."""
        return _METRIC_NAMES[self]

    @property
    def default_message(self) -> str:
        """A user-safe message for this category when nothing more specific is known."""
        return _DEFAULT_MESSAGES[self]


_RETRYABLE = frozenset(
    {
        ErrorCategory.TIMESTAMP,
        ErrorCategory.RATE_LIMIT,
        ErrorCategory.IP_BANNED,
        ErrorCategory.UPSTREAM_UNAVAILABLE,
        ErrorCategory.NETWORK,
    }
)

_METRIC_NAMES = {c: "Binance" + "".join(p.capitalize() for p in c.value.split("_")) for c in ErrorCategory}

_DEFAULT_MESSAGES: dict[ErrorCategory, str] = {
    ErrorCategory.PERMISSION: (
        "Binance rejected the API key: it is invalid, lacks the permission this action needs, "
        "or this server's IP is not on the key's allow-list."
    ),
    ErrorCategory.TIMESTAMP: (
        "Binance rejected the request time (clock out of sync). The backend resyncs with Binance "
        "server time automatically; please retry."
    ),
    ErrorCategory.SIGNATURE: (
        "Binance rejected the request signature: check that the secret or private key matches the API key."
    ),
    ErrorCategory.IP_WHITELIST: "This server's IP address is not on the API key's allow-list on Binance.",
    ErrorCategory.RATE_LIMIT: "Binance request limit reached; please retry shortly.",
    ErrorCategory.IP_BANNED: (
        "Binance has temporarily banned this server's IP for too many requests; please retry later."
    ),
    ErrorCategory.RESTRICTED: "Binance is not available from this server's location (HTTP 451).",
    ErrorCategory.INVALID_REQUEST: "Binance rejected the request as invalid.",
    ErrorCategory.INSUFFICIENT_BALANCE: "Insufficient balance or margin for this order.",
    ErrorCategory.ORDER_REJECTED: "Binance rejected the order.",
    ErrorCategory.DUPLICATE_ORDER: "An order with this client order id already exists.",
    ErrorCategory.ORDER_NOT_FOUND: "Binance does not know this order.",
    ErrorCategory.UNKNOWN_OUTCOME: (
        "Binance did not confirm the outcome: the order may or may not have been placed. "
        "Look the order up by its client order id before sending it again."
    ),
    ErrorCategory.UPSTREAM_UNAVAILABLE: "Binance is temporarily unavailable; please retry shortly.",
    ErrorCategory.NETWORK: "Could not reach Binance; please retry.",
    ErrorCategory.OTHER: "Binance returned an unexpected error.",
    ErrorCategory.NOT_FOUND: "Not found.",
    ErrorCategory.CONFLICT: "The request conflicts with the current state.",
}


class KlineoError(Exception):
    """The one exception KLINEO raises for every expected failure; its message is always user-safe."""

    __slots__ = ("category", "code", "field", "message", "retry_after", "retryable", "status")

    def __init__(
        self,
        category: ErrorCategory | str,
        message: str | None = None,
        *,
        status: int | None = None,
        code: int | None = None,
        retry_after: float | None = None,
        field: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        category = ErrorCategory(category)
        self.category = category
        self.message = message or category.default_message
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.field = field
        self.retryable = category.retryable if retryable is None else retryable
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"KlineoError(category={self.category.value!r}, message={self.message!r}, "
            f"status={self.status!r}, "
            f"code={self.code!r}, field={self.field!r}, retry_after={self.retry_after!r})"
        )

    def __reduce__(self):  # keep pickling (e.g. across processes) working with keyword-only arguments
        return (
            _rebuild,
            (
                self.category,
                self.message,
                self.status,
                self.code,
                self.retry_after,
                self.field,
                self.retryable,
            ),
        )

    def to_dict(self) -> dict:
        """The error as a JSON-safe dict: category, message, retryable and, when known, field."""
        body = {"category": self.category.value, "message": self.message, "retryable": self.retryable}
        if self.field:
            body["field"] = self.field
        return body


def _rebuild(category, message, status, code, retry_after, field, retryable) -> KlineoError:
    return KlineoError(
        category, message, status=status, code=code, retry_after=retry_after, field=field, retryable=retryable
    )


class Classification(NamedTuple):
    """The outcome of classifying one Binance answer."""

    category: ErrorCategory
    message: str
    field: str | None = None


class _Rule(NamedTuple):
    """How one Binance code maps: a category and message, optionally refined by message substrings."""

    category: ErrorCategory
    message: str | None = None
    field: str | None = None
    # (lower-case substring of Binance's msg, category, message, field) tried in order before the default.
    by_message: tuple[tuple[str, ErrorCategory, str | None, str | None], ...] = ()
    # Lift the quoted parameter name out of Binance's message into `field` (and our message).
    field_from_msg: bool = False


_C = ErrorCategory
_TS_MSG = _DEFAULT_MESSAGES[_C.TIMESTAMP]
_TS_AHEAD_MSG = (
    "The request time was ahead of Binance's clock. The backend resyncs with Binance server time "
    "automatically; please retry."
)

# ---------------------------------------------------------------------------------------------------
# THE table: Binance code -> rule (facts §4). Codes not listed fall back to the HTTP status table below.
# ---------------------------------------------------------------------------------------------------
CODE_TABLE: dict[int, _Rule] = {
    -1000: _Rule(_C.UNKNOWN_OUTCOME),  # "An unknown error occurred while processing the request."
    -1001: _Rule(
        _C.UPSTREAM_UNAVAILABLE
    ),  # "Internal error; unable to process your request. Please try again."
    -1002: _Rule(_C.PERMISSION, "Binance refused the request: not authorized."),
    -1003: _Rule(
        _C.RATE_LIMIT,
        by_message=(("banned", _C.IP_BANNED, None, None),),
    ),
    -1006: _Rule(_C.UNKNOWN_OUTCOME),  # unexpected response from the message bus; execution status unknown
    -1007: _Rule(
        _C.UNKNOWN_OUTCOME
    ),  # "Timeout waiting for response from backend server. Send status unknown"
    -1008: _Rule(
        _C.UPSTREAM_UNAVAILABLE, "Binance is overloaded or throttling requests; please retry shortly."
    ),
    -1013: _Rule(_C.INVALID_REQUEST, field_from_msg=True),  # spot "Filter failure: LOT_SIZE" and friends
    -1014: _Rule(_C.INVALID_REQUEST, "Binance does not support this order combination."),
    -1015: _Rule(_C.RATE_LIMIT, "Too many new orders; please retry shortly."),
    -1021: _Rule(
        _C.TIMESTAMP,
        _TS_MSG,
        by_message=(("ahead", _C.TIMESTAMP, _TS_AHEAD_MSG, None),),
    ),
    -1022: _Rule(_C.SIGNATURE),
    -1100: _Rule(_C.INVALID_REQUEST, field_from_msg=True),  # "Illegal characters found in parameter '%s'"
    -1101: _Rule(_C.INVALID_REQUEST, field_from_msg=True),  # too many / duplicate parameters
    -1102: _Rule(_C.INVALID_REQUEST, field_from_msg=True),  # "Mandatory parameter '%s' was not sent…"
    -1103: _Rule(_C.INVALID_REQUEST, field_from_msg=True),  # unknown parameter
    -1104: _Rule(_C.INVALID_REQUEST, field_from_msg=True),  # not all parameters were read
    -1105: _Rule(_C.INVALID_REQUEST, field_from_msg=True),  # parameter was empty
    -1106: _Rule(_C.INVALID_REQUEST, field_from_msg=True),  # parameter sent when not required
    -1111: _Rule(
        _C.INVALID_REQUEST, "A value has more decimal places than Binance allows.", field_from_msg=True
    ),
    -1112: _Rule(_C.ORDER_REJECTED, "No orders on the book for this symbol."),
    -1114: _Rule(_C.INVALID_REQUEST, "Time in force was sent where it is not required.", "timeInForce"),
    -1115: _Rule(_C.INVALID_REQUEST, "Invalid time in force.", "timeInForce"),
    -1116: _Rule(_C.INVALID_REQUEST, "Invalid order type.", "type"),
    -1117: _Rule(_C.INVALID_REQUEST, "Invalid order side.", "side"),
    -1118: _Rule(_C.INVALID_REQUEST, "The client order id was empty.", "newClientOrderId"),
    -1120: _Rule(_C.INVALID_REQUEST, "Invalid interval.", "interval"),
    -1121: _Rule(_C.INVALID_REQUEST, "Invalid symbol.", "symbol"),
    -1125: _Rule(_C.PERMISSION, "The listen key does not exist."),
    -1127: _Rule(_C.INVALID_REQUEST, "The time range is too long.", "startTime"),
    -1130: _Rule(_C.INVALID_REQUEST, field_from_msg=True),  # invalid data sent for a parameter
    -1131: _Rule(_C.INVALID_REQUEST, "recvWindow must be less than 60000.", "recvWindow"),
    -2010: _Rule(
        _C.ORDER_REJECTED,
        by_message=(
            ("duplicate order", _C.DUPLICATE_ORDER, None, None),
            ("insufficient balance", _C.INSUFFICIENT_BALANCE, None, None),
            ("market is closed", _C.ORDER_REJECTED, "The market is closed for this symbol.", None),
        ),
    ),
    -2011: _Rule(
        _C.ORDER_REJECTED,
        "Binance rejected the cancel request.",
        by_message=(
            ("unknown order", _C.ORDER_NOT_FOUND, None, None),
            ("not found", _C.ORDER_NOT_FOUND, None, None),
        ),
    ),
    -2013: _Rule(_C.ORDER_NOT_FOUND),  # "Order does not exist."
    -2014: _Rule(_C.PERMISSION, "The API key format is invalid."),
    -2015: _Rule(_C.PERMISSION),  # see the module docstring on ip_whitelist
    -2018: _Rule(_C.INSUFFICIENT_BALANCE),
    -2019: _Rule(_C.INSUFFICIENT_BALANCE, "Margin is insufficient for this order."),
    -2020: _Rule(_C.ORDER_REJECTED, "The order could not be filled (fill-or-kill / post-only rule)."),
    -2021: _Rule(_C.ORDER_REJECTED, "Cancel-replace was only partly done."),
    -2022: _Rule(_C.ORDER_REJECTED, "The reduce-only order was rejected."),
    -2026: _Rule(_C.ORDER_REJECTED, "This order type is not supported on this symbol."),
    -2027: _Rule(_C.ORDER_REJECTED, "The position would exceed the maximum allowed at the current leverage."),
    -2028: _Rule(_C.INSUFFICIENT_BALANCE, "Not enough margin to change leverage."),
    -2039: _Rule(
        _C.INVALID_REQUEST,
        "The order id and client order id do not belong to the same order.",
        "origClientOrderId",
    ),
    -4003: _Rule(_C.INVALID_REQUEST, "Quantity must be greater than zero.", "quantity"),
    -4004: _Rule(_C.INVALID_REQUEST, "Quantity is below the minimum for this symbol.", "quantity"),
    -4005: _Rule(_C.INVALID_REQUEST, "Quantity is above the maximum for this symbol.", "quantity"),
    -4013: _Rule(_C.INVALID_REQUEST, "Price is below the minimum for this symbol.", "price"),
    -4014: _Rule(_C.INVALID_REQUEST, "Price is not a multiple of the symbol's tick size.", "price"),
    -4015: _Rule(
        _C.INVALID_REQUEST,
        "The client order id is not valid (1-36 characters: letters, digits, . : / _ -).",
        "newClientOrderId",
    ),
    -4016: _Rule(_C.INVALID_REQUEST, "Price is above the maximum allowed for this symbol.", "price"),
    -4023: _Rule(_C.INVALID_REQUEST, "Quantity is not a multiple of the symbol's step size.", "quantity"),
    -4024: _Rule(_C.INVALID_REQUEST, "Price is below the minimum allowed for this symbol.", "price"),
    -4028: _Rule(_C.INVALID_REQUEST, "This leverage is not valid for the symbol.", "leverage"),
    -4046: _Rule(_C.CONFLICT, "The margin type is already set."),
    -4059: _Rule(_C.CONFLICT, "The position mode is already set."),
    -4061: _Rule(
        _C.INVALID_REQUEST, "The position side does not match the account's position mode.", "positionSide"
    ),
    -4109: _Rule(_C.PERMISSION, "The futures account is inactive."),
    -4116: _Rule(_C.DUPLICATE_ORDER),  # "ClientOrderId is duplicated."
    -4117: _Rule(_C.UPSTREAM_UNAVAILABLE, "The stop order is being triggered; please retry shortly."),
    -4120: _Rule(
        _C.INVALID_REQUEST,
        "Conditional order types need Binance's algo-order endpoint; not supported here.",
        "type",
    ),
    -4131: _Rule(
        _C.ORDER_REJECTED, "The best counterparty price is outside the symbol's allowed price range."
    ),
    -4164: _Rule(
        _C.INVALID_REQUEST,
        "Order value is below the symbol's minimum notional (unless reduce-only).",
        "quantity",
    ),
    -5028: _Rule(_C.TIMESTAMP, _TS_MSG),  # ME recvWindow rejection (futures)
}

# Filter named by spot's "Filter failure: <FILTER>" -> the order field it concerns.
_FILTER_FIELDS = {
    "LOT_SIZE": "quantity",
    "MARKET_LOT_SIZE": "quantity",
    "PRICE_FILTER": "price",
    "PERCENT_PRICE": "price",
    "PERCENT_PRICE_BY_SIDE": "price",
    "MIN_NOTIONAL": "quantity",
    "NOTIONAL": "quantity",
    "ICEBERG_PARTS": "icebergQty",
    "MAX_NUM_ORDERS": None,
    "MAX_POSITION": "quantity",
}

_STATUS_TABLE: dict[int, tuple[ErrorCategory, str | None]] = {
    400: (_C.INVALID_REQUEST, None),
    401: (_C.PERMISSION, None),
    403: (
        _C.RATE_LIMIT,
        "Binance's firewall refused the request (request rate or security rule); retry later.",
    ),
    404: (_C.OTHER, "This Binance endpoint is not available in this environment."),
    408: (_C.UNKNOWN_OUTCOME, None),  # futures: backend timeout, execution status unknown
    409: (_C.ORDER_REJECTED, "Binance reported a partial success; check the order state."),
    418: (_C.IP_BANNED, None),
    429: (_C.RATE_LIMIT, None),
    451: (_C.RESTRICTED, None),
}

# Futures 503 variants (facts §4): only "Unknown error…" leaves the outcome unknown; the others are failures.
_503_BY_MESSAGE = (
    ("unknown error", _C.UNKNOWN_OUTCOME, None),
    ("service unavailable", _C.UPSTREAM_UNAVAILABLE, None),
    ("internal error", _C.UPSTREAM_UNAVAILABLE, None),
    (
        "throttled",
        _C.UPSTREAM_UNAVAILABLE,
        "Binance is overloaded or throttling requests; please retry shortly.",
    ),
)

_QUOTED_NAME = re.compile(r"'([A-Za-z][A-Za-z0-9_]{0,40})'")
_FILTER_NAME = re.compile(r"Filter failure: ([A-Z_]{3,40})")


def _lift_field(msg: str) -> tuple[str | None, str | None]:
    """(field, safe detail) lifted from a Binance message; only strict identifiers ever leave it."""
    match = _FILTER_NAME.search(msg)
    if match:
        name = match.group(1)
        return _FILTER_FIELDS.get(name), f"The order failed Binance's {name} filter."
    match = _QUOTED_NAME.search(msg)
    if match:
        name = match.group(1)
        return name, f"Parameter '{name}' was rejected by Binance."
    return None, None


def _by_status(status: int | None, msg: str) -> Classification:
    if status is None:
        return Classification(_C.NETWORK, _DEFAULT_MESSAGES[_C.NETWORK])
    if status == 503:
        lowered = msg.lower()
        for needle, category, message in _503_BY_MESSAGE:
            if needle in lowered:
                return Classification(category, message or category.default_message)
        return Classification(_C.UNKNOWN_OUTCOME, _DEFAULT_MESSAGES[_C.UNKNOWN_OUTCOME])
    entry = _STATUS_TABLE.get(status)
    if entry is None:
        if status >= 500:
            # Spot: "5XX … is NOT a failure operation; the execution status is UNKNOWN".
            entry = (_C.UNKNOWN_OUTCOME, None)
        elif status >= 400:
            entry = (_C.INVALID_REQUEST, None)
        else:
            entry = (_C.OTHER, None)
    category, message = entry
    return Classification(category, message or category.default_message)


def classify_detail(status: int | None, code: int | None, msg: str | None) -> Classification:
    """Classify a Binance answer (status, code, message) into category, user-safe message and field."""
    msg = msg if isinstance(msg, str) else ""
    # These statuses mean the same whatever code comes with them.
    if status == 418:
        return Classification(_C.IP_BANNED, _DEFAULT_MESSAGES[_C.IP_BANNED])
    if status == 451:
        return Classification(_C.RESTRICTED, _DEFAULT_MESSAGES[_C.RESTRICTED])
    rule = CODE_TABLE.get(code) if code is not None else None
    if rule is None:
        return _by_status(status, msg)
    category, message, field = rule.category, rule.message, rule.field
    if rule.by_message:
        lowered = msg.lower()
        for needle, alt_category, alt_message, alt_field in rule.by_message:
            if needle in lowered:
                category, message, field = alt_category, alt_message, alt_field
                break
    if rule.field_from_msg and field is None:
        lifted_field, detail = _lift_field(msg)
        field = lifted_field
        if message is None:
            message = detail
    return Classification(category, message or category.default_message, field)


def classify(status: int | None, code: int | None, msg: str | None) -> tuple[ErrorCategory, str]:
    """Map (HTTP status, Binance code, Binance message) to (category, user-safe message)."""
    result = classify_detail(status, code, msg)
    return result.category, result.message
