"""The keys a connection is created with, against the simulator and moto: a PEM pasted from a JSON file,
one API key added twice, a key of the other environment."""

from __future__ import annotations

import json

import pytest
from klineo.store import aws as aws_clients

from tests.helpers import load_event, response_json, with_body, with_user
from tests.integration.api.conftest import USER_A, credentials_body


def _create(invoke, body: dict, user: str = USER_A) -> dict:
    return invoke("connection_create", with_user(with_body(load_event("connection_create"), body), user))


def _stored_secret(name: str) -> dict:
    return json.loads(aws_clients.secretsmanager().get_secret_value(SecretId=name)["SecretString"])


def _secret_names() -> list[str]:
    return [s["Name"] for s in aws_clients.secretsmanager().list_secrets()["SecretList"]]


# ------------------------------------------------------------------ a PEM pasted with "\n" written out


@pytest.mark.parametrize("account_id", ["ed25519-futures", "rsa-futures"])
def test_create_takes_a_pem_whose_line_breaks_are_written_as_backslash_n(sim_env, invoke, aws, account_id):
    """GIVEN a private key copied from a JSON file (its line breaks the two characters \\n, no real one)
    WHEN created THEN 201, and the key stored is the PEM with real line breaks (it signed the spot test)."""
    account = sim_env.account(account_id)
    body = {"label": "from json", **credentials_body(account)}
    body["secret"] = account.private_key_pem.strip().replace("\n", "\\n")

    response = _create(invoke, body)

    assert response["statusCode"] == 201, response["body"]
    [name] = _secret_names()
    assert _stored_secret(name)["secret"] == account.private_key_pem.strip() + "\n"


def test_an_unreadable_pem_says_how_to_paste_it_without_repeating_it(sim_env, invoke, aws):
    """GIVEN a PEM that still does not parse WHEN created THEN 422 naming secret, saying to paste the whole
    key with its line breaks, never repeating the text; nothing stored, no Binance call."""
    body = {"label": "x", **credentials_body(sim_env.account("ed25519-futures")),
            "secret": "-----BEGIN PRIVATE KEY-----\\nSECRETSECRET\\n-----END PRIVATE KEY-----"}

    response = _create(invoke, body)

    assert response["statusCode"] == 422, response["body"]
    error = response_json(response)["error"]
    assert error["field"] == "secret"
    assert "-----BEGIN PRIVATE KEY----- to -----END PRIVATE KEY-----" in error["message"]
    assert "line breaks" in error["message"]
    assert "SECRETSECRET" not in response["body"]
    assert _secret_names() == [] and sim_env.journal == []


# ------------------------------------------------------------------ a key of the other environment


def test_create_refuses_a_key_of_the_other_environment_as_the_test_route_tells_it(sim_env, invoke, aws):
    """GIVEN a testnet key sent as production WHEN tested, then created THEN the create's 403 says what the
    test said (category, message, suggested_environment "testnet") and names the environment field; nothing
    stored."""
    body = {"label": "x", **credentials_body(sim_env.account("testnet-futures"), "production")}
    tested = response_json(invoke("connection_test", with_user(with_body(load_event("connection_test"), body),
                                                               USER_A)))

    response = _create(invoke, body)

    assert response["statusCode"] == 403, response["body"]
    error = response_json(response)["error"]
    assert tested["suggested_environment"] == error["suggested_environment"] == "testnet"
    assert (error["category"], error["message"]) == (tested["category"], tested["message"])
    assert error["field"] == "environment"
    assert _secret_names() == []
