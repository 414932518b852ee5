"""Futures test / enable / disable routes against moto and the simulator: spot untouched, owner only."""

from __future__ import annotations

from klineo.store.connections import get_connection

from tests.helpers import load_event
from tests.integration.api.conftest import USER_A, USER_B, connection_event
from tests.integration.futures.helpers import body_of, new_key, order_body, order_event, order_posts


def _futures_event(name: str, connection_id: str, user: str = USER_A) -> dict:
    action = name.removeprefix("futures_")
    return connection_event(name, connection_id, user, f"/futures/{action}")


# ---------------------------------------------------------------- futures test


def test_futures_test_reads_v3_account_and_account_config_only(sim_env, invoke, stored_connection):
    """GIVEN a futures-capable key WHEN tested THEN ok, via v3 account + accountConfig only."""
    sim_env.clear_journal()
    response = invoke("futures_test", _futures_event("futures_test", stored_connection.id))

    assert response["statusCode"] == 200, response["body"]
    body = body_of(response)
    assert body["ok"] is True and body["can_trade"] is True and body["category"] is None
    assert {
        "asset": "USDT",
        "wallet_balance": "10000",
        "available_balance": "10000",
        "unrealized_profit": "0",
    } in body["assets"]
    paths = {record.path for record in sim_env.journal}
    assert paths <= {"/fapi/v1/time", "/fapi/v3/account", "/fapi/v1/accountConfig"}
    assert {"/fapi/v3/account", "/fapi/v1/accountConfig"} <= paths
    assert not any(path.startswith(("/api/", "/sapi/", "/fapi/v2/")) for path in paths)


def test_futures_test_records_futures_last_test_and_leaves_spot_alone(sim_env, invoke, stored_connection):
    """GIVEN a spot-tested connection WHEN the futures test runs THEN only futures_last_test changes."""
    before = get_connection(USER_A, stored_connection.id)
    invoke("futures_test", _futures_event("futures_test", stored_connection.id))
    after = get_connection(USER_A, stored_connection.id)

    assert after.last_test == before.last_test
    assert after.futures_last_test["ok"] is True and after.futures_last_test["can_trade"] is True
    assert after.futures_enabled is False


def test_futures_test_of_spot_only_key_fails_with_permission(sim_env, invoke, create_connection):
    """GIVEN a key without futures rights WHEN tested THEN ok=false, category permission, recorded as such."""
    connection = create_connection(USER_A, "spot-only")
    spot_test_before = get_connection(USER_A, connection.id).last_test

    response = invoke("futures_test", _futures_event("futures_test", connection.id))

    assert response["statusCode"] == 200, response["body"]
    body = body_of(response)
    assert body["ok"] is False and body["category"] == "permission" and body["retryable"] is False
    stored = get_connection(USER_A, connection.id)
    assert stored.futures_last_test["ok"] is False and stored.futures_last_test["category"] == "permission"
    assert stored.last_test == spot_test_before and stored.last_test["ok"] is True


def test_futures_test_of_testnet_key_goes_to_the_futures_testnet(sim_env, invoke, create_connection):
    """GIVEN a testnet connection WHEN its futures are tested THEN only the futures testnet URL is called."""
    connection = create_connection(USER_A, "testnet-futures")
    sim_env.clear_journal()

    response = invoke("futures_test", _futures_event("futures_test", connection.id))

    assert response["statusCode"] == 200 and body_of(response)["ok"] is True
    assert {(record.env, record.path.split("/")[1]) for record in sim_env.journal} == {("testnet", "fapi")}


def test_futures_test_of_other_users_connection_is_not_found(sim_env, invoke, stored_connection):
    """GIVEN A's connection WHEN user B tests its futures THEN 404 and Binance is not called."""
    sim_env.clear_journal()
    response = invoke("futures_test", _futures_event("futures_test", stored_connection.id, USER_B))

    assert response["statusCode"] == 404, response["body"]
    assert body_of(response)["error"]["category"] == "not_found"
    assert sim_env.journal == []


def test_futures_test_event_file_is_accepted(sim_env, invoke):
    """GIVEN events/futures_test.json as is WHEN invoked THEN routed (404: no such connection)."""
    response = invoke("futures_test", load_event("futures_test"))
    assert response["statusCode"] == 404
    assert body_of(response)["error"]["category"] == "not_found"


# ---------------------------------------------------------------- enable


def test_enable_switches_futures_on_after_a_passing_test(sim_env, invoke, stored_connection):
    """GIVEN a futures-capable key WHEN enabled THEN futures_enabled is stored true with the verdict."""
    response = invoke("futures_enable", _futures_event("futures_enable", stored_connection.id))

    assert response["statusCode"] == 200, response["body"]
    body = body_of(response)
    assert body["futures_enabled"] is True and body["test"]["ok"] is True
    stored = get_connection(USER_A, stored_connection.id)
    assert stored.futures_enabled is True and stored.futures_last_test["ok"] is True


def test_enable_refuses_a_key_without_futures_rights(sim_env, invoke, create_connection):
    """GIVEN a spot-only key WHEN enabled THEN 403 permission and futures stay off (test recorded)."""
    connection = create_connection(USER_A, "spot-only")

    response = invoke("futures_enable", _futures_event("futures_enable", connection.id))

    assert response["statusCode"] == 403, response["body"]
    error = body_of(response)["error"]
    assert error["category"] == "permission" and error["message"].startswith("Futures were not enabled")
    stored = get_connection(USER_A, connection.id)
    assert stored.futures_enabled is False and stored.futures_last_test["ok"] is False


def test_enable_of_other_users_connection_is_not_found(sim_env, invoke, stored_connection):
    """GIVEN A's connection WHEN user B enables its futures THEN 404 and A's connection is unchanged."""
    response = invoke("futures_enable", _futures_event("futures_enable", stored_connection.id, USER_B))

    assert response["statusCode"] == 404, response["body"]
    assert get_connection(USER_A, stored_connection.id).futures_enabled is False


def test_enable_event_file_is_accepted(sim_env, invoke):
    """GIVEN events/futures_enable.json as is WHEN invoked THEN routed (404: no such connection)."""
    assert invoke("futures_enable", load_event("futures_enable"))["statusCode"] == 404


# ---------------------------------------------------------------- disable


def test_disable_switches_futures_off_and_orders_are_refused(sim_env, invoke, futures_connection):
    """GIVEN futures enabled WHEN disabled THEN stored false, and an order is 409 with nothing sent."""
    response = invoke("futures_disable", _futures_event("futures_disable", futures_connection.id))

    assert response["statusCode"] == 200, response["body"]
    assert body_of(response) == {
        "connection_id": futures_connection.id,
        "futures_enabled": False,
        "test": None,
    }
    assert get_connection(USER_A, futures_connection.id).futures_enabled is False
    order = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))
    assert order["statusCode"] == 409
    assert order_posts(sim_env) == []


def test_disable_needs_no_binance_call(sim_env, invoke, futures_connection):
    """GIVEN futures enabled WHEN disabled THEN Binance is not called (switching off must always work)."""
    sim_env.clear_journal()
    invoke("futures_disable", _futures_event("futures_disable", futures_connection.id))
    assert sim_env.journal == []


def test_disable_of_other_users_connection_is_not_found(sim_env, invoke, futures_connection):
    """GIVEN A's enabled connection WHEN user B disables it THEN 404 and it stays enabled."""
    response = invoke("futures_disable", _futures_event("futures_disable", futures_connection.id, USER_B))

    assert response["statusCode"] == 404, response["body"]
    assert get_connection(USER_A, futures_connection.id).futures_enabled is True


def test_disable_event_file_is_accepted(sim_env, invoke):
    """GIVEN events/futures_disable.json as is WHEN invoked THEN routed (404: no such connection)."""
    assert invoke("futures_disable", load_event("futures_disable"))["statusCode"] == 404
