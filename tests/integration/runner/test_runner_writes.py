"""What a strategy tick writes, counted on the real DynamoDB client against moto, and its crash points.

A hold is ONE conditional PutItem; a live order is one claim transaction and one settle
transaction; a paper fill is one transaction (``klineo.store.runs``). The crash tests stop a worker
at each point between two of those writes and show the order placed exactly once (simulator journal).
"""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from klineo.runner import execution, on_demand, paper_turn
from klineo.store import aws as aws_clients
from klineo.store.connections import record_symbol_settings
from klineo.store.events import list_events
from klineo.store.orders import get_order_record

from tests.integration.runner.conftest import ORDER_PATH, crash_first_call
from tests.integration.runner.test_worker import _past_recv_window_ms

USER = "user-writes-1"
WRITES = ("PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem")
# RSI levels that are never crossed: the strategy holds on every candle.
HOLDING = {"type": "rsi_threshold", "parameters": {"period": 14, "oversold": 0.0001, "overbought": 99.9999}}


class _Writes:
    """Every write request the layer's DynamoDB client makes, with its parameters."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        aws_clients.dynamodb().meta.events.register("before-parameter-build.dynamodb.*", self._record)

    def _record(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name in WRITES:
            self.calls.append((model.name, params))

    def clear(self) -> None:
        """Forget what was counted so far."""
        self.calls.clear()

    @property
    def counts(self) -> Counter:
        """Write requests by operation."""
        return Counter(name for name, _ in self.calls)

    def transactions(self) -> list[list[str]]:
        """Each transaction as "<verb> <sort key prefix>" per item, e.g. "Put RUN", "ConditionCheck FLAGS"."""
        return [[_describe(item) for item in params["TransactItems"]]
                for name, params in self.calls if name == "TransactWriteItems"]


def _describe(item: dict[str, Any]) -> str:
    (verb, request), = item.items()
    key = request.get("Key") or request["Item"]
    sort_key = key["sk"]["S"]
    if sort_key.startswith("EVT#"):
        return f"{verb} EVT {sort_key.split('#')[3]}"
    return f"{verb} {sort_key.split('#')[0]}"


def _edit_size_on_first_call(runner, sid: str, monkeypatch, name: str,
                             module: Any = execution) -> dict[str, int]:
    """Make ``<module>.<name>`` (``execution`` unless told) change the strategy's size to 0.003 (as the user
    would) on its first call, after the turn read the strategy; the returned {"n": calls that edited} counts
    it."""
    from klineo.store import strategies as strategy_store

    real = getattr(module, name)
    edits = {"n": 0}

    def edit_first(*args: Any, **kwargs: Any) -> Any:
        if edits["n"] == 0:
            edits["n"] += 1
            current = runner.stored(USER, sid)
            strategy_store.update_settings(USER, sid, current, changes={"size": Decimal("0.003")})
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, edit_first)
    return edits


@pytest.fixture
def writes(runner) -> _Writes:
    """Write requests of the worker's DynamoDB client (registered once the runner's stack is up)."""
    return _Writes()


def _events(sid: str) -> Counter:
    return Counter(event.kind for event in list_events(sid, 100).events)


def test_a_hold_tick_is_one_put_of_its_run_and_nothing_else_written(runner, writes) -> None:
    """GIVEN a live strategy that holds WHEN its message is worked THEN exactly one PutItem (the run), no
    strategy write and no event."""
    sid = runner.strategy(USER, runner.connection(USER), **HOLDING)
    before = runner.stored(USER, sid)
    event = runner.dispatched_event()
    writes.clear()
    assert runner.work_event(event)["batchItemFailures"] == []
    assert writes.counts == Counter({"PutItem": 1})
    (_, put), = writes.calls
    assert put["Item"]["sk"]["S"].startswith("RUN#")
    assert put["ConditionExpression"] == "attribute_not_exists(sk)"
    assert [r.status for r in runner.runs(sid)] == ["no_change"]
    assert runner.stored(USER, sid) == before and _events(sid) == Counter()


def test_a_duplicated_hold_changes_nothing(runner, writes) -> None:
    """GIVEN a hold already recorded WHEN the same message is worked again THEN its one put is refused and the
    run, the strategy and the log stay as they were."""
    sid = runner.strategy(USER, runner.connection(USER), **HOLDING)
    event = runner.dispatched_event()
    runner.work_event(event)
    first_run, first_strategy = runner.runs(sid), runner.stored(USER, sid)
    writes.clear()
    assert runner.work_event(event)["batchItemFailures"] == []
    assert writes.counts == Counter({"PutItem": 1})
    assert runner.runs(sid) == first_run and runner.stored(USER, sid) == first_strategy
    assert _events(sid) == Counter()


def test_a_duplicated_hold_turn_answers_not_run(runner, monkeypatch) -> None:
    """GIVEN a hold recorded for candle C WHEN the strategy's turn on C is played again THEN not_run."""
    sid = runner.strategy(USER, runner.connection(USER), **HOLDING)
    started = time.time()
    tick_s = int(started) // 60 * 60 + 1  # second 1 of this minute: both turns target one candle
    monkeypatch.setattr(on_demand, "CLOCK", lambda: tick_s + (time.time() - started))
    deadline = int(time.time() * 1000) + 20_000
    first = on_demand.run_now(runner.stored(USER, sid), deadline)
    again = on_demand.run_now(runner.stored(USER, sid), deadline)
    assert (first.result.outcome, again.result.outcome, again.result.retry) == ("no_change", "not_run", False)
    assert again.run == first.run


def test_a_live_order_is_one_claim_transaction_and_one_settle_transaction(runner, writes) -> None:
    """GIVEN a live strategy that trades, on a connection that traded its symbol before WHEN its message is
    worked THEN two TransactWriteItems and no other write: the claim (strategy, no run yet, gates, order
    record, signal + order_submit) and the settle (run, strategy, order_fill, the symbol's watch, written
    once a day per container, and the order record's outcome with its fills)."""
    connection = runner.connection(USER)
    record_symbol_settings(USER, connection, "BTCUSDT", {"leverage_at_most": 10})  # its once-per-symbol check
    sid = runner.strategy(USER, connection)
    event = runner.dispatched_event()
    writes.clear()
    assert runner.work_event(event)["batchItemFailures"] == []
    assert writes.counts == Counter({"TransactWriteItems": 2})
    claim, settle = writes.transactions()
    assert claim == ["Update STRAT", "ConditionCheck RUN", "ConditionCheck CONN", "ConditionCheck FLAGS",
                     "ConditionCheck FLAGS", "Put ORDER", "Put EVT signal", "Put EVT order_submit"]
    assert settle == ["Put RUN", "Update STRAT", "Put EVT order_fill", "Update WATCH", "Update ORDER"]
    assert len(runner.journal("POST", ORDER_PATH)) == 1
    assert runner.runs(sid)[0].status == "ordered"
    assert _events(sid) == Counter({"signal": 1, "order_submit": 1, "order_fill": 1})
    record = get_order_record(USER, runner.runs(sid)[0].order["client_order_id"])
    assert record is not None and record.status == "FILLED" and record.origin == sid


def test_the_first_live_order_on_a_symbol_also_records_its_leverage_check_once(runner, writes) -> None:
    """GIVEN a connection with no leverage set, new to BTCUSDT (the account at 20x) WHEN a live strategy's
    first order goes out THEN the symbol's leverage is lowered to max_leverage first and ONE UpdateItem of
    the connection remembers it, beside the order's two transactions."""
    sid = runner.strategy(USER, runner.connection(USER))
    event = runner.dispatched_event()
    writes.clear()

    assert runner.work_event(event)["batchItemFailures"] == []

    assert writes.counts == Counter({"TransactWriteItems": 2, "UpdateItem": 1})
    assert runner.runs(sid)[0].status == "ordered"
    assert len(runner.journal("POST", "/fapi/v1/leverage")) == 1
    account = runner.sim.state.futures.state_for(runner.sim.account("futures-full"), time.time() * 1000)
    assert account.leverage["BTCUSDT"] == 10


def test_a_paper_fill_is_one_transaction(runner, writes) -> None:
    """GIVEN a paper strategy that trades WHEN its message is worked THEN ONE TransactWriteItems (run,
    strategy, signal, order_submit, order_fill) and no other write."""
    sid = runner.strategy(USER, runner.connection(USER), mode="paper")
    event = runner.dispatched_event()
    writes.clear()
    assert runner.work_event(event)["batchItemFailures"] == []
    assert writes.counts == Counter({"TransactWriteItems": 1})
    assert writes.transactions() == [["Put RUN", "Update STRAT", "Put EVT signal", "Put EVT order_submit",
                                      "Put EVT order_fill"]]
    assert runner.runs(sid)[0].status == "simulated" and runner.stored(USER, sid).paper_position != 0


def test_every_item_of_one_write_carries_the_same_time_and_ttl(runner, writes) -> None:
    """GIVEN a paper strategy that trades WHEN its one transaction is written THEN the run's created_at,
    the strategy's updated_at and each event's created_at are one time, and the run and events one ttl."""
    runner.strategy(USER, runner.connection(USER), mode="paper")
    event = runner.dispatched_event()
    writes.clear()
    assert runner.work_event(event)["batchItemFailures"] == []
    (_, params), = writes.calls
    puts = [item["Put"]["Item"] for item in params["TransactItems"] if "Put" in item]
    update, = [item["Update"] for item in params["TransactItems"] if "Update" in item]
    updated_at = update["ExpressionAttributeValues"][":updated_at"]["S"]  # Update names values :<name>
    assert len(puts) == 4  # the run and three events
    assert {put["created_at"]["S"] for put in puts} == {updated_at}
    assert len({put["ttl"]["N"] for put in puts}) == 1


def test_a_paper_strategy_edited_after_it_was_read_fills_once_at_the_new_size(runner, monkeypatch) -> None:
    """GIVEN the user changes a paper strategy's size between the turn's read and its paper fill WHEN the
    fill's write is refused (updated_at moved) THEN the turn is played again from the fresh item: one
    simulated run, one set of events, the new size."""
    sid = runner.strategy(USER, runner.connection(USER), mode="paper")
    edits = _edit_size_on_first_call(runner, sid, monkeypatch, "market_fill", paper_turn)
    assert runner.run_tick().failures == []
    assert edits["n"] == 1
    assert [run.status for run in runner.runs(sid)] == ["simulated"]
    assert abs(runner.stored(USER, sid).paper_position) == Decimal("0.003")
    assert _events(sid) == Counter({"signal": 1, "order_submit": 1, "order_fill": 1})


def test_a_kill_switch_set_between_the_decision_and_the_claim_stops_the_order(runner, monkeypatch) -> None:
    """GIVEN the user's kill switch turned on after the turn read the gates and decided WHEN the order is
    claimed THEN the claim transaction refuses it: no POST, a risk_block naming the gate, a skipped run."""
    sid = runner.strategy(USER, runner.connection(USER))
    real_prepare = execution.prepare_symbol

    def switch_on_first(*args: Any, **kwargs: Any) -> Any:
        runner.kill_switch(USER, True)
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(execution, "prepare_symbol", switch_on_first)
    tick = runner.run_tick()
    assert tick.failures == []
    assert runner.journal("POST", ORDER_PATH) == []
    run = runner.runs(sid)[0]
    assert (run.status, run.skip_reason) == ("skipped", "user_kill_switch")
    blocks = [e for e in list_events(sid, 100).events if e.kind == "risk_block"]
    assert [e.details["gate"] for e in blocks] == ["user_kill_switch"]
    assert _events(sid) == Counter({"signal": 1, "risk_block": 1})
    stored = runner.stored(USER, sid)
    assert stored.pending is None and stored.live_position == 0


def test_a_crash_between_claim_and_send_still_orders_exactly_once(runner, monkeypatch) -> None:
    """GIVEN a worker that dies after its claim committed and before sending WHEN the message comes again
    after recvWindow THEN exactly one order reaches the simulator, settled once, its events once each."""
    sid = runner.strategy(USER, runner.connection(USER))
    event = runner.dispatched_event()
    crash_first_call(monkeypatch, execution, "submit_futures_order")
    first = runner.work_event(event, remaining_ms=1)  # the lease ends at once, as after a timeout
    assert len(first["batchItemFailures"]) == 1
    pending = runner.stored(USER, sid).pending
    assert pending is not None and runner.journal("POST", ORDER_PATH) == []
    assert get_order_record(USER, pending.client_order_id).status == "PENDING"
    second = runner.work_event(event, later_ms=_past_recv_window_ms(1_000))
    assert second["batchItemFailures"] == []
    assert len([r for r in runner.journal("POST", ORDER_PATH) if r.status == 200]) == 1
    stored = runner.stored(USER, sid)
    assert stored.pending is None and abs(stored.live_position) == Decimal("0.002")
    assert [r.status for r in runner.runs(sid)] == ["ordered"]
    assert _events(sid) == Counter({"signal": 1, "order_submit": 1, "order_fill": 1})
    assert get_order_record(USER, pending.client_order_id).status == "FILLED"


def test_a_crash_between_send_and_settle_still_orders_exactly_once(runner, monkeypatch) -> None:
    """GIVEN a worker that dies after Binance filled its order and before the settle transaction WHEN the
    message comes again THEN the order is found by its clientOrderId, never sent again, settled once."""
    sid = runner.strategy(USER, runner.connection(USER))
    event = runner.dispatched_event()
    crash_first_call(monkeypatch, execution, "settle_live_order")
    first = runner.work_event(event, remaining_ms=1)
    assert len(first["batchItemFailures"]) == 1
    assert runner.runs(sid) == [] and _events(sid) == Counter({"signal": 1, "order_submit": 1})
    second = runner.work_event(event)
    assert second["batchItemFailures"] == []
    assert len(runner.journal("POST", ORDER_PATH)) == 1
    stored = runner.stored(USER, sid)
    assert stored.pending is None and abs(stored.live_position) == Decimal("0.002")
    run = runner.runs(sid)[0]
    assert (run.status, run.order["source"]) == ("ordered", "existing")
    assert _events(sid) == Counter({"signal": 1, "order_submit": 1, "order_fill": 1})
    assert get_order_record(USER, run.order["client_order_id"]).status == "FILLED"


def test_a_strategy_edited_after_it_was_read_is_played_again_not_ordered_twice(runner, monkeypatch) -> None:
    """GIVEN the user changes the strategy's size between the turn's read and its claim WHEN the claim is
    refused (updated_at moved) THEN the turn is played again from the fresh item: one order, the new size."""
    sid = runner.strategy(USER, runner.connection(USER))
    _edit_size_on_first_call(runner, sid, monkeypatch, "prepare_symbol")
    assert runner.run_tick().failures == []
    posts = runner.journal("POST", ORDER_PATH)
    assert len(posts) == 1
    assert abs(runner.stored(USER, sid).live_position) == Decimal("0.003")
    assert _events(sid) == Counter({"signal": 1, "order_submit": 1, "order_fill": 1})


def test_the_api_reports_a_holds_candle_as_the_last_run(runner) -> None:
    """GIVEN a hold tick (its run written, the strategy item untouched) WHEN the strategy is read through
    the API's service THEN last_run_close_time is the hold's candle, in the detail and in the list."""
    from klineo.services import strategies as strategy_service

    sid = runner.strategy(USER, runner.connection(USER), **HOLDING)
    runner.run_tick()
    assert runner.stored(USER, sid).last_close is None
    detail = strategy_service.get_user_strategy(USER, sid)
    listed = strategy_service.list_user_strategies(USER).strategies
    assert detail.last_run_close_time == runner.tick_close
    assert [s.last_run_close_time for s in listed] == [runner.tick_close]
