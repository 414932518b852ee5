"""A change of stop-loss / take-profit / trailing percent re-prices the open position (klineo.runner.reprice).

Live: the real PATCH handler, then the real dispatcher and worker on the Binance simulator; the
candles are played by dispatching past minutes' ticks (at second 1), as test_exchange_truth does.
Signals are pinned with RSI levels no price path crosses (always long). Paper: ``run_strategy`` on
made-up candles, so that a candle reaches exactly the level the test wants.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any

from klineo.binance import Candle, Market, get_client, get_symbol_rules
from klineo.runner.candles import CandleGroup
from klineo.runner.execution import TickContext, run_strategy
from klineo.runner.messages import StrategyRef, WorkMessage
from klineo.runner.schedule import MINUTE_MS
from klineo.services.open_orders import list_open_orders
from klineo.services.protective import protective_client_algo_id
from klineo.store import strategies as strategy_store
from klineo.store.events import list_events
from klineo.store.orders import get_order_record
from klineo.strategies.simulation import protective_prices, slipped

from local.scheduler import sqs_event
from tests.helpers import load_event, put_paper_strategy, response_json, with_body, with_user
from tests.integration.api.conftest import at_path

USER = "user-runner-reprice"
ALWAYS_LONG = {"period": 14, "oversold": 99.99, "overbought": 99.999}
ALGO_PATH = "/fapi/v1/algoOrder"
D = Decimal


def _events(sid: str, kind: str) -> list:
    return [e for e in list_events(sid, 100).events if e.kind == kind]


def _patch(runner, sid: str, body: dict[str, Any]) -> None:
    """PATCH /strategies/{id} through its handler."""
    event = at_path(load_event("strategy_update"), f"/strategies/{sid}", id=sid)
    response = runner.invoke("strategy_update", with_user(with_body(event, body), USER))
    assert response["statusCode"] == 200, response_json(response)


def _algos(runner) -> dict[str, Any]:
    """The simulator's algo orders of the account, by clientAlgoId."""
    state = runner.sim.state.futures.state_for(runner.sim.account("futures-full"), time.time() * 1000)
    return {a.client_algo_id: a for a in state.algo_orders.values()}


def _open(runner) -> list[Any]:
    return [a for a in _algos(runner).values() if a.status == "NEW"]


def _ticks(runner, count: int) -> list[int]:
    """The tick times (second 1 of the last ``count`` minutes, oldest first)."""
    now = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS + 1000
    return [now - back * MINUTE_MS for back in range(count - 1, -1, -1)]


def _guarded_long(runner, tick_ms: int, **settings: str) -> tuple[str, str, Decimal]:
    """A live long entered on ``tick_ms``'s candle with ``settings``: (strategy, entry id, fill price)."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          **settings)
    runner.run_tick(tick_ms)
    run = runner.runs(sid)[0]
    assert run.status == "ordered" and run.order["side"] == "BUY"
    return sid, run.order["client_order_id"], D(run.order["average_price"])


def _tick_price(runner, price: Decimal) -> Decimal:
    """``price`` on BTCUSDT's tick grid (rounded down), as the protective orders are placed."""
    return get_symbol_rules(get_client(Market.FUTURES, "production"), "BTCUSDT").round_price(price)


def test_a_tighter_stop_and_take_profit_move_the_open_positions_orders(runner) -> None:
    """GIVEN a live long with SL 2 % / TP 3 % armed WHEN the PATCH sets SL 1 % / TP 5 % THEN the next turn
    leaves exactly the new pair open at the new prices (new clientAlgoIds), the old pair cancelled, the
    records, ``protective`` and a protective_repriced event updated."""
    first, second = _ticks(runner, 2)
    sid, entry, fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"stop_loss_pct": "1", "take_profit_pct": "5"})

    runner.run_tick(second)

    sl, tp = protective_prices("BUY", fill, D(1), D(5))
    new_ids = [protective_client_algo_id(entry, role, 1) for role in ("stop_loss", "take_profit")]
    assert sorted(a.client_algo_id for a in _open(runner)) == sorted(new_ids)
    algos = _algos(runner)
    assert [(algos[i].order_type, algos[i].trigger_price, algos[i].quantity, algos[i].reduce_only)
            for i in new_ids] == [("STOP_MARKET", _tick_price(runner, sl), D("0.002"), True),
                                  ("TAKE_PROFIT_MARKET", _tick_price(runner, tp), D("0.002"), True)]
    assert [algos[protective_client_algo_id(entry, r)].status for r in ("stop_loss", "take_profit")] == [
        "CANCELED"] * 2
    assert all(len(i) <= 36 for i in new_ids)
    records = [get_order_record(USER, i) for i in new_ids]
    assert [(r.role, r.parent_client_order_id, r.origin, r.status) for r in records] == [
        ("stop_loss", entry, sid, "NEW"), ("take_profit", entry, sid, "NEW")]
    assert get_order_record(USER, protective_client_algo_id(entry, "stop_loss")).status == "CANCELED"
    stored = runner.stored(USER, sid).protective
    assert (D(str(stored["stop_loss"])), D(str(stored["take_profit"]))) == (sl, tp)
    assert (stored["generation"], stored["parent_client_order_id"], stored["armed"]) == (1, entry, True)
    [event] = _events(sid, "protective_repriced")
    assert D(event.details["old_stop_loss"]) == protective_prices("BUY", fill, D(2), None)[0]
    assert D(event.details["new_stop_loss"]) == sl and D(event.details["new_take_profit"]) == tp
    assert _events(sid, "error") == []


def test_a_redelivered_turn_does_not_place_the_repriced_orders_again(runner) -> None:
    """GIVEN a re-priced turn that ran WHEN SQS delivers its message again THEN no algo order is sent
    again and exactly one stop-loss and one take-profit are open."""
    first, second = _ticks(runner, 2)
    sid, entry, _fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"stop_loss_pct": "1.5"})
    runner.tick(second)
    messages = runner.receive()
    event = sqs_event(messages, runner.queue_arn, runner.aws.region)
    runner.work_event(event)
    sent = len(runner.journal("POST", ALGO_PATH))

    runner.work_event(event)

    assert len(runner.journal("POST", ALGO_PATH)) == sent == 4  # the entry's pair, then the re-priced pair
    assert sorted(a.client_algo_id for a in _open(runner)) == sorted(
        protective_client_algo_id(entry, role, 1) for role in ("stop_loss", "take_profit"))
    assert len(_events(sid, "protective_repriced")) == 1


def test_clearing_the_take_profit_removes_it_and_keeps_the_stop(runner) -> None:
    """GIVEN a live long with SL 2 % / TP 3 % WHEN the PATCH clears take_profit_pct (null) THEN the next turn
    leaves only a stop-loss at 2 % open, no take-profit."""
    first, second = _ticks(runner, 2)
    sid, entry, fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"take_profit_pct": None})

    runner.run_tick(second)

    [left] = _open(runner)
    sl = protective_prices("BUY", fill, D(2), None)[0]
    assert (left.order_type, left.trigger_price) == ("STOP_MARKET", _tick_price(runner, sl))
    stored = runner.stored(USER, sid).protective
    assert "take_profit" not in stored and D(str(stored["stop_loss"])) == sl


def test_clearing_every_percent_cancels_the_orders_and_forgets_them(runner) -> None:
    """GIVEN a live long with SL and TP WHEN the PATCH clears both THEN the next turn cancels both, sends no
    new one, and ``protective`` is gone."""
    first, second = _ticks(runner, 2)
    sid, _entry, _fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"stop_loss_pct": None, "take_profit_pct": None})

    runner.run_tick(second)

    assert _open(runner) == [] and len(runner.journal("POST", ALGO_PATH)) == 2
    assert runner.stored(USER, sid).protective is None
    assert len(_events(sid, "protective_repriced")) == 1


def test_a_failed_placement_keeps_the_old_orders_and_the_next_turn_finishes(runner) -> None:
    """GIVEN a PATCH to SL 1 % WHEN Binance is unavailable for the new orders THEN the old pair stays open
    with an error event; WHEN the next turn runs THEN the new pair replaces it (never unprotected)."""
    first, second, third = _ticks(runner, 3)
    sid, entry, _fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"stop_loss_pct": "1"})
    runner.sim.faults.add("http_503_unavailable", count=50, method="POST", path=ALGO_PATH)

    runner.run_tick(second)

    old_ids = sorted(protective_client_algo_id(entry, role) for role in ("stop_loss", "take_profit"))
    assert sorted(a.client_algo_id for a in _open(runner)) == old_ids
    [error] = _events(sid, "error")
    assert error.details["what"] == "protective_not_repriced"
    assert runner.stored(USER, sid).protective.get("generation", 0) == 0
    runner.sim.faults.clear()

    runner.run_tick(third)

    assert sorted(a.client_algo_id for a in _open(runner)) == sorted(
        protective_client_algo_id(entry, role, 1) for role in ("stop_loss", "take_profit"))
    assert runner.stored(USER, sid).protective["generation"] == 1


def test_a_new_stop_the_mark_already_crossed_is_refused_and_the_old_orders_stay(runner) -> None:
    """GIVEN a live long with SL 2 % / TP 3 % and the mark 1 % below the fill WHEN the PATCH sets SL 0.5 %
    (already crossed: Binance -2021) THEN the old pair stays, the new take-profit placed meanwhile is
    cancelled, an error event says so, and the next turn does not try the same levels again."""
    first, second, third = _ticks(runner, 3)
    sid, entry, fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    runner.sim.set_mark_price("BTCUSDT", float(fill * D("0.99")))
    _patch(runner, sid, {"stop_loss_pct": "0.5"})

    runner.run_tick(second)

    old_ids = sorted(protective_client_algo_id(entry, role) for role in ("stop_loss", "take_profit"))
    assert sorted(a.client_algo_id for a in _open(runner)) == old_ids
    assert _algos(runner)[protective_client_algo_id(entry, "take_profit", 1)].status == "CANCELED"
    assert [e.details["category"] for e in _events(sid, "error")] == ["order_rejected"]
    sent = len(runner.journal("POST", ALGO_PATH))

    runner.run_tick(third)

    assert len(runner.journal("POST", ALGO_PATH)) == sent
    assert sorted(a.client_algo_id for a in _open(runner)) == old_ids


def test_a_fired_repriced_stop_cancels_its_own_generations_siblings(runner) -> None:
    """GIVEN a re-priced pair (generation 1) WHEN its stop-loss fires THEN a read of the open orders cancels
    the generation's take-profit (siblings are found by the re-priced ids, not the entry's first ones)."""
    first, second = _ticks(runner, 2)
    sid, entry, fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"stop_loss_pct": "1"})
    runner.run_tick(second)
    runner.sim.set_mark_price("BTCUSDT", float(fill * D("0.985")))  # the new 1 % stop fires
    tp = protective_client_algo_id(entry, "take_profit", 1)

    list_open_orders(USER, runner.stored(USER, sid).connection_id, "BTCUSDT")  # cancels fired siblings

    assert _algos(runner)[tp].status == "CANCELED"


# ---------------------------------------------------------------------------------------------- paper
PAPER_USER = "e5e5e5e5-0000-4000-8000-00000000000e"
PAPER_CONNECTION = "e" * 32
START = int(dt.datetime(2025, 1, 5, tzinfo=dt.UTC).timestamp() * 1000)
# Warm-up flat at 100; a LONG entry on the first candle (close 101, filled at about 101.02); the next
# candle dips to 99: below a 1 % stop-loss (about 100.01), above a 5 % one (about 95.97).
ROWS = [("100", "100", "100", "100")] * 3 + [("100", "101", "100", "101"), ("101", "102", "99", "102")]


def _candles() -> list[Candle]:
    first = START - 3 * 60_000
    return [Candle(first + i * 60_000, D(o), D(h), D(lo), D(c), D(1), first + i * 60_000 + 59_999)
            for i, (o, h, lo, c) in enumerate(ROWS)]


def _paper_tick(candles: list[Candle], index: int, sid: str) -> Any:
    candle = candles[index]
    message = WorkMessage(tick=candle.close_time + 1, environment="production", symbol="BTCUSDT",
                          interval="1m", close_time=candle.close_time,
                          strategies=[StrategyRef(user_id=PAPER_USER, strategy_id=sid)])
    group = CandleGroup("production", "BTCUSDT", "1m", candle.close_time, tuple(candles[:index + 1]))
    seen_at = (candle.close_time + 1_000) / 1000
    ctx = TickContext(message, group, deadline_ms=int(seen_at * 1000) + 60_000, clock=lambda: seen_at)
    return run_strategy(strategy_store.get_strategy(PAPER_USER, sid, consistent=True), ctx)


def _paper_long(stop_loss_pct: str) -> tuple[str, list[Candle]]:
    """A paper long (SMA 1/2) entered on the first candle after the warm-up with ``stop_loss_pct``."""
    sid = put_paper_strategy(PAPER_USER, PAPER_CONNECTION, symbol="BTCUSDT", interval="1m",
                             parameters={"fast": 1, "slow": 2, "allow_short": False}, size=D("2"))
    stored = strategy_store.get_strategy(PAPER_USER, sid, consistent=True)
    strategy_store.update_settings(PAPER_USER, sid, stored, changes={"stop_loss_pct": D(stop_loss_pct)})
    candles = _candles()
    assert _paper_tick(candles, 3, sid).outcome == "simulated"
    return sid, candles


def _change(sid: str, **changes: Any) -> None:
    """What PATCH /strategies/{id} stores (``update_strategy``'s store write)."""
    stored = strategy_store.get_strategy(PAPER_USER, sid, consistent=True)
    strategy_store.update_settings(PAPER_USER, sid, stored, changes=changes)


def test_paper_a_candle_reaching_the_new_tighter_stop_closes_the_position_at_it(sim_env) -> None:
    """GIVEN a paper long with a 5 % stop WHEN the percent becomes 1 % and the next candle dips below the new
    level only THEN the position closes at the new level (slipped), with a protective_repriced event."""
    sid, candles = _paper_long("5")
    entry = D(str(strategy_store.get_strategy(PAPER_USER, sid, consistent=True).paper_book["entry_price"]))
    _change(sid, stop_loss_pct=D("1"))

    _paper_tick(candles, 4, sid)

    stored = strategy_store.get_strategy(PAPER_USER, sid, consistent=True)
    new_stop = protective_prices("BUY", entry, D(1), None)[0]
    [closed] = _events(sid, "protective_triggered")
    assert stored.paper_position == 0 and D(closed.details["price"]) == slipped("SELL", new_stop)
    [repriced] = _events(sid, "protective_repriced")
    assert D(repriced.details["new_stop_loss"]) == new_stop


def test_paper_a_candle_reaching_only_the_old_stop_leaves_the_position_open(sim_env) -> None:
    """GIVEN a paper long with a 1 % stop WHEN the percent becomes 5 % and the next candle dips below the old
    level only THEN the position stays open, its record at the new level."""
    sid, candles = _paper_long("1")
    entry = D(str(strategy_store.get_strategy(PAPER_USER, sid, consistent=True).paper_book["entry_price"]))
    _change(sid, stop_loss_pct=D("5"))

    _paper_tick(candles, 4, sid)

    stored = strategy_store.get_strategy(PAPER_USER, sid, consistent=True)
    assert stored.paper_position == D("2") and _events(sid, "protective_triggered") == []
    level = D(str(stored.paper_book["protective"]["stop_loss"]))
    assert level == protective_prices("BUY", entry, D(5), None)[0]
