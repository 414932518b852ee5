"""Positions view and close against moto and the simulator over loopback: what Binance holds, closed once."""

from __future__ import annotations

import dataclasses
import json
import time
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import responses
from klineo.store import flags
from klineo.store.orders import get_order_record, is_settled

from local.binance_sim import market
from tests.integration.api.conftest import USER_A, USER_B, connection_event
from tests.integration.futures.helpers import (
    ORDER_PATH,
    body_of,
    exchange_orders,
    hedge_long,
    new_key,
    order_body,
    order_event,
    raise_notional_limit,
)

CLOSE_SUFFIX = "/futures/positions/BTCUSDT/close"
# BTCUSDT's MARKET_LOT_SIZE maxQty made 0.01 (from 120; its step stays 0.001, LOT_SIZE's maxQty 1000).
MAX_QTY_001 = {"futures_market_max_qty": "0.01"}


def _positions(invoke: Any, connection_id: str, user: str = USER_A) -> dict[str, Any]:
    event = connection_event("futures_positions", connection_id, user, "/futures/positions")
    return invoke("futures_positions", event)


def _close_event(connection_id: str, key: str | None, user: str = USER_A,
                 position_side: str | None = None) -> dict[str, Any]:
    event = connection_event("futures_position_close", connection_id, user, CLOSE_SUFFIX)
    event["pathParameters"]["symbol"] = "BTCUSDT"
    if position_side is not None:
        event["rawQueryString"] = f"position_side={position_side}"
        event["queryStringParameters"] = {"position_side": position_side}
    if key is None:
        event["headers"].pop("idempotency-key", None)
    else:
        event["headers"]["idempotency-key"] = key
    return event


def _open_long(invoke: Any, connection_id: str, quantity: str = "0.002") -> dict[str, Any]:
    body = order_body(connection_id, type="MARKET", price=None, timeInForce=None, quantity=quantity)
    response = invoke("futures_order", order_event(body, key=new_key()))
    assert response["statusCode"] == 200, response["body"]
    return body_of(response)


def _sim_rows(sim: Any, account_id: str) -> list[dict[str, Any]]:
    account = sim.account(account_id)
    rows = sim.state.futures.position_risk(account, "BTCUSDT", time.time() * 1000, 3)
    return [r for r in rows if Decimal(r["positionAmt"]) != 0]


def _order_posts(sim: Any) -> list[Any]:
    return [r for r in sim.journal if r.method == "POST" and r.path == ORDER_PATH]


def _closing_orders(sim: Any, account: Any) -> list[Any]:
    """Orders Binance holds on the account that sell a LONG: reduce-only, or SELL on the LONG side."""
    return [o for o in exchange_orders(sim, account)
            if o.side == "SELL" and (o.reduce_only or o.position_side == "LONG")]


def test_positions_read_matches_the_simulator_after_an_order(sim_env, invoke, futures_connection):
    """GIVEN a MARKET BUY filled WHEN positions are read THEN one LONG matching Binance's positionRisk."""
    _open_long(invoke, futures_connection.id)
    # The simulated mark price moves with the clock: hold it still so both reads see one price
    # (on a loaded machine the two reads fell in different moments and the notionals differed).
    mark = _sim_rows(sim_env, futures_connection.account.id)[0]["markPrice"]
    sim_env.set_mark_price("BTCUSDT", float(mark))
    try:
        response = _positions(invoke, futures_connection.id)
        (row,) = _sim_rows(sim_env, futures_connection.account.id)
    finally:
        sim_env.set_mark_price("BTCUSDT", None)

    assert response["statusCode"] == 200, response["body"]
    (position,) = body_of(response)["positions"]
    assert position["symbol"] == "BTCUSDT" and position["side"] == "LONG"
    assert position["position_side"] == "BOTH"
    assert Decimal(position["amount"]) == Decimal(row["positionAmt"]) == Decimal("0.002")
    assert Decimal(position["entry_price"]) == Decimal(row["entryPrice"])
    assert Decimal(position["notional"]) == abs(Decimal(row["notional"]))
    assert position["mark_price"] and position["unrealized_pnl"] is not None
    # the account's 20x, lowered to max_leverage (10) before the first order: no leverage is set
    assert position["leverage"] == 10 and position["margin_type"] == "cross"
    assert position["protective_orders"] == []


def test_no_position_reads_an_empty_list(sim_env, invoke, futures_connection):
    """GIVEN only a resting LIMIT order WHEN positions are read THEN none (v3 lists the symbol, amount 0)."""
    assert invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))[
        "statusCode"] == 200

    response = _positions(invoke, futures_connection.id)

    assert response["statusCode"] == 200 and body_of(response)["positions"] == []


def test_injected_liquidation_makes_the_position_read_zero(sim_env, invoke, futures_connection):
    """GIVEN a LONG WHEN Binance liquidates it (injected) THEN the positions view is empty at once."""
    _open_long(invoke, futures_connection.id)
    assert len(body_of(_positions(invoke, futures_connection.id))["positions"]) == 1

    sim_env.inject_trade(futures_connection.account.id, "liquidation", "BTCUSDT")

    assert body_of(_positions(invoke, futures_connection.id))["positions"] == []
    assert _sim_rows(sim_env, futures_connection.account.id) == []


def test_protective_algo_orders_are_listed_with_their_position(sim_env, invoke, futures_connection):
    """GIVEN a LONG and an open STOP_MARKET SELL closePosition WHEN positions are read THEN it is listed."""
    _open_long(invoke, futures_connection.id)
    account = sim_env.account(futures_connection.account.id)
    mark = Decimal(body_of(_positions(invoke, futures_connection.id))["positions"][0]["mark_price"])
    trigger = format((mark * Decimal("0.9")).quantize(Decimal("0.1")), "f")
    sim_env.state.algo.place(account, {
        "algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
        "triggerPrice": trigger, "closePosition": "true", "clientAlgoId": "sl-test-1",
    }, time.time() * 1000)

    (position,) = body_of(_positions(invoke, futures_connection.id))["positions"]

    (guard,) = position["protective_orders"]
    assert guard["client_algo_id"] == "sl-test-1" and guard["type"] == "STOP_MARKET"
    assert guard["side"] == "SELL" and guard["close_position"] is True
    assert Decimal(guard["trigger_price"]) == Decimal(trigger) and guard["status"] == "NEW"


def test_positions_of_another_users_connection_are_not_found(sim_env, invoke, futures_connection):
    """GIVEN USER_A's connection WHEN USER_B reads its positions THEN 404 and no Binance call."""
    before = len(sim_env.journal)

    response = _positions(invoke, futures_connection.id, user=USER_B)

    assert response["statusCode"] == 404 and len(sim_env.journal) == before


# ---------------------------------------------------------------- close


def test_close_sent_twice_with_one_key_places_one_reduce_only_order(sim_env, invoke, futures_connection):
    """GIVEN a LONG WHEN the close is sent twice with one key
    THEN one reduce-only SELL in the journal, the same answer twice, and the position is 0."""
    _open_long(invoke, futures_connection.id)
    key = new_key()
    posts_before = len(_order_posts(sim_env))

    first = invoke("futures_position_close", _close_event(futures_connection.id, key))
    second = invoke("futures_position_close", _close_event(futures_connection.id, key))

    assert first["statusCode"] == 200, first["body"]
    assert second["statusCode"] == 200, second["body"]
    one, two = body_of(first), body_of(second)
    assert one["client_order_id"] == two["client_order_id"] and two["source"] == "existing"
    assert one["side"] == "SELL" and one["type"] == "MARKET" and one["reduce_only"] is True
    assert one["status"] == "FILLED" and one["executed_quantity"] == "0.002"
    assert len(_order_posts(sim_env)) == posts_before + 1
    (close,) = _closing_orders(sim_env, futures_connection.account)
    assert close.reduce_only and close.orig_qty == Decimal("0.002") and close.type == "MARKET"
    assert close.client_order_id == one["client_order_id"]
    assert _sim_rows(sim_env, futures_connection.account.id) == []


def test_close_retried_after_the_position_is_gone_sends_none(sim_env, invoke, futures_connection):
    """GIVEN a close done WHEN the same key comes back (no position any more)
    THEN the order record answers: still one reduce-only order, not a "no position" error."""
    _open_long(invoke, futures_connection.id)
    key = new_key()
    assert invoke("futures_position_close", _close_event(futures_connection.id, key))["statusCode"] == 200

    again = invoke("futures_position_close", _close_event(futures_connection.id, key))

    assert again["statusCode"] == 200, again["body"]
    assert body_of(again)["source"] == "existing"
    assert len(_closing_orders(sim_env, futures_connection.account)) == 1


def _coarse_market_lot(sim: Any, monkeypatch: Any, invoke: Any, connection_id: str, quantity: str) -> None:
    """BTCUSDT's MARKET step and minimum made 0.01 (LOT_SIZE keeps 0.001); a LIMIT-bought LONG of quantity."""
    spec = market.SYMBOLS["BTCUSDT"]
    monkeypatch.setitem(market.SYMBOLS, "BTCUSDT", dataclasses.replace(spec, futures_market_step="0.01",
                                                                       futures_market_min_qty="0.01"))
    sim.set_mark_price("BTCUSDT", 65000.0)
    body = order_body(connection_id, quantity=quantity, price="65500", timeInForce="GTC")
    entry = invoke("futures_order", order_event(body, key=new_key()))
    assert entry["statusCode"] == 200 and body_of(entry)["status"] == "FILLED", entry["body"]


def test_close_rounds_down_to_a_coarser_market_step_and_reports_what_is_left(
        sim_env, invoke, futures_connection, monkeypatch):
    """GIVEN a 0.015 LONG, MARKET step 0.01 WHEN closed THEN a reduce-only MARKET 0.01 fills, 0.005 left."""
    _coarse_market_lot(sim_env, monkeypatch, invoke, futures_connection.id, "0.015")

    response = invoke("futures_position_close", _close_event(futures_connection.id, new_key()))

    assert response["statusCode"] == 200, response["body"]
    answer = body_of(response)
    assert (answer["status"], answer["executed_quantity"]) == ("FILLED", "0.01")
    assert answer["position_left"] == "0.005"
    (close,) = _closing_orders(sim_env, futures_connection.account)
    assert close.reduce_only and close.type == "MARKET" and close.orig_qty == Decimal("0.01")
    (held,) = _sim_rows(sim_env, futures_connection.account.id)
    assert Decimal(held["positionAmt"]) == Decimal("0.005")


def test_a_retried_close_answers_what_the_first_left_without_reading_the_position(
        sim_env, invoke, futures_connection, monkeypatch):
    """GIVEN a 0.015 LONG closed with MARKET step 0.01 (0.005 left) WHEN the same key comes again THEN the
    first close is answered (`existing`) with the same position_left 0.005, no position read, none sent."""
    _coarse_market_lot(sim_env, monkeypatch, invoke, futures_connection.id, "0.015")
    key = new_key()
    first = body_of(invoke("futures_position_close", _close_event(futures_connection.id, key)))
    journal = len(sim_env.journal)

    again = invoke("futures_position_close", _close_event(futures_connection.id, key))

    assert again["statusCode"] == 200, again["body"]
    answer = body_of(again)
    assert (answer["source"], answer["client_order_id"]) == ("existing", first["client_order_id"])
    assert first["position_left"] == answer["position_left"] == "0.005"
    assert not [r.path for r in sim_env.journal[journal:] if "position" in r.path.lower()]
    assert len(_closing_orders(sim_env, futures_connection.account)) == 1


def test_close_of_a_position_under_one_market_step_is_refused_naming_the_step(
        sim_env, invoke, futures_connection, monkeypatch):
    """GIVEN a 0.005 LONG, MARKET step 0.01 WHEN closed THEN 400 naming the step, none sent."""
    _coarse_market_lot(sim_env, monkeypatch, invoke, futures_connection.id, "0.005")
    posts_before = len(_order_posts(sim_env))

    response = invoke("futures_position_close", _close_event(futures_connection.id, new_key()))

    assert response["statusCode"] == 400, response["body"]
    error = body_of(response)["error"]
    assert error["field"] == "symbol" and "MARKET step size 0.01" in error["message"]
    assert "reduce-only LIMIT" in error["message"] and "0.005" not in error["message"]
    assert len(_order_posts(sim_env)) == posts_before


def _guarded_entry(sim: Any, monkeypatch: Any, invoke: Any, connection_id: str, quantity: str,
                   hedge: bool = False, **market_lot: str) -> None:
    """BTCUSDT's MARKET_LOT_SIZE changed by ``market_lot`` (SymbolSpec fields, e.g. futures_market_max_qty);
    a LIMIT-bought LONG of quantity (positionSide LONG on a hedge account), guarded by a closePosition
    stop-loss and take-profit (a quantity-sized one above maxQty would be refused)."""
    spec = dataclasses.replace(market.SYMBOLS["BTCUSDT"], **market_lot)
    monkeypatch.setitem(market.SYMBOLS, "BTCUSDT", spec)
    sim.set_mark_price("BTCUSDT", 65000.0)
    raise_notional_limit(connection_id)
    side = {"positionSide": "LONG"} if hedge else {}
    body = order_body(connection_id, quantity=quantity, price="65500", timeInForce="GTC", **side)
    entry = invoke("futures_order", order_event(body, key=new_key()))
    assert entry["statusCode"] == 200 and body_of(entry)["status"] == "FILLED", entry["body"]
    for kind, trigger in (("STOP_MARKET", "60000"), ("TAKE_PROFIT_MARKET", "70000")):
        guard = order_body(connection_id, side="SELL", type=kind, price=None, timeInForce=None, quantity=None,
                           closePosition=True, triggerPrice=trigger, **side)
        placed = invoke("futures_order", order_event(guard, key=new_key()))
        assert placed["statusCode"] == 200 and body_of(placed)["status"] == "NEW", placed["body"]


def _guard_statuses(sim: Any, account_id: str) -> list[str]:
    state = sim.state.futures.state_for(sim.account(account_id), time.time() * 1000)
    return sorted(a.status for a in state.algo_orders.values())


def _held(sim: Any, account_id: str) -> Decimal:
    return sum((abs(Decimal(r["positionAmt"])) for r in _sim_rows(sim, account_id)), Decimal(0))


def test_close_above_the_market_max_qty_closes_that_much_and_answers_the_rest(
        sim_env, invoke, futures_connection, monkeypatch):
    """GIVEN a guarded 0.025 LONG and a MARKET maxQty of 0.01 WHEN closed THEN a reduce-only MARKET 0.01
    fills (not a 400), position_left is 0.015, and the stop-loss and take-profit stay armed on the rest."""
    _guarded_entry(sim_env, monkeypatch, invoke, futures_connection.id, "0.025", **MAX_QTY_001)

    response = invoke("futures_position_close", _close_event(futures_connection.id, new_key()))

    assert response["statusCode"] == 200, response["body"]
    answer = body_of(response)
    assert (answer["status"], answer["executed_quantity"]) == ("FILLED", "0.01")
    assert answer["position_left"] == "0.015"
    (close,) = _closing_orders(sim_env, futures_connection.account)
    assert close.reduce_only and close.type == "MARKET" and close.orig_qty == Decimal("0.01")
    assert _held(sim_env, futures_connection.account.id) == Decimal("0.015")
    assert _guard_statuses(sim_env, futures_connection.account.id) == ["NEW", "NEW"]


def test_a_capped_close_retried_with_its_key_answers_the_same_and_sends_nothing(
        sim_env, invoke, futures_connection, monkeypatch):
    """GIVEN a 0.025 LONG closed up to a MARKET maxQty of 0.01 WHEN the same key comes again THEN the first
    close is answered (existing, position_left 0.015): no second order, the guards still armed."""
    _guarded_entry(sim_env, monkeypatch, invoke, futures_connection.id, "0.025", **MAX_QTY_001)
    key = new_key()
    first = body_of(invoke("futures_position_close", _close_event(futures_connection.id, key)))
    posts = len(_order_posts(sim_env))

    again = invoke("futures_position_close", _close_event(futures_connection.id, key))

    assert again["statusCode"] == 200, again["body"]
    answer = body_of(again)
    assert (answer["source"], answer["client_order_id"]) == ("existing", first["client_order_id"])
    assert first["position_left"] == answer["position_left"] == "0.015"
    assert len(_order_posts(sim_env)) == posts
    assert _held(sim_env, futures_connection.account.id) == Decimal("0.015")
    assert _guard_statuses(sim_env, futures_connection.account.id) == ["NEW", "NEW"]


def test_closes_with_new_keys_close_the_rest_and_only_the_last_cancels_the_guards(
        sim_env, invoke, futures_connection, monkeypatch):
    """GIVEN a guarded 0.025 LONG and a MARKET maxQty of 0.01 WHEN closed three times, each with a new key
    THEN 0.01, 0.01 and 0.005 are sold (0.015, 0.005, nothing left): the guards stay armed until the last
    close, which cancels them, and the position is 0."""
    _guarded_entry(sim_env, monkeypatch, invoke, futures_connection.id, "0.025", **MAX_QTY_001)
    answers, guards = [], []

    for _ in range(3):
        response = invoke("futures_position_close", _close_event(futures_connection.id, new_key()))
        assert response["statusCode"] == 200, response["body"]
        answers.append(body_of(response))
        guards.append(_guard_statuses(sim_env, futures_connection.account.id))

    assert [(a["executed_quantity"], a.get("position_left")) for a in answers] == [
        ("0.01", "0.015"), ("0.01", "0.005"), ("0.005", None)]
    assert guards == [["NEW", "NEW"], ["NEW", "NEW"], ["CANCELED", "CANCELED"]]
    assert _sim_rows(sim_env, futures_connection.account.id) == []
    assert len(_closing_orders(sim_env, futures_connection.account)) == 3


def test_hedge_close_above_the_market_max_qty_closes_that_much_then_the_rest(
        sim_env, invoke, create_connection, monkeypatch):
    """GIVEN a hedge-mode guarded 0.015 LONG and a MARKET maxQty of 0.01 WHEN closed THEN SELL 0.01 on
    positionSide LONG without reduceOnly, position_left 0.005, the guards armed; WHEN closed again with a
    new key THEN the 0.005 is sold and the guards are cancelled."""
    connection = create_connection(USER_A, "futures-hedge")
    event = connection_event("futures_enable", connection.id, USER_A, "/futures/enable")
    assert invoke("futures_enable", event)["statusCode"] == 200
    _guarded_entry(sim_env, monkeypatch, invoke, connection.id, "0.015", hedge=True, **MAX_QTY_001)

    first = invoke("futures_position_close", _close_event(connection.id, new_key()))
    guards_after_first = _guard_statuses(sim_env, "futures-hedge")
    second = invoke("futures_position_close", _close_event(connection.id, new_key()))

    assert first["statusCode"] == 200, first["body"]
    one, two = body_of(first), body_of(second)
    assert (one["side"], one["position_side"], one["reduce_only"]) == ("SELL", "LONG", False)
    assert (one["executed_quantity"], one["position_left"]) == ("0.01", "0.005")
    assert guards_after_first == ["NEW", "NEW"]
    assert (two["status"], two["executed_quantity"], two.get("position_left")) == ("FILLED", "0.005", None)
    closes = _closing_orders(sim_env, connection.account)
    assert [(c.orig_qty, c.position_side, c.reduce_only) for c in closes] == [
        (Decimal("0.01"), "LONG", False), (Decimal("0.005"), "LONG", False)]
    assert _guard_statuses(sim_env, "futures-hedge") == ["CANCELED", "CANCELED"]
    assert _sim_rows(sim_env, "futures-hedge") == []


def test_close_leaving_only_dust_under_a_market_step_cancels_the_guards(
        sim_env, invoke, futures_connection, monkeypatch):
    """Guard (unchanged behaviour): GIVEN a guarded 0.015 LONG, MARKET step 0.01 WHEN closed THEN 0.01 is
    sold, position_left 0.005 (dust, under one step) and the guards are cancelled, on the first close and
    on its retry alike."""
    _guarded_entry(sim_env, monkeypatch, invoke, futures_connection.id, "0.015", futures_market_step="0.01",
                   futures_market_min_qty="0.01")
    key = new_key()

    first = body_of(invoke("futures_position_close", _close_event(futures_connection.id, key)))
    again = body_of(invoke("futures_position_close", _close_event(futures_connection.id, key)))

    assert (first["executed_quantity"], first["position_left"]) == ("0.01", "0.005")
    assert again["position_left"] == "0.005"
    assert _guard_statuses(sim_env, futures_connection.account.id) == ["CANCELED", "CANCELED"]


def test_close_with_a_key_that_placed_a_partial_reduce_is_409_and_touches_nothing(sim_env, invoke,
                                                                                  futures_connection):
    """GIVEN a LONG of 0.004, 0.002 of it reduced by a reduce-only MARKET sent with key K, and a stop on
    the rest WHEN a close comes with K THEN 409 naming Idempotency-Key: no order is sent, the rest stays
    open and its stop stays armed (the partial order is never taken for the close)."""
    _open_long(invoke, futures_connection.id, quantity="0.004")
    key = new_key()
    market = {"type": "MARKET", "price": None, "timeInForce": None}
    reduce = order_body(futures_connection.id, side="SELL", quantity="0.002", reduceOnly=True, **market)
    assert body_of(invoke("futures_order", order_event(reduce, key=key)))["status"] == "FILLED"
    trigger = (Decimal(str(sim_env.mark_price("BTCUSDT"))) * Decimal("0.9")).quantize(Decimal("0.1"))
    stop = order_body(futures_connection.id, side="SELL", type="STOP_MARKET", price=None, timeInForce=None,
                      quantity="0.002", reduceOnly=True, triggerPrice=format(trigger, "f"))
    stop_id = body_of(invoke("futures_order", order_event(stop, key=new_key())))["client_order_id"]
    sent_before = len(sim_env.journal)

    close = invoke("futures_position_close", _close_event(futures_connection.id, key))

    assert close["statusCode"] == 409, close["body"]
    assert body_of(close)["error"]["field"] == "Idempotency-Key"
    assert len(sim_env.journal) == sent_before
    (row,) = _sim_rows(sim_env, futures_connection.account.id)
    assert Decimal(row["positionAmt"]) == Decimal("0.002")
    account = sim_env.account(futures_connection.account.id)
    state = sim_env.state.futures.state_for(account, time.time() * 1000)
    assert [a.status for a in state.algo_orders.values() if a.client_algo_id == stop_id] == ["NEW"]


def _expired_market(request: Any) -> tuple[int, dict[str, str], str]:
    """Binance's answer to a MARKET order that ended EXPIRED with nothing filled (no liquidity)."""
    sent = dict(parse_qsl(urlsplit(request.url).query))
    answer = {"orderId": 4_100_000_999, "symbol": sent["symbol"], "status": "EXPIRED",
              "clientOrderId": sent["newClientOrderId"], "price": "0", "avgPrice": "0.00",
              "origQty": sent["quantity"], "executedQty": "0", "cumQuote": "0", "timeInForce": "GTC",
              "type": "MARKET", "reduceOnly": True, "closePosition": False, "side": sent["side"],
              "positionSide": "BOTH", "stopPrice": "0", "workingType": "CONTRACT_PRICE",
              "priceProtect": False, "origType": "MARKET", "updateTime": int(time.time() * 1000)}
    return 200, {"Content-Type": "application/json"}, json.dumps(answer)


def _reduce_only_stop(sim: Any, invoke: Any, connection_id: str, kind: str = "STOP_MARKET") -> str:
    """A reduce-only SELL ``kind`` for 0.002 BTCUSDT placed through the order route, triggering 10 % below
    the mark (a TAKE_PROFIT_MARKET: 10 % above); its clientAlgoId."""
    factor = Decimal("1.1") if kind.startswith("TAKE_PROFIT") else Decimal("0.9")
    trigger = (Decimal(str(sim.mark_price("BTCUSDT"))) * factor).quantize(Decimal("0.1"))
    stop = order_body(connection_id, side="SELL", type=kind, price=None, timeInForce=None,
                      quantity="0.002", reduceOnly=True, triggerPrice=format(trigger, "f"))
    placed = invoke("futures_order", order_event(stop, key=new_key()))
    assert placed["statusCode"] == 200 and body_of(placed)["status"] == "NEW", placed["body"]
    return body_of(placed)["client_order_id"]


def _algo_statuses(sim: Any, account_id: str, client_algo_id: str) -> list[str]:
    state = sim.state.futures.state_for(sim.account(account_id), time.time() * 1000)
    return [a.status for a in state.algo_orders.values() if a.client_algo_id == client_algo_id]


def test_a_close_retried_after_a_new_position_leaves_the_new_positions_stop_armed(
        sim_env, invoke, futures_connection):
    """GIVEN a LONG closed with key K (its stop cancelled), then a new LONG guarded by a new reduce-only stop
    WHEN the close is retried with K (a late client retry) THEN the first close is answered and the NEW stop
    stays armed: a retry cancels only stops placed before its close filled (before: it cancelled every
    reduce-only stop of the symbol, leaving the new position unprotected)."""
    _open_long(invoke, futures_connection.id)
    old_stop = _reduce_only_stop(sim_env, invoke, futures_connection.id)
    key = new_key()
    first = invoke("futures_position_close", _close_event(futures_connection.id, key))
    assert first["statusCode"] == 200 and body_of(first)["status"] == "FILLED", first["body"]
    _open_long(invoke, futures_connection.id)
    new_stop = _reduce_only_stop(sim_env, invoke, futures_connection.id)

    again = invoke("futures_position_close", _close_event(futures_connection.id, key))

    assert again["statusCode"] == 200, again["body"]
    assert body_of(again)["source"] == "existing"
    account_id = futures_connection.account.id
    assert _algo_statuses(sim_env, account_id, old_stop) == ["CANCELED"]
    assert _algo_statuses(sim_env, account_id, new_stop) == ["NEW"]
    assert [row["positionAmt"] for row in _sim_rows(sim_env, account_id)] == ["0.002"]


def test_a_close_whose_first_stop_cancel_fails_still_cancels_the_other_stops(sim_env, invoke,
                                                                            futures_connection):
    """GIVEN a LONG guarded by a reduce-only stop and take-profit, and Binance failing the first algo cancel
    (500) WHEN closed THEN FILLED, and the cancel that failed does not keep the other order armed (before:
    the first failure ended the cleanup, every later stop left standing for a later position)."""
    _open_long(invoke, futures_connection.id)
    guards = [_reduce_only_stop(sim_env, invoke, futures_connection.id, kind)
              for kind in ("STOP_MARKET", "TAKE_PROFIT_MARKET")]
    sim_env.faults.add("http_500", method="DELETE", path="/fapi/v1/algoOrder")

    close = invoke("futures_position_close", _close_event(futures_connection.id, new_key()))

    assert close["statusCode"] == 200 and body_of(close)["status"] == "FILLED", close["body"]
    account_id = futures_connection.account.id
    statuses = [s for guard in guards for s in _algo_statuses(sim_env, account_id, guard)]
    assert sorted(statuses) == ["CANCELED", "NEW"]


def test_close_that_expired_unfilled_leaves_the_positions_stop_armed(sim_env, invoke, futures_connection):
    """GIVEN a LONG guarded by a reduce-only stop WHEN the close's MARKET order ends EXPIRED with nothing
    filled THEN the answer says EXPIRED, and the stop is not cancelled: the position it guards is open."""
    _open_long(invoke, futures_connection.id)
    stop_id = _reduce_only_stop(sim_env, invoke, futures_connection.id)

    with responses.RequestsMock(assert_all_requests_are_fired=True) as exchange:
        exchange.add_passthru(sim_env.url)
        exchange.add_callback(responses.POST, f"{sim_env.url}{ORDER_PATH}", callback=_expired_market)
        close = invoke("futures_position_close", _close_event(futures_connection.id, new_key()))

    assert close["statusCode"] == 200, close["body"]
    assert (body_of(close)["status"], body_of(close)["executed_quantity"]) == ("EXPIRED", "0")
    account = sim_env.account(futures_connection.account.id)
    state = sim_env.state.futures.state_for(account, time.time() * 1000)
    assert [a.status for a in state.algo_orders.values() if a.client_algo_id == stop_id] == ["NEW"]
    assert [row["positionAmt"] for row in _sim_rows(sim_env, futures_connection.account.id)] == ["0.002"]


def test_close_without_idempotency_key_is_428_and_sends_nothing(sim_env, invoke, futures_connection):
    """GIVEN a LONG WHEN the close comes without Idempotency-Key THEN 428 saying why, nothing sent."""
    _open_long(invoke, futures_connection.id)
    before = len(sim_env.journal)

    response = invoke("futures_position_close", _close_event(futures_connection.id, None))

    assert response["statusCode"] == 428, response["body"]
    error = body_of(response)["error"]
    assert error["category"] == "precondition_required" and error["field"] == "Idempotency-Key"
    assert "retry" in error["message"] and len(sim_env.journal) == before


def test_close_without_a_position_is_not_found(sim_env, invoke, futures_connection):
    """GIVEN no position WHEN a close is sent THEN 404 naming symbol, and no order is sent."""
    response = invoke("futures_position_close", _close_event(futures_connection.id, new_key()))

    assert response["statusCode"] == 404, response["body"]
    assert body_of(response)["error"]["field"] == "symbol"
    assert _order_posts(sim_env) == []


def test_close_passes_under_the_kill_switch(sim_env, invoke, futures_connection):
    """GIVEN a LONG and the user's kill switch on WHEN a close is sent THEN it goes through (reduces only)."""
    _open_long(invoke, futures_connection.id)
    flags.set_user_kill_switch(USER_A, True)

    response = invoke("futures_position_close", _close_event(futures_connection.id, new_key()))

    assert response["statusCode"] == 200, response["body"]
    assert body_of(response)["status"] == "FILLED"
    assert len(_closing_orders(sim_env, futures_connection.account)) == 1


def test_switching_futures_off_does_not_trap_an_open_position(sim_env, invoke, futures_connection):
    """GIVEN a LONG, then futures switched off WHEN a new entry, a reduce-only order and a close are sent
    THEN the entry is refused (futures_disabled) and both reducing orders go through: it stays closable."""
    _open_long(invoke, futures_connection.id, quantity="0.004")
    off = connection_event("futures_disable", futures_connection.id, USER_A, "/futures/disable")
    assert invoke("futures_disable", off)["statusCode"] == 200
    entry = invoke("futures_order", order_event(order_body(futures_connection.id, type="MARKET", price=None,
                                                           timeInForce=None), key=new_key()))
    assert (entry["statusCode"], body_of(entry)["error"]["field"]) == (409, "futures_disabled")
    reduce = order_body(futures_connection.id, side="SELL", type="MARKET", price=None, timeInForce=None,
                        quantity="0.002", reduceOnly=True)

    reduced = invoke("futures_order", order_event(reduce, key=new_key()))
    closed = invoke("futures_position_close", _close_event(futures_connection.id, new_key()))

    assert reduced["statusCode"] == 200, reduced["body"]
    assert closed["statusCode"] == 200, closed["body"]
    assert body_of(closed)["status"] == "FILLED"
    assert body_of(_positions(invoke, futures_connection.id))["positions"] == []


def test_close_in_hedge_mode_sends_position_side_and_no_reduce_only(sim_env, invoke, create_connection):
    """GIVEN a hedge-mode LONG WHEN closed THEN SELL, positionSide LONG, no reduceOnly (Binance's rule)."""
    connection = hedge_long(invoke, create_connection)

    response = invoke("futures_position_close", _close_event(connection.id, new_key()))

    assert response["statusCode"] == 200, response["body"]
    answer = body_of(response)
    assert answer["position_side"] == "LONG" and answer["side"] == "SELL" and answer["reduce_only"] is False
    (close,) = _closing_orders(sim_env, connection.account)
    assert close.position_side == "LONG" and not close.reduce_only
    assert _sim_rows(sim_env, "futures-hedge") == []


def test_hedge_close_below_the_minimum_notional_closes_the_position(sim_env, invoke, create_connection):
    """GIVEN a hedge-mode LONG now worth less than the symbol's minimum notional (the mark fell) WHEN it is
    closed THEN the close is sent, not refused by our own check, and closes it: a hedge-mode close cannot
    carry reduceOnly, but Binance books it reduce-only and -4164 exempts reduce-only orders
    (docs/binance-facts.md §4; the simulator does the same)."""
    connection = create_connection(USER_A, "futures-hedge")
    event = connection_event("futures_enable", connection.id, USER_A, "/futures/enable")
    assert invoke("futures_enable", event)["statusCode"] == 200
    body = order_body(connection.id, type="MARKET", price=None, timeInForce=None, quantity="0.002",
                      positionSide="LONG")
    assert invoke("futures_order", order_event(body, key=new_key()))["statusCode"] == 200
    sim_env.set_mark_price("BTCUSDT", 2000.0)  # 0.002 x 2,000 = 4 USDT, under the minimum of 100

    response = invoke("futures_position_close", _close_event(connection.id, new_key()))

    assert [r.code for r in _order_posts(sim_env)[1:]] == [None]
    assert response["statusCode"] == 200, response["body"]
    answer = body_of(response)
    assert (answer["side"], answer["position_side"], answer["status"]) == ("SELL", "LONG", "FILLED")
    assert _sim_rows(sim_env, "futures-hedge") == []


def _hedge_long_and_short(invoke: Any, create_connection: Any) -> Any:
    """A hedge-mode connection, futures enabled, holding a LONG and a SHORT of 0.002 BTCUSDT."""
    connection = create_connection(USER_A, "futures-hedge")
    event = connection_event("futures_enable", connection.id, USER_A, "/futures/enable")
    assert invoke("futures_enable", event)["statusCode"] == 200
    raise_notional_limit(connection.id)
    for side, position_side in (("BUY", "LONG"), ("SELL", "SHORT")):
        body = order_body(connection.id, side=side, type="MARKET", price=None, timeInForce=None,
                          quantity="0.002", positionSide=position_side)
        assert invoke("futures_order", order_event(body, key=new_key()))["statusCode"] == 200
    return connection


def test_hedge_close_with_both_sides_open_needs_position_side(sim_env, invoke, create_connection):
    """GIVEN a hedge account holding a LONG and a SHORT WHEN closed without position_side THEN 400 naming it;
    WHEN closed with position_side=SHORT THEN only the SHORT is closed (BUY, positionSide SHORT)."""
    connection = _hedge_long_and_short(invoke, create_connection)

    ambiguous = invoke("futures_position_close", _close_event(connection.id, new_key()))
    chosen = invoke("futures_position_close", _close_event(connection.id, new_key(), position_side="SHORT"))

    assert ambiguous["statusCode"] == 400 and body_of(ambiguous)["error"]["field"] == "position_side"
    assert chosen["statusCode"] == 200, chosen["body"]
    assert body_of(chosen)["side"] == "BUY" and body_of(chosen)["position_side"] == "SHORT"
    (left,) = _sim_rows(sim_env, "futures-hedge")
    assert left["positionSide"] == "LONG"


def test_one_way_close_with_position_side_is_400_naming_it_and_sends_nothing(
        sim_env, invoke, futures_connection):
    """GIVEN a one-way connection holding a long WHEN closed with ?position_side=LONG THEN 400 naming
    position_side (a hedge-mode choice), never a 404 saying the open position is not there; nothing sent."""
    _open_long(invoke, futures_connection.id)
    event = _close_event(futures_connection.id, new_key(), position_side="LONG")
    sim_env.clear_journal()

    response = invoke("futures_position_close", event)

    assert response["statusCode"] == 400, response["body"]
    assert body_of(response)["error"]["field"] == "position_side"
    assert _order_posts(sim_env) == [] and len(_sim_rows(sim_env, futures_connection.account.id)) == 1


def test_hedge_close_of_the_side_not_held_is_404_naming_position_side(sim_env, invoke, create_connection):
    """GIVEN a hedge account holding a LONG only WHEN closed with ?position_side=SHORT THEN 404 naming
    position_side and saying there is no SHORT (before: field symbol, "no open position on BTCUSDT", though
    one is open), nothing sent and the LONG left as it was."""
    connection = hedge_long(invoke, create_connection)
    event = _close_event(connection.id, new_key(), position_side="SHORT")
    sim_env.clear_journal()

    response = invoke("futures_position_close", event)

    assert response["statusCode"] == 404, response["body"]
    error = body_of(response)["error"]
    assert error["field"] == "position_side" and "no SHORT position" in error["message"], error
    assert _order_posts(sim_env) == []
    (held,) = _sim_rows(sim_env, "futures-hedge")
    assert held["positionSide"] == "LONG"


def test_close_key_reused_for_the_other_hedge_side_is_409_and_sends_nothing(sim_env, invoke,
                                                                            create_connection):
    """GIVEN a hedge LONG closed with a key WHEN it closes position_side=SHORT THEN 409, nothing sent."""
    connection = _hedge_long_and_short(invoke, create_connection)
    key = new_key()

    def close(position_side: str) -> dict[str, Any]:
        return invoke("futures_position_close", _close_event(connection.id, key, position_side=position_side))

    assert close("LONG")["statusCode"] == 200
    sim_env.clear_journal()
    reused = close("SHORT")

    assert reused["statusCode"] == 409, reused["body"]
    assert body_of(reused)["error"]["field"] == "Idempotency-Key"
    assert _order_posts(sim_env) == []
    (left,) = _sim_rows(sim_env, "futures-hedge")
    assert left["positionSide"] == "SHORT"


def test_close_that_filled_only_in_part_answers_what_it_left_open(sim_env, invoke, futures_connection):
    """GIVEN a 0.002 LONG and a market 0.001 deep WHEN closed THEN EXPIRED with position_left 0.001, twice."""
    _open_long(invoke, futures_connection.id)
    key = new_key()
    sim_env.set_market_depth("BTCUSDT", "0.001")
    try:
        first = invoke("futures_position_close", _close_event(futures_connection.id, key))
    finally:
        sim_env.set_market_depth("BTCUSDT", None)
    again = invoke("futures_position_close", _close_event(futures_connection.id, key))

    assert first["statusCode"] == again["statusCode"] == 200, first["body"]
    assert (body_of(first)["status"], body_of(first)["executed_quantity"]) == ("EXPIRED", "0.001")
    assert body_of(first)["position_left"] == body_of(again)["position_left"] == "0.001"
    assert [row["positionAmt"] for row in _sim_rows(sim_env, futures_connection.account.id)] == ["0.001"]


def _app_algo(sim: Any, account_id: str, client_algo_id: str, side: str, kind: str, factor: str,
              **params: str) -> str:
    """A conditional order of 0.002 BTCUSDT (unless ``params`` say otherwise) placed as if from Binance's app,
    triggering at the mark times ``factor``; its clientAlgoId."""
    trigger = (Decimal(str(sim.mark_price("BTCUSDT"))) * Decimal(factor)).quantize(Decimal("0.1"))
    sim.state.algo.place(sim.account(account_id), {
        "algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": side, "type": kind, "quantity": "0.002",
        "triggerPrice": format(trigger, "f"), "clientAlgoId": client_algo_id, **params}, time.time() * 1000)
    return client_algo_id


def test_one_way_close_cancels_the_stops_that_would_open_a_position_once_flat(sim_env, invoke,
                                                                              futures_connection):
    """GIVEN a one-way LONG with SELL stops below it that are not reduce-only (a STOP_MARKET of ours, a STOP
    and a closePosition STOP_MARKET from Binance's app), a BUY stop above it and a resting LIMIT BUY from the
    app WHEN the position is closed THEN the SELL stops are cancelled (once flat, each would open a short or
    rest on a flat side), and the BUY stop and the LIMIT, not stops of that position, stay open."""
    account_id = futures_connection.account.id
    _open_long(invoke, futures_connection.id)
    trigger = (Decimal(str(sim_env.mark_price("BTCUSDT"))) * Decimal("0.9")).quantize(Decimal("0.1"))
    ours = body_of(invoke("futures_order", order_event(order_body(
        futures_connection.id, side="SELL", type="STOP_MARKET", price=None, timeInForce=None,
        quantity="0.002", triggerPrice=format(trigger, "f")), key=new_key())))["client_order_id"]
    stop_limit = _app_algo(sim_env, account_id, "app-stop", "SELL", "STOP", "0.9", timeInForce="GTC",
                           price=format(trigger, "f"))
    close_all = _app_algo(sim_env, account_id, "app-close-all", "SELL", "STOP_MARKET", "0.85",
                          closePosition="true", quantity="")
    breakout = _app_algo(sim_env, account_id, "app-breakout", "BUY", "STOP_MARKET", "1.2")
    limit = sim_env.state.futures.place_order(sim_env.account(account_id), {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010",
        "price": "20000", "newClientOrderId": "app-limit"}, time.time() * 1000)["clientOrderId"]

    close = invoke("futures_position_close", _close_event(futures_connection.id, new_key()))

    assert close["statusCode"] == 200 and body_of(close)["status"] == "FILLED", close["body"]
    statuses = {i: _algo_statuses(sim_env, account_id, i) for i in (ours, stop_limit, close_all, breakout)}
    assert statuses == {ours: ["CANCELED"], stop_limit: ["CANCELED"], close_all: ["CANCELED"],
                        breakout: ["NEW"]}
    assert [o.status for o in exchange_orders(sim_env, sim_env.account(account_id))
            if o.client_order_id == limit] == ["NEW"]


def test_a_stop_whose_cancel_failed_after_a_close_is_cancelled_by_the_next_reconciler_run(
        sim_env, invoke, futures_connection, reconcile):
    """GIVEN a LONG guarded by a reduce-only stop placed on its own through the order route (no entry's
    stop-loss) and a closePosition stop from Binance's app, and Binance failing both cancels after the close
    (500: transient) WHEN the reconciler runs next THEN both are cancelled: the close's cleanup is resumed
    (before: the reconciler only cancelled entries' stop-losses / take-profits, so these stayed armed on the
    flat side for good, to close or open a later position)."""
    account_id = futures_connection.account.id
    _open_long(invoke, futures_connection.id)
    plain = _reduce_only_stop(sim_env, invoke, futures_connection.id)
    app = _app_algo(sim_env, account_id, "app-close-all", "SELL", "STOP_MARKET", "0.85", closePosition="true",
                    quantity="")
    sim_env.faults.add("http_500", count=2, method="DELETE", path="/fapi/v1/algoOrder")
    close = invoke("futures_position_close", _close_event(futures_connection.id, new_key()))
    assert close["statusCode"] == 200 and body_of(close)["status"] == "FILLED", close["body"]
    assert [_algo_statuses(sim_env, account_id, i) for i in (plain, app)] == [["NEW"], ["NEW"]]

    reconcile()

    assert [_algo_statuses(sim_env, account_id, i) for i in (plain, app)] == [["CANCELED"], ["CANCELED"]]
    assert get_order_record(USER_A, plain).status == "CANCELED"


def test_a_reconciler_run_whose_cancel_of_a_closes_stop_fails_leaves_it_to_the_next_run(
        sim_env, invoke, futures_connection, reconcile):
    """GIVEN a closed LONG whose reduce-only stop Binance failed to cancel (500) after the close WHEN the
    reconciler's next run meets the same failure THEN the stop is still NEW and the close's order stays in
    its index; the run after cancels the stop and settles the order."""
    _open_long(invoke, futures_connection.id)
    plain = _reduce_only_stop(sim_env, invoke, futures_connection.id)
    sim_env.faults.add("http_500", count=2, method="DELETE", path="/fapi/v1/algoOrder")
    close = body_of(invoke("futures_position_close", _close_event(futures_connection.id, new_key())))

    first = reconcile()
    kept = get_order_record(USER_A, close["client_order_id"])
    second = reconcile()

    account_id = futures_connection.account.id
    assert first.get("final_left_for_next_run", 0) >= 1 and not is_settled(kept.status, kept.fills)
    assert _algo_statuses(sim_env, account_id, plain) == ["CANCELED"]
    after = get_order_record(USER_A, close["client_order_id"])
    assert is_settled(after.status, after.fills) and second.get("settled", 0) >= 1
