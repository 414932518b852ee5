"""A tiny signing helper for tests that talk to the simulator over plain HTTP with `requests`.

It signs exactly the bytes it sends, and lets a test choose where the signed parameters go
(query string, form body, or both) to exercise the simulator's raw-bytes signature check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import quote, urlencode

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from .accounts import DemoAccount

__all__ = ["SignedClient", "sign_payload"]


def sign_payload(account: DemoAccount, payload: str) -> str:
    """The `signature` value for `payload`: hex for HMAC, percent-encoded base64 for Ed25519/RSA."""
    data = payload.encode()
    if account.key_type == "HMAC":
        return hmac.new(account.secret.encode(), data, hashlib.sha256).hexdigest()
    private_key = serialization.load_pem_private_key(account.private_key_pem.encode(), password=None)
    if account.key_type == "RSA":
        raw = private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        raw = private_key.sign(data)
    return quote(base64.b64encode(raw).decode(), safe="")


class SignedClient:
    """Signed and public calls for one demo account against one base URL."""

    def __init__(
        self,
        base_url: str,
        account: DemoAccount | None,
        session: requests.Session | None = None,
        timeout: float = 10.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.account = account
        self.session = session or requests.Session()
        self.timeout = timeout

    def public(self, method: str, path: str, params: dict | None = None, **kwargs) -> requests.Response:
        """An unsigned call (the API key header is sent when there is an account)."""
        headers = {"X-MBX-APIKEY": self.account.api_key} if self.account else {}
        return self.session.request(
            method,
            self.base_url + path,
            params=params,
            headers=headers,
            timeout=kwargs.pop("timeout", self.timeout),
            **kwargs,
        )

    def signed(
        self,
        method: str,
        path: str,
        params: dict | None = None,
        *,
        placement: str = "query",
        timestamp: int | None = None,
        api_key: str | None = None,
        signature: str | None = None,
        timeout: float | None = None,
    ) -> requests.Response:
        """A signed call; placement is "query", "body" or "both" (half each, signature in the body)."""
        params = dict(params or {})
        params.setdefault("timestamp", timestamp if timestamp is not None else int(time.time() * 1000))
        items = list(params.items())
        if placement == "query":
            query, body = urlencode(items), ""
        elif placement == "body":
            query, body = "", urlencode(items)
        else:
            half = max(1, len(items) // 2)
            query, body = urlencode(items[:half]), urlencode(items[half:])
        sig = signature if signature is not None else sign_payload(self.account, query + body)
        if placement == "query":
            query = f"{query}&signature={sig}"
        else:
            body = f"{body}&signature={sig}"
        url = self.base_url + path + (f"?{query}" if query else "")
        headers = {"X-MBX-APIKEY": api_key if api_key is not None else self.account.api_key}
        if body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        return self.session.request(
            method,
            url,
            data=body.encode() if body else None,
            headers=headers,
            timeout=timeout or self.timeout,
        )
