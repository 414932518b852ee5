"""A user's Binance API key and secret, kept out of every repr, str and log line."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from klineo.binance.enums import KeyType
from klineo.binance.errors import ErrorCategory, KlineoError

__all__ = ["Credentials", "mask_api_key"]

# Binance API keys are 64 alphanumeric characters; anything printable without spaces is accepted so a
# future format does not break, but control characters and whitespace never reach an HTTP header.
_API_KEY_RE = re.compile(r"[\x21-\x7e]{1,256}")


def mask_api_key(api_key: str) -> str:
    """The API key as it may be shown: first and last four characters only."""
    if len(api_key) <= 8:
        return "****"
    return f"{api_key[:4]}…{api_key[-4:]}"


@dataclass(frozen=True, slots=True)
class Credentials:
    """An API key, its secret (HMAC secret or PEM private key) and the key type; never printed."""

    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    key_type: KeyType = KeyType.HMAC

    def __post_init__(self) -> None:
        if not isinstance(self.api_key, str) or not _API_KEY_RE.fullmatch(self.api_key):
            raise KlineoError(ErrorCategory.INVALID_REQUEST, "API key has an invalid format", field="api_key")
        if not isinstance(self.secret, str) or not self.secret.strip():
            raise KlineoError(ErrorCategory.INVALID_REQUEST, "API secret is missing", field="secret")
        key_type = self.key_type
        if not isinstance(key_type, KeyType):
            try:
                key_type = KeyType(str(key_type).lower())
            except ValueError:
                raise KlineoError(
                    ErrorCategory.INVALID_REQUEST, "key type must be hmac, ed25519 or rsa", field="key_type"
                ) from None
            object.__setattr__(self, "key_type", key_type)
        if key_type is KeyType.HMAC and not _API_KEY_RE.fullmatch(self.secret):
            raise KlineoError(
                ErrorCategory.INVALID_REQUEST, "API secret has an invalid format", field="secret"
            )

    @property
    def api_key_masked(self) -> str:
        """The API key with all but its first and last four characters hidden."""
        return mask_api_key(self.api_key)

    def __repr__(self) -> str:
        return f"Credentials(api_key={self.api_key_masked!r}, secret='***', key_type={self.key_type.value!r})"

    __str__ = __repr__
