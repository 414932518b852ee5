"""A live strategy's order that Binance ends with nothing executed is settled by its own turn.

A MARKET order on thin liquidity may end EXPIRED with executedQty 0 (the simulator's ``set_market_depth``
of "0"). Nothing executed means no fills to read: the turn's settle stores the record settled as the
reconciler would once it read the order (``fills`` [], its symbol watched), so no reconciler run reads it
from Binance again; the run, the position, the events and the PnL are what they were. Real dispatcher,
worker and reconciler on the simulator (loopback) and moto.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from klineo.settings import get_settings
from klineo.store import aws as aws_clients
from klineo.store.order_history import list_unsettled, list_watched
from klineo.store.orders import get_order_record

from tests.integration.runner.test_exchange_truth import ALWAYS_LONG, USER, _exchange_position, _get
from tests.integration.runner.test_hedge_mode import USER as HEDGE_USER
from tests.integration.runner.test_hedge_mode import _short_then_long, events, sides

ORDER_PATH = "/fapi/v1/order"


def _unsettled() -> set[str]:
    return {record.client_order_id for record in list_unsettled()}


def _order_reads(runner) -> int:
    """How many GET /fapi/v1/order requests the journal holds (an order read back from Binance)."""
    return len(runner.journal("GET", ORDER_PATH))


def _entry_with_nothing_executed(runner) -> tuple[str, str]:
    """A live long-only strategy whose entry Binance ends EXPIRED with nothing executed: (id, its order)."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long")
    runner.sim.set_market_depth("BTCUSDT", "0")
    runner.run_tick()
    runner.sim.set_market_depth("BTCUSDT", None)
    return sid, runner.runs(sid)[0].order["client_order_id"]


def test_an_entry_that_executed_nothing_is_settled_by_its_turn_and_never_read_by_the_reconciler(
    runner, reconcile
) -> None:
    """An EXPIRED entry with nothing executed leaves the unsettled index at its settle, all else unchanged."""
    sid, cid = _entry_with_nothing_executed(runner)

    run, stored = runner.runs(sid)[0], runner.stored(USER, sid)
    assert (run.status, run.order["status"], run.order["executed_quantity"]) == ("ordered", "EXPIRED", "0")
    assert (stored.live_position, stored.pending, _exchange_position(runner)) == (0, None, 0)
    assert [e.kind for e in events(sid)] == ["signal", "order_submit"]
    pnl = _get(runner, sid)["pnl"]
    assert (Decimal(pnl["realised_pnl"]), Decimal(pnl["fees"]), pnl["estimated_fills"]) == (0, 0, 0)
    record = get_order_record(USER, cid)
    assert (record.status, record.fills, record.fills_summary) == ("EXPIRED", [], None)
    assert cid not in _unsettled()
    assert [(w.connection_id, w.symbol) for w in list_watched()] == [(stored.connection_id, "BTCUSDT")]

    reads = _order_reads(runner)
    summary = reconcile()

    assert _order_reads(runner) == reads and "settled" not in summary


def test_the_turn_stores_an_order_that_executed_nothing_as_the_reconciler_would(runner, reconcile) -> None:
    """The turn's settle of an order that executed nothing writes what a reconciler run reading it writes."""
    _sid, cid = _entry_with_nothing_executed(runner)
    by_turn = get_order_record(USER, cid)
    # Back in the unsettled index as the claim wrote it (no fills), for the reconciler to read it.
    unread = dataclasses.replace(by_turn, fills=None, fills_summary=None)
    aws_clients.dynamodb().put_item(TableName=get_settings().data_table, Item=unread.to_item())
    assert cid in _unsettled()
    reads = _order_reads(runner)

    summary = reconcile()

    by_reconciler = get_order_record(USER, cid)
    assert _order_reads(runner) == reads + 1 and summary["settled"] == 1
    assert (by_reconciler.status, by_reconciler.fills, by_reconciler.fills_summary) == (
        by_turn.status, by_turn.fills, by_turn.fills_summary)
    assert cid not in _unsettled()


def test_a_hedge_flips_close_that_executed_nothing_is_settled_by_its_turn(runner) -> None:
    """A hedge flip's close that executed nothing leaves the index at its settle; the short stays, no long."""
    sid, now = _short_then_long(runner)
    runner.sim.set_market_depth("BTCUSDT", "0")

    runner.run_tick(now)

    run = runner.runs(sid)[0]
    assert (run.order["status"], run.order["executed_quantity"], run.error["category"]) == (
        "EXPIRED", "0", "close_incomplete")
    assert sides(runner) == {"LONG": 0, "SHORT": Decimal("-0.002")}
    assert runner.stored(HEDGE_USER, sid).live_position == Decimal("-0.002")
    assert [e.details["what"] for e in events(sid, "error")] == ["new_side_not_opened"]
    close = get_order_record(HEDGE_USER, run.order["client_order_id"])
    assert (close.status, close.fills, close.fills_summary) == ("EXPIRED", [], None)
    assert close.client_order_id not in _unsettled()
