"""Futures settings on enable and PATCH, and the one risk gate, against moto and the simulator.

What the simulated exchange holds (position mode, margin type, leverage per symbol) is read from
its state; "nothing sent" is read from its journal.
"""

from __future__ import annotations

import time

import pytest
from klineo.store import flags
from klineo.store.connections import get_connection

from tests.helpers import load_event, with_body, with_user
from tests.integration.api.conftest import USER_A, connection_event
from tests.integration.futures.helpers import body_of, new_key, order_body, order_event, order_posts

HEDGE_ISOLATED_5X = {"position_mode": "hedge", "margin_type": "isolated", "leverage": 5}
SETTING_PATHS = ("/fapi/v1/positionSide/dual", "/fapi/v1/marginType", "/fapi/v1/leverage")


def _enable(invoke, connection_id: str, body: dict | None = None) -> dict:
    event = connection_event("futures_enable", connection_id, USER_A, "/futures/enable")
    if body is None:
        return invoke("futures_enable", event)
    event = with_body(event, body)
    event["headers"]["content-type"] = "application/json"
    return invoke("futures_enable", event)


def _patch(invoke, connection_id: str, body: dict) -> dict:
    return invoke(
        "connection_update", with_body(connection_event("connection_update", connection_id, USER_A), body)
    )


def _exchange(sim, account):
    """The simulated futures account (settings read under the exchange's own view of now)."""
    return sim.state.futures.state_for(account, time.time() * 1000)


def _setting_posts(sim) -> list:
    return [r for r in sim.journal if r.method == "POST" and r.path in SETTING_PATHS]


def _market(connection_id: str, **changes) -> dict:
    """A MARKET BUY of 0.002 BTCUSDT (about 130 USDT), with ``changes`` applied."""
    body = {"type": "MARKET", "quantity": "0.002", "price": None, "timeInForce": None, **changes}
    return order_body(connection_id, **body)


@pytest.fixture
def enabled(create_connection, invoke):
    """USER_A's futures-full connection, futures enabled without settings (one-way, as the account is)."""
    connection = create_connection(USER_A, "futures-full")
    assert _enable(invoke, connection.id)["statusCode"] == 200
    return connection


# ---------------------------------------------------------------- enable with settings


def test_enable_with_hedge_isolated_5x_leaves_exactly_that_on_binance(sim_env, invoke, create_connection):
    """GIVEN a one-way account WHEN enabled with hedge+isolated+5x and BTCUSDT traded THEN exactly that."""
    connection = create_connection(USER_A, "futures-full")

    response = _enable(invoke, connection.id, HEDGE_ISOLATED_5X)

    assert response["statusCode"] == 200, response["body"]
    assert {k: body_of(response)[k] for k in HEDGE_ISOLATED_5X} == HEDGE_ISOLATED_5X
    assert _exchange(sim_env, connection.account).dual_side is True
    placed = invoke("futures_order", order_event(_market(connection.id, positionSide="LONG"), key=new_key()))
    assert placed["statusCode"] == 200, placed["body"]
    state = _exchange(sim_env, connection.account)
    assert (state.margin_type["BTCUSDT"], state.leverage["BTCUSDT"]) == ("ISOLATED", 5)
    stored = get_connection(USER_A, connection.id)
    assert stored.symbol_settings == {"BTCUSDT": {"margin_type": "isolated", "leverage": 5}}


def test_enabling_again_with_the_same_settings_changes_nothing(sim_env, invoke, create_connection):
    """GIVEN hedge+isolated+5x applied WHEN enabled again the same THEN 200 and no setting sent."""
    connection = create_connection(USER_A, "futures-full")
    assert _enable(invoke, connection.id, HEDGE_ISOLATED_5X)["statusCode"] == 200
    invoke("futures_order", order_event(_market(connection.id, positionSide="LONG"), key=new_key()))
    sim_env.clear_journal()

    again = _enable(invoke, connection.id, HEDGE_ISOLATED_5X)
    second = invoke("futures_order", order_event(_market(connection.id, positionSide="LONG"), key=new_key()))

    assert again["statusCode"] == 200 and second["statusCode"] == 200, (again["body"], second["body"])
    assert _setting_posts(sim_env) == []
    assert not [r for r in sim_env.journal if r.path == "/fapi/v1/symbolConfig"]
    state = _exchange(sim_env, connection.account)
    assert (state.dual_side, state.margin_type["BTCUSDT"], state.leverage["BTCUSDT"]) == (True, "ISOLATED", 5)


def test_enabling_again_over_an_account_switched_outside_with_a_position_says_how_to_keep_its_mode(
        sim_env, invoke, enabled):
    """GIVEN futures switched off, then the account switched to hedge outside KLINEO and a LONG opened there
    WHEN futures are enabled again without a body THEN the 409 names the account's hedge mode and
    position_mode hedge, never only "close them first"; enabled with position_mode hedge, it passes."""
    off = connection_event("futures_disable", enabled.id, USER_A, "/futures/disable")
    assert invoke("futures_disable", off)["statusCode"] == 200
    _exchange(sim_env, enabled.account).set_dual_side(True)
    sim_env.inject_trade(enabled.account.id, "manual", "BTCUSDT", side="BUY", quantity="0.002",
                         positionSide="LONG")

    refused = _enable(invoke, enabled.id)

    assert refused["statusCode"] == 409, refused["body"]
    error = body_of(refused)["error"]
    assert error["field"] == "position_mode" and "position_mode hedge" in error["message"], error
    kept = _enable(invoke, enabled.id, {"position_mode": "hedge"})
    assert kept["statusCode"] == 200 and body_of(kept)["position_mode"] == "hedge", kept["body"]


def test_without_a_leverage_an_order_never_trades_above_max_leverage(sim_env, invoke, enabled):
    """GIVEN no leverage set and the account's own 20x on BTCUSDT WHEN the first order adds exposure THEN
    the symbol's leverage is lowered to max_leverage (10x) before it, remembered, and not asked again."""
    assert _exchange(sim_env, enabled.account).leverage["BTCUSDT"] == 20

    first = invoke("futures_order", order_event(_market(enabled.id), key=new_key()))
    sim_env.clear_journal()
    second = invoke("futures_order", order_event(_market(enabled.id), key=new_key()))

    assert first["statusCode"] == 200 and second["statusCode"] == 200, (first["body"], second["body"])
    assert _exchange(sim_env, enabled.account).leverage["BTCUSDT"] == 10
    stored = get_connection(USER_A, enabled.id)
    assert stored.symbol_settings == {"BTCUSDT": {"leverage_at_most": 10}}
    assert _setting_posts(sim_env) == []
    assert not [r for r in sim_env.journal if r.path == "/fapi/v1/symbolConfig"]


def test_without_a_leverage_a_lower_account_leverage_is_kept_and_a_close_asks_nothing(sim_env, invoke,
                                                                                      enabled):
    """GIVEN no leverage set and the account at 3x on BTCUSDT WHEN an order adds exposure THEN 3x is kept
    (the cap never raises it); a reduce-only close reads no symbol settings at all."""
    _exchange(sim_env, enabled.account).leverage["BTCUSDT"] = 3
    opened = invoke("futures_order", order_event(_market(enabled.id), key=new_key()))
    assert opened["statusCode"] == 200, opened["body"]
    assert _setting_posts(sim_env) == [] and _exchange(sim_env, enabled.account).leverage["BTCUSDT"] == 3
    patched = _patch(invoke, enabled.id, {"max_leverage": 2})  # the check is made again for a new cap
    assert patched["statusCode"] == 200, patched["body"]
    sim_env.clear_journal()

    closed = invoke("futures_order", order_event(_market(enabled.id, side="SELL", reduceOnly=True),
                                                 key=new_key()))

    assert closed["statusCode"] == 200, closed["body"]
    assert not [r for r in sim_env.journal if r.path == "/fapi/v1/symbolConfig"]
    assert _exchange(sim_env, enabled.account).leverage["BTCUSDT"] == 3


def test_position_mode_change_with_an_open_position_is_409_naming_position_mode(sim_env, invoke, enabled):
    """GIVEN an open position WHEN PATCH asks for hedge mode THEN 409 position_mode, nothing stored."""
    assert invoke("futures_order", order_event(_market(enabled.id), key=new_key()))["statusCode"] == 200

    response = _patch(invoke, enabled.id, {"position_mode": "hedge"})

    assert response["statusCode"] == 409, response["body"]
    assert body_of(response)["error"]["field"] == "position_mode"
    assert _exchange(sim_env, enabled.account).dual_side is False
    assert get_connection(USER_A, enabled.id).position_mode == "one_way"


def test_patch_of_the_stored_position_mode_puts_an_account_switched_outside_klineo_back_in_it(
        sim_env, invoke, enabled):
    """GIVEN a one-way connection whose account was switched to hedge outside KLINEO WHEN PATCH asks for
    one_way THEN the account is one-way again on Binance, not a 200 saying one_way over a hedge account."""
    exchange = _exchange(sim_env, enabled.account)
    exchange.set_dual_side(True)

    response = _patch(invoke, enabled.id, {"position_mode": "one_way"})

    assert response["statusCode"] == 200, response["body"]
    assert body_of(response)["position_mode"] == "one_way"
    assert exchange.dual_side is False


def test_leverage_above_the_symbols_bracket_is_422_naming_leverage(sim_env, invoke, enabled):
    """GIVEN leverage 100 as default WHEN BNBUSDT (max 75x) is first traded THEN 422 leverage, no order."""
    patched = _patch(invoke, enabled.id, {"max_leverage": 125, "leverage": 100})
    assert patched["statusCode"] == 200, patched["body"]
    sim_env.clear_journal()

    response = invoke(
        "futures_order", order_event(_market(enabled.id, symbol="BNBUSDT", quantity="0.5"), key=new_key())
    )

    assert response["statusCode"] == 422, response["body"]
    assert body_of(response)["error"]["field"] == "leverage"
    assert order_posts(sim_env) == [] and _setting_posts(sim_env) == []


def test_patch_shows_every_setting_and_refuses_leverage_above_max_leverage(sim_env, invoke, enabled):
    """GIVEN a connection WHEN PATCHed THEN the answer shows every setting; leverage > max_leverage is 422."""
    response = _patch(
        invoke, enabled.id, {"label": "main", "max_notional_usdt": "2500", "margin_type": "cross"}
    )
    refused = _patch(invoke, enabled.id, {"leverage": 20})

    assert response["statusCode"] == 200, response["body"]
    body = body_of(response)
    assert (body["label"], body["max_notional_usdt"], body["margin_type"]) == ("main", "2500", "cross")
    assert (body["max_leverage"], body["kill_switch"], body["position_mode"]) == (10, False, "one_way")
    assert refused["statusCode"] == 422 and body_of(refused)["error"]["field"] == "leverage"
    assert get_connection(USER_A, enabled.id).leverage is None


def test_a_leverage_setting_above_max_leverage_is_invalid_request_not_an_order_refusal(sim_env, invoke,
                                                                                       enabled):
    """GIVEN max_leverage 10 WHEN PATCH or futures enable sends leverage 50 / 11 THEN 422 invalid_request
    naming leverage (a setting, not an order), the value not echoed, nothing stored or sent."""
    sim_env.clear_journal()

    patched = _patch(invoke, enabled.id, {"leverage": 50})
    enabled_again = _enable(invoke, enabled.id, {"leverage": 11})

    for response in (patched, enabled_again):
        assert response["statusCode"] == 422, response["body"]
        error = body_of(response)["error"]
        assert (error["category"], error["field"]) == ("invalid_request", "leverage")
        assert error["errors"] == [{"field": "leverage", "message": error["message"]}]
        assert "max_leverage" in error["message"] and "50" not in error["message"]
    assert get_connection(USER_A, enabled.id).leverage is None
    assert _setting_posts(sim_env) == []


# ---------------------------------------------------------------- the risk gate


def test_order_above_max_notional_is_refused_naming_the_gate(sim_env, invoke, enabled):
    """GIVEN max_notional_usdt 100 WHEN a 200 USDT order comes THEN 422 max_notional_usdt, nothing sent."""
    assert _patch(invoke, enabled.id, {"max_notional_usdt": "100"})["statusCode"] == 200
    sim_env.clear_journal()

    response = invoke("futures_order", order_event(order_body(enabled.id), key=new_key()))

    assert response["statusCode"] == 422, response["body"]
    error = body_of(response)["error"]
    assert (error["category"], error["field"]) == ("order_rejected", "max_notional_usdt")
    assert order_posts(sim_env) == []


def test_an_order_valued_past_28_digits_is_refused_naming_the_gate_and_leaves_no_order(
        sim_env, invoke, enabled):
    """GIVEN a LIMIT BUY whose quantity and price each fit the request model (14 integer digits) WHEN it comes
    (its notional 1e26 passes Decimal's 28 digits at the cent) THEN 422 naming max_notional_usdt, not a 500;
    nothing sent and GET /futures/orders lists no order."""
    body = order_body(enabled.id, quantity="10000000000000", price="10000000000000")
    sim_env.clear_journal()

    response = invoke("futures_order", order_event(body, key=new_key()))

    assert response["statusCode"] == 422, response["body"]
    assert body_of(response)["error"]["field"] == "max_notional_usdt"
    assert order_posts(sim_env) == []
    history = invoke("futures_orders", with_user(load_event("futures_orders"), USER_A) | {
        "rawQueryString": "", "queryStringParameters": None})
    assert body_of(history)["orders"] == [], history["body"]


@pytest.mark.parametrize(("account", "position_side"), [("futures-full", None), ("futures-hedge", "SHORT")])
def test_a_sell_limit_below_the_mark_is_valued_at_the_mark_against_max_notional(
    sim_env, invoke, create_connection, account, position_side
):
    """GIVEN max_notional_usdt 10000, mark 70810 WHEN a marketable SELL LIMIT 0.148 at 67500 (9990 at its
    limit, 10480 where it fills) comes THEN 422 max_notional_usdt and nothing sent, one-way or hedge."""
    connection = create_connection(USER_A, account)
    assert _enable(invoke, connection.id)["statusCode"] == 200
    assert _patch(invoke, connection.id, {"max_notional_usdt": "10000"})["statusCode"] == 200
    sim_env.set_mark_price("BTCUSDT", 70810.0)
    sim_env.clear_journal()
    sell = order_body(connection.id, side="SELL", price="67500", quantity="0.148", positionSide=position_side)

    response = invoke("futures_order", order_event(sell, key=new_key()))

    assert response["statusCode"] == 422, response["body"]
    error = body_of(response)["error"]
    assert (error["category"], error["field"]) == ("order_rejected", "max_notional_usdt")
    assert "10479.88" in error["message"]
    assert order_posts(sim_env) == []


def test_limit_orders_that_cannot_fill_above_their_price_pass_at_it_and_a_buy_reads_no_mark(
    sim_env, invoke, enabled
):
    """GIVEN max_notional_usdt 10000, mark 70810 WHEN a BUY LIMIT 0.148 at 67500 and a SELL LIMIT 0.13 at
    76000 (above the mark) come THEN both rest; the BUY is valued at its limit without reading the mark."""
    assert _patch(invoke, enabled.id, {"max_notional_usdt": "10000"})["statusCode"] == 200
    sim_env.set_mark_price("BTCUSDT", 70810.0)
    sim_env.clear_journal()

    buy = invoke("futures_order", order_event(order_body(enabled.id, price="67500", quantity="0.148"),
                                              key=new_key()))
    buy_reads = [r for r in sim_env.journal if r.path == "/fapi/v1/premiumIndex"]
    sell = invoke("futures_order", order_event(
        order_body(enabled.id, side="SELL", price="76000", quantity="0.13"), key=new_key()))

    assert buy["statusCode"] == 200 and sell["statusCode"] == 200, (buy["body"], sell["body"])
    assert (body_of(buy)["status"], body_of(sell)["status"]) == ("NEW", "NEW")
    assert buy_reads == []
    assert len(order_posts(sim_env)) == 2


@pytest.mark.parametrize(("order_type", "trigger"), [("TAKE_PROFIT", "72000"), ("STOP", "69000")])
def test_a_sell_stop_limit_is_valued_at_the_higher_of_its_price_and_trigger_against_max_notional(
    sim_env, invoke, enabled, order_type, trigger
):
    """GIVEN max 10000 WHEN a SELL stop-limit 0.148 @ 67500 triggers above 67500 THEN 422, no mark read."""
    assert _patch(invoke, enabled.id, {"max_notional_usdt": "10000"})["statusCode"] == 200
    sim_env.set_mark_price("BTCUSDT", 70810.0)
    sim_env.clear_journal()
    sell = order_body(enabled.id, side="SELL", type=order_type, price="67500", quantity="0.148",
                      triggerPrice=trigger)

    response = invoke("futures_order", order_event(sell, key=new_key()))

    assert response["statusCode"] == 422, response["body"]
    error = body_of(response)["error"]
    assert (error["category"], error["field"]) == ("order_rejected", "max_notional_usdt")
    assert [r.path for r in sim_env.journal if r.method == "POST" or r.path == "/fapi/v1/premiumIndex"] == []


@pytest.mark.parametrize(("side", "order_type", "trigger"), [("BUY", "STOP_MARKET", "70000"),
                                                             ("SELL", "TAKE_PROFIT_MARKET", "72000")])
def test_a_stop_market_is_valued_at_its_trigger_when_it_fires_beyond_the_mark(
    sim_env, invoke, enabled, side, order_type, trigger
):
    """GIVEN max 10000 and the mark at 65000 WHEN a 0.148 stop / take-profit market order whose trigger is
    beyond the mark comes (9620 at the mark, over 10000 at the trigger, where it fills once it fires) THEN
    422 naming max_notional_usdt and nothing is sent."""
    assert _patch(invoke, enabled.id, {"max_notional_usdt": "10000"})["statusCode"] == 200
    sim_env.set_mark_price("BTCUSDT", 65000.0)
    sim_env.clear_journal()
    body = order_body(enabled.id, side=side, type=order_type, price=None, timeInForce=None, quantity="0.148",
                      triggerPrice=trigger)

    response = invoke("futures_order", order_event(body, key=new_key()))

    assert response["statusCode"] == 422, response["body"]
    error = body_of(response)["error"]
    assert (error["category"], error["field"]) == ("order_rejected", "max_notional_usdt")
    assert [r.path for r in sim_env.journal if r.method == "POST"] == []


@pytest.mark.parametrize("gate", ["global_kill_switch", "user_kill_switch", "connection_kill_switch"])
def test_each_kill_switch_refuses_new_exposure_naming_itself(sim_env, invoke, enabled, gate):
    """GIVEN one kill switch on WHEN an opening order comes THEN 409 naming that switch, no order request."""
    if gate == "global_kill_switch":
        flags.set_global_kill_switch(True)
    elif gate == "user_kill_switch":
        flags.set_user_kill_switch(USER_A, True)
    else:
        assert _patch(invoke, enabled.id, {"kill_switch": True})["statusCode"] == 200
    sim_env.clear_journal()

    response = invoke("futures_order", order_event(order_body(enabled.id), key=new_key()))

    assert response["statusCode"] == 409, response["body"]
    assert body_of(response)["error"]["field"] == gate
    assert order_posts(sim_env) == []
    assert sim_env.journal == []  # refused before any Binance call, public ones included


def test_connection_kill_switch_lets_a_reduce_only_close_through(sim_env, invoke, enabled):
    """GIVEN a long and the connection's kill switch on WHEN closed reduce-only THEN it goes through."""
    assert invoke("futures_order", order_event(_market(enabled.id), key=new_key()))["statusCode"] == 200
    assert _patch(invoke, enabled.id, {"kill_switch": True})["statusCode"] == 200

    opening = invoke("futures_order", order_event(_market(enabled.id), key=new_key()))
    close = invoke(
        "futures_order", order_event(_market(enabled.id, side="SELL", reduceOnly=True), key=new_key())
    )

    assert opening["statusCode"] == 409 and body_of(opening)["error"]["field"] == "connection_kill_switch"
    assert close["statusCode"] == 200, close["body"]
    assert body_of(close)["status"] == "FILLED" and body_of(close)["reduce_only"] is True
    assert _exchange(sim_env, enabled.account).holds("BTCUSDT") is False


def test_hedge_account_order_without_position_side_is_refused_before_sending(
    sim_env, invoke, create_connection
):
    """GIVEN a hedge-mode account WHEN an order lacks positionSide THEN 400 positionSide, nothing sent."""
    connection = create_connection(USER_A, "futures-hedge")
    enabled = _enable(invoke, connection.id)
    assert enabled["statusCode"] == 200 and body_of(enabled)["position_mode"] == "hedge"
    sim_env.clear_journal()

    response = invoke("futures_order", order_event(order_body(connection.id), key=new_key()))

    assert response["statusCode"] == 400, response["body"]
    assert body_of(response)["error"]["field"] == "positionSide"
    assert sim_env.journal == []


def test_a_position_side_refused_for_the_connections_mode_says_how_to_match_an_account_switched_outside(
    sim_env, invoke, enabled
):
    """GIVEN a one-way connection whose account was switched to hedge outside KLINEO WHEN an order names
    positionSide LONG THEN the 400 names the connection's mode, not the account's, and the PATCH to hedge."""
    _exchange(sim_env, enabled.account).set_dual_side(True)
    long_entry = order_body(enabled.id, positionSide="LONG")

    response = invoke("futures_order", order_event(long_entry, key=new_key()))

    assert response["statusCode"] == 400, response["body"]
    error = body_of(response)["error"]
    assert error["field"] == "positionSide"
    assert "connection is in one-way mode" in error["message"] and "position_mode hedge" in error["message"]


@pytest.mark.parametrize("side", ["SELL", "BUY"])
def test_hedge_account_reduce_only_is_400_naming_reduce_only_and_how_to_close(
    sim_env, invoke, create_connection, side
):
    """GIVEN a hedge-mode account WHEN an order has positionSide LONG and reduceOnly THEN 400 invalid_request
    naming reduceOnly, saying it is not sent in hedge mode and that SELL LONG closes; nothing sent."""
    connection = create_connection(USER_A, "futures-hedge")
    assert _enable(invoke, connection.id)["statusCode"] == 200
    sim_env.clear_journal()

    response = invoke("futures_order", order_event(
        order_body(connection.id, side=side, positionSide="LONG", reduceOnly=True), key=new_key()))

    assert response["statusCode"] == 400, response["body"]
    error = body_of(response)["error"]
    assert (error["category"], error["field"]) == ("invalid_request", "reduceOnly")
    assert "hedge mode" in error["message"] and "SELL with positionSide LONG" in error["message"]
    assert sim_env.journal == []
