"""Strategy snapshots (the index read the dispatcher sends the worker) and a batch's gate reads (moto)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from klineo.errors import ErrorCategory, KlineoError
from klineo.runner.gates import GateBook
from klineo.store import connections
from klineo.store import strategies as strategy_store
from klineo.store.flags import set_global_kill_switch, set_user_kill_switch
from klineo.store.runs import claim_live_order, set_protective
from klineo.store.strategies import TradingSettings

from tests.unit.runner.helpers import make_pending, make_strategy

C = 1_740_067_379_999  # a 1m candle close time


def _connection(user_id: str, connection_id: str) -> connections.Connection:
    connection = connections.Connection(
        user_id=user_id, connection_id=connection_id, label="gates", environment="production",
        key_type="hmac", api_key_masked="abcd...", secret_name=f"klineo/test/{connection_id}",
        futures_enabled=True, created_at="2026-01-01T00:00:00+00:00")
    connections.put_connection(connection)
    return connection


def _active(interval: str = "1m") -> dict[str, strategy_store.ActiveStrategy]:
    return {found.strategy_id: found for found in strategy_store.query_active_snapshots(interval)}


def test_a_snapshot_decodes_to_the_strategy_as_stored(aws) -> None:
    """GIVEN a strategy with settings and runner state WHEN its index snapshot is decoded THEN it equals the
    strongly consistent read of the item, field for field."""
    strategy = make_strategy(settings=TradingSettings(direction="long", leverage=3, margin_type="ISOLATED",
                                                      stop_loss_pct=Decimal("1.5")),
                             parameters={"fast": 3, "slow": 8, "allow_short": False}, last_close=C - 60_000)
    set_protective(strategy.user_id, strategy.strategy_id,
                   {"stop_loss": Decimal("95000.123456789"), "armed": True, "quantity": Decimal("0.002")},
                   held=strategy.live_position, seen=None)
    found = _active()[strategy.strategy_id]
    decoded = strategy_store.from_snapshot(
        found.snapshot, user_id=found.user_id, strategy_id=found.strategy_id, environment=found.environment,
        symbol=found.symbol, interval="1m")
    assert decoded == strategy_store.get_strategy(strategy.user_id, strategy.strategy_id, consistent=True)
    assert decoded.protective["stop_loss"] == Decimal("95000.123456789")
    assert found.last_close == C - 60_000


def test_a_snapshot_leaves_out_the_keys_and_what_the_message_names(aws) -> None:
    """GIVEN a strategy WHEN snapshotted THEN no key, index attribute, owner, id or market in it."""
    strategy = make_strategy()
    snapshot = _active()[strategy.strategy_id].snapshot
    left_out = {"pk", "sk", "gsi1pk", "gsi1sk", "entity", "user_id", "strategy_id", "environment", "symbol",
                "interval"}
    assert snapshot is not None and not left_out & set(snapshot)
    assert snapshot["connection_id"] == {"S": strategy.connection_id}


def test_a_strategy_with_a_pending_order_has_no_snapshot(aws) -> None:
    """GIVEN a live strategy whose order is pending WHEN the index is read THEN no snapshot (must be read)."""
    strategy = make_strategy()
    assert claim_live_order(strategy.user_id, strategy.strategy_id, make_pending(C, lease_until_ms=1))
    assert _active()[strategy.strategy_id].snapshot is None


def test_the_contexts_of_a_batch_are_one_consistent_read(aws, dynamodb_requests) -> None:
    """GIVEN two users, three connections, one deleted and one malformed id WHEN their contexts load THEN one
    strongly consistent BatchGetItem of each connection, each user's flags and the global flags; None
    where there is no connection."""
    owners = (("ua", "1" * 32), ("ua", "2" * 32), ("ub", "3" * 32))
    a1, a2, b1 = (_connection(user, cid) for user, cid in owners)
    set_user_kill_switch("ub", True)
    set_global_kill_switch(False)
    dynamodb_requests.clear()
    pairs = [("ua", a1.connection_id), ("ua", a2.connection_id), ("ub", b1.connection_id), ("ub", "4" * 32),
             ("ub", "../CONN#")]
    contexts = connections.load_trading_contexts(pairs)
    assert [name for name, _ in dynamodb_requests] == ["BatchGetItem"]
    request = next(iter(dynamodb_requests[0][1]["RequestItems"].values()))
    assert request["ConsistentRead"] is True and len(request["Keys"]) == 7  # 4 connections, 2 users, global
    assert contexts[("ua", a2.connection_id)].connection == a2
    assert contexts[("ub", b1.connection_id)].user_kill_switch is True
    assert contexts[("ua", a1.connection_id)].kill_switch is False
    assert contexts[("ub", "4" * 32)] is None and contexts[("ub", "../CONN#")] is None


def test_more_than_a_hundred_keys_are_read_a_hundred_at_a_time(aws, dynamodb_requests) -> None:
    """GIVEN 60 users with one connection each (121 keys) WHEN their contexts load THEN 2 BatchGetItems, none
    over DynamoDB's 100 keys, and every context found."""
    pairs = [(f"user-{n}", _connection(f"user-{n}", f"{n:032x}").connection_id) for n in range(60)]
    dynamodb_requests.clear()
    contexts = connections.load_trading_contexts(pairs)
    sizes = [len(next(iter(params["RequestItems"].values()))["Keys"]) for _, params in dynamodb_requests]
    assert sizes == [100, 21]
    assert all(contexts[pair] is not None and contexts[pair].connection.user_id == pair[0] for pair in pairs)


def test_the_gate_book_answers_not_found_for_a_missing_connection_and_reads_a_new_pair_once(
    aws, dynamodb_requests,
) -> None:
    """GIVEN a book loaded for one pair WHEN asked for it, a missing one, and an unloaded one twice THEN
    NOT_FOUND for the missing one and one more read only, for the unloaded pair."""
    _connection("ua", "1" * 32)
    later = _connection("ua", "2" * 32)
    book = GateBook.load([("ua", "1" * 32), ("ua", "9" * 32)])
    dynamodb_requests.clear()
    assert book.trading("ua", "1" * 32).connection.connection_id == "1" * 32
    with pytest.raises(KlineoError) as caught:
        book.trading("ua", "9" * 32)
    assert caught.value.category is ErrorCategory.NOT_FOUND
    assert dynamodb_requests == []
    assert book.trading("ua", later.connection_id).connection == later
    assert book.trading("ua", later.connection_id).connection == later
    assert [name for name, _ in dynamodb_requests] == ["BatchGetItem"] and book.reads == 2
