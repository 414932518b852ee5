"""Dev JWTs for the local stack, checked the way API Gateway's JWT authorizer checks them.

The local stack signs tokens with an RS256 key kept in its state folder (``local/.state/`` by
default, gitignored), so a token printed by ``python -m local.stack --print-token USER`` in another
terminal is accepted by the running stack. Issuer and audience come from template.yaml's
``KlineoJwt`` authorizer, resolved for the local stack. A request whose token is missing, not a
Bearer token, unsigned (``alg: none``), signed by another key, expired, not yet valid or meant for
another issuer or audience is refused with 401 ``{"message":"Unauthorized"}`` before any handler runs.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from local.template import Resolver

__all__ = [
    "DEFAULT_TOKEN_TTL_S",
    "AuthorizerConfig",
    "DevJwtAuthority",
    "Unauthorized",
    "authorizer_config",
    "claims_as_strings",
]

DEFAULT_TOKEN_TTL_S = 12 * 3600
KEY_FILE_NAME = "dev-jwt-key.pem"
KEY_ID = "klineo-local-dev"


class Unauthorized(Exception):
    """The request's bearer token would not pass API Gateway's JWT authorizer."""


@dataclass(frozen=True)
class AuthorizerConfig:
    """What the template's JWT authorizer checks: the header it reads, the issuer, the audiences."""

    name: str
    header: str
    issuer: str
    audiences: tuple[str, ...]


def authorizer_config(resolver: Resolver) -> AuthorizerConfig:
    """The HttpApi's default JWT authorizer, resolved (issuer and audience) with ``resolver``."""
    for spec in resolver.template["Resources"].values():
        if spec.get("Type") != "AWS::Serverless::HttpApi":
            continue
        auth = spec["Properties"]["Auth"]
        name = auth["DefaultAuthorizer"]
        config = auth["Authorizers"][name]
        identity = config.get("IdentitySource", "$request.header.Authorization")
        jwt_config = resolver.resolve(config["JwtConfiguration"])
        audiences = jwt_config["audience"]
        return AuthorizerConfig(
            name=name,
            header=identity.removeprefix("$request.header.").lower(),
            issuer=str(jwt_config["issuer"]),
            audiences=tuple(str(a) for a in (audiences if isinstance(audiences, list) else [audiences])),
        )
    raise ValueError("template.yaml declares no AWS::Serverless::HttpApi")


def claims_as_strings(claims: dict[str, Any]) -> dict[str, str]:
    """Claims as API Gateway passes them to a function: every value a string, arrays as ``[a b]``."""

    def text(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return "[" + " ".join(text(v) for v in value) + "]"
        if isinstance(value, dict):
            return json.dumps(value, separators=(",", ":"))
        return str(value)

    return {name: text(value) for name, value in claims.items()}


class DevJwtAuthority:
    """Issues and verifies the local stack's RS256 dev tokens."""

    def __init__(self, private_key: rsa.RSAPrivateKey, config: AuthorizerConfig, *, clock=time.time):
        self._private_key = private_key
        self._public_key = private_key.public_key()
        self.config = config
        self._clock = clock

    @classmethod
    def load_or_create(cls, state_dir: Path, config: AuthorizerConfig) -> DevJwtAuthority:
        """The authority whose key lives in ``state_dir`` (a new 2048-bit key is made on first use)."""
        path = Path(state_dir) / KEY_FILE_NAME
        if path.is_file():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError(f"{path} does not hold an RSA private key")
            return cls(key, config)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        return cls(key, config)

    def issue(
        self,
        sub: str,
        *,
        ttl_s: int = DEFAULT_TOKEN_TTL_S,
        scopes: tuple[str, ...] = (),
        extra: dict[str, Any] | None = None,
    ) -> str:
        """A signed token for ``sub``, like a Cognito ID token; ``extra`` adds claims (None drops one)."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "sub": sub,
            "iss": self.config.issuer,
            "aud": self.config.audiences[0],
            "iat": now,
            "auth_time": now,
            "exp": now + ttl_s,
            "token_use": "id",
            "cognito:username": sub,
            "email": f"{sub}@example.com",
        }
        if scopes:
            claims["scope"] = " ".join(scopes)
        for name, value in (extra or {}).items():
            if value is None:
                claims.pop(name, None)  # None removes a claim (tests of tokens without it)
            else:
                claims[name] = value
        return jwt.encode(claims, self._private_key, algorithm="RS256", headers={"kid": KEY_ID})

    def verify(self, authorization: str | None) -> dict[str, Any]:
        """The claims of the Authorization header's bearer token; raises Unauthorized otherwise."""
        if not authorization:
            raise Unauthorized("no Authorization header")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("not a Bearer token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise Unauthorized("malformed token") from error
        if header.get("alg") != "RS256" or header.get("kid") != KEY_ID:
            raise Unauthorized("token not signed with the local dev key")
        try:
            claims = jwt.decode(
                token,
                self._public_key,
                algorithms=["RS256"],
                issuer=self.config.issuer,
                options={"require": ["exp", "iss", "sub"], "verify_aud": False},
                leeway=0,
            )
        except jwt.PyJWTError as error:
            raise Unauthorized(type(error).__name__) from error
        if claims.get("iat", 0) > self._clock() + 1:
            raise Unauthorized("token issued in the future")
        # API Gateway accepts a token whose `aud` or (access tokens) `client_id` names an audience.
        audiences = claims.get("aud", claims.get("client_id"))
        audiences = audiences if isinstance(audiences, list) else [audiences]
        if not set(self.config.audiences) & {str(a) for a in audiences if a is not None}:
            raise Unauthorized("wrong audience")
        return claims

    @staticmethod
    def scopes_of(claims: dict[str, Any]) -> list[str] | None:
        """The scopes API Gateway reports: the `scope` (or `scp`) claim split on spaces, else null."""
        raw = claims.get("scope", claims.get("scp"))
        if raw is None:
            return None
        return raw.split() if isinstance(raw, str) else [str(s) for s in raw]
