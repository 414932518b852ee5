"""The connection, secret and kill-switch stores under moto (tables and env from template.yaml)."""

from __future__ import annotations

import gc
import json
import types
from decimal import Decimal

import pytest
from klineo.binance import Credentials, KeyType
from klineo.errors import ErrorCategory, KlineoError
from klineo.store import aws as aws_clients
from klineo.store import connections, flags
from klineo.store import secrets as secret_store
from klineo.store.connections import Connection

USER_A, USER_B = "user-a", "user-b"
CREDS = Credentials(api_key="K" * 64, secret="S" * 64, key_type=KeyType.HMAC)


@pytest.fixture
def stores(aws):
    """moto up, secret cache empty."""
    secret_store.clear_cache()
    yield aws
    secret_store.clear_cache()


def _connection(user: str = USER_A, **changes) -> Connection:
    values = dict(user_id=user, connection_id=connections.new_connection_id(), label="main",
                  environment="production", key_type="hmac", api_key_masked=CREDS.api_key_masked,
                  secret_name=f"klineo/test/{user}/x", created_at="2026-01-01T00:00:00+00:00",
                  last_test={"ok": True, "server_time_offset_ms": -12, "warnings": []})
    values.update(changes)
    return Connection(**values)


class _CallCounter:
    """Counts the AWS API calls a client makes (botocore before-call events)."""

    def __init__(self, client):
        self.calls: list[str] = []
        client.meta.events.register("before-call.*.*", self._count)

    def _count(self, model, **_):
        self.calls.append(model.name)


def test_connection_round_trips_and_is_invisible_to_another_user(stores):
    """GIVEN a stored connection WHEN read by its owner and by another user THEN only the owner gets it."""
    conn = _connection()
    connections.put_connection(conn)
    assert connections.get_connection(USER_A, conn.connection_id) == conn
    assert connections.get_connection(USER_B, conn.connection_id) is None
    assert connections.list_connections(USER_B) == []
    assert [c.connection_id for c in connections.list_connections(USER_A)] == [conn.connection_id]


def test_put_never_overwrites_an_existing_connection(stores):
    """GIVEN a stored connection WHEN the same id is put again THEN the write is refused."""
    conn = _connection()
    connections.put_connection(conn)
    with pytest.raises(aws_clients.dynamodb().exceptions.ConditionalCheckFailedException):
        connections.put_connection(conn.model_copy(update={"label": "other"}))


def test_malformed_connection_ids_are_simply_not_found(stores):
    """GIVEN ids that could never exist (too long, wrong characters) WHEN read THEN None / NOT_FOUND."""
    for bad in ("x" * 2000, "../CONN#", ""):
        assert connections.get_connection(USER_A, bad) is None
        with pytest.raises(KlineoError) as caught:
            connections.load_trading_context(USER_A, bad)
        assert caught.value.category is ErrorCategory.NOT_FOUND


def test_futures_flag_and_test_results_update_only_existing_items(stores):
    """GIVEN a connection WHEN futures is enabled / a test recorded THEN it changes; absent -> NOT_FOUND."""
    conn = _connection()
    connections.put_connection(conn)
    updated = connections.set_futures_enabled(USER_A, conn.connection_id, True, {"ok": True, "fee_tier": 0})
    assert updated.futures_enabled is True
    assert updated.futures_last_test == {"ok": True, "fee_tier": 0}
    recorded = connections.record_test_result(USER_A, conn.connection_id, {"ok": False, "ratio": 0.5})
    assert recorded.last_test == {"ok": False, "ratio": 0.5}
    with pytest.raises(KlineoError) as caught:
        connections.set_futures_enabled(USER_B, conn.connection_id, True)
    assert caught.value.category is ErrorCategory.NOT_FOUND
    assert connections.get_connection(USER_B, conn.connection_id) is None


def test_trading_context_is_one_consistent_batch_read(stores):
    """GIVEN a connection and both switches WHEN the trading context loads THEN one BatchGetItem."""
    conn = _connection()
    connections.put_connection(conn)
    flags.set_user_kill_switch(USER_A, True)
    flags.set_global_kill_switch(False)
    counter = _CallCounter(aws_clients.dynamodb())
    context = connections.load_trading_context(USER_A, conn.connection_id)
    assert counter.calls == ["BatchGetItem"]
    assert context.connection == conn
    assert (context.user_kill_switch, context.global_kill_switch, context.kill_switch) == (True, False, True)
    with pytest.raises(KlineoError) as caught:
        connections.load_trading_context(USER_B, conn.connection_id)
    assert caught.value.category is ErrorCategory.NOT_FOUND


def test_kill_switches_default_off_and_are_per_user(stores):
    """GIVEN nothing stored WHEN switches are set THEN each user's is its own and the global one is shared."""
    assert flags.get_kill_switches(USER_A) == (False, False)
    flags.set_user_kill_switch(USER_A, True)
    assert flags.get_kill_switches(USER_A) == (True, False)
    assert flags.get_kill_switches(USER_B) == (False, False)
    flags.set_global_kill_switch(True)
    assert flags.get_kill_switches(USER_B) == (False, True)
    flags.set_global_kill_switch(False)
    flags.set_user_kill_switch(USER_A, False)
    assert flags.get_kill_switches(USER_A) == (False, False)


def test_global_switch_item_matches_the_operators_put_item_command(stores):
    """GIVEN the item the README's `aws dynamodb put-item` writes WHEN read THEN the global switch is on."""
    aws_clients.dynamodb().put_item(
        TableName=stores.refs["DataTable"],
        Item={"pk": {"S": "GLOBAL"}, "sk": {"S": "FLAGS"}, "kill_switch": {"BOOL": True}},
    )
    assert flags.get_kill_switches(USER_A) == (False, True)


def test_secret_is_stored_under_the_user_and_connection_name(stores):
    """GIVEN credentials WHEN put THEN one secret <prefix><sub>/<id> holds {api_key, secret, key_type}."""
    name = secret_store.put_credentials(USER_A, "c0ffee", CREDS)
    assert name == "klineo/test/user-a/c0ffee"
    stored = json.loads(aws_clients.secretsmanager().get_secret_value(SecretId=name)["SecretString"])
    assert stored == {"api_key": CREDS.api_key, "secret": CREDS.secret, "key_type": "hmac"}


def test_secret_names_stay_valid_for_unusual_subjects(stores):
    """GIVEN a sub with '|' (an Auth0 subject) WHEN the secret is named THEN only allowed characters."""
    assert secret_store.secret_name("auth0|12 34", "id") == "klineo/test/auth0_12_34/id"


def test_warm_credentials_come_from_the_cache(stores):
    """GIVEN a secret read once WHEN read again THEN Secrets Manager is not called."""
    name = secret_store.put_credentials(USER_A, "c1", CREDS)
    secret_store.clear_cache()
    counter = _CallCounter(aws_clients.secretsmanager())
    assert secret_store.get_credentials(name) == CREDS
    assert secret_store.get_credentials(name) == CREDS
    assert counter.calls == ["GetSecretValue"]


def test_credentials_cache_is_bounded_and_expires():
    """GIVEN a cache of 2 entries and a 10 s TTL WHEN a third entry comes or time passes THEN old ones go."""
    now = [0.0]
    cache = secret_store._new_cache(2, 10.0, timer=lambda: now[0])
    cache["a"] = CREDS
    cache["b"] = CREDS
    cache["c"] = CREDS
    assert cache.get("a") is None and cache.get("b") is CREDS
    now[0] = 10.0
    assert cache.get("b") is None and cache.get("c") is None


def test_deleted_secret_is_gone_at_once_and_a_second_delete_is_fine(stores):
    """GIVEN a stored secret WHEN deleted (twice) THEN it is gone without recovery window, no error."""
    name = secret_store.put_credentials(USER_A, "c2", CREDS)
    secret_store.delete_credentials(name)
    secret_store.delete_credentials(name)
    client = aws_clients.secretsmanager()
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_secret(SecretId=name)
    with pytest.raises(KlineoError) as caught:
        secret_store.get_credentials(name)
    assert caught.value.category is ErrorCategory.NOT_FOUND


def test_a_deleted_private_key_is_not_kept_in_memory_once_it_signed(stores):
    """GIVEN a stored Ed25519 key that signed WHEN its secret is deleted THEN nothing here holds its PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from klineo.binance import signature

    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    name = secret_store.put_credentials(USER_A, "c3", Credentials("k" * 64, pem, KeyType.ED25519))
    secret_store.clear_cache()
    creds = secret_store.get_credentials(name)
    assert signature("a=1", creds) == signature("a=1", secret_store.get_credentials(name))
    stored_pem = creds.secret  # the very string the store parsed and the signer loaded
    del creds
    secret_store.delete_credentials(name)
    gc.collect()
    holders = [r for r in gc.get_referrers(stored_pem) if not isinstance(r, types.FrameType)]
    assert holders == []


def test_key_failures_add_up_and_disabling_keeps_the_first_reason(stores):
    """GIVEN a connection WHEN failures come and it is disabled twice THEN they add, first reason stays."""
    conn = _connection()
    connections.put_connection(conn)
    assert connections.add_key_failure(USER_A, conn.connection_id) == 1
    assert connections.add_key_failure(USER_A, conn.connection_id) == 2
    first = connections.disable_connection(USER_A, conn.connection_id, "key rejected")
    again = connections.disable_connection(USER_A, conn.connection_id, "another reason")
    assert again.disabled_reason == "key rejected" and again.disabled_at == first.disabled_at
    cleared = connections.clear_disabled(USER_A, conn.connection_id, {"ok": True})
    assert not cleared.disabled and cleared.consecutive_failures == 0 and cleared.last_test == {"ok": True}


def test_symbol_settings_accumulate_and_a_none_setting_is_removed(stores):
    """GIVEN two symbols' settings, a default set then cleared WHEN read THEN both symbols, no default."""
    conn = _connection()
    connections.put_connection(conn)
    connections.record_symbol_settings(USER_A, conn.connection_id, "BTCUSDT", {"leverage": 5})
    connections.record_symbol_settings(USER_A, conn.connection_id, "ETHUSDT", {"leverage": 3})
    changes = {"leverage": 7, "max_notional_usdt": Decimal("5")}
    connections.update_settings(USER_A, conn.connection_id, changes)
    updated = connections.update_settings(USER_A, conn.connection_id, {"leverage": None})
    assert updated.symbol_settings == {"BTCUSDT": {"leverage": 5}, "ETHUSDT": {"leverage": 3}}
    assert updated.leverage is None and updated.max_notional_usdt == Decimal("5")


def test_first_symbol_of_a_connection_is_recorded_in_one_update(stores):
    """GIVEN a connection that never traded WHEN a symbol's settings are recorded THEN one UpdateItem."""
    conn = _connection()
    connections.put_connection(conn)
    counter = _CallCounter(aws_clients.dynamodb())

    connections.record_symbol_settings(USER_A, conn.connection_id, "BTCUSDT", {"leverage": 5}, recorded={})

    assert counter.calls == ["UpdateItem"]
    stored = connections.get_connection(USER_A, conn.connection_id)
    assert stored.symbol_settings == {"BTCUSDT": {"leverage": 5}}


def test_next_symbol_is_added_in_one_update_keeping_the_others(stores):
    """GIVEN a connection with one symbol recorded WHEN another is recorded THEN one UpdateItem, both kept."""
    conn = _connection()
    connections.put_connection(conn)
    connections.record_symbol_settings(USER_A, conn.connection_id, "BTCUSDT", {"leverage": 5}, recorded={})
    seen = connections.get_connection(USER_A, conn.connection_id).symbol_settings
    counter = _CallCounter(aws_clients.dynamodb())

    connections.record_symbol_settings(USER_A, conn.connection_id, "ETHUSDT", {"leverage": 3}, recorded=seen)

    assert counter.calls == ["UpdateItem"]
    stored = connections.get_connection(USER_A, conn.connection_id)
    assert stored.symbol_settings == {"BTCUSDT": {"leverage": 5}, "ETHUSDT": {"leverage": 3}}


def test_a_stale_view_of_the_symbol_settings_never_drops_a_symbol(stores):
    """GIVEN a caller that read no symbol settings while another symbol was recorded since WHEN it
    records its symbol THEN both symbols are kept (the failed condition is followed by the other shape)."""
    conn = _connection()
    connections.put_connection(conn)
    connections.record_symbol_settings(USER_A, conn.connection_id, "BTCUSDT", {"leverage": 5}, recorded={})

    connections.record_symbol_settings(USER_A, conn.connection_id, "ETHUSDT", {"leverage": 3}, recorded={})

    stored = connections.get_connection(USER_A, conn.connection_id)
    assert stored.symbol_settings == {"BTCUSDT": {"leverage": 5}, "ETHUSDT": {"leverage": 3}}


def test_symbol_settings_of_a_missing_connection_are_not_found_and_write_nothing(stores):
    """GIVEN no such connection WHEN its symbol settings are recorded THEN NOT_FOUND and no item appears."""
    missing = connections.new_connection_id()

    for recorded in ({}, {"BTCUSDT": {"leverage": 5}}):
        with pytest.raises(KlineoError) as caught:
            connections.record_symbol_settings(USER_A, missing, "ETHUSDT", {"leverage": 3}, recorded=recorded)
        assert caught.value.category == ErrorCategory.NOT_FOUND

    assert connections.get_connection(USER_A, missing) is None


def test_a_version_is_pinned_only_once(stores):
    """GIVEN an unversioned connection WHEN a version is pinned twice THEN the first one stays."""
    conn = _connection()
    connections.put_connection(conn)
    connections.pin_credentials_version(USER_A, conn.connection_id, "v1")
    connections.pin_credentials_version(USER_A, conn.connection_id, "v2")
    assert connections.get_connection(USER_A, conn.connection_id).credentials_version == "v1"
