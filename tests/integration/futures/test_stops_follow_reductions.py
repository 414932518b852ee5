"""An API entry's stop-loss / take-profit follow what is left of its position after a reduction of ours
(``klineo.services.protective_resize``), against moto and the simulator over loopback."""

from __future__ import annotations

import dataclasses
import time
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError
from klineo.binance.endpoints import clear_exchange_info_cache
from klineo.services import protective_resize
from klineo.services.orders import PURGE_AFTER_MS
from klineo.services.protective_siblings import protective_client_algo_id
from klineo.services.strategy_protection import arm_strategy_protection
from klineo.store.connections import disable_connection, get_connection, mark_deleting
from klineo.store.order_claim import forget_connection
from klineo.store.order_history import list_unsettled
from klineo.store.orders import get_order_record

from local.binance_sim import market
from tests.helpers import load_event, with_user
from tests.integration.api.conftest import USER_A, connection_event
from tests.integration.futures.helpers import (
    age_record,
    body_of,
    new_key,
    order_body,
    order_event,
    raise_notional_limit,
    status_event,
)

ALGO_PATH = "/fapi/v1/algoOrder"
SL_TP = ("stop_loss", "take_profit")
MARKET = {"type": "MARKET", "price": None, "timeInForce": None}
D = Decimal


def _mark(sim: Any) -> Decimal:
    return D(str(sim.mark_price("BTCUSDT")))


def _algos(sim: Any, account_id: str) -> dict[str, Any]:
    state = sim.state.futures.state_for(sim.account(account_id), time.time() * 1000)
    return {a.client_algo_id: a for a in list(state.algo_orders.values())}


def _open(sim: Any, account_id: str) -> dict[str, Decimal]:
    """clientAlgoId -> quantity of the algo orders Binance holds open."""
    return {i: a.quantity for i, a in _algos(sim, account_id).items() if a.status == "NEW"}


def _held(sim: Any, account_id: str, side: str | None = None) -> Decimal:
    rows = sim.state.futures.position_risk(sim.account(account_id), "BTCUSDT", time.time() * 1000, 3)
    return sum((D(r["positionAmt"]) for r in rows if side in (None, r["positionSide"])), D(0))


def _posts(sim: Any, method: str = "POST") -> int:
    return len([r for r in sim.journal if r.method == method and r.path == ALGO_PATH])


def _open_algo_reads(sim: Any) -> int:
    return len([r for r in sim.journal if r.method == "GET" and r.path == "/fapi/v1/openAlgoOrders"])


def _entry(invoke: Any, connection_id: str, quantity: str, **extra: Any) -> dict[str, Any]:
    """A MARKET BUY with a 2 % stop-loss and a 2 % take-profit, filled."""
    body = order_body(connection_id, quantity=quantity, stop_loss={"percent": "2"},
                      take_profit={"percent": "2"}, **MARKET, **extra)
    response = invoke("futures_order", order_event(body, key=new_key()))
    assert response["statusCode"] == 200 and body_of(response)["status"] == "FILLED", response["body"]
    return body_of(response)


def _reduce(invoke: Any, connection_id: str, quantity: str, key: str | None = None, **side: Any
            ) -> dict[str, Any]:
    """A MARKET SELL for ``quantity`` that only reduces (reduce-only, or ``side``: positionSide LONG)."""
    reducing = side or {"reduceOnly": True}
    body = order_body(connection_id, side="SELL", quantity=quantity, **MARKET, **reducing)
    response = invoke("futures_order", order_event(body, key=key or new_key()))
    assert response["statusCode"] == 200, response["body"]
    return body_of(response)


def _strategy_guarded_long(sim: Any, invoke: Any, connection: Any) -> dict[str, Any]:
    """A 0.010 LONG opened through the API whose stop-loss is a strategy's (origin: the strategy)."""
    opened = invoke("futures_order", order_event(order_body(connection.id, quantity="0.010", **MARKET),
                                                 key=new_key()))
    entry = body_of(opened)
    trigger = (_mark(sim) * D("0.9")).quantize(D("0.1"))
    arm_strategy_protection(get_connection(USER_A, connection.id), "strategy-1", "BTCUSDT",
                            entry["client_order_id"], "BUY", D("0.010"), D(entry["average_price"]),
                            {"stop_loss": trigger})
    return entry


def _ids(entry: dict[str, Any], generation: int) -> list[str]:
    return [protective_client_algo_id(entry["client_order_id"], role, generation) for role in SL_TP]


def refuse_for_good(sim: Any, monkeypatch: Any, refused: str) -> None:
    """Binance refuses the algo order ``refused`` for good (-2021: it would trigger at once)."""
    from local.binance_sim.errors import ApiError

    algo = sim.state.algo
    place = algo.place

    def refuse(account: Any, params: dict[str, Any], now_ms: float) -> Any:
        if params.get("clientAlgoId") == refused:
            raise ApiError(400, -2021, "Order would immediately trigger.")
        return place(account, params, now_ms)

    monkeypatch.setattr(algo, "place", refuse)


@pytest.fixture
def connection(futures_connection: Any) -> Any:
    raise_notional_limit(futures_connection.id)
    return futures_connection


def test_a_partial_reduce_re_places_both_stops_for_what_is_left_and_the_stop_then_closes_it(
        sim_env, invoke, connection):
    """GIVEN a 0.010 LONG with SL and TP WHEN 0.004 is sold reduce-only THEN both stops are re-placed for
    0.006 at the same triggers and the old ones cancelled; WHEN the mark crosses the SL THEN the 0.006 is
    closed (before: the SL for 0.010 ended REJECTED and the position stayed open)."""
    entry = _entry(invoke, connection.id, "0.010")
    old = _algos(sim_env, connection.account.id)

    answer = _reduce(invoke, connection.id, "0.004")

    assert (answer["status"], answer["executed_quantity"]) == ("FILLED", "0.004")
    assert "protective_orders" not in answer or answer["protective_orders"] is None
    assert _open(sim_env, connection.account.id) == dict.fromkeys(_ids(entry, 1), D("0.006"))
    held = _algos(sim_env, connection.account.id)
    for role, (first, again) in zip(SL_TP, zip(_ids(entry, 0), _ids(entry, 1), strict=True), strict=True):
        assert held[first].status == "CANCELED", role
        assert held[again].trigger_price == old[first].trigger_price, role
        assert (held[again].side, held[again].reduce_only) == ("SELL", True)
    assert get_order_record(USER_A, _ids(entry, 0)[0]).status == "CANCELED"

    sim_env.set_mark_price("BTCUSDT", float(held[_ids(entry, 1)[0]].trigger_price - 10))

    assert held[_ids(entry, 1)[0]].status in ("TRIGGERED", "FINISHED")
    assert _held(sim_env, connection.account.id) == 0


def test_the_entrys_status_and_the_positions_show_the_re_placed_orders(sim_env, invoke, connection):
    """GIVEN a 0.010 LONG with SL and TP, 0.004 sold reduce-only WHEN the entry's status and the positions
    are read THEN both list the re-placed orders (their clientAlgoIds, quantity 0.006)."""
    entry = _entry(invoke, connection.id, "0.010")
    _reduce(invoke, connection.id, "0.004")

    status = body_of(invoke("futures_order_status", status_event(entry["client_order_id"])))
    event = connection_event("futures_positions", connection.id, USER_A, "/futures/positions")
    (position,) = body_of(invoke("futures_positions", event))["positions"]

    shown = sorted((p["client_algo_id"], p["quantity"], p["status"]) for p in status["protective_orders"])
    assert shown == [(i, "0.006", "NEW") for i in sorted(_ids(entry, 1))]
    listed = sorted((p["client_algo_id"], D(p["quantity"])) for p in position["protective_orders"])
    assert listed == [(i, D("0.006")) for i in sorted(_ids(entry, 1))]


def test_hedge_mode_a_sell_long_for_part_re_places_the_long_sides_stops(sim_env, invoke, create_connection):
    """GIVEN a hedge-mode LONG of 0.010 with SL and TP WHEN SELL LONG 0.004 fills THEN both stops are
    re-placed for 0.006 on positionSide LONG without reduceOnly, the old ones cancelled."""
    hedge = create_connection(USER_A, "futures-hedge")
    event = connection_event("futures_enable", hedge.id, USER_A, "/futures/enable")
    assert invoke("futures_enable", event)["statusCode"] == 200
    raise_notional_limit(hedge.id)
    entry = _entry(invoke, hedge.id, "0.010", positionSide="LONG")

    _reduce(invoke, hedge.id, "0.004", positionSide="LONG")

    assert _open(sim_env, "futures-hedge") == dict.fromkeys(_ids(entry, 1), D("0.006"))
    held = _algos(sim_env, "futures-hedge")
    assert [held[i].status for i in _ids(entry, 0)] == ["CANCELED", "CANCELED"]
    assert {(held[i].side, held[i].position_side, held[i].reduce_only) for i in _ids(entry, 1)} == {
        ("SELL", "LONG", False)}
    assert _held(sim_env, "futures-hedge", "LONG") == D("0.006")


def test_a_close_capped_at_max_qty_re_fits_the_stops_to_position_left(
        sim_env, invoke, connection, monkeypatch):
    """GIVEN a 0.010 LONG with SL and TP plus 0.005 more bought, and a MARKET maxQty of 0.01 WHEN the
    position is closed THEN 0.01 is sold, position_left is 0.005 and the entry's stops are re-placed for
    0.005 (no longer cancelled nor left for 0.010)."""
    spec = dataclasses.replace(market.SYMBOLS["BTCUSDT"], futures_market_max_qty="0.01")
    monkeypatch.setitem(market.SYMBOLS, "BTCUSDT", spec)
    entry = _entry(invoke, connection.id, "0.010")
    more = invoke("futures_order", order_event(order_body(connection.id, quantity="0.005", **MARKET),
                                               key=new_key()))
    assert body_of(more)["status"] == "FILLED", more["body"]
    event = connection_event("futures_position_close", connection.id, USER_A,
                             "/futures/positions/BTCUSDT/close")
    event["pathParameters"]["symbol"] = "BTCUSDT"
    event["headers"]["idempotency-key"] = new_key()

    close = invoke("futures_position_close", event)

    assert close["statusCode"] == 200, close["body"]
    assert (body_of(close)["executed_quantity"], body_of(close)["position_left"]) == ("0.01", "0.005")
    assert _open(sim_env, connection.account.id) == dict.fromkeys(_ids(entry, 1), D("0.005"))


def test_a_full_close_reads_the_stops_and_the_position_once_and_cancels_them(sim_env, invoke, connection):
    """GIVEN a 0.010 LONG with SL and TP WHEN the position is closed THEN both stops are cancelled after
    ONE read of the open algo orders and ONE of the position (the close's own): the re-fitting, which would
    find nothing left, reads neither."""
    entry = _entry(invoke, connection.id, "0.010")
    event = connection_event("futures_position_close", connection.id, USER_A,
                             "/futures/positions/BTCUSDT/close")
    event["pathParameters"]["symbol"] = "BTCUSDT"
    event["headers"]["idempotency-key"] = new_key()
    sim_env.journal.clear()

    close = invoke("futures_position_close", event)

    assert close["statusCode"] == 200 and body_of(close)["status"] == "FILLED", close["body"]
    reads = [r.path for r in sim_env.journal if r.method == "GET"]
    assert (reads.count("/fapi/v1/openAlgoOrders"), reads.count("/fapi/v3/positionRisk")) == (1, 1)
    held = _algos(sim_env, connection.account.id)
    assert [held[i].status for i in _ids(entry, 0)] == ["CANCELED", "CANCELED"]


def test_the_same_key_retried_re_places_nothing_more(sim_env, invoke, connection):
    """GIVEN 0.004 of a 0.010 LONG sold with key K and the stops re-placed for 0.006 WHEN K comes again
    THEN the first answer, and no algo order is placed or cancelled again."""
    entry = _entry(invoke, connection.id, "0.010")
    key = new_key()
    first = _reduce(invoke, connection.id, "0.004", key=key)
    sent = (_posts(sim_env), _posts(sim_env, "DELETE"))

    again = _reduce(invoke, connection.id, "0.004", key=key)

    assert (again["source"], again["client_order_id"]) == ("existing", first["client_order_id"])
    assert (_posts(sim_env), _posts(sim_env, "DELETE")) == sent == (4, 2)
    assert _open(sim_env, connection.account.id) == dict.fromkeys(_ids(entry, 1), D("0.006"))


@pytest.mark.parametrize(
    "close_gate",
    [lambda c: disable_connection(USER_A, c, "test"), lambda c: mark_deleting(USER_A, c)],
    ids=["connection_disabled", "connection_deleting"],
)
def test_the_same_key_retried_on_a_connection_closed_since_reads_nothing_from_binance_in_any_container(
        sim_env, invoke, connection, close_gate):
    """GIVEN 0.004 of a 0.010 LONG sold with key K and the stops re-placed WHEN the connection is disabled
    or being deleted and K comes again to a warm container, to it again, and to a cold one THEN each
    answers the first order, and no re-fit runs: nothing is read from Binance with the connection's key."""
    _entry(invoke, connection.id, "0.010")
    key = new_key()
    first = _reduce(invoke, connection.id, "0.004", key=key)
    close_gate(connection.id)
    since = len(sim_env.journal)

    answers = []
    for forget in (False, False, True):
        if forget:
            forget_connection()
        answers.append(_reduce(invoke, connection.id, "0.004", key=key))

    for again in answers:
        assert (again["source"], again["client_order_id"]) == ("existing", first["client_order_id"])
    assert [r.path for r in sim_env.journal[since:] if r.api_key == connection.account.api_key] == []


def test_a_crash_between_placing_and_recording_is_resumed_by_the_reconciler_without_doubling(
        sim_env, invoke, connection, reconcile, monkeypatch):
    """GIVEN a reduce-only 0.004 of a 0.010 LONG whose request is lost after the stops for 0.006 were
    placed and before the re-placing was recorded WHEN the reconciler runs (twice) THEN it records it and
    cancels the old stops, nothing placed again: each order sent once, one generation left armed."""
    entry = _entry(invoke, connection.id, "0.010")
    real, lost = protective_resize.end_protective_resize, []

    def lost_once(*args: Any, **kwargs: Any) -> Any:
        if not lost:
            lost.append(True)
            raise RuntimeError("container lost")
        return real(*args, **kwargs)

    monkeypatch.setattr(protective_resize, "end_protective_resize", lost_once)
    body = order_body(connection.id, side="SELL", quantity="0.004", reduceOnly=True, **MARKET)
    crashed = invoke("futures_order", order_event(body, key=new_key()))
    assert crashed["statusCode"] >= 500 and lost
    assert set(_open(sim_env, connection.account.id)) == set(_ids(entry, 0) + _ids(entry, 1))
    assert get_order_record(USER_A, entry["client_order_id"]).protective_resize["generation"] == 1

    reconcile()
    reconcile()

    assert _open(sim_env, connection.account.id) == dict.fromkeys(_ids(entry, 1), D("0.006"))
    assert (_posts(sim_env), _posts(sim_env, "DELETE")) == (4, 2)
    assert get_order_record(USER_A, entry["client_order_id"]).protective_resize is None


def test_a_crash_between_recording_and_cancelling_the_old_stops_is_finished_by_the_reconciler(
        sim_env, invoke, connection, reconcile, monkeypatch):
    """GIVEN a reduce-only 0.004 of a 0.010 LONG whose request is lost after the stops for 0.006 were placed
    and recorded, before the old ones were cancelled WHEN the reconciler runs THEN it cancels the old ones
    (superseded) and places nothing: one generation left armed."""
    entry = _entry(invoke, connection.id, "0.010")
    real, lost = protective_resize.disarm_protective_orders, []

    def lost_once(connection: Any, client_algo_ids: Any) -> Any:
        if not lost:
            lost.append(list(client_algo_ids))
            raise RuntimeError("container lost")
        return real(connection, client_algo_ids)

    monkeypatch.setattr(protective_resize, "disarm_protective_orders", lost_once)
    body = order_body(connection.id, side="SELL", quantity="0.004", reduceOnly=True, **MARKET)
    assert invoke("futures_order", order_event(body, key=new_key()))["statusCode"] >= 500
    assert lost == [sorted(_ids(entry, 0))]
    assert get_order_record(USER_A, entry["client_order_id"]).protective_resized == 1

    reconcile()

    assert _open(sim_env, connection.account.id) == dict.fromkeys(_ids(entry, 1), D("0.006"))
    assert (_posts(sim_env), _posts(sim_env, "DELETE")) == (4, 2)


def test_a_storage_failure_while_re_fitting_still_answers_the_fill_and_the_reconciler_finishes(
        sim_env, invoke, connection, reconcile, monkeypatch):
    """GIVEN DynamoDB throttling the write that records the stops re-placed for 0.006 WHEN 0.004 of a 0.010
    LONG is sold THEN the sale is answered FILLED (not a 500), and the reconciler records the re-placing
    and cancels the old stops without placing again."""
    entry = _entry(invoke, connection.id, "0.010")
    real, throttled = protective_resize.end_protective_resize, []

    def throttled_once(*args: Any, **kwargs: Any) -> Any:
        if not throttled:
            throttled.append(True)
            error = {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}
            raise ClientError({"Error": error}, "UpdateItem")
        return real(*args, **kwargs)

    monkeypatch.setattr(protective_resize, "end_protective_resize", throttled_once)
    sold = _reduce(invoke, connection.id, "0.004")
    assert sold["status"] == "FILLED" and throttled

    reconcile()
    reconcile()

    assert _open(sim_env, connection.account.id) == dict.fromkeys(_ids(entry, 1), D("0.006"))
    assert (_posts(sim_env), _posts(sim_env, "DELETE")) == (4, 2)
    assert get_order_record(USER_A, entry["client_order_id"]).protective_resize is None


def test_a_transient_failure_keeps_the_old_stops_and_the_reconciler_finishes(
        sim_env, invoke, connection, reconcile):
    """GIVEN Binance unavailable for algo orders WHEN 0.004 of a 0.010 LONG is sold THEN the sale is answered
    FILLED and the old stops stay; WHEN the reconciler runs THEN the stops for 0.006 replace them."""
    entry = _entry(invoke, connection.id, "0.010")
    sim_env.faults.add("http_503_unavailable", count=50, method="POST", path=ALGO_PATH)

    answer = _reduce(invoke, connection.id, "0.004")

    assert answer["status"] == "FILLED"
    assert _open(sim_env, connection.account.id) == dict.fromkeys(_ids(entry, 0), D("0.010"))
    sim_env.faults.clear()

    reconcile()

    assert _open(sim_env, connection.account.id) == dict.fromkeys(_ids(entry, 1), D("0.006"))
    assert get_order_record(USER_A, answer["client_order_id"]).fills is not None


def test_an_unfinished_re_placing_for_more_than_is_left_is_dropped_and_claimed_anew(
        sim_env, invoke, connection):
    """GIVEN a re-placing for 0.006 kept from being placed (Binance unavailable) WHEN 0.002 more is sold
    THEN that claim is dropped and the stops are re-placed once for the 0.004 now left, in the next
    generation, the entry's first ones cancelled."""
    entry = _entry(invoke, connection.id, "0.010")
    sim_env.faults.add("http_503_unavailable", count=50, method="POST", path=ALGO_PATH)
    _reduce(invoke, connection.id, "0.004")
    assert get_order_record(USER_A, entry["client_order_id"]).protective_resize["quantity"] == "0.006"
    sim_env.faults.clear()

    _reduce(invoke, connection.id, "0.002")

    assert _open(sim_env, connection.account.id) == dict.fromkeys(_ids(entry, 2), D("0.004"))
    assert [a.client_algo_id for a in _algos(sim_env, connection.account.id).values()] == sorted(
        _ids(entry, 0)) + sorted(_ids(entry, 2))
    assert get_order_record(USER_A, entry["client_order_id"]).protective_resize is None


def test_stops_refused_for_good_stay_and_are_not_tried_again_at_that_quantity(
        sim_env, invoke, connection, reconcile, monkeypatch):
    """GIVEN Binance refusing the re-placed stop-loss for good (-2021) WHEN 0.004 of a 0.010 LONG is sold
    THEN the old stop-loss stays armed, the take-profit re-placed for 0.006 replaces its old one, the refusal
    is recorded; WHEN the reconciler and a status read come THEN nothing is sent again."""
    entry = _entry(invoke, connection.id, "0.010")
    refuse_for_good(sim_env, monkeypatch, _ids(entry, 1)[0])

    answer = _reduce(invoke, connection.id, "0.004")

    assert _open(sim_env, connection.account.id) == {
        _ids(entry, 0)[0]: D("0.010"), _ids(entry, 1)[1]: D("0.006")}
    recorded = get_order_record(USER_A, entry["client_order_id"])
    assert (recorded.protective_refused_quantity, recorded.protective_resize) == ("0.006", None)
    sent = _posts(sim_env)
    reconcile()
    invoke("futures_order_status", status_event(answer["client_order_id"]))
    assert _posts(sim_env) == sent


def _re_placed_stop_loss_lost(sim: Any, invoke: Any, connection_id: str) -> dict[str, Any]:
    """A 0.010 LONG with SL and TP of which 0.004 was sold: the re-placed stop-loss's POST (generation 1)
    timed out unsent and its lookups failed until its record was older than Binance's retention, the
    take-profit re-placed for 0.006; the re-fit's claim unfinished. The entry's first answer."""
    entry = _entry(invoke, connection_id, "0.010")
    sim.faults.add("timeout_1007", 1, method="POST", path=ALGO_PATH, execute=False)
    _reduce(invoke, connection_id, "0.004")
    age_record(_ids(entry, 1)[0], PURGE_AFTER_MS + 60_000)
    return entry


def test_a_re_placed_stop_lost_past_binances_retention_is_placed_again_by_the_reconciler(
        sim_env, invoke, connection, reconcile):
    """GIVEN the stop-loss re-placed for 0.006 after a reduction lost past Binance's retention (generation 1
    UNKNOWN_PURGED) while its old stop-loss for 0.010 stands WHEN the reconciler runs THEN the stop-loss is
    placed again for 0.006 at its trigger (generation 2) and only then the old one is cancelled (before: the
    old one for more than the position stayed armed, and that size was never tried again); the next run sends
    nothing more."""
    entry = _re_placed_stop_loss_lost(sim_env, invoke, connection.id)
    trigger = _algos(sim_env, connection.account.id)[_ids(entry, 0)[0]].trigger_price

    reconcile()
    reconcile()

    again = protective_client_algo_id(entry["client_order_id"], "stop_loss", 2)
    assert get_order_record(USER_A, _ids(entry, 1)[0]).status == "UNKNOWN_PURGED"
    assert _open(sim_env, connection.account.id) == {again: D("0.006"), _ids(entry, 1)[1]: D("0.006")}
    assert _algos(sim_env, connection.account.id)[again].trigger_price == trigger
    assert _algos(sim_env, connection.account.id)[_ids(entry, 0)[0]].status == "CANCELED"
    assert _posts(sim_env) == 5  # the entry's pair, generation 1's lost SL and its TP, the SL again


def test_a_re_placed_stop_lost_past_binances_retention_is_placed_again_by_the_entrys_status_read(
        sim_env, invoke, connection, reconcile):
    """GIVEN the stop-loss re-placed for 0.006 after a reduction lost past Binance's retention while its old
    stop-loss for 0.010 stands WHEN the entry's status is read THEN that read places it again for 0.006
    (generation 2), cancels the old one and shows the new one (before: only a lost first order was looked
    for; the read showed the old stop-loss, sized for more than the position); a later read and reconciler
    run send nothing more."""
    entry = _re_placed_stop_loss_lost(sim_env, invoke, connection.id)

    read = invoke("futures_order_status", status_event(entry["client_order_id"]))
    invoke("futures_order_status", status_event(entry["client_order_id"]))
    reconcile()

    again = protective_client_algo_id(entry["client_order_id"], "stop_loss", 2)
    assert read["statusCode"] == 200, read["body"]
    shown = body_of(read)["protective_orders"]
    assert sorted((p["client_algo_id"], p["quantity"], p["status"]) for p in shown) == sorted(
        [(again, "0.006", "NEW"), (_ids(entry, 1)[1], "0.006", "NEW")])
    assert _open(sim_env, connection.account.id) == {again: D("0.006"), _ids(entry, 1)[1]: D("0.006")}
    assert _posts(sim_env) == 5


def test_a_re_placed_stop_lost_next_to_a_take_profit_refused_for_good_is_placed_again_by_the_reconciler(
        sim_env, invoke, connection, reconcile, monkeypatch):
    """GIVEN Binance refusing the re-placed take-profits for good (-2021) WHEN 0.004 of a 0.010 LONG is sold,
    the re-placed stop-loss's POST is lost past Binance's retention in that same claim, and the reconciler
    (which settled the entry before) runs three times THEN the stop-loss is placed again for 0.006 and its
    old one for 0.010 cancelled, the take-profit's refusal recorded, and the last run sends nothing (before:
    the lost stop-loss counted as refused with the take-profit, protective_refused_quantity was set, and the
    cleanup never tried it again: the old stop-loss for more than the position stayed armed)."""
    entry = _entry(invoke, connection.id, "0.010")
    for generation in (1, 2):
        refuse_for_good(sim_env, monkeypatch, _ids(entry, generation)[1])
    reconcile()  # the entry settled: only the reduction and the cleanup bring the reconciler back to it
    sim_env.faults.add("timeout_1007", 1, method="POST", path=ALGO_PATH, execute=False)
    _reduce(invoke, connection.id, "0.004")
    age_record(_ids(entry, 1)[0], PURGE_AFTER_MS + 60_000)

    reconcile()
    reconcile()
    sent = (_posts(sim_env), _posts(sim_env, "DELETE"))
    reconcile()

    again = protective_client_algo_id(entry["client_order_id"], "stop_loss", 2)
    assert _open(sim_env, connection.account.id) == {again: D("0.006"), _ids(entry, 0)[1]: D("0.010")}
    assert get_order_record(USER_A, entry["client_order_id"]).protective_refused_quantity == "0.006"
    assert (_posts(sim_env), _posts(sim_env, "DELETE")) == sent


def test_two_entries_are_each_capped_at_what_is_left(sim_env, invoke, connection):
    """GIVEN two LONG entries of 0.006 and 0.004, each with SL and TP WHEN 0.007 is sold reduce-only THEN
    each entry's stops are re-placed for the 0.003 left (each may close all of it), the old ones cancelled;
    WHEN 0.001 more is sold THEN both pairs follow to 0.002."""
    big = _entry(invoke, connection.id, "0.006")
    small = _entry(invoke, connection.id, "0.004")

    _reduce(invoke, connection.id, "0.007")
    after_first = _open(sim_env, connection.account.id)
    _reduce(invoke, connection.id, "0.001")

    assert after_first == {
        **dict.fromkeys(_ids(big, 1), D("0.003")), **dict.fromkeys(_ids(small, 1), D("0.003"))}
    assert _open(sim_env, connection.account.id) == {
        **dict.fromkeys(_ids(big, 2), D("0.002")), **dict.fromkeys(_ids(small, 2), D("0.002"))}


def test_a_reduction_leaving_the_stops_at_most_what_is_left_sends_nothing(sim_env, invoke, connection):
    """Guard: GIVEN a 0.004 entry with SL and TP and 0.006 more bought without WHEN 0.004 is sold
    reduce-only THEN its stops (0.004 <= 0.006 left) stay as they are: no algo order placed or cancelled."""
    entry = _entry(invoke, connection.id, "0.004")
    more = invoke("futures_order", order_event(order_body(connection.id, quantity="0.006", **MARKET),
                                               key=new_key()))
    assert body_of(more)["status"] == "FILLED", more["body"]
    sent = (_posts(sim_env), _posts(sim_env, "DELETE"))

    _reduce(invoke, connection.id, "0.004")

    assert (_posts(sim_env), _posts(sim_env, "DELETE")) == sent
    assert _open(sim_env, connection.account.id) == dict.fromkeys(_ids(entry, 0), D("0.004"))


def test_a_full_reduction_leaves_the_stops_to_the_cleanup_which_cancels_them(
        sim_env, invoke, connection, reconcile):
    """Guard: GIVEN a 0.010 LONG with SL and TP WHEN all of it is sold reduce-only THEN nothing is re-placed,
    and the reconciler cancels both stops (their position reads 0)."""
    entry = _entry(invoke, connection.id, "0.010")

    _reduce(invoke, connection.id, "0.010")
    posts = _posts(sim_env)
    reconcile()

    assert _posts(sim_env) == posts == 2
    held = _algos(sim_env, connection.account.id)
    assert [held[i].status for i in _ids(entry, 0)] == ["CANCELED", "CANCELED"]


def test_a_strategys_stops_are_left_to_the_runner(sim_env, invoke, connection):
    """GIVEN a 0.010 LONG guarded by a strategy's stop-loss (origin: the strategy) WHEN 0.004 is sold
    reduce-only through the API THEN the strategy's stop is untouched: nothing placed or cancelled."""
    entry = _strategy_guarded_long(sim_env, invoke, connection)
    sent = (_posts(sim_env), _posts(sim_env, "DELETE"))

    _reduce(invoke, connection.id, "0.004")

    assert (_posts(sim_env), _posts(sim_env, "DELETE")) == sent == (1, 0)
    stop = protective_client_algo_id(entry["client_order_id"], "stop_loss")
    assert _open(sim_env, connection.account.id) == {stop: D("0.010")}


def test_a_resting_reduce_only_limit_that_filled_re_fits_on_its_status_read(sim_env, invoke, connection):
    """GIVEN a 0.010 LONG with SL and TP and a reduce-only LIMIT SELL 0.004 resting above the mark WHEN the
    mark rises through it and its status is read THEN it is FILLED and the stops are re-placed for 0.006;
    a second read sends nothing more, nor reads the open algo orders again."""
    entry = _entry(invoke, connection.id, "0.010")
    limit = format((_mark(sim_env) * D("1.005")).quantize(D("0.1")), "f")
    body = order_body(connection.id, side="SELL", quantity="0.004", price=limit, reduceOnly=True)
    resting = body_of(invoke("futures_order", order_event(body, key=new_key())))
    assert resting["status"] == "NEW" and _posts(sim_env) == 2
    sim_env.set_mark_price("BTCUSDT", float(D(limit) + 5))

    first = body_of(invoke("futures_order_status", status_event(resting["client_order_id"])))
    sent = (_posts(sim_env), _posts(sim_env, "DELETE"), _open_algo_reads(sim_env))
    invoke("futures_order_status", status_event(resting["client_order_id"]))

    assert first["status"] == "FILLED"
    assert _open(sim_env, connection.account.id) == dict.fromkeys(_ids(entry, 1), D("0.006"))
    assert (_posts(sim_env), _posts(sim_env, "DELETE")) == sent[:2] == (4, 2)
    assert _open_algo_reads(sim_env) == sent[2]  # the second read learns no fill: it checks no stops


@pytest.mark.parametrize("reader", ["reconciler", "order history"])
def test_a_resting_reduce_only_limit_nobody_read_is_re_fitted_when_it_settles(
        sim_env, invoke, connection, reconcile, reader):
    """GIVEN a 0.010 LONG with SL and TP and a reduce-only LIMIT SELL 0.004 that filled while nobody read it
    WHEN the reconciler runs, or the order history is read (each under its own IAM policy) THEN the sale is
    settled and the stops are re-placed for 0.006."""
    entry = _entry(invoke, connection.id, "0.010")
    limit = format((_mark(sim_env) * D("1.005")).quantize(D("0.1")), "f")
    body = order_body(connection.id, side="SELL", quantity="0.004", price=limit, reduceOnly=True)
    resting = body_of(invoke("futures_order", order_event(body, key=new_key())))
    sim_env.set_mark_price("BTCUSDT", float(D(limit) + 5))

    if reader == "reconciler":
        reconcile()
    else:
        event = with_user(load_event("futures_orders"), USER_A)
        event["queryStringParameters"], event["rawQueryString"] = None, ""
        assert invoke("futures_orders", event)["statusCode"] == 200

    assert get_order_record(USER_A, resting["client_order_id"]).status == "FILLED"
    assert _open(sim_env, connection.account.id) == dict.fromkeys(_ids(entry, 1), D("0.006"))


def test_dust_left_under_the_minimum_keeps_the_stops(sim_env, invoke, connection, monkeypatch):
    """Guard (the dust rule: kept, not cancelled): GIVEN a MARKET minimum of 0.005 and a 0.010 LONG with SL
    and TP WHEN 0.007 is sold reduce-only THEN the 0.003 left cannot carry a stop: the old ones stay armed,
    nothing is placed or cancelled."""
    spec = dataclasses.replace(market.SYMBOLS["BTCUSDT"], futures_market_min_qty="0.005")
    monkeypatch.setitem(market.SYMBOLS, "BTCUSDT", spec)
    entry = _entry(invoke, connection.id, "0.010")
    sent = (_posts(sim_env), _posts(sim_env, "DELETE"))

    _reduce(invoke, connection.id, "0.007")

    assert (_posts(sim_env), _posts(sim_env, "DELETE")) == sent
    assert _open(sim_env, connection.account.id) == dict.fromkeys(_ids(entry, 0), D("0.010"))
    assert _held(sim_env, connection.account.id) == D("0.003")


def test_a_reduction_on_binances_own_apps_is_followed_by_the_reconciler(
        sim_env, invoke, connection, reconcile):
    """GIVEN a 0.010 LONG with SL and TP WHEN 0.004 is sold on Binance's own apps (not through us) THEN the
    next reconciler run re-places both stops for 0.006 at the same triggers and cancels the old ones; a
    second run sends nothing; WHEN the mark crosses the SL THEN the 0.006 is closed (before: the SL for
    0.010 ended REJECTED and the position stayed open). The run reads the position once (its own read
    sizes the re-placing)."""
    entry = _entry(invoke, connection.id, "0.010")
    old = _algos(sim_env, connection.account.id)
    sim_env.inject_trade(connection.account.id, "manual", "BTCUSDT", side="SELL", quantity="0.004")
    sim_env.journal.clear()

    reconcile()
    assert len([r for r in sim_env.journal if r.path == "/fapi/v3/positionRisk"]) == 1
    sent = (_posts(sim_env), _posts(sim_env, "DELETE"))
    reconcile()

    assert (_posts(sim_env), _posts(sim_env, "DELETE")) == sent == (4, 2)
    assert _open(sim_env, connection.account.id) == dict.fromkeys(_ids(entry, 1), D("0.006"))
    held = _algos(sim_env, connection.account.id)
    for first, again in zip(_ids(entry, 0), _ids(entry, 1), strict=True):
        assert (held[first].status, held[again].trigger_price) == ("CANCELED", old[first].trigger_price)

    sim_env.set_mark_price("BTCUSDT", float(held[_ids(entry, 1)[0]].trigger_price - 10))

    assert _held(sim_env, connection.account.id) == 0


def test_the_reconciler_leaves_a_strategys_oversized_stops_to_the_runner(
        sim_env, invoke, connection, reconcile):
    """Guard: GIVEN a 0.010 LONG guarded by a strategy's stop-loss WHEN 0.004 is sold on Binance's own apps
    THEN the reconciler neither re-places nor cancels the strategy's stop (the runner's turn re-fits it)."""
    entry = _strategy_guarded_long(sim_env, invoke, connection)
    sim_env.inject_trade(connection.account.id, "manual", "BTCUSDT", side="SELL", quantity="0.004")

    reconcile()

    assert (_posts(sim_env), _posts(sim_env, "DELETE")) == (1, 0)
    stop = protective_client_algo_id(entry["client_order_id"], "stop_loss")
    assert _open(sim_env, connection.account.id) == {stop: D("0.010")}


def test_a_reduction_whose_symbol_ended_leaves_the_index_but_one_whose_symbol_is_halted_waits(
        sim_env, invoke, connection, reconcile, caplog):
    """GIVEN 0.004 of a 0.010 LONG sold while Binance is unavailable for algo orders (its stops not re-fitted)
    WHEN the reconciler runs with the symbol halted THEN the sale waits in the index; WHEN its contract then
    ended (SETTLING) THEN the next run lets the sale go, logged once, and later runs never read it again."""
    _entry(invoke, connection.id, "0.010")
    sim_env.faults.add("http_503_unavailable", count=50, method="POST", path=ALGO_PATH)
    sale = _reduce(invoke, connection.id, "0.004")["client_order_id"]
    sim_env.set_symbol_status("BTCUSDT", "TRADING_HALT")
    clear_exchange_info_cache()

    reconcile()
    assert sale in _unsettled()  # a halt is waited out
    sim_env.set_symbol_status("BTCUSDT", "SETTLING")
    clear_exchange_info_cache()
    caplog.clear()
    reconcile()
    reads = len([r for r in sim_env.journal if r.path == "/fapi/v1/order"])
    reconcile()

    assert sale not in _unsettled()
    assert get_order_record(USER_A, sale).fills is not None
    assert len([r for r in sim_env.journal if r.path == "/fapi/v1/order"]) == reads  # not read again
    given_up = [getattr(r, "client_order_id", None) for r in caplog.records
                if r.message == "protective orders given up: Binance no longer trades the order's symbol"]
    assert given_up.count(sale) == 1  # (the cleanup gives up the stops' own re-fit once too)


def test_oversized_stops_on_a_symbol_whose_contract_ended_are_given_up_once_not_failed_every_run(
        sim_env, invoke, connection, reconcile, caplog):
    """GIVEN a 0.010 LONG with SL and TP, 0.004 of it sold on Binance's own apps, then its contract ended
    (SETTLING: no stop can be re-placed) WHEN the reconciler runs three times THEN the first gives the re-fit
    up (counted, logged once), no run fails a step, and the later runs read no open algo orders for it."""
    _entry(invoke, connection.id, "0.010")
    sim_env.inject_trade(connection.account.id, "manual", "BTCUSDT", side="SELL", quantity="0.004")
    sim_env.set_symbol_status("BTCUSDT", "SETTLING")
    clear_exchange_info_cache()
    caplog.clear()

    first = reconcile()
    reads = _open_algo_reads(sim_env)
    later = [reconcile(), reconcile()]

    assert [(run.get("protection_given_up", 0), run.get("errors", 0)) for run in [first, *later]] == [
        (1, 0), (0, 0), (0, 0)]
    assert _open_algo_reads(sim_env) == reads
    messages = [r.message for r in caplog.records]
    assert messages.count("protective orders given up: Binance no longer trades the order's symbol") == 1
    assert "reconcile step failed" not in messages


def _unsettled() -> list[str]:
    return [record.client_order_id for record in list_unsettled()]


def test_a_take_profit_refused_for_good_does_not_keep_the_stop_loss_sized_for_more(
        sim_env, invoke, connection, reconcile, monkeypatch):
    """GIVEN Binance refusing the re-placed take-profit for good (-2021) WHEN 0.004 of a 0.010 LONG is sold
    THEN the stop-loss is still re-placed for 0.006, its old one cancelled (before: the SL for 0.010 stayed
    and ended REJECTED when it fired), the refusal recorded; WHEN the reconciler runs THEN nothing is sent
    again; WHEN the mark crosses the SL THEN the 0.006 is closed."""
    entry = _entry(invoke, connection.id, "0.010")
    refuse_for_good(sim_env, monkeypatch, _ids(entry, 1)[1])

    _reduce(invoke, connection.id, "0.004")

    stop, old_tp = _ids(entry, 1)[0], _ids(entry, 0)[1]
    assert _open(sim_env, connection.account.id) == {stop: D("0.006"), old_tp: D("0.010")}
    recorded = get_order_record(USER_A, entry["client_order_id"])
    assert (recorded.protective_refused_quantity, recorded.protective_resize) == ("0.006", None)
    sent = (_posts(sim_env), _posts(sim_env, "DELETE"))
    reconcile()
    assert (_posts(sim_env), _posts(sim_env, "DELETE")) == sent

    sim_env.set_mark_price("BTCUSDT", float(_algos(sim_env, connection.account.id)[stop].trigger_price - 10))

    assert _held(sim_env, connection.account.id) == 0


def test_a_one_way_position_flipped_on_binances_own_apps_has_its_entrys_stops_cancelled(
        sim_env, invoke, connection, reconcile):
    """GIVEN a 0.010 LONG with SL and TP WHEN 0.014 is sold on Binance's own apps (a SHORT of 0.004: the
    entry's position is gone) THEN the next reconciler run cancels its stops, re-places none (before: they
    were re-placed for 0.004); WHEN a new LONG of 0.004 is opened there and the mark crosses the old SL THEN
    that long, which no stop of ours was made for, stays open."""
    entry = _entry(invoke, connection.id, "0.010")
    trigger = _algos(sim_env, connection.account.id)[_ids(entry, 0)[0]].trigger_price
    sim_env.inject_trade(connection.account.id, "manual", "BTCUSDT", side="SELL", quantity="0.014")

    reconcile()

    assert _open(sim_env, connection.account.id) == {}
    assert _posts(sim_env) == 2  # the entry's own pair only
    sim_env.inject_trade(connection.account.id, "manual", "BTCUSDT", side="BUY", quantity="0.008")
    sim_env.set_mark_price("BTCUSDT", float(trigger - 10))
    assert _held(sim_env, connection.account.id) == D("0.004")
