"""Deleting a connection with orders of ours on Binance, against moto and the simulator over loopback.

What would open a position is cancelled while the key still exists; what only reduces one (the stops
of an open position, a reduce-only order) stays on Binance and is named in the answer; every record
leaves the reconciler's index, marked unmanaged, so nothing is read for it again.
"""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import requests
from klineo.binance import Credentials, KeyType
from klineo.binance import client as client_module
from klineo.binance.client import BinanceClient
from klineo.binance.ratelimit import RateLimiter
from klineo.errors import KlineoError
from klineo.models import paging
from klineo.services import connection_orders, reconcile
from klineo.services.protective_siblings import protective_client_algo_id
from klineo.services.strategy_protection import arm_strategy_protection
from klineo.store import connections as connection_store
from klineo.store.order_history import list_unsettled
from klineo.store.orders import OrderRecord, get_order_record, get_order_records, put_new_record
from klineo.store.secrets import put_new_version

from tests.helpers import load_event, with_user
from tests.integration.api.conftest import USER_A, aws_refusing, connection_event, dynamodb_requests
from tests.integration.futures.helpers import (
    body_of,
    many_fill_orders,
    new_key,
    order_body,
    order_event,
)

ALGO_PATH = "/fapi/v1/algoOrder"
# The answer's bound lowered to some 10 orders (each some 700 bytes): thousands of records in moto take
# minutes.
ANSWER_BYTES = 8 * 1024
# Each mark of a record as unmanaged waits for this many to be in flight at once.
MARKS_IN_FLIGHT = 5


def _delete(invoke: Any, connection_id: str) -> dict[str, Any]:
    response = invoke("connection_delete", connection_event("connection_delete", connection_id, USER_A))
    assert response["statusCode"] == 200, response["body"]
    return body_of(response)


def _place(invoke: Any, connection_id: str, **changes: Any) -> dict[str, Any]:
    response = invoke("futures_order", order_event(order_body(connection_id, **changes), key=new_key()))
    assert response["statusCode"] == 200, response["body"]
    return body_of(response)


def _market_long(invoke: Any, connection_id: str, **protection: Any) -> dict[str, Any]:
    return _place(invoke, connection_id, type="MARKET", price=None, timeInForce=None, quantity="0.002",
                  **protection)


def _mark(sim: Any) -> Decimal:
    return Decimal(str(sim.mark_price("BTCUSDT")))


def _state(sim: Any, connection: Any) -> Any:
    return sim.state.futures.state_for(sim.account(connection.account.id), time.time() * 1000)


def _order_status(sim: Any, connection: Any, client_order_id: str) -> str:
    (order,) = [o for o in _state(sim, connection).orders.values() if o.client_order_id == client_order_id]
    return order.status


def _algo_status(sim: Any, connection: Any, client_algo_id: str) -> str:
    (algo,) = [a for a in _state(sim, connection).algo_orders.values() if a.client_algo_id == client_algo_id]
    return algo.status


def _position_amount(sim: Any, connection: Any) -> Decimal:
    account = sim.account(connection.account.id)
    rows = sim.state.futures.position_risk(account, "BTCUSDT", time.time() * 1000, 3)
    return sum((Decimal(r["positionAmt"]) for r in rows), Decimal(0))


def _ids(orders: list[dict[str, Any]]) -> list[str]:
    return sorted(o["client_order_id"] for o in orders)


def _algo_posts(sim: Any, since: int = 0) -> list[Any]:
    return [r for r in sim.journal[since:] if r.method == "POST" and r.path == ALGO_PATH]


def _price(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.1")), "f")


def _resting_entry_with_stops(sim: Any, invoke: Any, connection_id: str) -> tuple[str, str]:
    """A LIMIT BUY just under the mark with a stop-loss and take-profit, resting; (its id, its limit)."""
    limit = _price(_mark(sim) * Decimal("0.99"))
    entry = _place(invoke, connection_id, quantity="0.002", price=limit, stop_loss={"percent": "2"},
                   take_profit={"percent": "2"})
    assert entry["status"] == "NEW" and _algo_posts(sim) == []
    return entry["client_order_id"], limit


def test_delete_cancels_a_resting_entry_and_lists_it(sim_env, invoke, futures_connection):
    """GIVEN a resting LIMIT entry with a stop-loss WHEN the connection is deleted THEN the entry is
    cancelled on Binance before the key goes (nobody could place its stop once it filled), the answer
    lists it CANCELED, and its record is settled."""
    entry = _place(invoke, futures_connection.id, stop_loss={"price": "19000"})["client_order_id"]

    answer = _delete(invoke, futures_connection.id)

    assert _ids(answer["orders_cancelled"]) == [entry]
    assert answer["orders_cancelled"][0]["status"] == "CANCELED"
    assert (answer["orders_left_open"], answer["orders_checked"]) == ([], True)
    assert _order_status(sim_env, futures_connection, entry) == "CANCELED"
    assert [r for r in sim_env.journal if r.method == "POST" and r.path == ALGO_PATH] == []
    record = get_order_record(USER_A, entry)
    assert (record.status, record.fills, record.unmanaged_since) == ("CANCELED", [], None)
    assert list(list_unsettled()) == []


def test_delete_keeps_the_stops_of_an_open_position_and_stops_following_them(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN an open LONG with its stop-loss and take-profit WHEN the connection is deleted THEN both stay
    armed on Binance (cancelling them would leave the position unprotected), the answer lists them as left
    open, their records leave the reconciler's index marked unmanaged, and no later run reads them."""
    entry = _market_long(invoke, futures_connection.id, stop_loss={"percent": "3"},
                         take_profit={"percent": "3"})
    stops = _ids([{"client_order_id": p["client_algo_id"]} for p in entry["protective_orders"]])

    answer = _delete(invoke, futures_connection.id)

    assert answer["orders_cancelled"] == [] and answer["orders_checked"] is True
    assert _ids(answer["orders_left_open"]) == stops
    for left in answer["orders_left_open"]:
        assert left["status"] == "NEW" and left["unmanaged_reason"] == "connection_deleted"
        assert left["unmanaged_since"] and left["kind"] == "algo"
        assert _algo_status(sim_env, futures_connection, left["client_order_id"]) == "NEW"
    assert _position_amount(sim_env, futures_connection) == Decimal("0.002")
    assert list(list_unsettled()) == []
    calls = len(sim_env.journal)
    reconcile()
    assert len(sim_env.journal) == calls
    assert get_order_record(USER_A, stops[0]).unmanaged_reason == "connection_deleted"


def test_delete_cancels_the_stop_loss_whose_take_profit_already_fired(sim_env, invoke, futures_connection):
    """GIVEN a LONG whose take-profit filled (the position is 0) but whose stop-loss is still armed WHEN
    the connection is deleted THEN the stop-loss is cancelled: left alone, it could close a position the
    user opens later by hand."""
    entry = _market_long(invoke, futures_connection.id, stop_loss={"percent": "3"},
                         take_profit={"percent": "3"})
    by_role = {p["role"]: p for p in entry["protective_orders"]}
    sim_env.set_mark_price("BTCUSDT", float(Decimal(by_role["take_profit"]["trigger_price"]) + 1))
    assert _position_amount(sim_env, futures_connection) == 0

    answer = _delete(invoke, futures_connection.id)

    stop_loss = by_role["stop_loss"]["client_algo_id"]
    assert _ids(answer["orders_cancelled"]) == [stop_loss]
    assert (answer["orders_left_open"], answer["orders_checked"]) == ([], True)
    assert _algo_status(sim_env, futures_connection, stop_loss) == "CANCELED"
    assert list(list_unsettled()) == []


def test_delete_keeps_a_resting_reduce_only_order(sim_env, invoke, futures_connection):
    """GIVEN an open LONG and a resting reduce-only LIMIT SELL above the mark WHEN the connection is
    deleted THEN the reduce-only order stays on Binance (it can only shrink the position) and is listed."""
    _market_long(invoke, futures_connection.id)
    price = format((_mark(sim_env) * Decimal("1.2")).quantize(Decimal("0.1")), "f")
    exit_order = _place(invoke, futures_connection.id, side="SELL", quantity="0.002", price=price,
                        reduceOnly=True)["client_order_id"]

    answer = _delete(invoke, futures_connection.id)

    assert answer["orders_cancelled"] == []
    assert _ids(answer["orders_left_open"]) == [exit_order]
    assert _order_status(sim_env, futures_connection, exit_order) == "NEW"


def test_delete_with_a_key_binance_refuses_still_deletes_and_says_orders_were_not_checked(
    sim_env, invoke, futures_connection
):
    """GIVEN a resting entry and a stored secret Binance no longer accepts WHEN the connection is deleted
    THEN it is deleted all the same (a leaked key must go at once), the answer lists the entry as left
    open with orders_checked false, and its record leaves the index."""
    entry = _place(invoke, futures_connection.id)["client_order_id"]
    connection = connection_store.get_connection(USER_A, futures_connection.id)
    version = str(uuid.uuid4())
    put_new_version(connection.secret_name,
                    Credentials(futures_connection.account.api_key, "0" * 64, KeyType.HMAC), version)
    connection_store.replace_key(USER_A, futures_connection.id, key_type="hmac",
                                 api_key_masked=connection.api_key_masked, credentials_version=version,
                                 last_test=connection.last_test or {})

    answer = _delete(invoke, futures_connection.id)

    assert answer["deleted"] is True and answer["orders_checked"] is False
    assert answer["orders_cancelled"] == [] and _ids(answer["orders_left_open"]) == [entry]
    assert connection_store.get_connection(USER_A, futures_connection.id) is None
    assert _order_status(sim_env, futures_connection, entry) == "NEW"
    assert list(list_unsettled()) == []


def test_delete_past_its_budget_sends_nothing_more_and_lets_go(sim_env, invoke, futures_connection,
                                                               monkeypatch):
    """GIVEN a resting entry and no request weight left for the wind-down WHEN the connection is deleted
    THEN nothing is sent to Binance, the delete completes, and the entry is listed as left open, unchecked."""
    entry = _place(invoke, futures_connection.id)["client_order_id"]
    monkeypatch.setattr(connection_orders, "WIND_DOWN_WEIGHT", 0)
    calls = len(sim_env.journal)

    answer = _delete(invoke, futures_connection.id)

    assert len(sim_env.journal) == calls
    assert answer["orders_checked"] is False and _ids(answer["orders_left_open"]) == [entry]
    assert list(list_unsettled()) == []


def test_the_answer_lists_orders_without_their_fills(sim_env, invoke, futures_connection, monkeypatch):
    """GIVEN 3 resting reduce-only orders each partly filled by FILLS_KEPT fills (some 270 KB each with their
    fills) and no weight for the wind-down WHEN the connection is deleted THEN the answer lists all 3 as left
    open with their fill counts and no fills, in a few KB (before 7759c48 it carried every fill: 25 such
    orders made a 6.7 MB payload, past Lambda's 6 MiB, a 5xx), and GET /futures/orders still lists their
    fills. Three orders, not 25: each takes moto some 5 s to write and read back."""
    ids = many_fill_orders(futures_connection.id, 3, status="PARTIALLY_FILLED",
                           params={"side": "SELL", "type": "LIMIT", "quantity": "1", "price": "99000",
                                   "reduceOnly": "true"})
    monkeypatch.setattr(connection_orders, "WIND_DOWN_WEIGHT", 0)
    event = connection_event("connection_delete", futures_connection.id, USER_A)

    response = invoke("connection_delete", event)

    payload = len(json.dumps(response).encode())
    assert response["statusCode"] == 200 and payload < ANSWER_BYTES, f"a {payload:,}-byte payload"
    answer = body_of(response)
    assert _ids(answer["orders_left_open"]) == ids and answer["orders_cancelled"] == []
    left_open = answer["orders_left_open"]
    assert {(order["status"], order["fills_count"]) for order in left_open} == {("PARTIALLY_FILLED", 1000)}
    assert all("fills" not in order for order in left_open)
    history = invoke("futures_orders", with_user(load_event("futures_orders"), USER_A))
    assert all(len(order["fills"]) == 1000 for order in body_of(history)["orders"])


def test_an_answer_of_more_orders_than_fit_lists_the_first_and_counts_them_all(
        sim_env, invoke, futures_connection, monkeypatch):
    """GIVEN 30 resting reduce-only orders, no weight for the wind-down and the answer's bound lowered to
    some 10 of them WHEN the connection is deleted THEN a 200 under the bound lists the first that fit, with
    the full counts and orders_shortened set, and GET /futures/orders?connection_id= lists all 30 (before:
    every order in one answer whatever its size: past some 7,000 at the real bound, a 5xx for a delete
    that had finished)."""
    ids = _resting_reduce_only(futures_connection.id, 30)
    monkeypatch.setattr(connection_orders, "WIND_DOWN_WEIGHT", 0)
    monkeypatch.setattr(paging, "PAGE_BYTES_MAX", ANSWER_BYTES)
    event = connection_event("connection_delete", futures_connection.id, USER_A)

    response = invoke("connection_delete", event)

    payload = len(json.dumps(response).encode())
    assert response["statusCode"] == 200 and payload < ANSWER_BYTES + 2048, f"a {payload:,}-byte payload"
    answer = body_of(response)
    listed = [o["client_order_id"] for o in answer["orders_left_open"]]
    assert 0 < len(listed) < 30 and listed == sorted(listed) and set(listed) <= set(ids)
    assert _counts(answer) == (True, 30, 0)
    history = _history_of(invoke, futures_connection.id)
    assert sorted(o["client_order_id"] for o in history) == ids
    assert {o["unmanaged_reason"] for o in history} == {"connection_deleted"}


def test_an_answer_within_its_bound_lists_every_order_and_is_not_shortened(
        sim_env, invoke, futures_connection, monkeypatch):
    """GIVEN 3 resting reduce-only orders and no weight for the wind-down WHEN the connection is deleted
    THEN all 3 are listed, orders_shortened is false and the counts are the lists' lengths."""
    ids = _resting_reduce_only(futures_connection.id, 3)
    monkeypatch.setattr(connection_orders, "WIND_DOWN_WEIGHT", 0)

    answer = _delete(invoke, futures_connection.id)

    assert _ids(answer["orders_left_open"]) == ids
    assert _counts(answer) == (False, 3, 0)


def _counts(answer: dict[str, Any]) -> tuple[bool, int, int]:
    """(orders_shortened, orders_left_open_count, orders_cancelled_count) of a delete's answer."""
    return answer["orders_shortened"], answer["orders_left_open_count"], answer["orders_cancelled_count"]


def _resting_reduce_only(connection_id: str, count: int) -> list[str]:
    """``count`` resting reduce-only LIMIT SELL records of USER_A, written straight to the store: their
    ids."""
    params = {"side": "SELL", "type": "LIMIT", "quantity": "0.002", "price": "99000", "reduceOnly": "true"}
    ids = []
    for n in range(count):
        cid, created = f"reduce-only-{n:03d}", f"2026-12-01T11:00:{n % 60:02d}.000Z"
        assert put_new_record(OrderRecord(
            user_id=USER_A, client_order_id=cid, connection_id=connection_id, symbol="BTCUSDT", request={},
            params=params, status="NEW", attempt_ms=0, created_at=created, updated_at=created,
            order_id=4_000_000_000 + n))
        ids.append(cid)
    return ids


def _history_of(invoke: Any, connection_id: str) -> list[dict[str, Any]]:
    """Every order of the connection as GET /futures/orders?connection_id= lists them, page after page."""
    orders, cursor = [], None
    while True:
        event = with_user(load_event("futures_orders"), USER_A)
        query = {"connection_id": connection_id, **({"cursor": cursor} if cursor else {})}
        event["queryStringParameters"], event["rawQueryString"] = query, urlencode(query)
        page = body_of(invoke("futures_orders", event))
        orders += page["orders"]
        cursor = page.get("next_cursor")
        if cursor is None:
            return orders


def _marked_unmanaged(params: dict[str, Any]) -> str | None:
    """The record id an UpdateItem marks unmanaged (None: another UpdateItem)."""
    if "unmanaged_since" not in params.get("ExpressionAttributeNames", {}).values():
        return None
    return params["Key"]["sk"]["S"].removeprefix("ORDER#")


def test_the_records_let_go_are_marked_at_once_and_answered_as_before(
        sim_env, invoke, futures_connection, monkeypatch):
    """GIVEN 30 resting reduce-only records and no weight for the wind-down WHEN the connection is deleted
    THEN their marks as unmanaged are in flight MARKS_IN_FLIGHT at once, one each, every record leaves the
    index marked connection_deleted with its state kept, and the answer lists all 30 left open in order
    (before: one UpdateItem after another, ~5-10 ms each on DynamoDB: a few thousand records ran the 20 s
    delete out of time half way, a 5xx on a connection left being deleted; here the first mark waited
    alone and broke the barrier, a 500)."""
    ids = _resting_reduce_only(futures_connection.id, 30)
    monkeypatch.setattr(connection_orders, "WIND_DOWN_WEIGHT", 0)

    with dynamodb_requests("UpdateItem", _marked_unmanaged, MARKS_IN_FLIGHT) as sent:
        response = invoke("connection_delete", connection_event("connection_delete", futures_connection.id,
                                                                USER_A))

    assert response["statusCode"] == 200, response["body"][:300]
    answer = body_of(response)
    assert [o["client_order_id"] for o in answer["orders_left_open"]] == ids
    assert _counts(answer) == (False, 30, 0) and answer["orders_checked"] is False
    assert sorted(sent) == ids
    records = get_order_records(USER_A, ids)
    assert {(r.status, r.unmanaged_reason) for r in records.values()} == {("NEW", "connection_deleted")}
    assert all(r.unmanaged_since for r in records.values()) and list(list_unsettled()) == []
    assert connection_store.get_connection(USER_A, futures_connection.id) is None


def test_a_delete_whose_marks_failed_half_way_is_finished_by_a_repeat(
        sim_env, invoke, futures_connection, monkeypatch):
    """GIVEN 30 resting reduce-only records, no weight for the wind-down, and DynamoDB throttling the marks
    of the last 10 past botocore's retries WHEN the connection is deleted THEN a retryable 503 leaves the
    connection being deleted with its key and those records in the index; a repeated DELETE marks them
    and finishes, and every record ends marked connection_deleted, once."""
    ids = _resting_reduce_only(futures_connection.id, 30)
    refused = set(ids[20:])
    monkeypatch.setattr(connection_orders, "WIND_DOWN_WEIGHT", 0)
    event = connection_event("connection_delete", futures_connection.id, USER_A)

    with aws_refusing("UpdateItem", "dynamodb", when=lambda params: _marked_unmanaged(params) in refused):
        response = invoke("connection_delete", event)

    assert response["statusCode"] == 503, response["body"][:300]
    connection = connection_store.get_connection(USER_A, futures_connection.id)
    assert connection is not None and connection.deleting_since is not None
    assert connection_store.connection_credentials(connection).api_key
    assert refused <= {r.client_order_id for r in list_unsettled()}
    answer = _delete(invoke, futures_connection.id)
    assert refused <= set(_ids(answer["orders_left_open"]))
    assert connection_store.get_connection(USER_A, futures_connection.id) is None
    records = get_order_records(USER_A, ids)
    assert {(r.status, r.unmanaged_reason) for r in records.values()} == {("NEW", "connection_deleted")}
    assert list(list_unsettled()) == []


def test_a_repeated_delete_says_it_finished_one_begun_earlier_and_lists_only_what_it_did(
        sim_env, invoke, futures_connection, monkeypatch):
    """GIVEN a DELETE that stopped part way (a retryable 503) after letting go of 20 of 30 resting reduce-only
    orders WHEN it is repeated THEN the repeat's answer says it finished a delete begun earlier (at the
    connection's deleting_since), so its lists and counts, the 10 it let go itself, are not taken for all the
    orders left open (before: nothing told them apart from a whole delete's)."""
    ids = _resting_reduce_only(futures_connection.id, 30)
    refused = set(ids[20:])
    monkeypatch.setattr(connection_orders, "WIND_DOWN_WEIGHT", 0)
    event = connection_event("connection_delete", futures_connection.id, USER_A)
    with aws_refusing("UpdateItem", "dynamodb", when=lambda params: _marked_unmanaged(params) in refused):
        assert invoke("connection_delete", event)["statusCode"] == 503
    began = connection_store.get_connection(USER_A, futures_connection.id).deleting_since

    answer = _delete(invoke, futures_connection.id)

    assert began is not None and answer["earlier_attempt_since"] == began
    assert _ids(answer["orders_left_open"]) == sorted(refused) and _counts(answer) == (False, 10, 0)
    history = {o["client_order_id"]: o for o in _history_of(invoke, futures_connection.id)}
    assert {history[i]["unmanaged_reason"] for i in ids} == {"connection_deleted"}


def test_a_first_delete_says_no_earlier_attempt(sim_env, invoke, futures_connection):
    """GIVEN a connection never deleted before WHEN deleted THEN its answer's earlier_attempt_since is null:
    its lists are all it did."""
    assert _delete(invoke, futures_connection.id)["earlier_attempt_since"] is None


def test_a_short_budget_is_spent_on_cancelling_entries_first(sim_env, invoke, futures_connection,
                                                              monkeypatch):
    """GIVEN two resting entries and an open LONG with its stops WHEN the wind-down may spend only 2
    weight THEN both entries are cancelled (their cancel answers settle them, CANCELED with nothing
    executed) before anything is read, and the stops are left open with orders_checked false."""
    entries = sorted(_place(invoke, futures_connection.id, price=price)["client_order_id"]
                     for price in ("20000", "20100"))
    _market_long(invoke, futures_connection.id, stop_loss={"percent": "3"}, take_profit={"percent": "3"})
    monkeypatch.setattr(connection_orders, "WIND_DOWN_WEIGHT", 2)
    calls = len(sim_env.journal)

    answer = _delete(invoke, futures_connection.id)

    sent = [(r.method, r.path) for r in sim_env.journal[calls:]]
    assert sent == [("DELETE", "/fapi/v1/order")] * 2
    assert _ids(answer["orders_cancelled"]) == entries
    assert {o["status"] for o in answer["orders_cancelled"]} == {"CANCELED"}
    assert [o["kind"] for o in answer["orders_left_open"]] == ["algo", "algo"]
    assert answer["orders_checked"] is False
    for entry in entries:
        assert _order_status(sim_env, futures_connection, entry) == "CANCELED"
        assert get_order_record(USER_A, entry).fills == []


def test_delete_cancels_a_conditional_entry_that_would_open_a_position(sim_env, invoke, futures_connection):
    """GIVEN a resting STOP_MARKET BUY entry (not reduce-only, no position) WHEN the connection is deleted
    THEN it is cancelled like a resting LIMIT entry: once fired it would open a position nobody manages."""
    mark = Decimal(str(sim_env.mark_price("BTCUSDT")))
    trigger = format((mark * Decimal("1.1")).quantize(Decimal("0.1")), "f")
    body = order_body(futures_connection.id, type="STOP_MARKET", price=None, timeInForce=None,
                      quantity="0.002", triggerPrice=trigger, workingType="MARK_PRICE")
    placed = invoke("futures_order", order_event(body, key=new_key()))
    assert placed["statusCode"] == 200, placed["body"]
    entry = body_of(placed)["client_order_id"]

    answer = _delete(invoke, futures_connection.id)

    assert answer["orders_left_open"] == [] and _ids(answer["orders_cancelled"]) == [entry]
    assert _algo_status(sim_env, futures_connection, entry) == "CANCELED"
    assert get_order_record(USER_A, entry).status == "CANCELED" and list(list_unsettled()) == []


class _FakeTime:
    """A clock that only moves when a request hangs until its timeout or the client sleeps."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class _HangingSession:
    """Binance accepting connections and never answering: every request lasts its read timeout."""

    def __init__(self, clock: _FakeTime) -> None:
        self.clock, self.timeouts, self.proxies = clock, [], {}

    def send(self, request: Any, timeout: Any = None, **_: Any) -> Any:
        self.timeouts.append(timeout)
        self.clock.now += timeout[1]
        raise requests.exceptions.ReadTimeout("no answer")

    def close(self) -> None:
        pass


def test_the_wind_down_ends_within_its_time_budget_when_binance_hangs(sim_env, invoke, futures_connection,
                                                                      monkeypatch):
    """GIVEN Binance accepting connections and never answering WHEN a connection with a resting entry is
    wound down THEN the client's timeouts and retry waits end with the 8 s budget, so the 20 s delete
    still reaches deleting the key."""
    placed = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))
    assert placed["statusCode"] == 200, placed["body"]
    clock = _FakeTime()
    session = _HangingSession(clock)
    hanging = BinanceClient("futures", "demo", base_url="https://fapi.invalid", session=session,
                            rate_limiter=RateLimiter(clock=clock.time), clock=clock.time, sleep=clock.sleep)
    for module in (client_module, connection_orders, reconcile):
        monkeypatch.setattr(module, "time", clock)
    monkeypatch.setattr(reconcile, "futures_client", lambda connection: hanging)

    started = clock.now
    outcome = connection_orders.wind_down_orders(
        USER_A, futures_connection.id, connection_store.mark_deleting(USER_A, futures_connection.id))

    assert outcome.checked is False and session.timeouts
    assert clock.now - started <= connection_orders.WIND_DOWN_SECONDS + 0.5


def test_an_order_racing_the_wind_down_is_refused(sim_env, invoke, futures_connection, monkeypatch):
    """GIVEN a connection being deleted with an order to wind down WHEN an API entry and a reduce-only
    close arrive while the wind-down runs THEN both are refused because the connection is being deleted
    (409 connection_deleting, checked in their claim transaction), so no order is placed after the list
    of orders to wind down was read."""
    _place(invoke, futures_connection.id)
    racing: list[dict[str, Any]] = []
    cancel_orders = reconcile.Reconciler.cancel_orders

    def cancel_while_orders_arrive(self, records):
        for changes in ({}, {"side": "SELL", "reduceOnly": True}):
            body = order_body(futures_connection.id, **changes)
            racing.append(invoke("futures_order", order_event(body, key=new_key())))
        return cancel_orders(self, records)

    monkeypatch.setattr(reconcile.Reconciler, "cancel_orders", cancel_while_orders_arrive)

    answer = _delete(invoke, futures_connection.id)

    refusals = [(r["statusCode"], body_of(r)["error"]["field"]) for r in racing]
    assert refusals == [(409, "connection_deleting")] * 2
    assert len(answer["orders_cancelled"]) == 1 and answer["orders_left_open"] == []


def test_reconciler_lets_go_of_the_records_of_a_connection_already_gone(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a resting entry whose connection item is gone (deleted before its orders were wound down)
    WHEN the reconciler runs THEN the record is marked unmanaged and leaves the index, instead of costing
    a read on every run for good."""
    entry = _place(invoke, futures_connection.id)["client_order_id"]
    connection_store.delete_connection(USER_A, futures_connection.id)

    summary = reconcile()

    assert summary["unmanaged"] == 1
    assert get_order_record(USER_A, entry).unmanaged_reason == "connection_deleted"
    assert list(list_unsettled()) == []


def test_a_reconciler_run_begun_before_the_delete_places_no_stop_after_it(
    sim_env, invoke, futures_connection, iam, monkeypatch
):
    """GIVEN a resting LIMIT entry with a stop-loss and take-profit, and a scheduled reconciler run that has
    loaded the connection's account (key included) and read the entry's record
    WHEN the connection is deleted (its wind-down has no budget left, so it lets the entry go as left open),
    the entry then fills on Binance, and the run goes on to settle the record it read
    THEN nothing reaches Binance after the delete answered: the run's record write of each stop is refused
    with the connection being deleted, so nothing is sent and no record of them exists; the entry's record
    stays let go (unmanaged, out of the index) with the state the run read, and no error loop follows."""
    entry, limit = _resting_entry_with_stops(sim_env, invoke, futures_connection.id)
    run = reconcile.Reconciler()
    with iam.acting_as("order_reconciler"):
        run.account(USER_A, futures_connection.id)
        records = list(list_unsettled())
    assert [r.client_order_id for r in records] == [entry]
    monkeypatch.setattr(connection_orders, "WIND_DOWN_WEIGHT", 0)

    answer = _delete(invoke, futures_connection.id)
    answered = len(sim_env.journal)
    sim_env.set_mark_price("BTCUSDT", float(Decimal(limit) - 5))
    with iam.acting_as("order_reconciler"):
        run.settle(records)

    assert _ids(answer["orders_left_open"]) == [entry] and answer["orders_checked"] is False
    assert _algo_posts(sim_env, answered) == [] and _algo_posts(sim_env) == []
    stops = [protective_client_algo_id(entry, role) for role in ("stop_loss", "take_profit")]
    assert get_order_records(USER_A, stops) == {}
    record = get_order_record(USER_A, entry)
    assert (record.status, record.unmanaged_reason) == ("FILLED", "connection_deleted")
    assert list(list_unsettled()) == []
    assert run.counts["errors"] == 0 and run.counts["protection_failed"] == 0


def test_a_strategy_turn_in_flight_places_no_stop_after_the_wind_down(
    sim_env, invoke, futures_connection, iam
):
    """GIVEN a live strategy's turn that read its connection, then saw its entry fill, before the connection
    was deleted WHEN the turn arms the entry's stop-loss after the wind-down answered (the key still in its
    container's cache) THEN the protective order's record write is refused with the connection being
    deleted: nothing is sent to Binance and nothing recorded."""
    entry = _market_long(invoke, futures_connection.id)["client_order_id"]
    connection = connection_store.get_connection(USER_A, futures_connection.id)
    mark = _mark(sim_env)

    with iam.acting_as("connection_delete"):
        outcome = connection_orders.wind_down_orders(
            USER_A, futures_connection.id, connection_store.mark_deleting(USER_A, futures_connection.id))
    answered = len(sim_env.journal)
    with iam.acting_as("strategy_worker"):
        try:
            arm_strategy_protection(connection, "strategy-1", "BTCUSDT", entry, "BUY", Decimal("0.002"), mark,
                                    {"stop_loss": (mark * Decimal("0.97")).quantize(Decimal("0.1"))})
        except KlineoError as exc:
            refused = exc
        else:
            refused = None

    assert outcome.left_open == [] and _algo_posts(sim_env, answered) == []
    assert refused is not None and refused.field == "connection_deleting" and not refused.retryable
    assert get_order_record(USER_A, protective_client_algo_id(entry, "stop_loss")) is None


def test_the_wind_down_still_places_the_stops_of_an_entry_that_filled_and_lists_them(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a LIMIT entry with a stop-loss and take-profit that filled while nobody read it WHEN the
    connection is deleted THEN the wind-down itself (holding the delete's token, past the deletion mark set
    before it began) places both stops, keeps them (they guard the open position) and lists them as left
    open; nothing is placed afterwards by a later reconciler run."""
    entry, limit = _resting_entry_with_stops(sim_env, invoke, futures_connection.id)
    sim_env.set_mark_price("BTCUSDT", float(Decimal(limit) - 5))

    answer = _delete(invoke, futures_connection.id)
    answered = len(sim_env.journal)
    reconcile()

    stops = sorted(protective_client_algo_id(entry, role) for role in ("stop_loss", "take_profit"))
    assert _ids(answer["orders_left_open"]) == stops and answer["orders_checked"] is True
    assert {o["status"] for o in answer["orders_left_open"]} == {"NEW"}
    assert len(_algo_posts(sim_env)) == 2 and len(sim_env.journal) == answered
    for stop in stops:
        assert _algo_status(sim_env, futures_connection, stop) == "NEW"
    assert get_order_record(USER_A, entry).status == "FILLED"
    assert _position_amount(sim_env, futures_connection) == Decimal("0.002")
    assert list(list_unsettled()) == []
