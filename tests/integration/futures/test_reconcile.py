"""Order history and the reconciler against moto and the simulator over loopback.

Must-show scenarios of issue 12: a take-profit fills and the stop-loss is cancelled within one
reconciliation; an injected liquidation shows up labelled in the order history; an order Binance
purged becomes UNKNOWN_PURGED and is never sent again.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from klineo.binance import endpoints
from klineo.services.protective_siblings import protective_client_algo_id
from klineo.services.reconcile import DAY_MS
from klineo.settings import get_settings
from klineo.store import aws as aws_clients
from klineo.store import order_history
from klineo.store.orders import (
    KIND_ALGO,
    STATUS_UNKNOWN_PURGED,
    OrderRecord,
    get_order_record,
    put_new_record,
)

from tests.helpers import load_event, with_user
from tests.integration.api.conftest import USER_A, USER_B, LambdaContext, at_path
from tests.integration.futures.helpers import (
    ORDER_PATH,
    body_of,
    new_key,
    order_body,
    order_event,
    status_event,
)

ALGO_PATH = "/fapi/v1/algoOrder"


def _orders(invoke: Any, user: str = USER_A, **query: str) -> dict[str, Any]:
    event = with_user(load_event("futures_orders"), user)
    event["queryStringParameters"] = query or None
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    return invoke("futures_orders", event)


def _open_long(invoke: Any, connection_id: str, quantity: str = "0.002") -> dict[str, Any]:
    body = order_body(connection_id, type="MARKET", price=None, timeInForce=None, quantity=quantity)
    response = invoke("futures_order", order_event(body, key=new_key()))
    assert response["statusCode"] == 200, response["body"]
    return body_of(response)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _protective(sim: Any, connection: Any, entry: str, role: str, order_type: str, trigger: Decimal) -> str:
    """Place a closePosition SELL algo order on the simulator and record it as ours (kind algo)."""
    client_algo_id = f"{'sl' if role == 'stop_loss' else 'tp'}-{entry}"[:36]
    params = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "type": order_type,
              "triggerPrice": format(trigger, "f"), "closePosition": "true", "clientAlgoId": client_algo_id}
    sim.state.algo.place(sim.account(connection.account.id), dict(params), time.time() * 1000)
    now = _now_iso()
    assert put_new_record(OrderRecord(
        user_id=USER_A, client_order_id=client_algo_id, connection_id=connection.id, symbol="BTCUSDT",
        request={}, params=params, status="NEW", attempt_ms=int(time.time() * 1000), created_at=now,
        updated_at=now, kind=KIND_ALGO, role=role, parent_client_order_id=entry,
    ))
    return client_algo_id


def _algo_status(sim: Any, connection: Any, client_algo_id: str) -> str:
    state = sim.state.futures.state_for(sim.account(connection.account.id), time.time() * 1000)
    (algo,) = [a for a in state.algo_orders.values() if a.client_algo_id == client_algo_id]
    return algo.status


def _position_amount(sim: Any, connection: Any) -> Decimal:
    rows = sim.state.futures.position_risk(sim.account(connection.account.id), "BTCUSDT",
                                           time.time() * 1000, 3)
    return sum((Decimal(r["positionAmt"]) for r in rows), Decimal(0))


def test_take_profit_fill_cancels_the_stop_loss_within_one_run(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN an entry with SL and TP WHEN the mark moves to the TP THEN it fills, the position is 0,
    and one reconciliation cancels the SL (one DELETE in the journal) and records the TP's fill."""
    entry = _open_long(invoke, futures_connection.id)["client_order_id"]
    mark = Decimal(str(sim_env.mark_price("BTCUSDT")))
    stop = _protective(sim_env, futures_connection, entry, "stop_loss", "STOP_MARKET",
                       (mark * Decimal("0.9")).quantize(Decimal("0.1")))
    take = _protective(sim_env, futures_connection, entry, "take_profit", "TAKE_PROFIT_MARKET",
                       (mark * Decimal("1.05")).quantize(Decimal("0.1")))

    sim_env.set_mark_price("BTCUSDT", float(mark * Decimal("1.06")))
    assert _position_amount(sim_env, futures_connection) == 0
    reconcile()

    assert _algo_status(sim_env, futures_connection, stop) == "CANCELED"
    cancels = [r for r in sim_env.journal if r.method == "DELETE" and r.path == ALGO_PATH]
    assert len(cancels) == 1
    assert get_order_record(USER_A, stop).status == "CANCELED"
    tp_record = get_order_record(USER_A, take)
    assert tp_record.status in ("FINISHED", "TRIGGERED")
    assert [Decimal(f["qty"]) for f in tp_record.fills] == [Decimal("0.002")]
    assert get_order_record(USER_A, entry).fills[0]["qty"] == "0.002"


def test_position_closed_elsewhere_disarms_our_protective_orders(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a LONG with an SL WHEN the position is closed by a manual trade THEN the next run cancels the SL
    (a stale stop must never close a later position) and records the manual trade, labelled."""
    entry = _open_long(invoke, futures_connection.id)["client_order_id"]
    mark = Decimal(str(sim_env.mark_price("BTCUSDT")))
    stop = _protective(sim_env, futures_connection, entry, "stop_loss", "STOP_MARKET",
                       (mark * Decimal("0.9")).quantize(Decimal("0.1")))
    sim_env.inject_trade(futures_connection.account.id, "manual", "BTCUSDT", side="SELL", quantity="0.002")

    reconcile()
    reconcile()

    assert _algo_status(sim_env, futures_connection, stop) == "CANCELED"
    orders = body_of(_orders(invoke))["orders"]
    assert sorted(o["origin"] for o in orders) == ["api", "api", "manual"]
    (manual,) = [o for o in orders if o["origin"] == "manual"]
    assert manual["side"] == "SELL" and [f["qty"] for f in manual["fills"]] == ["0.002"]
    assert get_order_record(USER_A, stop).status == "CANCELED"


def test_injected_liquidation_shows_labelled_in_the_order_history(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a LONG WHEN Binance liquidates it THEN the position reads 0 and, after reconciliation, the
    history lists the liquidation order with its fill, labelled, next to ours (a second run adds nothing),
    and the positions view shows it labelled among the recent trades we did not place."""
    entry = _open_long(invoke, futures_connection.id)["client_order_id"]
    sim_env.inject_trade(futures_connection.account.id, "liquidation", "BTCUSDT")
    positions = invoke("futures_positions", with_user(_at_connection(futures_connection.id), USER_A))
    assert body_of(positions)["positions"] == []

    reconcile()
    reconcile()

    response = _orders(invoke)
    assert response["statusCode"] == 200, response["body"]
    orders = body_of(response)["orders"]
    (liquidation,) = [o for o in orders if o["origin"] == "liquidation"]
    assert liquidation["client_order_id"].startswith("liquidation-") and liquidation["status"] == "FILLED"
    assert liquidation["side"] == "SELL" and liquidation["settled"] is True
    assert [Decimal(f["qty"]) for f in liquidation["fills"]] == [Decimal("0.002")]
    (ours,) = [o for o in orders if o["client_order_id"] == entry]
    assert ours["origin"] == "api" and ours["settled"] and ours["fills"][0]["order_id"] == ours["order_id"]
    positions = body_of(invoke("futures_positions", with_user(_at_connection(futures_connection.id), USER_A)))
    (beside_positions,) = positions["recent_trades_not_ours"]
    assert (beside_positions["client_order_id"], beside_positions["origin"]) == (
        liquidation["client_order_id"], "liquidation")
    assert (beside_positions["symbol"], beside_positions["side"]) == ("BTCUSDT", "SELL")


def _at_connection(connection_id: str) -> dict[str, Any]:
    path = f"/exchange-connections/{connection_id}/futures/positions"
    return at_path(load_event("futures_positions"), path, id=connection_id)


def test_purged_order_becomes_unknown_purged_and_is_never_sent_again(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a resting LIMIT order cancelled at Binance without fills WHEN Binance purges it (4 days later)
    THEN one run marks the record UNKNOWN_PURGED, final; later runs and a retry of its key send nothing."""
    key = new_key()
    body = order_body(futures_connection.id)
    placed = invoke("futures_order", order_event(body, key=key))
    assert placed["statusCode"] == 200, placed["body"]
    client_order_id = body_of(placed)["client_order_id"]
    account = sim_env.account(futures_connection.account.id)
    sim_env.state.futures.cancel_order(account, {"symbol": "BTCUSDT", "origClientOrderId": client_order_id},
                                 time.time() * 1000)
    sim_env.age_orders(4 * DAY_MS)
    later = int(time.time() * 1000) + 4 * DAY_MS

    reconcile(now_ms=later)

    record = get_order_record(USER_A, client_order_id)
    assert record.status == STATUS_UNKNOWN_PURGED and record.final
    sent = len(sim_env.journal)
    reconcile(now_ms=later)
    retry = invoke("futures_order", order_event(body, key=key))
    assert retry["statusCode"] == 200, retry["body"]
    assert body_of(retry)["source"] == "existing"
    assert [r for r in sim_env.journal[sent:] if r.path in (ORDER_PATH, "/fapi/v1/order")
            and r.method in ("POST", "GET")] == []


def test_young_unknown_order_is_left_for_its_own_lookup(sim_env, invoke, futures_connection, reconcile):
    """GIVEN a PENDING record Binance never saw, one minute old WHEN a run reads it THEN it stays unsettled
    (it may still be settled by the order route's lookup) and nothing is sent but the lookup."""
    now = _now_iso()
    put_new_record(OrderRecord(
        user_id=USER_A, client_order_id="klneo_young_1", connection_id=futures_connection.id,
        symbol="BTCUSDT", request={}, params={}, status="PENDING", attempt_ms=int(time.time() * 1000),
        created_at=now, updated_at=now,
    ))
    before = len(sim_env.journal)

    reconcile()

    assert get_order_record(USER_A, "klneo_young_1").status == "PENDING"
    assert {r.method for r in sim_env.journal[before:]} <= {"GET"}


# ---------------------------------------------------------------- the history route


def test_history_pages_newest_first_with_a_cursor(sim_env, invoke, futures_connection):
    """GIVEN three orders WHEN read two at a time THEN newest first, then the last one, then no cursor."""
    ids = [_open_long(invoke, futures_connection.id)["client_order_id"] for _ in range(3)]

    first = body_of(_orders(invoke, limit="2"))
    second = body_of(_orders(invoke, limit="2", cursor=first["next_cursor"]))

    assert [o["client_order_id"] for o in first["orders"]] == ids[::-1][:2]
    assert [o["client_order_id"] for o in second["orders"]] == ids[:1]
    assert second["next_cursor"] is None


def test_history_read_settles_the_fills_of_its_orders(sim_env, invoke, futures_connection):
    """GIVEN a filled MARKET order with no fills recorded WHEN the history is read THEN it shows the fill."""
    entry = _open_long(invoke, futures_connection.id)["client_order_id"]
    assert get_order_record(USER_A, entry).fills is None

    (order,) = body_of(_orders(invoke))["orders"]

    assert order["settled"] is True and order["status"] == "FILLED"
    assert [Decimal(f["qty"]) for f in order["fills"]] == [Decimal("0.002")]
    assert get_order_record(USER_A, entry).fills == order["fills"]


def test_history_filters_and_isolates_users(sim_env, invoke, futures_connection):
    """GIVEN USER_A's order WHEN filtered by another symbol, status or a later time, or read by USER_B
    THEN none; filtered by its own symbol and status THEN it."""
    _open_long(invoke, futures_connection.id)
    future = str(int(time.time() * 1000) + DAY_MS)

    assert len(body_of(_orders(invoke, symbol="BTCUSDT", status="FILLED"))["orders"]) == 1
    assert body_of(_orders(invoke, symbol="ETHUSDT"))["orders"] == []
    assert body_of(_orders(invoke, status="CANCELED"))["orders"] == []
    assert body_of(_orders(invoke, **{"from": future}))["orders"] == []
    assert body_of(_orders(invoke, user=USER_B))["orders"] == []


def test_status_filter_leaves_out_an_order_that_settling_moved_out_of_that_status(
        sim_env, invoke, futures_connection):
    """GIVEN two resting LIMIT orders recorded NEW, the one listed first cancelled at Binance behind our back
    WHEN read with status=NEW one at a time THEN the first page settles it as CANCELED and leaves it out (no
    order, a next_cursor), and the cursor leads to the other NEW order: only NEW orders, none skipped."""
    for _ in range(2):
        invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))
    first_id, other_id = [o["client_order_id"] for o in body_of(_orders(invoke))["orders"]]
    sim_env.state.futures.cancel_order(futures_connection.account,
                                       {"symbol": "BTCUSDT", "origClientOrderId": first_id},
                                       sim_env.server_time_ms())

    first = body_of(_orders(invoke, status="NEW", limit="1"))
    second = body_of(_orders(invoke, status="NEW", limit="1", cursor=first["next_cursor"]))

    assert first["orders"] == [] and first["next_cursor"] is not None
    assert [(o["client_order_id"], o["status"]) for o in second["orders"]] == [(other_id, "NEW")]
    assert get_order_record(USER_A, first_id).status == "CANCELED"


def test_tampered_cursor_is_400_naming_cursor(sim_env, invoke, futures_connection):
    """GIVEN a cursor that is not one we handed out WHEN used THEN 400 naming cursor, value not echoed."""
    response = _orders(invoke, cursor="bm90LWEtY3Vyc29yLWF0LWFsbA")

    assert response["statusCode"] == 400, response["body"]
    error = body_of(response)["error"]
    assert error["field"] == "cursor" and "bm90LWEt" not in response["body"]


def test_limit_above_the_maximum_is_a_clear_error(sim_env, invoke, futures_connection):
    """GIVEN limit=101 WHEN the history is read THEN a 4xx naming limit."""
    response = _orders(invoke, limit="101")

    assert 400 <= response["statusCode"] < 500
    assert "limit" in response["body"]


def test_run_without_budget_sends_nothing_and_leaves_records_for_later(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN an unsettled record WHEN a run has no request weight left THEN no Binance call, no change."""
    entry = _open_long(invoke, futures_connection.id)["client_order_id"]
    before = len(sim_env.journal)

    summary = reconcile(weight=0)

    assert len(sim_env.journal) == before and summary["stopped_on_budget"] >= 1
    assert get_order_record(USER_A, entry).fills is None


def test_injected_adl_is_labelled_adl(sim_env, invoke, futures_connection, reconcile):
    """GIVEN a LONG WHEN Binance auto-deleverages it THEN one run records the ADL order, labelled adl."""
    _open_long(invoke, futures_connection.id)
    sim_env.inject_trade(futures_connection.account.id, "adl", "BTCUSDT")

    reconcile()

    (adl,) = [o for o in body_of(_orders(invoke))["orders"] if o["origin"] == "adl"]
    assert adl["status"] == "FILLED" and [f["qty"] for f in adl["fills"]] == ["0.002"]


def test_protective_order_cancelled_at_binance_is_settled_cancelled(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN our SL cancelled in Binance's app WHEN a run reads it THEN CANCELED, settled, no cancel sent."""
    entry = _open_long(invoke, futures_connection.id)["client_order_id"]
    mark = Decimal(str(sim_env.mark_price("BTCUSDT")))
    stop = _protective(sim_env, futures_connection, entry, "stop_loss", "STOP_MARKET",
                       (mark * Decimal("0.9")).quantize(Decimal("0.1")))
    account = sim_env.account(futures_connection.account.id)
    sim_env.state.algo.cancel(account, {"symbol": "BTCUSDT", "clientAlgoId": stop}, time.time() * 1000)

    reconcile()

    record = get_order_record(USER_A, stop)
    assert record.status == "CANCELED" and record.fills == []
    assert [r for r in sim_env.journal if r.method == "DELETE" and r.path == ALGO_PATH] == []


def test_open_order_is_written_once_not_on_every_run(sim_env, invoke, futures_connection, reconcile):
    """GIVEN a resting LIMIT order WHEN three runs read it THEN the record is written by the first only."""
    placed = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))
    client_order_id = body_of(placed)["client_order_id"]

    reconcile()
    first = get_order_record(USER_A, client_order_id)
    reconcile()
    reconcile()

    later = get_order_record(USER_A, client_order_id)
    assert first.status == later.status == "NEW" and later.updated_at == first.updated_at
    assert later.result["source"] == "queried" and later.fills is None


def test_an_open_order_a_run_reads_is_counted_as_left_not_settled(
    sim_env, invoke, futures_connection, reconcile
):
    """A run that stores an open order's new state counts it as open_left_for_next_run, not settled."""
    placed = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))
    client_order_id = body_of(placed)["client_order_id"]

    summary = reconcile()

    assert get_order_record(USER_A, client_order_id).result["source"] == "queried"
    assert client_order_id in {record.client_order_id for record in order_history.list_unsettled()}
    assert (summary.get("settled"), summary.get("open_left_for_next_run")) == (None, 1)


def test_sibling_of_a_stop_fired_before_a_run_stopped_by_its_budget_is_cancelled_by_the_next(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN two longs, one with SL and TP, whose SL fired and was settled by a run its budget stopped before
    its cleanup WHEN the next run reads the TP THEN it cancels it: the other long would keep it armed."""
    body = order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None, quantity="0.002",
                      stop_loss={"percent": "3"}, take_profit={"percent": "3"})
    entry = body_of(invoke("futures_order", order_event(body, key=new_key())))["client_order_id"]
    _open_long(invoke, futures_connection.id)
    reconcile()  # the entries' fills read: only the two protective orders are left unsettled
    stop, take = (protective_client_algo_id(entry, role) for role in ("stop_loss", "take_profit"))
    sim_env.set_mark_price("BTCUSDT", float(Decimal(str(sim_env.mark_price("BTCUSDT"))) * Decimal("0.95")))
    assert _position_amount(sim_env, futures_connection) == Decimal("0.002")

    reconcile(weight=7)  # reads the fired SL (1 + its child 1 + its fills 5), then stops before the TP
    assert get_order_record(USER_A, stop).status in ("FINISHED", "TRIGGERED")
    assert get_order_record(USER_A, take).status == "NEW"
    reconcile()

    assert _algo_status(sim_env, futures_connection, take) == "CANCELED"
    assert get_order_record(USER_A, take).status == "CANCELED"
    assert _position_amount(sim_env, futures_connection) == Decimal("0.002")


def test_order_sent_again_days_after_its_record_is_not_purged_while_that_send_may_arrive(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a record created 4 days ago whose resend (a REJECTED order retried with its key) began 2 s ago,
    outcome unrecorded, not at Binance yet WHEN a run reads it THEN it stays PENDING; once the send arrives
    and fills THEN the next run records it FILLED with its fill, never UNKNOWN_PURGED."""
    now_ms = int(time.time() * 1000)
    created = datetime.fromtimestamp((now_ms - 4 * DAY_MS) / 1000, UTC).isoformat().replace("+00:00", "Z")
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002",
              "newClientOrderId": "klneo_resent_1"}
    put_new_record(OrderRecord(
        user_id=USER_A, client_order_id="klneo_resent_1", connection_id=futures_connection.id,
        symbol="BTCUSDT", request={}, params=params, status="PENDING", attempt_ms=now_ms - 2_000,
        created_at=created,
        updated_at=_now_iso(),
    ))

    reconcile()
    assert get_order_record(USER_A, "klneo_resent_1").status == "PENDING"
    sim_env.state.futures.place_order(sim_env.account(futures_connection.account.id), dict(params),
                                      time.time() * 1000)
    reconcile()

    record = get_order_record(USER_A, "klneo_resent_1")
    assert record.status == "FILLED" and [Decimal(f["qty"]) for f in record.fills] == [Decimal("0.002")]


def test_run_that_read_an_order_open_never_writes_that_over_a_fill_settled_meanwhile(
    sim_env, invoke, futures_connection, reconcile, monkeypatch
):
    """GIVEN a resting LIMIT order a run reads NEW WHEN, before that run writes, it fills and a read of the
    history settles it THEN the run's stale answer is not written: the record stays FILLED with its fill."""
    placed = body_of(invoke("futures_order", order_event(order_body(futures_connection.id, price="60000"),
                                                         key=new_key())))
    client_order_id = placed["client_order_id"]
    assert placed["status"] == "NEW"
    real_query = endpoints.futures_query_order

    def read_then_fill_and_settle_elsewhere(*args: Any, **kwargs: Any) -> dict[str, Any]:
        answer = real_query(*args, **kwargs)
        monkeypatch.setattr(endpoints, "futures_query_order", real_query)
        sim_env.set_mark_price("BTCUSDT", 59_000.0)
        (order,) = body_of(_orders(invoke))["orders"]
        assert order["status"] == "FILLED" and order["settled"] is True
        return answer

    monkeypatch.setattr(endpoints, "futures_query_order", read_then_fill_and_settle_elsewhere)
    reconcile()

    record = get_order_record(USER_A, client_order_id)
    assert record.status == "FILLED" and [Decimal(f["qty"]) for f in record.fills] == [Decimal("0.010")]


def _sim_order_recorded(sim: Any, connection: Any, client_order_id: str, status: str, **params: str) -> None:
    """Place an order on the simulator and record it as ours, unsettled (its fills not read)."""
    params = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.010", **params,
              "newClientOrderId": client_order_id}
    sim.state.futures.place_order(sim.account(connection.account.id), dict(params), time.time() * 1000)
    now = _now_iso()
    assert put_new_record(OrderRecord(
        user_id=USER_A, client_order_id=client_order_id, connection_id=connection.id, symbol="BTCUSDT",
        request={}, params=params, status=status, attempt_ms=int(time.time() * 1000), created_at=now,
        updated_at=now,
    ))


def test_runs_cut_short_by_their_budget_go_on_where_the_last_stopped(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN three resting orders listed before a filled one, and runs whose budget (6) covers the three
    reads (1 each) but not also the fill's (1 + its fills 5) WHEN two runs go THEN the second starts where
    the first stopped and settles the fill: a run never starts over at the same records forever."""
    for n in range(3):
        _sim_order_recorded(sim_env, futures_connection, f"klneo_a_rest_{n}", "NEW", type="LIMIT",
                            price="20000", timeInForce="GTC")
    _sim_order_recorded(sim_env, futures_connection, "klneo_z_filled", "FILLED", type="MARKET")

    reconcile(weight=6)
    assert get_order_record(USER_A, "klneo_z_filled").fills is None
    reconcile(weight=6)

    assert [Decimal(f["qty"]) for f in get_order_record(USER_A, "klneo_z_filled").fills] == [Decimal("0.010")]


def test_a_backlog_larger_than_a_run_still_leaves_each_run_its_cleanup_and_foreign_trades(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a stop-loss left armed by a manual close, and 20 resting orders, so that reading every unsettled
    record costs a run's whole budget (24) WHEN three runs go THEN the stale stop is cancelled and the manual
    close recorded: settling a backlog never starves the cleanup and the trades we did not place."""
    entry = _open_long(invoke, futures_connection.id)["client_order_id"]
    reconcile()  # the entry settled: its symbol is watched
    mark = Decimal(str(sim_env.mark_price("BTCUSDT")))
    stop = _protective(sim_env, futures_connection, entry, "stop_loss", "STOP_MARKET",
                       (mark * Decimal("0.9")).quantize(Decimal("0.1")))
    sim_env.inject_trade(futures_connection.account.id, "manual", "BTCUSDT", side="SELL", quantity="0.002")
    for n in range(20):
        _sim_order_recorded(sim_env, futures_connection, f"klneo_rest_{n:02d}", "NEW", type="LIMIT",
                            price="20000", timeInForce="GTC")

    for _ in range(3):
        reconcile(weight=24)

    assert _algo_status(sim_env, futures_connection, stop) == "CANCELED"
    assert [o["origin"] for o in body_of(_orders(invoke))["orders"]].count("manual") == 1


def test_runs_cut_short_follow_each_watched_symbol_in_turn(sim_env, invoke, futures_connection, reconcile):
    """GIVEN four watched symbols, the last listed with a manual trade, and runs whose budget (15) reads the
    trades of three WHEN two runs go THEN the second reads the fourth's and records the trade: a symbol listed
    late is never left unfollowed for good (its liquidations unrecorded)."""
    now_ms = int(time.time() * 1000)
    for symbol in ("BNBUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT"):
        order_history.watch_symbol(USER_A, futures_connection.id, symbol, now_ms)
    sim_env.inject_trade(futures_connection.account.id, "manual", "SOLUSDT", side="BUY", quantity="1")

    reconcile(weight=15)
    assert body_of(_orders(invoke))["orders"] == []
    reconcile(weight=15)

    (manual,) = body_of(_orders(invoke))["orders"]
    assert (manual["origin"], manual["symbol"]) == ("manual", "SOLUSDT")


def _watch_older(connection_id: str, symbol: str, ms: int) -> None:
    """Make the watch's stored time of its last reconciled trade ``ms`` older, as the simulator's
    ``age_orders(ms)`` made Binance's trades: the watch as it stands once that time has passed."""
    table = get_settings().data_table
    sort_key = f"{order_history.WATCH_PREFIX}{connection_id}#{symbol}"
    key = {"pk": {"S": f"USER#{USER_A}"}, "sk": {"S": sort_key}}
    item = aws_clients.dynamodb().get_item(TableName=table, Key=key)["Item"]
    if "read_ms" in item:
        aws_clients.dynamodb().update_item(
            TableName=table, Key=key, UpdateExpression="SET read_ms = read_ms - :ms",
            ExpressionAttributeValues={":ms": {"N": str(ms)}})


def test_trades_of_a_watched_symbol_left_unread_over_a_week_are_all_recorded(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a watched symbol whose last reconciled trade is 8 days old and a manual trade made a day after
    it WHEN a run follows the symbol THEN the manual trade is recorded: Binance's page answers a query sent no
    time (fromId alone) with the last 7 days only, so the run reads from its last trade's time in windows
    of 7 days (before: the manual trade, past that default window, was never recorded)."""
    _open_long(invoke, futures_connection.id)
    reconcile()  # our entry settled, the symbol watched, its watermark our entry's trade
    manual = sim_env.inject_trade(futures_connection.account.id, "manual", "BTCUSDT", side="BUY",
                                  quantity="0.002")
    sim_env.age_orders(8 * DAY_MS)
    _watch_older(futures_connection.id, "BTCUSDT", 8 * DAY_MS)

    reconcile()

    (recorded,) = [o for o in body_of(_orders(invoke))["orders"] if o["origin"] == "manual"]
    assert recorded["client_order_id"] == f"manual-{manual['orderId']}"
    assert [Decimal(f["qty"]) for f in recorded["fills"]] == [Decimal("0.002")]


def test_a_watch_read_in_windows_that_found_nothing_is_read_by_trade_id_next_time(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a watched symbol whose last reconciled trade is 8 days old and no trade since WHEN two runs
    follow it THEN the first reads its windows (2 requests) and finds nothing, and the second sends one
    request: a position held for weeks without a trade costs one read a run, not one per week since; and
    how far it was read is written by the first run only (once a day, not a write every run)."""
    _open_long(invoke, futures_connection.id)
    reconcile()
    sim_env.age_orders(8 * DAY_MS)
    _watch_older(futures_connection.id, "BTCUSDT", 8 * DAY_MS)

    sent, read_to = [], []
    for _ in range(2):
        before = len(sim_env.journal)
        reconcile()
        sent.append(sum(1 for r in sim_env.journal[before:] if r.path == "/fapi/v1/userTrades"))
        (watch,) = [w for w in order_history.list_watched() if w.symbol == "BTCUSDT"]
        read_to.append(watch.read_ms)

    assert sent == [2, 1]
    assert read_to[0] is not None and read_to[1] == read_to[0] > time.time() * 1000 - 2 * 3_600_000
    assert body_of(_orders(invoke))["orders"][0]["origin"] == "api"


def test_status_read_that_read_an_order_open_never_writes_that_over_a_fill_the_reconciler_settled(
    sim_env, invoke, futures_connection, reconcile, monkeypatch
):
    """GIVEN an order whose answer was lost (UNKNOWN) resting at Binance, read NEW by a status read WHEN,
    before that read writes, it fills and a reconciler run settles it THEN the read's older answer is not
    written: the record stays FILLED with its fill (before, NEW for good, out of the reconciler's index)."""
    _sim_order_recorded(sim_env, futures_connection, "klneo_lost_1", "UNKNOWN", type="LIMIT", price="60000",
                        timeInForce="GTC")
    real_query = endpoints.futures_query_order

    def read_then_fill_and_reconcile(*args: Any, **kwargs: Any) -> dict[str, Any]:
        answer = real_query(*args, **kwargs)
        monkeypatch.setattr(endpoints, "futures_query_order", real_query)
        sim_env.set_mark_price("BTCUSDT", 59_000.0)
        reconcile()
        assert get_order_record(USER_A, "klneo_lost_1").status == "FILLED"
        return answer

    monkeypatch.setattr(endpoints, "futures_query_order", read_then_fill_and_reconcile)
    response = invoke("futures_order_status", status_event("klneo_lost_1"))

    assert response["statusCode"] == 200, response["body"]
    record = get_order_record(USER_A, "klneo_lost_1")
    assert record.status == "FILLED" and [Decimal(f["qty"]) for f in record.fills] == [Decimal("0.010")]


def _unsettled_ids() -> set[str]:
    return {r.client_order_id for r in order_history.list_unsettled()}


def test_foreign_order_binance_forgot_ends_unknown_purged_once(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a manual order recorded while it was filling (unsettled) WHEN Binance forgets it (91 days on)
    THEN one run records it UNKNOWN_PURGED, with the fills it had, out of the unsettled index, and the next
    run asks nothing about it (before: -2013 on every run, in the index for good)."""
    placed = sim_env.inject_trade(futures_connection.account.id, "manual", "BTCUSDT", side="BUY",
                                  quantity="0.002")
    client_order_id = f"manual-{placed['orderId']}"
    now = _now_iso()
    assert put_new_record(OrderRecord(
        user_id=USER_A, client_order_id=client_order_id, connection_id=futures_connection.id,
        symbol="BTCUSDT", request={}, params={}, status="PARTIALLY_FILLED",
        attempt_ms=int(time.time() * 1000), created_at=now, updated_at=now, order_id=int(placed["orderId"]),
        origin="manual", fills=[]))
    sim_env.age_orders(91 * DAY_MS)
    later = int(time.time() * 1000) + 91 * DAY_MS

    reconcile(now_ms=later)

    record = get_order_record(USER_A, client_order_id)
    assert (record.status, record.fills) == (STATUS_UNKNOWN_PURGED, [])
    assert client_order_id not in _unsettled_ids()
    sent = len(sim_env.journal)
    reconcile(now_ms=later)
    assert [r for r in sim_env.journal[sent:] if r.path == "/fapi/v1/order"] == []


def test_fired_algo_order_whose_triggered_order_binance_forgot_ends_unknown_purged_once(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a STOP algo order of ours that fired, its LIMIT child cancelled unfilled, recorded TRIGGERED WHEN
    Binance forgets the child (4 days on) but still knows the algo order THEN one run records it
    UNKNOWN_PURGED, out of the unsettled index, and the next run asks nothing about it (before: -2013 on the
    child on every run, in the index for good)."""
    account = sim_env.account(futures_connection.account.id)
    mark = Decimal(str(sim_env.mark_price("BTCUSDT")))

    def price(ratio: str) -> str:
        return format((mark * Decimal(ratio)).quantize(Decimal("0.1")), "f")

    params = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "BUY", "type": "STOP",
              "quantity": "0.002", "triggerPrice": price("1.01"), "price": price("1.005"),
              "timeInForce": "GTC", "clientAlgoId": "klneo_stop_forgotten"}
    sim_env.state.algo.place(account, dict(params), time.time() * 1000)
    sim_env.set_mark_price("BTCUSDT", float(mark * Decimal("1.02")))
    state = sim_env.state.futures.state_for(account, time.time() * 1000)
    (child,) = [a.actual_order_id for a in state.algo_orders.values()
                if a.client_algo_id == "klneo_stop_forgotten"]
    sim_env.state.futures.cancel_order(account, {"symbol": "BTCUSDT", "orderId": str(child)},
                                       time.time() * 1000)
    now = _now_iso()
    assert put_new_record(OrderRecord(
        user_id=USER_A, client_order_id="klneo_stop_forgotten", connection_id=futures_connection.id,
        symbol="BTCUSDT", request={}, params=params, status="TRIGGERED", attempt_ms=int(time.time() * 1000),
        created_at=now, updated_at=now, kind=KIND_ALGO))
    sim_env.age_orders(4 * DAY_MS)
    later = int(time.time() * 1000) + 4 * DAY_MS

    reconcile(now_ms=later)

    record = get_order_record(USER_A, "klneo_stop_forgotten")
    assert (record.status, record.fills) == (STATUS_UNKNOWN_PURGED, [])
    assert "klneo_stop_forgotten" not in _unsettled_ids()
    sent = len(sim_env.journal)
    reconcile(now_ms=later)
    assert [r for r in sim_env.journal[sent:] if r.path in ("/fapi/v1/order", ALGO_PATH)] == []


@dataclasses.dataclass(frozen=True)
class _EndingContext(LambdaContext):
    """A Lambda context with ``remaining_ms`` left."""

    remaining_ms: int = 20_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def _scheduled_run(iam: Any, remaining_ms: int) -> dict[str, Any]:
    """The order-reconciler function invoked by its schedule, ``remaining_ms`` left before its timeout."""
    module = importlib.import_module("functions.order_reconciler.app")
    context = _EndingContext(remaining_ms=remaining_ms)
    with iam.acting_as("order_reconciler"):
        return module.lambda_handler(load_event("order_reconciler"), context)


def test_scheduled_run_near_its_timeout_stops_before_binance_and_the_next_run_resumes(
    sim_env, invoke, futures_connection, iam
):
    """GIVEN a filled entry not yet settled WHEN the reconciler function is invoked with 1 s left before its
    timeout THEN it sends nothing to Binance and stops as on a spent budget, leaving the record for later (a
    timeout never cuts a run between a read and its write); the next invocation, with time, settles it."""
    entry = _open_long(invoke, futures_connection.id)["client_order_id"]
    before = len(sim_env.journal)

    summary = _scheduled_run(iam, remaining_ms=1_000)

    assert len(sim_env.journal) == before and summary["stopped_on_budget"] == 1
    assert get_order_record(USER_A, entry).fills is None
    _scheduled_run(iam, remaining_ms=240_000)
    assert [f["qty"] for f in get_order_record(USER_A, entry).fills] == ["0.002"]
