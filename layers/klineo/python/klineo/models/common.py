"""Request and response models of the connection routes of the HTTP API (pydantic).

The futures and strategies routes add theirs in ``klineo.models.futures`` and
``klineo.models.strategies``; the field types every model module shares (``ApiModel``,
``DecimalString``, ...) live in ``klineo.models.fields``, and the balance, candles and kill-switch
models in modules of their own: each function creates only its route's models, so none are
re-exported here (importing this module must not build them for the connection functions). The
error body every route answers with is ``klineo.models.errors`` (only the OpenAPI
document needs it as a model). The spot test's answer is ``klineo.models.connection_test`` (used
here for a connection's ``last_test``): POST /exchange-connections/{id}/test answers with it and
loads none of the others.

Request models forbid unknown fields and say, per field, what is wrong. Validator messages never
repeat the value they reject: a secret must not come back in an error body.
"""


import unicodedata
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
)

from klineo.models.base import BaseModel
from klineo.models.connection_test import ConnectionTestResponse
from klineo.models.fields import ApiModel, ConnectionEnvironment, DecimalString
from klineo.models.futures_account import FuturesTestVerdict
from klineo.validation import (
    API_KEY_PATTERN,
    CONNECTION_ID_PATTERN,
    SYMBOL_PATTERN,
    check_private_key,
    pem_text,
)

__all__ = [
    "API_KEY_PATTERN",
    "CONNECTION_ID_PATTERN",
    "SYMBOL_PATTERN",
    "ApiModel",
    "ConnectionCreateRequest",
    "ConnectionEnvironment",
    "ConnectionLabel",
    "ConnectionListResponse",
    "ConnectionResponse",
    "ConnectionTestRequest",
    "DecimalString",
    "KeyMaterial",
    "KeyTypeName",
    "check_label",
]


KeyTypeName = Literal["hmac", "ed25519", "rsa"]


def _lowercase(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


# As sent: any case ("HMAC", as Binance and the simulator's demo-accounts.json write it), read lowercase.
KeyTypeInput = Annotated[KeyTypeName, BeforeValidator(_lowercase)]

_HMAC_SECRET_MIN, _HMAC_SECRET_MAX = 16, 256


# ---------------------------------------------------------------- connections


# What a label may hold beside printable text: a no-break or other Unicode space (Zs: a French "Compte : X"
# or a pasted text) and the joiners that build emoji and scripts. Control characters, line breaks and the
# other format characters (bidi overrides) stay refused.
_LABEL_JOINERS = frozenset({"\u200c", "\u200d"})


def _label_character_ok(ch: str) -> bool:
    return ch.isprintable() or ch in _LABEL_JOINERS or unicodedata.category(ch) == "Zs"


def check_label(value: str) -> str:
    """A connection label trimmed; ValueError when blank or holding control characters."""
    value = value.strip()
    if not value:
        raise ValueError("label must not be blank")
    if not all(_label_character_ok(ch) for ch in value):
        raise ValueError("label must not contain control characters")
    return value


def _trimmed(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("label must not be blank")
    return value.strip() if isinstance(value, str) else value


# The one label rule: trimmed, then 1-64 characters, not blank, no control characters (the bound is the
# label kept: spaces pasted around a 64-character name do not make it too long).
ConnectionLabel = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_label),
                            BeforeValidator(_trimmed)]


class KeyMaterial(ApiModel):
    """A key pair as sent: the fields the test, create and key-replacement bodies share."""

    environment: ConnectionEnvironment
    key_type: KeyTypeInput = "hmac"
    # repr=False: the model's repr (Powertools' "Calling API Route Handler" debug line) shows no full key.
    api_key: Annotated[str, Field(pattern=API_KEY_PATTERN, repr=False)]
    secret: SecretStr = Field(description="HMAC secret key, or the Ed25519/RSA private key in PEM (its line "
                              "breaks may be written as \\n, as in a JSON file)")

    @field_validator("secret")
    @classmethod
    def _secret_matches_key_type(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        """HMAC: a printable secret; Ed25519/RSA: a PEM private key that parses (RSA 2048-4096 bits)."""
        key_type = info.data.get("key_type")
        text = value.get_secret_value()
        if key_type == "hmac":
            if not _HMAC_SECRET_MIN <= len(text) <= _HMAC_SECRET_MAX:
                raise ValueError(f"HMAC secret must be {_HMAC_SECRET_MIN} to {_HMAC_SECRET_MAX} characters "
                                 "(Binance gives 64)")
            if not all("\x21" <= ch <= "\x7e" for ch in text):
                raise ValueError("HMAC secret must be visible ASCII characters without spaces")
        elif key_type in ("ed25519", "rsa"):
            pem = pem_text(text)  # a key copied from a JSON file has its line breaks written as \n
            check_private_key(pem, key_type)
            return SecretStr(pem)
        return value


class ConnectionTestRequest(KeyMaterial):
    """Keys to test without storing them (POST /exchange-connections/test).

    A ``label`` is taken and not used, so that a frontend can test the very body it will save.
    """

    label: ConnectionLabel | None = Field(
        default=None, description="Not used by the test; accepted so the create body can be tested as it is")


class ConnectionCreateRequest(KeyMaterial):
    """A new exchange connection (POST /exchange-connections): keys plus a label."""

    label: ConnectionLabel


class ConnectionResponse(BaseModel):
    """One stored connection; the API key masked, the secret never."""

    id: str
    label: str
    environment: ConnectionEnvironment
    key_type: KeyTypeName
    api_key_masked: str
    futures_enabled: bool
    created_at: str
    last_test: ConnectionTestResponse | None = None
    futures_last_test: FuturesTestVerdict | None = None
    kill_switch: bool = False
    max_leverage: int
    max_notional_usdt: DecimalString
    position_mode: Literal["one_way", "hedge"] | None = None
    margin_type: Literal["isolated", "cross"] | None = None
    leverage: int | None = None
    consecutive_failures: int = 0
    disabled_at: str | None = None
    disabled_reason: str | None = None
    deleting_since: str | None = Field(
        default=None,
        description="When a DELETE of this connection began; set only while it has not finished (no order is "
        "placed on the connection any more): send the DELETE again to finish it.",
    )


class ConnectionListResponse(BaseModel):
    """The caller's connections."""

    connections: list[ConnectionResponse]

