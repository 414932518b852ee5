"""The runner and the runs API read stored numbers by the one rule (``klineo.validation.decimal_or_none``):
a paper strategy's protective levels, the protective percents stored with a live pending order, the
target position its run is written with when the order settles, and a run's positions shown."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest
from klineo.runner.execution import TickContext, _number, _Turn
from klineo.runner.paper import paper_exit
from klineo.store.strategies import PendingOrder, Strategy
from klineo.strategies import Bar
from klineo.strategies.simulation import slipped

D = Decimal
_DOWN_TO_98 = Bar(close=D(98), close_time=1, open=D(100), high=D(100), low=D(98))


def _held(protective: dict) -> Strategy:
    """A paper strategy holding 2 BTCUSDT long from 100, with ``protective`` stored."""
    return Strategy(user_id="u", strategy_id="s" * 32, connection_id="c" * 32, environment="production",
                    symbol="BTCUSDT", interval="1m", type="sma_crossover", parameters={}, size=D("0.002"),
                    mode="paper", status="active", created_at="", updated_at="", paper_position=D(2),
                    paper_book={"entry_price": D(100), "gross_pnl": D(0), "fees": D(0)},
                    protective={"mode": "paper", **protective})


@pytest.mark.parametrize("stop_loss", [D(99), "99", "99.000"])
def test_a_paper_stop_stored_as_a_number_or_as_text_fills_at_its_level(stop_loss) -> None:
    """The stored level is read the same way whether DynamoDB hands back a Decimal or text."""
    hit = paper_exit(_held({"stop_loss": stop_loss}), [_DOWN_TO_98], 1)
    assert hit is not None and hit.reason == "stop_loss" and hit.price == slipped("SELL", D(99))


@pytest.mark.parametrize("corrupt", [None, "", "garbage", "NaN", "Infinity"])
def test_a_paper_level_stored_as_no_finite_number_is_no_level(corrupt) -> None:
    """A corrupt take-profit is ignored (as a corrupt paper-book number is); the stop-loss still acts."""
    held = _held({"stop_loss": D(99), "take_profit": corrupt})
    hit = paper_exit(held, [Bar(close=D(98), close_time=1, open=D(100), high=D(1000), low=D(98))], 1)
    assert hit is not None and hit.reason == "stop_loss"
    assert paper_exit(_held({"take_profit": corrupt}), [_DOWN_TO_98], 1) is None


@pytest.mark.parametrize(("stored", "expected"), [(None, None), ("1.5", D("1.5")), (D(2), D(2)), (3, D(3))])
def test_a_stored_protective_percent_reads_as_its_decimal(stored, expected) -> None:
    """Absent stays None; text, a Decimal or an int become the same number."""
    assert _number(stored) == expected


@pytest.mark.parametrize("corrupt", ["", "garbage", "NaN", "-Infinity"])
def test_a_stored_protective_percent_that_is_no_number_stops_the_turn(corrupt) -> None:
    """A live entry never goes on silently without its stops: a corrupt percent raises."""
    with pytest.raises(ValueError, match="not a number"):
        _number(corrupt)


def _pending(target: object) -> PendingOrder:
    """A live buy of 0.002 claimed for candle 60000 with ``target`` stored as its decision's target."""
    return PendingOrder(close_time=60_000, client_order_id="kst_x", side="BUY", quantity=D("0.002"),
                        reduce_only=False, position_before=D(0), claimed_at_ms=1, lease_until_ms=2,
                        facts={"signal": "long", "reason": "cross", "target_position": target})


@pytest.mark.parametrize(("stored", "expected"), [("0.002", D("0.002")), (D("-0.01"), D("-0.01")),
                                                  (None, None), ("garbage", None), ("NaN", None)])
def test_a_settled_orders_run_reads_its_stored_target_by_the_one_rule(stored, expected) -> None:
    """The run of a settled order carries the stored target; a corrupt one is no target, never a crash
    after the order filled (the run and the fill must still be recorded)."""
    ctx = TickContext(message=SimpleNamespace(close_time=60_000), group=None, deadline_ms=0)
    turn = _Turn(_held({}), ctx)
    run = turn.final_run(_pending(stored), "ordered")
    assert (run.close_time, run.target_position) == (60_000, expected)


@pytest.mark.parametrize(("stored", "shown"), [(D("0.0020"), "0.002"), ("0.002", "0.002"), (D(0), "0"),
                                               (None, None), ("garbage", None), ("NaN", None)])
def test_a_runs_stored_positions_are_shown_by_the_one_rule(stored, shown) -> None:
    """A run read back from its item has its positions by the one rule (number or text as a Decimal, a
    corrupt one as absent), so the runs API shows them as plain text, never a 500 for the whole page."""
    from klineo.services.strategies import _run_response
    from klineo.store.dynamo import to_attr
    from klineo.store.runs import Run

    item = {name: to_attr(value) for name, value in {
        "strategy_id": "s" * 32, "user_id": "u", "close_time": 60_000, "status": "ordered", "mode": "live",
        "position_before": stored, "target_position": stored}.items() if value is not None}
    response = _run_response(Run.from_item(item))
    assert (response.position_before, response.target_position) == (shown, shown)
