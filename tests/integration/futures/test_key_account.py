"""New keys for a connection stay on its Binance account: the uid GET /api/v3/account answers, against moto
and the simulator."""

from __future__ import annotations

import secrets as token_source

import pytest
from klineo.store import aws as aws_clients
from klineo.store.connections import connection_credentials, get_connection

from tests.helpers import with_body
from tests.integration.api.conftest import USER_A, connection_event, credentials_body
from tests.integration.futures.helpers import body_of, forget_uid, new_key, order_body, order_event


def _put_credentials(invoke, connection_id: str, account) -> dict:
    event = connection_event("connection_credentials", connection_id, USER_A, "/credentials")
    return invoke("connection_credentials", with_body(event, credentials_body(account)))


def _second_key(sim_env, account_id: str = "futures-full"):
    """GIVEN another API key of the account, as its owner creates on Binance (same uid)."""
    return sim_env.add_key(account_id, "K2" + token_source.token_hex(31), token_source.token_hex(32))


def _secret_versions(connection_id: str) -> list[str]:
    name = get_connection(USER_A, connection_id).secret_name
    answer = aws_clients.secretsmanager().list_secret_version_ids(SecretId=name, IncludeDeprecated=True)
    return sorted(version["VersionId"] for version in answer["Versions"])



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


def test_a_new_key_of_another_binance_account_is_refused_and_changes_nothing(sim_env, invoke,
                                                                             futures_connection):
    """A key of another account: 409 naming api_key, no secret version, item unchanged, old key signs."""
    before, versions = get_connection(USER_A, futures_connection.id), _secret_versions(futures_connection.id)
    other = sim_env.account("ed25519-futures")

    response = _put_credentials(invoke, futures_connection.id, other)

    _assert_refused_as_another_account(response, other)
    assert get_connection(USER_A, futures_connection.id) == before
    assert _secret_versions(futures_connection.id) == versions
    assert _signing_keys(sim_env, invoke, futures_connection.id) == {futures_connection.account.api_key}


def test_a_new_key_of_the_same_binance_account_replaces_the_old_one(sim_env, invoke, futures_connection):
    """Another key of the connection's own account is stored and signs every later order."""
    second = _second_key(sim_env)

    response = _put_credentials(invoke, futures_connection.id, second)

    assert response["statusCode"] == 200, response["body"]
    stored = get_connection(USER_A, futures_connection.id)
    assert connection_credentials(stored).api_key == second.api_key
    assert stored.binance_uid == futures_connection.account.uid
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
    return _put_credentials(invoke, connection_id, _second_key(sim_env))


@pytest.mark.parametrize("learn", [_test_stored, _enable, _replace_with_a_second_key])
def test_a_connection_made_before_uids_learns_its_uid_and_is_then_protected(sim_env, invoke,
                                                                            futures_connection, learn):
    """No uid stored: a test, enable or same-account key records it; another account's key is then refused."""
    forget_uid(futures_connection.id)

    assert learn(sim_env, invoke, futures_connection.id)["statusCode"] == 200
    assert get_connection(USER_A, futures_connection.id).binance_uid == futures_connection.account.uid
    other = sim_env.account("rsa-futures")
    _assert_refused_as_another_account(_put_credentials(invoke, futures_connection.id, other), other)


def test_a_connection_without_a_uid_takes_a_key_whose_account_is_unknown_as_before(sim_env, invoke,
                                                                                   futures_connection):
    """No uid stored: a key of another account is accepted (nothing to compare) and its uid recorded."""
    forget_uid(futures_connection.id)
    other = sim_env.account("ed25519-futures")

    response = _put_credentials(invoke, futures_connection.id, other)

    assert response["statusCode"] == 200, response["body"]
    assert get_connection(USER_A, futures_connection.id).binance_uid == other.uid
