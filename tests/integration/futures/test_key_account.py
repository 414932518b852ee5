"""New keys for a connection stay on its Binance account: the uid GET /api/v3/account answers, against moto
and the simulator."""

from __future__ import annotations

import pytest
from klineo.store import aws as aws_clients
from klineo.store.connections import connection_credentials, get_connection, mark_deleting

from tests.integration.api.conftest import USER_A, aws_refusing, connection_event
from tests.integration.futures.helpers import (
    body_of,
    forget_uid,
    new_key,
    order_body,
    order_event,
    put_credentials,
    second_key,
)


def _secret_versions(connection_id: str) -> list[str]:
    name = get_connection(USER_A, connection_id).secret_name
    answer = aws_clients.secretsmanager().list_secret_version_ids(SecretId=name, IncludeDeprecated=True)
    return sorted(version["VersionId"] for version in answer["Versions"])


def _current_version(connection_id: str) -> str:
    """The version of the connection's secret that Secrets Manager calls current (AWSCURRENT)."""
    name = get_connection(USER_A, connection_id).secret_name
    stages = aws_clients.secretsmanager().describe_secret(SecretId=name)["VersionIdsToStages"]
    return next(version for version, labels in stages.items() if "AWSCURRENT" in labels)


def _signing_keys(sim_env, invoke, connection_id: str) -> set[str]:
    """The API keys an order placed now on the connection is signed with."""
    sim_env.clear_journal()
    placed = invoke("futures_order", order_event(order_body(connection_id), key=new_key()))
    assert placed["statusCode"] == 200, placed["body"]
    return {record.api_key for record in sim_env.journal if record.api_key}


def _assert_refused_as_another_account(response: dict, other) -> None:
    assert response["statusCode"] == 409, response["body"]
    error = body_of(response)["error"]
    assert error["field"] == "api_key"
    assert "another Binance account" in error["message"] and "new connection" in error["message"]
    assert other.api_key not in response["body"]


def _uid_kept(connection_id: str) -> None:
    """GIVEN a connection that keeps its account's uid (made since uids are kept)."""


@pytest.mark.parametrize("made", [_uid_kept, forget_uid], ids=["uid-kept", "made-before-uids"])
def test_a_new_key_of_another_binance_account_is_refused_and_changes_nothing(sim_env, invoke,
                                                                             futures_connection, made):
    """A key of another account: 409 naming api_key, no secret version, item unchanged but for the uid the old
    key answered (a connection without one reads it first and keeps it; before: accepted there, nothing to
    compare, and every strategy moved to the other account), old key signs."""
    made(futures_connection.id)
    before, versions = get_connection(USER_A, futures_connection.id), _secret_versions(futures_connection.id)
    other = sim_env.account("ed25519-futures")

    response = put_credentials(invoke, futures_connection.id, other)

    _assert_refused_as_another_account(response, other)
    assert get_connection(USER_A, futures_connection.id) == before.model_copy(
        update={"binance_uid": futures_connection.account.uid})
    assert _secret_versions(futures_connection.id) == versions
    assert _signing_keys(sim_env, invoke, futures_connection.id) == {futures_connection.account.api_key}


def test_a_new_key_of_the_same_binance_account_replaces_the_old_one(sim_env, invoke, futures_connection):
    """Another key of the connection's own account is stored, is the secret's current version and signs every
    later order."""
    second = second_key(sim_env)

    response = put_credentials(invoke, futures_connection.id, second)

    assert response["statusCode"] == 200, response["body"]
    stored = get_connection(USER_A, futures_connection.id)
    assert connection_credentials(stored).api_key == second.api_key
    assert stored.binance_uid == futures_connection.account.uid
    assert _current_version(futures_connection.id) == stored.credentials_version
    assert _signing_keys(sim_env, invoke, futures_connection.id) == {second.api_key}


def test_a_new_key_whose_current_stage_cannot_move_is_still_the_connections_key(sim_env, invoke,
                                                                                futures_connection):
    """Secrets Manager refusing to move AWSCURRENT once the item names the new version: still 200 and the new
    key signs (nothing signs by the stage; the failure is logged), the stage left where it was."""
    second, current = second_key(sim_env), _current_version(futures_connection.id)

    with aws_refusing("UpdateSecretVersionStage", "secrets-manager"):
        response = put_credentials(invoke, futures_connection.id, second)

    assert response["statusCode"] == 200, response["body"]
    assert _current_version(futures_connection.id) == current
    assert _signing_keys(sim_env, invoke, futures_connection.id) == {second.api_key}


def test_a_connection_stores_its_accounts_uid_when_created(sim_env, create_connection):
    """POST /exchange-connections keeps the uid the spot test read."""
    connection = create_connection(USER_A, "spot-only")

    assert get_connection(USER_A, connection.id).binance_uid == connection.account.uid


def _test_stored(sim_env, invoke, connection_id: str) -> dict:
    return invoke("connection_test_stored", connection_event("connection_test_stored", connection_id, USER_A,
                                                             "/test"))


def _enable(sim_env, invoke, connection_id: str) -> dict:
    event = connection_event("connection_enable", connection_id, USER_A, "/enable")
    return invoke("connection_enable", event)


def _replace_with_a_second_key(sim_env, invoke, connection_id: str) -> dict:
    return put_credentials(invoke, connection_id, second_key(sim_env))


@pytest.mark.parametrize("learn", [_test_stored, _enable, _replace_with_a_second_key])
def test_a_connection_made_before_uids_learns_its_uid_and_is_then_protected(sim_env, invoke,
                                                                            futures_connection, learn):
    """No uid stored: a test, enable or same-account key records it; another account's key is then refused."""
    forget_uid(futures_connection.id)

    assert learn(sim_env, invoke, futures_connection.id)["statusCode"] == 200
    assert get_connection(USER_A, futures_connection.id).binance_uid == futures_connection.account.uid
    other = sim_env.account("rsa-futures")
    _assert_refused_as_another_account(put_credentials(invoke, futures_connection.id, other), other)


def _on_a_second_key_without_uid(sim_env, invoke, connection_id: str):
    """GIVEN the connection signing with a second key of its account (one a test may revoke), then made before
    uids were kept: that key."""
    second = second_key(sim_env)
    assert put_credentials(invoke, connection_id, second)["statusCode"] == 200
    forget_uid(connection_id)
    return second


def _on_a_revoked_key_without_uid(sim_env, invoke, connection_id: str):
    """GIVEN the connection signing with a second key of its account, then made before uids were kept, and
    that key deleted on Binance (the usual reason to replace a key): the revoked key."""
    second = _on_a_second_key_without_uid(sim_env, invoke, connection_id)
    sim_env.revoke_key(second.api_key)
    return second


def test_a_connection_without_a_uid_whose_old_key_is_revoked_takes_a_new_key_and_its_uid(sim_env, invoke,
                                                                                         futures_connection):
    """No uid stored and the old key refused by Binance: the new key is accepted (nothing else could replace
    it), its account's uid recorded, and another account's key is refused from then on."""
    _on_a_revoked_key_without_uid(sim_env, invoke, futures_connection.id)
    other = sim_env.account("ed25519-futures")

    response = put_credentials(invoke, futures_connection.id, other)

    assert response["statusCode"] == 200, response["body"]
    assert get_connection(USER_A, futures_connection.id).binance_uid == other.uid
    assert _signing_keys(sim_env, invoke, futures_connection.id) == {other.api_key}
    first = futures_connection.account
    _assert_refused_as_another_account(put_credentials(invoke, futures_connection.id, first), first)


def test_a_new_key_waits_while_the_old_keys_account_cannot_be_read(sim_env, invoke,
                                                                                  futures_connection):
    """No uid stored and the old key's account read answered 503 (no verdict on the key): the new key is not
    stored, the error is retryable, the old key still signs."""
    forget_uid(futures_connection.id)
    before = get_connection(USER_A, futures_connection.id)
    sim_env.faults.add("http_503_unavailable", count=10, path="/api/v3/account",
                       api_key=futures_connection.account.api_key)

    response = put_credentials(invoke, futures_connection.id, second_key(sim_env))

    assert response["statusCode"] == 503, response["body"]
    assert body_of(response)["error"]["retryable"] is True
    sim_env.faults.clear()
    assert get_connection(USER_A, futures_connection.id) == before
    assert _signing_keys(sim_env, invoke, futures_connection.id) == {futures_connection.account.api_key}


_CONNECTION_UPDATE = "before-parameter-build.dynamodb.UpdateItem"
_SECRET_PUT = "before-parameter-build.secrets-manager.PutSecretValue"


def _replace_racing(invoke, connection_id: str, first, race, *,
                    at_secret: bool = False) -> tuple[dict, object]:
    """PUT .../credentials with ``first``'s key, ``race()`` run just before its item write (a hook on that
    UpdateItem, after its checks and its secret version), or with ``at_secret`` just before its secret version
    (after its checks): the PUT's answer and what ``race`` returned."""
    client = aws_clients.secretsmanager() if at_secret else aws_clients.dynamodb()
    event, raced = _SECRET_PUT if at_secret else _CONNECTION_UPDATE, []

    def hook(params, **_: object) -> None:
        if not at_secret and ":credentials_version" not in params.get("ExpressionAttributeValues", {}):
            return
        client.meta.events.unregister(event, hook)
        raced.append(race())

    client.meta.events.register(event, hook)
    try:
        answer = put_credentials(invoke, connection_id, first)
    finally:
        client.meta.events.unregister(event, hook)
    assert len(raced) == 1
    return answer, raced[0]


def test_two_new_keys_racing_on_a_connection_without_a_uid_leave_it_on_one_account(sim_env, invoke,
                                                                                  futures_connection):
    """No uid stored, old key revoked: a key of another account stored between a replacement's checks and its
    write makes that replacement the 409 of another account, its item write not made, the other key signing
    (before: both 200, the later write put the connection back on the first account unchecked)."""
    _on_a_revoked_key_without_uid(sim_env, invoke, futures_connection.id)
    other = sim_env.account("ed25519-futures")
    own = second_key(sim_env)

    answer, raced = _replace_racing(invoke, futures_connection.id, own,
                                    lambda: put_credentials(invoke, futures_connection.id, other))

    assert raced["statusCode"] == 200, raced["body"]
    _assert_refused_as_another_account(answer, own)
    stored = get_connection(USER_A, futures_connection.id)
    assert stored.binance_uid == other.uid
    assert connection_credentials(stored).api_key == other.api_key
    assert _signing_keys(sim_env, invoke, futures_connection.id) == {other.api_key}


def test_a_delete_begun_before_a_new_keys_write_is_answered_as_the_delete(sim_env, invoke,
                                                                          futures_connection):
    """A DELETE marked between a new key's checks and its write: 409 naming connection_id (not api_key, though
    that write is conditional on the uid too), the item still on the old key, the secret's current version
    too."""
    before = get_connection(USER_A, futures_connection.id)
    current = _current_version(futures_connection.id)

    answer, _token = _replace_racing(invoke, futures_connection.id, second_key(sim_env),
                                     lambda: mark_deleting(USER_A, futures_connection.id))

    assert answer["statusCode"] == 409, answer["body"]
    assert body_of(answer)["error"]["field"] == "connection_id"
    after = get_connection(USER_A, futures_connection.id)
    assert (after.credentials_version, after.binance_uid) == (before.credentials_version, before.binance_uid)
    assert _current_version(futures_connection.id) == current


def _a_key_binance_refuses(sim_env):
    """A key Binance answers -2015 (deleted on Binance, or mistyped): the 403 of the failed spot test."""
    refused = second_key(sim_env)
    sim_env.revoke_key(refused.api_key)
    return refused


def _a_key_of_another_account(sim_env):
    """A key of another Binance account: the 409 naming api_key."""
    return sim_env.account("rsa-futures")


@pytest.mark.parametrize(("failing", "status"),
                         [(_a_key_binance_refuses, 403), (_a_key_of_another_account, 409)],
                         ids=["refused-by-binance", "another-account"])
def test_a_failed_new_key_still_stores_the_uid_its_old_key_answered(sim_env, invoke, futures_connection,
                                                                    failing, status):
    """No uid stored, and the first new key fails: the uid the old key answered is stored all the same, so
    once that old key is revoked a key of another account is still the 409 (before: the uid was kept only by
    a later success, and the other account's key was accepted, moving the connection's strategies to it)."""
    old = _on_a_second_key_without_uid(sim_env, invoke, futures_connection.id)
    failed = failing(sim_env)

    assert put_credentials(invoke, futures_connection.id, failed)["statusCode"] == status
    assert get_connection(USER_A, futures_connection.id).binance_uid == futures_connection.account.uid

    sim_env.revoke_key(old.api_key)
    other = sim_env.account("ed25519-futures")
    _assert_refused_as_another_account(put_credentials(invoke, futures_connection.id, other), other)


def test_a_new_key_refused_after_its_secret_version_is_not_the_secrets_current_version(sim_env, invoke,
                                                                                       futures_connection):
    """No uid stored, old key revoked: a key of another account stored between a replacement's checks and its
    secret version makes that replacement the 409 of another account, and Secrets Manager's current version
    stays the one the item names, the other key (before: the refused key became AWSCURRENT, though nothing
    names it, so anything reading the current version got a key the user never got working)."""
    _on_a_revoked_key_without_uid(sim_env, invoke, futures_connection.id)
    other, own = sim_env.account("ed25519-futures"), second_key(sim_env)

    answer, raced = _replace_racing(invoke, futures_connection.id, own,
                                    lambda: put_credentials(invoke, futures_connection.id, other),
                                    at_secret=True)

    assert raced["statusCode"] == 200, raced["body"]
    _assert_refused_as_another_account(answer, own)
    stored = get_connection(USER_A, futures_connection.id)
    assert _current_version(futures_connection.id) == stored.credentials_version
    assert connection_credentials(stored).api_key == other.api_key
