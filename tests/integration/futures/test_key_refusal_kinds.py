"""Which call clears which key refusal, against moto and the simulator over loopback: a read that works clears
the refusals a read disproves, never the trading permission refusals a key that can read but not trade meets
on every order, which only a call that traded clears (klineo.services.key_health, module docstring "Which
call disproves which refusal"); the reconciler's reads clear their part too, once a run."""

from __future__ import annotations

from typing import Any

from klineo.store import strategies as strategy_store
from klineo.store.connections import add_key_failure, get_connection

from tests.integration.api.conftest import USER_A, connection_event
from tests.integration.futures.helpers import ORDER_PATH, new_key, order_body, order_event
from tests.integration.futures.test_key_lifecycle import _live_strategy

BALANCE_PATH = "/api/v3/account"


def _order(invoke: Any, connection_id: str) -> int:
    """A resting LIMIT BUY through the order route: its status code."""
    return invoke("futures_order", order_event(order_body(connection_id), key=new_key()))["statusCode"]


def _balance(invoke: Any, connection_id: str) -> int:
    """The user's balance read (a signed read of the key): its status code."""
    return invoke("balance", connection_event("balance", connection_id, USER_A, "/balance"))["statusCode"]


def test_a_key_that_reads_but_cannot_trade_is_disabled_on_its_third_refused_order_whatever_reads_work(
    sim_env, invoke, futures_connection
):
    """GIVEN a key Binance refuses every order for (401 -2015 on POST /fapi/v1/order) but answers reads WHEN
    three orders are refused with a balance read answered between each THEN the third refusal disables the
    connection and pauses its live strategy (before: each read reset the count, so such a key was never
    disabled)."""
    strategy_id = _live_strategy(futures_connection.id)
    sim_env.faults.add("http_401_invalid_key", 1000, method="POST", path=ORDER_PATH)

    answers = []
    for _ in range(3):
        answers.append((_order(invoke, futures_connection.id), _balance(invoke, futures_connection.id)))

    after = get_connection(USER_A, futures_connection.id, consistent=True)
    assert answers == [(403, 200)] * 3
    assert (after.consecutive_failures, after.disabled_reason) == (3, "connection_disabled:permission")
    paused = strategy_store.get_strategy(USER_A, strategy_id, consistent=True)
    assert paused is not None and (paused.status, paused.status_reason) == ("paused", after.disabled_reason)


def test_a_read_clears_a_refused_read_but_not_a_refused_order_which_an_order_taken_clears(
    sim_env, invoke, futures_connection
):
    """GIVEN one order refused for the key's permission and then one balance read refused for the key
    (count 2) WHEN a balance read is answered THEN the count is 1 (the order's refusal stands), and WHEN an
    order is then taken THEN it is 0 (before: the read cleared both)."""
    sim_env.faults.add("http_401_invalid_key", 1, method="POST", path=ORDER_PATH)
    sim_env.faults.add("http_401_invalid_key", 1, method="GET", path=BALANCE_PATH)
    assert (_order(invoke, futures_connection.id), _balance(invoke, futures_connection.id)) == (403, 403)
    counted = get_connection(USER_A, futures_connection.id).consecutive_failures

    assert _balance(invoke, futures_connection.id) == 200
    after_read = get_connection(USER_A, futures_connection.id).consecutive_failures
    assert _order(invoke, futures_connection.id) == 200
    after_order = get_connection(USER_A, futures_connection.id).consecutive_failures

    assert (counted, after_read, after_order) == (2, 1, 0)


def test_a_reconciler_run_whose_reads_work_clears_the_count_a_read_disproves(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN an unsettled order and two key failures counted that a read disproves (a signature or IP refusal)
    WHEN the reconciler runs and Binance answers its reads THEN the count is 0 again (before: the run's reads
    that worked cleared nothing, though the docstring said any answer resets it)."""
    assert _order(invoke, futures_connection.id) == 200
    add_key_failure(USER_A, futures_connection.id)
    add_key_failure(USER_A, futures_connection.id)

    reconcile()

    assert get_connection(USER_A, futures_connection.id).consecutive_failures == 0
