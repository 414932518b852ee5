"""A live PnL estimated at settle (no request weight to spare for the fills read) becomes Binance's own.

Real dispatcher and worker handlers, moto, the Binance simulator over loopback, and the reconciler as the
order-reconciler function (its AWS calls checked against its template policy). The simulator charges a
0.04 % taker commission, the estimate 0.05 %: an estimate left in place shows.
"""

from __future__ import annotations

import dataclasses
import time
from decimal import Decimal

import pytest
from klineo.runner import execution
from klineo.runner.schedule import MINUTE_MS
from klineo.services import live_fills
from klineo.services import orders as order_core
from klineo.settings import get_settings
from klineo.store import aws as aws_clients
from klineo.store.dynamo import to_attr
from klineo.store.events import list_events
from klineo.store.order_history import list_unsettled
from klineo.store.orders import get_order_record
from klineo.store.strategies import PendingOrder, strategy_key
from klineo.store.strategies import update_settings as update_strategy

from tests.helpers import load_event, response_json, with_user
from tests.integration.runner.test_exchange_truth import (
    ALWAYS_LONG,
    ALWAYS_SHORT,
    USER,
    _algos,
    _events,
    _exchange_position,
    _get,
    _two_candles,
    _user_trades,
)

PLACES = Decimal("0.00000001")
CHANGED = {**ALWAYS_LONG, "period": 15}


@pytest.fixture
def no_fills_read(monkeypatch):
    """Every live order settles with its fills estimated, as in a minute with no request weight to spare."""
    monkeypatch.setattr(execution, "FILLS_READ_RESERVE", 10**9)


def _binance_pnl(runner) -> tuple[Decimal, Decimal]:
    """(realised PnL net of commission, commission) of the simulator's fills: what Binance says."""
    trades = _user_trades(runner)
    fees = sum((Decimal(t["commission"]) for t in trades), Decimal(0))
    return sum((Decimal(t["realizedPnl"]) for t in trades), Decimal(0)) - fees, fees


def _round_trip(runner) -> tuple[str, list[str]]:
    """A live long-only strategy's entry and exit, both settled with estimated fills: (its id, order ids)."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long")
    play_current = _two_candles(runner)
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_SHORT})
    play_current()
    orders = [r.order["client_order_id"] for r in reversed(runner.runs(sid))]
    assert len(orders) == 2 and runner.journal("GET", "/fapi/v1/userTrades") == []
    return sid, orders


@pytest.fixture
def no_fill_price(monkeypatch):
    """Binance's new-order answers lack avgPrice (facts §11) and the one read-back of the order fails."""
    monkeypatch.setattr(order_core, "_with_fill_price",
                        lambda client, creds, result: dataclasses.replace(result, average_price=None))


def _stops_of(runner, sid: str) -> list:
    """The simulator's algo orders of the strategy's current entry (its stop-loss, take-profit)."""
    parent = runner.stored(USER, sid).protective["parent_client_order_id"]
    return [a for i, a in _algos(runner).items() if i.startswith(parent)]


def _unsettled() -> set[str]:
    """The clientOrderIds in the reconciler's index of records not settled yet."""
    return {record.client_order_id for record in list_unsettled()}


def _set_pending(sid: str, pending: PendingOrder | None, user: str = USER) -> None:
    """Write (None: remove) the strategy item's pending order, as a turn's claim (and settle) does."""
    key = {"TableName": get_settings().data_table, "Key": strategy_key(user, sid)}
    client = aws_clients.dynamodb()
    if pending is None:
        client.update_item(**key, UpdateExpression="REMOVE pending")
    else:
        client.update_item(**key, UpdateExpression="SET pending = :p",
                           ExpressionAttributeValues={":p": to_attr(pending.as_attr_value())})


def test_the_reconciler_books_binances_fills_in_place_of_the_settles_estimate(
    runner, reconcile, no_fills_read
) -> None:
    """GIVEN a live entry and exit whose fills were estimated at settle (taker fee 0.05 %) WHEN the reconciler
    runs THEN the live PnL is Binance's (realizedPnl - commission at 0.04 %), no fill counts as estimated,
    each order has one fills_booked event and no estimate left; a second run changes nothing."""
    sid, orders = _round_trip(runner)
    estimated = _get(runner, sid)["pnl"]
    realised, fees = _binance_pnl(runner)
    assert estimated["estimated_fills"] == 2 and Decimal(estimated["fees"]) != fees.quantize(PLACES)

    summary = reconcile()

    pnl = _get(runner, sid)["pnl"]
    assert summary["fills_booked"] == 2 and pnl["estimated_fills"] == 0
    assert (Decimal(pnl["realised_pnl"]), Decimal(pnl["fees"])) == (realised.quantize(PLACES),
                                                                    fees.quantize(PLACES))
    booked = [e for e in list_events(sid, 100).events if e.kind == "fills_booked"]
    assert sorted(e.details["client_order_id"] for e in booked) == sorted(orders)
    records = [get_order_record(USER, cid) for cid in orders]
    assert all(r.booked_estimate is None and r.fills for r in records)

    again = reconcile()

    assert "fills_booked" not in again and _get(runner, sid)["pnl"] == pnl


def test_a_fired_stop_loss_of_the_strategy_is_booked_in_its_live_pnl_once(runner, reconcile) -> None:
    """GIVEN a live long whose own 2 % stop-loss fired on Binance (no turn placed or settled that fill) WHEN
    the turn records the close and the reconciler runs THEN the live PnL is Binance's for both fills (the
    entry's and the stop's), the stop has one fills_booked event; a second run changes nothing."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          stop_loss_pct="2")
    now = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS + 1000
    runner.run_tick(now - MINUTE_MS)
    mark = Decimal(str(runner.sim.mark_price("BTCUSDT")))
    runner.sim.set_mark_price("BTCUSDT", float(mark * Decimal("0.97")))  # the stop fires
    assert _exchange_position(runner) == 0
    runner.run_tick(now)  # position_closed, cause protective

    summary = reconcile()

    assert [e.details["cause"] for e in _events(sid, "position_closed")] == ["protective"]
    assert len(_user_trades(runner)) == 2 and summary["fills_booked"] == 1
    pnl = _get(runner, sid)["pnl"]
    realised, fees = _binance_pnl(runner)
    assert realised < 0 and pnl["estimated_fills"] == 0
    assert (Decimal(pnl["realised_pnl"]), Decimal(pnl["fees"])) == (realised.quantize(PLACES),
                                                                    fees.quantize(PLACES))
    (booked,) = _events(sid, "fills_booked")
    assert booked.details["client_order_id"].endswith("-sl")

    again = reconcile()

    assert "fills_booked" not in again and _get(runner, sid)["pnl"] == pnl


def test_a_strategys_stop_that_never_fired_books_nothing(runner, reconcile) -> None:
    """GIVEN a live long with a stop-loss and take-profit WHEN the strategy exits by its own order (the stops
    cancelled, never filled) and the reconciler runs THEN no fills_booked for them and the live PnL is
    exactly Binance's for the entry and the exit."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long", stop_loss_pct="2", take_profit_pct="2")
    play_current = _two_candles(runner)
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_SHORT})
    play_current()
    assert runner.stored(USER, sid).live_position == 0

    summary = reconcile()

    assert "fills_booked" not in summary and _events(sid, "fills_booked") == []
    pnl = _get(runner, sid)["pnl"]
    realised, fees = _binance_pnl(runner)
    assert (Decimal(pnl["realised_pnl"]), Decimal(pnl["fees"])) == (realised.quantize(PLACES),
                                                                    fees.quantize(PLACES))


def _estimated_entry_with_an_order_pending(runner) -> tuple[str, str]:
    """A live entry settled with its fills estimated, its strategy now holding another order pending (as
    between a turn's claim and its settle): (strategy id, the entry's clientOrderId)."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG)
    runner.run_tick()
    cid = runner.runs(sid)[0].order["client_order_id"]
    held = Decimal("0.002")
    _set_pending(sid, PendingOrder(close_time=1, client_order_id="pending-elsewhere", side="SELL",
                                   quantity=held, reduce_only=True, position_before=held,
                                   claimed_at_ms=1, lease_until_ms=1))
    return sid, cid


def test_an_estimate_is_not_booked_while_the_strategy_has_an_order_pending(
    runner, reconcile, no_fills_read
) -> None:
    """GIVEN an estimated entry WHEN the reconciler runs while the strategy has an order pending (a turn
    between its claim and its settle, which writes the book it read) THEN nothing is booked and the record
    stays unsettled with its estimate; once the order settled, the next run books it."""
    sid, cid = _estimated_entry_with_an_order_pending(runner)

    summary = reconcile()

    assert summary.get("fills_booked") is None and summary["fills_not_booked_yet"] == 1
    assert get_order_record(USER, cid).booked_estimate is not None and cid in _unsettled()
    assert _get(runner, sid)["pnl"]["estimated_fills"] == 1

    _set_pending(sid, None)
    assert reconcile()["fills_booked"] == 1
    assert _get(runner, sid)["pnl"]["estimated_fills"] == 0 and cid not in _unsettled()


def test_a_final_order_left_in_the_index_is_counted_as_left_not_settled(
    runner, reconcile, no_fills_read
) -> None:
    """A run counts a final order it leaves in the unsettled index as final_left_for_next_run, not settled."""
    sid, cid = _estimated_entry_with_an_order_pending(runner)

    summary = reconcile()

    assert cid in _unsettled()
    assert (summary.get("settled"), summary.get("final_left_for_next_run")) == (None, 1)
    _set_pending(sid, None)
    settling = reconcile()
    assert cid not in _unsettled()
    assert (settling.get("settled"), settling.get("final_left_for_next_run")) == (1, None)


def test_an_estimate_is_not_booked_over_a_strategy_changed_since_it_was_read(
    runner, reconcile, no_fills_read, monkeypatch
) -> None:
    """GIVEN an estimated entry WHEN its strategy is written between the reconciler's read and its write
    (a turn, a PATCH) THEN nothing is booked over the newer item (its write is refused) and the next run
    books the fills once, into the book as it is then."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG)
    runner.run_tick()
    read = live_fills.get_strategy

    def read_then_changed(*args, **kwargs):
        strategy = read(*args, **kwargs)
        update_strategy(USER, sid, strategy, changes={"parameters": CHANGED})
        return strategy

    monkeypatch.setattr(live_fills, "get_strategy", read_then_changed)
    first = reconcile()
    monkeypatch.setattr(live_fills, "get_strategy", read)
    second = reconcile()

    assert (first.get("fills_booked"), first["fills_not_booked_yet"]) == (None, 1)
    assert second["fills_booked"] == 1
    _, fees = _binance_pnl(runner)
    pnl = _get(runner, sid)["pnl"]
    assert (pnl["estimated_fills"], Decimal(pnl["fees"])) == (0, fees.quantize(PLACES))
    assert runner.stored(USER, sid).parameters["period"] == CHANGED["period"]


def test_reading_the_order_history_books_an_estimated_fill_as_the_reconciler_does(
    runner, no_fills_read
) -> None:
    """GIVEN an estimated entry WHEN the trader reads the order history (GET /futures/orders settles up to
    5 of the page's orders with Binance) THEN the entry's fills are listed and booked into the strategy's
    PnL (under the futures_orders function's IAM policy), once."""
    connection = runner.connection(USER)
    sid = runner.strategy(USER, connection, type="rsi_threshold", parameters=ALWAYS_LONG)
    runner.run_tick()
    cid = runner.runs(sid)[0].order["client_order_id"]
    event = with_user(load_event("futures_orders"), USER)
    event["queryStringParameters"] = {"connection_id": connection}
    event["rawQueryString"] = f"connection_id={connection}"

    response = runner.invoke("futures_orders", event)

    assert response["statusCode"] == 200, response["body"]
    listed = {order["client_order_id"]: order for order in response_json(response)["orders"]}
    assert listed[cid]["settled"] is True and listed[cid]["fills"]
    _, fees = _binance_pnl(runner)
    pnl = _get(runner, sid)["pnl"]
    assert (pnl["estimated_fills"], Decimal(pnl["fees"])) == (0, fees.quantize(PLACES))
    booked = [e.details["client_order_id"] for e in list_events(sid, 100).events if e.kind == "fills_booked"]
    assert booked == [cid]


def test_a_close_whose_fill_price_is_unknown_books_binances_pnl_from_its_fills(runner, no_fill_price) -> None:
    """GIVEN a live long WHEN its close's answer lacks avgPrice and the read-back fails THEN the close still
    settles into the live book, from its userTrades: Binance's realised PnL and commission, none estimated."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          direction="long")
    play_current = _two_candles(runner)
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"parameters": ALWAYS_SHORT})

    play_current()

    run = runner.runs(sid)[0]
    assert run.order["side"] == "SELL" and run.order["average_price"] is None  # as Binance answered
    pnl = _get(runner, sid)["pnl"]
    realised, fees = _binance_pnl(runner)
    assert pnl["estimated_fills"] == 0 and runner.stored(USER, sid).live_position == 0
    assert (Decimal(pnl["realised_pnl"]), Decimal(pnl["fees"])) == (realised.quantize(PLACES),
                                                                    fees.quantize(PLACES))


def test_an_entry_whose_fill_price_is_unknown_arms_its_stops_from_its_fills(runner, no_fill_price) -> None:
    """GIVEN a live long with SL 2 % / TP 3 % WHEN its answer lacks avgPrice and the read-back fails THEN its
    stops are armed at once, priced from its userTrades' average, and the book names the entry."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          stop_loss_pct="2", take_profit_pct="3")

    runner.run_tick()

    stored, [trade] = runner.stored(USER, sid), _user_trades(runner)
    assert [a.status for a in _stops_of(runner, sid)] == ["NEW", "NEW"]
    assert Decimal(str(stored.protective["entry_price"])) == Decimal(trade["price"])
    assert stored.live_book["entry_client_order_id"] == runner.runs(sid)[0].order["client_order_id"]


def test_an_entry_whose_fill_price_and_fills_are_unknown_is_estimated_at_the_candle_close(
    runner, reconcile, no_fill_price, no_fills_read,
) -> None:
    """GIVEN a live long with SL 2 % WHEN its answer lacks avgPrice, the read-back fails and no fills can be
    read THEN it is booked as an estimate at the decision candle's close, its stops armed from that price;
    the reconciler then books Binance's fills in the estimate's place."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          stop_loss_pct="2")

    runner.run_tick()

    stored = runner.stored(USER, sid)
    assert [a.status for a in _stops_of(runner, sid)] == ["NEW"]
    assert _get(runner, sid)["pnl"]["estimated_fills"] == 1 and stored.live_book["entry_price"]
    cid = runner.runs(sid)[0].order["client_order_id"]
    assert get_order_record(USER, cid).booked_estimate is not None

    assert reconcile()["fills_booked"] == 1 and _get(runner, sid)["pnl"]["estimated_fills"] == 0


def test_an_entry_estimated_at_the_candle_close_shows_binances_entry_price_once_its_fills_are_booked(
    runner, reconcile, no_fill_price, no_fills_read,
) -> None:
    """An entry priced at the candle close (no avgPrice, no fills read) shows Binance's price once booked."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG)
    # The fill away from the candle's close: the simulator fills at its mark, the forming candle's price,
    # which two candles in a row can share.
    runner.sim.set_mark_price("BTCUSDT", round(runner.sim.mark_price("BTCUSDT") * 1.05, 1))
    runner.run_tick()
    [trade] = _user_trades(runner)
    estimated = Decimal(_get(runner, sid)["pnl"]["entry_price"])
    assert estimated != Decimal(trade["price"])  # the candle's close, not Binance's fill

    assert reconcile()["fills_booked"] == 1

    pnl = _get(runner, sid)["pnl"]
    assert pnl["estimated_fills"] == 0
    assert Decimal(pnl["entry_price"]) == Decimal(trade["price"]), "the estimated entry price stays shown"
    mark = Decimal(pnl["mark_price"])
    expected = ((mark - Decimal(trade["price"])) * Decimal(trade["qty"])).quantize(PLACES)
    assert Decimal(pnl["unrealised_pnl"]) == expected


def test_a_held_live_long_is_never_added_to_so_an_estimated_entry_is_the_whole_position(
    runner, reconcile, no_fill_price, no_fills_read,
) -> None:
    """GIVEN a live long of 0.002 priced at the candle close (no avgPrice, no fills read) WHEN its size is
    raised to 0.004 and the next candle is long again THEN nothing is added (no order, run no_change): the
    estimated entry stays the whole position, the case ``book_exact`` corrects: booked, Binance's price."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG)
    runner.sim.set_mark_price("BTCUSDT", round(runner.sim.mark_price("BTCUSDT") * 1.05, 1))
    play_current = _two_candles(runner)
    update_strategy(USER, sid, runner.stored(USER, sid), changes={"size": Decimal("0.004")})

    play_current()

    [trade] = _user_trades(runner)
    assert [r.status for r in runner.runs(sid)] == ["no_change", "ordered"]
    assert runner.stored(USER, sid).live_position == Decimal("0.002")
    assert reconcile()["fills_booked"] == 1
    assert Decimal(_get(runner, sid)["pnl"]["entry_price"]) == Decimal(trade["price"])


def test_a_fills_read_refused_for_the_key_is_estimated_and_counted_once_against_the_key(runner) -> None:
    """GIVEN a live entry Binance fills WHEN its fills read (userTrades) is refused for the key (-2015: e.g.
    the server's IP left the key's allow-list) THEN the fill is estimated as for any failed read, and the key
    failure is counted once on the connection's key health, not wiped by the order's own success."""
    from klineo.store.connections import get_connection

    connection_id = runner.connection(USER)
    sid = runner.strategy(USER, connection_id, type="rsi_threshold", parameters=ALWAYS_LONG)
    runner.sim.faults.add("http_401_invalid_key", method="GET", path="/fapi/v1/userTrades")

    runner.run_tick()

    assert runner.stored(USER, sid).live_position != 0 and _get(runner, sid)["pnl"]["estimated_fills"] == 1
    assert len(runner.journal("GET", "/fapi/v1/userTrades")) == 1
    assert get_connection(USER, connection_id).consecutive_failures == 1
