"""Closing a position Binance holds in another position mode than the connection's (switched outside
KLINEO), against moto and the simulator over loopback: what the trader is told, and that it works."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.helpers import with_body
from tests.integration.api.conftest import USER_A, connection_event
from tests.integration.futures.helpers import ORDER_PATH, body_of, new_key
from tests.integration.futures.test_positions import _close_event, _sim_rows

# (demo account, the mode it is switched to outside KLINEO once futures are on, a long opened by hand)
SWITCHED = [
    ("futures-full", "hedge", {"side": "BUY", "quantity": "0.002", "positionSide": "LONG"}),
    ("futures-hedge", "one_way", {"side": "BUY", "quantity": "0.002"}),
]


def _switched_account_with_a_long(sim: Any, invoke: Any, create_connection: Any, account_id: str,
                                  trade: dict[str, str]) -> Any:
    """A futures-enabled connection whose account is then switched to the other mode on Binance, where a
    long is opened by hand; the connection."""
    connection = create_connection(USER_A, account_id)
    event = connection_event("futures_enable", connection.id, USER_A, "/futures/enable")
    assert invoke("futures_enable", event)["statusCode"] == 200
    state = sim.state.futures.state_for(sim.account(account_id), time.time() * 1000)
    state.set_dual_side(not state.dual_side)
    sim.inject_trade(account_id, "manual", "BTCUSDT", **trade)
    return connection


@pytest.mark.parametrize(("account_id", "account_mode", "trade"), SWITCHED)
def test_a_close_on_an_account_switched_outside_klineo_says_its_real_mode_and_how_to_close(
        sim_env, invoke, create_connection, account_id, account_mode, trade):
    """GIVEN an account switched to the other position mode outside KLINEO, holding a long WHEN closed THEN
    409 naming position_mode with the account's real mode and the PATCH that lines them up, nothing sent;
    after that PATCH the same close closes it."""
    connection = _switched_account_with_a_long(sim_env, invoke, create_connection, account_id, trade)
    sim_env.clear_journal()

    refused = invoke("futures_position_close", _close_event(connection.id, new_key()))

    assert refused["statusCode"] == 409, refused["body"]
    error = body_of(refused)["error"]
    assert error["field"] == "position_mode", error
    assert f"position_mode {account_mode}" in error["message"], error
    assert [r for r in sim_env.journal if r.path == ORDER_PATH] == []
    patch = with_body(connection_event("connection_update", connection.id, USER_A),
                      {"position_mode": account_mode})
    assert invoke("connection_update", patch)["statusCode"] == 200
    closed = invoke("futures_position_close", _close_event(connection.id, new_key()))
    assert closed["statusCode"] == 200, closed["body"]
    assert _sim_rows(sim_env, account_id) == []
