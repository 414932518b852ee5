"""Balance, candles and kill-switch routes against the simulator and moto."""

from __future__ import annotations

import time

import pytest
from klineo.store import aws as aws_clients
from klineo.store import flags

from tests.helpers import load_event, response_json, with_body, with_user
from tests.integration.api.conftest import USER_A, USER_B, connection_event


def _error(response: dict) -> dict:
    return response_json(response)["error"]


class _Calls:
    """AWS API calls one client makes, with the table they name."""

    def __init__(self, client):
        self.calls: list[tuple[str, str | None]] = []
        client.meta.events.register("before-parameter-build.*.*", self._record)

    def _record(self, model, params, **_):
        self.calls.append((model.name, params.get("TableName") or params.get("SecretId")))


# ------------------------------------------------------------------ balance


def test_balance_lists_non_zero_spot_balances_as_decimal_strings(stored_connection, invoke, sim_env):
    """GIVEN A's futures-full key (BNB zero) WHEN A asks for the balance THEN non-zero assets, as strings
    written as every other answer writes a number (klineo.validation.plain_text: Binance's padding
    "0.50000000" trimmed to "0.5", a zero "0")."""
    sim_env.clear_journal()
    response = invoke("balance", connection_event("balance", stored_connection.id, USER_A, "/balance"))
    assert response["statusCode"] == 200
    body = response_json(response)
    assert body["connection_id"] == stored_connection.id and body["environment"] == "production"
    assert body["balances"] == [
        {"asset": "BTC", "free": "0.5", "locked": "0"},
        {"asset": "ETH", "free": "2", "locked": "0"},
        {"asset": "USDT", "free": "10000", "locked": "0"},
    ]
    assert [r.path for r in sim_env.journal] in (["/api/v3/account"], ["/api/v3/time", "/api/v3/account"])


def test_balance_of_another_users_connection_is_404_and_no_binance_call(stored_connection, invoke, sim_env):
    """GIVEN A's connection WHEN B asks for its balance THEN 404 and Binance is not called."""
    sim_env.clear_journal()
    response = invoke("balance", connection_event("balance", stored_connection.id, USER_B, "/balance"))
    assert response["statusCode"] == 404
    assert _error(response)["category"] == "not_found"
    assert sim_env.journal == []


def test_warm_balance_costs_one_data_table_read_and_no_secret_read(stored_connection, invoke, aws):
    """GIVEN a warm container WHEN the balance is asked again THEN one GetItem, no Secrets Manager call."""
    event = connection_event("balance", stored_connection.id, USER_A, "/balance")
    assert invoke("balance", event)["statusCode"] == 200
    dynamodb_calls, secret_calls = _Calls(aws_clients.dynamodb()), _Calls(aws_clients.secretsmanager())
    assert invoke("balance", event)["statusCode"] == 200
    data_table = aws.refs["DataTable"]
    assert [c for c in dynamodb_calls.calls if c[1] == data_table] == [("GetItem", data_table)]
    assert secret_calls.calls == []


def test_balance_never_calls_a_futures_url(stored_connection, invoke, sim_env):
    """GIVEN a futures-enabled key WHEN the balance is asked THEN only spot paths are called."""
    sim_env.clear_journal()
    invoke("balance", connection_event("balance", stored_connection.id, USER_A, "/balance"))
    assert all(r.path.startswith("/api/") for r in sim_env.journal)


# ------------------------------------------------------------------ candles


def _candles(**query: str) -> dict:
    event = load_event("candles")
    event["queryStringParameters"] = query
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    return event


def test_candles_from_the_event_file(sim_env, invoke):
    """GIVEN events/candles.json (spot testnet, 100 x 1h from a fixed past hour) WHEN invoked THEN those 100
    candles from spot testnet (a fixed range answers the same at any time, in a container or not)."""
    response = invoke("candles", load_event("candles"))
    assert response["statusCode"] == 200
    body = response_json(response)
    assert (body["symbol"], body["interval"], body["market"], body["environment"]) == (
        "BTCUSDT", "1h", "spot", "testnet")
    assert len(body["candles"]) == 100
    first = body["candles"][0]
    assert first["open_time"] == 1793577600000
    assert first["close_time"] > first["open_time"] and isinstance(first["close"], str)
    assert [(r.path, r.env) for r in sim_env.journal] == [("/api/v3/klines", "testnet")]


def test_futures_candles_call_only_the_futures_url(sim_env, invoke):
    """GIVEN market=futures and limit 1500 WHEN invoked THEN 1500 candles from /fapi only."""
    response = invoke("candles", _candles(symbol="ETHUSDT", interval="5m", market="futures",
                                          environment="production", limit="1500"))
    assert response["statusCode"] == 200
    assert len(response_json(response)["candles"]) == 1500
    assert [(r.path, r.env) for r in sim_env.journal] == [("/fapi/v1/klines", "production")]


def test_candles_of_a_range_are_those_whose_open_time_is_in_it(sim_env, invoke):
    """GIVEN from/to (epoch ms) WHEN invoked THEN the candles opened in [from, to], oldest first (the
    original's chart route takes a range too)."""
    hour = 3_600_000
    start = (int(time.time() * 1000) // hour - 48) * hour
    response = invoke("candles", _candles(symbol="BTCUSDT", interval="1h", environment="production",
                                          **{"from": str(start), "to": str(start + 5 * hour)}))
    assert response["statusCode"] == 200, response["body"]
    opens = [c["open_time"] for c in response_json(response)["candles"]]
    assert opens == [start + k * hour for k in range(6)]


def test_candles_up_to_a_time_are_the_last_limit_before_it(sim_env, invoke):
    """GIVEN only to and limit 3 WHEN invoked THEN the 3 candles opened last at or before to."""
    hour = 3_600_000
    end = (int(time.time() * 1000) // hour - 10) * hour
    response = invoke("candles", _candles(symbol="BTCUSDT", interval="1h", limit="3", to=str(end)))
    assert response["statusCode"] == 200, response["body"]
    assert [c["open_time"] for c in response_json(response)["candles"]] == [end - 2 * hour, end - hour, end]


@pytest.mark.parametrize(("query", "field"), [
    ({"symbol": "btc-usdt", "interval": "1m"}, "symbol"),
    ({"symbol": "BTCUSDT", "interval": "7m"}, "interval"),
    ({"symbol": "BTCUSDT", "interval": "1m", "limit": "1001"}, "limit"),
    ({"symbol": "BTCUSDT", "interval": "1m", "limit": "0"}, "limit"),
    ({"symbol": "BTCUSDT", "interval": "1m", "limit": "ten"}, "limit"),
    ({"symbol": "BTCUSDT", "interval": "1m", "market": "margin"}, "market"),
    ({"symbol": "BTCUSDT", "interval": "1m", "environment": "demo"}, "environment"),
    ({"interval": "1m"}, "symbol"),
    ({"symbol": "BTCUSDT", "interval": "1m", "from": "yesterday"}, "from"),
    ({"symbol": "BTCUSDT", "interval": "1m", "to": "-1"}, "to"),
    ({"symbol": "BTCUSDT", "interval": "1m", "from": "5", "to": "4"}, "to"),
])
def test_candles_refuse_bad_queries_naming_the_field(sim_env, invoke, query, field):
    """GIVEN a bad query WHEN invoked THEN 422 naming the field and no Binance call."""
    response = invoke("candles", _candles(**query))
    assert response["statusCode"] == 422
    assert _error(response)["field"] == field
    assert sim_env.journal == []


@pytest.mark.parametrize("limit", ["1001", "1500"])
def test_a_spot_limit_over_1000_says_what_spot_allows(sim_env, invoke, limit):
    """GIVEN spot candles asked with a limit futures would allow WHEN invoked THEN the refusal says spot's
    bound (not a bare "invalid value"), without repeating the limit sent."""
    response = invoke("candles", _candles(symbol="BTCUSDT", interval="1m", limit=limit))
    assert response["statusCode"] == 422
    assert "at most 1000 for spot" in _error(response)["message"]
    assert limit not in _error(response)["message"]


def test_candles_of_an_unknown_symbol_are_a_400(sim_env, invoke):
    """GIVEN a well-formed symbol Binance does not list WHEN invoked THEN 400 invalid_request, not 500."""
    response = invoke("candles", _candles(symbol="NOPEUSDT", interval="1m"))
    assert response["statusCode"] == 400
    assert _error(response)["category"] == "invalid_request"


# ------------------------------------------------------------------ kill switch


def _get(user: str) -> dict:
    return with_user(load_event("kill_switch_get"), user)


def _put(user: str, body) -> dict:
    return with_user(with_body(load_event("kill_switch_set"), body), user)


def test_kill_switch_is_per_user_and_shows_the_global_one(sim_env, invoke):
    """GIVEN A's switch on, then the global one WHEN each user reads THEN own switch plus global."""
    assert response_json(invoke("kill_switch_get", _get(USER_A))) == {
        "enabled": False, "global_enabled": False, "trading_blocked": False}
    response = invoke("kill_switch_set", _put(USER_A, {"enabled": True}))
    assert response["statusCode"] == 200
    assert response_json(response) == {"enabled": True, "global_enabled": False, "trading_blocked": True}
    assert response_json(invoke("kill_switch_get", _get(USER_B)))["enabled"] is False
    flags.set_global_kill_switch(True)
    assert response_json(invoke("kill_switch_get", _get(USER_B))) == {
        "enabled": False, "global_enabled": True, "trading_blocked": True}
    assert flags.get_kill_switches(USER_A) == (True, True)


def test_kill_switch_set_from_the_event_file(sim_env, invoke):
    """GIVEN events/kill_switch_set.json (base64 enabled=true) WHEN invoked THEN its user is switched on."""
    event = load_event("kill_switch_set")
    sub = event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
    assert response_json(invoke("kill_switch_set", event))["enabled"] is True
    assert flags.get_kill_switches(sub) == (True, False)


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"enabled": "yes"}, 422, "enabled"),
    ({"enabled": 1}, 422, "enabled"),
    ({}, 422, "enabled"),
    ({"enabled": True, "user_id": USER_B}, 422, "user_id"),
    ("enabled", 400, "body"),
])
def test_kill_switch_refuses_anything_but_a_boolean(sim_env, invoke, body, status, field):
    """GIVEN a non-boolean or extra field WHEN set THEN 400/422 naming the field, nothing stored."""
    response = invoke("kill_switch_set", _put(USER_A, body))
    assert response["statusCode"] == status
    assert _error(response)["field"] == field
    assert flags.get_kill_switches(USER_A) == (False, False)
    assert flags.get_kill_switches(USER_B) == (False, False)


def test_a_chart_past_the_trading_reserve_says_why_then_once_what_to_do(sim_env, invoke):
    """GIVEN other containers having used half of the IP's futures minute weight WHEN a chart asks for
    klines THEN 429 rate_limit whose message is the reason, then the advice to retry, each said once (the
    refusal keeps them apart: its reason has no advice a strategy or a job would have to cut out)."""
    sim_env.configure(weight_window_s=86_400)  # a minute turning mid-test clears nothing
    sim_env.use_weight(int(2400 * 0.5))
    query = {"symbol": "BTCUSDT", "interval": "1m", "market": "futures", "environment": "production"}
    invoke("candles", _candles(**query))  # its answer reports the IP's usage, if it was not known yet

    response = invoke("candles", _candles(**query))

    assert response["statusCode"] == 429, response["body"]
    assert (_error(response)["category"], _error(response)["message"]) == (
        "rate_limit", "Chart data is paused for the rest of this minute so that trading keeps its Binance "
        "request budget. Please retry shortly.")
