"""Demo accounts: loaded once from demo-accounts.json, with their keys parsed once.

Each account has an API key, an environment ("production" or "testnet"), permissions,
balances and its starting futures position mode (`dual_side_position`: true = hedge mode).
HMAC accounts carry a secret; Ed25519 and RSA accounts name PEM files (relative to
the accounts file): the public key verifies signatures, the private key is for clients.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
from pathlib import Path
from urllib.parse import unquote_to_bytes

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

__all__ = ["PRODUCTION", "TESTNET", "DemoAccount", "Permissions", "load_accounts"]

PRODUCTION = "production"
TESTNET = "testnet"
ENVIRONMENTS = (PRODUCTION, TESTNET)
KEY_TYPES = ("HMAC", "ED25519", "RSA")


@dataclasses.dataclass(frozen=True)
class Permissions:
    """What the key may do, as set on Binance's API management page."""

    reading: bool = True
    spot_trading: bool = False
    margin: bool = False
    futures: bool = False
    withdrawals: bool = False
    ip_allow_list: tuple[str, ...] = ()

    def allows_ip(self, ip: str) -> bool:
        """True when there is no allow-list or the caller's IP is on it."""
        return not self.ip_allow_list or ip in self.ip_allow_list


@dataclasses.dataclass(frozen=True)
class DemoAccount:
    """One demo account with its key material parsed and ready to verify signatures."""

    id: str
    description: str
    environment: str
    key_type: str
    api_key: str
    permissions: Permissions
    spot_balances: dict[str, str]
    futures_balances: dict[str, str]
    create_time: int
    uid: int
    dual_side_position: bool = False
    secret: str | None = dataclasses.field(default=None, repr=False)  # never in a repr (a failure output)
    public_key_path: Path | None = None
    private_key_path: Path | None = None
    _public_key: object = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def private_key_pem(self) -> str | None:
        """The private key PEM text (for clients signing with Ed25519 or RSA)."""
        return self.private_key_path.read_text() if self.private_key_path else None

    def verify(self, payload: bytes, signature: bytes) -> bool:
        """Check `signature` (raw bytes of the parameter as received) over `payload`.

        HMAC: hex, compared case-insensitively. Ed25519/RSA: percent-encoded base64.
        """
        if self.key_type == "HMAC":
            expected = hmac.new(self.secret.encode(), payload, hashlib.sha256).hexdigest().encode()
            return hmac.compare_digest(expected, signature.lower())
        try:
            raw_signature = base64.b64decode(unquote_to_bytes(signature), validate=True)
        except (binascii.Error, ValueError):
            return False
        try:
            if self.key_type == "ED25519":
                self._public_key.verify(raw_signature, payload)
            else:
                self._public_key.verify(raw_signature, payload, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True

    def summary(self) -> dict:
        """A JSON-able description without the secret (for GET /__sim__/accounts)."""
        return {
            "id": self.id,
            "description": self.description,
            "environment": self.environment,
            "key_type": self.key_type,
            "api_key": self.api_key,
            "private_key_file": str(self.private_key_path) if self.private_key_path else None,
            "permissions": dataclasses.asdict(self.permissions),
            "dual_side_position": self.dual_side_position,
            "balances": {"spot": self.spot_balances, "futures": self.futures_balances},
        }


def _load_public_key(path: Path, key_type: str):
    key = serialization.load_pem_public_key(path.read_bytes())
    expected = ed25519.Ed25519PublicKey if key_type == "ED25519" else rsa.RSAPublicKey
    if not isinstance(key, expected):
        raise ValueError(f"{path} is not a {key_type} public key")
    return key


def _parse_account(entry: dict, base_dir: Path, index: int) -> DemoAccount:
    key_type = entry["key_type"].upper()
    if key_type not in KEY_TYPES:
        raise ValueError(f"account {entry['id']}: key_type must be one of {KEY_TYPES}")
    if entry["environment"] not in ENVIRONMENTS:
        raise ValueError(f"account {entry['id']}: environment must be one of {ENVIRONMENTS}")
    perms = dict(entry.get("permissions", {}))
    perms["ip_allow_list"] = tuple(perms.get("ip_allow_list", ()))
    public_key_path = private_key_path = public_key = None
    if key_type != "HMAC":
        public_key_path = (base_dir / entry["public_key_file"]).resolve()
        public_key = _load_public_key(public_key_path, key_type)
        if entry.get("private_key_file"):
            private_key_path = (base_dir / entry["private_key_file"]).resolve()
    elif not entry.get("secret"):
        raise ValueError(f"account {entry['id']}: HMAC accounts need a secret")
    balances = entry.get("balances", {})
    return DemoAccount(
        id=entry["id"],
        description=entry.get("description", ""),
        environment=entry["environment"],
        key_type=key_type,
        api_key=entry["api_key"],
        permissions=Permissions(**perms),
        spot_balances=dict(balances.get("spot", {})),
        futures_balances=dict(balances.get("futures", {})),
        create_time=int(entry.get("create_time", 1735689600000)),
        uid=354937868 + index,
        dual_side_position=bool(entry.get("dual_side_position", False)),
        secret=entry.get("secret"),
        public_key_path=public_key_path,
        private_key_path=private_key_path,
        _public_key=public_key,
    )


def load_accounts(path: Path) -> dict[str, DemoAccount]:
    """Read and validate the accounts file; returns accounts by id (keys parsed once here)."""
    path = Path(path)
    document = json.loads(path.read_text())
    accounts = {}
    for index, entry in enumerate(document["accounts"]):
        account = _parse_account(entry, path.parent, index)
        if account.id in accounts:
            raise ValueError(f"duplicate account id {account.id}")
        accounts[account.id] = account
    if len({a.api_key for a in accounts.values()}) != len(accounts):
        raise ValueError("API keys must be unique")
    return accounts
