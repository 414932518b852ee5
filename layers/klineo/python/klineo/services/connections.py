"""Exchange connections: the capability-based spot test, on keys in a body or stored keys (create,
list and a connection's answer: ``klineo.services.connection_records``; delete:
``klineo.services.connection_delete``).

The test (audit §10) is spot only and never calls a futures URL:
  1. GET /api/v3/time: connectivity, and the server-time offset every signed call then uses;
  2. GET /api/v3/account signed with that server time: the key works, or the test fails;
  3. permission checks that only add warnings (cannot trade, can withdraw, no SPOT permission,
     and on production /sapi/v1/account/apiRestrictions without an IP restriction).
Spot success is overall success.

The account answer's ``uid`` (the Binance account's user id, docs/binance-facts.md §22) comes back beside
the result (``SpotTest.uid``), never in it: the connection keeps it so that a new key of another account is
refused (``klineo.services.connection_lifecycle``). None when the answer has no usable ``uid``.

When Binance answers -2015/-2014 ("Invalid API-key, IP, or permissions") the test goes one step
further, because that one code covers the three mistakes users make most:

* Rule for the IP allow-list (chosen here; Binance documents no way to tell): an IP-restricted
  key called from another address gets -2015 on EVERY signed endpoint, apiRestrictions included,
  exactly like an unknown key, so apiRestrictions cannot say "IP". What can: the same call signed
  with a throwaway secret. Binance can only check a signature for a key it knows, so -1022
  (bad signature) to that probe proves the key exists on this environment; the real request's
  -2015 then means the IP is not on the key's allow-list (reading is always on for Binance keys).
  The local simulator checks the signature before the IP, as this rule assumes. Whether real
  Binance checks the IP first is unverified: if it does, the probe answers -2015 too and the
  user gets the general message, which names the allow-list (and the egress IP) among the causes
  — never a wrong "ip_whitelist".
* Otherwise the key is tried once on the other environment (production <-> testnet); if it works
  there the answer says so ("this key belongs to the testnet").
"""

from __future__ import annotations

import secrets as token_source
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from klineo.binance import Credentials, Environment, ErrorCategory, KeyType, Market, endpoints, get_client
from klineo.errors import KeyOfOtherEnvironment, KlineoError
from klineo.models.connection_test import ConnectionTestResponse, KeyWarning
from klineo.observability import logger, metrics
from klineo.services.key_health import READ, note_key_answer
from klineo.settings import get_settings
from klineo.store import connections as connection_store

if TYPE_CHECKING:
    # The functions that take keys in their body import their request model; this only reads it.
    from klineo.models.common import ConnectionTestRequest, KeyMaterial

__all__ = [
    "SpotTest",
    "check_keys",
    "check_stored_connection",
    "credentials_of",
    "failed_test_error",
    "key_account_uid",
    "now_iso",
    "run_spot_test",
]

# Failures that are a verdict on the key (answered as ok=false); anything else (rate limit, ban,
# Binance down, network, clock) means no verdict was reached and is raised as an error.
_VERDICTS = frozenset({
    ErrorCategory.PERMISSION,
    ErrorCategory.SIGNATURE,
    ErrorCategory.IP_WHITELIST,
    ErrorCategory.INVALID_REQUEST,
})
_UNKNOWN_KEY_CODES = frozenset({-2015, -2014})
_ENV_NAMES = {Environment.PRODUCTION: "production", Environment.TESTNET: "testnet"}


@dataclass(frozen=True)
class SpotTest:
    """The spot test's answer, and the uid of the account the key belongs to (None: the test failed, or
    Binance's answer had no uid)."""

    result: ConnectionTestResponse
    uid: int | None = None


def now_iso() -> str:
    """Now, as a test's ``tested_at`` and a connection's ``created_at`` are written (UTC, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _other(environment: Environment) -> Environment:
    return Environment.TESTNET if environment is Environment.PRODUCTION else Environment.PRODUCTION


@cache
def _decoy_private_key(key_type: KeyType) -> str:
    """A throwaway private key of the same type (made once per container), for the signature probe."""
    # cryptography loads only when an RSA or Ed25519 key is probed: the connection functions that
    # never probe one (list, ...) import this module too.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    key = ed25519.Ed25519PrivateKey.generate() if key_type is KeyType.ED25519 else rsa.generate_private_key(
        public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _decoy(creds: Credentials) -> Credentials:
    if creds.key_type is KeyType.HMAC:
        secret = token_source.token_hex(32)
    else:
        secret = _decoy_private_key(creds.key_type)
    return Credentials(api_key=creds.api_key, secret=secret, key_type=creds.key_type)


def _key_known(client: Any, creds: Credentials) -> bool:
    """True when Binance knows the key on this environment (it can check a signature for it)."""
    try:
        endpoints.spot_account(client, _decoy(creds), omit_zero_balances=True)
    except KlineoError as exc:
        return exc.category is ErrorCategory.SIGNATURE
    return True


def _works_on(environment: Environment, creds: Credentials) -> bool:
    try:
        endpoints.spot_account(get_client(Market.SPOT, environment), creds, omit_zero_balances=True)
    except KlineoError:
        return False
    return True


def _allow_list_hint(egress_ip: str) -> str:
    if egress_ip:
        return f"put {egress_ip} (this server's address) on the key's IP allow-list"
    return ("this server has no fixed outgoing IP address, so a key restricted to trusted IPs cannot be "
            "used: create a key without IP restriction")


def _signature_message(key_type: KeyType) -> str:
    if key_type is KeyType.HMAC:
        return "Binance rejected the signature: the secret key does not belong to this API key."
    return (f"Binance rejected the signature: this {key_type.value} private key does not match the public "
            "key registered for this API key.")


def _diagnose(exc: KlineoError, client: Any, creds: Credentials,
              environment: Environment) -> tuple[ErrorCategory, str, Environment | None]:
    """(category, user-safe message, environment the key belongs to if it is the other one)."""
    egress_ip = get_settings().egress_ip
    env_name = _ENV_NAMES[environment]
    if exc.code in _UNKNOWN_KEY_CODES:
        if exc.code == -2015 and _key_known(client, creds):
            return (ErrorCategory.IP_WHITELIST,
                    f"Binance refused this server's IP address for this key: {_allow_list_hint(egress_ip)}.",
                    None)
        other = _other(environment)
        if _works_on(other, creds):
            return (ErrorCategory.PERMISSION,
                    f"This key belongs to the Binance {_ENV_NAMES[other]}, not {env_name}: choose the "
                    f"environment '{_ENV_NAMES[other]}'.", other)
        return (ErrorCategory.PERMISSION,
                f"Binance does not accept this API key on {env_name}: check that it is copied whole and "
                f"still exists, and that 'Enable Reading' is on. If the key is restricted to trusted IPs, "
                f"{_allow_list_hint(egress_ip)}.", None)
    if exc.category is ErrorCategory.SIGNATURE:
        return ErrorCategory.SIGNATURE, _signature_message(creds.key_type), None
    return exc.category, exc.message, None


def _permission_warnings(account: dict[str, Any], client: Any, creds: Credentials,
                         environment: Environment) -> tuple[list[KeyWarning], bool | None, bool]:
    """(warnings, ip_restricted or None when unknown, can_withdraw): findings that never fail the test."""
    warnings: list[KeyWarning] = []
    egress_ip = get_settings().egress_ip
    if not account.get("canTrade", False):
        warnings.append(KeyWarning(code="cannot_trade", message=(
            "This key cannot trade: turn on 'Enable Spot & Margin Trading' for it on Binance if KLINEO "
            "should place orders.")))
    if "SPOT" not in (account.get("permissions") or []):
        warnings.append(KeyWarning(code="no_spot_permission", message=(
            "The account has no SPOT permission on Binance; spot trading will be refused.")))
    can_withdraw = bool(account.get("canWithdraw", False))
    ip_restricted: bool | None = None
    if environment is Environment.PRODUCTION:
        # Testnet has no /sapi (facts §1), so this is production only.
        try:
            restrictions = endpoints.spot_api_restrictions(client, creds)
        except KlineoError as exc:
            logger.info("apiRestrictions unavailable", extra={"category": str(exc.category)})
            warnings.append(KeyWarning(code="restrictions_unknown", message=(
                "Could not read the key's restrictions from Binance; check on Binance that withdrawals "
                "are off and the key is restricted to trusted IPs.")))
        else:
            ip_restricted = bool(restrictions.get("ipRestrict", False))
            can_withdraw = bool(restrictions.get("enableWithdrawals", can_withdraw))
            if not ip_restricted:
                hint = (f"restrict it to {egress_ip}, this server's address" if egress_ip
                        else "restrict it to trusted IPs if you can")
                warnings.append(KeyWarning(code="no_ip_restriction", message=(
                    f"This key accepts calls from any IP address: {hint}.")))
    if can_withdraw:
        warnings.insert(0, KeyWarning(code="withdrawals_enabled", message=(
            "This key can withdraw funds. KLINEO never withdraws: turn 'Enable Withdrawals' off so a "
            "leaked key cannot empty the account.")))
    return warnings, ip_restricted, can_withdraw


def _account_uid(account: dict[str, Any]) -> int | None:
    """The account answer's uid, when it is a positive whole number (an int, or digits)."""
    uid = account.get("uid")
    if isinstance(uid, str) and uid.isdigit():
        uid = int(uid)
    return uid if isinstance(uid, int) and not isinstance(uid, bool) and uid > 0 else None


def run_spot_test(creds: Credentials, environment: Environment | str) -> SpotTest:
    """The capability-based spot test; never calls a futures URL. Raises only when no verdict was reached."""
    environment = Environment(environment)
    client = get_client(Market.SPOT, environment)
    client.sync_time()  # GET /api/v3/time: connectivity first, and the offset for the signed call
    common: dict[str, Any] = {
        "environment": _ENV_NAMES[environment],
        "server_time_offset_ms": round(client.server_time_offset_ms()),
        "egress_ip": get_settings().egress_ip or None,
        "tested_at": now_iso(),
    }
    try:
        account = endpoints.spot_account(client, creds, omit_zero_balances=True)
    except KlineoError as exc:
        if exc.category not in _VERDICTS:
            raise
        category, message, suggested = _diagnose(exc, client, creds, environment)
        metrics.add_metric(name="ConnectionTestFailed", unit="Count", value=1)
        return SpotTest(ConnectionTestResponse(
            ok=False, category=category.value, message=message, retryable=category.retryable,
            suggested_environment=_ENV_NAMES[suggested] if suggested else None, **common,
        ))
    warnings, ip_restricted, can_withdraw = _permission_warnings(account, client, creds, environment)
    return SpotTest(ConnectionTestResponse(
        ok=True, warnings=warnings, permissions=list(account.get("permissions") or []),
        can_trade=bool(account.get("canTrade", False)), can_withdraw=can_withdraw,
        ip_restricted=ip_restricted, **common,
    ), _account_uid(account))


def failed_test_error(result: ConnectionTestResponse, what: str | None = None,
                      other_environment: str | None = None, field: str = "environment") -> KlineoError:
    """The error a route storing keys answers for a failed spot test: the test's category and message (after
    ``what``, when given), and for a key of the other environment its ``suggested_environment`` as the test
    route answers it (``KeyOfOtherEnvironment`` naming ``field``; ``other_environment``: a message of the
    route's own for it, e.g. one whose connection cannot change its environment)."""
    def said(message: str) -> str:
        return f"{what}: {message}" if what else message

    if result.suggested_environment is None:
        return KlineoError(ErrorCategory(result.category), said(str(result.message)))
    return KeyOfOtherEnvironment(said(other_environment or str(result.message)), result.suggested_environment,
                                 field=field)


def key_account_uid(creds: Credentials, environment: Environment | str) -> int | None:
    """The uid of the account ``creds`` belong to, from ONE GET /api/v3/account (the spot test's read, no
    diagnosis); None when Binance refuses the key (a verdict on it: deleted, IP no longer allowed, ...) or
    answers no usable uid. Raises when no verdict was reached (rate limit, Binance down, network, clock)."""
    client = get_client(Market.SPOT, Environment(environment))
    try:
        account = endpoints.spot_account(client, creds, omit_zero_balances=True)
    except KlineoError as exc:
        if exc.category not in _VERDICTS:
            raise
        return None
    return _account_uid(account)


def credentials_of(request: KeyMaterial) -> Credentials:
    """The keys of a request body."""
    return Credentials(api_key=request.api_key, secret=request.secret.get_secret_value(),
                       key_type=KeyType(request.key_type))


def check_keys(request: ConnectionTestRequest) -> ConnectionTestResponse:
    """POST /exchange-connections/test: test keys from the body, store nothing."""
    return run_spot_test(credentials_of(request), request.environment).result


def check_stored_connection(user_id: str, connection_id: str) -> ConnectionTestResponse:
    """POST /exchange-connections/{id}/test: the spot test on stored keys, recorded on the item (with the
    account's uid when the connection has none yet: one made before uids were kept)."""
    connection = connection_store.require_connection(user_id, connection_id)
    # Its delete may have deleted the secret already; one that begins during the test wins (the write).
    connection_store.refuse_deleting(connection, connection_store.TEST_REFUSED)
    creds = connection_store.connection_credentials(connection)
    tested = run_spot_test(creds, connection.environment)
    result = tested.result
    # Recorded only while the connection still names the key tested: a key replaced meanwhile is a 409.
    connection_store.record_test_result(user_id, connection_id, result.model_dump(mode="json"),
                                        refused=connection_store.TEST_REFUSED, binance_uid=tested.uid,
                                        tested_version=connection.credentials_version)
    if result.ok:  # the key works: its failure count starts again (a failed test itself never counts)
        note_key_answer(connection, None, READ)
    return result
