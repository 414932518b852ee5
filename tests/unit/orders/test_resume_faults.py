"""A repeated order under faults: failed lookups, purged orders and the route's deadline (`responses`)."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import requests
from klineo.binance import ErrorCategory, KlineoError, call_deadline
from klineo.services.orders import (
    DEADLINE_MARGIN_S,
    DEADLINE_MAX_S,
    PURGE_AFTER_MS,
    QUERY_DELAYS_S,
    SETTLE_MARGIN_MS,
    Deadline,
    FuturesOrder,
    submit_futures_order,
)

from tests.unit.orders.conftest import ORDER_URL

CLIENT_ORDER_ID = "kabcdefghijklmnopqrstuvwxyz234567abc"
LIMIT = FuturesOrder(
    symbol="BTCUSDT", side="BUY", type="LIMIT", quantity=Decimal("0.010"), price=Decimal("20000.0")
)
ABSENT = {"code": -2013, "msg": "Order does not exist."}


def _calls(rsps, method: str) -> list:
    return [c for c in rsps.calls if c.request.method == method and "/fapi/v1/order" in c.request.url]


# Each way the lookup of an earlier attempt can fail, as Binance (or the network) shows it.
LOOKUP_FAULTS = {
    "ip_banned": {"status": 418, "json": {"code": -1003, "msg": "Way too many requests; IP banned until 1."},
                  "headers": {"Retry-After": "60"}},
    "rate_limit": {"status": 429, "json": {"code": -1003, "msg": "Too many requests."},
                   "headers": {"Retry-After": "60"}},
    "network": {"body": requests.exceptions.ConnectionError("connection refused")},
    "upstream_unavailable": {"status": 503, "json": {"code": -1001, "msg": "Service Unavailable."}},
}


@pytest.mark.parametrize("fault", sorted(LOOKUP_FAULTS))
def test_retry_whose_lookup_fails_is_unknown_outcome_never_the_lookups_category(rsps, client, creds, clock,
                                                                                fault):
    """GIVEN an earlier attempt that may have reached Binance WHEN the retry's lookup fails (each way)
    THEN unknown_outcome naming the clientOrderId, and nothing is sent."""
    rsps.get(ORDER_URL, **LOOKUP_FAULTS[fault])

    with pytest.raises(KlineoError) as raised:
        submit_futures_order(client, creds, LIMIT, CLIENT_ORDER_ID,
                             earlier_attempt_ms=int(clock() * 1000) - 60_000, clock=clock, sleep=clock.sleep)

    assert raised.value.category is ErrorCategory.UNKNOWN_OUTCOME, raised.value.message
    assert CLIENT_ORDER_ID in raised.value.message
    assert _calls(rsps, "POST") == []


def test_duplicate_id_whose_lookup_fails_is_unknown_outcome(rsps, client, creds, clock):
    """GIVEN -4116 and a failing lookup WHEN submitting THEN unknown_outcome naming the id, not rate_limit."""
    rsps.post(ORDER_URL, status=400, json={"code": -4116, "msg": "ClientOrderId is duplicated."})
    rsps.get(ORDER_URL, **LOOKUP_FAULTS["rate_limit"])

    with pytest.raises(KlineoError) as raised:
        submit_futures_order(client, creds, LIMIT, CLIENT_ORDER_ID, clock=clock, sleep=clock.sleep)

    assert raised.value.category is ErrorCategory.UNKNOWN_OUTCOME and CLIENT_ORDER_ID in raised.value.message
    assert len(_calls(rsps, "POST")) == 1


def test_attempt_older_than_binances_retention_and_absent_is_purged_never_resent(rsps, client, creds, clock):
    """GIVEN an earlier attempt over 3 days old that Binance does not know WHEN resubmitted
    THEN when_purged is called, CONFLICT (final, not retryable) and no POST, no resend claim."""
    rsps.get(ORDER_URL, status=400, json=ABSENT)
    purged: list[bool] = []
    claims: list[bool] = []

    with pytest.raises(KlineoError) as raised:
        submit_futures_order(client, creds, LIMIT, CLIENT_ORDER_ID,
                             earlier_attempt_ms=int(clock() * 1000) - PURGE_AFTER_MS - 1,
                             before_resend=lambda: claims.append(True),
                             when_purged=lambda: purged.append(True), clock=clock, sleep=clock.sleep)

    assert raised.value.category is ErrorCategory.CONFLICT and raised.value.retryable is False
    assert CLIENT_ORDER_ID in raised.value.message and "never be sent again" in raised.value.message
    assert purged == [True] and claims == []
    assert _calls(rsps, "POST") == []


def test_attempt_just_inside_retention_and_absent_is_sent_again(rsps, client, creds, clock):
    """GIVEN an absent earlier attempt just under 3 days old WHEN resubmitted THEN it is sent again once."""
    rsps.get(ORDER_URL, status=400, json=ABSENT)
    rsps.post(ORDER_URL, json={"orderId": 1, "clientOrderId": CLIENT_ORDER_ID, "symbol": "BTCUSDT",
                               "status": "NEW", "side": "BUY", "type": "LIMIT", "origQty": "0.01",
                               "executedQty": "0", "price": "20000"})
    earlier = int(clock() * 1000) - PURGE_AFTER_MS + 10_000 + SETTLE_MARGIN_MS + 1

    result = submit_futures_order(client, creds, LIMIT, CLIENT_ORDER_ID, earlier_attempt_ms=earlier,
                                  when_purged=lambda: pytest.fail("not purged"), clock=clock,
                                  sleep=clock.sleep)

    assert result.source == "placed" and len(_calls(rsps, "POST")) == 1


class _Context:
    """A Lambda context with a fixed remaining time."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_deadline_is_the_invocations_remaining_time_less_the_margin_and_capped(clock):
    """GIVEN 10 s, 300 s, 0.5 s or no context WHEN taken THEN the time left - margin, capped, >= now."""
    assert Deadline.of_invocation(_Context(10_000), clock).at == clock() + 10 - DEADLINE_MARGIN_S
    assert Deadline.of_invocation(_Context(300_000), clock).at == clock() + DEADLINE_MAX_S
    assert Deadline.of_invocation(None, clock).at == clock() + DEADLINE_MAX_S
    assert Deadline.of_invocation(_Context(500), clock).at == clock()  # already past: no time at all
    assert DEADLINE_MAX_S < 29


def test_settle_loop_starts_no_lookup_past_the_deadline(rsps, client, creds, clock):
    """GIVEN a lost answer and 0.8 s left WHEN settling THEN one lookup, then unknown_outcome with the id."""
    rsps.post(ORDER_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    rsps.get(ORDER_URL, status=400, json=ABSENT)

    with pytest.raises(KlineoError) as raised:
        submit_futures_order(client, creds, LIMIT, CLIENT_ORDER_ID, deadline=Deadline(clock() + 0.8),
                             clock=clock, sleep=clock.sleep)

    assert raised.value.category is ErrorCategory.UNKNOWN_OUTCOME and CLIENT_ORDER_ID in raised.value.message
    assert len(_calls(rsps, "GET")) == 1 < len(QUERY_DELAYS_S)
    assert clock.sleeps == [QUERY_DELAYS_S[0]]


def test_call_deadline_caps_the_clients_timeouts(rsps, client, creds):
    """GIVEN 2 s left WHEN a call is made in call_deadline THEN its timeouts are <= 2 s; outside, not."""
    seen: list = []

    def record(request):
        seen.append(request.req_kwargs["timeout"])
        return 200, {}, '{"serverTime": 1}'

    rsps.add_callback("GET", "https://fapi.binance.test/fapi/v1/ping", callback=record)
    with call_deadline(time.time() + 2.0):
        client.public("GET", "/fapi/v1/ping")
    client.public("GET", "/fapi/v1/ping")

    assert all(0 < limit <= 2.0 for limit in seen[0])
    assert seen[1] == client.timeout
