"""A conditional order that fired, as the status route and the order history show it (moto + simulator).

A fired algo order places a regular order (Binance's ``actualOrderId``); what the algo order executed is
that order's ``executedQty`` / ``avgPrice``. Both routes must show it, agree with each other, and agree
with the fills: a take-profit that closed a position never reads "executed 0".
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from klineo.store.orders import KIND_ALGO, OrderRecord, get_order_record, put_new_record

from tests.helpers import load_event, with_user
from tests.integration.api.conftest import USER_A
from tests.integration.futures.helpers import body_of, new_key, order_body, order_event, status_event


def _mark(sim: Any) -> Decimal:
    return Decimal(str(sim.mark_price("BTCUSDT")))


def _placed(invoke: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = invoke("futures_order", order_event(body, key=new_key()))
    assert response["statusCode"] == 200, response["body"]
    return body_of(response)


def _status(invoke: Any, client_order_id: str) -> dict[str, Any]:
    response = invoke("futures_order_status", status_event(client_order_id))
    assert response["statusCode"] == 200, response["body"]
    return body_of(response)


def _history_item(invoke: Any, client_order_id: str) -> dict[str, Any]:
    event = with_user(load_event("futures_orders"), USER_A)
    event["queryStringParameters"], event["rawQueryString"] = None, ""
    response = invoke("futures_orders", event)
    assert response["statusCode"] == 200, response["body"]
    (item,) = [o for o in body_of(response)["orders"] if o["client_order_id"] == client_order_id]
    return item


def _triggered_order(sim: Any, account_id: str, client_algo_id: str) -> Any:
    """The regular order the simulator placed when the algo order fired (clientOrderId: the clientAlgoId)."""
    state = sim.state.futures.state_for(sim.account(account_id), time.time() * 1000)
    (order,) = [o for o in list(state.orders.values()) if o.client_order_id == client_algo_id]
    return order


def _fill_average(item: dict[str, Any]) -> Decimal:
    fills = item["fills"]
    quantity = sum(Decimal(f["qty"]) for f in fills)
    return sum(Decimal(f["price"]) * Decimal(f["qty"]) for f in fills) / quantity


def test_fired_take_profit_shows_what_its_triggered_order_executed(sim_env, invoke, futures_connection):
    """GIVEN an entry whose take-profit fired WHEN the history then the status route read it THEN both show
    the triggered order's executed quantity and average price, the fills' own, not "executed 0"."""
    mark = _mark(sim_env)
    take_profit = format((mark * Decimal("1.02")).quantize(Decimal("0.1")), "f")
    entry = _placed(invoke, order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None,
                                       quantity="0.002", take_profit={"price": take_profit}))
    (tp,) = entry["protective_orders"]
    sim_env.set_mark_price("BTCUSDT", float(Decimal(take_profit) + 1))
    child = _triggered_order(sim_env, futures_connection.account.id, tp["client_algo_id"])

    listed = _history_item(invoke, tp["client_algo_id"])
    status = _status(invoke, tp["client_algo_id"])

    assert listed["status"] == status["status"] == "FINISHED" and listed["settled"]
    assert listed["executed_quantity"] == status["executed_quantity"] == "0.002"
    assert listed["average_price"] == status["average_price"]
    assert Decimal(status["average_price"]) == child.cum_quote / child.executed_qty == _fill_average(listed)
    assert get_order_record(USER_A, tp["client_algo_id"]).result["executed_quantity"] == "0.002"


def test_fired_trailing_stop_shows_what_its_triggered_order_executed(sim_env, invoke, futures_connection):
    """GIVEN a trailing stop that fired on the pullback WHEN the status route then the history read it THEN
    both show its triggered order's executed quantity and average price, matching its fills."""
    _placed(invoke, order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None,
                               quantity="0.002"))
    start = _mark(sim_env)
    trailing = _placed(invoke, order_body(futures_connection.id, side="SELL", type="TRAILING_STOP_MARKET",
                                          price=None, timeInForce=None, quantity="0.002", reduceOnly=True,
                                          callbackRate="1"))
    sim_env.set_mark_price("BTCUSDT", float(start * Decimal("1.03")))
    sim_env.set_mark_price("BTCUSDT", float(start * Decimal("1.03") * Decimal("0.985")))
    client_algo_id = trailing["client_order_id"]

    status = _status(invoke, client_algo_id)
    listed = _history_item(invoke, client_algo_id)

    assert status["status"] == listed["status"] == "FINISHED" and listed["settled"]
    assert status["executed_quantity"] == listed["executed_quantity"] == "0.002"
    assert status["average_price"] == listed["average_price"]
    # Binance rounds avgPrice (here to 5 places); the fills' exact average agrees within that.
    assert abs(Decimal(listed["average_price"]) - _fill_average(listed)) <= Decimal("0.00001")


def test_fired_algo_record_kept_without_its_executed_quantity_shows_its_fills(
    sim_env, invoke, futures_connection
):
    """GIVEN a fired take-profit settled before its triggered order's answer was kept (result: executed 0,
    fills: two trades) WHEN the history lists it THEN it shows the fills' quantity and average price."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    fills = [{"trade_id": trade, "order_id": 77, "price": price, "qty": qty, "commission": "0.01",
              "commission_asset": "USDT", "realized_pnl": "0.5", "side": "SELL", "time": 1}
             for trade, price, qty in ((1, "70867.3", "0.002"), (2, "70870.30", "0.001"))]
    assert put_new_record(OrderRecord(
        user_id=USER_A, client_order_id="entry-tp", connection_id=futures_connection.id, symbol="BTCUSDT",
        request={}, params={"type": "TAKE_PROFIT_MARKET", "quantity": "0.003"}, status="FINISHED",
        attempt_ms=int(time.time() * 1000), created_at=now, updated_at=now, kind=KIND_ALGO,
        result={"executed_quantity": "0", "average_price": None, "quantity": "0.003"}, fills=fills,
    ))

    listed = _history_item(invoke, "entry-tp")

    assert listed["executed_quantity"] == "0.003" and listed["average_price"] == "70868.3"
