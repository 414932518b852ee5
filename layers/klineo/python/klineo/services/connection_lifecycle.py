"""A connection after it was created: its settings, new keys for it, and switching it on again.

- ``update_connection`` (PATCH): label, the connection's kill switch, max_leverage,
  max_notional_usdt and the futures defaults. A max_leverage below a live active strategy's leverage
  is refused first (409 naming the field and the strategies:
  ``klineo.services.strategy_connection.check_settings_change``); live strategies trade in either
  position mode. A position mode sent
  is applied on Binance first (futures enabled; even the mode the connection already names, as the
  account may have been switched outside KLINEO), with the errors of futures/enable; nothing is
  stored when Binance refuses.
- ``replace_credentials`` (PUT .../credentials): the new keys are tested like a new connection's (and on
  futures when futures are enabled), and their tests become the connection's: ``last_test`` the spot
  test, ``futures_last_test`` the futures test, or none when futures are not enabled (the old key's says
  nothing of the new key), in the same UpdateItem that names the new key's version. A key of another
  Binance account than the connection's is refused (409 naming api_key: add it as a new connection), as
  the connection's strategies, order records and reconciler follow one account: the spot test's ``uid``
  (GET /api/v3/account) against the one the connection keeps, before anything is written. A connection
  made before uids were kept first reads its account's uid with the key it holds (the OLD key, still in
  Secrets Manager: one more GET /api/v3/account), so its first new key is checked too. That uid is
  stored at once, as a test of the stored keys would store it: a new key that then fails (refused by
  Binance, or another account's) does not lose it, and the next attempt is checked against it even when
  the old key was revoked meanwhile. When Binance refuses that old key (deleted or revoked, the usual
  reason to replace a key) the new key is accepted and its account's uid kept: the trader has no other
  way to give the connection a working key, and refusing it would leave the connection and its
  strategies stopped for good. When that read reached no verdict (rate limit, Binance down) the error is
  answered and nothing is stored: a retry reads the old key again, rather than accepting a key nothing
  was compared with. Where a uid is still missing (an answer without one, e.g. on the testnet) there is
  no check, as before; the connection keeps the first uid it reads, from a new key, a test
  (``klineo.services.connections.check_stored_connection``) or an enable. Passing keys are stored as a
  NEW VERSION of the same secret, staged AWSPENDING, then the item is pointed at that version in one
  UpdateItem, and only then is it made the secret's current version (AWSCURRENT): a replacement refused
  at any step leaves Secrets Manager's current version where it was, so nothing reading "current" gets a
  key no connection signs with. The old version stays until then, and a failure at any step leaves the
  connection signing with the old key: nothing half-written. That UpdateItem writes the new key's uid
  only while the item has none or the same one: of two replacements racing on a connection without a uid
  (each checked against none, e.g. its old key revoked) the later write is the same 409 naming api_key
  when the first stored another account's uid, its item unchanged (its secret version is stored but
  never named nor current, so never signed with). Every order path reads the item (strongly consistent)
  before signing and asks for its version, so no container signs with a cached old key after the switch.
  Id, settings and strategies are kept.
- ``enable_connection`` (POST .../enable): the tests on the stored keys; when they pass the
  disabled state and the failure count are cleared, and the position mode the futures test read is stored
  (the account may have been switched on Binance meanwhile) (while the connection still names the key tested,
  else a retryable 409 naming connection_id: enable again), and the strategies the disabling paused are
  resumed, those a resume by the user would be allowed now (``strategy_updates.require_may_activate``:
  a live one above a max_leverage lowered meanwhile, or one whose symbol stopped taking MARKET orders,
  stays paused, listed in ``still_paused`` with the refusal's field and message).

A connection being deleted (``deleting_since``: a DELETE began, and may have deleted the secret
already) takes no settings change (nor a position mode switch on Binance), no new keys and no enable:
409 naming connection_id, checked on the read and again by the item's write (a DELETE that begins
meanwhile), so a second DELETE is all that finishes it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from klineo.errors import ErrorCategory, KlineoError
from klineo.models.common import ConnectionResponse
from klineo.models.connection_settings import (
    CLEARABLE_SETTINGS,
    ConnectionEnableResponse,
    ConnectionUpdateRequest,
    CredentialsReplaceRequest,
    StillPaused,
)
from klineo.models.connection_test import ConnectionTestResponse
from klineo.observability import logger
from klineo.services.connection_records import connection_response
from klineo.services.connections import (
    SpotTest,
    credentials_of,
    failed_test_error,
    key_account_uid,
    run_spot_test,
)
from klineo.services.futures_account import (
    apply_position_mode,
    hedge_mode_of,
    mode_name,
    run_futures_test,
    stored_test,
)
from klineo.services.key_health import resume_connection_strategies
from klineo.services.risk import check_leverage_setting
from klineo.services.strategy_connection import check_settings_change
from klineo.services.symbol_settings import futures_client
from klineo.store import connections as connection_store
from klineo.store import secrets as secret_store
from klineo.store.connections import (
    ENABLE_REFUSED,
    NEW_KEY_NOT_STORED,
    NEW_KEY_REFUSED,
    SETTINGS_REFUSED,
    Connection,
    another_account,
    connection_credentials,
    refuse_deleting,
    require_connection,
)
from klineo.validation import refuse_nulls

__all__ = ["enable_connection", "replace_credentials", "update_connection"]

def _changes(body: ConnectionUpdateRequest) -> dict[str, Any]:
    refuse_nulls(body, CLEARABLE_SETTINGS)
    return body.model_dump(exclude_unset=True)


def update_connection(user_id: str, connection_id: str, body: ConnectionUpdateRequest) -> ConnectionResponse:
    """PATCH /exchange-connections/{id}: change the settings sent (see the module docstring)."""
    connection = require_connection(user_id, connection_id, consistent=True)
    refuse_deleting(connection, SETTINGS_REFUSED)  # nor is the account's position mode switched on Binance
    changes = _changes(body)
    check_leverage_setting(
        changes.get("leverage", connection.leverage), changes.get("max_leverage", connection.max_leverage)
    )
    check_settings_change(user_id, connection, changes)
    wanted_mode = changes.get("position_mode")
    # Asked even when the connection already says wanted_mode: the account may have been switched
    # outside KLINEO, and Binance's mode is the truth (apply_position_mode changes it only when it differs).
    if connection.futures_enabled and wanted_mode is not None:
        creds = connection_credentials(connection)
        changes["position_mode"] = apply_position_mode(futures_client(connection), creds, None, wanted_mode)
    if not changes:
        return connection_response(connection)
    updated = connection_store.update_settings(user_id, connection_id, changes)
    logger.info(
        "connection settings changed", extra={"connection_id": connection_id, "fields": sorted(changes)}
    )
    return connection_response(updated)


def _spot_refusal(result: ConnectionTestResponse, connection: Connection, what: str) -> KlineoError:
    """The failed spot test's error, but for a key of the other environment: the test's advice to choose
    that environment is one this connection cannot follow (it keeps its own), so it says what can be done;
    ``suggested_environment`` still says where the key belongs, and the fault is the key (api_key)."""
    other = result.suggested_environment
    return failed_test_error(result, what, field="api_key", other_environment=(
        f"This key belongs to the Binance {other}, not {connection.environment}, and a connection keeps "
        f"its environment: add the key as a new connection with environment '{other}' "
        "(POST /exchange-connections)."))


def _require_same_account(connection: Connection, tested: SpotTest, what: str) -> None:
    """409 naming api_key when the key's account (its uid) is another than the connection's; no check
    when either uid is unknown (module docstring)."""
    if connection.binance_uid is None or tested.uid is None or tested.uid == connection.binance_uid:
        return
    logger.warning("key of another Binance account refused",
                   extra={"connection_id": connection.connection_id})
    raise another_account(what)


def _with_account_uid(connection: Connection) -> Connection:
    """``connection`` with its account's uid: its own, else the one its stored (old) key answers now, stored
    at once (where the item still has none), so a new key that then fails does not lose it; as it is when
    Binance refuses that key or says no uid (the new key's uid is then kept). Raises when the read reached no
    verdict (module docstring)."""
    if connection.binance_uid is not None:
        return connection
    uid = key_account_uid(connection_credentials(connection), connection.environment)
    if uid is None:
        logger.info("old key's account unknown; the new key's account is kept",
                    extra={"connection_id": connection.connection_id})
        return connection
    return connection_store.keep_binance_uid(connection.user_id, connection.connection_id, uid,
                                             NEW_KEY_REFUSED)


@dataclass(frozen=True)
class _Passed:
    """What the tests of a key that passed them read: the spot test and (when futures are enabled) the
    futures test as stored, the account's position mode as the futures test read it (None when none ran
    or it did not say) and the account's uid (None when Binance did not say)."""

    last_test: dict[str, Any]
    futures_last_test: dict[str, Any] | None = None
    position_mode: str | None = None
    uid: int | None = None


def _require_tests_pass(connection: Connection, creds: Any, what: str) -> _Passed:
    """The spot test (and the futures test when futures are enabled) on ``creds``, refused for a key of
    another account."""
    tested = run_spot_test(creds, connection.environment)
    result = tested.result
    if not result.ok:
        raise _spot_refusal(result, connection, what)
    _require_same_account(connection, tested, what)
    if not connection.futures_enabled:
        return _Passed(result.model_dump(mode="json"), uid=tested.uid)
    futures, error, config = run_futures_test(connection, creds)
    if error is not None:
        raise KlineoError(
            error.category,
            f"{what}: the futures test failed: {error.message}",
            retryable=error.retryable,
            retry_after=error.retry_after,
        )
    return _Passed(result.model_dump(mode="json"), stored_test(futures), mode_name(hedge_mode_of(config)),
                   tested.uid)


def replace_credentials(
    user_id: str, connection_id: str, body: CredentialsReplaceRequest
) -> ConnectionResponse:
    """PUT /exchange-connections/{id}/credentials: test (a key of another Binance account is refused, 409
    naming api_key, when both uids are known; a connection without one reads it with its old key first),
    store a new secret version, switch the item to it."""
    connection = require_connection(user_id, connection_id, consistent=True)
    refuse_deleting(connection, NEW_KEY_REFUSED)  # its delete may have deleted the secret already
    if body.environment is not None and body.environment != connection.environment:
        raise KlineoError(
            ErrorCategory.INVALID_REQUEST,
            "environment must be the connection's own; create a new connection for another",
            field="environment",
        )
    creds = credentials_of(body)
    checked = _with_account_uid(connection)
    passed = _require_tests_pass(checked, creds, NEW_KEY_NOT_STORED)
    if connection.credentials_version is None:
        # Made before versions were recorded: pin the current key first, so that until the item
        # names the new version every order still signs with the old key.
        pinned = secret_store.current_version(connection.secret_name)
        connection_store.pin_credentials_version(user_id, connection_id, pinned)
    version = str(uuid.uuid4())
    secret_store.put_new_version(connection.secret_name, creds, version)
    updated = connection_store.replace_key(
        user_id,
        connection_id,
        key_type=str(body.key_type),
        api_key_masked=creds.api_key_masked,
        credentials_version=version,
        last_test=passed.last_test,
        futures_last_test=passed.futures_last_test,
        position_mode=passed.position_mode,
        binance_uid=passed.uid,
    )
    secret_store.make_current(connection.secret_name, version)  # named by the item now: current too
    logger.info("connection key replaced", extra={"connection_id": connection_id})
    return connection_response(updated)


def enable_connection(user_id: str, connection_id: str) -> ConnectionEnableResponse:
    """POST /exchange-connections/{id}/enable: test the stored keys, clear the disabled state, resume."""
    connection = require_connection(user_id, connection_id, consistent=True)
    refuse_deleting(connection, ENABLE_REFUSED)
    creds = connection_credentials(connection)
    passed = _require_tests_pass(connection, creds, "The connection stays disabled")
    # Written only while the connection still names the key tested: a key replaced meanwhile is a 409. The
    # futures test it ran (futures enabled) is recorded in the same write, as the spot one, and so is the
    # position mode it read: the account may have been switched while the connection was disabled.
    updated = connection_store.clear_disabled(user_id, connection_id, passed.last_test,
                                              binance_uid=passed.uid,
                                              tested_version=connection.credentials_version,
                                              futures_last_test=passed.futures_last_test,
                                              position_mode=passed.position_mode)
    resumed, refused = resume_connection_strategies(updated)
    counts = {"resumed_strategies": len(resumed), "still_paused": len(refused)}
    logger.info("connection enabled", extra={"connection_id": connection_id, **counts})
    still = [StillPaused(id=sid, field=exc.field, message=exc.message) for sid, exc in refused]
    return ConnectionEnableResponse(**connection_response(updated).model_dump(), resumed_strategies=resumed,
                                    still_paused=still)
