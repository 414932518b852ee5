"""The account's position mode as the connection's routes read it on Binance, against moto and the simulator:
what a route reads (or switches) is what the connection stores, so the next orders carry the positionSide
the account takes."""

from __future__ import annotations

import time
from typing import Any

from klineo.store.connections import disable_connection, get_connection

from tests.integration.api.conftest import USER_A, connection_event
from tests.integration.futures.helpers import body_of, new_key, order_body, order_event


def _switch_outside_klineo(sim: Any, account_id: str = "futures-full") -> None:
    """GIVEN the account's position mode switched on Binance by its owner (not through KLINEO)."""
    state = sim.state.futures.state_for(sim.account(account_id), time.time() * 1000)
    state.set_dual_side(not state.dual_side)


def test_an_enable_stores_the_position_mode_its_futures_test_read(sim_env, invoke, futures_connection):
    """POST .../enable of a disabled futures connection whose account was switched to hedge mode meanwhile
    stores hedge, the mode its futures test read, and a LONG order then passes (before: one_way stayed
    stored, so the order routes refused LONG and sent BOTH, which Binance refuses in hedge mode)."""
    assert get_connection(USER_A, futures_connection.id).position_mode == "one_way"
    disable_connection(USER_A, futures_connection.id, "connection_disabled:signature")
    _switch_outside_klineo(sim_env)

    enabled = invoke(
        "connection_enable", connection_event("connection_enable", futures_connection.id, USER_A, "/enable")
    )

    assert enabled["statusCode"] == 200, enabled["body"]
    assert body_of(enabled)["position_mode"] == "hedge"
    assert get_connection(USER_A, futures_connection.id).position_mode == "hedge"
    long = order_body(futures_connection.id, positionSide="LONG")
    placed = invoke("futures_order", order_event(long, key=new_key()))
    assert placed["statusCode"] == 200, placed["body"]


def test_a_futures_test_stores_the_position_mode_it_read(sim_env, invoke, futures_connection):
    """POST .../futures/test of a connection whose account was switched to hedge mode outside KLINEO stores
    hedge, the mode its accountConfig read said (before: only futures_last_test was recorded, the stale
    one_way kept, so the next orders carried positionSide BOTH, which Binance refuses in hedge mode)."""
    _switch_outside_klineo(sim_env)

    tested = invoke("futures_test", connection_event("futures_test", futures_connection.id, USER_A,
                                                     "/futures/test"))

    assert tested["statusCode"] == 200 and body_of(tested)["ok"] is True, tested["body"]
    assert get_connection(USER_A, futures_connection.id).position_mode == "hedge"
