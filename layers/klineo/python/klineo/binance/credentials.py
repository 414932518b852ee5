"""A user's Binance API key and secret, kept out of every repr, str and log line."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from klineo.binance.enums import KeyType
from klineo.errors import ErrorCategory, KlineoError

__all__ = ["Credentials", "mask_api_key"]

# Binance API keys are 64 alphanumeric characters; anything printable without spaces is accepted so a
# future format does not break, but control characters and whitespace never reach an HTTP header.
_API_KEY_RE = re.compile(r"[\x21-\x7e]{1,256}")


def mask_api_key(api_key: str) -> str:
    """The API key as it may be shown: first and last four characters only."""
    if len(api_key) <= 8:
        return "****"
    return f"{api_key[:4]}…{api_key[-4:]}"


class Credentials:
    """An API key, its secret (HMAC secret or PEM private key) and the key type; immutable, never printed.

    A plain slotted class rather than a dataclass: ``dataclasses`` pulls ``inspect`` into the cold start.
    """

    __slots__ = ("_loaded_key", "api_key", "key_type", "secret")

    api_key: str
    secret: str
    key_type: KeyType

    def __init__(self, api_key: str, secret: str, key_type: KeyType | str = KeyType.HMAC) -> None:
        if not isinstance(api_key, str) or not _API_KEY_RE.fullmatch(api_key):
            raise KlineoError(ErrorCategory.INVALID_REQUEST, "API key has an invalid format", field="api_key")
        if not isinstance(secret, str) or not secret.strip():
            raise KlineoError(ErrorCategory.INVALID_REQUEST, "API secret is missing", field="secret")
        if not isinstance(key_type, KeyType):
            try:
                key_type = KeyType(str(key_type).lower())
            except ValueError:
                raise KlineoError(
                    ErrorCategory.INVALID_REQUEST, "key type must be hmac, ed25519 or rsa", field="key_type"
                ) from None
        if key_type is KeyType.HMAC and not _API_KEY_RE.fullmatch(secret):
            raise KlineoError(
                ErrorCategory.INVALID_REQUEST, "API secret has an invalid format", field="secret"
            )
        object.__setattr__(self, "api_key", api_key)
        object.__setattr__(self, "secret", secret)
        object.__setattr__(self, "key_type", key_type)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Credentials are immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Credentials are immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return (self.api_key, self.secret, self.key_type) == (other.api_key, other.secret, other.key_type)

    def __hash__(self) -> int:
        return hash((self.api_key, self.secret, self.key_type))

    def __reduce__(self):
        return (Credentials, (self.api_key, self.secret, self.key_type))

    def loaded_key(self, load: Callable[[str, KeyType], Any]) -> Any:
        """``load(secret, key_type)`` (a parsed private key, or an HMAC secret's keyed state), computed
        once and kept on these credentials.

        The parsed key then lives exactly as long as the credentials that hold it (the secrets cache's
        expiry, its eviction when the connection is deleted or its keys replaced): no cache of its own
        keeps a deleted key in memory. A load that raises is not kept.
        """
        try:
            return self._loaded_key
        except AttributeError:
            key = load(self.secret, self.key_type)
            object.__setattr__(self, "_loaded_key", key)
            return key

    @property
    def api_key_masked(self) -> str:
        """The API key with all but its first and last four characters hidden."""
        return mask_api_key(self.api_key)

    def __repr__(self) -> str:
        return f"Credentials(api_key={self.api_key_masked!r}, secret='***', key_type={self.key_type.value!r})"

    __str__ = __repr__
