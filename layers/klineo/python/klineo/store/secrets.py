"""Exchange credentials in Secrets Manager: one secret per connection, cached briefly in memory.

Name: ``<SECRET_PREFIX><user sub>/<connection id>``; SecretString JSON {"api_key","secret","key_type"}.
The cache is bounded (LRU) and entries expire, so a deleted or rotated secret is not used for long
and a container serving many users never holds every key it has ever seen.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError
from cachetools import TTLCache

from klineo.binance import Credentials, ErrorCategory, KeyType
from klineo.errors import KlineoError
from klineo.observability import logger
from klineo.settings import get_settings
from klineo.store import aws

__all__ = [
    "CACHE_MAX_ENTRIES",
    "CACHE_TTL_SECONDS",
    "clear_cache",
    "current_version",
    "delete_credentials",
    "discard_credentials",
    "get_credentials",
    "make_current",
    "put_credentials",
    "put_new_version",
    "secret_name",
]

CACHE_TTL_SECONDS = 300.0
CACHE_MAX_ENTRIES = 256

# Characters Secrets Manager allows in a name; anything else in a JWT sub (e.g. "auth0|123")
# becomes "_". Names stay unique because the connection id is random and unique on its own.
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9/_+=.@-]")


def _new_cache(max_entries: int, ttl_seconds: float,
               timer: Callable[[], float] = time.monotonic) -> TTLCache[str, Credentials]:
    """A bounded cache (least recently used goes first) whose entries expire ``ttl_seconds`` after put."""
    return TTLCache(maxsize=max_entries, ttl=ttl_seconds, timer=timer)


_cache = _new_cache(CACHE_MAX_ENTRIES, CACHE_TTL_SECONDS)
_cache_lock = threading.Lock()  # cachetools caches are not thread-safe on their own

# Secrets Manager's answer for a secret (or version) that does not exist.
_NOT_FOUND = "ResourceNotFoundException"
# Staging labels: the version Secrets Manager calls current, and a new one no connection item names yet.
_CURRENT = "AWSCURRENT"
_PENDING = "AWSPENDING"


def _gone_or(exc: ClientError) -> Exception:
    """NOT_FOUND when Secrets Manager has no such secret (or version), else ``exc`` itself."""
    if aws.error_code(exc) != _NOT_FOUND:
        return exc
    return KlineoError(ErrorCategory.NOT_FOUND, "the connection's keys are gone; add the connection again")


def _remember(key: str, creds: Credentials) -> None:
    with _cache_lock:
        _cache[key] = creds


def secret_name(user_id: str, connection_id: str) -> str:
    """The secret's name for one connection of one user."""
    return f"{get_settings().secret_prefix}{_NAME_UNSAFE.sub('_', user_id)}/{connection_id}"


def put_credentials(user_id: str, connection_id: str, creds: Credentials, version: str | None = None) -> str:
    """Create the connection's secret (its first version ``version`` when given); returns its name."""
    name = secret_name(user_id, connection_id)
    aws.secretsmanager().create_secret(
        Name=name,
        SecretString=_payload(creds),
        Description="Binance API credentials of one KLINEO exchange connection",
        Tags=[{"Key": "klineo:connection", "Value": connection_id}],
        **({"ClientRequestToken": version} if version else {}),
    )
    _remember(f"{name}#{version}" if version else name, creds)
    return name


def _payload(creds: Credentials) -> str:
    return json.dumps({"api_key": creds.api_key, "secret": creds.secret, "key_type": str(creds.key_type)})


def current_version(secret_name: str) -> str:
    """The VersionId of the secret's current version (AWSCURRENT)."""
    return aws.secretsmanager().get_secret_value(SecretId=secret_name, VersionStage=_CURRENT)["VersionId"]


def put_new_version(secret_name: str, creds: Credentials, version: str) -> None:
    """Store new key material as a new version of an existing secret, staged AWSPENDING: the current version
    (AWSCURRENT) stays where it was until ``make_current`` moves it, once the connection item names this one,
    so a replacement refused after this call never leaves Secrets Manager calling its key current.

    ``version`` (a UUID) is the ClientRequestToken, so a retried call cannot make two versions.
    NOT_FOUND when the secret is gone (its connection was deleted meanwhile).
    """
    try:
        aws.secretsmanager().put_secret_value(SecretId=secret_name, SecretString=_payload(creds),
                                              ClientRequestToken=version, VersionStages=[_PENDING])
    except ClientError as exc:  # the connection's delete deleted the secret meanwhile
        raise _gone_or(exc) from None
    _remember(f"{secret_name}#{version}", creds)


def make_current(secret_name: str, version: str) -> bool:
    """Move AWSCURRENT to ``version`` (the one it leaves becomes AWSPREVIOUS), once the connection item names
    it. Never raises: nothing signs by the stage (items name their version), so a failure is an error log
    and False, the stage left on the version before."""
    client = aws.secretsmanager()
    try:
        current = current_version(secret_name)
        if current != version:
            client.update_secret_version_stage(SecretId=secret_name, VersionStage=_CURRENT,
                                               MoveToVersionId=version, RemoveFromVersionId=current)
    except (BotoCoreError, ClientError) as exc:
        logger.error("secret's current version not moved to the connection's", extra={
            "secret_name": secret_name, "version": version, "error": type(exc).__name__})
        return False
    return True


def get_credentials(secret_name: str, version: str | None = None) -> Credentials:
    """The credentials stored under ``secret_name`` (``version``, else the current one), cached when fresh.

    Callers pass the version their connection item names: a key replaced in another container is
    then never signed with from this container's cache.
    """
    cache_key = f"{secret_name}#{version}" if version else secret_name
    with _cache_lock:
        cached = _cache.get(cache_key)
    if cached is not None:
        return cached
    request = {"SecretId": secret_name, **({"VersionId": version} if version else {})}
    try:
        value = aws.secretsmanager().get_secret_value(**request)["SecretString"]
    except ClientError as exc:
        raise _gone_or(exc) from None
    data = json.loads(value)
    creds = Credentials(api_key=data["api_key"], secret=data["secret"], key_type=KeyType(data["key_type"]))
    _remember(cache_key, creds)
    return creds


def delete_credentials(secret_name: str) -> None:
    """Delete the secret at once, without a recovery window; a secret already gone is fine.

    ForceDeleteWithoutRecovery, not the 7-30 day window: the user asked for the key to be gone,
    and a recoverable secret is a working trading key that the user believes deleted. Nothing
    is lost that matters: the user holds the key (or makes a new one on Binance) and can add
    the connection again.
    """
    with _cache_lock:  # every cached version too (``<name>#<version>``), not only the current one
        for key in [k for k in _cache if k == secret_name or k.startswith(f"{secret_name}#")]:
            _cache.pop(key, None)
    try:
        aws.secretsmanager().delete_secret(SecretId=secret_name, ForceDeleteWithoutRecovery=True)
    except ClientError as exc:
        if aws.error_code(exc) != _NOT_FOUND:
            raise
        logger.info("secret already deleted")


def discard_credentials(secret_name: str) -> bool:
    """Best-effort delete for clean-up paths: never raises; False (and an error log) when it failed."""
    try:
        delete_credentials(secret_name)
    except (BotoCoreError, ClientError) as exc:
        logger.error("secret clean-up failed; delete it by hand", extra={
            "secret_name": secret_name, "error": type(exc).__name__})
        return False
    return True


def clear_cache() -> None:
    """Forget every cached credential (tests; nothing else needs it)."""
    with _cache_lock:
        _cache.clear()
