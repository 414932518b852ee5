"""The strategies API via its five handlers: ownership (two users a route), validation, live rules, runs."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from klineo.services import strategy_changes
from klineo.services.key_health import pause_connection_strategies
from klineo.settings import get_settings
from klineo.store import aws
from klineo.store import strategies as strategy_store
from klineo.store.connections import (
    delete_connection,
    disable_connection,
    get_connection,
    mark_deleting,
    update_settings,
)

from tests.helpers import load_event, response_json, with_body, with_user
from tests.integration.api.conftest import at_path, connection_event

ALICE = "alice-0000-4000-8000-00000000000a"
BOB = "bob-0000-4000-8000-00000000000b"


def create_body(connection_id: str, **changes: Any) -> dict[str, Any]:
    """A valid paper SMA strategy on BTCUSDT 1m, with ``changes`` applied (None removes a field)."""
    body = {"connection_id": connection_id, "symbol": "BTCUSDT", "interval": "1m", "type": "sma_crossover",
            "parameters": {"fast": 5, "slow": 20}, "size": "0.002", "mode": "paper"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


class Api:
    """Calls the strategy handlers with the events from events/ for a given user."""

    def __init__(self, invoke):
        self.invoke = invoke

    def create(self, user: str, body: Any, key: str | None = None) -> dict[str, Any]:
        """POST /strategies, with ``key`` as its Idempotency-Key header (None: no header)."""
        event = with_user(with_body(load_event("strategy_create"), body), user)
        event["headers"].pop("content-length", None)
        if key is not None:
            event["headers"]["idempotency-key"] = key
        return self.invoke("strategy_create", event)

    def list(self, user: str) -> dict[str, Any]:
        """GET /strategies."""
        return self.invoke("strategy_list", with_user(load_event("strategy_list"), user))

    def get(self, user: str, strategy_id: str) -> dict[str, Any]:
        """GET /strategies/{id}."""
        event = at_path(load_event("strategy_get"), f"/strategies/{strategy_id}", id=strategy_id)
        return self.invoke("strategy_get", with_user(event, user))

    def update(self, user: str, strategy_id: str, body: Any) -> dict[str, Any]:
        """PATCH /strategies/{id}."""
        event = at_path(load_event("strategy_update"), f"/strategies/{strategy_id}", id=strategy_id)
        return self.invoke("strategy_update", with_user(with_body(event, body), user))

    def delete(self, user: str, strategy_id: str) -> dict[str, Any]:
        """DELETE /strategies/{id}."""
        event = at_path(load_event("strategy_delete"), f"/strategies/{strategy_id}", id=strategy_id)
        return self.invoke("strategy_delete", with_user(event, user))


@pytest.fixture
def api(runner) -> Api:
    """The strategy routes on moto and the simulator."""
    return Api(runner.invoke)


@pytest.fixture
def alice_strategy(runner, api) -> str:
    """Alice's paper strategy (created through POST /strategies); returns its id."""
    response = api.create(ALICE, create_body(runner.connection(ALICE)))
    assert response["statusCode"] == 201, response["body"]
    return response_json(response)["id"]


def error_of(response: dict[str, Any]) -> dict[str, Any]:
    """The error object of an error answer."""
    return response_json(response)["error"]


def test_create_stores_the_strategy_with_defaults_filled_in(runner, api) -> None:
    """GIVEN Alice's connection WHEN she creates RSI with only a period THEN 201, defaults, on the index."""
    connection = runner.connection(ALICE)
    response = api.create(ALICE, create_body(connection, type="rsi_threshold", parameters={"period": 7}))
    assert response["statusCode"] == 201
    body = response_json(response)
    assert body["parameters"] == {"period": 7, "oversold": 30, "overbought": 70, "allow_short": True}
    assert (body["status"], body["mode"], body["environment"], body["position"]) == (
        "active", "paper", "production", "0")
    stored = strategy_store.get_strategy(ALICE, body["id"])
    assert stored is not None and stored.connection_id == connection
    assert [s.strategy_id for s in strategy_store.query_active("1m")] == [body["id"]]


def test_create_on_another_users_connection_is_not_found(runner, api) -> None:
    """GIVEN Bob's connection WHEN Alice creates a strategy on it THEN 404 on connection_id, none stored."""
    response = api.create(ALICE, create_body(runner.connection(BOB)))
    assert response["statusCode"] == 404
    assert error_of(response)["field"] == "connection_id"
    assert strategy_store.list_strategies(ALICE) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"interval": "2m"}, "interval"),
        ({"interval": "1w"}, "interval"),
        ({"type": "martingale"}, "type"),
        ({"parameters": {"fast": 0, "slow": 20}}, "parameters.fast"),
        ({"parameters": {"fast": 30, "slow": 20}}, "parameters.slow"),
        ({"parameters": {"fast": 5, "slow": 20, "leverage": 100}}, "parameters.leverage"),
        ({"size": "0"}, "size"),
        ({"size": "-1"}, "size"),
        ({"symbol": "btc usdt"}, "symbol"),
        ({"mode": "yolo"}, "mode"),
        ({"connection_id": "not-hex"}, "connection_id"),
        ({"owner": BOB}, "owner"),
    ],
)
def test_bad_input_is_422_naming_the_field(runner, api, changes, field) -> None:
    """GIVEN one bad field WHEN creating THEN 422 invalid_request naming it, nothing stored."""
    body = {**create_body(runner.connection(ALICE)), **changes}
    response = api.create(ALICE, body)
    assert response["statusCode"] == 422, response["body"]
    error = error_of(response)
    assert (error["category"], error["field"]) == ("invalid_request", field)
    assert strategy_store.list_strategies(ALICE) == []


def test_a_live_strategy_needs_futures_enabled(runner, api) -> None:
    """GIVEN a connection without futures WHEN creating a live strategy THEN 409 conflict; paper is fine."""
    connection = runner.connection(ALICE, futures_enabled=False)
    refused = api.create(ALICE, create_body(connection, mode="live"))
    assert refused["statusCode"] == 409 and error_of(refused)["category"] == "conflict"
    assert api.create(ALICE, create_body(connection, mode="paper"))["statusCode"] == 201


def test_switching_to_live_needs_futures_enabled(runner, api) -> None:
    """GIVEN a paper strategy, connection without futures WHEN switching to live THEN 409, still paper."""
    created = api.create(ALICE, create_body(runner.connection(ALICE, futures_enabled=False)))
    strategy_id = response_json(created)["id"]
    response = api.update(ALICE, strategy_id, {"mode": "live"})
    assert response["statusCode"] == 409
    assert strategy_store.get_strategy(ALICE, strategy_id).mode == "paper"


def test_list_shows_only_the_callers_strategies(runner, api, alice_strategy) -> None:
    """GIVEN Alice's strategy WHEN Alice and Bob list THEN Alice sees it, Bob sees nothing."""
    assert [s["id"] for s in response_json(api.list(ALICE))["strategies"]] == [alice_strategy]
    assert response_json(api.list(BOB))["strategies"] == []


def test_get_returns_the_strategy_and_its_latest_runs(runner, api, alice_strategy) -> None:
    """GIVEN a tick ran Alice's paper strategy WHEN she gets it THEN its latest run is there; Bob gets 404."""
    runner.active_before(ALICE, alice_strategy)  # created before the candle the tick plays
    runner.run_tick()
    response = api.get(ALICE, alice_strategy)
    assert response["statusCode"] == 200
    body = response_json(response)
    assert len(body["runs"]) == 1
    run = body["runs"][0]
    assert run["status"] in ("simulated", "no_change") and run["signal"] in ("long", "short", "hold")
    assert {"fast_sma", "slow_sma"} <= set(run["indicators"])
    if run["status"] == "simulated":
        assert run["order"]["simulated"] is True and body["position"] == run["target_position"]
    assert api.get(BOB, alice_strategy)["statusCode"] == 404


def test_get_and_list_show_the_counts_of_failures_before_a_pause(runner, api, alice_strategy) -> None:
    """GIVEN a strategy with 3 failed runs and 2 key failures, and one with none WHEN read THEN GET and the
    list show failed_runs and key_failures as integers, 0 when none (a frontend warns before the pause)."""
    failing = runner.strategy(ALICE, runner.connection(ALICE), failed_runs=3, key_failures=2)

    got = response_json(api.get(ALICE, failing))
    listed = {s["id"]: s for s in response_json(api.list(ALICE))["strategies"]}

    assert (got["failed_runs"], got["key_failures"]) == (3, 2)
    assert (listed[failing]["failed_runs"], listed[failing]["key_failures"]) == (3, 2)
    assert (listed[alice_strategy]["failed_runs"], listed[alice_strategy]["key_failures"]) == (0, 0)


def test_get_with_a_malformed_id_is_not_found(api) -> None:
    """GIVEN an id that cannot be a strategy id WHEN getting it THEN 404, not a storage error."""
    assert api.get(ALICE, "x" * 2000)["statusCode"] == 404


def test_pause_takes_the_strategy_off_the_runner_and_resume_puts_it_back(runner, api, alice_strategy) -> None:
    """GIVEN an active strategy WHEN paused then resumed THEN off the index with the reason, then back."""
    paused = api.update(ALICE, alice_strategy, {"status": "paused"})
    assert paused["statusCode"] == 200
    answer = response_json(paused)
    assert (answer["status"], answer["status_reason"]) == ("paused", "paused by user")
    assert list(strategy_store.query_active("1m")) == []
    assert runner.tick()["strategies"] == 0
    resumed = response_json(api.update(ALICE, alice_strategy, {"status": "active"}))
    assert (resumed["status"], resumed["status_reason"]) == ("active", None)
    runner.active_before(ALICE, alice_strategy)  # resumed before the candle the tick plays
    assert runner.tick()["strategies"] == 1


def test_update_changes_type_with_its_parameters_and_size(runner, api, alice_strategy) -> None:
    """GIVEN an SMA strategy WHEN switched to RSI with a period and a new size THEN stored with defaults."""
    response = api.update(ALICE, alice_strategy, {"type": "rsi_threshold", "parameters": {"period": 10},
                                                  "size": "0.005"})
    assert response["statusCode"] == 200
    stored = strategy_store.get_strategy(ALICE, alice_strategy)
    assert (stored.type, stored.parameters["period"], str(stored.size)) == ("rsi_threshold", 10, "0.005")


def test_its_own_type_sent_without_parameters_keeps_them(api, alice_strategy) -> None:
    """GIVEN an SMA strategy with fast 5, slow 20 WHEN patched with its own type and no parameters (a form
    that always sends the type) THEN its parameters are kept; WHEN with another type alone THEN that type's
    defaults, as a create with no parameters gets."""
    kept = api.update(ALICE, alice_strategy, {"type": "sma_crossover", "stop_loss_pct": "2"})
    assert kept["statusCode"] == 200, kept["body"]
    assert response_json(kept)["parameters"] == {"fast": 5, "slow": 20, "allow_short": True}
    assert strategy_store.get_strategy(ALICE, alice_strategy).parameters == {"fast": 5, "slow": 20,
                                                                             "allow_short": True}
    switched = response_json(api.update(ALICE, alice_strategy, {"type": "rsi_threshold"}))
    assert switched["parameters"] == {"period": 14, "oversold": 30, "overbought": 70, "allow_short": True}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"parameters": {"fast": 3}}, "type"),
        ({"type": "sma_crossover", "parameters": {"fast": 0}}, "parameters.fast"),
        ({"symbol": "ETHUSDT"}, "symbol"),
        ({"status": "deleted"}, "status"),
    ],
)
def test_bad_updates_are_422_naming_the_field(api, alice_strategy, body, field) -> None:
    """GIVEN parameters without type, a bad value, an immutable field WHEN patching THEN 422 naming the field
    to change (type, to be sent with the parameters)."""
    response = api.update(ALICE, alice_strategy, body)
    assert response["statusCode"] == 422, response["body"]
    assert error_of(response)["field"] == field
    assert strategy_store.get_strategy(ALICE, alice_strategy).parameters["fast"] == 5


def test_another_users_strategy_cannot_be_updated(api, alice_strategy) -> None:
    """GIVEN Alice's strategy WHEN Bob pauses it THEN 404 and it stays active."""
    assert api.update(BOB, alice_strategy, {"status": "paused"})["statusCode"] == 404
    assert strategy_store.get_strategy(ALICE, alice_strategy).status == "active"


def test_delete_removes_only_the_callers_strategy(api, alice_strategy) -> None:
    """GIVEN Alice's strategy WHEN Bob deletes it THEN 404; WHEN Alice does THEN 204 and it is gone."""
    assert api.delete(BOB, alice_strategy)["statusCode"] == 404
    assert strategy_store.get_strategy(ALICE, alice_strategy) is not None
    assert api.delete(ALICE, alice_strategy)["statusCode"] == 204
    assert strategy_store.get_strategy(ALICE, alice_strategy) is None
    assert api.delete(ALICE, alice_strategy)["statusCode"] == 404


def test_no_jwt_subject_is_401(api) -> None:
    """GIVEN an event without the JWT sub claim WHEN listing THEN 401."""
    event = load_event("strategy_list")
    del event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
    assert api.invoke("strategy_list", event)["statusCode"] == 401


def test_create_with_a_symbol_binance_does_not_trade_is_refused(runner, api) -> None:
    """GIVEN POST /strategies with symbol ZZZZUSDT (well-formed, unknown) WHEN sent THEN 400 naming symbol."""
    response = api.create(ALICE, create_body(runner.connection(ALICE), symbol="ZZZZUSDT"))
    assert response["statusCode"] == 400
    assert error_of(response)["field"] == "symbol"
    assert response_json(api.list(ALICE))["strategies"] == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"direction": "sideways"}, "direction"),
        ({"leverage": 0}, "leverage"),
        ({"leverage": 126}, "leverage"),
        ({"leverage": "5"}, "leverage"),
        ({"margin_type": "isolated"}, "margin_type"),
        ({"size": None, "quote_size_usdt": "0"}, "quote_size_usdt"),
        ({"size": None, "size_pct": "100.5"}, "size_pct"),
        ({"stop_loss_pct": "100"}, "stop_loss_pct"),
        ({"take_profit_pct": "-1"}, "take_profit_pct"),
        ({"trailing_stop_pct": "0.05"}, "trailing_stop_pct"),
        ({"trailing_stop_pct": "21"}, "trailing_stop_pct"),
        ({"paper_balance_usdt": "0"}, "paper_balance_usdt"),
    ],
)
def test_bad_trading_settings_are_422_naming_the_field(runner, api, changes, field) -> None:
    """GIVEN one bad trading setting WHEN creating THEN 422 naming it, nothing stored."""
    body = {k: v for k, v in {**create_body(runner.connection(ALICE)), **changes}.items() if v is not None}
    response = api.create(ALICE, body)
    assert response["statusCode"] == 422, response["body"]
    assert error_of(response)["field"] == field
    assert strategy_store.list_strategies(ALICE) == []


@pytest.mark.parametrize("sizing", [{}, {"quote_size_usdt": "100"}])
def test_exactly_one_sizing_is_required(runner, api, sizing) -> None:
    """GIVEN no sizing, or size and quote_size_usdt together WHEN creating THEN 422: send exactly one."""
    body = create_body(runner.connection(ALICE), size=None if not sizing else "0.002")
    response = api.create(ALICE, {**body, **sizing})
    assert response["statusCode"] == 422, response["body"]
    assert "exactly one of size, quote_size_usdt or size_pct" in error_of(response)["message"]
    assert strategy_store.list_strategies(ALICE) == []


def test_trading_settings_are_stored_shown_and_patched(runner, api) -> None:
    """GIVEN a strategy with quote sizing, SL/TP and 3x isolated WHEN patched to size_pct and SL null THEN
    the new sizing replaces the old, the stop-loss is gone, the rest stays; defaults are shown."""
    created = api.create(ALICE, create_body(
        runner.connection(ALICE), size=None, quote_size_usdt="250", stop_loss_pct="1.5", take_profit_pct="3",
        leverage=3, margin_type="ISOLATED", direction="long"))
    assert created["statusCode"] == 201, created["body"]
    body = response_json(created)
    assert (body["quote_size_usdt"], body["size"], body["stop_loss_pct"], body["leverage"]) == (
        "250", None, "1.5", 3)
    shown = (body["direction"], body["margin_type"], body["paper_balance_usdt"])
    assert shown == ("long", "ISOLATED", "10000")

    patched = response_json(api.update(ALICE, body["id"], {"size_pct": "20", "stop_loss_pct": None}))

    assert (patched["size_pct"], patched["quote_size_usdt"], patched["size"]) == ("20", None, None)
    assert (patched["stop_loss_pct"], patched["take_profit_pct"], patched["leverage"]) == (None, "3", 3)


@pytest.mark.parametrize("field", ["type", "parameters", "size", "quote_size_usdt", "size_pct", "mode",
                                   "status", "direction", "paper_balance_usdt"])
def test_null_on_a_field_that_cannot_be_cleared_is_400_naming_it(api, alice_strategy, field) -> None:
    """GIVEN a strategy WHEN patched with null on a field it always has THEN 400 naming the field, saying it
    cannot be cleared, and nothing changed: a client never believes it cleared what stays set."""
    before = strategy_store.get_strategy(ALICE, alice_strategy)
    response = api.update(ALICE, alice_strategy, {field: None, "stop_loss_pct": "2"})
    assert response["statusCode"] == 400, response["body"]
    error = error_of(response)
    assert (error["category"], error["field"]) == ("invalid_request", field)
    assert f"{field} cannot be cleared" in error["message"]
    assert strategy_store.get_strategy(ALICE, alice_strategy) == before


# ---------------------------------------------------------------- what live needs of the connection


def _hedge_connection(runner, user: str) -> str:
    """A futures-enabled connection whose account is in hedge mode (as futures enable records it)."""
    connection = runner.connection(user)
    update_settings(user, connection, {"position_mode": "hedge"})
    return connection


@pytest.mark.parametrize("direction", ["both", "long", "short"])
def test_a_live_strategy_on_a_hedge_mode_connection_is_accepted(runner, api, direction) -> None:
    """GIVEN a hedge-mode connection WHEN creating a live strategy, of any direction THEN 201, active: its
    orders carry positionSide and a flip is two orders (klineo.runner.execution)."""
    connection = _hedge_connection(runner, ALICE)

    created = api.create(ALICE, create_body(connection, mode="live", direction=direction))

    assert created["statusCode"] == 201, created["body"]
    stored = strategy_store.get_strategy(ALICE, response_json(created)["id"])
    assert (stored.mode, stored.status, stored.settings.direction) == ("live", "active", direction)


def test_switching_to_live_on_a_hedge_mode_connection_is_accepted(runner, api) -> None:
    """GIVEN a paper strategy on a hedge-mode connection WHEN switched to live THEN 200, live and active."""
    strategy_id = response_json(api.create(ALICE, create_body(_hedge_connection(runner, ALICE))))["id"]

    response = api.update(ALICE, strategy_id, {"mode": "live"})

    assert response["statusCode"] == 200, response["body"]
    assert strategy_store.get_strategy(ALICE, strategy_id).mode == "live"


def test_a_live_strategy_leverage_above_max_leverage_is_refused_at_create(runner, api) -> None:
    """GIVEN a connection with max_leverage 10 WHEN creating a live strategy at 20x THEN 422 invalid_request
    naming leverage (the rule of futures enable), nothing stored; a paper one at 20x is fine."""
    connection = runner.connection(ALICE)

    refused = api.create(ALICE, create_body(connection, mode="live", leverage=20))

    assert refused["statusCode"] == 422, refused["body"]
    error = error_of(refused)
    assert (error["category"], error["field"]) == ("invalid_request", "leverage")
    assert "max_leverage" in error["message"] and "20" not in error["message"]
    assert strategy_store.list_strategies(ALICE) == []
    assert api.create(ALICE, create_body(connection, mode="paper", leverage=20))["statusCode"] == 201


def test_switching_to_live_with_leverage_above_max_leverage_is_refused(runner, api) -> None:
    """GIVEN a paper strategy at 20x, max_leverage 10 WHEN switched to live THEN 422 naming leverage, still
    paper."""
    created = api.create(ALICE, create_body(runner.connection(ALICE), leverage=20))
    strategy_id = response_json(created)["id"]

    response = api.update(ALICE, strategy_id, {"mode": "live"})

    assert response["statusCode"] == 422, response["body"]
    assert error_of(response)["field"] == "leverage"
    assert strategy_store.get_strategy(ALICE, strategy_id).mode == "paper"


def test_raising_a_live_strategys_leverage_above_max_leverage_is_refused(runner, api) -> None:
    """GIVEN a live strategy at 5x, max_leverage 10 WHEN patched to 20x THEN 422 naming leverage, 5x kept;
    10x is accepted."""
    created = api.create(ALICE, create_body(runner.connection(ALICE), mode="live", leverage=5))
    assert created["statusCode"] == 201, created["body"]
    strategy_id = response_json(created)["id"]

    refused = api.update(ALICE, strategy_id, {"leverage": 20})

    assert refused["statusCode"] == 422 and error_of(refused)["field"] == "leverage", refused["body"]
    assert strategy_store.get_strategy(ALICE, strategy_id).settings.leverage == 5
    assert response_json(api.update(ALICE, strategy_id, {"leverage": 10}))["leverage"] == 10


# ---------------------------------------------------------------- a strategy is active only where it can run


def _patch_connection(runner, connection_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """PATCH /exchange-connections/{id} as Alice."""
    return runner.invoke("connection_update", with_body(connection_event("connection_update", connection_id,
                                                                         ALICE), body))


def _paused(api, connection_id: str, **changes: Any) -> str:
    """A strategy of Alice's created paused on ``connection_id``; returns its id."""
    created = api.create(ALICE, create_body(connection_id, status="paused", **changes))
    assert created["statusCode"] == 201, created["body"]
    return response_json(created)["id"]


def _mode_switches(runner) -> list[Any]:
    """The position mode changes sent to the simulator."""
    return [r for r in runner.sim.journal if r.path == "/fapi/v1/positionSide/dual" and r.method == "POST"]


@pytest.mark.parametrize("mode", ["paper", "live"])
def test_resuming_a_strategy_on_a_disabled_connection_is_refused(runner, api, mode) -> None:
    """GIVEN a disabled connection WHEN its paused strategy is resumed THEN 409 naming connection_id."""
    connection = runner.connection(ALICE)
    strategy_id = _paused(api, connection, mode=mode)
    disable_connection(ALICE, connection, "connection_disabled:permission")

    refused = api.update(ALICE, strategy_id, {"status": "active"})

    assert refused["statusCode"] == 409, refused["body"]
    error = error_of(refused)
    assert (error["category"], error["field"]) == ("conflict", "connection_id")
    assert "disabled" in error["message"] and "/enable" in error["message"]
    assert strategy_store.get_strategy(ALICE, strategy_id).status == "paused"
    assert list(strategy_store.query_active("1m")) == []


def test_creating_an_active_strategy_on_a_disabled_connection_is_refused(runner, api) -> None:
    """GIVEN a disabled connection WHEN creating an active strategy THEN 409, none stored; paused is fine."""
    connection = runner.connection(ALICE)
    disable_connection(ALICE, connection, "connection_disabled:permission")

    refused = api.create(ALICE, create_body(connection))

    assert refused["statusCode"] == 409, refused["body"]
    assert (error_of(refused)["category"], error_of(refused)["field"]) == ("conflict", "connection_id")
    assert "disabled" in error_of(refused)["message"]
    assert strategy_store.list_strategies(ALICE) == []
    assert api.create(ALICE, create_body(connection, status="paused"))["statusCode"] == 201


@pytest.mark.parametrize(
    ("end", "said"),
    [(mark_deleting, "being deleted"), (delete_connection, "no longer")],
    ids=["deleting", "deleted"],
)
def test_resuming_a_strategy_whose_connection_is_going_or_gone_is_refused(runner, api, end, said) -> None:
    """GIVEN a connection being deleted, or deleted WHEN its paused paper strategy is resumed THEN 409."""
    connection = runner.connection(ALICE)
    strategy_id = _paused(api, connection)
    end(ALICE, connection)

    refused = api.update(ALICE, strategy_id, {"status": "active"})

    assert refused["statusCode"] == 409, refused["body"]
    assert (error_of(refused)["category"], error_of(refused)["field"]) == ("conflict", "connection_id")
    assert said in error_of(refused)["message"]
    assert strategy_store.get_strategy(ALICE, strategy_id).status == "paused"


@pytest.mark.parametrize("status", ["active", "paused"])
def test_creating_a_strategy_on_a_connection_being_deleted_is_refused(runner, api, status) -> None:
    """GIVEN a connection being deleted WHEN creating a strategy, even paused, THEN 409, none stored."""
    connection = runner.connection(ALICE)
    mark_deleting(ALICE, connection)

    refused = api.create(ALICE, create_body(connection, status=status))

    assert refused["statusCode"] == 409, refused["body"]
    assert (error_of(refused)["category"], error_of(refused)["field"]) == ("conflict", "connection_id")
    assert strategy_store.list_strategies(ALICE) == []


def test_lowering_max_leverage_below_live_active_strategies_is_refused(runner, api) -> None:
    """GIVEN live active 5x/8x WHEN max_leverage goes to 4 THEN 409 naming them; paused, they do not block."""
    connection = runner.connection(ALICE)
    ids = [response_json(api.create(ALICE, create_body(connection, mode="live", leverage=leverage)))["id"]
           for leverage in (5, 8, 2)]

    refused = _patch_connection(runner, connection, {"max_leverage": 4, "label": "lower"})

    assert refused["statusCode"] == 409, refused["body"]
    error = error_of(refused)
    assert (error["category"], error["field"]) == ("conflict", "max_leverage")
    assert ids[0] in error["message"] and ids[1] in error["message"] and ids[2] not in error["message"]
    assert "2 active" in error["message"] and "pause them" in error["message"]
    stored = get_connection(ALICE, connection)
    assert (stored.max_leverage, stored.label) == (10, "runner test")
    for strategy_id in ids[:2]:
        assert api.update(ALICE, strategy_id, {"status": "paused"})["statusCode"] == 200
    accepted = _patch_connection(runner, connection, {"max_leverage": 4})
    assert accepted["statusCode"] == 200 and response_json(accepted)["max_leverage"] == 4, accepted["body"]
    resumed = api.update(ALICE, ids[0], {"status": "active"})
    assert resumed["statusCode"] == 422 and error_of(resumed)["field"] == "leverage"
    assert strategy_store.get_strategy(ALICE, ids[0]).status == "paused"


def test_switching_to_hedge_under_a_live_active_strategy_is_accepted(runner, api) -> None:
    """GIVEN live active strategies (both directions, long-only) WHEN the connection switches to hedge THEN
    200 and the switch is sent once: live strategies trade in either mode; they stay active."""
    connection = runner.connection(ALICE)
    ids = [response_json(api.create(ALICE, create_body(connection, mode="live", direction=direction)))["id"]
           for direction in ("both", "long")]
    runner.sim.clear_journal()

    accepted = _patch_connection(runner, connection, {"position_mode": "hedge"})

    assert accepted["statusCode"] == 200, accepted["body"]
    assert response_json(accepted)["position_mode"] == "hedge" and len(_mode_switches(runner)) == 1
    assert [strategy_store.get_strategy(ALICE, i).status for i in ids] == ["active", "active"]


def _disable_futures(runner, connection_id: str) -> dict[str, Any]:
    """POST /exchange-connections/{id}/futures/disable as Alice."""
    return runner.invoke("futures_disable", connection_event("futures_disable", connection_id, ALICE,
                                                             "/futures/disable"))


def test_disabling_futures_under_a_live_active_strategy_is_refused(runner, api) -> None:
    """GIVEN a live active strategy WHEN futures are disabled THEN 409 naming futures_enabled and it, futures
    stay on; paper and paused strategies do not block, and once it is paused the disable goes through."""
    connection = runner.connection(ALICE)
    live_id = response_json(api.create(ALICE, create_body(connection, mode="live")))["id"]
    paper_id = response_json(api.create(ALICE, create_body(connection)))["id"]
    paused_id = _paused(api, connection, mode="live")

    refused = _disable_futures(runner, connection)

    assert refused["statusCode"] == 409, refused["body"]
    error = error_of(refused)
    assert (error["category"], error["field"]) == ("conflict", "futures_enabled")
    assert live_id in error["message"] and "1 active" in error["message"] and "pause them" in error["message"]
    assert paper_id not in error["message"] and paused_id not in error["message"]
    assert get_connection(ALICE, connection).futures_enabled is True
    assert api.update(ALICE, live_id, {"status": "paused"})["statusCode"] == 200
    accepted = _disable_futures(runner, connection)
    assert accepted["statusCode"] == 200, accepted["body"]
    assert response_json(accepted)["futures_enabled"] is False
    assert strategy_store.get_strategy(ALICE, paper_id).status == "active"


def test_a_connection_being_deleted_says_so_in_its_answer(runner) -> None:
    """GIVEN a delete that did not finish WHEN the connection is listed THEN deleting_since, not the token."""
    connection = runner.connection(ALICE)
    mark_deleting(ALICE, connection)
    stored = get_connection(ALICE, connection)

    listed = response_json(runner.invoke("connection_list", with_user(load_event("connection_list"), ALICE)))

    shown = next(c for c in listed["connections"] if c["id"] == connection)
    assert shown["deleting_since"] == stored.deleting_since is not None
    assert "wind_down_id" not in shown and "wind_down_id" not in json.dumps(listed)


def test_enabling_a_connection_leaves_paused_a_strategy_that_could_not_run(runner, api) -> None:
    """GIVEN max_leverage lowered while disabled WHEN enabled THEN a live strategy above it stays paused."""
    connection = runner.connection(ALICE)
    high, low = (response_json(api.create(ALICE, create_body(connection, mode="live", leverage=lev)))["id"]
                 for lev in (5, 2))
    pause_connection_strategies(ALICE, connection, "connection_disabled:permission")
    disable_connection(ALICE, connection, "connection_disabled:permission")
    assert _patch_connection(runner, connection, {"max_leverage": 3})["statusCode"] == 200

    enabled = runner.invoke("connection_enable", connection_event("connection_enable", connection, ALICE,
                                                                  "/enable"))

    assert enabled["statusCode"] == 200, enabled["body"]
    assert response_json(enabled)["resumed_strategies"] == [low]
    stored = strategy_store.get_strategy(ALICE, high)
    assert (stored.status, stored.status_reason) == ("paused", "connection_disabled:permission")
    assert strategy_store.get_strategy(ALICE, low).status == "active"


def test_a_short_only_strategy_whose_type_never_shorts_is_422_naming_the_field(runner, api) -> None:
    """GIVEN direction short and allow_short false (every signal flat: it could never trade) WHEN creating,
    or patching one of the two onto a strategy holding the other THEN 422 naming the field, nothing
    changed."""
    no_shorts = {"fast": 5, "slow": 20, "allow_short": False}
    connection = runner.connection(ALICE)
    created = api.create(ALICE, create_body(connection, parameters=no_shorts, direction="short"))
    assert created["statusCode"] == 422, created["body"]
    assert error_of(created)["field"] == "direction" and strategy_store.list_strategies(ALICE) == []
    strategy_id = response_json(api.create(ALICE, create_body(connection, parameters=no_shorts)))["id"]
    patched = api.update(ALICE, strategy_id, {"direction": "short"})
    assert patched["statusCode"] == 422, patched["body"]
    assert error_of(patched)["field"] == "direction"
    short_only = response_json(api.create(ALICE, create_body(connection, direction="short")))["id"]
    patched = api.update(ALICE, short_only, {"type": "sma_crossover", "parameters": no_shorts})
    assert patched["statusCode"] == 422, patched["body"]
    assert error_of(patched)["field"] == "parameters.allow_short"
    stored = {s.strategy_id: s for s in strategy_store.list_strategies(ALICE)}
    assert stored[strategy_id].settings.direction == "both"
    assert stored[short_only].parameters["allow_short"] is True


def test_a_create_refused_for_leverage_and_size_names_both_in_one_answer(runner, api) -> None:
    """GIVEN max_leverage 10 WHEN created live at 20x with a size under the minimum THEN one 422, both."""
    body = create_body(runner.connection(ALICE), mode="live", leverage=20, size="0.0001")
    refused = api.create(ALICE, body)

    assert refused["statusCode"] == 422, refused["body"]
    error = error_of(refused)
    assert [e["field"] for e in error["errors"]] == ["leverage", "size"]
    assert error["field"] == "leverage"
    assert "max_leverage" in error["message"] and "minimum quantity" in error["message"]
    assert strategy_store.list_strategies(ALICE) == []


def test_a_patch_refused_for_leverage_and_size_names_both_in_one_answer(runner, api) -> None:
    """GIVEN max_leverage 10 WHEN a paper strategy is patched live, 20x, size too small THEN one 422, both."""
    strategy_id = response_json(api.create(ALICE, create_body(runner.connection(ALICE))))["id"]

    refused = api.update(ALICE, strategy_id, {"mode": "live", "leverage": 20, "size": "0.0001"})

    assert refused["statusCode"] == 422, refused["body"]
    assert [e["field"] for e in error_of(refused)["errors"]] == ["leverage", "size"]
    assert strategy_store.get_strategy(ALICE, strategy_id).mode == "paper"


# ---------------------------------------------------------------------- Idempotency-Key on POST /strategies
def strategy_ids(api: Api, user: str) -> list[str]:
    """The ids of the user's strategies, as GET /strategies lists them."""
    return [s["id"] for s in response_json(api.list(user))["strategies"]]


def test_a_create_whose_answer_was_lost_sent_again_with_its_key_answers_the_first_strategy(
        runner, api, monkeypatch) -> None:
    """GIVEN a create whose strategy was written but whose answer was lost WHEN it is sent again with the same
    Idempotency-Key THEN 200 with the first strategy's id, and the user has ONE strategy, not two."""
    from tests.integration.runner.conftest import crash_first_call

    body = create_body(runner.connection(ALICE))
    crash_first_call(monkeypatch, strategy_changes, "new_strategy_response")
    lost = api.create(ALICE, body, key="create-1")
    assert lost["statusCode"] == 500
    [created] = strategy_ids(api, ALICE)
    again = api.create(ALICE, body, key="create-1")
    assert again["statusCode"] == 200, again["body"]
    assert response_json(again)["id"] == created
    assert response_json(again)["symbol"] == "BTCUSDT"
    assert strategy_ids(api, ALICE) == [created]


def test_the_same_key_answered_twice_creates_one_strategy(runner, api) -> None:
    """GIVEN a create answered 201 WHEN sent again with its key THEN 200, the same strategy, still one."""
    body = create_body(runner.connection(ALICE))
    first = api.create(ALICE, body, key="create-2")
    assert first["statusCode"] == 201, first["body"]
    again = api.create(ALICE, body, key="create-2")
    assert again["statusCode"] == 200, again["body"]
    assert response_json(again) == response_json(first)
    assert strategy_ids(api, ALICE) == [response_json(first)["id"]]


def test_the_same_key_with_another_body_is_409_naming_the_key(runner, api) -> None:
    """GIVEN a strategy created with a key WHEN another body is sent with that key THEN 409 naming
    Idempotency-Key, not retryable, and no second strategy."""
    connection = runner.connection(ALICE)
    assert api.create(ALICE, create_body(connection), key="create-3")["statusCode"] == 201
    other = api.create(ALICE, create_body(connection, symbol="ETHUSDT"), key="create-3")
    assert other["statusCode"] == 409, other["body"]
    assert error_of(other)["field"] == "Idempotency-Key"
    assert error_of(other)["retryable"] is False
    assert len(strategy_ids(api, ALICE)) == 1


def test_a_create_racing_one_with_its_key_answers_the_one_that_committed(runner, api, monkeypatch) -> None:
    """GIVEN two creates with one key, the second having read the key free before the first committed WHEN
    the second writes THEN its transaction finds the key taken: 200 with the first's strategy, still one."""
    body = create_body(runner.connection(ALICE))
    first = response_json(api.create(ALICE, body, key="race"))
    monkeypatch.setattr(strategy_store, "get_create_key", lambda *_: None)
    second = api.create(ALICE, body, key="race")
    assert second["statusCode"] == 200, second["body"]
    assert response_json(second)["id"] == first["id"]
    assert strategy_ids(api, ALICE) == [first["id"]]


def test_an_expired_key_creates_again(runner, api) -> None:
    """GIVEN a key whose record's ttl has passed (DynamoDB not having swept it yet) WHEN a create is sent with
    it THEN 201, a new strategy: the key expired (its record holds a digest, not the key)."""
    body = create_body(runner.connection(ALICE))
    first = response_json(api.create(ALICE, body, key="old"))["id"]
    [item] = [i for i in aws.dynamodb().scan(TableName=get_settings().data_table)["Items"]
              if i["sk"]["S"].startswith(strategy_store.CREATE_KEY_SK_PREFIX)]
    assert "old" not in json.dumps(item)  # the key itself is never stored, only its digest
    item["ttl"] = {"N": str(int(time.time()) - 1)}
    aws.dynamodb().put_item(TableName=get_settings().data_table, Item=item)
    again = api.create(ALICE, body, key="old")
    assert again["statusCode"] == 201, again["body"]
    assert sorted(strategy_ids(api, ALICE)) == sorted([first, response_json(again)["id"]])


def test_without_a_key_each_create_makes_a_strategy(runner, api) -> None:
    """GIVEN no Idempotency-Key WHEN the same body is sent twice THEN two strategies, as before the header."""
    body = create_body(runner.connection(ALICE))
    assert [api.create(ALICE, body)["statusCode"] for _ in range(2)] == [201, 201]
    assert len(strategy_ids(api, ALICE)) == 2


def test_keys_are_scoped_to_the_user(runner, api) -> None:
    """GIVEN Alice's create with a key WHEN Bob uses that key on his connection THEN his is created too."""
    assert api.create(ALICE, create_body(runner.connection(ALICE)), key="shared")["statusCode"] == 201
    assert api.create(BOB, create_body(runner.connection(BOB)), key="shared")["statusCode"] == 201
    assert len(strategy_ids(api, ALICE)) == len(strategy_ids(api, BOB)) == 1


def test_a_refused_create_leaves_its_key_free(runner, api) -> None:
    """GIVEN a create refused for its input (nothing stored) WHEN the corrected body is sent with the same key
    THEN 201: the refused body never took the key."""
    connection = runner.connection(ALICE)
    refused = api.create(ALICE, create_body(connection, symbol="ZZZZUSDT"), key="create-4")
    assert refused["statusCode"] == 400, refused["body"]
    assert api.create(ALICE, create_body(connection), key="create-4")["statusCode"] == 201


def test_the_key_of_a_deleted_strategy_is_409_naming_the_key(runner, api) -> None:
    """GIVEN a strategy created with a key and deleted since WHEN its create is sent again with that key THEN
    409 naming Idempotency-Key (the first creation's strategy is gone), nothing re-created."""
    body = create_body(runner.connection(ALICE))
    created = response_json(api.create(ALICE, body, key="create-5"))["id"]
    assert api.delete(ALICE, created)["statusCode"] == 204
    again = api.create(ALICE, body, key="create-5")
    assert again["statusCode"] == 409, again["body"]
    assert error_of(again)["field"] == "Idempotency-Key"
    assert strategy_ids(api, ALICE) == []


@pytest.mark.parametrize("key", ["", "k" * 256, "has space", "caf\u00e9"])
def test_a_malformed_key_is_400_naming_it(runner, api, key) -> None:
    """GIVEN an Idempotency-Key not of 1 to 255 visible ASCII characters THEN 400 naming it, nothing made."""
    response = api.create(ALICE, create_body(runner.connection(ALICE)), key=key)
    assert response["statusCode"] == 400, response["body"]
    assert error_of(response)["field"] == "Idempotency-Key"
    assert strategy_ids(api, ALICE) == []
