"""Every event a turn makes is kept: two events of one kind (and tag) on one candle never share a key.

An event's key is (candle, kind, tag) and its write unconditional, so a turn played again puts the same
items again; a turn that makes a second event of the same kind (two gates refusing, two failures) keys it
apart (``klineo.store.events``). Real dispatcher, worker, moto and the Binance simulator.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from klineo.runner import execution
from klineo.store.connections import mark_deleting, update_settings

from local.binance_sim.errors import ApiError
from local.scheduler import sqs_event
from tests.integration.runner.conftest import ORDER_PATH, crash_first_call
from tests.integration.runner.test_hedge_mode import events
from tests.integration.runner.test_order_attempts_runner import _long_then_short
from tests.integration.runner.test_worker import _past_recv_window_ms

USER = "user-runner-turn-events"


def test_a_flip_a_limit_refused_then_a_kill_switch_at_its_claim_keeps_both_risk_blocks(runner,
                                                                                       monkeypatch) -> None:
    """GIVEN a one-way long whose flip's new exposure max_notional_usdt refuses (its close to go alone) and
    the user's kill switch turned on before the close's claim WHEN the turn runs, and its message again THEN
    both risk_block events are kept (the limit's and the switch's: one write, one key each), nothing is
    sent, and the repeat adds none."""
    sid, connection, now = _long_then_short(runner, USER)
    update_settings(USER, connection, {"max_notional_usdt": Decimal("200")})
    real_prepare = execution.prepare_symbol

    def switch_on_first(*args: Any, **kwargs: Any) -> Any:
        runner.kill_switch(USER, True)
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(execution, "prepare_symbol", switch_on_first)
    sent = len(runner.journal("POST", ORDER_PATH))

    runner.run_tick(now)
    runner.run_tick(now)  # the same candle's message again

    assert len(runner.journal("POST", ORDER_PATH)) == sent
    assert runner.runs(sid)[0].skip_reason == "user_kill_switch"
    gates = [e.details["gate"] for e in events(sid, "risk_block")]
    assert sorted(gates) == ["max_notional_usdt", "user_kill_switch"]


def _refuse_every_order(runner, monkeypatch) -> None:
    """Binance refuses every order of the simulator (-2023), placing none."""
    def refused(*_args: Any, **_kwargs: Any) -> None:
        raise ApiError(400, -2023, "User in liquidation mode now.")

    monkeypatch.setattr(runner.sim.state.futures, "place_order", refused)


def test_a_flip_whose_new_side_is_refused_then_its_close_refused_keeps_both_errors(runner,
                                                                                   monkeypatch) -> None:
    """GIVEN a one-way long whose flip Binance refuses the margin type for (the close to go alone) and whose
    close Binance then refuses (-2023) WHEN the turn runs THEN both error events are kept: the claim's
    ``new_side_not_opened`` and the settle's refusal (the settle's write puts a key of its own)."""
    sid, connection, now = _long_then_short(runner, USER)
    update_settings(USER, connection, {"margin_type": "isolated"})
    _refuse_every_order(runner, monkeypatch)

    runner.run_tick(now)

    assert runner.runs(sid)[0].status == "failed"
    errors = events(sid, "error")
    assert [e.details.get("what") for e in errors] == ["new_side_not_opened", None]
    assert [e.details["category"] for e in errors] == ["conflict", "order_rejected"]


def test_a_crash_between_the_claim_and_the_settle_keeps_the_claims_error(runner, monkeypatch) -> None:
    """GIVEN the same refused flip whose close Binance refuses, and a worker that dies after the claim (its
    ``new_side_not_opened`` error written) and before the settle WHEN the message comes again THEN the
    redelivered turn's settle keeps the claim's error beside its own (it numbers on from the claim's)."""
    sid, connection, now = _long_then_short(runner, USER)
    update_settings(USER, connection, {"margin_type": "isolated"})
    _refuse_every_order(runner, monkeypatch)
    crash_first_call(monkeypatch, execution, "settle_live_order")  # the refusal's settle is lost
    runner.tick(now)
    event = sqs_event(runner.receive(), runner.queue_arn, runner.aws.region)
    assert len(runner.work_event(event, remaining_ms=1)["batchItemFailures"]) == 1
    assert runner.stored(USER, sid).pending is not None

    assert runner.work_event(event, later_ms=_past_recv_window_ms(1_000))["batchItemFailures"] == []

    assert runner.stored(USER, sid).pending is None and runner.runs(sid)[0].status == "failed"
    errors = events(sid, "error")
    assert [e.details.get("what") for e in errors] == ["new_side_not_opened", None]
    assert [e.details["category"] for e in errors] == ["conflict", "order_rejected"]


def test_a_crash_before_the_send_then_a_delete_keeps_the_claims_risk_block(runner, monkeypatch) -> None:
    """GIVEN a one-way long whose flip's new exposure max_notional_usdt refuses (its close to go alone), a
    worker that dies after the close's claim (its risk_block written) and before the send, and the
    connection's delete begun meanwhile WHEN the message comes again THEN nothing is sent and both
    risk_block events are kept: the claim's limit and the blocked second send's connection_deleting."""
    sid, connection, now = _long_then_short(runner, USER)
    update_settings(USER, connection, {"max_notional_usdt": Decimal("200")})
    crash_first_call(monkeypatch, execution, "submit_futures_order")
    sent = len(runner.journal("POST", ORDER_PATH))
    runner.tick(now)
    event = sqs_event(runner.receive(), runner.queue_arn, runner.aws.region)
    assert len(runner.work_event(event, remaining_ms=1)["batchItemFailures"]) == 1
    mark_deleting(USER, connection)  # closed for every order, the close included

    assert runner.work_event(event, later_ms=_past_recv_window_ms(1_000))["batchItemFailures"] == []

    assert len(runner.journal("POST", ORDER_PATH)) == sent
    assert runner.stored(USER, sid).pending is None
    assert runner.runs(sid)[0].skip_reason == "connection_deleting"
    gates = [e.details["gate"] for e in events(sid, "risk_block")]
    assert gates == ["max_notional_usdt", "connection_deleting"]


def test_a_plain_live_claim_keeps_no_event_counts(runner, monkeypatch) -> None:
    """GIVEN a live entry whose worker dies after its claim (signal and order_submit only) WHEN the pending
    order is read THEN it carries no event counts: the common claim writes what it always did."""
    sid = runner.strategy(USER, runner.connection(USER))
    crash_first_call(monkeypatch, execution, "submit_futures_order")

    runner.work_event(runner.dispatched_event(), remaining_ms=1)

    pending = runner.stored(USER, sid).pending
    assert pending is not None and execution.EVENTS_MADE not in pending.facts
