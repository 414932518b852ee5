"""A strategy paused at once for its symbol (``invalid_symbol``, ``no_market_orders``) or its account's
cooling-off period (``cooling_off_period``) while it holds a live position leaves that position open with no
strategy to manage it: its ``paused`` event and the log say so.

The strategy is an RSI one that is always long (``ALWAYS_LONG``): its first tick buys 0.002 BTCUSDT. Its
levels are then turned to always short (``ALWAYS_SHORT``), so the next tick flips it: an order that adds
exposure, refused for the symbol, the long position still held.
"""

from __future__ import annotations

import logging
import time

import pytest
from klineo.binance import endpoints, filters
from klineo.services.protective_siblings import protective_client_algo_id
from klineo.store import strategies as strategy_store
from klineo.store.connections import update_settings
from klineo.store.events import list_events

from local.binance_sim.errors import ApiError
from tests.integration.runner.conftest import ORDER_PATH, algo_orders, current_close
from tests.integration.runner.test_failed_runs_pause import ALWAYS_LONG, minute_start
from tests.integration.runner.test_protective_reprice import _kept_off_at_entry
from tests.integration.runner.test_refusals_that_lift import refuse_orders

USER = "user-paused-holding"
ALWAYS_SHORT = {"period": 14, "oversold": 0.0005, "overbought": 0.001}
LEFT_OPEN = ("Its long position of 0.002 BTCUSDT stays open and no strategy manages it now: it is yours to "
             "close")


def _holding(runner, **settings: str) -> tuple[str, str, int]:
    """(strategy id, connection id, now): a live strategy that bought 0.002 BTCUSDT a tick ago, now always
    short (its next tick flips it); ``settings``: its trading settings (e.g. stop_loss_pct)."""
    connection = runner.connection(USER)
    sid = runner.strategy(USER, connection, **ALWAYS_LONG, **settings)
    now = minute_start()
    runner.run_tick(now - 60_000)
    stored = runner.stored(USER, sid)
    assert str(stored.live_position) == "0.002"
    strategy_store.update_settings(USER, sid, stored, changes={"parameters": ALWAYS_SHORT})
    return sid, connection, now


def _paused_message(sid: str) -> str:
    """The message of the strategy's one paused event."""
    paused, = [e for e in list_events(sid, 50).events if e.kind == "paused"]
    return paused.details["message"]


def test_a_no_market_orders_pause_says_the_position_it_holds_stays_open(runner, caplog) -> None:
    """GIVEN a live strategy holding a long 0.002 BTCUSDT WHEN its symbol stops taking MARKET orders and the
    turn of its flip pauses it (no_market_orders) THEN the paused event says the position stays open, managed
    by no strategy, and how the user closes it (a reduce-only LIMIT order, or on Binance: the close route
    sends a MARKET one); the log line names the position left (before: nothing said of it)."""
    sid, connection, now = _holding(runner)
    runner.sim.set_order_types("BTCUSDT", ["LIMIT"])
    endpoints.clear_exchange_info_cache()  # the turn reads the symbol's rules as they are now
    filters.clear_symbol_rules_cache()

    with caplog.at_level(logging.INFO):
        runner.run_tick(now)

    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason, str(stored.live_position)) == ("paused", "no_market_orders",
                                                                                "0.002")
    message = _paused_message(sid)
    assert message.endswith(f"{LEFT_OPEN}, with a reduce-only LIMIT order "
                            f"(POST /exchange-connections/{connection}/futures/order) or on Binance.")
    left, = [r for r in caplog.records if r.getMessage().startswith("strategy paused")]
    assert left.getMessage() == ("strategy paused: its symbol takes no MARKET orders; "
                                 "the position it holds stays open, the user's to close")
    assert (left.symbol, left.position) == ("BTCUSDT", "0.002")


def test_an_invalid_symbol_pause_at_the_settle_says_the_position_it_held_stays_open(runner) -> None:
    """GIVEN a live strategy holding a long 0.002 BTCUSDT WHEN its flip's order (SELL 0.004) is refused for
    the symbol's status (delisted: SETTLING) and the strategy paused invalid_symbol THEN the paused event
    names the position still held (0.002, not the order's quantity) and the close route, or Binance."""
    sid, connection, now = _holding(runner)
    runner.sim.set_symbol_status("BTCUSDT", "SETTLING", since_ms=current_close(now) + 1 + 60_000)

    runner.run_tick(now)

    assert len(runner.journal("POST", ORDER_PATH)) == 2
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason) == ("paused", "invalid_symbol")
    assert _paused_message(sid).endswith(
        f"{LEFT_OPEN}, with POST /exchange-connections/{connection}/futures/positions/BTCUSDT/close "
        f"or on Binance.")


def test_a_pause_leaving_a_position_with_armed_stops_says_which_stay_armed_on_binance(runner) -> None:
    """GIVEN a live strategy holding a long 0.002 BTCUSDT with its stop-loss (2 %) and take-profit (3 %) armed
    on Binance WHEN its symbol stops taking MARKET orders and the turn of its flip pauses it THEN the stops
    are still open and the paused event says they stay armed on Binance, each by its clientAlgoId (before:
    only that the position stays open, as if nothing guarded it)."""
    sid, _connection, now = _holding(runner, stop_loss_pct="2", take_profit_pct="3")
    armed = runner.stored(USER, sid).protective
    assert armed["armed"] is True
    runner.sim.set_order_types("BTCUSDT", ["LIMIT"])
    endpoints.clear_exchange_info_cache()
    filters.clear_symbol_rules_cache()

    runner.run_tick(now)

    assert runner.stored(USER, sid).status_reason == "no_market_orders"
    stop_loss, take_profit = (protective_client_algo_id(armed["parent_client_order_id"], role)
                              for role in ("stop_loss", "take_profit"))
    state = runner.sim.state.futures.state_for(runner.sim.account("futures-full"), time.time() * 1000)
    open_stops = sorted((a.order_type, a.client_algo_id) for a in state.algo_orders.values()
                        if a.status == "NEW")
    assert open_stops == [("STOP_MARKET", stop_loss), ("TAKE_PROFIT_MARKET", take_profit)]
    message = _paused_message(sid)
    assert LEFT_OPEN in message
    assert message.endswith(
        f"Its stop-loss (clientAlgoId {stop_loss}) and take-profit (clientAlgoId {take_profit}) stay armed "
        "on Binance: the pause does not cancel them, and they still close the position when triggered.")


@pytest.mark.parametrize("code", [-2021, -2023], ids=["refused_at_entry", "kept_off_at_entry"])
def test_a_pause_says_the_stop_loss_stays_armed_beside_a_take_profit_binance_did_not_take(runner, monkeypatch,
                                                                                         code) -> None:
    """GIVEN a live strategy holding a long 0.002 BTCUSDT with SL 2 % / TP 3 % whose take-profit Binance did
    not take at entry (refused for good, or kept off for now: the record not armed), its stop-loss open WHEN
    its symbol stops taking MARKET orders and the turn of its flip pauses it THEN the paused event names the
    stop-loss that stays armed on Binance (before: no stop at all, as if nothing guarded the position)."""
    _kept_off_at_entry(runner, monkeypatch, "-tp", code)
    sid, _connection, now = _holding(runner, stop_loss_pct="2", take_profit_pct="3")
    record = runner.stored(USER, sid).protective
    assert record["armed"] is False
    stop_loss = protective_client_algo_id(record["parent_client_order_id"], "stop_loss")
    runner.sim.set_order_types("BTCUSDT", ["LIMIT"])
    endpoints.clear_exchange_info_cache()
    filters.clear_symbol_rules_cache()

    runner.run_tick(now)

    assert runner.stored(USER, sid).status_reason == "no_market_orders"
    assert algo_orders(runner, "futures-full")[stop_loss].status == "NEW"
    assert _paused_message(sid).endswith(
        f"Its stop-loss (clientAlgoId {stop_loss}) stays armed on Binance: the pause does not cancel it, and "
        "it still closes the position when triggered.")


def test_a_cooling_off_pause_says_the_position_stays_open_until_the_period_ends(runner, monkeypatch) -> None:
    """GIVEN a live strategy holding a long 0.002 BTCUSDT with its stop-loss armed on Binance WHEN its flip's
    order is refused for the account's cooling-off period (-4192) and the strategy paused at once THEN the
    paused event says the position stays open, the user's to close once the period has ended (Binance takes no
    futures order until then, a close included), and that the stop stays armed, without saying it still
    fires (before: nothing said of the position)."""
    sid, connection, now = _holding(runner, stop_loss_pct="2")
    stop_loss = protective_client_algo_id(runner.stored(USER, sid).protective["parent_client_order_id"],
                                          "stop_loss")
    refuse_orders(runner, monkeypatch, -4192, "Trade forbidden due to Cooling-off Period.")

    runner.run_tick(now)

    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason, str(stored.live_position)) == (
        "paused", "cooling_off_period", "0.002")
    assert _paused_message(sid).endswith(
        f"{LEFT_OPEN}, once the cooling-off period has ended (until then Binance takes no futures order from "
        f"this account, a close included), with POST /exchange-connections/{connection}/futures/positions/"
        f"BTCUSDT/close or on Binance. Its stop-loss (clientAlgoId {stop_loss}) stays armed on Binance: the "
        "pause does not cancel it.")


def test_a_pause_at_once_of_a_flat_strategy_says_nothing_of_a_position(runner) -> None:
    """GUARD: GIVEN a live strategy holding nothing WHEN its symbol takes no MARKET orders and it pauses at
    once THEN its paused event says nothing of a position left open."""
    sid = runner.strategy(USER, runner.connection(USER), **ALWAYS_LONG)
    runner.sim.set_order_types("BTCUSDT", ["LIMIT"])

    runner.run_tick()

    assert runner.stored(USER, sid).status_reason == "no_market_orders"
    assert "position" not in _paused_message(sid)


def test_a_flip_whose_leverage_is_refused_for_cooling_off_pauses_holding_the_old_side(runner, monkeypatch):
    """GUARD: a one-way flip whose leverage -4192 refuses sends nothing and pauses, the long left open."""
    from local.binance_sim import futures_settings

    sid, connection, now = _holding(runner)
    update_settings(USER, connection, {"leverage": 7})  # the flip's new exposure applies it first

    def cooling_off(*_args: object) -> None:
        raise ApiError(400, -4192, "Trade forbidden due to Cooling-off Period.")

    monkeypatch.setattr(futures_settings, "change_leverage", cooling_off)

    runner.run_tick(now)

    assert len(runner.journal("POST", ORDER_PATH)) == 1  # the long's entry only: no close sent alone
    run = runner.runs(sid)[0]
    assert run.status == "failed" and "cooling-off period" in run.error["message"]
    stored = runner.stored(USER, sid)
    assert (stored.status, stored.status_reason, stored.failed_runs) == ("paused", "cooling_off_period", 0)
    assert str(stored.live_position) == "0.002"
    assert f"{LEFT_OPEN}, once the cooling-off period has ended" in _paused_message(sid)
