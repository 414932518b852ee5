"""Request signing for HMAC-SHA256, Ed25519 and RSA keys, over the exact query bytes that are sent.

The caller builds the percent-encoded query once (``encode_params``), signs that string
(``signature``) and sends ``query + "&signature=" + value`` unchanged. HMAC gives lower-case hex;
Ed25519 and RSA (PKCS#1 v1.5, SHA-256) give base64, which is percent-encoded here because
``+``, ``/`` and ``=`` are not safe in a query string (facts §2). ``cryptography`` is imported only
when an Ed25519 or RSA key is first used. A loaded key is kept on the ``Credentials`` it belongs to
(``Credentials.loaded_key``), so a PEM is parsed once while its credentials are cached and is
forgotten with them, never held by a cache of its own; an HMAC secret's keyed state is kept the same
way.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from klineo.binance.credentials import Credentials
from klineo.binance.enums import KeyType
from klineo.errors import ErrorCategory, KlineoError
from klineo.validation import check_private_key

__all__ = ["encode_params", "format_value", "signature"]


def format_value(value: Any) -> str:
    """A parameter value as Binance expects it: bools lower-case, numbers never in exponent form."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    if isinstance(value, list | tuple):
        return json.dumps([format_value(v) for v in value], separators=(",", ":"))
    return str(value)


# RFC 3986's unreserved characters: ``quote(text, safe="")`` leaves a text made only of them as it is.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def _escape(text: str) -> str:
    """``quote(text, safe="")``, without its work for the plain texts nearly every parameter is."""
    if (text.isascii() and text.isalnum()) or _UNRESERVED.fullmatch(text):
        return text
    return quote(text, safe="")


def encode_params(params: dict[str, Any] | None) -> str:
    """``k=v&…`` in insertion order, keys and values percent-encoded (RFC 3986, space %20); None skipped."""
    if not params:
        return ""
    texts: list[str] = []
    for key, value in params.items():
        if value is not None:
            texts += (str(key), value if type(value) is str else format_value(value))
    # Nearly every query is unreserved characters only (an order's, a fills read's): when all its texts
    # together are, each is and stays as it is, so one match replaces an escape per key and value.
    if not _UNRESERVED.fullmatch("".join(texts)):
        texts = [_escape(text) for text in texts]
    return "&".join(map("=".join, zip(texts[::2], texts[1::2], strict=True)))


def signature(payload: str, credentials: Credentials) -> str:
    """The query-string-safe signature of ``payload`` with the credentials' key."""
    key_type = credentials.key_type
    if key_type is KeyType.HMAC:
        mac = credentials.loaded_key(_hmac_key).copy()
        mac.update(payload.encode())
        return mac.hexdigest()
    key = credentials.loaded_key(_private_key)
    if key_type is KeyType.ED25519:
        raw = key.sign(payload.encode())
    else:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        raw = key.sign(payload.encode(), padding.PKCS1v15(), hashes.SHA256())
    return quote(base64.b64encode(raw).decode("ascii"), safe="")


def _hmac_key(secret: str, key_type: KeyType) -> Any:
    """The HMAC-SHA256 state keyed with ``secret``, nothing hashed yet: each signature hashes a copy.

    The one-shot ``hmac.digest`` sets the key up again on every call. Run cold, as inside a live turn
    between botocore's and requests' work (caches evicted before each call), it took about 70 us a
    call, a copy of the keyed state 20-40 us; the digests are the same.
    """
    return hmac.new(secret.encode(), digestmod="sha256")


def _private_key(pem: str, key_type: KeyType) -> Any:
    """The loaded private key for a PEM (PKCS#8) string, checked against the declared key type."""
    try:
        return check_private_key(pem, key_type.value)
    except ValueError as refusal:
        # The rule's message is user-safe; never chain (the cause may describe the key material).
        raise KlineoError(ErrorCategory.INVALID_REQUEST, f"secret: {refusal}", field="secret") from None
