"""What the worker reads per tick: strategies from the dispatcher's snapshots, gates once per connection.

Requests are counted on the layer's DynamoDB client (botocore's before-parameter-build event), as
moto receives them: nothing of our own code is mocked.
"""

from __future__ import annotations

import json
from typing import Any

from klineo.settings import get_settings
from klineo.store import aws as aws_clients
from klineo.store.flags import set_user_kill_switch

from tests.integration.runner.conftest import ORDER_PATH, worker_event_from

USER = "user-reads-1"
OTHER = "user-reads-2"
# RSI between 1 and 99 over 70 candles of the simulator's walk: the strategy holds every tick.
HOLD = {"period": 14, "oversold": 1, "overbought": 99}
READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})


def _reads(requests: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The reads of the data table (the Binance limiter's own table is synced per container, not per tick)."""
    table = get_settings().data_table
    return [(name, params) for name, params in requests
            if name in READS and table in (params.get("TableName"), *params.get("RequestItems", {}))]


def _batch_keys(params: dict[str, Any]) -> tuple[bool, list[str]]:
    """(strongly consistent, the sort keys' prefixes) of one BatchGetItem."""
    [request] = params["RequestItems"].values()
    prefixes = sorted(key.get("sk", {}).get("S", "other").split("#")[0] for key in request["Keys"])
    return bool(request.get("ConsistentRead")), prefixes


def _holds(runner, user: str, connection_id: str, symbols: tuple[str, ...]) -> list[str]:
    return [runner.strategy(user, connection_id, type="rsi_threshold", parameters=HOLD, symbol=symbol,
                            size=size)
            for symbol, size in (("BTCUSDT", "0.002"), ("ETHUSDT", "0.01"), ("BNBUSDT", "0.05"))
            if symbol in symbols]


def test_a_hold_tick_reads_no_strategy_and_the_gates_once_per_connection(runner, dynamodb_requests) -> None:
    """GIVEN five holding strategies of two users (one connection each) over three markets WHEN their
    dispatched messages run in one batch THEN the only data read is ONE consistent BatchGetItem of the two
    connections, the two users' flags and the global flags: no strategy item is read."""
    mine = _holds(runner, USER, runner.connection(USER), ("BTCUSDT", "ETHUSDT", "BNBUSDT"))
    theirs = _holds(runner, OTHER, runner.connection(OTHER), ("BTCUSDT", "ETHUSDT"))
    event = runner.dispatched_event()
    assert len(event["Records"]) == 3
    dynamodb_requests.clear()
    assert runner.work_event(event)["batchItemFailures"] == []
    [(operation, params)] = _reads(dynamodb_requests)
    assert [runner.runs(sid)[0].status for sid in mine + theirs] == ["no_change"] * 5
    assert operation == "BatchGetItem"
    assert _batch_keys(params) == (True, ["CONN", "CONN", "FLAGS", "FLAGS", "FLAGS"])


def test_a_redelivered_message_reads_its_strategies_strongly_consistent(runner, dynamodb_requests) -> None:
    """GIVEN a message already handled once WHEN SQS delivers it again (receive count 2) THEN its strategies
    are read in a consistent BatchGetItem, and nothing is run twice."""
    connection = runner.connection(USER)
    sids = [runner.strategy(USER, connection, type="rsi_threshold", parameters=HOLD) for _ in range(2)]
    event = runner.dispatched_event()
    runner.work_event(event)
    dynamodb_requests.clear()
    again = runner.work_event(event)
    strategy_reads = [_batch_keys(params) for name, params in _reads(dynamodb_requests)
                      if name == "BatchGetItem" and "STRAT" in _batch_keys(params)[1]]
    assert again["batchItemFailures"] == []
    assert strategy_reads == [(True, ["STRAT", "STRAT"])]
    assert [[run.status for run in runner.runs(sid)] for sid in sids] == [["no_change"]] * 2


def test_a_version_1_message_still_runs_on_a_consistent_read(runner, dynamodb_requests) -> None:
    """GIVEN a version 1 message (keys only, as queued before the deploy) WHEN the worker runs it THEN the
    strategy is read consistently and trades exactly as before: one order, one ordered run."""
    sid = runner.strategy(USER, runner.connection(USER))
    dispatched = runner.dispatched_event()
    [body] = [json.loads(record["body"]) for record in dispatched["Records"]]
    body["v"] = 1
    body["strategies"] = [{"user_id": ref["user_id"], "strategy_id": ref["strategy_id"]}
                          for ref in body["strategies"]]
    dynamodb_requests.clear()
    response = runner.work_event(worker_event_from([body], runner.queue_arn))
    batch_reads = [_batch_keys(params) for name, params in _reads(dynamodb_requests)
                   if name == "BatchGetItem"]
    assert response["batchItemFailures"] == []
    assert [runner.runs(sid)[0].status] == ["ordered"] and len(runner.journal("POST", ORDER_PATH)) == 1
    assert (True, ["STRAT"]) in batch_reads


def test_a_strategy_whose_connection_is_gone_is_skipped_and_paused(runner) -> None:
    """GIVEN a strategy whose connection does not exist WHEN a tick runs THEN a connection_not_found skip,
    the strategy paused with that reason, and nothing sent."""
    sid = runner.strategy(USER, "f" * 32, type="rsi_threshold", parameters=HOLD)
    assert runner.run_tick().failures == []
    run = runner.runs(sid)[0]
    assert (run.status, run.skip_reason) == ("skipped", "connection_not_found")
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason) == ("paused", "connection_not_found")
    assert runner.journal("POST") == []


def test_a_kill_switch_set_after_the_batch_read_the_gates_still_stops_the_order(runner) -> None:
    """GIVEN a strategy about to order WHEN the user's kill switch goes on right after the worker read the
    batch's gates THEN the order's claim sees it: nothing is sent and the run is skipped naming the gate."""
    sid = runner.strategy(USER, runner.connection(USER))
    event = runner.dispatched_event()
    fired: list[bool] = []

    def switch_on_after_the_gate_read(**_: Any) -> None:
        if not fired:
            fired.append(True)
            set_user_kill_switch(USER, True)

    aws_clients.dynamodb().meta.events.register("after-call.dynamodb.BatchGetItem",
                                                switch_on_after_the_gate_read)
    runner.work_event(event)
    assert fired == [True]
    assert runner.journal("POST", ORDER_PATH) == []
    run = runner.runs(sid)[0]
    assert (run.status, run.skip_reason) == ("skipped", "user_kill_switch")
