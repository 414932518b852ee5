"""A live order Binance refuses with a code whose rule says the refusal lifts by itself (``retryable``:
-2023 account in liquidation, -4400 quantitative rules, -4192 cooling-off period) is still a refusal:
nothing was placed, a known outcome. The runner settles it as any refusal (a failed run with Binance's
reason, the order's record REJECTED, counted towards the pause), never as an order whose outcome is unknown
(pending, the message redelivered and the order sent again). The cooling-off period, a day to a month the
user chose at Binance, pauses the strategy at once (``cooling_off_period``), for the user to resume it.

The strategy is the runner's default SMA 2/3 (always long or short: its first tick sends a MARKET order);
the simulator's ``place_order`` answers every order with the refusal.
"""

from __future__ import annotations

from typing import Any

import pytest
from klineo.runner.failures import FAILED_RUN_LIMIT
from klineo.store.events import list_events
from klineo.store.orders import get_order_record

from local.binance_sim.errors import ApiError
from tests.integration.runner.conftest import ORDER_PATH

USER = "user-refusals-that-lift"
LIFTING = [
    pytest.param(-2023, "User in liquidation mode now.", "liquidated", id="liquidation"),
    pytest.param(-4400, "Futures Trading Quantitative Rules violated, only reduceOnly order is allowed, "
                 "please try again later.", "quantitative rules", id="quantitative_rules"),
]


def refuse_orders(runner, monkeypatch: pytest.MonkeyPatch, code: int, msg: str) -> None:
    """Binance answers every new order of the simulator with ``code`` and ``msg`` (HTTP 400)."""
    def refused(*_args: Any, **_kwargs: Any) -> None:
        raise ApiError(400, code, msg)

    monkeypatch.setattr(runner.sim.state.futures, "place_order", refused)


@pytest.mark.parametrize(("code", "msg", "says"), LIFTING)
def test_a_refusal_that_lifts_by_itself_settles_as_a_counted_failed_run(runner, monkeypatch, code, msg,
                                                                        says) -> None:
    """GIVEN a live strategy whose MARKET order Binance refuses with a code that lifts by itself (-2023,
    -4400) WHEN its tick runs THEN the order goes out once, its record is REJECTED with Binance's code and
    our message, the run is failed with that message and its error event, nothing is left pending and the
    message is not redelivered, and the run counts towards the pause like any refusal (before: a pending
    run, the message redelivered and the order sent again, never counted, never paused)."""
    sid = runner.strategy(USER, runner.connection(USER))
    refuse_orders(runner, monkeypatch, code, msg)

    tick = runner.run_tick()

    assert tick.failures == []
    assert len(runner.journal("POST", ORDER_PATH)) == 1
    run, = runner.runs(sid)
    assert (run.status, run.error["category"]) == ("failed", "order_rejected"), run
    assert says in run.error["message"]
    record = get_order_record(USER, _claimed_id(sid))
    assert (record.status, record.error["code"], record.error["message"]) == ("REJECTED", code,
                                                                               run.error["message"])
    errors = [e for e in list_events(sid, 20).events if e.kind == "error"]
    assert [e.details["message"] for e in errors] == [run.error["message"]]
    stored = runner.stored(USER, sid)
    assert (stored.pending, stored.failed_runs, stored.status) == (None, 1, "active")


def test_the_fifth_refusal_that_lifts_by_itself_pauses_the_strategy(runner, monkeypatch) -> None:
    """GIVEN a live strategy with four failed runs counted WHEN Binance refuses its order while the account is
    being liquidated (-2023) THEN that fifth refusal pauses it (repeated_failures:order_rejected), its paused
    event naming Binance's reason, as five refusals of any other kind do."""
    sid = runner.strategy(USER, runner.connection(USER), failed_runs=FAILED_RUN_LIMIT - 1)
    refuse_orders(runner, monkeypatch, -2023, "User in liquidation mode now.")

    runner.run_tick()

    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason, stored.failed_runs) == (
        "paused", "repeated_failures:order_rejected", FAILED_RUN_LIMIT)
    paused, = [e for e in list_events(sid, 20).events if e.kind == "paused"]
    assert "liquidated" in paused.details["message"]


def test_a_cooling_off_refusal_pauses_the_strategy_at_once_saying_to_resume_once_it_ends(runner,
                                                                                         monkeypatch) -> None:
    """GIVEN a live strategy whose MARKET order Binance refuses for the cooling-off period the account chose
    (-4192, a day to a month, retryable: it ends by itself) WHEN its tick runs THEN the order goes out once,
    the run fails with Binance's reason, and the strategy is paused at once (cooling_off_period, its failed
    runs count untouched) with a paused event telling the user to resume it once the period ends; the message
    is not redelivered (a retryable rule without the pause: the order refused every minute for a month)."""
    sid = runner.strategy(USER, runner.connection(USER))
    refuse_orders(runner, monkeypatch, -4192, "Trade forbidden due to Cooling-off Period.")

    tick = runner.run_tick()

    assert tick.failures == [] and len(runner.journal("POST", ORDER_PATH)) == 1
    run, = runner.runs(sid)
    assert (run.status, run.error["category"]) == ("failed", "order_rejected")
    assert "cooling-off period" in run.error["message"]
    assert get_order_record(USER, _claimed_id(sid)).status == "REJECTED"
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason, stored.failed_runs, stored.pending) == (
        "paused", "cooling_off_period", 0, None)
    paused, = [e for e in list_events(sid, 20).events if e.kind == "paused"]
    assert paused.details["reason"] == "cooling_off_period"
    assert "cooling-off period" in paused.details["message"]
    assert "resume the strategy once the period has ended" in paused.details["message"]


def test_a_cooling_off_refusal_of_the_symbols_leverage_pauses_at_once_before_any_order(runner,
                                                                                      monkeypatch) -> None:
    """GIVEN a live strategy with a leverage whose setting Binance refuses for the account's cooling-off
    period (-4192) WHEN its tick runs THEN no order goes out, the run fails with Binance's reason and the
    strategy is paused at once (cooling_off_period), the message not redelivered (a retryable refusal there
    was re-raised: the message redelivered, no run recorded)."""
    from local.binance_sim import futures_settings

    sid = runner.strategy(USER, runner.connection(USER), leverage=5)

    def cooling_off(*_args: Any) -> None:
        raise ApiError(400, -4192, "Trade forbidden due to Cooling-off Period.")

    monkeypatch.setattr(futures_settings, "change_leverage", cooling_off)

    tick = runner.run_tick()

    assert tick.failures == [] and runner.journal("POST", ORDER_PATH) == []
    run, = runner.runs(sid)
    assert run.status == "failed" and "cooling-off period" in run.error["message"]
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason, stored.failed_runs) == ("paused", "cooling_off_period", 0)


def _claimed_id(strategy_id: str) -> str:
    """The client order id the strategy's turn claimed (its order record's key), from its submit event."""
    submit, = [e for e in list_events(strategy_id, 20).events if e.kind == "order_submit"]
    return submit.details["client_order_id"]
