"""A strategy's order the risk gate refuses is a refused order attempt, written with its skipped run."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from klineo.runner import execution
from klineo.runner.schedule import MINUTE_MS
from klineo.store import aws as aws_clients
from klineo.store.connections import update_settings
from klineo.store.events import list_events
from klineo.store.strategies import update_settings as update_strategy

from tests.helpers import load_event, response_json, with_user
from tests.integration.runner.conftest import ORDER_PATH, current_close
from tests.integration.runner.test_exchange_truth import ALWAYS_LONG, ALWAYS_SHORT, _exchange_position
from tests.integration.runner.test_worker import _past_recv_window_ms

USER = "user-runner-attempts"


def _attempts(runner, user: str = USER) -> list[dict[str, Any]]:
    """GET /futures/order-attempts of ``user`` (every outcome, one page)."""
    event = with_user(load_event("futures_order_attempts"), user)
    event["rawQueryString"], event["queryStringParameters"] = "", None
    response = runner.invoke("futures_order_attempts", event)
    assert response["statusCode"] == 200, response["body"]
    return response_json(response)["attempts"]


def _transactions() -> list[list[dict[str, Any]]]:
    """Every TransactWriteItems the layer's DynamoDB client sends from now on (its items, as sent)."""
    sent: list[list[dict[str, Any]]] = []
    aws_clients.dynamodb().meta.events.register(
        "provide-client-params.dynamodb.TransactWriteItems",
        lambda params, **_: sent.append(params["TransactItems"]))
    return sent


def _put_keys(items: list[dict[str, Any]]) -> list[str]:
    return [item["Put"]["Item"]["sk"]["S"].split("#")[0] for item in items if "Put" in item]


def test_a_strategy_leverage_above_max_leverage_is_listed_with_its_run_in_one_write(runner) -> None:
    """GIVEN max_leverage 5 and a strategy asking 10x WHEN its turn is refused THEN the listing has the
    refused order, origin the strategy, naming max_leverage with the risk_block's message, and it was put
    in the one transaction of the skipped run and its event (no request of its own)."""
    connection = runner.connection(USER)
    update_settings(USER, connection, {"max_leverage": 5})
    sid = runner.strategy(USER, connection, leverage=10)
    sent = _transactions()

    runner.run_tick()

    assert runner.journal("POST", ORDER_PATH) == [] and runner.runs(sid)[0].skip_reason == "max_leverage"
    [attempt] = _attempts(runner)
    assert (attempt["outcome"], attempt["origin"], attempt["connection_id"]) == ("refused", sid, connection)
    assert attempt["refusal"]["field"] == "max_leverage" and "max_leverage" in attempt["refusal"]["message"]
    assert (attempt["type"], attempt["quantity"], attempt["symbol"]) == ("MARKET", "0.002", "BTCUSDT")
    assert [sorted(set(_put_keys(items))) for items in sent if "ATTEMPT" in _put_keys(items)] == [
        ["ATTEMPT", "EVT", "RUN"]]  # the run, its signal and risk_block events, and the attempt


def test_a_strategy_order_above_max_notional_is_listed_refused(runner) -> None:
    """GIVEN max_notional_usdt 10 WHEN a live strategy wants ~130 USDT THEN a refused attempt naming
    max_notional_usdt, its side and quantity as the strategy decided them."""
    connection = runner.connection(USER)
    update_settings(USER, connection, {"max_notional_usdt": Decimal("10")})
    sid = runner.strategy(USER, connection)

    runner.run_tick()

    [attempt] = _attempts(runner)
    assert (attempt["origin"], attempt["refusal"]["field"]) == (sid, "max_notional_usdt")
    assert attempt["side"] in ("BUY", "SELL") and attempt["quantity"] == "0.002"


def test_a_kill_switch_skip_before_any_order_is_no_attempt(runner) -> None:
    """GIVEN the user's kill switch on WHEN a live strategy's turn is skipped before deciding THEN the run
    is skipped naming the switch and no attempt is listed (a skipped run each minute is no order)."""
    connection = runner.connection(USER)
    sid = runner.strategy(USER, connection)
    runner.kill_switch(USER)

    runner.run_tick()

    assert runner.runs(sid)[0].skip_reason == "user_kill_switch"
    assert _attempts(runner) == []


def test_a_kill_switch_that_refuses_the_claim_of_a_decided_order_is_an_attempt(runner, monkeypatch) -> None:
    """GIVEN the user's kill switch turned on after the turn decided its order WHEN the claim refuses it THEN
    that order is a refused attempt naming user_kill_switch (the order was known), nothing sent."""
    sid = runner.strategy(USER, runner.connection(USER))
    real_prepare = execution.prepare_symbol

    def switch_on_first(*args: Any, **kwargs: Any) -> Any:
        runner.kill_switch(USER, True)
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(execution, "prepare_symbol", switch_on_first)
    runner.run_tick()

    assert runner.journal("POST", ORDER_PATH) == []
    [attempt] = _attempts(runner)
    assert (attempt["origin"], attempt["refusal"]["field"]) == (sid, "user_kill_switch")
    assert attempt["type"] == "MARKET"


def lower_limit_before_the_claim(monkeypatch, user: str, connection: str, limit: Decimal) -> None:
    """Lower the connection's max_notional_usdt to ``limit`` once a turn has read the gates and decided its
    order, right before its claim (as the symbol's settings are applied)."""
    real_prepare = execution.prepare_symbol

    def limit_lowered_first(*args: Any, **kwargs: Any) -> Any:
        update_settings(user, connection, {"max_notional_usdt": limit})
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(execution, "prepare_symbol", limit_lowered_first)


def _long_then_short(runner, user: str = USER, candles_ago: int = 1) -> tuple[str, str, int]:
    """A live one-way strategy (both directions) long 0.002 from the candle ``candles_ago`` minutes back
    (default: the previous minute's), its signal now short; returns (its id, its connection, the current
    tick's time)."""
    connection = runner.connection(user)
    sid = runner.strategy(user, connection, type="rsi_threshold", parameters=ALWAYS_LONG)
    now = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS + 1000
    runner.run_tick(now - candles_ago * MINUTE_MS)
    assert runner.stored(user, sid).live_position == Decimal("0.002")
    update_strategy(user, sid, runner.stored(user, sid), changes={"parameters": ALWAYS_SHORT})
    return sid, connection, now


def test_a_one_way_flip_whose_new_exposure_a_limit_refuses_lists_the_flip_as_refused(runner) -> None:
    """GIVEN a one-way long and max_notional_usdt between the long's value and the flip's WHEN the signal
    turns short THEN the reduce-only close goes out under the candle's id and the whole flip (SELL 0.004
    BOTH, not reduce-only) is listed refused naming the limit, under the flip's second id (kf...), so no
    listed attempt shares an id with a placed order; a redelivered message lists it no second time."""
    sid, connection, now = _long_then_short(runner)
    update_settings(USER, connection, {"max_notional_usdt": Decimal("200")})

    runner.run_tick(now)
    runner.run_tick(now)  # the same candle's message again

    run = runner.runs(sid)[0]
    close_id = run.order["client_order_id"]
    assert (run.order["side"], run.order["reduce_only"], runner.stored(USER, sid).live_position) == (
        "SELL", True, 0)
    listed = _attempts(runner)
    [refused] = [a for a in listed if a["outcome"] == "refused"]
    assert refused["client_order_id"] == "kf" + close_id[2:]
    assert (refused["side"], refused["quantity"], refused["reduce_only"]) == ("SELL", "0.004", False)
    assert (refused["origin"], refused["refusal"]["field"]) == (sid, "max_notional_usdt")
    assert [a["client_order_id"] for a in listed].count(close_id) == 1  # the close: placed, once


def test_a_one_way_flip_whose_margin_type_binance_refuses_sends_its_close_alone(runner) -> None:
    """GIVEN a one-way cross long WHEN the connection's default turns isolated and the signal short THEN
    Binance's refusal to change the margin type with the long open refuses the new short only: the
    reduce-only close goes out, and the whole flip is listed refused naming margin_type, under kf..."""
    sid, connection, now = _long_then_short(runner)
    update_settings(USER, connection, {"margin_type": "isolated"})

    runner.run_tick(now)

    run = runner.runs(sid)[0]
    assert (run.status, run.order["side"], run.order["reduce_only"]) == ("ordered", "SELL", True)
    assert runner.stored(USER, sid).live_position == 0
    [refused] = [a for a in _attempts(runner) if a["outcome"] == "refused"]
    assert refused["client_order_id"] == "kf" + run.order["client_order_id"][2:]
    refusal = (refused["side"], refused["quantity"], refused["reduce_only"], refused["refusal"]["field"])
    assert refusal == ("SELL", "0.004", False, "margin_type")


def test_a_limit_lowered_before_a_one_way_flips_resend_closes_alone_in_the_same_turn(runner):
    """GIVEN a one-way long whose flip (SELL 0.004) never reached Binance WHEN max_notional_usdt is lowered
    between the long's value and the flip's before its resend THEN the claimed flip is not sent (its record
    REJECTED naming the limit, never sent again) and its close goes out alone in that same turn, as its own
    claimed order under the flip's second id (kf...): the candle's run is that close, the strategy flat, a
    risk_block naming the limit (before: the run was skipped and the long stayed open against the short
    signal until the next candle, a day on 1d); a redelivered message sends nothing more."""
    from tests.integration.runner.test_hedge_mode import _dispatched_at  # it imports this module

    sid, connection, now = _long_then_short(runner, candles_ago=2)
    event = _dispatched_at(runner, now - MINUTE_MS)
    runner.sim.faults.add("drop_connection", method="POST", path=ORDER_PATH, count=1)
    assert len(runner.work_event(event, remaining_ms=1)["batchItemFailures"]) == 1
    flip_id = runner.stored(USER, sid).pending.client_order_id
    update_settings(USER, connection, {"max_notional_usdt": Decimal("200")})

    assert runner.work_event(event, later_ms=_past_recv_window_ms(1_000))["batchItemFailures"] == []
    runner.work_event(event, later_ms=_past_recv_window_ms(2_000))  # redelivered: nothing more

    run = runner.runs(sid)[0]
    assert (run.status, run.close_time) == ("ordered", current_close(now - MINUTE_MS))
    assert (run.order["side"], run.order["reduce_only"], run.order["executed_quantity"]) == (
        "SELL", True, "0.002")
    assert run.order["client_order_id"] == "kf" + flip_id[2:]
    assert runner.stored(USER, sid).live_position == 0 and runner.stored(USER, sid).pending is None
    assert _exchange_position(runner) == 0
    orders = runner.sim.state.futures.state_for(runner.sim.account("futures-full"), time.time() * 1000).orders
    assert flip_id not in [o.client_order_id for o in orders.values()]  # dropped, never sent again
    assert len(runner.journal("POST", ORDER_PATH)) == 3  # the long, the dropped flip, the close alone
    listed = {a["client_order_id"]: (a["outcome"], (a["refusal"] or {}).get("field"))
              for a in _attempts(runner)}
    assert listed[flip_id] == ("placed", "max_notional_usdt")  # its record: REJECTED, never sent again
    blocks = [e for e in list_events(sid, 50).events if e.kind == "risk_block"]
    assert [e.details["gate"] for e in blocks] == ["max_notional_usdt"]
    submits = [e.details["client_order_id"] for e in list_events(sid, 50).events if e.kind == "order_submit"]
    assert sorted(submits) == sorted([runner.runs(sid)[1].order["client_order_id"], flip_id,
                                      "kf" + flip_id[2:]])


def test_a_limit_lowered_before_a_one_way_flips_claim_sends_its_close_alone(runner, monkeypatch) -> None:
    """GIVEN a one-way long whose signal turns short WHEN max_notional_usdt is lowered between the turn's gate
    read and its claim (between the long's value and the flip's) THEN the claim's refusal stops the new short
    only: the reduce-only close goes out in that turn under the candle's id and the flip is listed refused
    under kf..., as when the limit was read lower from the start (before: the run was skipped, nothing sent,
    and the long stayed open against the short signal until the next candle)."""
    sid, connection, now = _long_then_short(runner)
    lower_limit_before_the_claim(monkeypatch, USER, connection, Decimal("200"))
    runner.run_tick(now)

    run = runner.runs(sid)[0]
    assert (run.status, run.skip_reason) == ("ordered", None)
    assert (run.order["side"], run.order["reduce_only"]) == ("SELL", True)
    assert runner.stored(USER, sid).live_position == 0 == _exchange_position(runner)
    [refused] = [a for a in _attempts(runner) if a["outcome"] == "refused"]
    assert refused["client_order_id"] == "kf" + run.order["client_order_id"][2:]
    refusal = (refused["side"], refused["quantity"], refused["reduce_only"], refused["refusal"]["field"])
    assert refusal == ("SELL", "0.004", False, "max_notional_usdt")
