"""Conditional orders, attached stop-loss/take-profit and quote-size orders against moto and the simulator.

Every test here also passes through ``no_conditional_type_on_the_order_endpoint`` (conftest): the
journal of the whole session shows no conditional type ever sent to /fapi/v1/order.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from klineo.binance import filters
from klineo.binance.endpoints import clear_exchange_info_cache
from klineo.services.orders import DEADLINE_MARGIN_S, PURGE_AFTER_MS, idempotent_client_order_id
from klineo.services.protective_siblings import protective_client_algo_id
from klineo.store.connections import (
    clear_disabled,
    disable_connection,
    get_connection,
    mark_deleting,
    set_futures_enabled,
    update_settings,
)
from klineo.store.order_claim import forget_connection
from klineo.store.order_history import list_unsettled
from klineo.store.orders import get_order_record

from local.binance_sim import futures as sim_futures
from local.binance_sim import market
from local.binance_sim.testing import SignedClient
from tests.helpers import load_event, status_after_the_fill, with_user
from tests.integration.api.conftest import USER_A, at_path, connection_event
from tests.integration.futures.helpers import (
    ORDER_PATH,
    age_record,
    body_of,
    hedge_long,
    new_key,
    order_body,
    order_event,
    raise_notional_limit,
    status_event,
)

ALGO_PATH = "/fapi/v1/algoOrder"
# The status set right after an entry's fill: read by its stops' rules (the container's exchangeInfo
# forgotten), or only told by the algo service's refusal (still cached as TRADING).
FORGOTTEN_OR_CACHED = pytest.mark.parametrize("forget", [True, False], ids=["status_read", "algo_refusal"])


def _mark(sim: Any) -> Decimal:
    return Decimal(str(sim.mark_price("BTCUSDT")))


def _price(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.1")), "f")


def _algo_posts(sim: Any) -> list[Any]:
    return [r for r in sim.journal if r.method == "POST" and r.path == ALGO_PATH]


def _position_amount(sim: Any, account_id: str) -> Decimal:
    account = sim.account(account_id)
    rows = sim.state.futures.position_risk(account, "BTCUSDT", time.time() * 1000, 3)
    return sum((Decimal(r["positionAmt"]) for r in rows), Decimal(0))


def _algo_orders(sim: Any, account_id: str) -> dict[str, Any]:
    state = sim.state.futures.state_for(sim.account(account_id), time.time() * 1000)
    return {a.client_algo_id: a for a in list(state.algo_orders.values())}


def _entry_with_protection(invoke: Any, connection_id: str, key: str, **protection: Any) -> dict[str, Any]:
    body = order_body(connection_id, type="MARKET", price=None, timeInForce=None, quantity="0.002",
                      **protection)
    return invoke("futures_order", order_event(body, key=key))


def _entry_whose_stop_loss_failed(sim: Any, invoke: Any, connection_id: str, key: str) -> dict[str, Any]:
    """An entry with a stop-loss and a take-profit placed under ``key``, its stop-loss refused transiently
    (one injected 503 on the algo service): the first answer, an error telling the entry stands."""
    sim.faults.add("http_503_unavailable", 1, method="POST", path=ALGO_PATH)
    first = _entry_with_protection(invoke, connection_id, key,
                                   stop_loss={"percent": "3"}, take_profit={"percent": "3"})
    assert first["statusCode"] >= 500, first["body"]
    return first


def _open_orders_event(connection_id: str) -> dict[str, Any]:
    event = connection_event("futures_open_orders", connection_id, USER_A, "/futures/open-orders")
    event["rawQueryString"], event["queryStringParameters"] = "symbol=BTCUSDT", {"symbol": "BTCUSDT"}
    return event


def _cancel_event(client_order_id: str) -> dict[str, Any]:
    event = at_path(load_event("futures_order_cancel"), f"/futures/order/{client_order_id}",
                    clientOrderId=client_order_id)
    return with_user(event, USER_A)


def test_stop_market_goes_to_the_algo_service_and_is_recorded_as_algo(sim_env, invoke, futures_connection):
    """GIVEN a STOP_MARKET BUY above the mark WHEN sent THEN one POST /fapi/v1/algoOrder, none to
    /fapi/v1/order, and the record is kind=algo with the clientAlgoId Binance holds."""
    trigger = _price(_mark(sim_env) * Decimal("1.1"))
    body = order_body(futures_connection.id, type="STOP_MARKET", price=None, timeInForce=None,
                      quantity="0.002", triggerPrice=trigger, workingType="MARK_PRICE")

    response = invoke("futures_order", order_event(body, key=new_key()))

    assert response["statusCode"] == 200, response["body"]
    answer = body_of(response)
    assert answer["kind"] == "algo" and answer["status"] == "NEW" and answer["type"] == "STOP_MARKET"
    assert Decimal(answer["trigger_price"]) == Decimal(trigger)
    assert len(_algo_posts(sim_env)) == 1
    assert not [r for r in sim_env.journal if r.path == ORDER_PATH and r.method == "POST"]
    held = _algo_orders(sim_env, futures_connection.account.id)[answer["client_order_id"]]
    assert held.working_type == "MARK_PRICE" and held.quantity == Decimal("0.002")
    record = get_order_record(USER_A, answer["client_order_id"])
    assert record.kind == "algo" and record.status == "NEW" and record.params["clientAlgoId"] == answer[
        "client_order_id"]


def test_conditional_order_sent_twice_with_one_key_is_placed_once(sim_env, invoke, futures_connection):
    """GIVEN a TAKE_PROFIT (priced) SELL WHEN sent twice with one key THEN one algo POST, same answer."""
    mark = _mark(sim_env)
    body = order_body(futures_connection.id, side="SELL", type="TAKE_PROFIT", quantity="0.002",
                      price=_price(mark * Decimal("1.12")), triggerPrice=_price(mark * Decimal("1.1")))
    key = new_key()

    first = invoke("futures_order", order_event(body, key=key))
    second = invoke("futures_order", order_event(body, key=key))

    assert first["statusCode"] == second["statusCode"] == 200, first["body"]
    assert body_of(first)["client_order_id"] == body_of(second)["client_order_id"]
    assert body_of(second)["source"] == "existing"
    assert len(_algo_posts(sim_env)) == 1


def test_trailing_stop_takes_callback_rate_and_activation_price(sim_env, invoke, futures_connection):
    """GIVEN a trailing stop SELL with callbackRate and activationPrice WHEN sent THEN Binance has both."""
    body = order_body(futures_connection.id, side="SELL", type="TRAILING_STOP_MARKET", price=None,
                      timeInForce=None, quantity="0.002", callbackRate="1.5",
                      activationPrice=_price(_mark(sim_env) * Decimal("1.05")))

    response = invoke("futures_order", order_event(body, key=new_key()))

    assert response["statusCode"] == 200, response["body"]
    held = _algo_orders(sim_env, futures_connection.account.id)[body_of(response)["client_order_id"]]
    assert held.callback_rate == Decimal("1.5") and held.activate_price is not None


def test_trailing_stop_activation_below_the_price_filter_is_refused_naming_it(sim_env, invoke,
                                                                             futures_connection):
    """GIVEN a trailing stop whose activationPrice is below BTCUSDT's minPrice WHEN sent THEN 400 naming
    activationPrice (not an order value under the minimum naming quantity), nothing sent."""
    body = order_body(futures_connection.id, type="TRAILING_STOP_MARKET", price=None, timeInForce=None,
                      quantity="0.010", callbackRate="1", activationPrice="100.5")

    response = invoke("futures_order", order_event(body, key=new_key()))

    assert response["statusCode"] == 400, response["body"]
    error = body_of(response)["error"]
    assert error["field"] == "activationPrice" and "100.5" not in error["message"]
    assert not [r for r in sim_env.journal if r.method == "POST"]


def test_conditional_order_without_trigger_is_refused_naming_the_field(sim_env, invoke, futures_connection):
    """GIVEN a STOP_MARKET without triggerPrice WHEN sent THEN 422 naming triggerPrice, nothing sent."""
    body = order_body(futures_connection.id, type="STOP_MARKET", price=None, timeInForce=None,
                      quantity="0.002")

    response = invoke("futures_order", order_event(body, key=new_key()))

    assert response["statusCode"] in (400, 422), response["body"]
    assert "triggerPrice" in response["body"]
    assert not [r for r in sim_env.journal if r.method == "POST"]


def test_percent_triggers_of_a_short_round_to_the_tick_toward_the_entry(sim_env, invoke, futures_connection):
    """GIVEN a MARKET SELL with stop_loss 2.37 % and take_profit 3.13 % WHEN it fills THEN the stop is on
    the tick at or below fill x 1.0237 and the take-profit at or above fill x 0.9687: neither looser."""
    body = order_body(futures_connection.id, side="SELL", type="MARKET", price=None, timeInForce=None,
                      quantity="0.002", stop_loss={"percent": "2.37"}, take_profit={"percent": "3.13"})

    response = invoke("futures_order", order_event(body, key=new_key()))

    assert response["statusCode"] == 200, response["body"]
    entry = body_of(response)
    fill = Decimal(entry["average_price"])
    orders = sorted(entry["protective_orders"], key=lambda p: p["role"])
    sl, tp = (Decimal(p["trigger_price"]) for p in orders)
    assert sl <= fill * Decimal("1.0237") < sl + Decimal("0.1")
    assert tp - Decimal("0.1") < fill * Decimal("0.9687") <= tp


def test_entry_sl_tp_then_take_profit_fills_and_stop_loss_is_cancelled(sim_env, invoke, futures_connection):
    """GIVEN a MARKET BUY with stop_loss (percent) and take_profit (price) WHEN the mark moves to the TP
    THEN both were placed reduce-only for the filled quantity, the TP fills, the position is 0, and
    the next open-orders read cancels the stop-loss."""
    mark = _mark(sim_env)
    take_profit = _price(mark * Decimal("1.02"))

    response = _entry_with_protection(invoke, futures_connection.id, new_key(),
                                      stop_loss={"percent": "2.5"}, take_profit={"price": take_profit})

    assert response["statusCode"] == 200, response["body"]
    entry = body_of(response)
    assert entry["status"] == "FILLED"
    sl, tp = sorted(entry["protective_orders"], key=lambda p: p["role"])
    assert sl["role"] == "stop_loss" and sl["type"] == "STOP_MARKET" and sl["status"] == "NEW"
    assert tp["role"] == "take_profit" and tp["type"] == "TAKE_PROFIT_MARKET"
    assert Decimal(tp["trigger_price"]) == Decimal(take_profit)
    fill = Decimal(entry["average_price"])
    sl_trigger = Decimal(sl["trigger_price"])
    # a percent from the fill rounds to the tick toward the entry: a long's stop never lower than asked
    assert sl_trigger - Decimal("0.1") < fill * Decimal("0.975") <= sl_trigger
    assert sl["client_algo_id"] == entry["client_order_id"][:33] + "-sl" and len(sl["client_algo_id"]) <= 36
    held = _algo_orders(sim_env, futures_connection.account.id)
    assert held[tp["client_algo_id"]].reduce_only and held[tp["client_algo_id"]].quantity == Decimal("0.002")
    record = get_order_record(USER_A, sl["client_algo_id"])
    assert record.role == "stop_loss" and record.parent_client_order_id == entry["client_order_id"]
    positions = invoke("futures_positions", connection_event("futures_positions", futures_connection.id,
                                                             USER_A, "/futures/positions"))
    (position,) = body_of(positions)["positions"]
    assert sorted(g["role"] for g in position["protective_orders"]) == ["stop_loss", "take_profit"]

    sim_env.set_mark_price("BTCUSDT", float(Decimal(take_profit) + 1))

    assert _position_amount(sim_env, futures_connection.account.id) == 0
    assert held[tp["client_algo_id"]].status in ("TRIGGERED", "FINISHED")
    # AND the next read of the open orders cancels the stop-loss, whose sibling fired
    read = invoke("futures_open_orders", _open_orders_event(futures_connection.id))
    assert read["statusCode"] == 200 and body_of(read)["orders"] == [], read["body"]
    assert held[sl["client_algo_id"]].status == "CANCELED"
    assert get_order_record(USER_A, sl["client_algo_id"]).status == "CANCELED"
    assert get_order_record(USER_A, tp["client_algo_id"]).status in ("TRIGGERED", "FINISHED")


def test_entry_retried_with_one_key_never_doubles_protective_orders(sim_env, invoke, futures_connection):
    """GIVEN an entry with SL+TP done WHEN the same key comes back (the order record is the idempotency
    record) THEN no new entry and no new algo order: still one of each."""
    key = new_key()
    first = _entry_with_protection(invoke, futures_connection.id, key,
                                   stop_loss={"percent": "3"}, take_profit={"percent": "3"})
    assert first["statusCode"] == 200, first["body"]

    again = _entry_with_protection(invoke, futures_connection.id, key,
                                   stop_loss={"percent": "3"}, take_profit={"percent": "3"})

    assert again["statusCode"] == 200, again["body"]
    assert body_of(again)["source"] == "existing"
    assert [p["status"] for p in body_of(again)["protective_orders"]] == ["NEW", "NEW"]
    assert len(_algo_posts(sim_env)) == 2
    assert len([r for r in sim_env.journal if r.method == "POST" and r.path == ORDER_PATH]) == 1


def test_protective_order_missing_after_a_failure_is_placed_by_the_retry(sim_env, invoke, futures_connection):
    """GIVEN the stop-loss refused transiently (injected 503 on the algo service) WHEN the entry is
    retried with its key THEN the missing stop-loss is placed, the take-profit is not doubled."""
    key = new_key()
    first = _entry_whose_stop_loss_failed(sim_env, invoke, futures_connection.id, key)
    assert "stop_loss" in body_of(first)["error"]["message"]
    assert len(_algo_orders(sim_env, futures_connection.account.id)) == 1

    again = _entry_with_protection(invoke, futures_connection.id, key,
                                   stop_loss={"percent": "3"}, take_profit={"percent": "3"})

    assert again["statusCode"] == 200, again["body"]
    assert sorted(p["status"] for p in body_of(again)["protective_orders"]) == ["NEW", "NEW"]
    assert len(_algo_orders(sim_env, futures_connection.account.id)) == 2
    assert len([r for r in sim_env.journal if r.method == "POST" and r.path == ORDER_PATH]) == 1


@pytest.mark.parametrize(
    ("close_gate", "gate"),
    [
        (lambda c: update_settings(USER_A, c, {"kill_switch": True}), "connection_kill_switch"),
        (lambda c: set_futures_enabled(USER_A, c, False), "futures_disabled"),
    ],
    ids=["connection_kill_switch", "futures_disabled"],
)
def test_a_missing_stop_is_placed_by_the_retry_past_a_gate_of_new_exposure_only(
    sim_env, invoke, futures_connection, close_gate, gate
):
    """GIVEN an entry whose stop-loss failed transiently WHEN a gate of new exposure only closes (the
    container knows it: a new order was refused by it) and the entry's key comes again THEN the missing
    stop-loss, a reducing order, is placed past it as under the user's switch, nothing else sent."""
    key = new_key()
    _entry_whose_stop_loss_failed(sim_env, invoke, futures_connection.id, key)
    close_gate(futures_connection.id)
    refused = _entry_with_protection(invoke, futures_connection.id, new_key())
    assert (refused["statusCode"], body_of(refused)["error"]["field"]) == (409, gate)

    again = _entry_with_protection(invoke, futures_connection.id, key,
                                   stop_loss={"percent": "3"}, take_profit={"percent": "3"})

    assert again["statusCode"] == 200, again["body"]
    assert body_of(again)["source"] == "existing"
    assert sorted(p["status"] for p in body_of(again)["protective_orders"] or []) == ["NEW", "NEW"]
    assert len(_algo_orders(sim_env, futures_connection.account.id)) == 2
    assert len([r for r in sim_env.journal if r.method == "POST" and r.path == ORDER_PATH]) == 1


def test_a_retry_on_a_connection_disabled_since_sends_no_missing_stop(sim_env, invoke, futures_connection):
    """GIVEN an entry whose stop-loss failed transiently, on a warm container WHEN the connection is
    disabled (its key kept failing) and the entry's key comes again THEN the gate refuses the missing
    stop-loss naming connection_disabled (every order), as it does a delete, nothing is sent, and the message
    says it is placed once the connection is enabled again (not once Binance accepts it)."""
    key = new_key()
    _entry_whose_stop_loss_failed(sim_env, invoke, futures_connection.id, key)
    posts = len(_algo_posts(sim_env))
    disable_connection(USER_A, futures_connection.id, "test")

    again = _entry_with_protection(invoke, futures_connection.id, key,
                                   stop_loss={"percent": "3"}, take_profit={"percent": "3"})

    assert len(_algo_posts(sim_env)) == posts
    assert again["statusCode"] == 409, again["body"]
    assert body_of(again)["error"]["field"] == "connection_disabled"
    message = body_of(again)["error"]["message"]
    assert message.endswith("no stop_loss; it is placed once the connection is enabled again."), message
    assert len(_algo_orders(sim_env, futures_connection.account.id)) == 1


# The gates that close a connection for every order, reducing ones included (``klineo.services.risk``).
CLOSED_FOR_EVERY_ORDER = pytest.mark.parametrize(
    ("close_gate", "gate"),
    [
        (lambda c: disable_connection(USER_A, c, "test"), "connection_disabled"),
        (lambda c: mark_deleting(USER_A, c), "connection_deleting"),
    ],
    ids=["connection_disabled", "connection_deleting"],
)


def _replayed_by_each_container(invoke: Any, connection_id: str, key: str) -> list[tuple[int, Any]]:
    """The entry's key sent again by a container that cached the connection before its gate closed, then by
    the same container now knowing the gate, then by a cold one (no connection cached): status and body."""
    answers = []
    for forget in (False, False, True):
        if forget:
            forget_connection()
        response = _entry_with_protection(invoke, connection_id, key,
                                          stop_loss={"percent": "3"}, take_profit={"percent": "3"})
        answers.append((response["statusCode"], body_of(response)))
    return answers


@CLOSED_FOR_EVERY_ORDER
def test_a_replay_whose_stop_is_missing_on_a_connection_closed_since_means_one_thing_in_every_container(
    sim_env, invoke, futures_connection, close_gate, gate
):
    """GIVEN an entry whose stop-loss failed transiently WHEN the connection is disabled or being deleted and
    the key comes again to a warm container (stale cache), to it again, and to a cold one THEN each answers
    the same 409 naming the gate, whose message says the entry stands and its stop-loss was not placed."""
    key = new_key()
    _entry_whose_stop_loss_failed(sim_env, invoke, futures_connection.id, key)
    posts = len(_algo_posts(sim_env))
    close_gate(futures_connection.id)

    answers = _replayed_by_each_container(invoke, futures_connection.id, key)

    entry = idempotent_client_order_id(USER_A, key)
    for status, body in answers:
        assert (status, body["error"]["field"]) == (409, gate), body
        assert f"The entry {entry} is FILLED, but its stop_loss was not placed" in body["error"]["message"]
    assert len({body["error"]["message"] for _, body in answers}) == 1
    assert len(_algo_posts(sim_env)) == posts
    assert len([r for r in sim_env.journal if r.method == "POST" and r.path == ORDER_PATH]) == 1


@CLOSED_FOR_EVERY_ORDER
def test_a_replay_of_a_protected_entry_on_a_connection_closed_since_answers_the_same_in_every_container(
    sim_env, invoke, futures_connection, close_gate, gate
):
    """GIVEN an entry placed with both stops WHEN the connection is disabled or being deleted and the key
    comes again to a warm container (stale cache), to it again, and to a cold one THEN each answers the first
    answer, 200 `existing` with both stops listed, and nothing is sent."""
    key = new_key()
    first = _entry_with_protection(invoke, futures_connection.id, key,
                                   stop_loss={"percent": "3"}, take_profit={"percent": "3"})
    assert first["statusCode"] == 200, first["body"]
    posts = len(_algo_posts(sim_env))
    close_gate(futures_connection.id)

    answers = _replayed_by_each_container(invoke, futures_connection.id, key)

    placed = body_of(first)
    for status, body in answers:
        assert (status, body["source"], body["order_id"]) == (200, "existing", placed["order_id"]), body
        assert body["protective_orders"] == placed["protective_orders"], gate
    assert len(_algo_posts(sim_env)) == posts
    assert len([r for r in sim_env.journal if r.method == "POST" and r.path == ORDER_PATH]) == 1


def test_a_replay_of_an_entry_whose_stop_was_lost_past_binances_retention_places_it_again_as_a_read_does(
    sim_env, invoke, futures_connection
):
    """GIVEN a MARKET entry whose stop-loss POST timed out unsent and whose lookups failed until its record
    was older than Binance's retention WHEN its key comes again (to a warm container, then a cold one) THEN
    the first replay, which resumes the stop and finds it lost (UNKNOWN_PURGED), places it again under
    generation 1's id while the position stands and answers that one, as a status read does (before: the
    replay answered it UNKNOWN_PURGED, not standing, and placed nothing); the second replay and a status read
    send nothing."""
    key = new_key()
    sim_env.faults.add("timeout_1007", 1, method="POST", path=ALGO_PATH, execute=False)
    first = _entry_with_protection(invoke, futures_connection.id, key, stop_loss={"percent": "3"})
    assert first["statusCode"] != 200, first["body"]
    entry = idempotent_client_order_id(USER_A, key)
    stop_id, again_id = (protective_client_algo_id(entry, "stop_loss", g) for g in (0, 1))
    age_record(stop_id, PURGE_AFTER_MS + 60_000)

    replays = []
    for forget in (False, True):
        if forget:
            forget_connection()
        replays.append(_entry_with_protection(invoke, futures_connection.id, key, stop_loss={"percent": "3"}))
    invoke("futures_order_status", status_event(entry))

    for replay in replays:
        assert (replay["statusCode"], body_of(replay)["source"]) == (200, "existing"), replay["body"]
        assert [(p["role"], p["status"], p["client_algo_id"]) for p in body_of(replay)["protective_orders"]
                ] == [("stop_loss", "NEW", again_id)]
    assert get_order_record(USER_A, stop_id).status == "UNKNOWN_PURGED"
    assert list(_algo_orders(sim_env, futures_connection.account.id)) == [again_id]
    assert len(_algo_posts(sim_env)) == 2


def _signed_by(sim: Any, api_key: str, since: int) -> list[Any]:
    """The Binance requests made with ``api_key`` after the first ``since`` of the journal."""
    return [r for r in sim.journal[since:] if r.api_key == api_key]


@pytest.mark.parametrize("stop_loss_failed", [False, True], ids=["both_stops_placed", "stop_loss_failed"])
def test_a_replay_of_a_protected_entry_on_a_connection_deleted_since_answers_the_same_in_every_container(
    sim_env, invoke, futures_connection, stop_loss_failed
):
    """GIVEN an entry placed with its stops (or its stop-loss failed transiently) WHEN the connection is
    deleted and the key comes again to a warm container (the deleted item still cached), to it again, and
    to a cold one THEN each answers the same, and nothing is sent to Binance with the deleted key."""
    key = new_key()
    if stop_loss_failed:
        _entry_whose_stop_loss_failed(sim_env, invoke, futures_connection.id, key)
    else:
        first = _entry_with_protection(invoke, futures_connection.id, key,
                                       stop_loss={"percent": "3"}, take_profit={"percent": "3"})
        assert first["statusCode"] == 200, first["body"]
    delete = connection_event("connection_delete", futures_connection.id, USER_A)
    assert invoke("connection_delete", delete)["statusCode"] == 200
    since = len(sim_env.journal)

    answers = _replayed_by_each_container(invoke, futures_connection.id, key)

    assert answers[0] == answers[1] == answers[2], answers
    assert answers[0][0] == 200 and answers[0][1]["source"] == "existing", answers[0]
    assert _signed_by(sim_env, futures_connection.account.api_key, since) == []


def test_a_stop_kept_off_by_a_refusal_a_retry_cannot_lift_is_answered_not_retryable_and_still_followed(
    sim_env, invoke, futures_connection, reconcile, monkeypatch
):
    """GIVEN an entry whose stop-loss failed transiently (503) WHEN its retry finds Binance refusing this
    server's location (HTTP 451, reading the symbol's rules) THEN the answer says the stop-loss was not
    placed and why, not retryable and no "repeat the request"; the reconciler keeps the entry, and places
    the stop-loss once Binance answers again."""
    from local.binance_sim import endpoints as sim_endpoints
    from local.binance_sim.errors import ApiError

    key = new_key()
    sim_env.faults.add("http_503_unavailable", 1, method="POST", path=ALGO_PATH)
    entry = body_of(_entry_with_protection(invoke, futures_connection.id, key, stop_loss={"percent": "3"}))
    info = sim_endpoints.futures_exchange_info

    def restricted(*_args: Any) -> Any:
        raise ApiError(451, 0, "Service unavailable from a restricted location.")

    monkeypatch.setattr(sim_endpoints, "futures_exchange_info", restricted)
    clear_exchange_info_cache()
    again = _entry_with_protection(invoke, futures_connection.id, key, stop_loss={"percent": "3"})
    reconcile()
    kept = _unsettled()
    monkeypatch.setattr(sim_endpoints, "futures_exchange_info", info)
    clear_exchange_info_cache()
    reconcile()

    error = body_of(again)["error"]
    assert (error["category"], error["retryable"]) == ("restricted", False), again["body"]
    assert "was not placed" in error["message"] and "Repeat the request" not in error["message"]
    assert error["message"].endswith("no stop_loss; it is placed once Binance accepts it."), error["message"]
    assert kept == [entry["error"]["message"].split()[2]]  # the entry's clientOrderId, still followed
    stop_id = protective_client_algo_id(kept[0], "stop_loss")
    assert list(_algo_orders(sim_env, futures_connection.account.id)) == [stop_id]


def test_a_retry_that_loses_the_claim_of_a_refused_stop_leaves_the_winners_record_alone(
        sim_env, invoke, futures_connection, monkeypatch):
    """GIVEN a stop-loss refused transiently (503, recorded REJECTED retryable) WHEN the entry is retried
    while another attempt claims the stop's second send first THEN the retry sends nothing, answers a
    retryable conflict, and the record stays as the winning attempt's claim left it (PENDING)."""
    from klineo.services import protective

    key = new_key()
    sim_env.faults.add("http_503_unavailable", 1, method="POST", path=ALGO_PATH)
    first = body_of(_entry_with_protection(invoke, futures_connection.id, key, stop_loss={"percent": "3"}))
    stop_id = protective_client_algo_id(first["error"]["message"].split()[2], "stop_loss")
    assert get_order_record(USER_A, stop_id).status == "REJECTED"
    claim = protective.claim_protective_resend

    def claimed_first_by_another(existing: Any, attempt_ms: int, guard: Any, send_by_ms: Any = None) -> Any:
        assert claim(existing, attempt_ms - 1, guard, send_by_ms) is None  # the other attempt wins the claim
        return claim(existing, attempt_ms, guard, send_by_ms)

    monkeypatch.setattr(protective, "claim_protective_resend", claimed_first_by_another)

    again = _entry_with_protection(invoke, futures_connection.id, key, stop_loss={"percent": "3"})

    error = body_of(again)["error"]
    assert (error["category"], error["retryable"]) == ("conflict", True), again["body"]
    assert len(_algo_posts(sim_env)) == 1
    assert get_order_record(USER_A, stop_id).status == "PENDING"


# A stop-loss Binance could not take, or whose answer was lost: (the faults on the algo service, the error's
# category, the sentence after the entry's id: what happened, then the one thing the caller is to send).
UNPLACED_STOPS = {
    "unavailable": ([("http_503_unavailable", {"method": "POST", "count": 1})], "upstream_unavailable",
                    " is FILLED, but its stop_loss could not be placed yet: Binance is temporarily "
                    "unavailable. Repeat the request with the same Idempotency-Key to place it."),
    "unknown_outcome": ([("timeout_1007", {"method": "POST", "execute": False, "count": 1}),
                         ("http_503_unavailable", {"method": "GET", "count": 50})], "unknown_outcome",
                        " is FILLED, but Binance did not confirm its stop_loss: Binance did not answer "
                        "the conditional order and has not confirmed it since; the conditional order's "
                        "outcome is unknown. Repeat the request with the same Idempotency-Key: it is looked "
                        "up first and placed only if Binance does not have it."),
}


@pytest.mark.parametrize("case", UNPLACED_STOPS)
def test_a_stop_not_placed_tells_the_api_caller_the_one_thing_to_send(sim_env, invoke, futures_connection,
                                                                     case):
    """GIVEN a MARKET entry with a stop-loss WHEN Binance is unavailable for the stop (503), or its answer is
    lost and the lookups fail THEN the error says what happened and once what to send (the same
    Idempotency-Key), never a second, other advice (the reason's own "please retry", "look it up"), and never
    "could not be placed" for a stop that may stand."""
    faults, category, sentence = UNPLACED_STOPS[case]
    for name, options in faults:
        sim_env.faults.add(name, path=ALGO_PATH, **options)

    answer = _entry_with_protection(invoke, futures_connection.id, new_key(), stop_loss={"percent": "3"})

    error = body_of(answer)["error"]
    entry = error["message"].split()[2]
    assert (error["category"], error["retryable"]) == (category, True), answer["body"]
    assert error["message"] == f"The entry {entry}{sentence}"


def test_a_stop_whose_fill_price_is_unknown_tells_the_api_caller_once_what_to_send(sim_env, invoke,
                                                                                   futures_connection,
                                                                                   monkeypatch):
    """GIVEN a MARKET entry with a 3 % stop-loss that Binance answers, and answers again when looked up,
    without its average price (avgPrice 0) WHEN it fills THEN the error says the fill price is not known
    and once what to send (the same Idempotency-Key): before, the reason itself said to repeat the request,
    then the advice said it again."""
    as_dict = sim_futures.FuturesOrder.as_dict
    monkeypatch.setattr(sim_futures.FuturesOrder, "as_dict",
                        lambda order, with_time=True: {**as_dict(order, with_time), "avgPrice": "0.00000"})

    answer = _entry_with_protection(invoke, futures_connection.id, new_key(), stop_loss={"percent": "3"})

    error = body_of(answer)["error"]
    entry = error["message"].split()[2]
    assert (error["category"], error["retryable"]) == ("upstream_unavailable", True), answer["body"]
    assert error["message"] == (f"The entry {entry} is FILLED, but its stop_loss could not be placed yet: "
                                "The entry's fill price is not known yet. Repeat the request with the same "
                                "Idempotency-Key to place it.")


@FORGOTTEN_OR_CACHED
def test_stops_kept_off_by_a_halt_after_the_fill_are_answered_retryable_and_placed_by_the_retry(
        sim_env, invoke, futures_connection, monkeypatch, forget):
    """GIVEN a MARKET entry whose symbol Binance halts right after the fill (its stops' rules read the halt;
    or, the container's exchangeInfo still saying TRADING, the algo service refuses them, -4140) WHEN answered
    THEN the answer says the stops are not placed yet and may be retried with the key (not a refusal of the
    placed entry; the halt's sentence ends before the advice); once trading again, the retry places both and
    sends no second entry."""
    key = new_key()
    undo = status_after_the_fill(sim_env, monkeypatch, "TRADING_HALT", forget=forget)
    first = _entry_with_protection(invoke, futures_connection.id, key,
                                   stop_loss={"percent": "3"}, take_profit={"percent": "3"})
    undo()
    error = body_of(first)["error"]
    assert (error["retryable"], error["field"]) == (True, "symbol"), first["body"]
    assert "stop_loss could not be placed yet" in error["message"]
    assert ". Repeat the request with the same Idempotency-Key" in error["message"]
    held = _algo_orders(sim_env, futures_connection.account.id)
    assert (bool(_algo_posts(sim_env)), held) == (not forget, {})  # sent only while cached TRADING
    sim_env.set_symbol_status("BTCUSDT", "TRADING")
    monkeypatch.setattr(filters, "STATUS_MAX_AGE_S", 0.0)  # the halt read is older than the limit

    again = _entry_with_protection(invoke, futures_connection.id, key,
                                   stop_loss={"percent": "3"}, take_profit={"percent": "3"})

    assert again["statusCode"] == 200, again["body"]
    assert sorted(p["status"] for p in body_of(again)["protective_orders"]) == ["NEW", "NEW"]
    assert len([r for r in sim_env.journal if r.method == "POST" and r.path == ORDER_PATH]) == 1


@pytest.mark.parametrize("status", ["TRADING_HALT", "SETTLING"])
def test_the_algo_services_refusal_of_both_stops_for_the_status_reads_exchange_info_once(
        sim_env, invoke, futures_connection, monkeypatch, status):
    """GIVEN a MARKET entry with SL+TP whose symbol Binance halts (or ends) right after the fill, the
    container's exchangeInfo still saying TRADING WHEN the algo service refuses the first stop (-4140) THEN
    exchangeInfo is read for the entry's rules and once again for that refusal, not again for the other
    stop, which is not sent (the status read refuses it the same): one POST to the algo service."""
    def reads() -> int:
        return len([r for r in sim_env.journal if r.path == "/fapi/v1/exchangeInfo"])

    status_after_the_fill(sim_env, monkeypatch, status, forget=False)
    before = reads()

    answer = _entry_with_protection(invoke, futures_connection.id, new_key(),
                                    stop_loss={"percent": "3"}, take_profit={"percent": "3"})

    assert body_of(answer)["error"]["field"] == "symbol", answer["body"]
    assert (reads(), len(_algo_posts(sim_env))) == (before + 2, 1)


@FORGOTTEN_OR_CACHED
def test_stops_kept_off_by_a_contract_ended_after_the_fill_are_answered_not_retryable(
        sim_env, invoke, futures_connection, monkeypatch, forget):
    """GIVEN a MARKET entry whose symbol's contract Binance ends right after the fill (SETTLING: it never
    trades again; read by its stops' rules, or, the container's exchangeInfo still saying TRADING, told by the
    algo service's refusal, -4140) WHEN answered THEN the answer names the placed entry and the stop not
    placed, field symbol, not retryable (no retry can place it), and nothing is held by the algo service."""
    status_after_the_fill(sim_env, monkeypatch, "SETTLING", forget=forget)
    first = _entry_with_protection(invoke, futures_connection.id, new_key(),
                                   stop_loss={"percent": "3"}, take_profit={"percent": "3"})

    error = body_of(first)["error"]
    assert (error["retryable"], error["field"]) == (False, "symbol"), first["body"]
    assert "stop_loss was not placed" in error["message"] and "SETTLING" in error["message"]
    held = _algo_orders(sim_env, futures_connection.account.id)
    assert (bool(_algo_posts(sim_env)), held) == (not forget, {})  # sent only while cached TRADING


def test_resting_limit_entry_answers_waiting_for_fill(sim_env, invoke, futures_connection):
    """GIVEN a LIMIT BUY far below the mark with a stop-loss WHEN sent THEN it rests, the stop-loss
    waits for the fill and nothing goes to the algo service."""
    body = order_body(futures_connection.id, stop_loss={"price": "19000"})

    response = invoke("futures_order", order_event(body, key=new_key()))

    assert response["statusCode"] == 200, response["body"]
    (waiting,) = body_of(response)["protective_orders"]
    assert waiting["status"] == "WAITING_FOR_FILL" and _algo_posts(sim_env) == []


def test_stop_loss_price_on_the_wrong_side_is_refused_before_the_entry(sim_env, invoke, futures_connection):
    """GIVEN a BUY entry with a stop_loss price above the mark WHEN sent THEN 400 naming stop_loss.price
    and no order at all is sent."""
    body = order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None,
                      quantity="0.002", stop_loss={"price": _price(_mark(sim_env) * Decimal("1.1"))})

    response = invoke("futures_order", order_event(body, key=new_key()))

    assert response["statusCode"] == 400, response["body"]
    assert body_of(response)["error"]["field"] == "stop_loss.price"
    assert not [r for r in sim_env.journal if r.method == "POST"]


def test_stop_loss_on_the_wrong_side_of_a_limit_entry_does_not_repeat_its_price(
        sim_env, invoke, futures_connection):
    """GIVEN a LIMIT BUY at a price the caller typed with a stop_loss above it WHEN sent THEN 400 naming
    stop_loss.price, whose message does not repeat the caller's own limit price; nothing is sent."""
    body = order_body(futures_connection.id, price="20123.4", stop_loss={"price": "25000"})

    response = invoke("futures_order", order_event(body, key=new_key()))

    assert response["statusCode"] == 400, response["body"]
    assert body_of(response)["error"]["field"] == "stop_loss.price"
    assert "20123.4" not in response["body"], response["body"]
    assert not [r for r in sim_env.journal if r.method == "POST"]


def test_cancel_of_an_algo_order_is_exactly_once_and_final(sim_env, invoke, futures_connection):
    """GIVEN an open STOP_MARKET WHEN cancelled twice THEN one DELETE /fapi/v1/algoOrder, CANCELED twice."""
    body = order_body(futures_connection.id, type="STOP_MARKET", price=None, timeInForce=None,
                      quantity="0.002", triggerPrice=_price(_mark(sim_env) * Decimal("1.1")))
    placed = body_of(invoke("futures_order", order_event(body, key=new_key())))

    first = invoke("futures_order_cancel", _cancel_event(placed["client_order_id"]))
    second = invoke("futures_order_cancel", _cancel_event(placed["client_order_id"]))

    assert first["statusCode"] == second["statusCode"] == 200, first["body"]
    assert body_of(first)["status"] == body_of(second)["status"] == "CANCELED"
    assert len([r for r in sim_env.journal if r.method == "DELETE" and r.path == ALGO_PATH]) == 1
    assert get_order_record(USER_A, placed["client_order_id"]).status == "CANCELED"


def test_cancel_of_a_fired_protective_order_is_409(sim_env, invoke, futures_connection):
    """GIVEN an entry whose take-profit fired WHEN that take-profit is cancelled THEN 409 with its state."""
    take_profit = _price(_mark(sim_env) * Decimal("1.02"))
    entry = body_of(_entry_with_protection(invoke, futures_connection.id, new_key(),
                                           take_profit={"price": take_profit}))
    (tp,) = entry["protective_orders"]
    sim_env.set_mark_price("BTCUSDT", float(Decimal(take_profit) + 1))

    response = invoke("futures_order_cancel", _cancel_event(tp["client_algo_id"]))

    assert response["statusCode"] == 409, response["body"]
    assert "FINISHED" in body_of(response)["error"]["message"] or "TRIGGERED" in body_of(response)["error"][
        "message"]


def test_close_cancels_the_positions_protective_orders(sim_env, invoke, futures_connection):
    """GIVEN an entry with SL+TP WHEN the position is closed THEN both algo orders are CANCELED."""
    entry = body_of(_entry_with_protection(invoke, futures_connection.id, new_key(),
                                           stop_loss={"percent": "3"}, take_profit={"percent": "3"}))
    event = at_path(load_event("futures_position_close"),
                    f"/exchange-connections/{futures_connection.id}/futures/positions/BTCUSDT/close",
                    id=futures_connection.id, symbol="BTCUSDT")
    event = with_user(event, USER_A)
    event["headers"]["idempotency-key"] = new_key()

    response = invoke("futures_position_close", event)

    assert response["statusCode"] == 200, response["body"]
    held = _algo_orders(sim_env, futures_connection.account.id)
    assert {held[p["client_algo_id"]].status for p in entry["protective_orders"]} == {"CANCELED"}
    for protective in entry["protective_orders"]:
        assert get_order_record(USER_A, protective["client_algo_id"]).status == "CANCELED"


def test_quote_quantity_is_converted_at_the_mark_and_rounded_down(sim_env, invoke, futures_connection):
    """GIVEN quote_quantity 500 USDT on a MARKET BUY WHEN sent THEN quantity = floor(500 / mark, step)."""
    raise_notional_limit(futures_connection.id)
    mark = _mark(sim_env)
    body = order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None, quantity=None,
                      quote_quantity="500")

    response = invoke("futures_order", order_event(body, key=new_key()))

    assert response["statusCode"] == 200, response["body"]
    quantity = Decimal(body_of(response)["quantity"])
    assert quantity == (Decimal(500) / mark).quantize(Decimal("0.001"), rounding="ROUND_FLOOR")


def test_quote_quantity_below_min_notional_is_refused_naming_it(sim_env, invoke, futures_connection):
    """GIVEN quote_quantity 5 USDT (below the minimum) WHEN sent THEN 400 naming quote_quantity, none sent."""
    body = order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None, quantity=None,
                      quote_quantity="5")

    response = invoke("futures_order", order_event(body, key=new_key()))

    assert response["statusCode"] == 400, response["body"]
    assert body_of(response)["error"]["field"] == "quote_quantity"
    assert not [r for r in sim_env.journal if r.method == "POST"]


def test_the_journal_check_sees_a_conditional_type_sent_to_the_order_endpoint(sim_env, futures_connection):
    """GIVEN a STOP_MARKET sent straight to /fapi/v1/order (not by us) WHEN the journal is read THEN it
    shows -4120 there: the session-wide check in conftest can fail (the journal is then cleared)."""
    account = sim_env.account(futures_connection.account.id)
    client = SignedClient(sim_env.base_url_for(account), account)

    answer = client.signed("POST", ORDER_PATH, {"symbol": "BTCUSDT", "side": "BUY", "type": "STOP_MARKET",
                                                "quantity": "0.002", "stopPrice": "90000"})

    assert answer.json()["code"] == -4120
    assert [r.code for r in sim_env.journal if r.path == ORDER_PATH] == [-4120]
    sim_env.clear_journal()


def test_resting_limit_entry_is_armed_on_the_status_read_after_it_fills(sim_env, invoke, futures_connection):
    """GIVEN a LIMIT BUY resting with a stop-loss WHEN the mark falls through its price and the entry's
    status is read THEN it is FILLED and its stop-loss is placed then, once (a second read adds none)."""
    mark = _mark(sim_env)
    limit = _price(mark * Decimal("0.99"))
    body = order_body(futures_connection.id, quantity="0.002", price=limit, stop_loss={"percent": "2"})
    entry = body_of(invoke("futures_order", order_event(body, key=new_key())))
    assert entry["status"] == "NEW" and _algo_posts(sim_env) == []
    sim_env.set_mark_price("BTCUSDT", float(Decimal(limit) - 5))

    first = invoke("futures_order_status", status_event(entry["client_order_id"]))
    second = invoke("futures_order_status", status_event(entry["client_order_id"]))

    assert first["statusCode"] == 200, first["body"]
    assert body_of(first)["status"] == "FILLED"
    (stop_loss,) = body_of(first)["protective_orders"]
    assert stop_loss["status"] == "NEW" and stop_loss["role"] == "stop_loss"
    assert body_of(second)["protective_orders"] == [stop_loss]
    assert len(_algo_posts(sim_env)) == 1


def test_a_stop_armed_by_a_status_read_says_it_is_signed_by_the_reads_deadline(
        sim_env, invoke, futures_connection):
    """GIVEN a LIMIT entry with a stop-loss, filled WHEN its status is read (20 s left) THEN the stop it
    places says its POST was signed by the read's deadline (``send_by_ms``, 2 s before the invocation's
    end): a lost one is sent again recvWindow + margin after that, not the longest Timeout after its stamp."""
    entry = _resting_entry_filled(sim_env, invoke, futures_connection.id)
    started_ms = time.time() * 1000

    read = invoke("futures_order_status", status_event(entry["client_order_id"]))

    assert read["statusCode"] == 200, read["body"]
    stop = get_order_record(USER_A, protective_client_algo_id(entry["client_order_id"], "stop_loss"))
    assert stop.status == "NEW"
    assert started_ms < stop.send_by_ms <= time.time() * 1000 + 20_000 - DEADLINE_MARGIN_S * 1000


def _unsettled() -> list[str]:
    """The clientOrderIds the reconciler still has to settle (its unsettled index)."""
    return [record.client_order_id for record in list_unsettled()]


def _resting_entry_filled(sim: Any, invoke: Any, connection_id: str, **protection: Any) -> dict[str, Any]:
    """A LIMIT BUY with a 2 % stop-loss (or the stops ``protection`` names), resting, then filled at Binance
    (the mark falls through it)."""
    limit = _price(_mark(sim) * Decimal("0.99"))
    protection = protection or {"stop_loss": {"percent": "2"}}
    body = order_body(connection_id, quantity="0.002", price=limit, **protection)
    entry = body_of(invoke("futures_order", order_event(body, key=new_key())))
    assert entry["status"] == "NEW" and _algo_posts(sim) == []
    sim.set_mark_price("BTCUSDT", float(Decimal(limit) - 5))
    return entry


def test_reconciler_places_the_stop_loss_of_a_limit_entry_nobody_read(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a LIMIT entry with a stop-loss that filled while nobody read it WHEN the reconciler runs
    (twice) THEN it places the stop-loss once, for the filled quantity, and settles the entry."""
    entry = _resting_entry_filled(sim_env, invoke, futures_connection.id)

    reconcile()
    reconcile()

    stop_id = protective_client_algo_id(entry["client_order_id"], "stop_loss")
    placed = _algo_orders(sim_env, futures_connection.account.id)
    assert list(placed) == [stop_id] and placed[stop_id].quantity == Decimal("0.002")
    assert len(_algo_posts(sim_env)) == 1
    assert get_order_record(USER_A, entry["client_order_id"]).status == "FILLED"
    assert _unsettled() == [stop_id]  # the entry is settled; its open stop-loss is followed


def test_order_history_read_places_the_stop_loss_of_a_filled_limit_entry(sim_env, invoke, futures_connection):
    """GIVEN a LIMIT entry with a stop-loss that filled while nobody read it WHEN the caller reads the order
    history THEN the read places the stop-loss (under GET /futures/orders' own IAM policy) and lists it."""
    entry = _resting_entry_filled(sim_env, invoke, futures_connection.id)

    event = with_user(load_event("futures_orders"), USER_A)
    event["queryStringParameters"], event["rawQueryString"] = None, ""
    response = invoke("futures_orders", event)

    assert response["statusCode"] == 200, response["body"]
    stop_id = protective_client_algo_id(entry["client_order_id"], "stop_loss")
    assert list(_algo_orders(sim_env, futures_connection.account.id)) == [stop_id]
    assert get_order_record(USER_A, stop_id).status == "NEW"


def test_a_stop_armed_by_an_order_history_read_says_it_is_signed_by_the_reads_deadline(
        sim_env, invoke, futures_connection):
    """GIVEN a LIMIT entry with a stop-loss that filled while nobody read it WHEN the order history is read
    (20 s left) THEN the stop it places says its POST was signed by the read's deadline (``send_by_ms``): a
    lost one is sent again recvWindow + margin after that, not the longest Timeout after its stamp."""
    entry = _resting_entry_filled(sim_env, invoke, futures_connection.id)
    event = with_user(load_event("futures_orders"), USER_A)
    event["queryStringParameters"], event["rawQueryString"] = None, ""
    started_ms = time.time() * 1000

    assert invoke("futures_orders", event)["statusCode"] == 200

    stop = get_order_record(USER_A, protective_client_algo_id(entry["client_order_id"], "stop_loss"))
    assert stop.status == "NEW"
    assert started_ms < stop.send_by_ms <= time.time() * 1000 + 20_000 - DEADLINE_MARGIN_S * 1000


def test_reconciler_keeps_an_entry_whose_stop_loss_failed_and_places_it_next_run(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a filled LIMIT entry WHEN the reconciler's stop-loss POST fails transiently (503) THEN the
    entry stays unsettled (FILLED recorded), and the next run places the stop-loss and settles it."""
    entry = _resting_entry_filled(sim_env, invoke, futures_connection.id)
    sim_env.faults.add("http_503_unavailable", 1, method="POST", path=ALGO_PATH)

    reconcile()
    after_failure = get_order_record(USER_A, entry["client_order_id"]).status, _unsettled()
    reconcile()

    assert after_failure == ("FILLED", [entry["client_order_id"]])
    stop_id = protective_client_algo_id(entry["client_order_id"], "stop_loss")
    assert list(_algo_orders(sim_env, futures_connection.account.id)) == [stop_id]
    assert _unsettled() == [stop_id]  # the entry settled; its new stop-loss waits for the next run


def test_a_stop_resent_after_a_lost_attempt_and_refused_for_good_is_recorded_and_not_sent_again(
    sim_env, invoke, futures_connection, reconcile, monkeypatch
):
    """GIVEN a filled LIMIT entry whose stop-loss POST timed out unsent (recorded UNKNOWN), then the mark
    fell through its trigger WHEN the reconciler sends it again past recvWindow and Binance refuses it for
    good (-2021) THEN the record is REJECTED with that refusal and the entry settles; the next run and a
    status read send nothing again."""
    from klineo.services import orders as regular_orders

    entry = _resting_entry_filled(sim_env, invoke, futures_connection.id)
    stop_id = protective_client_algo_id(entry["client_order_id"], "stop_loss")
    sim_env.faults.add("timeout_1007", 1, method="POST", path=ALGO_PATH, execute=False)
    reconcile()
    assert get_order_record(USER_A, stop_id).status == "UNKNOWN"
    sim_env.set_mark_price("BTCUSDT", float(Decimal(entry["price"]) * Decimal("0.97")))
    monkeypatch.setattr(regular_orders, "SETTLE_MARGIN_MS", -10**9)  # as if recvWindow + margin had passed

    reconcile()
    refused = get_order_record(USER_A, stop_id)
    reconcile()
    invoke("futures_order_status", status_event(entry["client_order_id"]))

    assert (refused.status, (refused.error or {}).get("code")) == ("REJECTED", -2021)
    assert len(_algo_posts(sim_env)) == 2 and _algo_orders(sim_env, futures_connection.account.id) == {}
    assert get_order_record(USER_A, stop_id).status == "REJECTED"
    assert entry["client_order_id"] not in _unsettled()


def test_a_stop_lost_for_longer_than_binance_keeps_lookups_with_its_position_gone_is_shown_unknown_purged(
    sim_env, invoke, futures_connection, reconcile, monkeypatch
):
    """GIVEN a filled LIMIT entry whose stop-loss POST timed out unsent (recorded UNKNOWN) and whose position
    was closed since (a manual trade) WHEN the reconciler runs once Binance's retention has passed (it no
    longer knows the id) THEN the stop is recorded UNKNOWN_PURGED with why, never sent again (nothing left to
    guard), the entry leaves the index (a later run looks nothing up) and its status read shows the
    stop-loss UNKNOWN_PURGED, so the trader sees it is not standing."""
    from klineo.services import orders as regular_orders
    from klineo.services import reconcile as reconciler

    entry = _resting_entry_filled(sim_env, invoke, futures_connection.id)
    stop_id = protective_client_algo_id(entry["client_order_id"], "stop_loss")
    sim_env.faults.add("timeout_1007", 1, method="POST", path=ALGO_PATH, execute=False)
    reconcile()
    assert get_order_record(USER_A, stop_id).status == "UNKNOWN"
    sim_env.inject_trade(futures_connection.account.id, "manual", "BTCUSDT", side="SELL", quantity="0.002")
    for module in (regular_orders, reconciler):
        monkeypatch.setattr(module, "PURGE_AFTER_MS", -10**9)  # as if Binance's retention had passed

    reconcile()
    purged = get_order_record(USER_A, stop_id)
    lookups = len([r for r in sim_env.journal if r.path == ALGO_PATH])
    reconcile()
    read = invoke("futures_order_status", status_event(entry["client_order_id"]))

    assert purged.status == "UNKNOWN_PURGED"
    assert _unsettled() == [] and len(_algo_posts(sim_env)) == 1
    assert len([r for r in sim_env.journal if r.path == ALGO_PATH]) == lookups  # nothing read again
    assert read["statusCode"] == 200, read["body"]
    assert [(p["role"], p["status"]) for p in body_of(read)["protective_orders"]] == [
        ("stop_loss", "UNKNOWN_PURGED")]


def test_a_stop_lost_past_binances_retention_and_resumed_by_a_read_is_placed_again_by_that_read(
    sim_env, invoke, futures_connection, reconcile, monkeypatch
):
    """GIVEN a filled LIMIT entry whose stop-loss POST timed out unsent (recorded UNKNOWN) WHEN its status is
    read once Binance's retention has passed (the read resumes the stop first) THEN the stop is recorded
    UNKNOWN_PURGED with why, as the order route records a purged attempt, never sent again under its id; the
    same read places it again under generation 1's id (its position stands) and shows that one, and the next
    reconciler run sends nothing more."""
    from klineo.services import orders as regular_orders

    entry = _resting_entry_filled(sim_env, invoke, futures_connection.id)
    stop_id = protective_client_algo_id(entry["client_order_id"], "stop_loss")
    again_id = protective_client_algo_id(entry["client_order_id"], "stop_loss", 1)
    sim_env.faults.add("timeout_1007", 1, method="POST", path=ALGO_PATH, execute=False)
    reconcile()
    monkeypatch.setattr(regular_orders, "PURGE_AFTER_MS", -10**9)  # as if Binance's retention had passed

    read = invoke("futures_order_status", status_event(entry["client_order_id"]))
    purged = get_order_record(USER_A, stop_id)
    reconcile()

    assert purged.status == "UNKNOWN_PURGED" and "never be sent again" in purged.error["message"]
    assert [(p["role"], p["status"], p["client_algo_id"]) for p in body_of(read)["protective_orders"]] == [
        ("stop_loss", "NEW", again_id)]
    assert len(_algo_posts(sim_env)) == 2
    assert list(_algo_orders(sim_env, futures_connection.account.id)) == [again_id]


def _stop_lost_past_retention(sim: Any, invoke: Any, connection_id: str, reconcile: Callable[[], Any]
                              ) -> tuple[dict[str, Any], str, str]:
    """A filled LIMIT entry whose stop-loss POST the reconciler sent was lost unsent, and whose lookups failed
    until its record was older than Binance's retention: (entry, that stop's id, generation 1's id)."""
    entry = _resting_entry_filled(sim, invoke, connection_id)
    stop_id = protective_client_algo_id(entry["client_order_id"], "stop_loss")
    sim.faults.add("timeout_1007", 1, method="POST", path=ALGO_PATH, execute=False)
    reconcile()
    age_record(stop_id, PURGE_AFTER_MS + 60_000)
    return entry, stop_id, protective_client_algo_id(entry["client_order_id"], "stop_loss", 1)


def test_a_lost_stop_whose_position_is_gone_has_the_position_read_once_not_on_every_status_read(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a filled entry's stop-loss lost past Binance's retention and its position closed since (a manual
    trade) WHEN the entry's status is read three times, then once more after a new long was opened on
    Binance's own apps THEN each read shows the stop-loss UNKNOWN_PURGED and nothing is sent, and only the
    first read asks Binance for the position (positionRisk, weight 5): the position gone is recorded on the
    entry (before: every read asked again, for good, and the last one placed the entry's stop for that
    later position, which is not the entry's)."""
    entry, stop_id, _again = _stop_lost_past_retention(sim_env, invoke, futures_connection.id, reconcile)
    sim_env.inject_trade(futures_connection.account.id, "manual", "BTCUSDT", side="SELL", quantity="0.002")
    position_reads = len([r for r in sim_env.journal if r.path == "/fapi/v3/positionRisk"])

    reads = [invoke("futures_order_status", status_event(entry["client_order_id"])) for _ in range(3)]
    sim_env.inject_trade(futures_connection.account.id, "manual", "BTCUSDT", side="BUY", quantity="0.002")
    reads.append(invoke("futures_order_status", status_event(entry["client_order_id"])))

    assert [[(p["role"], p["status"]) for p in body_of(read)["protective_orders"]] for read in reads] == [
        [("stop_loss", "UNKNOWN_PURGED")]] * 4
    assert len([r for r in sim_env.journal if r.path == "/fapi/v3/positionRisk"]) == position_reads + 1
    assert len(_algo_posts(sim_env)) == 1 and get_order_record(USER_A, stop_id).status == "UNKNOWN_PURGED"


def _stop_recorded_lost(sim: Any, invoke: Any, connection_id: str, reconcile: Callable[[], Any]
                        ) -> tuple[dict[str, Any], str, str]:
    """``_stop_lost_past_retention`` once a status read recorded it UNKNOWN_PURGED while the position could
    not be read (nothing placed again yet): (entry, that stop's id, generation 1's id)."""
    entry, stop_id, again_id = _stop_lost_past_retention(sim, invoke, connection_id, reconcile)
    sim.faults.add("http_503_unavailable", 100, method="GET", path="/fapi/v3/positionRisk")
    invoke("futures_order_status", status_event(entry["client_order_id"]))
    sim.faults.clear()
    assert get_order_record(USER_A, stop_id).status == "UNKNOWN_PURGED"
    return entry, stop_id, again_id


@CLOSED_FOR_EVERY_ORDER
def test_a_lost_stop_on_a_connection_closed_since_is_neither_read_for_nor_claimed_by_a_status_read(
    sim_env, invoke, futures_connection, reconcile, close_gate, gate
):
    """GIVEN a filled entry's stop-loss lost past Binance's retention WHEN the connection is disabled or being
    deleted and the entry's status is read THEN the read answers it UNKNOWN_PURGED, makes no positionRisk read
    and claims no new generation for it (before: it read the position and claimed one the gate then refused,
    a claim resumed once the gate opened), as a reduction's re-fit skips such a connection."""
    entry, _stop_id, _again = _stop_recorded_lost(sim_env, invoke, futures_connection.id, reconcile)
    position_reads = len([r for r in sim_env.journal if r.path == "/fapi/v3/positionRisk"])
    close_gate(futures_connection.id)

    read = invoke("futures_order_status", status_event(entry["client_order_id"]))

    assert read["statusCode"] == 200, read["body"]
    assert [(p["role"], p["status"]) for p in body_of(read)["protective_orders"]] == [
        ("stop_loss", "UNKNOWN_PURGED")], gate
    assert len([r for r in sim_env.journal if r.path == "/fapi/v3/positionRisk"]) == position_reads
    record = get_order_record(USER_A, entry["client_order_id"])
    assert (record.protective_resize, record.protective_generations or 1) == (None, 1)
    assert len(_algo_posts(sim_env)) == 1


def test_a_lost_stop_on_a_disabled_connection_is_placed_again_by_the_read_once_it_is_enabled(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a filled entry's stop-loss lost past Binance's retention, its connection disabled WHEN the
    reconciler runs THEN nothing is read or claimed for it and the entry stays in its index (the gate's
    refusal); once the connection is enabled again the entry's status read places it under generation 1."""
    from klineo.store.connections import clear_disabled

    entry, _stop_id, again_id = _stop_recorded_lost(sim_env, invoke, futures_connection.id, reconcile)
    disable_connection(USER_A, futures_connection.id, "test")
    position_reads = len([r for r in sim_env.journal if r.path == "/fapi/v3/positionRisk"])

    reconcile()
    kept = entry["client_order_id"] in _unsettled()
    record = get_order_record(USER_A, entry["client_order_id"])
    reads_then = len([r for r in sim_env.journal if r.path == "/fapi/v3/positionRisk"])
    clear_disabled(USER_A, futures_connection.id, {"ok": True})
    forget_connection()
    read = invoke("futures_order_status", status_event(entry["client_order_id"]))

    assert kept and (record.protective_resize, record.protective_generations or 1) == (None, 1)
    assert reads_then == position_reads
    assert [(p["role"], p["status"], p["client_algo_id"]) for p in body_of(read)["protective_orders"]] == [
        ("stop_loss", "NEW", again_id)]
    assert list(_algo_orders(sim_env, futures_connection.account.id)) == [again_id]


def test_a_lost_stop_whose_position_is_dust_has_the_position_read_once_not_on_every_status_read(
    sim_env, invoke, futures_connection, reconcile, monkeypatch
):
    """GIVEN a filled entry's stop-loss lost past Binance's retention and its 0.002 position now below the
    symbol's MARKET minimum (0.005: no stop can be that small) WHEN the entry's status is read three times
    THEN each shows the stop-loss UNKNOWN_PURGED, nothing is sent, and only the first read asks Binance for
    the position: the entry records it gone, as for a position of 0 (before: every read asked again)."""
    entry, stop_id, _again = _stop_recorded_lost(sim_env, invoke, futures_connection.id, reconcile)
    spec = dataclasses.replace(market.SYMBOLS["BTCUSDT"], futures_market_min_qty="0.005")
    monkeypatch.setitem(market.SYMBOLS, "BTCUSDT", spec)
    clear_exchange_info_cache()
    position_reads = len([r for r in sim_env.journal if r.path == "/fapi/v3/positionRisk"])

    reads = [invoke("futures_order_status", status_event(entry["client_order_id"])) for _ in range(3)]

    assert [[(p["role"], p["status"]) for p in body_of(read)["protective_orders"]] for read in reads] == [
        [("stop_loss", "UNKNOWN_PURGED")]] * 3
    assert len([r for r in sim_env.journal if r.path == "/fapi/v3/positionRisk"]) == position_reads + 1
    assert len(_algo_posts(sim_env)) == 1 and get_order_record(USER_A, stop_id).status == "UNKNOWN_PURGED"
    assert get_order_record(USER_A, entry["client_order_id"]).position_gone_ms is not None


def test_a_stop_lost_past_binances_retention_is_placed_again_once_under_a_new_id_while_its_position_stands(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a filled LIMIT entry whose stop-loss POST timed out unsent and whose lookups failed until its
    record was older than Binance's retention WHEN the reconciler then finds no such algo order while the
    entry's position stands THEN that stop (recorded UNKNOWN_PURGED: it cannot be standing) is placed again
    once, under a new generation's clientAlgoId, the status read shows it standing, and later runs and reads
    send nothing more."""
    entry, stop_id, again_id = _stop_lost_past_retention(sim_env, invoke, futures_connection.id, reconcile)

    reconcile()
    reconcile()
    read = invoke("futures_order_status", status_event(entry["client_order_id"]))
    invoke("futures_order_status", status_event(entry["client_order_id"]))
    reconcile()

    assert get_order_record(USER_A, stop_id).status == "UNKNOWN_PURGED"
    assert list(_algo_orders(sim_env, futures_connection.account.id)) == [again_id]
    assert _algo_orders(sim_env, futures_connection.account.id)[again_id].quantity == Decimal("0.002")
    assert len(_algo_posts(sim_env)) == 2
    assert read["statusCode"] == 200, read["body"]
    assert [(p["role"], p["status"], p["client_algo_id"]) for p in body_of(read)["protective_orders"]] == [
        ("stop_loss", "NEW", again_id)]


def test_a_lost_stops_re_placing_whose_answer_is_lost_too_is_resumed_under_the_same_id_never_a_third(
    sim_env, invoke, futures_connection, reconcile, monkeypatch
):
    """GIVEN a filled entry's stop-loss lost past Binance's retention WHEN its re-placing's POST
    (generation 1) is lost unsent too THEN the next run past recvWindow resumes that claim: generation 1 is
    looked up and sent again under its own id (no generation 2 claimed), one stop-loss stands, and later
    runs send none."""
    from klineo.services import orders as regular_orders

    entry, stop_id, again_id = _stop_lost_past_retention(sim_env, invoke, futures_connection.id, reconcile)
    sim_env.faults.add("timeout_1007", 1, method="POST", path=ALGO_PATH, execute=False)
    reconcile()
    lost_again = get_order_record(USER_A, again_id).status
    monkeypatch.setattr(regular_orders, "SETTLE_MARGIN_MS", -10**9)  # as if recvWindow + margin had passed

    reconcile()
    reconcile()

    assert lost_again == "UNKNOWN" and get_order_record(USER_A, stop_id).status == "UNKNOWN_PURGED"
    assert list(_algo_orders(sim_env, futures_connection.account.id)) == [again_id]
    assert len(_algo_posts(sim_env)) == 3  # the first, generation 1's lost one, generation 1's resend
    record = get_order_record(USER_A, entry["client_order_id"])
    assert (record.protective_generations, record.protective_resize) == (2, None)


def test_a_lost_stop_whose_position_cannot_be_read_is_shown_lost_by_the_read_and_placed_by_the_next_run(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a filled entry's stop-loss lost past Binance's retention WHEN its status is read while Binance
    answers the position's read with 503s THEN nothing is sent again, the read still answers (200) with the
    stop-loss UNKNOWN_PURGED (not standing); once the position reads again the next reconciler run places it
    under generation 1's id, once."""
    entry, stop_id, again_id = _stop_lost_past_retention(sim_env, invoke, futures_connection.id, reconcile)
    sim_env.faults.add("http_503_unavailable", 100, method="GET", path="/fapi/v3/positionRisk")

    read = invoke("futures_order_status", status_event(entry["client_order_id"]))
    posts_then = len(_algo_posts(sim_env))
    sim_env.faults.clear()
    reconcile()
    reconcile()

    assert read["statusCode"] == 200, read["body"]
    assert [(p["role"], p["status"]) for p in body_of(read)["protective_orders"]] == [
        ("stop_loss", "UNKNOWN_PURGED")]
    assert posts_then == 1 and get_order_record(USER_A, stop_id).status == "UNKNOWN_PURGED"
    assert list(_algo_orders(sim_env, futures_connection.account.id)) == [again_id]
    assert len(_algo_posts(sim_env)) == 2


def _algo_refusing(sim: Any, monkeypatch: Any, refusal: Any) -> Callable[[], None]:
    """Binance's algo service refuses every order with ``refusal`` (a sim ApiError) until the returned
    function is called (e.g. the user fixed or replaced the key, a liquidation ended)."""
    from local.binance_sim.errors import ApiError

    algo = sim.state.algo
    place = algo.place

    def refused(*_args: Any) -> Any:
        raise ApiError(refusal.status, refusal.code, refusal.msg)

    monkeypatch.setattr(algo, "place", refused)
    return lambda: monkeypatch.setattr(algo, "place", place)


def _key_shown_working(invoke: Any, connection_id: str) -> dict[str, Any]:
    """The user's balance read, which Binance answers: the connection's key health clears (the count of its
    key failures is 0 again). Its answer."""
    return invoke("balance", connection_event("balance", connection_id, USER_A, "/balance"))


def _key_shown_trading(invoke: Any, connection_id: str) -> dict[str, Any]:
    """A resting LIMIT of the user placed and cancelled, both taken by Binance: calls that trade, which alone
    clear a refusal of the key's trading permission (a read does not: klineo.services.key_health). The next
    reconciler run reads it once to settle it. The cancel's answer."""
    placed = body_of(invoke("futures_order", order_event(order_body(connection_id), key=new_key())))
    return invoke("futures_order_cancel", _cancel_event(placed["client_order_id"]))


@pytest.mark.parametrize(("code", "msg"), [
    (-2023, "User in liquidation mode now."), (-4192, "Trade forbidden due to Cooling-off Period."),
], ids=["liquidation", "cooling_off"])
def test_a_stop_refused_while_the_account_is_liquidated_is_placed_once_that_ends(
    sim_env, invoke, futures_connection, reconcile, monkeypatch, code, msg
):
    """GIVEN a filled LIMIT entry whose stop-loss Binance refuses while the account is being liquidated
    (-2023), or during the cooling-off period it chose (-4192, it ends by itself) WHEN the reconciler runs
    THEN the refusal is recorded REJECTED but retryable and the entry stays in the index; WHEN the
    liquidation (the period) has ended, a position left, THEN the next run places the stop-loss."""
    from local.binance_sim.errors import ApiError

    entry = _resting_entry_filled(sim_env, invoke, futures_connection.id)
    in_liquidation = ApiError(400, code, msg)
    liquidation_ended = _algo_refusing(sim_env, monkeypatch, in_liquidation)
    reconcile()
    stop_id = protective_client_algo_id(entry["client_order_id"], "stop_loss")
    refused, kept = get_order_record(USER_A, stop_id), _unsettled()
    liquidation_ended()

    reconcile()

    assert (refused.status, refused.error["retryable"]) == ("REJECTED", True)
    assert kept == [entry["client_order_id"]]
    assert list(_algo_orders(sim_env, futures_connection.account.id)) == [stop_id]
    assert _unsettled() == [stop_id]


def test_a_stop_refused_for_the_key_is_placed_once_by_the_reconciler_after_the_key_works(
    sim_env, invoke, futures_connection, reconcile, monkeypatch
):
    """GIVEN a filled LIMIT entry whose stop-loss POST Binance refuses for the key (-2015) WHEN the
    reconciler runs THEN the entry stays in the index; WHEN the key works again (its health cleared by an
    order it placed and cancelled: a read does not clear a trading refusal) THEN the next run places the
    stop-loss, and later runs and a status read send nothing more (one stop, never doubled)."""
    from local.binance_sim.errors import FUTURES, invalid_api_key

    entry = _resting_entry_filled(sim_env, invoke, futures_connection.id)
    key_fixed = _algo_refusing(sim_env, monkeypatch, invalid_api_key(FUTURES, "127.0.0.1"))
    reconcile()
    kept = _unsettled()
    key_fixed()
    _key_shown_trading(invoke, futures_connection.id)

    reconcile()
    reconcile()
    read = invoke("futures_order_status", status_event(entry["client_order_id"]))

    assert kept == [entry["client_order_id"]]
    stop_id = protective_client_algo_id(entry["client_order_id"], "stop_loss")
    assert list(_algo_orders(sim_env, futures_connection.account.id)) == [stop_id]
    assert get_order_record(USER_A, stop_id).status == "NEW"
    assert [(p["role"], p["status"]) for p in body_of(read)["protective_orders"]] == [("stop_loss", "NEW")]
    assert len(_algo_posts(sim_env)) == 2  # the refused one, then the one placed


def test_a_stop_refused_for_the_key_waits_for_the_key_to_work_not_resent_every_run(
    sim_env, invoke, futures_connection, reconcile, monkeypatch
):
    """GIVEN a filled LIMIT entry whose stop-loss POST Binance refuses for the key (-2015: e.g. a key without
    the trading permission, whose reads still answer) WHEN the reconciler runs three more times THEN one POST
    went out in all, its refusal counted once on the connection's key health, the entry stays in the index
    unread and the stop's record says why; WHEN a balance read passes THEN the stop still waits (a read does
    not clear a refusal of the trading permission); WHEN the key trades again and its health clears (an order
    placed and cancelled) THEN the next run places the stop-loss, once."""
    from local.binance_sim.errors import FUTURES, invalid_api_key

    entry = _resting_entry_filled(sim_env, invoke, futures_connection.id)
    key_fixed = _algo_refusing(sim_env, monkeypatch, invalid_api_key(FUTURES, "127.0.0.1"))
    reconcile()
    waiting = len(sim_env.journal)
    for _ in range(3):
        reconcile()
    posts, reads, kept = len(_algo_posts(sim_env)), _entry_reads(sim_env, waiting), _unsettled()
    counted = get_connection(USER_A, futures_connection.id).consecutive_failures
    stop_id = protective_client_algo_id(entry["client_order_id"], "stop_loss")
    why = get_order_record(USER_A, stop_id).error
    key_fixed()
    reconcile()
    read = _key_shown_working(invoke, futures_connection.id)
    reconcile()
    after_the_balance_read = len(_algo_posts(sim_env))
    cancel = _key_shown_trading(invoke, futures_connection.id)

    reconcile()
    reconcile()

    assert (posts, reads, kept, counted) == (1, 0, [entry["client_order_id"]], 1)
    assert (why["category"], why["code"]) == ("permission", -2015)
    assert (read["statusCode"], after_the_balance_read, cancel["statusCode"]) == (200, 1, 200)
    assert list(_algo_orders(sim_env, futures_connection.account.id)) == [stop_id]
    assert len(_algo_posts(sim_env)) == 2 and _unsettled() == [stop_id]


def test_a_stop_refused_for_the_key_is_sent_again_after_its_period_though_no_read_showed_the_key_working(
    sim_env, invoke, futures_connection, reconcile, monkeypatch
):
    """GIVEN a filled LIMIT entry whose stop-loss POST Binance refused for the key, after which the key works
    again but no read or order of its user shows it (the key health still counts the failure) WHEN the
    reconciler runs once the resend period has passed THEN it places the stop-loss, once: the position is
    never left without its stop for want of a user's read."""
    from klineo.services import protective

    from local.binance_sim.errors import FUTURES, invalid_api_key

    entry = _resting_entry_filled(sim_env, invoke, futures_connection.id)
    key_fixed = _algo_refusing(sim_env, monkeypatch, invalid_api_key(FUTURES, "127.0.0.1"))
    reconcile()
    key_fixed()
    reconcile()
    within_the_period = len(_algo_posts(sim_env))
    counted = get_connection(USER_A, futures_connection.id).consecutive_failures
    monkeypatch.setattr(protective, "KEY_REFUSED_RESEND_AFTER_MS", -10**9)  # as if the period had passed

    reconcile()
    reconcile()

    stop_id = protective_client_algo_id(entry["client_order_id"], "stop_loss")
    assert (within_the_period, counted) == (1, 1)
    assert list(_algo_orders(sim_env, futures_connection.account.id)) == [stop_id]
    assert len(_algo_posts(sim_env)) == 2


@pytest.mark.parametrize(("status", "code"), [(451, 0), (400, -4402)], ids=["http_451", "region_4402"])
def test_a_stop_refused_for_the_location_is_sent_again_once_a_period_and_placed_once_that_lifts(
    sim_env, invoke, futures_connection, reconcile, monkeypatch, status, code
):
    """GIVEN a filled LIMIT entry whose stop-loss POST Binance refuses for this server's location (451) or the
    account's region (-4402) WHEN the reconciler runs four times within the resend period THEN one POST went
    out, not one a run, and the entry stays in the index; WHEN the refusal lifts THEN the first run once the
    period has passed places the stop-loss, once."""
    from klineo.services import protective

    from local.binance_sim.errors import ApiError

    entry = _resting_entry_filled(sim_env, invoke, futures_connection.id)
    lifted = _algo_refusing(sim_env, monkeypatch, ApiError(status, code, "This feature is currently not "
                                                                          "available in your region."))
    for _ in range(4):
        reconcile()
    refused, kept = len(_algo_posts(sim_env)), _unsettled()
    lifted()
    reconcile()
    within_the_period = len(_algo_posts(sim_env))
    monkeypatch.setattr(protective, "RESTRICTED_RESEND_AFTER_MS", -10**9)  # as if the period had passed

    reconcile()
    reconcile()

    assert (refused, kept, within_the_period) == (1, [entry["client_order_id"]], 1)
    stop_id = protective_client_algo_id(entry["client_order_id"], "stop_loss")
    assert list(_algo_orders(sim_env, futures_connection.account.id)) == [stop_id]
    assert len(_algo_posts(sim_env)) == 2 and _unsettled() == [stop_id]


def _entry_reads(sim: Any, since: int, until: int | None = None) -> int:
    """How many requests read an order (the entry's state) in the journal's records ``since`` to ``until``."""
    return sum(1 for r in sim.journal[since:until] if (r.method, r.path) == ("GET", ORDER_PATH))


def _algo_refusing_types(sim: Any, monkeypatch: Any, refusals: dict[str, Any]) -> None:
    """Binance's algo service refuses each order of a type ``refusals`` names with its refusal (a sim
    ApiError), for as long as it is named there, and places the others."""
    from local.binance_sim.errors import ApiError

    algo = sim.state.algo
    place = algo.place

    def placed(account: Any, params: dict[str, Any], now_ms: float) -> Any:
        refusal = refusals.get(params.get("type"))
        if refusal is not None:
            raise ApiError(refusal.status, refusal.code, refusal.msg)
        return place(account, params, now_ms)

    monkeypatch.setattr(algo, "place", placed)


def test_an_entry_whose_stop_waits_out_a_location_refusal_is_not_read_until_the_stop_is_due(
    sim_env, invoke, futures_connection, reconcile, monkeypatch
):
    """GIVEN a filled LIMIT entry whose stop-loss Binance refused for this server's location WHEN the
    reconciler runs again within the resend period THEN neither the entry nor its trades are read (only the
    watched symbol's new trades); WHEN the period has passed THEN the next run reads the entry, places the
    stop-loss once and settles the entry with its fills."""
    from klineo.services import protective

    from local.binance_sim.errors import ApiError

    entry = _resting_entry_filled(sim_env, invoke, futures_connection.id)
    lifted = _algo_refusing(sim_env, monkeypatch, ApiError(451, 0, "Service unavailable from a restricted "
                                                                   "location"))
    reconcile()
    refused = len(sim_env.journal)
    reconcile()
    reconcile()
    within_the_period = [(r.method, r.path) for r in sim_env.journal[refused:]]
    lifted()
    monkeypatch.setattr(protective, "RESTRICTED_RESEND_AFTER_MS", -10**9)  # as if the period had passed
    due = len(sim_env.journal)

    reconcile()

    assert within_the_period == [("GET", "/fapi/v1/userTrades")] * 2  # the watched symbol's, one a run
    assert _entry_reads(sim_env, due) == 1
    stop_id = protective_client_algo_id(entry["client_order_id"], "stop_loss")
    assert list(_algo_orders(sim_env, futures_connection.account.id)) == [stop_id]
    assert len(_algo_posts(sim_env)) == 2 and _unsettled() == [stop_id]
    settled = get_order_record(USER_A, entry["client_order_id"])
    assert sum(Decimal(f["qty"]) for f in settled.fills) == Decimal("0.002")


def test_an_entry_with_one_stop_waiting_out_a_location_refusal_is_still_read_while_another_is_due(
    sim_env, invoke, futures_connection, reconcile, monkeypatch
):
    """GIVEN a filled LIMIT entry whose stop-loss Binance refused for the location (its resend waits) and
    whose take-profit it refused for the key (sent again once the key works) WHEN the key trades again (its
    health cleared by an order placed and cancelled) THEN the next run
    reads the entry and places the take-profit, not the stop-loss; THEN a run within the period reads
    nothing of the entry."""
    from local.binance_sim.errors import FUTURES, ApiError, invalid_api_key

    entry = _resting_entry_filled(sim_env, invoke, futures_connection.id, stop_loss={"percent": "2"},
                                  take_profit={"percent": "2"})
    refusals = {"STOP_MARKET": ApiError(451, 0, "Service unavailable from a restricted location"),
                "TAKE_PROFIT_MARKET": invalid_api_key(FUTURES, "127.0.0.1")}
    _algo_refusing_types(sim_env, monkeypatch, refusals)
    reconcile()
    del refusals["TAKE_PROFIT_MARKET"]
    _key_shown_trading(invoke, futures_connection.id)
    key_fixed = len(sim_env.journal)
    reconcile()
    placed = len(sim_env.journal)

    reconcile()

    take_profit = protective_client_algo_id(entry["client_order_id"], "take_profit")
    # The entry's read, and the one settling the order placed and cancelled to show the key trades.
    assert _entry_reads(sim_env, key_fixed, placed) == 2 and _entry_reads(sim_env, placed) == 0
    assert list(_algo_orders(sim_env, futures_connection.account.id)) == [take_profit]
    assert len(_algo_posts(sim_env)) == 3  # both refused, then the take-profit placed
    assert entry["client_order_id"] in _unsettled()


def test_a_stop_refused_for_the_signature_at_entry_is_answered_not_placed_and_placed_by_a_later_read(
    sim_env, invoke, futures_connection, monkeypatch
):
    """GIVEN a MARKET entry whose stop-loss POST Binance refuses for the signature (-1022) THEN the answer
    says the stop-loss was not placed, why, and that it is placed once the key works, not retryable (the
    refusal counted on the key's health, as a later arming's); WHEN the key works again (its health cleared)
    THEN the entry's status read places it once, and a second read sends nothing more."""
    from local.binance_sim.errors import invalid_signature

    key_fixed = _algo_refusing(sim_env, monkeypatch, invalid_signature())
    refused = _entry_with_protection(invoke, futures_connection.id, new_key(), stop_loss={"percent": "3"})
    entry_id = body_of(refused)["error"]["message"].split()[2]
    key_fixed()
    _key_shown_working(invoke, futures_connection.id)

    first = invoke("futures_order_status", status_event(entry_id))
    second = invoke("futures_order_status", status_event(entry_id))

    error = body_of(refused)["error"]
    assert (error["category"], error["retryable"]) == ("signature", False), refused["body"]
    assert "was not placed" in error["message"] and "Repeat the request" not in error["message"]
    assert error["message"].endswith("it is placed once the key works again."), error["message"]
    stop_id = protective_client_algo_id(entry_id, "stop_loss")
    assert list(_algo_orders(sim_env, futures_connection.account.id)) == [stop_id]
    for read in (first, second):
        assert [(p["role"], p["status"]) for p in body_of(read)["protective_orders"]] == [
            ("stop_loss", "NEW")], read["body"]
    assert len(_algo_posts(sim_env)) == 2  # the refused one, then the one placed


def test_reconciler_lets_go_of_an_entry_whose_symbol_ended_but_keeps_one_whose_symbol_is_halted(
    sim_env, invoke, futures_connection, reconcile, caplog
):
    """GIVEN two filled LIMIT entries whose stop-loss could not be placed, one on a symbol Binance then
    halts, one after it ended its contract (SETTLING) WHEN the reconciler runs twice THEN the ended one
    leaves the index on the first run, logged once, and is never read again; the halted one waits."""
    entry = _resting_entry_filled(sim_env, invoke, futures_connection.id)
    sim_env.set_symbol_status("BTCUSDT", "TRADING_HALT")
    clear_exchange_info_cache()

    reconcile()
    assert _unsettled() == [entry["client_order_id"]]  # a halt is waited out
    sim_env.set_symbol_status("BTCUSDT", "SETTLING")
    clear_exchange_info_cache()
    caplog.clear()
    reconcile()
    reads = len([r for r in sim_env.journal if r.path == ORDER_PATH])
    reconcile()

    assert _unsettled() == [] and _algo_posts(sim_env) == []
    assert get_order_record(USER_A, entry["client_order_id"]).status == "FILLED"
    assert len([r for r in sim_env.journal if r.path == ORDER_PATH]) == reads  # not read again
    assert [r.message for r in caplog.records].count(
        "protective orders given up: Binance no longer trades the order's symbol") == 1


def test_reconciler_reads_a_halted_symbols_status_once_for_all_its_entries(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN two filled LIMIT entries whose stop-loss waits, on a symbol Binance then halts WHEN the
    reconciler runs THEN both wait in the index and exchangeInfo is read once in that run, not once or
    twice for each entry."""
    entries = [_resting_entry_filled(sim_env, invoke, futures_connection.id) for _ in range(2)]
    sim_env.set_symbol_status("BTCUSDT", "TRADING_HALT")
    clear_exchange_info_cache()
    before = len([r for r in sim_env.journal if r.path == "/fapi/v1/exchangeInfo"])

    reconcile()

    assert sorted(_unsettled()) == sorted(entry["client_order_id"] for entry in entries)
    assert len([r for r in sim_env.journal if r.path == "/fapi/v1/exchangeInfo"]) == before + 1


def test_no_protective_order_is_sent_past_a_closed_gate_and_it_is_placed_once_it_opens(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a filled LIMIT entry with a stop-loss and its connection then disabled (its key kept failing)
    WHEN its status is read and the reconciler runs THEN nothing reaches Binance and the entry waits in the
    index; once the connection is on again, the next run places the stop-loss."""
    entry = _resting_entry_filled(sim_env, invoke, futures_connection.id)
    disable_connection(USER_A, futures_connection.id, "connection_disabled:permission")

    read = invoke("futures_order_status", status_event(entry["client_order_id"]))
    reconcile()
    while_closed = _algo_posts(sim_env), _unsettled()
    clear_disabled(USER_A, futures_connection.id, {"ok": True})
    reconcile()

    assert read["statusCode"] == 200, read["body"]
    assert body_of(read)["status"] == "FILLED"
    assert while_closed == ([], [entry["client_order_id"]])
    stop_id = protective_client_algo_id(entry["client_order_id"], "stop_loss")
    assert list(_algo_orders(sim_env, futures_connection.account.id)) == [stop_id]
    assert _unsettled() == [stop_id]


def test_a_filled_entrys_stop_is_placed_even_after_futures_were_switched_off(
    sim_env, invoke, futures_connection
):
    """GIVEN a filled LIMIT entry with a stop-loss and futures then switched off WHEN its status is read
    THEN its stop-loss is placed all the same: futures off stops new exposure, never a position's stops."""
    entry = _resting_entry_filled(sim_env, invoke, futures_connection.id)
    disabled = invoke("futures_disable", connection_event("futures_disable", futures_connection.id, USER_A,
                                                          "/futures/disable"))
    assert disabled["statusCode"] == 200, disabled["body"]

    read = invoke("futures_order_status", status_event(entry["client_order_id"]))

    assert read["statusCode"] == 200, read["body"]
    stop_id = protective_client_algo_id(entry["client_order_id"], "stop_loss")
    assert list(_algo_orders(sim_env, futures_connection.account.id)) == [stop_id]


def test_status_of_a_conditional_order_is_read_from_the_algo_service(sim_env, invoke, futures_connection):
    """GIVEN an open STOP_MARKET WHEN its status is read THEN the algo service answers it (kind algo)."""
    body = order_body(futures_connection.id, type="STOP_MARKET", price=None, timeInForce=None,
                      quantity="0.002", triggerPrice=_price(_mark(sim_env) * Decimal("1.1")))
    placed = body_of(invoke("futures_order", order_event(body, key=new_key())))

    response = invoke("futures_order_status", status_event(placed["client_order_id"]))

    assert response["statusCode"] == 200, response["body"]
    assert body_of(response)["kind"] == "algo" and body_of(response)["status"] == "NEW"
    assert [r.path for r in sim_env.journal if r.method == "GET" and "algoOrder" in r.path] == [ALGO_PATH]


def test_hedge_mode_protective_orders_use_position_side_not_reduce_only(sim_env, invoke, create_connection):
    """GIVEN a hedge-mode account WHEN a MARKET BUY LONG with SL+TP is sent THEN both are SELL on
    positionSide LONG without reduceOnly (Binance refuses it in hedge mode), for the filled quantity."""
    connection = create_connection(USER_A, "futures-hedge")
    event = connection_event("futures_enable", connection.id, USER_A, "/futures/enable")
    enable = invoke("futures_enable", event)
    assert enable["statusCode"] == 200, enable["body"]
    body = order_body(connection.id, type="MARKET", price=None, timeInForce=None, quantity="0.002",
                      positionSide="LONG", stop_loss={"percent": "2"}, take_profit={"percent": "2"})

    response = invoke("futures_order", order_event(body, key=new_key()))

    assert response["statusCode"] == 200, response["body"]
    held = _algo_orders(sim_env, connection.account.id)
    assert len(held) == 2
    for algo in held.values():
        assert (algo.side, algo.position_side, algo.reduce_only) == ("SELL", "LONG", False)
        assert algo.quantity == Decimal("0.002") and algo.status == "NEW"


def test_hedge_mode_stop_closing_a_long_below_the_minimum_notional_is_placed(sim_env, invoke,
                                                                            create_connection):
    """GIVEN a hedge-mode LONG of 0.002 WHEN a STOP_MARKET SELL LONG for it is sent with a trigger where it is
    worth less than BTCUSDT's minimum order value (100) THEN it is placed, not refused by our own check: a
    hedge-mode close cannot carry reduceOnly, and Binance exempts it as the one-way reduce-only stop; an
    exit is never blocked by our gate."""
    connection = hedge_long(invoke, create_connection)
    trigger = _mark(sim_env) * Decimal("0.7")
    assert Decimal("0.002") * trigger < 100
    stop = order_body(connection.id, side="SELL", type="STOP_MARKET", price=None, timeInForce=None,
                      quantity="0.002", positionSide="LONG", triggerPrice=_price(trigger))

    response = invoke("futures_order", order_event(stop, key=new_key()))

    assert response["statusCode"] == 200, response["body"]
    (algo,) = _algo_orders(sim_env, connection.account.id).values()
    assert (algo.side, algo.position_side, algo.reduce_only, algo.quantity, algo.status) == (
        "SELL", "LONG", False, Decimal("0.002"), "NEW")


def _stop_body(sim: Any, connection_id: str) -> dict[str, Any]:
    return order_body(connection_id, type="STOP_MARKET", price=None, timeInForce=None, quantity="0.002",
                      triggerPrice=_price(_mark(sim) * Decimal("1.1")))


def test_lost_answer_of_an_algo_order_is_recovered_by_lookup_not_resent(sim_env, invoke, futures_connection):
    """GIVEN Binance places the algo order but its answer is lost (503 unknown) WHEN sent THEN the order
    is found by clientAlgoId (source recovered), and POST /fapi/v1/algoOrder went out once."""
    sim_env.faults.add("http_503_unknown", 1, method="POST", path=ALGO_PATH)

    response = invoke("futures_order", order_event(_stop_body(sim_env, futures_connection.id), key=new_key()))

    assert response["statusCode"] == 200, response["body"]
    assert body_of(response)["source"] == "recovered" and body_of(response)["status"] == "NEW"
    assert len(_algo_posts(sim_env)) == 1 and len(_algo_orders(sim_env, futures_connection.account.id)) == 1


def test_algo_order_never_placed_is_sent_again_only_after_recv_window(
    sim_env, invoke, futures_connection, monkeypatch
):
    """GIVEN the algo POST timed out without reaching Binance WHEN retried with the key at once THEN
    unknown_outcome naming the id and nothing sent; once recvWindow has passed THEN placed exactly once."""
    from klineo.services import orders as regular_orders

    sim_env.faults.add("timeout_1007", 1, method="POST", path=ALGO_PATH, execute=False)
    key, body = new_key(), _stop_body(sim_env, futures_connection.id)
    first = invoke("futures_order", order_event(body, key=key))
    assert first["statusCode"] == 504, first["body"]
    client_algo_id = first["body"].split("clientOrderId ")[1].split(" ")[0]
    assert get_order_record(USER_A, client_algo_id).status == "UNKNOWN"

    early = invoke("futures_order", order_event(body, key=key))
    assert early["statusCode"] == 504 and len(_algo_posts(sim_env)) == 1, early["body"]

    monkeypatch.setattr(regular_orders, "SETTLE_MARGIN_MS", -10**9)  # as if recvWindow + margin had passed
    late = invoke("futures_order", order_event(body, key=key))

    assert late["statusCode"] == 200, late["body"]
    assert body_of(late)["client_order_id"] == client_algo_id
    assert len(_algo_posts(sim_env)) == 2 and len(_algo_orders(sim_env, futures_connection.account.id)) == 1


def test_a_sibling_cancelled_by_the_user_leaves_the_other_armed(sim_env, invoke, futures_connection):
    """GIVEN an entry with SL+TP WHEN the user cancels the take-profit and reads the open orders
    THEN the stop-loss stays armed (only a sibling that fired cancels the other)."""
    entry = body_of(_entry_with_protection(invoke, futures_connection.id, new_key(),
                                           stop_loss={"percent": "3"}, take_profit={"percent": "3"}))
    sl, tp = sorted(entry["protective_orders"], key=lambda p: p["role"])
    assert invoke("futures_order_cancel", _cancel_event(tp["client_algo_id"]))["statusCode"] == 200

    read = invoke("futures_open_orders", _open_orders_event(futures_connection.id))

    assert [o["client_order_id"] for o in body_of(read)["orders"]] == [sl["client_algo_id"]]
    assert _algo_orders(sim_env, futures_connection.account.id)[sl["client_algo_id"]].status == "NEW"


def test_a_sibling_cancel_that_fails_does_not_fail_the_open_orders_read(sim_env, invoke, futures_connection):
    """GIVEN an entry with SL+TP whose take-profit fired, and Binance failing the sibling's cancel once (500)
    WHEN the open orders are read THEN 200 listing the stop-loss still armed (before: the read itself failed,
    504 "send the cancel again" for a cancel the trader never sent); the next read cancels it."""
    take_profit = _price(_mark(sim_env) * Decimal("1.02"))
    entry = body_of(_entry_with_protection(invoke, futures_connection.id, new_key(),
                                           stop_loss={"percent": "2.5"}, take_profit={"price": take_profit}))
    sl = next(p for p in entry["protective_orders"] if p["role"] == "stop_loss")
    sim_env.set_mark_price("BTCUSDT", float(Decimal(take_profit) + 1))
    sim_env.faults.add("http_500", method="DELETE", path=ALGO_PATH)

    first = invoke("futures_open_orders", _open_orders_event(futures_connection.id))
    second = invoke("futures_open_orders", _open_orders_event(futures_connection.id))

    assert first["statusCode"] == 200, first["body"]
    assert [o["client_order_id"] for o in body_of(first)["orders"]] == [sl["client_algo_id"]]
    assert second["statusCode"] == 200 and body_of(second)["orders"] == [], second["body"]
    assert _algo_orders(sim_env, futures_connection.account.id)[sl["client_algo_id"]].status == "CANCELED"


def test_a_cancel_that_finds_the_entry_filled_places_its_stop_loss(sim_env, invoke, futures_connection):
    """GIVEN a resting LIMIT entry with a stop-loss that filled at Binance before the trader's cancel WHEN
    cancelled THEN 409 FILLED and its stop-loss is placed, as any read that learns of the fill places it
    (before: the cancel read the fill and placed nothing, the new position unprotected until a later read
    or the reconciler's next run)."""
    entry = _resting_entry_filled(sim_env, invoke, futures_connection.id)

    response = invoke("futures_order_cancel", _cancel_event(entry["client_order_id"]))

    assert response["statusCode"] == 409, response["body"]
    assert "FILLED" in body_of(response)["error"]["message"]
    stop_id = protective_client_algo_id(entry["client_order_id"], "stop_loss")
    placed = _algo_orders(sim_env, futures_connection.account.id)
    assert list(placed) == [stop_id] and placed[stop_id].quantity == Decimal("0.002")
    assert placed[stop_id].status == "NEW" and get_order_record(USER_A, stop_id).status == "NEW"
