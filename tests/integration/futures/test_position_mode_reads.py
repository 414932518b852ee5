"""The account's position mode as the connection's routes read it on Binance, against moto and the simulator:
what a route reads (or switches) is what the connection stores, so the next orders carry the positionSide
the account takes."""

from __future__ import annotations

import time
from typing import Any

from klineo.store.connections import disable_connection, get_connection

from tests.helpers import with_body
from tests.integration.api.conftest import USER_A, connection_event
from tests.integration.futures.helpers import (
    body_of,
    forget_uid,
    new_key,
    order_body,
    order_event,
    second_key,
)
from tests.integration.futures.test_key_lifecycle import _enabling_futures, _replacing_the_key_before


def _hedge(sim: Any, account_id: str = "futures-full") -> bool:
    """The account's position mode on Binance: True in hedge mode."""
    return sim.state.futures.state_for(sim.account(account_id), time.time() * 1000).dual_side


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


def _enable_hedge_racing_a_new_key(sim: Any, invoke: Any, connection_id: str) -> dict[str, Any]:
    """Futures switched off, then POST .../futures/enable asking for hedge, the key replaced by another key of
    the same account just before the enable's write: the error of its answer, a retryable 409 naming
    connection_id."""
    event = connection_event("futures_disable", connection_id, USER_A, "/futures/disable")
    assert invoke("futures_disable", event)["statusCode"] == 200
    asking_hedge = with_body(connection_event("futures_enable", connection_id, USER_A, "/futures/enable"),
                             {"position_mode": "hedge"})
    asking_hedge["headers"]["content-type"] = "application/json"
    answer = _replacing_the_key_before(invoke, connection_id, second_key(sim), _enabling_futures,
                                       lambda: invoke("futures_enable", asking_hedge))
    assert answer["statusCode"] == 409, answer["body"]
    error = body_of(answer)["error"]
    assert (error["field"], error["retryable"]) == ("connection_id", True), error
    return error


def test_a_futures_enable_whose_key_was_replaced_after_it_switched_the_mode_stores_the_switched_mode(
        sim_env, invoke, futures_connection):
    """POST .../futures/enable asking for hedge on a connection stored one_way, its key replaced (by another
    key of the same account) after the old key switched the account to hedge on Binance and before the
    enable's write: the retryable 409 saying to enable futures again says the account is in hedge mode now,
    the connection stores hedge (what Binance did), and the enable sent again without a body keeps the
    account in hedge (before: one_way stayed stored, and that retry switched the account back)."""
    enable = connection_event("futures_enable", futures_connection.id, USER_A, "/futures/enable")

    error = _enable_hedge_racing_a_new_key(sim_env, invoke, futures_connection.id)

    message = error["message"]
    assert "enable futures again" in message and "hedge mode on Binance now" in message, error
    assert _hedge(sim_env)
    assert get_connection(USER_A, futures_connection.id).position_mode == "hedge"
    again = invoke("futures_enable", enable)
    assert again["statusCode"] == 200 and body_of(again)["position_mode"] == "hedge", again["body"]
    assert _hedge(sim_env)


def test_a_futures_enable_of_a_connection_without_a_uid_says_how_to_keep_the_mode_it_switched(
        sim_env, invoke, futures_connection):
    """As above on a connection whose account uid the enable did not know (stored before uids were kept): the
    new key is not known to be the same account's, so the stored mode stays, and the 409 says the account is
    in hedge mode now and to send position_mode hedge to keep it (before: it said nothing of the switch)."""
    forget_uid(futures_connection.id)

    error = _enable_hedge_racing_a_new_key(sim_env, invoke, futures_connection.id)

    assert "send position_mode hedge" in error["message"], error
    assert _hedge(sim_env)
    assert get_connection(USER_A, futures_connection.id).position_mode == "one_way"
