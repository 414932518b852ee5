"""Every input rule written once: the patterns, the PEM key checks and the order field rules.

The request models (``klineo.models``), the services, the Binance client and the order values
all take their rules from here, so a rule cannot drift between the API and the code that trades.
Rule checks raise ``ValueError`` with a user-safe message that never repeats the value (pydantic
turns it into a 422 naming the field); ``check_client_order_id`` raises the taxonomy's error, as
its callers are services and the Binance client.
"""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal
from typing import Any

from klineo.errors import ErrorCategory, KlineoError

__all__ = [
    "API_KEY_PATTERN",
    "CLIENT_ORDER_ID_PATTERN",
    "CLIENT_ORDER_ID_RE",
    "CONDITIONAL_ORDER_TYPES",
    "CONNECTION_ID_PATTERN",
    "HEX_ID_PATTERN",
    "IDEMPOTENCY_HEADER",
    "IDEMPOTENCY_KEY_MAX_LENGTH",
    "MARGIN_TYPES",
    "MARGIN_TYPES_OURS",
    "ORDER_POSITION_SIDES",
    "ORDER_SIDES",
    "ORDER_SIZE_FIELDS",
    "ORDER_TIME_IN_FORCE",
    "ORDER_TYPES",
    "ORDER_WORKING_TYPES",
    "POSITIVE_DECIMAL_PATTERN",
    "SPOT_INTERVALS",
    "STRATEGY_ID_PATTERN",
    "SYMBOL_PATTERN",
    "SYMBOL_RE",
    "check_client_order_id",
    "check_close_position",
    "check_conditional_field",
    "check_idempotency_key",
    "check_order_price",
    "check_order_size",
    "check_private_key",
    "check_protection",
    "check_reduce_only",
    "check_size_beside_close",
    "check_symbol",
    "check_trigger",
    "decimal_or_none",
    "keyed_request_digests",
    "order_time_in_force",
    "pem_text",
    "plain_text",
    "plain_text_or_none",
    "positive_decimal",
    "positive_or_none",
]

SYMBOL_PATTERN = r"^[A-Z0-9]{2,20}$"
SYMBOL_RE = re.compile(SYMBOL_PATTERN)
# Connection and strategy ids: 32 lower-case hex characters.
HEX_ID_PATTERN = r"^[a-f0-9]{32}$"
CONNECTION_ID_PATTERN = STRATEGY_ID_PATTERN = HEX_ID_PATTERN
# Binance API keys are 64 letters and digits; accept any visible ASCII so a new format is not
# refused, but never whitespace or control characters (the key goes into an HTTP header).
API_KEY_PATTERN = r"^[\x21-\x7e]{16,256}$"
# Binance's rule for newClientOrderId / origClientOrderId (facts §3).
CLIENT_ORDER_ID_PATTERN = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"
CLIENT_ORDER_ID_RE = re.compile(CLIENT_ORDER_ID_PATTERN)
# A quantity, price or size sent as a string: ASCII digits, one optional point, greater than 0;
# no sign, spaces, underscores, exponent or other scripts' digits.
POSITIVE_DECIMAL_PATTERN = r"^(0*[1-9][0-9]*(\.[0-9]+)?|0+\.[0-9]*[1-9][0-9]*)$"
_POSITIVE_DECIMAL_RE = re.compile(POSITIVE_DECIMAL_PATTERN)

# Binance's kline intervals: spot's, shortest first; futures have the same list without "1s" (facts §3).
SPOT_INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
                  "1d", "3d", "1w", "1M")

ORDER_SIDES = ("BUY", "SELL")
ORDER_TYPES = ("MARKET", "LIMIT")
# An order's sizes, of which it takes exactly one (none with closePosition), in the order a refusal picks.
ORDER_SIZE_FIELDS = ("quantity", "quote_quantity")
# Conditional types: Binance takes them only through its algo order service (facts §7, §13).
CONDITIONAL_ORDER_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT", "TRAILING_STOP_MARKET")
ORDER_WORKING_TYPES = ("MARK_PRICE", "CONTRACT_PRICE")
# Types that carry a limit price, and types that take closePosition (facts §7).
_PRICED_TYPES = ("LIMIT", "STOP", "TAKE_PROFIT")
_CLOSE_POSITION_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET")
# callbackRate of TRAILING_STOP_MARKET, in percent (facts §7; max 10 -> 20 on 2026-10-23).
CALLBACK_RATE_MIN, CALLBACK_RATE_MAX = Decimal("0.1"), Decimal(20)
ORDER_TIME_IN_FORCE = ("GTC", "IOC", "FOK", "GTX")
ORDER_POSITION_SIDES = ("BOTH", "LONG", "SHORT")
# Margin types, our names -> Binance's (request and symbolConfig spelling, facts "Trading surface" A).
MARGIN_TYPES = {"isolated": "ISOLATED", "cross": "CROSSED"}
# Binance's spelling -> ours (positions read back, a strategy's margin type applied to a connection).
MARGIN_TYPES_OURS = {binance: ours for ours, binance in MARGIN_TYPES.items()}

_RSA_MIN_BITS, _RSA_MAX_BITS = 2048, 4096


def positive_decimal(value: Any) -> Decimal:
    """A plain decimal string (or a JSON number) greater than 0 as a Decimal, without the zeros that end
    its fraction (they are not digits of the number, yet DynamoDB counts them against its 38: "1." and
    38 zeros is 1); ValueError otherwise."""
    if isinstance(value, str):
        if _POSITIVE_DECIMAL_RE.fullmatch(value):
            return _without_trailing_zeros(Decimal(value))
    elif isinstance(value, int | Decimal) and not isinstance(value, bool):
        number = Decimal(value)
        if number.is_finite() and number > 0:
            return _without_trailing_zeros(number)
    raise ValueError('must be a number greater than 0, as a string of digits 0-9 and an optional '
                     'decimal point, such as "0.002"')


def _without_trailing_zeros(number: Decimal) -> Decimal:
    """``number`` with the zeros that end its fraction dropped, exactly (``normalize`` would round it to
    the context's 28 digits and write 100 as 1E+2)."""
    sign, digits, exponent = number.as_tuple()
    exponent = int(exponent)  # an int: callers pass finite numbers only
    cut = 0
    while cut < -exponent and cut < len(digits) - 1 and digits[-1 - cut] == 0:
        cut += 1
    return Decimal((sign, digits[:len(digits) - cut], exponent + cut)) if cut else number


def decimal_or_none(value: Any) -> Decimal | None:
    """A stored or received number as a Decimal; None when absent (None or ""), unparsable or not finite.

    A Decimal (what DynamoDB hands back) is returned as it is, without a round trip through text.
    """
    if type(value) is not Decimal:
        if value is None or value == "":
            return None
        try:
            value = Decimal(str(value))
        except ArithmeticError:  # decimal.InvalidOperation: not a number
            return None
    return value if value.is_finite() else None


def positive_or_none(value: Any) -> Decimal | None:
    """A number Binance sends as 0 when it does not apply (an algo order's quantity with closePosition,
    a trailing stop's triggerPrice): the number when above 0, else None (absent, 0 or not a number)."""
    number = decimal_or_none(value)
    return number if number is not None and number > 0 else None


def plain_text(value: Decimal) -> str:
    """A Decimal as the API, the stored records and Binance take it: plain notation, no exponent, no
    trailing zeros, and any zero (``0.00``, ``-0``, ``0E-8``) as ``"0"``.
    """
    if not value:
        return "0"
    text = format(value, "f")  # exact: normalize() would round to the context's 28 digits
    return text.rstrip("0").rstrip(".") if "." in text else text


def plain_text_or_none(value: Decimal | None) -> str | None:
    """``plain_text`` of a number that may be absent: None stays None."""
    return None if value is None else plain_text(value)


def check_client_order_id(client_order_id: Any, field: str = "client_order_id") -> str:
    """The id itself when it follows Binance's rule, else KlineoError(INVALID_REQUEST) naming ``field``."""
    if not isinstance(client_order_id, str) or not CLIENT_ORDER_ID_RE.fullmatch(client_order_id):
        raise KlineoError(
            ErrorCategory.INVALID_REQUEST,
            "clientOrderId must be 1 to 36 characters of letters, digits and . : / _ -",
            field=field,
        )
    return client_order_id


def refuse_nulls(body: Any, clearable: tuple[str, ...]) -> None:
    """A PATCH body's null clears only the ``clearable`` settings. On a field that always has a value it is
    refused (INVALID_REQUEST naming the first such field, the message naming them all), never ignored: the
    caller would believe it cleared what stays set. ``body``: the request model (its fields sent)."""
    sent = body.model_fields_set
    nulls = [name for name in type(body).model_fields
             if name in sent and name not in clearable and getattr(body, name) is None]
    if nulls:
        raise KlineoError(
            ErrorCategory.INVALID_REQUEST,
            f"{', '.join(nulls)} cannot be cleared (null clears only {', '.join(clearable)}): leave a field "
            "out to keep its value, or send a new one",
            field=nulls[0],
        )


# The header of an exactly-once write (an order, a position close, a strategy's creation) and its bound.
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_MAX_LENGTH = 255


def check_idempotency_key(value: str) -> str:
    """The key itself when it is 1 to 255 visible ASCII characters, else KlineoError(INVALID_REQUEST) naming
    the header (the value is never repeated)."""
    if not 1 <= len(value) <= IDEMPOTENCY_KEY_MAX_LENGTH or not all("\x21" <= ch <= "\x7e" for ch in value):
        raise KlineoError(
            ErrorCategory.INVALID_REQUEST,
            f"{IDEMPOTENCY_HEADER} must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} visible ASCII characters",
            field=IDEMPOTENCY_HEADER,
        )
    return value


def keyed_request_digests(idempotency_key: str, body: Any) -> tuple[str, str]:
    """(key digest, body digest) of a request sent with an optional Idempotency-Key: sha256 of the key once
    checked (``check_idempotency_key``: 400 naming the header) and of the body's canonical JSON (a pydantic
    model, dumped as JSON). What a key's record keeps: the key itself is never stored."""
    key = check_idempotency_key(idempotency_key)
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest(), hashlib.sha256(canonical.encode()).hexdigest()


def check_symbol(symbol: Any) -> str:
    """``symbol`` itself when it has a Binance symbol's shape, else KlineoError(INVALID_REQUEST) naming
    symbol (a path parameter: never repeated)."""
    if not isinstance(symbol, str) or SYMBOL_RE.fullmatch(symbol) is None:
        raise KlineoError(ErrorCategory.INVALID_REQUEST, "symbol must be 2 to 20 capital letters or digits",
                          field="symbol")
    return symbol


def check_order_price(order_type: str | None, price: Decimal | None) -> None:
    """LIMIT, STOP and TAKE_PROFIT orders need a price above 0; market-type orders take none."""
    if order_type in _PRICED_TYPES and (price is None or not price.is_finite() or price <= 0):
        raise ValueError(f"price is required for {order_type} orders and must be greater than 0")
    if order_type is not None and order_type not in _PRICED_TYPES and price is not None:
        raise ValueError(f"price must not be sent with {order_type} orders")


def order_time_in_force(order_type: str | None, time_in_force: str | None) -> str | None:
    """The time in force an order is sent with: GTC by default for priced types, none for market types."""
    if order_type is not None and order_type not in _PRICED_TYPES and time_in_force is not None:
        raise ValueError("timeInForce applies to LIMIT, STOP and TAKE_PROFIT orders only")
    if order_type in _PRICED_TYPES and time_in_force is None:
        return "GTC"
    if time_in_force is not None and time_in_force not in ORDER_TIME_IN_FORCE:
        raise ValueError("timeInForce must be GTC, IOC, FOK or GTX")
    return time_in_force


def check_reduce_only(reduce_only: bool, position_side: str | None) -> None:
    """Binance: reduceOnly "cannot be sent in Hedge Mode" (facts §3), where the side says what closes.

    Asked by the risk gate (a 400 naming reduceOnly, like the other position-mode rules) and by the
    order values that are sent; not by the request model, whose refusals are 422s."""
    if reduce_only and position_side not in (None, "BOTH"):
        raise ValueError("reduceOnly cannot be used with positionSide LONG or SHORT: in hedge mode "
                         "reduceOnly is not sent, the side closes (SELL with positionSide LONG closes a "
                         "long, BUY with positionSide SHORT a short)")


def check_trigger(order_type: str | None, field: str, value: Decimal | None) -> None:
    """triggerPrice for STOP*/TAKE_PROFIT*; callbackRate (0.1-20 %) and an optional activationPrice for
    TRAILING_STOP_MARKET; none of them on MARKET/LIMIT. ``field`` names which of the three ``value`` is."""
    if order_type is None:
        return
    trailing = order_type == "TRAILING_STOP_MARKET"
    triggered = order_type in CONDITIONAL_ORDER_TYPES and not trailing
    required = {"triggerPrice": triggered, "callbackRate": trailing}.get(field, False)
    allowed = required or (field == "activationPrice" and trailing)
    if required and value is None:
        raise ValueError(f"{field} is required for {order_type} orders")
    if value is not None and not allowed:
        raise ValueError(f"{field} must not be sent with {order_type} orders")
    if field == "callbackRate" and value is not None and not CALLBACK_RATE_MIN <= value <= CALLBACK_RATE_MAX:
        raise ValueError("callbackRate must be between 0.1 and 20 (percent)")


def check_conditional_field(order_type: str | None, name: str, value: Any) -> None:
    """workingType and priceProtect apply to the conditional types only."""
    if value is not None and order_type is not None and order_type not in CONDITIONAL_ORDER_TYPES:
        raise ValueError(f"{name} applies to conditional orders (STOP, TAKE_PROFIT, ...) only")


def check_close_position(order_type: str | None, close_position: bool, reduce_only: bool) -> None:
    """closePosition: STOP_MARKET or TAKE_PROFIT_MARKET only, never with reduceOnly (facts §7)."""
    if not close_position:
        return
    if order_type not in _CLOSE_POSITION_TYPES:
        raise ValueError("closePosition applies to STOP_MARKET and TAKE_PROFIT_MARKET orders only")
    if reduce_only:
        raise ValueError("closePosition cannot be combined with reduceOnly (it closes the whole position)")


def check_size_beside_close(value: Decimal | None, close_position: bool) -> None:
    """Neither quantity nor quote_quantity with closePosition (the position sets it): asked of each, so that
    the refusal names the one sent."""
    if close_position and value is not None:
        raise ValueError("must not be sent with closePosition, which closes the whole position")


def check_order_size(sent: list[str], close_position: bool) -> None:
    """Exactly one of quantity and quote_quantity (``sent``: those of ``ORDER_SIZE_FIELDS`` sent), unless
    closePosition (then neither: ``check_size_beside_close``, asked of each). The request model names the
    field (``klineo.models.base.one_of_refusal``): the message names both, never a value."""
    if close_position or len(sent) == 1:
        return
    if not sent:
        raise ValueError("send exactly one of quantity and quote_quantity (USDT)")
    raise ValueError("send exactly one of quantity and quote_quantity, not both")


def check_protection(
    order_type: str | None, side: str | None, reduce_only: bool, position_side: str | None
) -> None:
    """stop_loss / take_profit ride on an entry: a MARKET or LIMIT order that opens, never a reducing one."""
    if order_type is not None and order_type not in ORDER_TYPES:
        raise ValueError("can only be attached to a MARKET or LIMIT entry")
    if reduce_only or (side, position_side) in (("SELL", "LONG"), ("BUY", "SHORT")):
        raise ValueError("cannot be attached to an order that reduces a position (it must open one)")


def pem_text(text: str) -> str:
    """A pasted PEM as it is stored and signed with: trimmed, one final line break, and when it has no real
    line break but the two characters backslash-n (copied from a JSON file or an escaped string), those as
    line breaks (a PEM's base64 and header lines never contain a backslash)."""
    text = text.strip()
    if "\n" not in text and "\\n" in text:
        text = text.replace("\\r\\n", "\n").replace("\\n", "\n").strip()
    return text + "\n"


def check_private_key(pem: str, key_type: str) -> Any:
    """The loaded Ed25519/RSA private key of a PEM string (RSA 2048-4096 bits); ValueError otherwise."""
    # cryptography loads only when a PEM key is checked: most functions never need it.
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    if "PUBLIC KEY-----" in pem and "PRIVATE KEY-----" not in pem:
        raise ValueError(f"this is a public key; paste the {key_type} PRIVATE key (PEM)")
    if "-----BEGIN" not in pem:
        raise ValueError(f"must be a PEM-encoded {key_type} private key (-----BEGIN PRIVATE KEY-----)")
    try:
        key = serialization.load_pem_private_key(pem.strip().encode("utf-8"), password=None)
    except TypeError:
        raise ValueError("the private key is password-protected; export it without a password") from None
    except (ValueError, UnsupportedAlgorithm):
        # Never chain: the underlying error may describe the key material.
        raise ValueError(f"is not a readable {key_type} private key in PEM format: paste the whole key, "
                         "from -----BEGIN PRIVATE KEY----- to -----END PRIVATE KEY-----, with its line "
                         "breaks") from None
    if key_type == "ed25519" and not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError("is a PEM private key but not an Ed25519 one")
    if key_type == "rsa":
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("is a PEM private key but not an RSA one")
        if not _RSA_MIN_BITS <= key.key_size <= _RSA_MAX_BITS:
            raise ValueError(f"RSA key must have {_RSA_MIN_BITS} to {_RSA_MAX_BITS} bits, this one has "
                             f"{key.key_size}")
    return key
