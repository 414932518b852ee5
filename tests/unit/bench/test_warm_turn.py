"""bench/warm_turn.py: the stubs that answer a replayed live turn, and only its thread."""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import pytest
import requests
import responses

from bench.warm_turn import WRITE_OPERATIONS, _Stubs, canned_binance

ORDER_URL = ("https://fapi.example.invalid/fapi/v1/order?symbol=ETHUSDT&side=SELL&type=MARKET&quantity=0.03"
             "&newClientOrderId=kst_abc&newOrderRespType=RESULT&timestamp=1&signature=redacted")


def test_the_canned_order_answer_is_filled_with_the_requests_own_quantity_side_and_id() -> None:
    """A replayed order is answered FILLED for exactly what it asked, as a RESULT answer would be."""
    # WHEN the stub answers a MARKET sell of 0.03 ETHUSDT
    status, body = canned_binance("POST", ORDER_URL)
    # THEN the answer names the same order and fills all of it
    assert status == 200
    assert (body["symbol"], body["side"], body["clientOrderId"]) == ("ETHUSDT", "SELL", "kst_abc")
    assert body["status"] == "FILLED" and body["origQty"] == body["executedQty"] == "0.03"


def test_the_canned_fills_belong_to_the_canned_order() -> None:
    """The fills read after the order answer one USDT-fee fill of the same order id for its whole quantity."""
    # GIVEN the canned order's id and quantity
    _, order = canned_binance("POST", ORDER_URL)
    # WHEN the fills of the order are read
    _, fills = canned_binance("GET", f"https://fapi.example.invalid/fapi/v1/userTrades?symbol=ETHUSDT"
                                     f"&orderId={order['orderId']}", order["executedQty"])
    # THEN there is one, of that order, for all of it, with its fee in USDT
    assert [(fill["orderId"], fill["qty"], fill["commissionAsset"]) for fill in fills] == [
        (order["orderId"], "0.03", "USDT")]


def test_the_stubs_answer_the_fills_read_with_the_last_orders_quantity() -> None:
    """In the replaying thread the fills read after an order add up to that order's executed quantity (a
    turn books only fills that do, else estimates: the replay would measure another path)."""
    # GIVEN the stubs installed in this thread and a session
    session = requests.Session()
    with _Stubs().installed():
        # WHEN an order of 0.03 is sent, then its fills are read
        order = session.post(ORDER_URL).json()
        fills = session.get("https://fapi.example.invalid/fapi/v1/userTrades?symbol=ETHUSDT"
                            f"&orderId={order['orderId']}").json()
    # THEN they add up to it
    assert [fill["qty"] for fill in fills] == [order["executedQty"]] == ["0.03"]


def test_a_call_the_stubs_cannot_answer_fails_the_measurement() -> None:
    """Any other Binance call is refused, so a replay never measures a different turn silently."""
    # WHEN / THEN the klines (never part of a turn) have no canned answer
    with pytest.raises(ValueError, match="/fapi/v1/klines"):
        canned_binance("GET", "https://fapi.example.invalid/fapi/v1/klines?symbol=ETHUSDT")


def test_the_stubs_answer_aws_writes_and_refuse_reads_in_their_thread() -> None:
    """In the replaying thread a DynamoDB write succeeds at once and a read fails the measurement."""
    # GIVEN a DynamoDB client pointed nowhere reachable
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                          aws_access_key_id="test", aws_secret_access_key="test")
    assert "PutItem" in WRITE_OPERATIONS
    # WHEN the stubs are installed in this thread
    with _Stubs().installed():
        # THEN a write is answered without a request, and a read is refused
        assert client.put_item(TableName="t", Item={"pk": {"S": "a"}}) == {}
        with pytest.raises(ValueError, match="GetItem"):
            client.get_item(TableName="t", Key={"pk": {"S": "a"}})


@responses.activate
def test_other_threads_still_reach_the_real_http_while_the_stubs_are_installed() -> None:
    """The stubs answer only the thread that installed them: the bench's other threads are untouched."""
    # GIVEN a real HTTP answer for another thread's request
    responses.add(responses.POST, ORDER_URL.split("?")[0], json={"from": "real transport"}, status=418)
    seen: dict[str, Any] = {}

    def other_thread() -> None:
        seen["status"] = requests.post(ORDER_URL, timeout=5).status_code

    # WHEN this thread installs the stubs and both threads send the same order request
    with _Stubs().installed():
        mine = requests.post(ORDER_URL, timeout=5)
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
    # THEN this thread got the canned FILLED answer and the other one the real transport's
    assert mine.json()["status"] == "FILLED"
    assert seen["status"] == 418


def test_cold_stubs_evict_the_caches_and_take_that_time_out() -> None:
    """A cold replay's stubs evict the caches before answering, and that work is counted as the stubs' (taken
    out of the turn), never as the turn's own CPU."""
    # GIVEN a DynamoDB client pointed nowhere reachable and cold stubs
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                          aws_access_key_id="test", aws_secret_access_key="test")
    session = requests.Session()
    with _Stubs(cold=True).installed() as stubs:
        # WHEN a write and an order are answered
        started = time.thread_time()
        assert client.put_item(TableName="t", Item={"pk": {"S": "a"}}) == {}
        assert session.post(ORDER_URL).json()["status"] == "FILLED"
        spent = time.thread_time() - started
    # THEN the stubs' time holds nearly all of it: two evictions, each walking 2 MB and a JSON round trip
    assert stubs.seconds > 0.5 * spent > 0
    assert stubs.reads == 0


def test_cold_stubs_let_an_expired_cache_read_through_and_count_it() -> None:
    """A read the turn makes because a container cache expired during a long cold replay reaches the real
    store (here: fails to connect, as nothing listens) and is counted, where the warm stubs refuse it."""
    # GIVEN a DynamoDB client pointed nowhere reachable, without retries
    from botocore.config import Config
    from botocore.exceptions import EndpointConnectionError

    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                          aws_access_key_id="test", aws_secret_access_key="test",
                          config=Config(retries={"max_attempts": 1}, connect_timeout=1))
    # WHEN the cold stubs see a GetItem
    with _Stubs(cold=True).installed() as stubs, pytest.raises(EndpointConnectionError):
        client.get_item(TableName="t", Key={"pk": {"S": "a"}})
    # THEN it went to the real transport, and was counted
    assert stubs.reads == 1
