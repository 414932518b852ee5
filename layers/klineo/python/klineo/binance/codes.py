"""Binance's answers mapped onto KLINEO's taxonomy: the one code table and ``classify``.

Binance answers are mapped by ``classify(status, code, msg)`` through ONE table keyed by Binance
code (with a few message-dependent splits, still data in that table) and, when the code is absent
or unknown, by HTTP status. Messages are written here or in ``klineo.errors``, never copied from
Binance: a Binance message only picks which of our messages applies, and the only things lifted
from it are a parameter or filter name that matches a strict identifier pattern.

Note on -2015 ("Invalid API-key, IP, or permissions for action", futures appends ", request ip: …"):
Binance uses the same code for a wrong key, a missing permission and an IP outside the key's
allow-list, so the code alone cannot say ``ip_whitelist``. It is classified ``permission``; the
connection-test service (``klineo.services.connections``) tells the IP case apart by repeating the
call signed with a throwaway secret: -1022 then proves Binance knows the key, so the first -2015
came from the allow-list. (``apiRestrictions`` cannot help: it answers -2015 for the same reason.)
"""

from __future__ import annotations

import re
from typing import NamedTuple

from klineo.errors import RETRY, RETRY_LATER, RETRY_SHORTLY, ErrorCategory, KlineoError

__all__ = ["CODE_TABLE", "COOLING_OFF_PERIOD", "Classification", "classify", "classify_detail",
           "position_mode_refusal"]


class Classification(NamedTuple):
    """The outcome of classifying one Binance answer."""

    category: ErrorCategory
    message: str
    field: str | None = None
    # True for a refusal Binance lifts by itself (the same request may pass later); None: the category's.
    retryable: bool | None = None
    # What the one who sent the request may do (``KlineoError.advice``), apart from ``message``.
    advice: str | None = None

    @classmethod
    def of(cls, category: ErrorCategory, message: str | None = None, field: str | None = None,
           retryable: bool | None = None, advice: str | None = None) -> Classification:
        """``category`` with ``message`` and ``advice``; without a message, the category's reason and
        advice."""
        if message is None:
            message, advice = category.default_reason, advice or category.default_advice
        return cls(category, message, field, retryable, advice)


class _Rule(NamedTuple):
    """How one Binance code maps: a category and message, optionally refined by message substrings."""

    category: ErrorCategory
    message: str | None = None
    field: str | None = None
    # (lower-case substring of Binance's msg, category, message, field) tried in order before the default.
    by_message: tuple[tuple[str, ErrorCategory, str | None, str | None], ...] = ()
    # Lift the quoted parameter name out of Binance's message into `field` (and our message).
    field_from_msg: bool = False
    retryable: bool | None = None  # Classification.retryable
    advice: str | None = None  # Classification.advice, with ``message``


_C = ErrorCategory
# Binance's COOLING_OFF_PERIOD: futures trading off for the period the account's user chose (facts §11).
COOLING_OFF_PERIOD = -4192
_TS_AHEAD_MSG = (
    "The request time was ahead of Binance's clock. The backend resyncs with Binance server time "
    "automatically."
)

# A symbol whose status refuses new orders (facts §15): a halt, cancel-only, a delisting, a settled contract.
_NOT_TRADING = _Rule(
    _C.INVALID_REQUEST, "Binance is not trading this symbol now: its status refuses new orders.", "symbol"
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
        _C.UPSTREAM_UNAVAILABLE, "Binance is overloaded or throttling requests.", advice=RETRY_SHORTLY
    ),
    -1013: _Rule(  # spot "Filter failure: LOT_SIZE" and friends; "Market is closed." (facts §15)
        _C.INVALID_REQUEST, field_from_msg=True,
        by_message=(("market is closed", _C.INVALID_REQUEST, _NOT_TRADING.message, _NOT_TRADING.field),),
    ),
    -1014: _Rule(_C.INVALID_REQUEST, "Binance does not support this order combination."),
    -1015: _Rule(_C.RATE_LIMIT, "Too many new orders.", advice=RETRY_SHORTLY),
    -1021: _Rule(
        _C.TIMESTAMP,
        by_message=(("ahead", _C.TIMESTAMP, _TS_AHEAD_MSG, None),),
        advice=RETRY,
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
    -1122: _NOT_TRADING,  # "Invalid symbol status."
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
    -2021: _Rule(  # futures and its algo service: ORDER_WOULD_IMMEDIATELY_TRIGGER (facts §11); spot: 409
        _C.ORDER_REJECTED, "The order would trigger at once: its trigger price (stopPrice / triggerPrice) "
        "has already been crossed. Set it beyond the current price, on the side it is to fire at.",
        "stopPrice",
        by_message=(("cancel-replace", _C.ORDER_REJECTED, "Cancel-replace was only partly done.", None),),
    ),
    -2022: _Rule(_C.ORDER_REJECTED, "The reduce-only order was rejected."),
    -2026: _Rule(_C.ORDER_REJECTED, "This order type is not supported on this symbol."),
    -2027: _Rule(_C.ORDER_REJECTED, "The position would exceed the maximum allowed at the current leverage."),
    -2028: _Rule(_C.INSUFFICIENT_BALANCE, "Not enough margin to change leverage."),
    -2039: _Rule(
        _C.INVALID_REQUEST,
        "The order id and client order id do not belong to the same order.",
        "origClientOrderId",
    ),
    -2023: _Rule(  # a temporary refusal: the same order may pass once the liquidation has ended
        _C.ORDER_REJECTED, "The account is being liquidated; Binance accepts no orders until that ends. "
        "Retry once it has ended.", retryable=True,
    ),
    -2025: _Rule(_C.ORDER_REJECTED, "The account has reached Binance's limit of open orders."),
    -4001: _Rule(_C.INVALID_REQUEST, "Price must be greater than zero.", "price"),
    -4002: _Rule(_C.INVALID_REQUEST, "Price is above the symbol's maximum price.", "price"),
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
    -4025: _Rule(_C.INVALID_REQUEST, "Binance refused the price's multiplier for this symbol.", "price"),
    -4028: _Rule(_C.INVALID_REQUEST, "This leverage is not valid for the symbol.", "leverage"),
    # A stop-limit's price outside the band around its trigger price, and a trigger outside its own band
    # (facts §6: PERCENT_PRICE; which price a -4210/-4211 names for a trailing stop is not documented).
    -4183: _Rule(_C.INVALID_REQUEST, "The limit price is above the band allowed around its trigger price.",
                 "price"),
    -4184: _Rule(_C.INVALID_REQUEST, "The limit price is below the band allowed around its trigger price.",
                 "price"),
    -4210: _Rule(_C.INVALID_REQUEST, "The trigger price is above the band allowed for this symbol now."),
    -4211: _Rule(_C.INVALID_REQUEST, "The trigger price is below the band allowed for this symbol now."),
    -4046: _Rule(_C.CONFLICT, "The margin type is already set."),
    -4059: _Rule(_C.CONFLICT, "The position mode is already set."),
    -4061: _Rule(
        _C.INVALID_REQUEST, "The position side does not match the account's position mode.", "positionSide"
    ),
    -4109: _Rule(_C.PERMISSION, "The futures account is inactive."),
    -4116: _Rule(_C.DUPLICATE_ORDER),  # "ClientOrderId is duplicated."
    -4117: _Rule(_C.UPSTREAM_UNAVAILABLE, "The stop order is being triggered.", advice=RETRY_SHORTLY),
    -4120: _Rule(
        _C.INVALID_REQUEST,
        "Conditional order types need Binance's algo-order endpoint; not supported here.",
        "type",
    ),
    -4131: _Rule(
        _C.ORDER_REJECTED, "The best counterparty price is outside the symbol's allowed price range."
    ),
    -4140: _NOT_TRADING,  # "Invalid symbol status for opening position."
    -4141: _NOT_TRADING,  # "Symbol is closed."
    -4164: _Rule(
        _C.INVALID_REQUEST,
        "Order value is below the symbol's minimum notional (unless reduce-only).",
        "quantity",
    ),
    -4118: _Rule(
        _C.ORDER_REJECTED,
        "The reduce-only order, with the open orders on the same side, would reverse the position; "
        "cancel those orders first.",
    ),
    -4189: _Rule(_C.RESTRICTED, "The account is restricted to reduce-only orders on this symbol."),
    COOLING_OFF_PERIOD: _Rule(  # the cooling-off period the account chose at Binance: it ends by itself
        _C.ORDER_REJECTED, "Binance accepts no futures orders from this account during the cooling-off "
        "period it chose; the period ends by itself. Retry once it has ended.", retryable=True,
    ),
    **{
        code: _Rule(_C.INVALID_REQUEST, message, "leverage")
        for code, message in (
            (-4202, "Leverage above 20x needs intermediate identity verification at Binance."),
            (-4203, "Leverage above 20x is available one month after the account was registered."),
            (-4204, "This leverage is not available to this account yet."),
            (-4205, "Leverage above 20x is available some days after the futures account was opened."),
            (-4206, "This leverage is above the maximum allowed in the account's country."),
            (-4207, "This leverage is not available to this account."),
            (-4208, "Leverage cannot exceed 20x while the position limit adjustment service is used."),
            (-4209, "This leverage is above the symbol's maximum."),
            (-4403, "This leverage is above the maximum allowed in the account's region."),
        )
    },
    -4400: _Rule(  # a temporary restriction (API trading quantitative rules): it lifts by itself
        _C.ORDER_REJECTED,
        "Binance's API trading quantitative rules allow this account only reduce-only orders on this symbol "
        "for a while; the restriction lifts by itself. Retry later, or send a reduce-only order.",
        retryable=True,
    ),
    -4401: _Rule(
        _C.ORDER_REJECTED,
        "Binance's large-position rules allow only reduce-only orders on this symbol; reduce the position.",
    ),
    -4402: _Rule(_C.RESTRICTED, "This feature is not available in the account's region."),
    -5021: _Rule(
        _C.ORDER_REJECTED, "The fill-or-kill order could not be filled at once; nothing was placed."
    ),
    -5022: _Rule(
        _C.ORDER_REJECTED, "The post-only order would have taken liquidity; nothing was placed."
    ),
    -5028: _Rule(_C.TIMESTAMP),  # ME recvWindow rejection (futures)
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

_STATUS_TABLE: dict[int, tuple[ErrorCategory, str | None] | tuple[ErrorCategory, str, str]] = {
    400: (_C.INVALID_REQUEST, None),
    401: (_C.PERMISSION, None),
    403: (
        _C.RATE_LIMIT,
        "Binance's firewall refused the request (request rate or security rule).",
        RETRY_LATER,
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
    ("throttled", _C.UPSTREAM_UNAVAILABLE, "Binance is overloaded or throttling requests."),
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
        return Classification.of(_C.NETWORK)
    if status == 503:
        lowered = msg.lower()
        for needle, category, message in _503_BY_MESSAGE:
            if needle in lowered:
                return Classification.of(category, message, advice=category.default_advice)
        return Classification.of(_C.UNKNOWN_OUTCOME)
    entry = _STATUS_TABLE.get(status)
    if entry is None:
        if status >= 500:
            # Spot: "5XX … is NOT a failure operation; the execution status is UNKNOWN".
            entry = (_C.UNKNOWN_OUTCOME, None)
        elif status >= 400:
            entry = (_C.INVALID_REQUEST, None)
        else:
            entry = (_C.OTHER, None)
    category, message, *advice = entry
    return Classification.of(category, message, advice=advice[0] if advice else None)


def classify_detail(status: int | None, code: int | None, msg: str | None) -> Classification:
    """Classify a Binance answer (status, code, message) into category, user-safe message and field."""
    msg = msg if isinstance(msg, str) else ""
    # These statuses mean the same whatever code comes with them.
    if status == 418:
        return Classification.of(_C.IP_BANNED)
    if status == 451:
        return Classification.of(_C.RESTRICTED)
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
    return Classification.of(category, message, field, rule.retryable, rule.advice)


def classify(status: int | None, code: int | None, msg: str | None) -> tuple[ErrorCategory, str]:
    """Map (HTTP status, Binance code, Binance message) to (category, user-safe message)."""
    result = classify_detail(status, code, msg)
    return result.category, KlineoError(result.category, result.message, advice=result.advice).message


# Binance's refusals of an order sent for another position mode than the account's, by code, with the field
# the classification names (lower case: -1106 lifts it from Binance's message, "'reduceonly'"): -4061
# (positionSide: BOTH in hedge mode, LONG/SHORT in one-way mode) and -1106 naming reduceOnly (a hedge-mode
# account refuses the parameter, even "false"; any other parameter -1106 names is no question of mode).
_POSITION_MODE_FIELDS = {-4061: str(CODE_TABLE[-4061].field).lower(), -1106: "reduceonly"}


def position_mode_refusal(code: int | None, field: str | None) -> bool:
    """True when Binance's ``code``, classified as naming ``field`` (``classify_detail``), refused an order
    for the account's position mode."""
    return code is not None and (field or "").lower() == _POSITION_MODE_FIELDS.get(code)
