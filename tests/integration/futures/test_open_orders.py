"""Open orders (regular and algo, ours marked) and cancel-all, against moto and the simulator."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from klineo.binance import endpoints
from klineo.errors import ErrorCategory, KlineoError
from klineo.services import open_orders
from klineo.store.orders import get_order_record

from tests.integration.api.conftest import USER_A, USER_B, connection_event
from tests.integration.futures.helpers import body_of, new_key, order_body, order_event, status_event
from tests.integration.runner.conftest import ShortContext

SUFFIX = "/futures/open-orders"


def _event(name: str, connection_id: str, symbol: str | None, user: str = USER_A) -> dict[str, Any]:
    event = connection_event(name, connection_id, user, SUFFIX)
    event["rawQueryString"] = f"symbol={symbol}" if symbol else ""
    if symbol:
        event["queryStringParameters"] = {"symbol": symbol}
    else:
        event.pop("queryStringParameters", None)
    return event


def _place(invoke: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = invoke("futures_order", order_event(body, key=new_key()))
    assert response["statusCode"] == 200, response["body"]
    return body_of(response)


def _foreign_algo(sim: Any, account_id: str, side: str = "BUY", factor: str = "1.3", quantity: str = "0.002",
                  client_algo_id: str = "app-stop-1") -> str:
    """A STOP_MARKET triggering at the mark times ``factor``, placed as if from Binance's app (not through
    this API); its clientAlgoId."""
    mark = Decimal(str(sim.mark_price("BTCUSDT")))
    sim.state.algo.place(sim.account(account_id), {
        "algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": side, "type": "STOP_MARKET",
        "triggerPrice": format((mark * Decimal(factor)).quantize(Decimal("0.1")), "f"), "quantity": quantity,
        "clientAlgoId": client_algo_id,
    }, time.time() * 1000)
    return client_algo_id


def _with_entry_and_guards(sim: Any, invoke: Any, connection: Any) -> tuple[dict[str, Any], ...]:
    resting = _place(invoke, order_body(connection.id))
    entry = _place(invoke, order_body(connection.id, type="MARKET", price=None, timeInForce=None,
                                      quantity="0.002", stop_loss={"percent": "5"}))
    _foreign_algo(sim, connection.account.id)
    return resting, entry


def test_open_orders_list_regular_and_algo_with_ours_marked(sim_env, invoke, futures_connection):
    """GIVEN a resting LIMIT, an entry's stop-loss and a foreign algo order WHEN open orders are read
    THEN all three are listed; ours carry origin and role, the foreign one ours=false."""
    resting, entry = _with_entry_and_guards(sim_env, invoke, futures_connection)

    response = invoke("futures_open_orders", _event("futures_open_orders", futures_connection.id, "BTCUSDT"))

    assert response["statusCode"] == 200, response["body"]
    orders = {o["client_order_id"]: o for o in body_of(response)["orders"]}
    (stop_loss,) = entry["protective_orders"]
    assert set(orders) == {resting["client_order_id"], stop_loss["client_algo_id"], "app-stop-1"}
    limit = orders[resting["client_order_id"]]
    assert limit["kind"] == "order" and limit["ours"] and limit["origin"] == "api"
    guard = orders[stop_loss["client_algo_id"]]
    assert guard["kind"] == "algo" and guard["ours"] and guard["role"] == "stop_loss"
    assert guard["origin"] == "api" and guard["parent_client_order_id"] == entry["client_order_id"]
    assert orders["app-stop-1"]["ours"] is False and orders["app-stop-1"]["origin"] is None


def test_cancel_all_cancels_regular_and_algo_orders_and_updates_records(sim_env, invoke, futures_connection):
    """GIVEN a resting LIMIT, a stop-loss and a foreign algo order WHEN cancel-all on BTCUSDT
    THEN all three are answered cancelled, Binance holds none open, and our records say CANCELED."""
    resting, entry = _with_entry_and_guards(sim_env, invoke, futures_connection)

    response = invoke("futures_open_orders_cancel",
                      _event("futures_open_orders_cancel", futures_connection.id, "BTCUSDT"))

    assert response["statusCode"] == 200, response["body"]
    cancelled = {o["client_order_id"]: o["status"] for o in body_of(response)["cancelled"]}
    (stop_loss,) = entry["protective_orders"]
    assert cancelled == {resting["client_order_id"]: "CANCELED", stop_loss["client_algo_id"]: "CANCELED",
                         "app-stop-1": "CANCELED"}
    after = invoke("futures_open_orders", _event("futures_open_orders", futures_connection.id, "BTCUSDT"))
    assert body_of(after)["orders"] == []
    assert get_order_record(USER_A, resting["client_order_id"]).status == "CANCELED"
    assert get_order_record(USER_A, stop_loss["client_algo_id"]).status == "CANCELED"


def test_cancel_all_without_symbol_is_refused_naming_it(sim_env, invoke, futures_connection):
    """GIVEN no symbol WHEN cancel-all is sent THEN 400 naming symbol, and nothing reaches Binance."""
    before = len(sim_env.journal)

    response = invoke("futures_open_orders_cancel",
                      _event("futures_open_orders_cancel", futures_connection.id, None))

    assert response["statusCode"] == 400, response["body"]
    assert body_of(response)["error"]["field"] == "symbol" and len(sim_env.journal) == before


def test_open_orders_of_another_users_connection_are_not_found(sim_env, invoke, futures_connection):
    """GIVEN USER_A's connection WHEN USER_B reads its open orders THEN 404 and no Binance call."""
    before = len(sim_env.journal)

    response = invoke("futures_open_orders",
                      _event("futures_open_orders", futures_connection.id, None, user=USER_B))

    assert response["statusCode"] == 404 and len(sim_env.journal) == before


def test_cancel_all_never_records_a_guess_for_an_order_that_filled_meanwhile(sim_env, invoke,
                                                                            futures_connection, monkeypatch):
    """GIVEN a LIMIT entry with a stop-loss that fills between cancel-all's listing and its DELETE, and its
    read-back failing WHEN cancel-all runs THEN its record is not settled CANCELED: the status read finds
    FILLED and places the stop-loss."""
    entry = _place(invoke, order_body(futures_connection.id, stop_loss={"percent": "5"}))
    cancel_all, read_back = endpoints.futures_cancel_all_orders, open_orders.query_futures_order

    def filled_first(*args: Any) -> Any:
        sim_env.set_mark_price("BTCUSDT", 19990)  # crosses the BUY at 20000: it fills before the cancel
        return cancel_all(*args)

    def unreadable(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(open_orders, "query_futures_order", read_back)  # this read only
        raise KlineoError(ErrorCategory.UPSTREAM_UNAVAILABLE, "Binance is unavailable")

    monkeypatch.setattr(endpoints, "futures_cancel_all_orders", filled_first)
    monkeypatch.setattr(open_orders, "query_futures_order", unreadable)
    try:
        response = invoke("futures_open_orders_cancel",
                          _event("futures_open_orders_cancel", futures_connection.id, "BTCUSDT"))
        assert response["statusCode"] == 200, response["body"]
        assert get_order_record(USER_A, entry["client_order_id"]).status != "CANCELED"

        status = invoke("futures_order_status", status_event(entry["client_order_id"]))
    finally:
        sim_env.set_mark_price("BTCUSDT", None)

    assert status["statusCode"] == 200, status["body"]
    assert body_of(status)["status"] == "FILLED"
    (stop_loss,) = body_of(status)["protective_orders"]
    assert stop_loss["status"] == "NEW"


def _foreign_limit(sim: Any, account_id: str, price: str = "20000") -> str:
    """A LIMIT BUY of 0.010 BTCUSDT resting at ``price``, placed as if from Binance's app; its id."""
    placed = sim.state.futures.place_order(sim.account(account_id), {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010",
        "price": price, "newClientOrderId": "app-limit-1"}, time.time() * 1000)
    return str(placed["clientOrderId"])


def _cancel_all_after_a_move(sim: Any, monkeypatch: Any, invoke: Any, connection_id: str,
                             price: float) -> dict[str, Any]:
    """Cancel-all on BTCUSDT, the mark moved to ``price`` just before its DELETE /fapi/v1/allOpenOrders
    reaches the simulator (what it crosses fills or fires first; the DELETE itself goes over loopback as
    always); the answer's body (asserted 200). The mark is released afterwards."""
    cancel_all = endpoints.futures_cancel_all_orders

    def moved_first(*args: Any) -> Any:
        sim.set_mark_price("BTCUSDT", price)
        return cancel_all(*args)

    monkeypatch.setattr(endpoints, "futures_cancel_all_orders", moved_first)
    try:
        response = invoke("futures_open_orders_cancel",
                          _event("futures_open_orders_cancel", connection_id, "BTCUSDT"))
    finally:
        sim.set_mark_price("BTCUSDT", None)
    assert response["statusCode"] == 200, response["body"]
    return body_of(response)


def test_cancel_all_answers_what_binance_did_with_orders_not_ours(sim_env, invoke, futures_connection,
                                                                  monkeypatch):
    """GIVEN a LIMIT and a stop placed in Binance's app, both filled / fired between cancel-all's listing and
    its DELETEs WHEN cancel-all runs THEN each is answered in the state Binance holds (FILLED, and the stop's
    fired algoStatus), never CANCELED on the strength of the cancel-all's bare confirmation."""
    account_id = futures_connection.account.id
    limit_id = _foreign_limit(sim_env, account_id)
    stop_id = _foreign_algo(sim_env, account_id, "SELL", "0.8", "0.010", "app-stop-2")  # 20 % below the mark
    # The mark crosses the BUY at 20000 and the SELL stop.
    body = _cancel_all_after_a_move(sim_env, monkeypatch, invoke, futures_connection.id, 19990)

    answered = {o["client_order_id"]: o["status"] for o in body["cancelled"]}
    state = sim_env.state.futures.state_for(sim_env.account(account_id), time.time() * 1000)
    (stop,) = [a for a in state.algo_orders.values() if a.client_algo_id == stop_id]
    assert stop.status in ("TRIGGERED", "FINISHED")
    assert answered == {limit_id: "FILLED", stop_id: stop.status}


def test_cancel_all_arms_the_stops_of_an_entry_of_ours_that_filled_meanwhile(
        sim_env, invoke, futures_connection, monkeypatch):
    """GIVEN a resting LIMIT entry of ours with a stop-loss, which fills between cancel-all's listing and its
    DELETEs WHEN cancel-all runs THEN it is answered FILLED with its stop-loss, and Binance holds that
    stop-loss armed: the position the cancel-all could not prevent is not left unprotected until a later
    read."""
    entry = _place(invoke, order_body(futures_connection.id, stop_loss={"percent": "5"}))
    # The mark crosses the BUY at 20000: it fills first.
    body = _cancel_all_after_a_move(sim_env, monkeypatch, invoke, futures_connection.id, 19990)

    (answered,) = body["cancelled"]
    assert (answered["client_order_id"], answered["status"]) == (entry["client_order_id"], "FILLED")
    account = sim_env.account(futures_connection.account.id)
    state = sim_env.state.futures.state_for(account, time.time() * 1000)
    armed = [(a.client_algo_id, a.status) for a in state.algo_orders.values()]
    assert armed == [(f"{entry['client_order_id'][:33]}-sl", "NEW")]
    (armed_now,) = body["protective_orders"][entry["client_order_id"]]
    assert (armed_now["role"], armed_now["status"]) == ("stop_loss", "NEW")
    assert get_order_record(USER_A, entry["client_order_id"]).status == "FILLED"


def test_cancel_all_never_answers_canceled_for_an_order_it_could_not_read_back(
        sim_env, invoke, futures_connection, monkeypatch):
    """GIVEN a LIMIT of ours and one placed in Binance's app, both filled between cancel-all's listing and its
    DELETEs, and Binance failing every read-back (500) WHEN cancel-all runs THEN both are answered UNKNOWN
    (their state could not be learned), not CANCELED, and our record is left for a later read."""
    ours = _place(invoke, order_body(futures_connection.id))
    foreign = _foreign_limit(sim_env, futures_connection.account.id, price="19995")
    sim_env.faults.add("http_500", count=100, method="GET", path="/fapi/v1/order")
    try:
        body = _cancel_all_after_a_move(sim_env, monkeypatch, invoke, futures_connection.id, 19990)
    finally:
        sim_env.faults.clear()

    answered = {o["client_order_id"]: o["status"] for o in body["cancelled"]}
    assert answered == {ours["client_order_id"]: "UNKNOWN", foreign: "UNKNOWN"}
    assert get_order_record(USER_A, ours["client_order_id"]).status == "NEW"


def test_cancel_all_leaves_standing_the_stops_another_read_placed_meanwhile(
        sim_env, invoke, futures_connection, monkeypatch):
    """GIVEN a resting LIMIT entry of ours with a stop-loss, which fills between cancel-all's listing and its
    DELETEs, and whose status read places that stop-loss in that window WHEN cancel-all runs THEN Binance
    still holds the stop-loss armed, the answer and our record say so (NEW as Binance does): cancel-all
    cancels only what it listed, never a stop placed after its listing while its record says NEW."""
    entry = _place(invoke, order_body(futures_connection.id, stop_loss={"percent": "5"}))
    cancel_all = endpoints.futures_cancel_all_orders

    def armed_first(*args: Any) -> Any:  # the mark already crossed the BUY at 20000 (below)
        status = invoke("futures_order_status", status_event(entry["client_order_id"]))
        assert [s["status"] for s in body_of(status)["protective_orders"]] == ["NEW"], status["body"]
        return cancel_all(*args)

    monkeypatch.setattr(endpoints, "futures_cancel_all_orders", armed_first)
    body = _cancel_all_after_a_move(sim_env, monkeypatch, invoke, futures_connection.id, 19990)

    stop_id = f"{entry['client_order_id'][:33]}-sl"
    account = sim_env.account(futures_connection.account.id)
    state = sim_env.state.futures.state_for(account, time.time() * 1000)
    assert [(a.client_algo_id, a.status) for a in state.algo_orders.values()] == [(stop_id, "NEW")]
    assert [o["status"] for o in body["cancelled"]] == ["FILLED"]
    (answered,) = body["protective_orders"][entry["client_order_id"]]
    assert (answered["client_algo_id"], answered["status"]) == (stop_id, "NEW")
    assert get_order_record(USER_A, stop_id).status == "NEW"


def test_cancel_all_answers_before_its_invocation_ends_however_slowly_binance_reads_back(
        sim_env, iam, futures_connection):
    """GIVEN ten LIMITs placed in Binance's app and Binance answering each request in 0.4 s WHEN cancel-all
    runs in an invocation with 4 s left THEN it answers 200 with 1 s to spare, every order cancelled at
    Binance, those read back answered CANCELED and those it had no time to read UNKNOWN (before: ten
    read-backs ran past the invocation's end, and the caller got API Gateway's error instead of an answer)."""
    account = sim_env.account(futures_connection.account.id)
    ids = [str(sim_env.state.futures.place_order(account, {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.010",
        "price": str(19000 + n), "newClientOrderId": f"app-limit-{n}"}, time.time() * 1000)["clientOrderId"])
        for n in range(10)]
    from functions.futures_open_orders_cancel import app

    sim_env.configure(latency_ms=400)
    started = time.monotonic()
    try:
        with iam.acting_as("futures_open_orders_cancel"):
            response = app.lambda_handler(
                _event("futures_open_orders_cancel", futures_connection.id, "BTCUSDT"),
                ShortContext(function_name="futures_open_orders_cancel", remaining_ms=4_000))
    finally:
        took = time.monotonic() - started
        sim_env.configure(latency_ms=0)

    assert took < 3.0, f"answered {took:.2f} s into an invocation of 4 s"
    assert response["statusCode"] == 200, response["body"]
    answered = {o["client_order_id"]: o["status"] for o in body_of(response)["cancelled"]}
    assert set(answered) == set(ids) and set(answered.values()) <= {"CANCELED", "UNKNOWN"}
    assert "UNKNOWN" in answered.values()
    state = sim_env.state.futures.state_for(account, time.time() * 1000)
    assert [o for o in state.orders.values() if o.status == "NEW"] == []
