"""Strategy orders pass the same risk gate and connection settings as API orders (moto + simulator)."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from klineo.store import aws as aws_clients
from klineo.store import strategies as strategy_store
from klineo.store.connections import get_connection, update_settings
from klineo.store.events import list_events
from klineo.store.secrets import delete_credentials
from klineo.store.strategies import update_settings as update_strategy_settings

from tests.integration.api.conftest import aws_refusing
from tests.integration.runner.conftest import ORDER_PATH, tick_times

USER = "user-runner-gate"


def test_strategy_order_above_max_notional_is_skipped_naming_the_gate(runner) -> None:
    """GIVEN max_notional_usdt 10 WHEN a live strategy wants ~130 USDT THEN a skipped run naming the gate."""
    connection = runner.connection(USER)
    update_settings(USER, connection, {"max_notional_usdt": Decimal("10")})
    sid = runner.strategy(USER, connection)

    runner.run_tick()

    assert runner.journal("POST", ORDER_PATH) == []
    run = runner.runs(sid)[0]
    assert (run.status, run.skip_reason) == ("skipped", "max_notional_usdt")
    assert runner.stored(USER, sid).live_position == 0


def test_connection_kill_switch_skips_its_strategies_only(runner) -> None:
    """GIVEN two connections, one with its kill switch on WHEN a tick runs THEN only the other one trades."""
    stopped, running = runner.connection(USER), runner.connection(USER)
    update_settings(USER, stopped, {"kill_switch": True})
    halted = runner.strategy(USER, stopped)
    trading = runner.strategy(USER, running, symbol="ETHUSDT", size="0.01")

    runner.run_tick()

    assert runner.runs(halted)[0].skip_reason == "connection_kill_switch"
    assert runner.runs(trading)[0].status == "ordered"
    assert len(runner.journal("POST", ORDER_PATH)) == 1


def test_strategy_applies_the_connections_margin_type_and_leverage_first(runner) -> None:
    """GIVEN isolated + 3x as the connection's defaults WHEN its strategy first trades THEN set on Binance."""
    connection = runner.connection(USER)
    update_settings(USER, connection, {"margin_type": "isolated", "leverage": 3})
    sid = runner.strategy(USER, connection)

    runner.run_tick()

    assert runner.runs(sid)[0].status == "ordered"
    state = runner.sim.state.futures.state_for(runner.sim.account("futures-full"), time.time() * 1000)
    assert (state.margin_type["BTCUSDT"], state.leverage["BTCUSDT"]) == ("ISOLATED", 3)
    applied = get_connection(USER, connection).symbol_settings["BTCUSDT"]
    assert applied == {"margin_type": "isolated", "leverage": 3}


def test_strategies_first_trading_one_symbol_together_apply_its_settings_once(runner, monkeypatch) -> None:
    """GIVEN four strategies of one connection on one symbol, none traded there yet, and Binance answering
    in 30 ms WHEN one tick runs them concurrently THEN the symbol's settings are read and applied once, not
    by each turn (before: four symbolConfig reads of weight 5 and four leverage changes, the IP's weight
    spent for nothing), and each strategy orders."""
    connection = runner.connection(USER)
    update_settings(USER, connection, {"margin_type": "isolated", "leverage": 3})
    sids = [runner.strategy(USER, connection) for _ in range(4)]
    monkeypatch.setattr(runner.sim.state.config, "latency_ms", 30.0)

    runner.run_tick()

    assert [runner.runs(sid)[0].status for sid in sids] == ["ordered"] * 4
    once = [("GET", "/fapi/v1/symbolConfig"), ("POST", "/fapi/v1/marginType"),
            ("GET", "/fapi/v1/leverageBracket"), ("POST", "/fapi/v1/leverage")]
    settings_calls = [(r.method, r.path) for r in runner.journal() if r.path in {path for _, path in once}]
    assert sorted(settings_calls) == sorted(once)


def test_key_failures_of_several_strategies_add_up_and_disable_the_connection(runner) -> None:
    """GIVEN three strategies on a key without futures WHEN each is refused once THEN the connection is off
    and every one of its strategies paused with the connection's reason, and one paused event saying so
    written by the worker's disable (before: none; the events told nothing of why they stopped)."""
    connection = runner.connection(USER, "spot-only")  # futures marked enabled here, refused by Binance
    sids = [runner.strategy(USER, connection, symbol=symbol, size=size)
            for symbol, size in (("BTCUSDT", "0.002"), ("ETHUSDT", "0.01"), ("BNBUSDT", "0.5"))]

    runner.run_tick()

    stored = get_connection(USER, connection)
    assert stored.disabled_at is not None and stored.disabled_reason == "connection_disabled:permission"
    assert stored.consecutive_failures == 3
    for sid in sids:
        strategy = runner.stored(USER, sid)
        assert (strategy.status, strategy.status_reason) == ("paused", "connection_disabled:permission")
        paused = [e.details for e in list_events(sid, 20).events if e.kind == "paused"]
        assert [p["reason"] for p in paused] == ["connection_disabled:permission"]
        assert "disabled after 3 key failures in a row (permission)" in paused[0]["message"]


def _pausing(params: dict) -> bool:
    """True for the TransactWriteItems in which the disable pauses a strategy with its paused event
    (``klineo.store.strategies.pause_strategy``)."""
    return any(item.get("Update", {}).get("ExpressionAttributeValues", {}).get(":status_reason")
               == {"S": "connection_disabled:permission"} for item in params.get("TransactItems", []))


def _disabled_with_its_strategies_left_active(runner, tick_ms: int) -> tuple[str, list[str]]:
    """GIVEN three strategies on a key without futures WHEN a tick's key failures disable the connection and
    DynamoDB throttles every pause of its strategies THEN the connection is off, its strategies still active
    (the connection and its strategies' ids)."""
    connection = runner.connection(USER, "spot-only")  # futures marked enabled here, refused by Binance
    sids = [runner.strategy(USER, connection, symbol=symbol, size=size)
            for symbol, size in (("BTCUSDT", "0.002"), ("ETHUSDT", "0.01"), ("BNBUSDT", "0.5"))]
    with aws_refusing("TransactWriteItems", "dynamodb", when=_pausing):
        runner.run_tick(tick_ms)
    assert get_connection(USER, connection).disabled_reason == "connection_disabled:permission"
    assert [runner.stored(USER, sid).status for sid in sids] == ["active"] * 3
    return connection, sids


def test_strategies_a_failed_disable_left_active_are_paused_on_their_next_turn(runner) -> None:
    """GIVEN a connection disabled by key failures whose pause of its strategies failed (throttled) WHEN the
    next tick runs THEN each strategy is paused with the disable's reason (the enable resumes it), in its
    skipped run's write with a paused event; nothing is sent (before: they stayed active, a skipped run
    every tick, shown active on a disabled connection)."""
    first, second = tick_times(2)
    connection, sids = _disabled_with_its_strategies_left_active(runner, first)
    sent = len(runner.signed_calls())

    runner.run_tick(second)

    assert len(runner.signed_calls()) == sent
    for sid in sids:
        stored = runner.stored(USER, sid)
        assert (stored.status, stored.status_reason) == ("paused", "connection_disabled:permission")
        assert runner.runs(sid)[0].skip_reason == "connection_disabled"
        paused = [e.details for e in list_events(sid, 20).events if e.kind == "paused"]
        assert [p["reason"] for p in paused] == ["connection_disabled:permission"]
    assert list(strategy_store.query_active("1m")) == []
    assert get_connection(USER, connection).disabled_reason == "connection_disabled:permission"


def test_a_strategy_paused_or_deleted_after_the_dispatch_is_not_paused_for_the_disabled_connection(
    runner
) -> None:
    """GIVEN a disabled connection whose strategies the disable left active, and a tick dispatched WHEN the
    user pauses one and deletes another before the worker runs them THEN the paused one keeps the user's
    reason (an enable does not resume it), the deleted one stays gone, the third is paused for the disable."""
    first, second = tick_times(2)
    _connection, (user_paused, deleted, left) = _disabled_with_its_strategies_left_active(runner, first)
    runner.tick(second)
    current = runner.stored(USER, user_paused)
    update_strategy_settings(USER, user_paused, current,
                             changes={"status": "paused", "status_reason": "paused by user"})
    strategy_store.delete_strategy(USER, deleted)

    runner.work(runner.receive())

    stored = runner.stored(USER, user_paused)
    assert (stored.status, stored.status_reason) == ("paused", "paused by user")
    assert runner.stored(USER, deleted) is None
    assert runner.stored(USER, left).status_reason == "connection_disabled:permission"


def _pausing_for_a_gone_connection(params: dict) -> bool:
    """True for the write of a skipped run that pauses its strategy for a connection that is gone."""
    return any(item.get("Update", {}).get("ExpressionAttributeValues", {}).get(":status_reason")
               == {"S": "connection_not_found"} for item in params.get("TransactItems", []))


@pytest.mark.parametrize("reason", ["paused by user", "connection_deleted"], ids=["user", "delete"])
def test_a_strategy_paused_during_its_turn_keeps_its_reason_when_its_connection_is_gone(
    runner, reason: str
) -> None:
    """GIVEN a strategy whose connection is gone WHEN the user (or the connection's delete) pauses it between
    the turn's read and the write of its connection_not_found skip THEN the turn writes nothing over it: the
    pause's own reason is kept, no run nor paused event (before: overwritten by connection_not_found)."""
    sid = runner.strategy(USER, "f" * 32)
    client, fired = aws_clients.dynamodb(), []
    hook = "before-parameter-build.dynamodb.TransactWriteItems"

    def pause_first(params: dict, **_: object) -> None:
        if not _pausing_for_a_gone_connection(params):
            return
        client.meta.events.unregister(hook, pause_first)
        fired.append(reason)
        if reason == "connection_deleted":  # as the delete pauses the connection's strategies
            assert strategy_store.pause_strategy(USER, sid, reason)
        else:  # as PATCH /strategies/{id} {"status": "paused"} does
            update_strategy_settings(USER, sid, runner.stored(USER, sid),
                                     changes={"status": "paused", "status_reason": reason})

    client.meta.events.register(hook, pause_first)
    try:
        assert runner.run_tick().failures == []
    finally:
        client.meta.events.unregister(hook, pause_first)

    assert fired == [reason]
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason) == ("paused", reason)
    assert runner.runs(sid) == []
    assert [e.kind for e in list_events(sid, 10).events if e.kind == "paused"] == []


def test_a_strategys_own_leverage_and_margin_type_override_the_connections(runner) -> None:
    """GIVEN the connection's isolated 3x, a strategy's CROSSED 7x WHEN it trades THEN 7x cross on Binance."""
    connection = runner.connection(USER)
    update_settings(USER, connection, {"margin_type": "isolated", "leverage": 3})
    sid = runner.strategy(USER, connection, leverage=7, margin_type="CROSSED")

    runner.run_tick()

    assert runner.runs(sid)[0].status == "ordered"
    state = runner.sim.state.futures.state_for(runner.sim.account("futures-full"), time.time() * 1000)
    assert (state.margin_type["BTCUSDT"], state.leverage["BTCUSDT"]) == ("CROSSED", 7)


def test_a_strategy_leverage_above_max_leverage_is_a_risk_block(runner) -> None:
    """GIVEN max_leverage 5 WHEN a strategy asks 10x THEN a risk_block event naming max_leverage, no order."""
    connection = runner.connection(USER)
    update_settings(USER, connection, {"max_leverage": 5})
    sid = runner.strategy(USER, connection, leverage=10)

    runner.run_tick()

    assert runner.journal("POST", ORDER_PATH) == []
    blocks = [e.details["gate"] for e in list_events(sid, 10).events if e.kind == "risk_block"]
    assert blocks == ["max_leverage"]


def test_a_margin_type_binance_refuses_fails_the_run_with_an_error_event_and_its_signal(runner) -> None:
    """GIVEN an isolated BTCUSDT position open on the account WHEN a strategy asking CROSSED wants to enter
    THEN Binance's refusal fails its run and its events say why (the signal and an error), not nothing."""
    levels = {"period": 14, "oversold": 99.99, "overbought": 99.999}
    always_long = {"type": "rsi_threshold", "parameters": levels}
    connection = runner.connection(USER)
    update_settings(USER, connection, {"margin_type": "isolated"})
    holder = runner.strategy(USER, connection, **always_long)
    now = int(time.time() * 1000) // 60_000 * 60_000 + 1000
    runner.run_tick(now - 60_000)
    assert runner.runs(holder)[0].status == "ordered"
    crossed = runner.strategy(USER, connection, margin_type="CROSSED", **always_long)

    runner.run_tick(now)

    run = runner.runs(crossed)[0]
    assert (run.status, run.error["category"]) == ("failed", "conflict")
    events = {e.kind: e.details for e in list_events(crossed, 10).events}
    assert events["error"] == {"category": "conflict", "message": run.error["message"]}
    assert events["signal"]["signal"] == "long"


def test_a_strategy_whose_keys_are_gone_fails_with_an_error_event_and_counts_it(runner) -> None:
    """GIVEN a connection whose stored keys were deleted WHEN its live strategy wants to enter THEN a failed
    run, an error event saying why beside the signal, and one key failure counted on it; nothing sent."""
    connection = runner.connection(USER)
    sid = runner.strategy(USER, connection)
    delete_credentials(get_connection(USER, connection).secret_name)

    runner.run_tick()

    run = runner.runs(sid)[0]
    assert (run.status, run.error["category"]) == ("failed", "not_found")
    kinds = {e.kind: e.details for e in list_events(sid, 10).events}
    assert kinds["error"]["category"] == "not_found" and "signal" in kinds
    assert runner.stored(USER, sid).key_failures == 1
    assert runner.journal("POST", ORDER_PATH) == []


def test_a_live_strategy_on_a_connection_switched_to_hedge_mode_is_told_what_to_do(runner) -> None:
    """GIVEN a live strategy whose connection is recorded in hedge mode while its account is one-way WHEN a
    tick runs THEN its order goes out in hedge mode (positionSide), Binance refuses it once (-4061), and
    the failed run's error event says to switch the account back or set the connection to one-way."""
    connection = runner.connection(USER)
    sid = runner.strategy(USER, connection)
    update_settings(USER, connection, {"position_mode": "hedge"})

    runner.run_tick()

    assert [(r.status, r.code) for r in runner.journal("POST", ORDER_PATH)] == [(400, -4061)]
    assert runner.runs(sid)[0].status == "failed"
    errors = [e.details for e in list_events(sid, 10).events if e.kind == "error"]
    assert len(errors) == 1 and "position_mode one_way" in errors[0]["message"]


def test_a_margin_type_changed_while_a_strategy_holds_a_position_does_not_block_its_exit(runner) -> None:
    """GIVEN a live strategy's long opened cross WHEN the connection's default becomes isolated and the
    signal turns flat THEN the exit goes out reduce-only and closes the long (Binance refuses a margin type
    change with a position open: applying it first would trap the position)."""
    levels = {"period": 14, "oversold": 99.99, "overbought": 99.999}
    connection = runner.connection(USER)
    sid = runner.strategy(USER, connection, type="rsi_threshold", parameters=levels)
    now = int(time.time() * 1000) // 60_000 * 60_000 + 1000
    runner.run_tick(now - 60_000)
    assert runner.stored(USER, sid).live_position > 0
    update_settings(USER, connection, {"margin_type": "isolated"})
    flat = {"period": 14, "oversold": 0.001, "overbought": 0.01, "allow_short": False}
    update_strategy_settings(USER, sid, runner.stored(USER, sid), changes={"parameters": flat})

    runner.run_tick(now)

    run = runner.runs(sid)[0]
    assert run.status == "ordered", (run.status, run.error)
    assert (run.order["side"], runner.stored(USER, sid).live_position) == ("SELL", 0)
