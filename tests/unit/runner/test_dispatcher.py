"""The dispatcher under moto: one index Query per due interval (never a Scan), grouped messages on SQS
carrying each strategy's snapshot, split by count and by encoded size."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from klineo.errors import KlineoError
from klineo.runner import dispatcher
from klineo.runner.messages import (
    MAX_MESSAGE_BYTES,
    MAX_STRATEGIES_PER_MESSAGE,
    SQS_MESSAGE_LIMIT_BYTES,
    StrategyRef,
    WorkMessage,
)
from klineo.store import aws as aws_clients
from klineo.store import strategies as strategy_store
from klineo.store.queue import SQS_BATCH_BYTES
from klineo.store.runs import claim_live_order
from klineo.store.strategies import ActiveStrategy, TradingSettings

from tests.unit.runner.helpers import make_pending, make_strategy

TICK = int(datetime(2025, 2, 20, 16, 2, tzinfo=UTC).timestamp() * 1000)  # only 1m is due at 16:02
HOUR = int(datetime(2025, 2, 20, 16, 0, tzinfo=UTC).timestamp() * 1000)  # 1m..8h are due at 16:00
BEFORE = "2025-02-20T12:00:00.000+00:00"  # a created_at before every candle these ticks look at


def queued(aws) -> list[dict[str, Any]]:
    """Bodies of every message on the strategy queue."""
    sqs = boto3.client("sqs")
    bodies = []
    while True:
        answer = sqs.receive_message(QueueUrl=aws.refs["StrategyQueue"], MaxNumberOfMessages=10)
        got = answer.get("Messages", [])
        if not got:
            return bodies
        bodies.extend(json.loads(m["Body"]) for m in got)


@pytest.fixture
def dynamodb_calls(aws) -> list[str]:
    """Names of the DynamoDB operations the layer's client makes from now on."""
    calls: list[str] = []
    aws_clients.dynamodb().meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    return calls


def test_strategies_of_one_market_share_one_message(aws) -> None:
    """GIVEN 3 BTCUSDT and 2 ETHUSDT 1m strategies WHEN a tick dispatches THEN 2 messages, by symbol."""
    for symbol in ("BTCUSDT",) * 3 + ("ETHUSDT",) * 2:
        make_strategy(symbol=symbol)
    summary = dispatcher.dispatch_tick({"time": "2025-02-20T16:02:00Z"}, now_ms=TICK + 5_000)
    bodies = queued(aws)
    assert summary["strategies"] == 5 and summary["messages"] == 2
    assert sorted((b["symbol"], len(b["strategies"])) for b in bodies) == [("BTCUSDT", 3), ("ETHUSDT", 2)]
    for body in bodies:
        message = WorkMessage.model_validate(body)
        assert (message.interval, message.close_time, message.tick) == ("1m", TICK - 1, TICK)


def test_environments_are_separate_groups(aws) -> None:
    """GIVEN BTCUSDT strategies on production and testnet WHEN dispatching THEN one message each."""
    make_strategy(environment="production")
    make_strategy(environment="testnet")
    messages = dispatcher.plan_messages(TICK)
    assert sorted(m.environment for m in messages) == ["production", "testnet"]


def test_a_large_group_is_split_at_the_message_cap(aws) -> None:
    """GIVEN 250 strategies on one market WHEN planning THEN 100 + 100 + 50 (same group, same candle)."""
    for _ in range(250):
        make_strategy()
    messages = dispatcher.plan_messages(TICK)
    cap = MAX_STRATEGIES_PER_MESSAGE
    assert [len(m.strategies) for m in messages] == [cap, cap, 50]
    assert len({m.group for m in messages}) == 1


def test_only_due_intervals_are_queried_and_never_scanned(aws, dynamodb_calls) -> None:
    """GIVEN 1m and 1h strategies WHEN ticking at 16:02 THEN only 1m is dispatched, by Query on the index."""
    make_strategy(interval="1m")
    make_strategy(interval="1h")
    dynamodb_calls.clear()
    messages = dispatcher.plan_messages(TICK)
    assert [m.interval for m in messages] == ["1m"]
    assert dynamodb_calls == ["Query"]


def test_every_interval_due_on_the_hour_is_dispatched(aws, dynamodb_calls) -> None:
    """GIVEN 1m, 15m and 1h strategies WHEN ticking at 16:00 THEN all three, one Query per due interval."""
    for interval in ("1m", "15m", "1h"):
        make_strategy(interval=interval)
    dynamodb_calls.clear()
    messages = dispatcher.plan_messages(HOUR)
    assert sorted(m.interval for m in messages) == ["15m", "1h", "1m"]
    assert set(dynamodb_calls) == {"Query"} and "Scan" not in dynamodb_calls
    assert {m.close_time for m in messages} == {HOUR - 1}


def test_strategies_that_already_ran_the_candle_are_left_out(aws) -> None:
    """GIVEN a 1h strategy that ran the 15:59:59.999 candle WHEN the 16:01 catch-up tick THEN not sent."""
    make_strategy(interval="1h", last_close=HOUR - 1, created_at=BEFORE)
    fresh = make_strategy(interval="1h", created_at=BEFORE)
    summary = dispatcher.DispatchSummary(tick=HOUR + 60_000)
    messages = dispatcher.plan_messages(HOUR + 60_000, summary=summary)
    assert [ref.strategy_id for m in messages for ref in m.strategies] == [fresh.strategy_id]
    assert summary.already_ran == 1


def test_messages_go_out_ten_per_send_message_batch(aws, monkeypatch) -> None:
    """GIVEN 23 groups WHEN dispatching THEN 3 SendMessageBatch calls and 23 messages on the queue."""
    for index in range(23):
        make_strategy(symbol=f"S{index:02d}USDT")
    calls: list[str] = []
    aws_clients.sqs().meta.events.register("before-call.sqs.*", lambda model, **_: calls.append(model.name))
    dispatcher.dispatch_tick({"time": "2025-02-20T16:02:00Z"}, now_ms=TICK)
    assert calls.count("SendMessageBatch") == 3 and "SendMessage" not in calls
    assert len(queued(aws)) == 23


def _traded_snapshot() -> dict[str, Any]:
    """The snapshot of a live strategy with SL/TP that holds a position (its runner state filled in)."""
    made = make_strategy(settings=TradingSettings(
        stop_loss_pct=Decimal("1.5"), take_profit_pct=Decimal("3"), trailing_stop_pct=Decimal("0.8")))
    runner_state = strategy_store.to_item({
        "live_position": Decimal("0.002"), "last_close": TICK - 60_001, "last_fill_ms": TICK - 58_766,
        "protective": {"mode": "live", "entry_side": "BUY", "entry_price": Decimal("96012.4"), "armed": True,
                       "stop_loss": Decimal("94572.2"), "take_profit": Decimal("98892.7"),
                       "trailing_stop_pct": Decimal("0.8")},
        "live_book": {"entry_price": Decimal("96012.4"), "realised_pnl": Decimal("-12.48213"),
                      "fees": Decimal("3.840496"), "fees_other_assets": 0, "estimated_fills": 0},
    })
    return strategy_store.snapshot_of({**made.to_item(), **runner_state})


def test_full_messages_are_sent_under_the_batch_payload_limit(aws) -> None:
    """GIVEN 1,000 traded strategies on one market (10 full messages of about 110 KB) WHEN sent THEN every
    SendMessageBatch stays under SQS's limit on the sum of its bodies (ten together were refused whole,
    BatchRequestTooLong, and those strategies never ran), and all 1,000 are queued."""
    snapshot = _traded_snapshot()
    strategies = [ActiveStrategy(user_id="user-a", strategy_id=f"{n:032x}", environment="production",
                                 symbol="BTCUSDT", last_close=None, snapshot=snapshot)
                  for n in range(10 * MAX_STRATEGIES_PER_MESSAGE)]
    messages = dispatcher.plan_messages(TICK, query=lambda interval: strategies if interval == "1m" else [])
    sizes: list[int] = []

    def batch_size(params: dict[str, Any], **_: Any) -> None:
        sizes.append(sum(len(entry["MessageBody"].encode()) for entry in params["Entries"]))

    aws_clients.sqs().meta.events.register("before-parameter-build.sqs.SendMessageBatch", batch_size)

    dispatcher.send_messages(messages)

    assert len(messages) == 10 and max(sizes) <= SQS_BATCH_BYTES
    assert sum(len(body["strategies"]) for body in queued(aws)) == len(strategies)


def test_nothing_due_sends_nothing(aws) -> None:
    """GIVEN no active strategy WHEN dispatching THEN zero messages and no SQS call fails."""
    assert dispatcher.dispatch_tick({"time": "2025-02-20T16:02:00Z"}, now_ms=TICK)["messages"] == 0
    assert queued(aws) == []


def test_each_strategy_travels_with_its_snapshot_in_a_version_2_message(aws) -> None:
    """GIVEN two strategies WHEN a tick dispatches THEN a version 2 body whose snapshots decode to them."""
    made = {s.strategy_id: s for s in (make_strategy(), make_strategy())}
    dispatcher.dispatch_tick({"time": "2025-02-20T16:02:00Z"}, now_ms=TICK)
    [body] = queued(aws)
    message = WorkMessage.model_validate(body)
    assert message.v == 2 and {ref.strategy_id for ref in message.strategies} == set(made)
    for ref in message.strategies:
        decoded = strategy_store.from_snapshot(ref.snapshot, user_id=ref.user_id, strategy_id=ref.strategy_id,
                                               environment=message.environment, symbol=message.symbol,
                                               interval=message.interval)
        assert decoded == made[ref.strategy_id]


def test_a_big_group_is_split_by_encoded_size_under_sqs_limit(aws) -> None:
    """GIVEN 90 strategies of one market with ~6 KB items (under the count cap) WHEN planning THEN several
    messages, each body under SQS's 256 KiB, every strategy once and with its snapshot."""
    wide = {f"note_{n:02d}": "x" * 200 for n in range(30)}  # the store takes any map; the API would refuse it
    made = {make_strategy(parameters={"fast": 2, "slow": 3, **wide}).strategy_id for _ in range(90)}
    messages = dispatcher.plan_messages(TICK)
    sizes = [len(m.body().encode()) for m in messages]
    assert len(messages) >= 3 and max(sizes) <= SQS_MESSAGE_LIMIT_BYTES and max(sizes) <= MAX_MESSAGE_BYTES
    refs = [ref for m in messages for ref in m.strategies]
    assert sorted(ref.strategy_id for ref in refs) == sorted(made)
    assert all(ref.snapshot is not None for ref in refs)


def test_a_strategy_too_big_for_any_message_goes_without_its_snapshot() -> None:
    """GIVEN a snapshot bigger than a message WHEN split THEN that strategy travels as a key only."""
    header = WorkMessage(tick=TICK, environment="production", symbol="BTCUSDT", interval="1m",
                         close_time=TICK - 1, strategies=[StrategyRef(user_id="u", strategy_id="s")])
    too_big = {"parameters": {"S": "x" * SQS_MESSAGE_LIMIT_BYTES}}
    huge = StrategyRef(user_id="u", strategy_id="big", snapshot=too_big)
    small = StrategyRef(user_id="u", strategy_id="small", snapshot={"type": {"S": "sma_crossover"}})
    [run] = dispatcher.split_by_size(header, [small, huge])
    assert [(ref.strategy_id, ref.snapshot is None) for ref in run] == [("small", False), ("big", True)]


def test_a_strategy_with_a_pending_order_is_sent_without_its_snapshot(aws) -> None:
    """GIVEN a live strategy whose order is pending WHEN planning THEN its entry has no snapshot."""
    strategy = make_strategy()
    pending = make_pending(TICK - 60_001, lease_until_ms=1)
    assert claim_live_order(strategy.user_id, strategy.strategy_id, pending)
    [message] = dispatcher.plan_messages(TICK)
    assert [(ref.strategy_id, ref.snapshot) for ref in message.strategies] == [(strategy.strategy_id, None)]


def _tick_at(minute_ms: int) -> dict[str, Any]:
    """The dispatcher's tick of ``minute_ms`` (its Scheduler event, run 5 s into the minute)."""
    stamp = datetime.fromtimestamp(minute_ms / 1000, UTC).isoformat()
    return dispatcher.dispatch_tick({"time": stamp}, now_ms=minute_ms + 5_000)


def test_a_completed_tick_leaves_out_the_catch_up_look_of_its_candles(aws) -> None:
    """GIVEN a 1h strategy the 16:00 tick dispatched and queued WHEN the 16:01 tick runs THEN 1h is not looked
    at again (a hold moves no last_close: it would be dispatched twice) and the summary names it."""
    make_strategy(interval="1h")
    assert _tick_at(HOUR)["strategies"] == 1
    later = _tick_at(HOUR + 60_000)
    assert later["strategies"] == 0 and "1h" not in later["due"]
    assert set(later["dispatched_before"]) == {"3m", "5m", "15m", "30m", "1h", "2h", "4h", "8h"}
    assert [(body["interval"], body["close_time"]) for body in queued(aws)] == [("1h", HOUR - 1)]


def test_a_tick_that_could_not_queue_a_message_leaves_the_catch_up_to_the_next(aws, monkeypatch) -> None:
    """GIVEN a 16:00 tick whose message could not be queued (it raised) WHEN the 16:01 tick runs THEN that
    tick dispatches the 1h strategy on the 15:59:59.999 candle."""
    make_strategy(interval="1h", created_at=BEFORE)
    with monkeypatch.context() as lost:
        lost.setattr(dispatcher, "send_batch", lambda queue_url, batch: len(batch))
        with pytest.raises(KlineoError):
            _tick_at(HOUR)
    later = _tick_at(HOUR + 60_000)
    assert later["strategies"] == 1 and later["dispatched_before"] == []
    assert [(body["interval"], body["close_time"]) for body in queued(aws)] == [("1h", HOUR - 1)]


def test_duplicate_invocations_of_a_minute_both_complete(aws) -> None:
    """GIVEN the 16:00 tick invoked twice (the Scheduler delivered it twice) WHEN both run THEN neither fails
    (the tick record's Put is the same item) and the 16:01 tick still leaves out the catch-up."""
    make_strategy(interval="1h")
    assert [_tick_at(HOUR)["strategies"] for _ in range(2)] == [1, 1]
    assert _tick_at(HOUR + 60_000)["strategies"] == 0


def test_the_tick_record_is_written_only_when_the_next_tick_would_look_again(aws, dynamodb_calls) -> None:
    """GIVEN 1m and 1h strategies WHEN the 16:00 tick (a 1h close), the 16:01 tick (its catch-up minute) and
    the 16:02 tick (1m alone) run THEN only 16:00 puts a record (its 1h candle gets a look at 16:01), 16:01
    reads it once, and a minute of 1m candles alone writes nothing (a hold stays 1 write unit)."""
    make_strategy(interval="1m")
    make_strategy(interval="1h")
    dynamodb_calls.clear()
    _tick_at(HOUR)
    assert dynamodb_calls.count("PutItem") == 1
    dynamodb_calls.clear()
    _tick_at(HOUR + 60_000)
    assert sorted(dynamodb_calls) == ["GetItem", "Query"]
    dynamodb_calls.clear()
    _tick_at(TICK)
    assert dynamodb_calls == ["Query"]


def test_a_catch_up_look_leaves_out_a_strategy_created_after_its_candle_closed(aws) -> None:
    """GIVEN a 1h strategy created at 16:00:30, after the 15:59:59.999 candle closed, and one created before
    WHEN the 16:01 tick looks at that candle again THEN only the older one is sent, and the summary counts
    the other."""
    make_strategy(interval="1h", created_at="2025-02-20T16:00:30.000+00:00")
    older = make_strategy(interval="1h", created_at=BEFORE)
    summary = dispatcher.DispatchSummary(tick=HOUR + 60_000)
    messages = dispatcher.plan_messages(HOUR + 60_000, summary=summary, completed=lambda minute: False)
    assert [ref.strategy_id for m in messages for ref in m.strategies] == [older.strategy_id]
    assert summary.active_after_close == 1


def test_the_ticks_own_look_leaves_out_a_strategy_created_after_its_candle_closed(aws) -> None:
    """GIVEN a 1m strategy created at 16:02:03, after the 16:01:59.999 candle closed, and one created before
    WHEN the 16:02 tick looks at that candle THEN only the older one is sent (the summary counts the other);
    WHEN the 16:03 tick looks at the next candle THEN both are sent."""
    newer = make_strategy(created_at="2025-02-20T16:02:03.000+00:00")
    older = make_strategy(created_at=BEFORE)
    summary = dispatcher.DispatchSummary(tick=TICK)
    messages = dispatcher.plan_messages(TICK, summary=summary, completed=lambda minute: False)
    assert [ref.strategy_id for m in messages for ref in m.strategies] == [older.strategy_id]
    assert summary.active_after_close == 1
    following = dispatcher.plan_messages(TICK + 60_000, completed=lambda minute: False)
    assert sorted(ref.strategy_id for m in following for ref in m.strategies) == sorted(
        [older.strategy_id, newer.strategy_id])
