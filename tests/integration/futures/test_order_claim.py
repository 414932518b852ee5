"""The order claim transaction against moto and the simulator: gates named from cancellation reasons,
purged attempts never resent, failed lookups answered unknown_outcome, a late "does not exist" never taken
for final, and the route's deadline."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Callable

import boto3
import pytest
from klineo.services import futures as futures_service
from klineo.services import orders as order_core
from klineo.services.orders import PURGE_AFTER_MS, idempotent_client_order_id
from klineo.services.protective import STOP_SENT_WITHIN_MS
from klineo.services.protective_siblings import protective_client_algo_id
from klineo.settings import get_settings
from klineo.store.connections import (
    delete_connection,
    disable_connection,
    mark_deleting,
    set_futures_enabled,
    update_settings,
)
from klineo.store.order_claim import (
    ConnectionGuard,
    claim_protective_order,
    claim_protective_resend,
    forget_connection,
)
from klineo.store.orders import KIND_ALGO, STATUS_UNKNOWN_PURGED, get_order_record, pending_record

from tests.helpers import load_event, with_user
from tests.integration.api.conftest import USER_A, LambdaContext, at_path
from tests.integration.futures.helpers import (
    ORDER_PATH,
    age_record,
    body_of,
    exchange_orders,
    fresh_handler,
    lease_run_out,
    new_key,
    order_body,
    order_event,
    order_posts,
)


def _warm(invoke, connection_id: str) -> None:
    """One order placed: this container now holds the connection item in its cache."""
    response = invoke("futures_order", order_event(order_body(connection_id), key=new_key()))
    assert response["statusCode"] == 200, response["body"]


@pytest.mark.parametrize(
    ("change", "status", "gate"),
    [
        (lambda c: update_settings(USER_A, c, {"kill_switch": True}), 409, "connection_kill_switch"),
        (lambda c: disable_connection(USER_A, c, "test"), 409, "connection_disabled"),
        (lambda c: update_settings(USER_A, c, {"max_notional_usdt": "10"}), 422, "max_notional_usdt"),
        (lambda c: set_futures_enabled(USER_A, c, False), 409, "futures_disabled"),
        (lambda c: mark_deleting(USER_A, c), 409, "connection_deleting"),
    ],
    ids=["connection_kill_switch", "connection_disabled", "max_notional_usdt", "futures_disabled",
         "connection_deleting"],
)
def test_gate_changed_after_the_connection_was_cached_is_named_by_the_claim(
    sim_env, invoke, futures_connection, change, status, gate
):
    """GIVEN a warm container WHEN another writer flips a gate on the connection THEN the claim
    transaction refuses, the gate is named as on a fresh read, and nothing is sent or recorded."""
    _warm(invoke, futures_connection.id)
    change(futures_connection.id)
    posts = len(order_posts(sim_env))
    key = new_key()

    response = invoke("futures_order", order_event(order_body(futures_connection.id), key=key))

    assert response["statusCode"] == status, response["body"]
    assert body_of(response)["error"]["field"] == gate
    assert len(order_posts(sim_env)) == posts
    assert get_order_record(USER_A, idempotent_client_order_id(USER_A, key)) is None


def test_futures_switched_off_after_caching_still_lets_a_reduce_only_order_through(
    sim_env, invoke, futures_connection
):
    """GIVEN a warm container holding a LONG WHEN another writer switches futures off THEN the claim of a
    reduce-only SELL commits (futures off stops new exposure only) and the order reaches Binance."""
    market = order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None)
    assert invoke("futures_order", order_event(market, key=new_key()))["statusCode"] == 200  # warm, and LONG
    set_futures_enabled(USER_A, futures_connection.id, False)
    reduce = order_body(futures_connection.id, side="SELL", type="MARKET", price=None, timeInForce=None,
                        reduceOnly=True)
    posts = len(order_posts(sim_env))

    response = invoke("futures_order", order_event(reduce, key=new_key()))

    assert response["statusCode"] == 200, response["body"]
    assert len(order_posts(sim_env)) == posts + 1


def test_limit_raised_after_caching_lets_the_order_through(sim_env, invoke, futures_connection):
    """GIVEN a warm container WHEN the limit is raised elsewhere THEN the claim sees it and the order goes."""
    _warm(invoke, futures_connection.id)
    update_settings(USER_A, futures_connection.id, {"max_notional_usdt": "20000"})

    response = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))

    assert response["statusCode"] == 200, response["body"]
    assert len(order_posts(sim_env)) == 2


def test_purged_order_is_never_resent(sim_env, invoke, futures_connection):
    """GIVEN an unsettled attempt 4 days old whose EXPIRED order Binance has since forgotten WHEN the key
    comes again (twice) THEN 409 saying it will never be sent, the record is UNKNOWN_PURGED, no POST."""
    body = order_body(futures_connection.id, price="20000", timeInForce="IOC")  # expires unfilled
    event = order_event(body, key=new_key())
    first = body_of(invoke("futures_order", event))
    assert first["status"] == "EXPIRED"
    four_days = PURGE_AFTER_MS + 24 * 3600 * 1000
    age_record(first["client_order_id"], four_days)
    sim_env.age_orders(four_days)

    again = invoke("futures_order", event)
    journal = len(sim_env.journal)
    third = invoke("futures_order", event)

    for response in (again, third):
        assert response["statusCode"] == 409, response["body"]
        error = body_of(response)["error"]
        assert error["category"] == "conflict" and error["retryable"] is False
        assert "never be sent again" in error["message"] and first["client_order_id"] in error["message"]
    assert len(order_posts(sim_env)) == 1
    assert len(sim_env.journal) == journal  # the final state answers without asking Binance
    assert get_order_record(USER_A, first["client_order_id"]).status == STATUS_UNKNOWN_PURGED


@pytest.mark.parametrize("fault", ["http_429", "http_503_unavailable", "http_418"])
def test_retry_whose_lookup_fails_answers_unknown_outcome(
    sim_env, invoke, futures_connection, futures_clients, fault
):
    """GIVEN an order left unknown WHEN the retry's lookup fails (429, 503, 418) THEN 504 unknown_outcome
    naming the clientOrderId, never the lookup's category, and no second POST."""
    futures_clients(read_timeout=0.5, max_retries=0)
    sim_env.faults.add("delay_after", method="POST", path=ORDER_PATH, delay_ms=1500)
    sim_env.faults.add("http_503_unavailable", count=100, method="GET", path=ORDER_PATH)
    event = order_event(order_body(futures_connection.id), key=new_key())
    assert invoke("futures_order", event)["statusCode"] == 504
    sim_env.faults.clear()
    sim_env.faults.add(fault, count=100, method="GET", path=ORDER_PATH)

    again = invoke("futures_order", event)

    assert again["statusCode"] == 504, again["body"]
    error = body_of(again)["error"]
    assert error["category"] == "unknown_outcome"
    client_order_id = re.search(r"clientOrderId (\S+)", error["message"]).group(1)
    assert get_order_record(USER_A, client_order_id).status == "UNKNOWN"
    assert len(order_posts(sim_env)) == 1


@dataclasses.dataclass(frozen=True)
class _ShortContext(LambdaContext):
    """An invocation with 4 s left (or ``remaining_ms``)."""

    remaining_ms: int = 4_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_order_answers_unknown_outcome_before_the_invocation_ends(sim_env, futures_connection):
    """GIVEN 4 s left and Binance answering after 8 s WHEN ordering THEN 504 unknown_outcome with the
    clientOrderId within the 4 s, and the record is UNKNOWN (a retry with the key settles it)."""
    sim_env.faults.add("delay_after", method="POST", path=ORDER_PATH, delay_ms=8000)
    handler = fresh_handler("futures_order")
    started = time.monotonic()

    response = handler(order_event(order_body(futures_connection.id), key=new_key()),
                       _ShortContext(function_name="futures_order"))

    assert time.monotonic() - started < 4.0
    assert response["statusCode"] == 504, response["body"]
    error = body_of(response)["error"]
    assert error["category"] == "unknown_outcome"
    client_order_id = re.search(r"clientOrderId (\S+)", error["message"]).group(1)
    assert get_order_record(USER_A, client_order_id).status == "UNKNOWN"


def test_replay_after_a_gate_closed_still_answers_the_first_order(sim_env, invoke, futures_connection):
    """GIVEN a placed keyed order WHEN the connection's kill switch is turned on and the key comes again
    THEN the first order is answered (`existing`), nothing sent; a new key is refused naming the switch."""
    event = order_event(order_body(futures_connection.id), key=new_key())
    first = body_of(invoke("futures_order", event))
    update_settings(USER_A, futures_connection.id, {"kill_switch": True})

    again = invoke("futures_order", event)
    other = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))

    assert again["statusCode"] == 200, again["body"]
    assert body_of(again)["order_id"] == first["order_id"] and body_of(again)["source"] == "existing"
    assert other["statusCode"] == 409 and body_of(other)["error"]["field"] == "connection_kill_switch"
    assert len(order_posts(sim_env)) == 1


def _sent_by_a_warm_then_a_cold_container(invoke, event: dict) -> list[dict]:
    """``event`` sent again by this container, whose cache still holds the connection as it was before a gate
    closed, then by a cold one (nothing cached: it reads the connection and finds the gate): both answers."""
    warm = invoke("futures_order", event)
    forget_connection()
    return [warm, invoke("futures_order", event)]


def test_a_repeat_while_the_first_is_in_flight_on_a_connection_disabled_since_is_in_progress_everywhere(
    sim_env, futures_connection, invoke, wait_until
):
    """GIVEN a keyed order in flight (its claim's lease running) WHEN the connection is disabled and the key
    comes again to a warm container and to a cold one THEN both answer 409 in progress, retryable (the first
    may still place it), never connection_disabled; the first then answers its order, placed once."""
    sim_env.faults.add("delay_before", method="POST", path=ORDER_PATH, delay_ms=1500)
    key = new_key()
    event = order_event(order_body(futures_connection.id), key=key)
    first: list[dict] = []
    in_flight = threading.Thread(target=lambda: first.append(fresh_handler("futures_order")(
        event, LambdaContext(function_name="futures_order"))))
    in_flight.start()
    client_order_id = idempotent_client_order_id(USER_A, key)
    assert wait_until(lambda: get_order_record(USER_A, client_order_id) is not None, 10.0)
    disable_connection(USER_A, futures_connection.id, "test")

    answers = _sent_by_a_warm_then_a_cold_container(invoke, event)
    in_flight.join(timeout=30)

    for response in answers:
        assert response["statusCode"] == 409, response["body"]
        error = body_of(response)["error"]
        assert (error["field"], error["retryable"]) == ("Idempotency-Key", True), error
        assert "in progress" in error["message"]
    assert first[0]["statusCode"] == 200, first[0]["body"]
    assert len(order_posts(sim_env)) == 1


def test_a_repeat_of_a_purged_order_on_a_connection_disabled_since_says_purged_everywhere(
    sim_env, invoke, futures_connection
):
    """GIVEN a keyed order settled UNKNOWN_PURGED (final: never sent again) WHEN the connection is disabled
    and the key comes again to a warm container and to a cold one THEN both answer its recorded 409 (never
    sent again), not connection_disabled, which would promise a send once the connection is enabled."""
    event = order_event(order_body(futures_connection.id, price="20000", timeInForce="IOC"), key=new_key())
    placed = body_of(invoke("futures_order", event))
    four_days = PURGE_AFTER_MS + 24 * 3600 * 1000
    age_record(placed["client_order_id"], four_days)
    sim_env.age_orders(four_days)
    assert invoke("futures_order", event)["statusCode"] == 409
    disable_connection(USER_A, futures_connection.id, "test")

    answers = _sent_by_a_warm_then_a_cold_container(invoke, event)

    for response in answers:
        assert response["statusCode"] == 409, response["body"]
        error = body_of(response)["error"]
        assert error["field"] == "Idempotency-Key" and "never be sent again" in error["message"], error
    assert len(order_posts(sim_env)) == 1


@pytest.mark.parametrize(
    ("close_gate", "gate"),
    [
        (lambda c: disable_connection(USER_A, c, "test"), "connection_disabled"),
        (lambda c: mark_deleting(USER_A, c), "connection_deleting"),
        (lambda c: delete_connection(USER_A, c), "connection_deleted"),
    ],
    ids=["connection_disabled", "connection_deleting", "connection_deleted"],
)
def test_a_key_reused_for_another_body_on_a_connection_closed_since_is_the_key_conflict_everywhere(
    sim_env, invoke, futures_connection, close_gate, gate
):
    """GIVEN a placed keyed order WHEN the connection is disabled, being deleted or deleted and the key comes
    with another body to a warm container and to a cold one THEN both answer the key's conflict (never the
    gate, which would read as a new order refused, nor 404: the key's misuse is the client's error whatever
    became of the connection) and no refused attempt is recorded for that body."""
    key = new_key()
    placed = invoke("futures_order", order_event(order_body(futures_connection.id), key=key))
    assert placed["statusCode"] == 200, placed["body"]
    close_gate(futures_connection.id)
    other = order_event(order_body(futures_connection.id, quantity="0.020"), key=key)

    answers = _sent_by_a_warm_then_a_cold_container(invoke, other)

    for response in answers:
        assert response["statusCode"] == 409, response["body"]
        error = body_of(response)["error"]
        assert error["field"] == "Idempotency-Key" and "different order" in error["message"], (gate, error)
    listing = with_user(load_event("futures_order_attempts"), USER_A)
    listing["rawQueryString"], listing["queryStringParameters"] = "", None  # every attempt of the user
    attempts = invoke("futures_order_attempts", listing)
    assert [a["outcome"] for a in body_of(attempts)["attempts"]] == ["placed"], attempts["body"]
    assert len(order_posts(sim_env)) == 1


def test_limit_refusal_after_the_claim_gives_the_key_back(sim_env, invoke, futures_connection):
    """GIVEN an order over max_notional_usdt (refused after its claim) WHEN the limit is raised and the same
    key comes again THEN the order is placed once: the refusal left no record behind."""
    body = order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None, quantity="0.2")
    key = new_key()
    event = order_event(body, key=key)
    refused = invoke("futures_order", event)
    assert refused["statusCode"] == 422 and body_of(refused)["error"]["field"] == "max_notional_usdt"
    assert get_order_record(USER_A, idempotent_client_order_id(USER_A, key)) is None
    update_settings(USER_A, futures_connection.id, {"max_notional_usdt": "100000"})

    placed = invoke("futures_order", event)

    assert placed["statusCode"] == 200, placed["body"]
    assert body_of(placed)["source"] == "placed" and len(order_posts(sim_env)) == 1
    assert get_order_record(USER_A, body_of(placed)["client_order_id"]).params["quantity"] == "0.2"


def test_a_fault_between_the_claim_and_the_send_gives_the_key_back(
        sim_env, invoke, futures_connection, monkeypatch):
    """GIVEN a fault that is no refusal (a bug) while the claimed order is checked WHEN an order comes THEN
    500 with nothing sent and no PENDING record left behind; once the fault is gone the same key places the
    order once."""
    real = futures_service.check_protective_targets

    def broken(*args, **kwargs):
        raise ArithmeticError("simulated fault")

    monkeypatch.setattr(futures_service, "check_protective_targets", broken)
    key = new_key()
    event = order_event(order_body(futures_connection.id), key=key)

    failed = invoke("futures_order", event)

    assert failed["statusCode"] == 500, failed["body"]
    assert order_posts(sim_env) == []
    assert get_order_record(USER_A, idempotent_client_order_id(USER_A, key)) is None
    monkeypatch.setattr(futures_service, "check_protective_targets", real)
    placed = invoke("futures_order", event)
    assert placed["statusCode"] == 200 and body_of(placed)["source"] == "placed", placed["body"]
    assert len(order_posts(sim_env)) == 1


def test_cancel_answers_before_the_invocation_ends(sim_env, invoke, futures_connection):
    """GIVEN a resting order, 4 s left and Binance answering the cancel after 8 s WHEN cancelling THEN an
    answer within the 4 s (the cancel's state read back, or unknown_outcome), never a hang."""
    placed = body_of(invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key())))
    sim_env.faults.add("delay_after", method="DELETE", path=ORDER_PATH, delay_ms=8000)
    event = at_path(load_event("futures_order_cancel"), f"/futures/order/{placed['client_order_id']}",
                    clientOrderId=placed["client_order_id"])
    started = time.monotonic()

    response = fresh_handler("futures_order_cancel")(with_user(event, USER_A),
                                                     _ShortContext(function_name="futures_order_cancel"))

    assert time.monotonic() - started < 4.0
    assert response["statusCode"] in (200, 504), response["body"]
    if response["statusCode"] == 200:
        assert body_of(response)["status"] == "CANCELED"


def test_resend_of_a_refused_attempt_that_crashed_before_its_outcome_is_never_sent_a_third_time(
    sim_env, invoke, futures_connection, monkeypatch
):
    """GIVEN a key whose first MARKET attempt Binance refused WHEN the retry's send fills but the
    invocation dies before recording it (lease run out) and the key comes a third time THEN the third
    looks the order up and answers it: one filled order, never a second one."""
    from klineo.services import futures as futures_service
    from klineo.store.orders import create_order_record, record_order_outcome

    key = new_key()
    body = order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None, quantity="0.002")
    client_order_id = idempotent_client_order_id(USER_A, key)
    request = futures_service.FuturesOrderRequest(**body)
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002",
              "positionSide": "BOTH", "newClientOrderId": client_order_id, "newOrderRespType": "RESULT"}
    create_order_record(USER_A, client_order_id, connection_id=futures_connection.id, symbol="BTCUSDT",
                        request=request.fingerprint(), params=params,
                        attempt_ms=int(time.time() * 1000) - 60_000)
    record_order_outcome(USER_A, client_order_id, status="REJECTED",
                         error={"category": "order_rejected", "message": "margin is insufficient"})

    with monkeypatch.context() as dying:
        dying.setattr(futures_service, "record_order_outcome_quietly", lambda *a, **k: None)  # dies here
        crashed = invoke("futures_order", order_event(body, key=key))
    assert crashed["statusCode"] == 200, crashed["body"]
    lease_run_out(client_order_id)

    third = invoke("futures_order", order_event(body, key=key))

    assert third["statusCode"] == 200, third["body"]
    assert body_of(third)["client_order_id"] == client_order_id and body_of(third)["status"] == "FILLED"
    assert len(order_posts(sim_env)) == 1


# A late "does not exist": the recvWindow (the clients' here) and settle margin kept short to keep it short;
# the sequence is the same at the default 10 s and 5 s (an answer more than 4 s late).
RECV_WINDOW_MS = 3_000
MARGIN_MS = 1_000
# The first attempt's order request reaches the matching engine this late (inside its recvWindow: executed).
REQUEST_IN_FLIGHT_MS = 2_500
# The retry's lookup is answered at once, its answer reaching the route this late: past recvWindow + margin.
ANSWER_LATE_MS = 4_500


def test_a_late_does_not_exist_answer_never_sends_a_crashed_claims_order_again(
    sim_env, invoke, futures_connection, futures_clients, monkeypatch, wait_until
):
    """GIVEN a key whose first attempt stopped between its claim and its outcome (no parameters recorded)
    while its MARKET order is still on its way to Binance WHEN the key comes again and the lookup's -2013
    arrives past recvWindow + margin THEN nothing is sent again (504 unknown_outcome): Binance holds ONE
    order under the clientOrderId, which the next retry answers."""
    futures_clients(recv_window_ms=RECV_WINDOW_MS)
    monkeypatch.setattr(order_core, "SETTLE_MARGIN_MS", MARGIN_MS)
    key = new_key()
    client_order_id = idempotent_client_order_id(USER_A, key)
    body = order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None, quantity="0.002")
    event = order_event(body, key=key)
    sim_env.faults.add("delay_before", method="POST", path=ORDER_PATH, count=1, delay_ms=REQUEST_IN_FLIGHT_MS)
    sim_env.faults.add("delay_after", method="GET", path=ORDER_PATH, count=1, delay_ms=ANSWER_LATE_MS)
    record_outcome = futures_service.record_order_outcome_quietly

    def dies_before_its_outcome(*args, **kwargs):
        if threading.current_thread() is not first:
            return record_outcome(*args, **kwargs)
        return None

    monkeypatch.setattr(futures_service, "record_order_outcome_quietly", dies_before_its_outcome)
    first = threading.Thread(target=fresh_handler("futures_order"),
                             args=(event, LambdaContext(function_name="futures_order")))
    first.start()
    assert wait_until(lambda: get_order_record(USER_A, client_order_id) is not None, 10.0)
    lease_run_out(client_order_id)  # its invocation timed out as its request left

    again = invoke("futures_order", event)
    first.join(timeout=30)

    _one_order_told_unknown_then_answered(sim_env, futures_connection, client_order_id, again,
                                          lambda: invoke("futures_order", event))


def _one_order_told_unknown_then_answered(sim, connection, client_order_id: str, again: dict,
                                          repeat: Callable[[], dict]) -> None:
    """THEN Binance holds ONE order under ``client_order_id`` (one POST), the retry ``again`` was told
    unknown_outcome (504), and ``repeat`` (the key once more) answers that order (200, source existing)."""
    placed = [o for o in exchange_orders(sim, connection.account) if o.client_order_id == client_order_id]
    assert len(placed) == 1, f"Binance holds {len(placed)} orders under {client_order_id}"
    assert again["statusCode"] == 504, again["body"]
    assert body_of(again)["error"]["category"] == "unknown_outcome"
    settled = repeat()
    assert settled["statusCode"] == 200 and body_of(settled)["source"] == "existing", settled["body"]
    assert len(order_posts(sim)) == 1


# A first attempt whose send comes late: the mark read before it (after the claim) is this slow, more than
# recvWindow + margin, and the order request is then this long on its way (within recvWindow: executed).
SLOW_RECV_WINDOW_MS = 5_000
MARK_READ_MS = 5_500
SLOW_REQUEST_IN_FLIGHT_MS = 4_000


def _sent_late_and_lost(sim, event: dict, client_order_id: str, slow_read: tuple[str, int], post_path: str,
                        ) -> None:
    """GIVEN ``event`` sent in an invocation whose GET of ``slow_read`` (path, ms) before its POST is that
    slow, that POST (to ``post_path``) then SLOW_REQUEST_IN_FLIGHT_MS on its way, its answer lost at the
    deadline (2 s before the invocation's end, the read's time + 2.8 s, just after the late send left): 504,
    ``client_order_id`` recorded UNKNOWN."""
    path, read_ms = slow_read
    sim.faults.add("delay_before", method="GET", path=path, count=1, delay_ms=read_ms)
    sim.faults.add("delay_before", method="POST", path=post_path, count=1, delay_ms=SLOW_REQUEST_IN_FLIGHT_MS)
    first = fresh_handler("futures_order")(
        event, _ShortContext(function_name="futures_order", remaining_ms=read_ms + 2_800))
    assert first["statusCode"] == 504, first["body"]
    assert get_order_record(USER_A, client_order_id).status == "UNKNOWN"


def test_a_retry_never_sends_again_while_a_late_sent_first_attempt_is_on_its_way(
    sim_env, invoke, futures_connection, futures_clients, monkeypatch, wait_until
):
    """GIVEN a key whose first MARKET attempt read the mark price for longer than recvWindow + margin after
    its claim, then sent its order, whose answer was lost at the deadline (504, UNKNOWN) while the request is
    still on its way WHEN the key comes again at once and Binance does not hold the order yet THEN nothing is
    sent again (504 unknown_outcome): the wait counts from when the first attempt could still send, not from
    its claim, so Binance holds ONE order under the clientOrderId, which the next retry answers."""
    futures_clients(recv_window_ms=SLOW_RECV_WINDOW_MS)
    monkeypatch.setattr(order_core, "SETTLE_MARGIN_MS", MARGIN_MS)
    key = new_key()
    client_order_id = idempotent_client_order_id(USER_A, key)
    event = order_event(order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None,
                                   quantity="0.002"), key=key)
    _sent_late_and_lost(sim_env, event, client_order_id, ("/fapi/v1/premiumIndex", MARK_READ_MS), ORDER_PATH)

    again = invoke("futures_order", event)
    landed = lambda: any(r.fault == "delay_before" for r in order_posts(sim_env))  # noqa: E731
    assert wait_until(landed, 10.0)  # the first attempt's request reached the matching engine

    _one_order_told_unknown_then_answered(sim_env, futures_connection, client_order_id, again,
                                          lambda: invoke("futures_order", event))


ALGO_PATH = "/fapi/v1/algoOrder"
# A stop's resend whose own lookup (after its resume began, before its claim and send) is this slow, more than
# recvWindow + margin; its POST is then SLOW_REQUEST_IN_FLIGHT_MS on its way (within recvWindow: executed).
SLOW_LOOKUP_MS = 6_500


def _cancelled_on_binance(sim, account, client_algo_id: str) -> None:
    """The trader cancels the algo order standing under ``client_algo_id`` on Binance itself, if one does."""
    state = sim.state.futures.state_for(account, time.time() * 1000)
    for algo in list(state.algo_orders.values()):
        if algo.client_algo_id == client_algo_id and algo.is_open:
            sim.state.algo.cancel(account, {"clientAlgoId": client_algo_id}, time.time() * 1000)


def _retried_then_cancelled_on_binance(sim, invoke, event: dict, account, stop_id: str, wait_until) -> dict:
    """WHEN ``event`` comes again at once and the trader then cancels whatever stop stands under ``stop_id``
    on Binance THEN, once the late POST (its ``delay_before``) landed, Binance holds ONE algo order under it,
    and the retry answered 504 (sent nothing): that answer."""
    again = invoke("futures_order", event)
    _cancelled_on_binance(sim, account, stop_id)
    posts = lambda: [r for r in sim.journal if r.method == "POST" and r.path == ALGO_PATH]  # noqa: E731
    assert wait_until(lambda: any(r.fault == "delay_before" for r in posts()), 10.0)  # the late POST landed

    state = sim.state.futures.state_for(account, time.time() * 1000)
    placed = [a for a in state.algo_orders.values() if a.client_algo_id == stop_id]
    assert len(placed) == 1, f"Binance holds {len(placed)} algo orders under {stop_id}"
    assert again["statusCode"] == 504, again["body"]
    return again


def test_a_stops_retry_never_sends_again_while_a_resend_slowed_by_its_lookup_is_on_its_way(
    sim_env, invoke, futures_connection, futures_clients, monkeypatch, wait_until
):
    """GIVEN an entry whose stop-loss attempt was lost unsent long ago, and a retry that resumed it: its
    lookup took longer than recvWindow + margin, then its claimed resend's answer was lost at the deadline
    (UNKNOWN) while the POST is still on its way WHEN the key comes again at once, Binance not holding the
    stop yet, and the trader then cancels whatever stop stands THEN nothing is sent again (the wait counts
    from the resend's claim, right before its POST, not from before its lookup): once the late POST lands,
    Binance holds ONE algo order under the clientAlgoId, never a second stop the cancel left standing."""
    futures_clients(recv_window_ms=SLOW_RECV_WINDOW_MS)
    monkeypatch.setattr(order_core, "SETTLE_MARGIN_MS", MARGIN_MS)
    key = new_key()
    entry_id = idempotent_client_order_id(USER_A, key)
    stop_id = protective_client_algo_id(entry_id, "stop_loss")
    event = order_event(order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None,
                                   quantity="0.002", stop_loss={"percent": "3"}), key=key)
    sim_env.faults.add("timeout_1007", 1, method="POST", path=ALGO_PATH, execute=False)
    assert invoke("futures_order", event)["statusCode"] >= 500
    age_record(stop_id, 60_000)  # that first attempt was a minute ago: a resend may go once it is absent
    _sent_late_and_lost(sim_env, event, stop_id, (ALGO_PATH, SLOW_LOOKUP_MS), ALGO_PATH)  # the resume

    again = _retried_then_cancelled_on_binance(sim_env, invoke, event, futures_connection.account, stop_id,
                                               wait_until)
    assert body_of(again)["error"]["category"] == "unknown_outcome"
    assert len([r for r in sim_env.journal if r.method == "POST" and r.path == ALGO_PATH]) == 2


# A stop's first POST refused for the rate limit with this Retry-After: the client sends it again after it,
# under a fresh timestamp, that much later than the stop's claim (more than recvWindow + margin).
RATE_LIMIT_WAIT_S = 6


def test_a_stops_retry_never_sends_again_while_its_first_post_resent_after_a_429_is_on_its_way(
    sim_env, invoke, futures_connection, futures_clients, monkeypatch, wait_until
):
    """GIVEN an entry whose stop-loss POST got a 429 (Retry-After 6 s), which the client sent again after that
    wait, its answer then lost at the deadline (UNKNOWN) while it is still on its way WHEN the key comes again
    at once, Binance not holding the stop yet, and the trader then cancels whatever stop stands THEN nothing
    is sent again: once the late POST lands, Binance holds ONE algo order under the clientAlgoId."""
    futures_clients(recv_window_ms=SLOW_RECV_WINDOW_MS)
    monkeypatch.setattr(order_core, "SETTLE_MARGIN_MS", MARGIN_MS)
    key = new_key()
    stop_id = protective_client_algo_id(idempotent_client_order_id(USER_A, key), "stop_loss")
    event = order_event(order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None,
                                   quantity="0.002", stop_loss={"percent": "3"}), key=key)
    sim_env.faults.add("http_429", 1, method="POST", path=ALGO_PATH, retry_after_s=RATE_LIMIT_WAIT_S)
    sim_env.faults.add("delay_before", method="POST", path=ALGO_PATH, count=1,
                       delay_ms=SLOW_REQUEST_IN_FLIGHT_MS)
    first = fresh_handler("futures_order")(
        event, _ShortContext(function_name="futures_order", remaining_ms=RATE_LIMIT_WAIT_S * 1000 + 3_000))
    assert first["statusCode"] == 504, first["body"]
    assert get_order_record(USER_A, stop_id).status == "UNKNOWN"

    _retried_then_cancelled_on_binance(sim_env, invoke, event, futures_connection.account, stop_id,
                                       wait_until)


def _stop_loss_event(connection_id: str) -> tuple[dict, str]:
    """A keyed MARKET entry with a 3 % stop-loss, and its stop's clientAlgoId."""
    key = new_key()
    stop_id = protective_client_algo_id(idempotent_client_order_id(USER_A, key), "stop_loss")
    body = order_body(connection_id, type="MARKET", price=None, timeInForce=None, quantity="0.002",
                      stop_loss={"percent": "3"})
    return order_event(body, key=key), stop_id


def _one_stop_placed(sim, account, stop_id: str, answer: dict) -> None:
    """THEN ``answer`` is a 200 and Binance holds ONE open algo order under ``stop_id``, placed by its second
    POST (the first was lost unplaced)."""
    assert answer["statusCode"] == 200, answer["body"]
    state = sim.state.futures.state_for(account, time.time() * 1000)
    placed = [a for a in state.algo_orders.values() if a.client_algo_id == stop_id]
    assert len(placed) == 1 and placed[0].is_open
    assert len([r for r in sim.journal if r.method == "POST" and r.path == ALGO_PATH]) == 2


# The invocation that loses the stop has this long left: its deadline (2 s before its end) is near.
NEAR_END_MS = 6_000


def test_a_stop_lost_in_a_route_whose_deadline_is_near_is_sent_again_soon_after_that_deadline(
    sim_env, invoke, futures_connection, futures_clients, monkeypatch
):
    """GIVEN an entry whose stop-loss POST was lost unplaced (UNKNOWN) in an invocation with 6 s left WHEN the
    key comes again once recvWindow + margin have passed since that invocation's deadline, seconds after the
    stop's stamp (not the longest Timeout's 4 minutes) THEN the stop is looked up, sent again and placed."""
    futures_clients(recv_window_ms=SLOW_RECV_WINDOW_MS)
    monkeypatch.setattr(order_core, "SETTLE_MARGIN_MS", MARGIN_MS)
    event, stop_id = _stop_loss_event(futures_connection.id)
    sim_env.faults.add("timeout_1007", 1, method="POST", path=ALGO_PATH, execute=False)
    first = fresh_handler("futures_order")(
        event, _ShortContext(function_name="futures_order", remaining_ms=NEAR_END_MS))
    assert first["statusCode"] == 504, first["body"]
    lost = get_order_record(USER_A, stop_id)
    assert lost.status == "UNKNOWN" and lost.attempt_ms < lost.send_by_ms < lost.attempt_ms + NEAR_END_MS

    past = lost.send_by_ms - int(time.time() * 1000) + SLOW_RECV_WINDOW_MS + MARGIN_MS + 500
    boto3.client("dynamodb").update_item(  # that deadline was recvWindow + margin (and 0.5 s) ago
        TableName=get_settings().data_table,
        Key={"pk": {"S": f"USER#{USER_A}"}, "sk": {"S": f"ORDER#{stop_id}"}},
        UpdateExpression="SET attempt_ms = :at, send_by_ms = :by",
        ExpressionAttributeValues={":at": {"N": str(lost.attempt_ms - past)},
                                   ":by": {"N": str(lost.send_by_ms - past)}})

    _one_stop_placed(sim_env, futures_connection.account, stop_id, invoke("futures_order", event))


def test_a_stop_whose_record_says_not_by_when_it_was_sent_waits_the_longest_timeout_before_a_resend(
    sim_env, invoke, futures_connection
):
    """GIVEN a stop-loss lost unplaced whose record does not say by when its POST had to be signed (written
    before that was stored), stamped a minute ago WHEN the key comes again THEN nothing is sent (504
    unknown_outcome): that POST could be signed until the longest Timeout after its stamp; once that and
    recvWindow + margin have passed, the stop is sent again and placed."""
    event, stop_id = _stop_loss_event(futures_connection.id)
    sim_env.faults.add("timeout_1007", 1, method="POST", path=ALGO_PATH, execute=False)
    assert invoke("futures_order", event)["statusCode"] == 504
    age_record(stop_id, 60_000, send_by=False)

    again = invoke("futures_order", event)
    assert again["statusCode"] == 504 and body_of(again)["error"]["category"] == "unknown_outcome"
    assert len([r for r in sim_env.journal if r.method == "POST" and r.path == ALGO_PATH]) == 1

    age_record(stop_id, STOP_SENT_WITHIN_MS + 10_000 + order_core.SETTLE_MARGIN_MS + 1_000, send_by=False)
    _one_stop_placed(sim_env, futures_connection.account, stop_id, invoke("futures_order", event))


def _protective_record(connection_id: str, client_algo_id: str = "entry-1-sl"):
    return pending_record(USER_A, client_algo_id, connection_id=connection_id, symbol="BTCUSDT",
                          request={"role": "stop_loss"}, params={"side": "SELL"}, attempt_ms=1_000,
                          kind=KIND_ALGO, role="stop_loss", parent_client_order_id="entry-1")


def test_a_protective_record_is_written_only_while_the_connection_is_not_being_deleted(
    aws, futures_connection
):
    """GIVEN a connection marked as being deleted WHEN a protective order's record is claimed THEN it is
    refused (naming the connection, nothing written) without the delete's token, refused with an earlier
    delete's token, and written with the current one (the wind-down's own stops)."""
    connection_id = futures_connection.id
    before = claim_protective_order(_protective_record(connection_id, "before-sl"),
                                    ConnectionGuard(USER_A, connection_id))
    earlier = mark_deleting(USER_A, connection_id)
    token = mark_deleting(USER_A, connection_id)  # a delete repeated after a partial failure

    refused = claim_protective_order(_protective_record(connection_id),
                                     ConnectionGuard(USER_A, connection_id))
    stale = claim_protective_order(_protective_record(connection_id),
                                   ConnectionGuard(USER_A, connection_id, earlier))
    assert get_order_record(USER_A, "entry-1-sl") is None
    ours = claim_protective_order(_protective_record(connection_id),
                                  ConnectionGuard(USER_A, connection_id, token))

    assert before is None and ours is None
    assert set(refused.failed) == {"connection"} and refused.existing is None
    assert set(stale.failed) == {"connection"}
    assert get_order_record(USER_A, "entry-1-sl").status == "PENDING"


def test_a_protective_record_already_written_answers_even_while_deleting(aws, futures_connection):
    """GIVEN a protective order recorded before the delete began WHEN its record is claimed again (a
    retry) or taken for a second send during the delete THEN the claim hands back the existing record
    (answered from it, never doubled), and the second send is refused naming the connection."""
    connection_id = futures_connection.id
    guard = ConnectionGuard(USER_A, connection_id)
    assert claim_protective_order(_protective_record(connection_id), guard) is None
    mark_deleting(USER_A, connection_id)

    again = claim_protective_order(_protective_record(connection_id), guard)
    existing = get_order_record(USER_A, "entry-1-sl")
    resend = claim_protective_resend(existing, 5_000, guard)

    assert again.existing == existing
    assert "connection" in resend.failed
    assert get_order_record(USER_A, "entry-1-sl").attempt_ms == 1_000
