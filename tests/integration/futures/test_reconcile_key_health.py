"""The reconciler's own signed reads count on the connection's key health, against moto and the simulator
over loopback: a key Binance refuses (-2015: revoked, or the IP off its allow-list) is counted once per
connection and run, so three runs disable the connection, and a run stops reading a connection whose
reads all fail for the key (klineo.services.reconcile, klineo.services.key_health)."""

from __future__ import annotations

from typing import Any

from klineo.store import order_history
from klineo.store import strategies as strategy_store
from klineo.store.connections import get_connection
from klineo.store.orders import get_order_record

from tests.integration.api.conftest import USER_A
from tests.integration.futures.helpers import ORDER_PATH, new_key, order_body, order_event
from tests.integration.futures.test_key_lifecycle import _live_strategy
from tests.integration.futures.test_protective_orders import (
    _algo_posts,
    _algo_refusing,
    _entry_with_protection,
    _resting_entry_filled,
)
from tests.integration.futures.test_reconcile import _orders


def _resting(invoke: Any, connection_id: str, count: int) -> None:
    """``count`` LIMIT BUYs far below the mark: NEW on Binance, unsettled records of ours."""
    for _ in range(count):
        response = invoke("futures_order", order_event(order_body(connection_id), key=new_key()))
        assert response["statusCode"] == 200, response["body"]


def test_three_runs_with_a_refused_key_disable_the_connection_counting_once_a_run(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN three unsettled orders and a key Binance refuses (401 -2015) WHEN the reconciler runs three
    times THEN each run counts one key failure (not one per record) and sends one request (the rest of the
    connection's reads are not sent), and the third run disables the connection and pauses its live strategy
    (before: every record read each run, consecutive_failures stayed 0, the connection enabled for good)."""
    strategy_id = _live_strategy(futures_connection.id)
    _resting(invoke, futures_connection.id, 3)
    sim_env.faults.add("http_401_invalid_key", 1000, api_key=futures_connection.account.api_key)

    counted, sent = [], []
    for _ in range(3):
        before = len(sim_env.journal)
        reconcile()
        sent.append(len(sim_env.journal) - before)
        counted.append(get_connection(USER_A, futures_connection.id).consecutive_failures)

    after = get_connection(USER_A, futures_connection.id)
    assert (counted, sent) == ([1, 2, 3], [1, 1, 1])
    assert after.disabled_reason is not None and after.disabled_reason.startswith("connection_disabled:")
    paused = strategy_store.get_strategy(USER_A, strategy_id, consistent=True)
    assert paused is not None and (paused.status, paused.status_reason) == ("paused", after.disabled_reason)


def test_an_order_history_read_with_a_refused_key_counts_once_and_sends_one_read(
    sim_env, invoke, futures_connection
):
    """GIVEN three unsettled orders and a key Binance refuses WHEN the user reads the order history (which
    settles a few on the way out) THEN that read counts one key failure and sends one request, not one per
    record (before: none counted, three sent)."""
    _resting(invoke, futures_connection.id, 3)
    sim_env.faults.add("http_401_invalid_key", 1000, api_key=futures_connection.account.api_key)
    before = len(sim_env.journal)

    response = _orders(invoke)

    assert response["statusCode"] == 200, response["body"]
    counted = get_connection(USER_A, futures_connection.id).consecutive_failures
    assert (counted, len(sim_env.journal) - before) == (1, 1)


def test_a_stop_refused_for_the_key_and_a_read_refused_in_the_same_run_count_once(
    sim_env, invoke, futures_connection, reconcile, monkeypatch
):
    """GIVEN a filled entry read first, whose stop-loss POST Binance refuses for the key (counted where the
    stop is armed, klineo.services.protective), and another order whose read is then refused for the key
    WHEN one run goes through both THEN the connection's key failures count 1: the run's own count does not
    add a second for the same run."""
    from local.binance_sim.errors import FUTURES, invalid_api_key

    entry = _resting_entry_filled(sim_env, invoke, futures_connection.id)
    _resting(invoke, futures_connection.id, 1)
    _algo_refusing(sim_env, monkeypatch, invalid_api_key(FUTURES, "127.0.0.1"))
    first = get_order_record(USER_A, entry["client_order_id"])
    assert first is not None
    order_history.save_resume_point("settle", order_history.unsettled_position(first))  # the entry first
    sim_env.faults.add("http_401_invalid_key", 1000, method="GET", path=ORDER_PATH, after=1)

    reconcile()

    posts = [r for r in sim_env.journal if (r.method, r.path) == ("POST", "/fapi/v1/algoOrder")]
    refused_reads = [r for r in sim_env.journal if r.path == ORDER_PATH and r.fault == "http_401_invalid_key"]
    assert (len(posts), len(refused_reads)) == (1, 1)
    assert get_connection(USER_A, futures_connection.id).consecutive_failures == 1


def test_stops_refused_for_the_key_at_the_entrys_first_arming_count_once_and_wait_for_the_key(
    sim_env, invoke, futures_connection, reconcile, monkeypatch
):
    """GIVEN a MARKET entry with a stop-loss and a take-profit whose POSTs Binance refuses for the key
    (-2015) right after the fill WHEN the order route arms them THEN the connection's key failures count 1
    (once for the request, not once per stop), and the reconciler's next run holds both back, no POST
    (before: nothing counted at the first arming, and the run sent both again at once)."""
    from local.binance_sim.errors import FUTURES, invalid_api_key

    _algo_refusing(sim_env, monkeypatch, invalid_api_key(FUTURES, "127.0.0.1"))
    answer = _entry_with_protection(invoke, futures_connection.id, new_key(), stop_loss={"percent": "2"},
                                    take_profit={"percent": "2"})
    counted = get_connection(USER_A, futures_connection.id).consecutive_failures
    posts = len(_algo_posts(sim_env))

    reconcile()

    assert answer["statusCode"] == 403, answer["body"]
    assert (counted, posts, len(_algo_posts(sim_env))) == (1, 2, 2)


def test_a_stop_loss_and_a_take_profit_refused_for_the_key_in_one_run_count_once(
    sim_env, invoke, futures_connection, reconcile, monkeypatch
):
    """GIVEN a filled LIMIT entry whose stop-loss and take-profit POSTs Binance both refuses for the key
    WHEN one reconciler run arms them THEN the connection's key failures count 1 for the run, not one per
    stop (before: 2, so a revoked key disabled the connection in two runs instead of three)."""
    from local.binance_sim.errors import FUTURES, invalid_api_key

    _resting_entry_filled(sim_env, invoke, futures_connection.id, stop_loss={"percent": "2"},
                          take_profit={"percent": "2"})
    _algo_refusing(sim_env, monkeypatch, invalid_api_key(FUTURES, "127.0.0.1"))

    reconcile()

    assert get_connection(USER_A, futures_connection.id).consecutive_failures == 1


def test_the_cancel_of_a_flat_sides_stop_refused_for_the_key_counts_once(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a MARKET entry's stop-loss standing and its position sold in full (flat) WHEN the reconciler's
    cleanup cancels the stop and Binance refuses that DELETE for the key (401 -2015) THEN the connection's key
    failures count 1 (before: 0, a key refused on every cancel never counted)."""
    entry = _entry_with_protection(invoke, futures_connection.id, new_key(), stop_loss={"percent": "2"})
    assert entry["statusCode"] == 200, entry["body"]
    close = order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None, quantity="0.002",
                       side="SELL", reduceOnly=True)
    assert invoke("futures_order", order_event(close, key=new_key()))["statusCode"] == 200
    sim_env.faults.add("http_401_invalid_key", 1000, method="DELETE", path="/fapi/v1/algoOrder")

    reconcile()

    refused = [r for r in sim_env.journal if r.method == "DELETE" and r.fault == "http_401_invalid_key"]
    assert len(refused) >= 1
    assert get_connection(USER_A, futures_connection.id).consecutive_failures == 1


def test_the_stops_of_two_entries_of_one_connection_refused_for_the_key_in_one_run_count_once(
    sim_env, invoke, futures_connection, reconcile, monkeypatch
):
    """GIVEN two filled LIMIT entries of one connection, each with a stop-loss whose POST Binance refuses for
    the key WHEN one reconciler run arms both THEN the connection's key failures count 1 for the run, as its
    reads count (before: 2, each arming counting once on its own, so a revoked key disabled in two runs)."""
    from local.binance_sim.errors import FUTURES, invalid_api_key

    _resting_entry_filled(sim_env, invoke, futures_connection.id)
    _resting_entry_filled(sim_env, invoke, futures_connection.id)
    _algo_refusing(sim_env, monkeypatch, invalid_api_key(FUTURES, "127.0.0.1"))

    reconcile()

    assert len(_algo_posts(sim_env)) == 2
    assert get_connection(USER_A, futures_connection.id).consecutive_failures == 1
