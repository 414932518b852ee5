"""Conditional orders take the regular orders' exactly-once flow at the algo service (`responses`)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
import requests
from klineo.binance import ErrorCategory, KlineoError
from klineo.services.algo_orders import AlgoOrder, submit_algo_order
from klineo.services.orders import QUERY_DELAYS_S, Deadline

from tests.unit.orders.conftest import FUTURES

ALGO_URL = re.compile(re.escape(FUTURES + "/fapi/v1/algoOrder") + r"(\?.*)?$")
CLIENT_ALGO_ID = "kabcdefghijklmnopqrstuvwxyz23456-sl"
STOP = AlgoOrder(symbol="BTCUSDT", side="SELL", type="STOP_MARKET", quantity=Decimal("0.002"),
                 trigger_price=Decimal("19000"), reduce_only=True, working_type="MARK_PRICE")
DUPLICATED = {"code": -4116, "msg": "ClientOrderId is duplicated."}


def _algo_body(status: str = "NEW") -> dict:
    return {"algoId": 2000000001, "clientAlgoId": CLIENT_ALGO_ID, "algoType": "CONDITIONAL",
            "orderType": "STOP_MARKET", "symbol": "BTCUSDT", "side": "SELL", "positionSide": "BOTH",
            "quantity": "0.002", "algoStatus": status, "triggerPrice": "19000", "reduceOnly": True,
            "workingType": "MARK_PRICE", "createTime": 1700000000000, "updateTime": 1700000000000}


def _calls(rsps, method: str) -> list:
    return [c for c in rsps.calls if c.request.method == method and "/fapi/v1/algoOrder" in c.request.url]


def test_duplicate_id_whose_lookup_fails_is_unknown_outcome_naming_the_id(rsps, client, creds, clock):
    """GIVEN -4116 and a lookup that cannot reach Binance WHEN submitting THEN unknown_outcome naming the
    clientAlgoId (the order may exist), never the lookup's own category; sent once."""
    rsps.post(ALGO_URL, status=400, json=DUPLICATED)
    rsps.get(ALGO_URL, body=requests.exceptions.ConnectionError("connection refused"))

    with pytest.raises(KlineoError) as raised:
        submit_algo_order(client, creds, STOP, CLIENT_ALGO_ID, clock=clock, sleep=clock.sleep)

    assert raised.value.category is ErrorCategory.UNKNOWN_OUTCOME
    assert CLIENT_ALGO_ID in raised.value.message and "conditional order" in raised.value.message
    assert len(_calls(rsps, "POST")) == 1


def test_lost_answer_is_settled_by_lookup_with_the_regular_orders_schedule(rsps, client, creds, clock):
    """GIVEN a read timeout on the POST WHEN submitting THEN looked up on the regular orders' backoff
    until found (source recovered), never re-sent."""
    rsps.post(ALGO_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    rsps.get(ALGO_URL, status=400, json={"code": -2013, "msg": "Order does not exist."})
    rsps.get(ALGO_URL, json=_algo_body())

    result = submit_algo_order(client, creds, STOP, CLIENT_ALGO_ID, clock=clock, sleep=clock.sleep)

    assert result.source == "recovered" and result.status == "NEW" and result.order_id == 2000000001
    assert len(_calls(rsps, "POST")) == 1 and len(_calls(rsps, "GET")) == 2
    assert clock.sleeps[:2] == list(QUERY_DELAYS_S[:2])


def test_a_lookup_that_fits_before_the_deadline_is_made_as_for_a_regular_order(rsps, client, creds, clock):
    """GIVEN a lost answer and 0.9 s left before the deadline WHEN settling THEN the first lookup (after
    0.25 s, needing 0.5 s) is still made, as the regular orders' settle loop does."""
    rsps.post(ALGO_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    rsps.get(ALGO_URL, json=_algo_body())

    result = submit_algo_order(client, creds, STOP, CLIENT_ALGO_ID, clock=clock, sleep=clock.sleep,
                               deadline=Deadline(at=clock() + 0.9))

    assert result.source == "recovered" and len(_calls(rsps, "GET")) == 1
