"""Bad input to the connection settings and key routes: a clear error naming the field, nothing stored."""

from __future__ import annotations

import pytest
from klineo.store.connections import get_connection

from tests.helpers import load_event, response_json, with_body
from tests.integration.api.conftest import USER_A, USER_B, connection_event, credentials_body


def _patch(invoke, connection_id: str, body, user: str = USER_A) -> dict:
    return invoke(
        "connection_update", with_body(connection_event("connection_update", connection_id, user), body)
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"leverage": 0}, "leverage"),
        ({"max_leverage": 126}, "max_leverage"),
        ({"max_notional_usdt": "-5"}, "max_notional_usdt"),
        ({"kill_switch": "yes"}, "kill_switch"),
        ({"position_mode": "both"}, "position_mode"),
        ({"margin_type": "CROSSED"}, "margin_type"),
        ({"label": "   "}, "label"),
        ({"reduce_only": True}, "reduce_only"),
    ],
)
def test_patch_with_a_bad_field_is_refused_naming_it(stored_connection, invoke, body, field):
    """GIVEN a connection WHEN PATCH sends a bad value THEN 422 naming the field, and nothing changes."""
    before = get_connection(USER_A, stored_connection.id)

    response = _patch(invoke, stored_connection.id, body)

    assert response["statusCode"] == 422, response["body"]
    assert response_json(response)["error"]["field"] == field
    assert get_connection(USER_A, stored_connection.id) == before


@pytest.mark.parametrize(
    "field", ["label", "kill_switch", "max_leverage", "max_notional_usdt", "position_mode"])
def test_patch_null_for_a_required_setting_is_refused(stored_connection, invoke, field):
    """GIVEN a connection WHEN PATCH sends null on a setting that always has a value THEN 400 naming it and
    saying it cannot be cleared, nothing changed (only the futures defaults clear)."""
    before = get_connection(USER_A, stored_connection.id)
    response = _patch(invoke, stored_connection.id, {field: None, "leverage": 3})

    assert response["statusCode"] == 400, response["body"]
    error = response_json(response)["error"]
    assert error["field"] == field
    assert f"{field} cannot be cleared" in error["message"]
    assert get_connection(USER_A, stored_connection.id) == before


def test_patch_of_another_users_connection_is_not_found(stored_connection, invoke):
    """GIVEN A's connection WHEN B PATCHes its kill switch THEN 404 and A's connection is unchanged."""
    response = _patch(invoke, stored_connection.id, {"kill_switch": True}, user=USER_B)

    assert response["statusCode"] == 404
    assert get_connection(USER_A, stored_connection.id).kill_switch is False


def test_bad_new_secret_is_refused_without_echoing_it(sim_env, stored_connection, invoke):
    """GIVEN a bad new secret WHEN PUT THEN 422 naming secret; the value is not echoed."""
    body = {**credentials_body(sim_env.account("futures-full")), "secret": "short\u0001secret-value"}
    event = with_body(
        connection_event("connection_credentials", stored_connection.id, USER_A, "/credentials"), body
    )

    response = invoke("connection_credentials", event)

    assert response["statusCode"] == 422, response["body"]
    assert response_json(response)["error"]["field"] == "secret"
    assert "short" not in response["body"]


def test_new_keys_for_another_environment_are_refused(sim_env, stored_connection, invoke):
    """GIVEN a production connection WHEN PUT sends testnet keys THEN 400 naming environment, unchanged."""
    before = get_connection(USER_A, stored_connection.id)
    body = credentials_body(sim_env.account("testnet-futures"))
    event = with_body(
        connection_event("connection_credentials", stored_connection.id, USER_A, "/credentials"), body
    )

    response = invoke("connection_credentials", event)

    assert response["statusCode"] == 400, response["body"]
    assert response_json(response)["error"]["field"] == "environment"
    assert get_connection(USER_A, stored_connection.id) == before


def test_event_files_of_the_new_routes_are_accepted(sim_env, invoke):
    """GIVEN the new routes' event files as they are WHEN invoked THEN routed (404: no connection)."""
    for name in ("connection_update", "connection_credentials", "connection_enable"):
        assert invoke(name, load_event(name))["statusCode"] == 404, name
