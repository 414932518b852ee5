"""The strategy and run stores under moto: ownership, the sparse index, and the runner's state moves."""

from __future__ import annotations

import time
from decimal import Decimal

import boto3
import pytest
from klineo.binance import ErrorCategory, KlineoError
from klineo.store import aws as clients
from klineo.store import runs as run_store
from klineo.store import strategies as strategy_store
from klineo.store.events import StrategyEvent, list_events
from klineo.store.runs import StrategyAdvance

from tests.unit.runner.helpers import make_pending, make_run, make_strategy

C = 1_740_067_379_999  # a 1m candle close time


def test_a_strategy_reads_back_as_written_and_only_for_its_owner(aws) -> None:
    """GIVEN a stored strategy WHEN its owner and another user read it THEN only the owner gets it."""
    strategy = make_strategy("user-a")
    assert strategy_store.get_strategy("user-a", strategy.strategy_id, consistent=True) == strategy
    assert strategy_store.get_strategy("user-b", strategy.strategy_id) is None
    assert [s.strategy_id for s in strategy_store.list_strategies("user-a")] == [strategy.strategy_id]
    assert strategy_store.list_strategies("user-b") == []


def test_only_active_strategies_are_on_their_intervals_index_partition(aws) -> None:
    """GIVEN active 1m and 5m and a paused 1m strategy WHEN querying the 1m partition THEN the active 1m."""
    active = make_strategy(interval="1m")
    make_strategy(interval="5m")
    make_strategy(interval="1m", status="paused")
    assert [s.strategy_id for s in strategy_store.query_active("1m")] == [active.strategy_id]


def test_pausing_and_resuming_moves_a_strategy_off_and_back_on_the_index(aws) -> None:
    """GIVEN 2 key failures WHEN paused then resumed THEN off the index, then back on with 0 failures."""
    strategy = make_strategy(key_failures=2)
    paused = strategy_store.update_settings("user-a", strategy.strategy_id, strategy,
                                            changes={"status": "paused", "status_reason": "paused by user"})
    assert paused.status == "paused" and list(strategy_store.query_active("1m")) == []
    resumed = strategy_store.update_settings("user-a", strategy.strategy_id, paused,
                                             changes={"status": "active", "status_reason": None})
    assert resumed.status_reason is None and resumed.key_failures == 0
    assert [s.strategy_id for s in strategy_store.query_active("1m")] == [strategy.strategy_id]


def test_user_settings_never_overwrite_the_runners_fields(aws) -> None:
    """GIVEN a traded strategy WHEN the user changes its size THEN position and last candle stay."""
    strategy = make_strategy()
    run_store.record_run(make_run(strategy, C), advance=StrategyAdvance(
        position_attribute="live_position", position_from=Decimal(0), position_to=Decimal("0.002")))
    updated = strategy_store.update_settings("user-a", strategy.strategy_id, strategy,
                                             changes={"size": Decimal("0.005")})
    expected = (Decimal("0.005"), Decimal("0.002"), C)
    assert (updated.size, updated.live_position, updated.last_close) == expected


def test_a_candle_is_recorded_once(aws) -> None:
    """GIVEN a run recorded for candle C WHEN the candle is recorded again THEN refused, first kept."""
    strategy = make_strategy()
    assert run_store.record_run(make_run(strategy, C, "no_change"), advance=StrategyAdvance())
    again = make_run(strategy, C, "skipped", skip_reason="x")
    assert not run_store.record_run(again, advance=StrategyAdvance())
    assert [r.status for r in run_store.list_runs(strategy.strategy_id)] == ["no_change"]


def test_an_older_candle_cannot_advance_a_strategy_past_a_newer_one(aws) -> None:
    """GIVEN a strategy at candle C WHEN a run for C - 60 s arrives late THEN the strategy stays at C."""
    strategy = make_strategy()
    run_store.record_run(make_run(strategy, C), advance=StrategyAdvance())
    assert not run_store.record_run(make_run(strategy, C - 60_000), advance=StrategyAdvance(key_failures=7))
    stored = strategy_store.get_strategy("user-a", strategy.strategy_id)
    assert (stored.last_close, stored.key_failures) == (C, 0)


def test_runs_carry_a_ttl_and_list_newest_first(aws) -> None:
    """GIVEN runs on three candles WHEN listing THEN newest first, each expiring in 90 days (retention)."""
    strategy = make_strategy()
    for close in (C - 120_000, C - 60_000, C):
        run_store.record_run(make_run(strategy, close), advance=StrategyAdvance())
    assert [r.close_time for r in run_store.list_runs(strategy.strategy_id, limit=2)] == [C, C - 60_000]
    item = boto3.client("dynamodb").get_item(
        TableName=aws.refs["DataTable"], Key=run_store.run_key(strategy.strategy_id, C))["Item"]
    assert abs(int(item["ttl"]["N"]) - (time.time() + 90 * 86_400)) < 60


def test_only_one_claim_per_candle_and_settling_moves_the_position(aws) -> None:
    """GIVEN a live strategy WHEN two workers claim candle C THEN one wins; settling adds the fill once."""
    strategy = make_strategy()
    pending = make_pending(C, lease_until_ms=int(time.time() * 1000) + 60_000)
    assert run_store.claim_live_order("user-a", strategy.strategy_id, pending)
    assert not run_store.claim_live_order("user-a", strategy.strategy_id, pending)
    assert strategy_store.get_strategy("user-a", strategy.strategy_id).pending == pending
    ordered = make_run(strategy, C, "ordered", order={"status": "FILLED"})
    assert run_store.settle_live_order("user-a", strategy.strategy_id, pending, ordered,
                                       position_to=Decimal("0.002"), key_failures=0)
    stored = strategy_store.get_strategy("user-a", strategy.strategy_id)
    assert (stored.pending, stored.live_position, stored.last_close) == (None, Decimal("0.002"), C)
    assert run_store.list_runs(strategy.strategy_id)[0].status == "ordered"
    assert not run_store.settle_live_order("user-a", strategy.strategy_id, pending, ordered,
                                           position_to=Decimal("0.004"), key_failures=0)
    assert strategy_store.get_strategy("user-a", strategy.strategy_id).live_position == Decimal("0.002")


def test_a_claim_needs_an_active_live_strategy_holding_the_sized_position(aws) -> None:
    """GIVEN a paused strategy, or a position that moved WHEN claiming THEN refused."""
    lease = int(time.time() * 1000) + 60_000
    paused = make_strategy(status="paused")
    pending = make_pending(C, lease_until_ms=lease)
    assert not run_store.claim_live_order("user-a", paused.strategy_id, pending)
    moved = make_strategy(live_position=Decimal("0.002"))
    assert not run_store.claim_live_order("user-a", moved.strategy_id, pending)


def test_key_failures_pause_with_the_reason_and_leave_the_index(aws) -> None:
    """GIVEN an order refused for the third time WHEN settling with a pause THEN paused, off the index."""
    strategy = make_strategy(key_failures=2)
    pending = make_pending(C, lease_until_ms=int(time.time() * 1000) + 60_000)
    run_store.claim_live_order("user-a", strategy.strategy_id, pending)
    failed = make_run(strategy, C, "failed", error={"category": "permission", "message": "refused"})
    run_store.settle_live_order("user-a", strategy.strategy_id, pending, failed,
                                position_to=Decimal(0), key_failures=3, seen={"key_failures": 2},
                                pause_reason="key_failure:permission")
    stored = strategy_store.get_strategy("user-a", strategy.strategy_id)
    expected = ("paused", "key_failure:permission", 3)
    assert (stored.status, stored.status_reason, stored.key_failures) == expected
    assert list(strategy_store.query_active("1m")) == []


def test_a_run_and_its_strategy_change_are_written_together_or_not_at_all(aws) -> None:
    """GIVEN a paper fill whose write dies (the attempt crashes) WHEN the candle is recorded again, twice
    THEN the dead attempt left nothing, the change is applied once, and the third attempt changes nothing."""
    strategy = make_strategy(mode="paper")
    advance = StrategyAdvance(position_attribute="paper_position", position_from=Decimal(0),
                              position_to=Decimal("0.002"))
    run = make_run(strategy, C, "simulated")

    def crash(**_: object) -> None:
        raise RuntimeError("container lost")

    events = clients.dynamodb().meta.events
    events.register("before-call.dynamodb.TransactWriteItems", crash, unique_id="crash")
    with pytest.raises(RuntimeError):
        run_store.record_run(run, advance=advance)
    events.unregister("before-call.dynamodb.TransactWriteItems", unique_id="crash")
    untouched = strategy_store.get_strategy("user-a", strategy.strategy_id)
    assert run_store.list_runs(strategy.strategy_id) == [] and untouched == strategy
    assert run_store.record_run(run, advance=advance)
    assert not run_store.record_run(run, advance=advance)
    stored = strategy_store.get_strategy("user-a", strategy.strategy_id)
    assert (stored.paper_position, stored.last_close) == (Decimal("0.002"), C)


def test_a_skip_keeps_its_candle_from_being_traded_even_with_an_older_order_pending(aws) -> None:
    """GIVEN an unsettled order of candle C WHEN candle C + 60 s is skipped (kill switch) and C settles later
    THEN the skipped candle stays the latest on record, so it can never be traded afterwards."""
    strategy = make_strategy()
    pending = make_pending(C, lease_until_ms=int(time.time() * 1000) - 1)
    run_store.claim_live_order("user-a", strategy.strategy_id, pending)
    skipped = make_run(strategy, C + 60_000, "skipped", skip_reason="user_kill_switch")
    assert run_store.record_skip(skipped, StrategyAdvance(allow_pending=True))
    assert not run_store.record_skip(skipped, StrategyAdvance(allow_pending=True))
    ordered = make_run(strategy, C, "ordered")
    assert run_store.settle_live_order("user-a", strategy.strategy_id, pending, ordered,
                                       position_to=Decimal("0.002"), key_failures=0)
    stored = strategy_store.get_strategy("user-a", strategy.strategy_id)
    assert (stored.live_position, stored.pending) == (Decimal("0.002"), None)
    # The skip wrote its run only (no strategy write): the run is what the API reports and what the
    # claim checks (its last_run_close_time is max(last_close, latest run)).
    assert max(stored.last_close, run_store.latest_run_close_time(strategy.strategy_id)) == C + 60_000
    later = make_pending(C + 60_000, lease_until_ms=int(time.time() * 1000) + 60_000, position_before="0.002")
    refused = run_store.claim_live_order("user-a", strategy.strategy_id, later)
    assert not refused and set(refused.failed) == {"run"}


def test_a_lease_is_taken_over_by_one_worker_only(aws) -> None:
    """GIVEN an expired pending order WHEN two workers extend its lease from the same state THEN one wins."""
    strategy = make_strategy()
    pending = make_pending(C, lease_until_ms=int(time.time() * 1000) - 1)
    run_store.claim_live_order("user-a", strategy.strategy_id, pending)
    later = pending.lease_until_ms + 90_000
    assert run_store.extend_lease("user-a", strategy.strategy_id, pending, later)
    assert not run_store.extend_lease("user-a", strategy.strategy_id, pending, later)


def test_delete_waits_while_an_order_is_being_sent(aws) -> None:
    """GIVEN a pending order with a live lease WHEN deleting, even as its connection goes away THEN 409; once
    the lease ran out the delete of a strategy whose connection goes away (``unsettled_ok``) is done."""
    strategy = make_strategy()
    now = int(time.time() * 1000)
    pending = make_pending(C, lease_until_ms=now + 60_000)
    run_store.claim_live_order("user-a", strategy.strategy_id, pending)
    for unsettled_ok in (False, True):
        with pytest.raises(KlineoError) as caught:
            strategy_store.delete_strategy("user-a", strategy.strategy_id, now_ms=now,
                                           unsettled_ok=unsettled_ok)
        assert caught.value.category is ErrorCategory.CONFLICT
        assert "being sent right now" in caught.value.message
    strategy_store.delete_strategy("user-a", strategy.strategy_id, now_ms=now + 120_000, unsettled_ok=True)
    assert strategy_store.get_strategy("user-a", strategy.strategy_id) is None


def test_delete_waits_while_an_order_sent_is_not_settled(aws) -> None:
    """GIVEN a pending order whose lease ran out (its outcome unknown) WHEN deleting THEN 409 naming the
    order and saying the delete can be sent again once it is settled; the strategy stays."""
    strategy = make_strategy()
    now = int(time.time() * 1000)
    pending = make_pending(C, lease_until_ms=now - 1)
    run_store.claim_live_order("user-a", strategy.strategy_id, pending)
    with pytest.raises(KlineoError) as caught:
        strategy_store.delete_strategy("user-a", strategy.strategy_id, now_ms=now)
    assert caught.value.category is ErrorCategory.CONFLICT
    assert pending.client_order_id in caught.value.message and "again" in caught.value.message
    assert strategy_store.get_strategy("user-a", strategy.strategy_id) is not None


def test_deleting_a_missing_or_foreign_strategy_is_not_found(aws) -> None:
    """GIVEN user A's strategy WHEN user B deletes it THEN not_found and it stays."""
    strategy = make_strategy("user-a")
    with pytest.raises(KlineoError) as caught:
        strategy_store.delete_strategy("user-b", strategy.strategy_id)
    assert caught.value.category is ErrorCategory.NOT_FOUND
    assert strategy_store.get_strategy("user-a", strategy.strategy_id) is not None


def test_consistent_batch_read_returns_every_named_strategy(aws) -> None:
    """GIVEN 150 strategies of two users WHEN read by key THEN all come back (two BatchGetItems of <= 100)."""
    made = [make_strategy("user-a" if i % 2 else "user-b") for i in range(150)]
    refs = [(s.user_id, s.strategy_id) for s in made] + [("x", "y")]
    found = strategy_store.get_strategies_consistent(refs)
    assert set(found) == {(s.user_id, s.strategy_id) for s in made}


def test_a_run_is_written_with_its_events_once_even_when_an_event_key_repeats(aws) -> None:
    """GIVEN a paper fill with its events, one of them twice WHEN recorded, then recorded again THEN one
    transaction wrote the run, the position and each event once; the repeat wrote nothing."""
    strategy = make_strategy(mode="paper")
    signal = StrategyEvent(strategy.strategy_id, "user-a", "signal", C, {"signal": "long"}, close_time=C)
    fill = StrategyEvent(strategy.strategy_id, "user-a", "order_fill", C, {"quantity": "0.002"}, close_time=C)
    advance = StrategyAdvance(position_attribute="paper_position", position_from=Decimal(0),
                              position_to=Decimal("0.002"))
    run = make_run(strategy, C, "simulated")
    assert run_store.record_run(run, advance=advance, events=[signal, fill, signal])
    assert not run_store.record_run(run, advance=advance, events=[signal, fill])
    assert sorted(e.kind for e in list_events(strategy.strategy_id, 10).events) == ["order_fill", "signal"]
    assert strategy_store.get_strategy("user-a", strategy.strategy_id).paper_position == Decimal("0.002")
