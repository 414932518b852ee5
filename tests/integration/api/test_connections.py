"""Connection routes against the Binance simulator and moto: create, list, delete, test, test stored."""

from __future__ import annotations

import importlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType

import pytest
from botocore.exceptions import ClientError
from klineo.errors import ErrorCategory, KlineoError
from klineo.settings import get_settings
from klineo.store import aws as aws_clients
from klineo.store import connections as connection_store

from tests.helpers import load_event, response_json, with_body, with_user
from tests.integration.api.conftest import (
    USER_A,
    USER_B,
    aws_refusing,
    connection_event,
    credentials_body,
)

EGRESS_IP = "198.51.100.7"
KEY, SECRET = "A" * 64, "s" * 64


def _error(response: dict) -> dict:
    return response_json(response)["error"]


def _secret_names() -> list[str]:
    return [s["Name"] for s in aws_clients.secretsmanager().list_secrets()["SecretList"]]


def _data_items(aws) -> list[dict]:
    return aws_clients.dynamodb().scan(TableName=aws.refs["DataTable"])["Items"]


def _test_event(body: dict, user: str = USER_A) -> dict:
    return with_user(with_body(load_event("connection_test"), body), user)


def _create_event(body: dict, user: str = USER_A) -> dict:
    return with_user(with_body(load_event("connection_create"), body), user)


def _no_futures_call(sim) -> None:
    paths = [r.path for r in sim.journal]
    assert paths, "the simulator saw no request"
    assert not [p for p in paths if p.startswith("/fapi")], paths


def _logged(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture) -> str:
    """Every log record (message and extra fields) and everything printed, as one text."""
    records = [json.dumps(record.__dict__, default=str) for record in caplog.records]
    printed = capsys.readouterr()
    return "\n".join([*records, printed.out, printed.err])


def _set_egress_ip(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("EGRESS_IP", value)
    get_settings.cache_clear()


# ------------------------------------------------------------------ create



@pytest.fixture
def reimport() -> Iterator[Callable[..., ModuleType]]:
    """Re-import a function's module under extra environment variables, as a cold start would.

    After the test the variables are removed and the module is imported again, so no other test
    meets the reloaded one.
    """
    undo: list[tuple[pytest.MonkeyPatch, ModuleType]] = []

    def reimport_module(name: str, **environment: str) -> ModuleType:
        patch = pytest.MonkeyPatch()
        for key, value in environment.items():
            patch.setenv(key, value)
        module = importlib.reload(importlib.import_module(name))
        undo.append((patch, module))
        return module

    yield reimport_module
    for patch, module in reversed(undo):
        patch.undo()
        importlib.reload(module)

def test_create_from_the_event_file_stores_secret_and_masked_item(sim_env, invoke, aws, caplog, capsys):
    """GIVEN events/connection_create.json (base64 body) WHEN invoked THEN 201, one secret, one item."""
    event = load_event("connection_create")
    sub = event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
    response = invoke("connection_create", event)
    assert response["statusCode"] == 201, response["body"]
    created = response_json(response)
    account = sim_env.account("testnet-futures")
    assert account.secret not in response["body"] and account.api_key not in response["body"]
    assert created["environment"] == "testnet" and created["key_type"] == "hmac"
    assert created["futures_enabled"] is False
    assert created["api_key_masked"].startswith(account.api_key[:4])
    assert created["last_test"]["ok"] is True
    name = f"klineo/test/{sub}/{created['id']}"
    assert _secret_names() == [name]
    stored = json.loads(aws_clients.secretsmanager().get_secret_value(SecretId=name)["SecretString"])
    assert stored == {"api_key": account.api_key, "secret": account.secret, "key_type": "hmac"}
    item = connection_store.get_connection(sub, created["id"])
    assert item.secret_name == name and item.futures_enabled is False and item.last_test["ok"] is True
    assert account.secret not in json.dumps(_data_items(aws))
    assert account.secret not in _logged(caplog, capsys)
    _no_futures_call(sim_env)


@pytest.mark.parametrize("account_id", ["ed25519-futures", "rsa-futures"])
def test_create_accepts_ed25519_and_rsa_keys(create_connection, account_id):
    """GIVEN the simulator's Ed25519 / RSA demo keys WHEN created THEN 201 and the key type is kept."""
    stored = create_connection(USER_A, account_id)
    connection = connection_store.get_connection(USER_A, stored.id)
    assert connection.key_type == account_id.split("-")[0]


def test_create_takes_the_key_type_as_the_demo_accounts_file_writes_it(sim_env, invoke, aws):
    """GIVEN a body whose key_type is written "HMAC", as local/demo-accounts.json and Binance write it WHEN
    created THEN 201, stored and shown as hmac (a newcomer copying the file is not refused)."""
    account = sim_env.account("futures-full")
    body = {"label": "upper", **credentials_body(account), "key_type": account.key_type.upper()}

    response = invoke("connection_create", _create_event(body))

    assert response["statusCode"] == 201, response["body"]
    assert response_json(response)["key_type"] == "hmac"


def test_create_with_a_wrong_secret_stores_nothing(sim_env, invoke, aws):
    """GIVEN a key with the wrong secret WHEN created THEN 403 signature, no secret, no item."""
    body = {"label": "x", **credentials_body(sim_env.account("spot-only"))}
    body["secret"] = "x" * 64
    response = invoke("connection_create", _create_event(body))
    assert response["statusCode"] == 403
    assert _error(response)["category"] == "signature"
    assert _secret_names() == [] and _data_items(aws) == []


def test_create_with_a_testnet_key_on_production_says_where_it_belongs(sim_env, invoke, aws):
    """GIVEN a testnet key sent as production WHEN created THEN 403 naming the testnet; nothing stored."""
    body = {"label": "x", **credentials_body(sim_env.account("testnet-futures"), "production")}
    response = invoke("connection_create", _create_event(body))
    assert response["statusCode"] == 403
    error = _error(response)
    assert error["category"] == "permission"
    assert "belongs to the Binance testnet" in error["message"]
    assert _secret_names() == [] and _data_items(aws) == []


def test_create_when_the_item_write_fails_deletes_the_secret(sim_env, invoke, aws):
    """GIVEN the data table gone (item write fails) WHEN created THEN 500 'other', the secret deleted."""
    aws_clients.dynamodb().delete_table(TableName=aws.refs["DataTable"])
    body = {"label": "x", **credentials_body(sim_env.account("spot-only"))}
    response = invoke("connection_create", _create_event(body))
    assert response["statusCode"] == 500
    assert _error(response) == {"category": "other", "message": "internal error", "retryable": False,
                                "request_id": "id"}
    assert _secret_names() == []


class _Killed(BaseException):
    """The function stopped where no code of ours runs any more (its timeout, its memory)."""


def _writes_hook(kill_at: int | None = None) -> tuple[Callable[..., None], list[int]]:
    """A botocore hook counting AWS writes, and killing the invocation before the ``kill_at``-th (1-based)."""
    writes = [0]

    def before_call(model, **_: object) -> None:
        if model.name.startswith(("Get", "Describe", "List", "BatchGet", "Query")):
            return
        writes[0] += 1
        if writes[0] == kill_at:
            raise _Killed

    return before_call, writes


@contextmanager
def _hooked(hook: Callable[..., None]) -> Iterator[None]:
    clients = (aws_clients.dynamodb(), aws_clients.secretsmanager())
    for client in clients:
        client.meta.events.register("before-call.*.*", hook)
    try:
        yield
    finally:
        for client in clients:
            client.meta.events.unregister("before-call.*.*", hook)


def _unreferenced_secrets() -> list[str]:
    """Secrets that no connection item names: keys stored that nobody can see or delete."""
    items = aws_clients.dynamodb().scan(TableName=get_settings().data_table)["Items"]
    named = {item["secret_name"]["S"] for item in items if "secret_name" in item}
    return [name for name in _secret_names() if name not in named]


def test_create_killed_between_any_two_writes_never_leaves_a_key_nobody_can_see(sim_env, invoke, aws):
    """GIVEN a create that dies before its 1st, 2nd, ... AWS write WHEN it stops there THEN no secret is
    ever left without a connection item naming it (the item is written first; what remains at worst is
    a listed connection whose keys are missing)."""
    body = {"label": "x", **credentials_body(sim_env.account("spot-only"))}
    counting, writes = _writes_hook()
    with _hooked(counting):
        assert invoke("connection_create", _create_event(body))["statusCode"] == 201
    assert writes[0] >= 2  # the rate-limit table's, the item, the secret
    for number in range(1, writes[0] + 1):
        killer, _ = _writes_hook(kill_at=number)
        with _hooked(killer), pytest.raises(_Killed):
            invoke("connection_create", _create_event(body))
        assert _unreferenced_secrets() == [], f"killed before write {number}"


def test_create_when_the_secret_write_fails_removes_the_connection(sim_env, invoke, aws):
    """GIVEN Secrets Manager refusing the new secret WHEN a connection is created THEN 500, and neither
    the item written before it nor a secret remains (the clean-up runs under the function's policy)."""
    def refuse(**_: object) -> None:
        raise aws_clients.secretsmanager().exceptions.LimitExceededException(
            {"Error": {"Code": "LimitExceededException", "Message": "quota"}}, "CreateSecret")

    aws_clients.secretsmanager().meta.events.register("before-call.secrets-manager.CreateSecret", refuse)
    body = {"label": "x", **credentials_body(sim_env.account("spot-only"))}
    try:
        response = invoke("connection_create", _create_event(body))
    finally:
        aws_clients.secretsmanager().meta.events.unregister(
            "before-call.secrets-manager.CreateSecret", refuse)
    assert response["statusCode"] == 500
    assert connection_store.list_connections(USER_A) == [] and _secret_names() == []


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"environment": "production", "key_type": "hmac", "api_key": KEY, "secret": SECRET}, 422, "label"),
    ({"label": "x", "environment": "live", "key_type": "hmac", "api_key": KEY, "secret": SECRET}, 422,
     "environment"),
    ({"label": "x", "environment": "testnet", "key_type": "dsa", "api_key": KEY, "secret": SECRET}, 422,
     "key_type"),
    ({"label": "x", "environment": "testnet", "key_type": "rsa", "api_key": "A" * 64,
      "secret": "-----BEGIN PRIVATE KEY-----\nSECRETSECRET\n-----END PRIVATE KEY-----"}, 422, "secret"),
    ("{not json", 400, "body"),
    ({"label": "x" * 20000}, 413, "body"),
])
def test_create_refuses_bad_input_naming_the_field(sim_env, invoke, aws, caplog, capsys, body, status, field):
    """GIVEN a bad body WHEN created THEN 400/413/422 naming the field; nothing stored, no Binance call."""
    response = invoke("connection_create", _create_event(body))
    assert response["statusCode"] == status
    assert _error(response)["field"] == field
    assert "SECRETSECRET" not in response["body"] + _logged(caplog, capsys)
    assert _secret_names() == [] and sim_env.journal == []


# ------------------------------------------------------------------ list and delete


def test_list_shows_only_the_callers_connections(create_connection, invoke):
    """GIVEN connections of users A and B WHEN each lists THEN each sees only their own, never a secret."""
    a = create_connection(USER_A, "futures-full")
    b = create_connection(USER_B, "spot-only")
    for user, mine in ((USER_A, a), (USER_B, b)):
        response = invoke("connection_list", with_user(load_event("connection_list"), user))
        assert response["statusCode"] == 200
        assert [c["id"] for c in response_json(response)["connections"]] == [mine.id]
        assert mine.account.secret not in response["body"]


def test_delete_removes_secret_and_item(stored_connection, invoke):
    """GIVEN A's connection WHEN A deletes it THEN 200 saying so, secret and item gone; again -> 404."""
    event = connection_event("connection_delete", stored_connection.id, USER_A)
    response = invoke("connection_delete", event)
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {
        "id": stored_connection.id, "deleted": True, "paused_strategies": [],
        "orders_cancelled": [], "orders_left_open": [], "orders_cancelled_count": 0,
        "orders_left_open_count": 0, "orders_shortened": False, "orders_checked": True,
        "earlier_attempt_since": None}
    assert _secret_names() == []
    assert connection_store.get_connection(USER_A, stored_connection.id) is None
    assert invoke("connection_delete", event)["statusCode"] == 404


def test_delete_forgets_the_keys_this_container_cached(stored_connection, invoke):
    """GIVEN the connection's keys read (and cached, by version) in this container WHEN it is deleted
    THEN reading them again finds them gone, instead of answering the deleted key from the cache."""
    connection = connection_store.get_connection(USER_A, stored_connection.id)
    assert connection_store.connection_credentials(connection).api_key

    assert invoke("connection_delete", connection_event("connection_delete", connection.connection_id,
                                                        USER_A))["statusCode"] == 200

    with pytest.raises(KlineoError) as gone:
        connection_store.connection_credentials(connection)
    assert gone.value.category is ErrorCategory.NOT_FOUND


def test_delete_of_another_users_connection_is_404_and_changes_nothing(stored_connection, invoke):
    """GIVEN A's connection WHEN B deletes it THEN 404 and A's secret and item remain."""
    event = connection_event("connection_delete", stored_connection.id, USER_B)
    response = invoke("connection_delete", event)
    assert response["statusCode"] == 404
    assert _error(response)["category"] == "not_found"
    assert len(_secret_names()) == 1
    assert connection_store.get_connection(USER_A, stored_connection.id) is not None


# ------------------------------------------------------------------ test with keys in the body


def test_spot_test_succeeds_without_any_futures_call(sim_env, invoke):
    """GIVEN a good production key WHEN tested THEN ok, permissions and offset, and no /fapi request."""
    response = invoke("connection_test", _test_event(credentials_body(sim_env.account("futures-full"))))
    assert response["statusCode"] == 200
    result = response_json(response)
    assert result["ok"] is True and result["category"] is None
    assert result["permissions"] == ["SPOT"] and result["can_trade"] is True
    assert result["ip_restricted"] is False
    assert [w["code"] for w in result["warnings"]] == ["no_ip_restriction"]
    assert isinstance(result["server_time_offset_ms"], int)
    assert [r.path for r in sim_env.journal] == ["/api/v3/time", "/api/v3/account",
                                                 "/sapi/v1/account/apiRestrictions"]


def test_spot_test_reports_the_measured_server_time_offset(sim_env, invoke):
    """GIVEN Binance's clock 5 s ahead WHEN tested THEN ok (server-time signing), offset 5000 ms within
    half the time call's round trip (bounded by the whole call, so a loaded machine cannot fail it)."""
    sim_env.set_clock_skew_ms(5000)
    body = credentials_body(sim_env.account("spot-only"))
    started = time.monotonic()
    result = response_json(invoke("connection_test", _test_event(body)))
    elapsed_ms = (time.monotonic() - started) * 1000
    assert result["ok"] is True
    # The simulator's clock is this process's clock + 5000 ms, read between the request's send and its
    # answer; the client takes the midpoint of the two (2 ms: whole milliseconds and the rounding).
    assert abs(result["server_time_offset_ms"] - 5000) <= elapsed_ms / 2 + 2


def test_permission_findings_are_warnings_only(sim_env, invoke):
    """GIVEN a withdrawal-enabled key and a read-only key WHEN tested THEN ok with the matching warnings."""
    risky = response_json(invoke("connection_test",
                                 _test_event(credentials_body(sim_env.account("withdrawals-enabled")))))
    assert risky["ok"] is True and risky["can_withdraw"] is True
    assert "withdrawals_enabled" in [w["code"] for w in risky["warnings"]]
    body = credentials_body(sim_env.account("read-only"))
    reader = response_json(invoke("connection_test", _test_event(body)))
    assert reader["ok"] is True and reader["can_trade"] is False
    assert "cannot_trade" in [w["code"] for w in reader["warnings"]]


def test_testnet_test_skips_api_restrictions(sim_env, invoke):
    """GIVEN a testnet key WHEN tested THEN ok without /sapi (the testnet has none), no warning."""
    result = response_json(invoke("connection_test",
                                  _test_event(credentials_body(sim_env.account("testnet-futures")))))
    assert result["ok"] is True and result["ip_restricted"] is None and result["warnings"] == []
    assert [r.path for r in sim_env.journal] == ["/api/v3/time", "/api/v3/account"]


def test_key_of_the_other_environment_is_recognised(sim_env, invoke):
    """GIVEN a production key tested as testnet WHEN tested THEN ok=false naming production."""
    result = response_json(invoke("connection_test",
                                  _test_event(credentials_body(sim_env.account("spot-only"), "testnet"))))
    assert result["ok"] is False and result["category"] == "permission"
    assert result["suggested_environment"] == "production"
    assert "belongs to the Binance production" in result["message"]
    _no_futures_call(sim_env)


def test_ip_restricted_key_is_reported_as_ip_whitelist_naming_the_egress_ip(sim_env, invoke, monkeypatch):
    """GIVEN an allow-list excluding us and a static egress IP WHEN tested THEN ip_whitelist naming it."""
    _set_egress_ip(monkeypatch, EGRESS_IP)
    result = response_json(invoke("connection_test",
                                  _test_event(credentials_body(sim_env.account("ip-restricted")))))
    assert result["ok"] is False and result["category"] == "ip_whitelist"
    assert EGRESS_IP in result["message"] and result["egress_ip"] == EGRESS_IP
    assert result["suggested_environment"] is None
    _no_futures_call(sim_env)


def test_ip_restricted_key_without_static_egress_ip_says_so(sim_env, invoke, monkeypatch):
    """GIVEN no static egress IP WHEN an IP-restricted key is tested THEN ip_whitelist saying so."""
    _set_egress_ip(monkeypatch, "")
    result = response_json(invoke("connection_test",
                                  _test_event(credentials_body(sim_env.account("ip-restricted")))))
    assert result["category"] == "ip_whitelist"
    assert "no fixed outgoing IP address" in result["message"] and result["egress_ip"] is None


def test_unknown_key_is_a_permission_failure_not_ip_whitelist(sim_env, invoke):
    """GIVEN a key Binance does not know WHEN tested THEN permission (never ip_whitelist), both envs tried."""
    body = credentials_body(sim_env.account("spot-only"))
    body["api_key"] = "Q" * 64
    result = response_json(invoke("connection_test", _test_event(body)))
    assert result["ok"] is False and result["category"] == "permission"
    assert result["suggested_environment"] is None
    assert "trusted IPs" in result["message"]
    assert {r.env for r in sim_env.journal} == {"production", "testnet"}
    _no_futures_call(sim_env)


def test_wrong_secret_is_a_signature_failure(sim_env, invoke):
    """GIVEN the right API key with another account's secret WHEN tested THEN signature failure."""
    body = credentials_body(sim_env.account("spot-only"))
    body["secret"] = sim_env.account("read-only").secret
    result = response_json(invoke("connection_test", _test_event(body)))
    assert result["ok"] is False and result["category"] == "signature"
    assert body["secret"] not in json.dumps(result)


def test_ip_ban_reaches_the_caller_with_retry_after(sim_env, invoke):
    """GIVEN Binance answering 418 WHEN tested THEN 503 ip_banned with Retry-After, not a key verdict."""
    sim_env.faults.add("http_418", count=5, retry_after_s=90)
    response = invoke("connection_test", _test_event(credentials_body(sim_env.account("spot-only"))))
    assert response["statusCode"] == 503
    assert _error(response)["category"] == "ip_banned" and _error(response)["retryable"] is True
    assert int(response["headers"]["Retry-After"]) >= 1


def test_rate_limit_reaches_the_caller_as_429_with_retry_after(sim_env, invoke):
    """GIVEN 429 with a long Retry-After WHEN tested THEN 429 rate_limit passing that Retry-After on."""
    sim_env.faults.add("http_429", count=5, retry_after_s=45)
    response = invoke("connection_test", _test_event(credentials_body(sim_env.account("spot-only"))))
    assert response["statusCode"] == 429
    assert _error(response)["category"] == "rate_limit"
    assert response["headers"]["Retry-After"] == "45"


# ------------------------------------------------------------------ test on stored keys


def test_stored_test_records_the_result_on_the_item(stored_connection, invoke, sim_env):
    """GIVEN A's connection WHEN A tests it THEN ok, recorded as last_test; spot only."""
    before = connection_store.get_connection(USER_A, stored_connection.id).last_test
    sim_env.clear_journal()
    event = connection_event("connection_test_stored", stored_connection.id, USER_A, "/test")
    response = invoke("connection_test_stored", event)
    assert response["statusCode"] == 200
    result = response_json(response)
    assert result["ok"] is True
    after = connection_store.get_connection(USER_A, stored_connection.id).last_test
    assert after == result and after["tested_at"] >= before["tested_at"]
    _no_futures_call(sim_env)


def test_stored_test_of_another_users_connection_is_404(stored_connection, invoke, sim_env):
    """GIVEN A's connection WHEN B tests it THEN 404 and Binance is not called."""
    sim_env.clear_journal()
    event = connection_event("connection_test_stored", stored_connection.id, USER_B, "/test")
    response = invoke("connection_test_stored", event)
    assert response["statusCode"] == 404
    assert sim_env.journal == []


@pytest.mark.parametrize(("function", "suffix"), [
    ("balance", "/balance"), ("connection_test_stored", "/test"), ("connection_delete", ""),
])
def test_impossible_connection_ids_are_404_not_500(sim_env, invoke, function, suffix):
    """GIVEN an id no connection can have (2000 chars, odd characters) WHEN used THEN 404, never a 500."""
    for bad in ("f" * 2000, "CONN%23x", "0123456789abcdef0123456789ABCDEF"):
        response = invoke(function, connection_event(function, bad, USER_A, suffix))
        assert response["statusCode"] == 404, (bad[:20], response["body"])


def test_test_route_refuses_bad_input_before_calling_binance(sim_env, invoke):
    """GIVEN a test body with an unknown key type WHEN tested THEN 422 naming it and no Binance call."""
    body = {**credentials_body(sim_env.account("spot-only")), "key_type": "HMAC-SHA256"}
    response = invoke("connection_test", _test_event(body))
    assert response["statusCode"] == 422
    assert _error(response)["field"] == "key_type"
    assert sim_env.journal == []


def test_test_route_takes_the_create_body_with_its_label(sim_env, invoke, aws):
    """GIVEN the body a frontend will save (label included) WHEN tested THEN 200 ok and nothing is stored."""
    body = {**credentials_body(sim_env.account("futures-full")), "label": "My main key"}
    response = invoke("connection_test", _test_event(body))
    assert response["statusCode"] == 200, response["body"]
    assert response_json(response)["ok"] is True
    assert _secret_names() == [] and _data_items(aws) == []


def test_test_route_checks_a_label_by_the_create_rule(sim_env, invoke):
    """GIVEN a blank label in a test body WHEN tested THEN 422 naming label and no Binance call."""
    body = {**credentials_body(sim_env.account("futures-full")), "label": "   "}
    response = invoke("connection_test", _test_event(body))
    assert response["statusCode"] == 422
    assert _error(response)["field"] == "label"
    assert sim_env.journal == []


@pytest.mark.parametrize("label", [
    "Compte\u00a0principal",  # a no-break space, as a French keyboard or a pasted text gives it
    "Family \U0001F468\u200D\U0001F469\u200D\U0001F467",  # an emoji joined by zero-width joiners
])
def test_create_takes_a_label_with_unicode_spaces_and_joined_emoji(sim_env, invoke, aws, label):
    """GIVEN a label holding a no-break space or a joined emoji (no control character) WHEN created THEN 201
    with that label, not a 422 saying it has control characters."""
    body = {"label": label, **credentials_body(sim_env.account("futures-full"))}
    response = invoke("connection_create", _create_event(body))
    assert response["statusCode"] == 201, response["body"]
    assert response_json(response)["label"] == label


def test_create_measures_a_label_after_trimming_it(sim_env, invoke, aws):
    """GIVEN a 64-character label sent with a space on each side (a pasted name) WHEN created THEN 201 with
    the trimmed label: the 64-character bound applies to the label kept, not to the spaces around it."""
    label = "L" * 64
    body = {"label": f" {label} ", **credentials_body(sim_env.account("futures-full"))}
    response = invoke("connection_create", _create_event(body))
    assert response["statusCode"] == 201, response["body"]
    assert response_json(response)["label"] == label


@pytest.mark.parametrize("label", ["a\nb", "a\tb", "a\u2028b", "a\u202eb", "a\u0000b"])
def test_create_refuses_a_label_with_control_or_line_breaking_characters(sim_env, invoke, aws, label):
    """GIVEN a label with a newline, tab, line separator, bidi override or NUL WHEN created THEN 422 naming
    label and no Binance call."""
    body = {"label": label, **credentials_body(sim_env.account("futures-full"))}
    response = invoke("connection_create", _create_event(body))
    assert response["statusCode"] == 422
    assert _error(response)["field"] == "label"
    assert sim_env.journal == []


def test_answers_carry_cors_for_the_templates_frontend_origin(sim_env, invoke, template, reimport):
    """GIVEN the template's CorsOrigin default as Origin WHEN a route answers THEN that origin is allowed."""
    origin = template["Parameters"]["CorsOrigin"]["Default"]
    event = with_user(load_event("connection_list"), USER_A)
    event["headers"]["origin"] = origin
    # The resolver reads CORS_ORIGIN at import, as a cold start would: import it under this environment.
    reimport("functions.connection_list.app")
    response = invoke("connection_list", event)
    assert response["headers"]["Access-Control-Allow-Origin"] == origin


def test_secret_stays_out_of_logs_in_powertools_debug_modes(sim_env, invoke, reimport, caplog, capsys):
    """GIVEN POWERTOOLS_DEV, event logging and debug on WHEN keys are created THEN no log holds the secret."""
    debug = ("POWERTOOLS_DEV", "POWERTOOLS_LOGGER_LOG_EVENT", "POWERTOOLS_EVENT_HANDLER_DEBUG")
    reimport("functions.connection_create.app", **dict.fromkeys(debug, "true"))
    account = sim_env.account("spot-only")
    response = invoke("connection_create", _create_event({"label": "x", **credentials_body(account)}))
    assert response["statusCode"] == 201
    bad = invoke("connection_create", _create_event({"label": "x", **credentials_body(account), "extra": 1}))
    assert bad["statusCode"] == 422
    assert caplog.records, "nothing was logged: the check below would prove nothing"
    assert account.secret not in _logged(caplog, capsys) + response["body"] + bad["body"]


def test_keys_never_logged_when_the_runtime_logs_at_debug(sim_env, invoke, caplog):
    """GIVEN the runtime's root logger at DEBUG (Lambda ApplicationLogLevel=DEBUG) WHEN keys are created
    THEN no log line holds the secret, a signed query string or the full API key."""
    account = sim_env.account("spot-only")
    caplog.set_level(logging.DEBUG)
    body = {"label": "x", **credentials_body(account)}
    response = invoke("connection_create", _create_event(body))
    assert response["statusCode"] == 201
    logged = "\n".join(record.getMessage() for record in caplog.records)
    leaks = {
        "secret": account.secret in logged,  # botocore: "Making request ... CreateSecret ... 'body': ..."
        "signed query": "signature=" in logged,  # urllib3: '"GET /api/v3/account?...&signature=..." 200'
        "full API key": account.api_key in logged,  # Powertools: "Calling API Route Handler: {'body': ...}"
    }
    assert not any(leaks.values()), f"in a log line: {[name for name, leaked in leaks.items() if leaked]}"


# ------------------------------------------------------------------ a delete that stopped half-way


def _credentials_event(connection_id: str, body: dict) -> dict:
    return with_body(connection_event("connection_credentials", connection_id, USER_A, "/credentials"), body)


@pytest.mark.parametrize(("stopped_at", "service"), [
    ("DeleteSecret", "secrets-manager"),  # the secret still there
    ("DeleteItem", "dynamodb"),  # the secret gone, the item still there
])
def test_new_keys_for_a_connection_whose_delete_stopped_half_way_areaws_refusing(
        create_connection, invoke, stopped_at, service):
    """GIVEN a DELETE that failed after marking the connection (at the secret, or at the item) WHEN new keys
    are PUT for it THEN 409 naming connection_id, and no key is stored: the connection still refuses every
    order and only a second DELETE finishes it (before: 200 storing a key for a dying connection, or 500)."""
    connection = create_connection(USER_A, "spot-only")
    with aws_refusing(stopped_at, service):
        assert invoke("connection_delete", connection_event("connection_delete", connection.id,
                                                            USER_A))["statusCode"] == 503
    before = connection_store.get_connection(USER_A, connection.id)

    response = invoke("connection_credentials", _credentials_event(
        connection.id, credentials_body(connection.account)))

    assert response["statusCode"] == 409, response["body"]
    assert _error(response)["field"] == "connection_id"
    assert connection_store.get_connection(USER_A, connection.id) == before


@pytest.mark.parametrize(("stopped_at", "service"), [
    ("DeleteSecret", "secrets-manager"),  # the secret still there
    ("DeleteItem", "dynamodb"),  # the secret gone, the item still there
])
@pytest.mark.parametrize(("route", "suffix"), [
    ("connection_test_stored", "/test"),
    ("futures_test", "/futures/test"),
])
def test_testing_the_keys_of_a_connection_whose_delete_stopped_half_way_is_refused(
        create_connection, invoke, sim_env, stopped_at, service, route, suffix):
    """GIVEN a DELETE that failed after marking the connection (at the secret, or at the item) WHEN its
    stored keys are tested (spot, or futures) THEN 409 naming connection_id, as PUT credentials and enable
    answer, nothing is sent to Binance and nothing recorded (before: 200 with the test recorded on a dying
    connection, or a 404 once the secret was gone)."""
    connection = create_connection(USER_A, "spot-only")
    with aws_refusing(stopped_at, service):
        assert invoke("connection_delete", connection_event("connection_delete", connection.id,
                                                            USER_A))["statusCode"] == 503
    before, calls = connection_store.get_connection(USER_A, connection.id), len(sim_env.journal)

    response = invoke(route, connection_event(route, connection.id, USER_A, suffix))

    assert response["statusCode"] == 409, response["body"]
    assert _error(response)["field"] == "connection_id"
    assert len(sim_env.journal) == calls
    assert connection_store.get_connection(USER_A, connection.id) == before


def test_enabling_a_connection_whose_delete_stopped_half_way_isaws_refusing(create_connection, invoke):
    """GIVEN a disabled connection whose DELETE failed at the secret (marked, its strategies paused) WHEN it
    is enabled THEN 409 naming connection_id and it stays disabled (before: 200, its disabled state cleared
    on a connection that refuses every order until a second DELETE finishes it)."""
    connection = create_connection(USER_A, "spot-only")
    connection_store.disable_connection(USER_A, connection.id, "connection_disabled:permission")
    with aws_refusing("DeleteSecret", "secrets-manager"):
        assert invoke("connection_delete", connection_event("connection_delete", connection.id,
                                                            USER_A))["statusCode"] == 503

    response = invoke("connection_enable", connection_event("connection_enable", connection.id, USER_A,
                                                            "/enable"))

    assert response["statusCode"] == 409, response["body"]
    assert _error(response)["field"] == "connection_id"
    assert connection_store.get_connection(USER_A, connection.id).disabled


def test_new_keys_put_while_a_delete_runs_to_its_end_are_not_stored_and_answer_404(create_connection, invoke):
    """GIVEN a DELETE that runs to its end while PUT credentials tests the new key WHEN the PUT then stores
    the key THEN 404 (not 500), and neither a secret nor the item is left behind."""
    connection = create_connection(USER_A, "spot-only")
    client = aws_clients.secretsmanager()

    def delete_first(**_: object) -> None:
        client.meta.events.unregister("before-call.secrets-manager.PutSecretValue", delete_first)
        event = connection_event("connection_delete", connection.id, USER_A)
        assert invoke("connection_delete", event)["statusCode"] == 200

    client.meta.events.register("before-call.secrets-manager.PutSecretValue", delete_first)
    try:
        response = invoke("connection_credentials", _credentials_event(connection.id,
                                                                       credentials_body(connection.account)))
    finally:
        client.meta.events.unregister("before-call.secrets-manager.PutSecretValue", delete_first)

    assert response["statusCode"] == 404, response["body"]
    assert _secret_names() == [] and connection_store.get_connection(USER_A, connection.id) is None



@contextmanager
def _query_answering(code: str) -> Iterator[None]:
    """Every DynamoDB Query failing with ``code`` (as after botocore's own retries) while inside."""
    client = aws_clients.dynamodb()

    def fail(**_: object) -> None:
        raise ClientError({"Error": {"Code": code, "Message": "slow down"}}, "Query")

    client.meta.events.register("before-call.dynamodb.Query", fail)
    try:
        yield
    finally:
        client.meta.events.unregister("before-call.dynamodb.Query", fail)


@pytest.mark.parametrize("code", ["ThrottlingException", "ProvisionedThroughputExceededException"])
def test_a_route_whose_storage_is_throttled_answers_a_retryable_503(create_connection, invoke, code):
    """GIVEN DynamoDB throttling a route's read past botocore's own retries WHEN the route is called THEN a
    retryable 503 upstream_unavailable (a repeat gets past it), never a 500, and no AWS text in the body."""
    create_connection(USER_A, "spot-only")
    with _query_answering(code):
        response = invoke("connection_list", with_user(load_event("connection_list"), USER_A))

    assert response["statusCode"] == 503, response["body"]
    assert _error(response) == {"category": "upstream_unavailable", "retryable": True, "request_id": "id",
                                "message": "storage is busy; try again in a moment"}


def test_a_route_whose_storage_refuses_the_request_answers_500_without_its_text(create_connection, invoke):
    """GIVEN DynamoDB refusing a route's read as invalid (a fault of ours, not a busy service) WHEN the
    route is called THEN 500 'other' with no AWS text: a retry would not get past it."""
    create_connection(USER_A, "spot-only")
    with _query_answering("ValidationException"):
        response = invoke("connection_list", with_user(load_event("connection_list"), USER_A))

    assert response["statusCode"] == 500, response["body"]
    assert _error(response) == {"category": "other", "message": "internal error", "retryable": False,
                                "request_id": "id"}


def test_a_stored_connection_fixture_prints_no_key_material(stored_connection) -> None:
    """A stored connection (and its simulator account) in a failing test's output shows no secret: pytest
    prints a fixture's repr, and the house rule keeps secrets out of test output too."""
    secret = stored_connection.account.secret
    assert secret and secret not in repr(stored_connection)
    assert secret not in repr(stored_connection.account)
