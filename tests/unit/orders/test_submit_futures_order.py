"""The exchange-level exactly-once core, one precise HTTP exchange at a time (`responses`)."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from klineo.binance import ErrorCategory, KlineoError
from klineo.observability import metrics, tally
from klineo.services.orders import (
    QUERY_DELAYS_S,
    SETTLE_BUDGET_S,
    SETTLE_MARGIN_MS,
    FuturesOrder,
    submit_futures_order,
)

from tests.unit.orders.conftest import ORDER_URL

CLIENT_ORDER_ID = "kabcdefghijklmnopqrstuvwxyz234567abc"
LIMIT = FuturesOrder(
    symbol="BTCUSDT", side="BUY", type="LIMIT", quantity=Decimal("0.010"), price=Decimal("20000.0")
)


def _order_body(status: str = "NEW", **changes: object) -> dict:
    body = {
        "orderId": 4100000001,
        "clientOrderId": CLIENT_ORDER_ID,
        "symbol": "BTCUSDT",
        "status": status,
        "side": "BUY",
        "type": "LIMIT",
        "origType": "LIMIT",
        "origQty": "0.010",
        "executedQty": "0",
        "price": "20000.0",
        "avgPrice": "0.00000",
        "timeInForce": "GTC",
        "reduceOnly": False,
        "positionSide": "BOTH",
        "updateTime": 1700000000000,
    }
    body.update(changes)
    return body


def _calls(rsps, method: str) -> list:
    return [c for c in rsps.calls if c.request.method == method and "/fapi/v1/order" in c.request.url]


def _query(call) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(call.request.url).query).items()}


# ---------------------------------------------------------------- one send


def test_order_is_sent_once_with_our_client_order_id(rsps, client, creds, clock):
    """GIVEN Binance accepts WHEN submitting THEN one POST with newClientOrderId and RESULT, answer parsed."""
    rsps.post(ORDER_URL, json=_order_body())

    result = submit_futures_order(client, creds, LIMIT, CLIENT_ORDER_ID, clock=clock, sleep=clock.sleep)

    assert result.source == "placed" and result.order_id == 4100000001 and result.status == "NEW"
    assert (
        result.quantity == Decimal("0.010")
        and result.price == Decimal("20000.0")
        and result.average_price is None
    )
    sent = _query(_calls(rsps, "POST")[0])
    assert sent["newClientOrderId"] == CLIENT_ORDER_ID and sent["newOrderRespType"] == "RESULT"
    assert sent["quantity"] == "0.01" and sent["price"] == "20000" and sent["timeInForce"] == "GTC"
    assert sent["positionSide"] == "BOTH" and "reduceOnly" not in sent
    assert _calls(rsps, "GET") == []


MARKET = FuturesOrder(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=Decimal("0.010"))


def test_filled_answer_without_avg_price_reads_the_order_for_its_fill(rsps, client, creds, clock):
    """GIVEN a FILLED answer without avgPrice WHEN submitting THEN the order is read once for the price."""
    placed = _order_body("FILLED", type="MARKET", origType="MARKET", executedQty="0.010", price="0")
    del placed["avgPrice"]
    rsps.post(ORDER_URL, json=placed)
    rsps.get(ORDER_URL, json={**placed, "avgPrice": "20123.40"})

    result = submit_futures_order(client, creds, MARKET, CLIENT_ORDER_ID, clock=clock, sleep=clock.sleep)

    assert result.source == "placed" and result.average_price == Decimal("20123.40")
    assert len(_calls(rsps, "POST")) == 1 and len(_calls(rsps, "GET")) == 1
    assert _query(_calls(rsps, "GET")[0])["origClientOrderId"] == CLIENT_ORDER_ID


def test_unfilled_answer_without_avg_price_reads_nothing(rsps, client, creds, clock):
    """GIVEN a NEW answer (nothing filled) without avgPrice WHEN submitting THEN no read follows."""
    placed = _order_body()
    del placed["avgPrice"]
    rsps.post(ORDER_URL, json=placed)

    result = submit_futures_order(client, creds, LIMIT, CLIENT_ORDER_ID, clock=clock, sleep=clock.sleep)

    assert result.average_price is None and _calls(rsps, "GET") == []


def test_failed_fill_price_read_still_returns_the_placed_order(rsps, client, creds, clock):
    """GIVEN a FILLED answer without avgPrice and a failing read WHEN submitting
    THEN the placed order comes back (the order stands), its average price unknown."""
    placed = _order_body("FILLED", type="MARKET", origType="MARKET", executedQty="0.010", price="0")
    del placed["avgPrice"]
    rsps.post(ORDER_URL, json=placed)
    rsps.get(ORDER_URL, status=400, json={"code": -1121, "msg": "Invalid symbol."})

    result = submit_futures_order(client, creds, MARKET, CLIENT_ORDER_ID, clock=clock, sleep=clock.sleep)

    assert result.status == "FILLED" and result.average_price is None and len(_calls(rsps, "POST")) == 1


def test_refusal_is_raised_without_lookup(rsps, client, creds, clock):
    """GIVEN Binance refuses (-2019) WHEN submitting THEN insufficient_balance, nothing looked up."""
    rsps.post(ORDER_URL, status=400, json={"code": -2019, "msg": "Margin is insufficient."})

    with pytest.raises(KlineoError) as raised:
        submit_futures_order(client, creds, LIMIT, CLIENT_ORDER_ID, clock=clock, sleep=clock.sleep)

    assert raised.value.category is ErrorCategory.INSUFFICIENT_BALANCE
    assert len(_calls(rsps, "POST")) == 1 and _calls(rsps, "GET") == []


def test_invalid_client_order_id_is_refused_before_any_call(rsps, client, creds, clock):
    """GIVEN an id outside Binance's rule WHEN submitting THEN invalid_request and no HTTP call at all."""
    for bad in ("x" * 37, "has space", ""):
        with pytest.raises(KlineoError) as raised:
            submit_futures_order(client, creds, LIMIT, bad, clock=clock, sleep=clock.sleep)
        assert raised.value.category is ErrorCategory.INVALID_REQUEST
    assert len(rsps.calls) == 0


# ---------------------------------------------------------------- lost answers


def test_read_timeout_is_settled_by_lookup_and_never_resent(rsps, client, creds, clock):
    """GIVEN a read timeout WHEN submitting THEN the order is looked up, found, never re-sent."""
    rsps.post(ORDER_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    rsps.get(ORDER_URL, status=400, json={"code": -2013, "msg": "Order does not exist."})
    rsps.get(ORDER_URL, json=_order_body("FILLED", executedQty="0.010", avgPrice="19999.9"))

    result = submit_futures_order(client, creds, LIMIT, CLIENT_ORDER_ID, clock=clock, sleep=clock.sleep)

    assert result.source == "recovered" and result.status == "FILLED"
    assert result.executed_quantity == Decimal("0.010") and result.average_price == Decimal("19999.9")
    assert len(_calls(rsps, "POST")) == 1
    lookups = _calls(rsps, "GET")
    assert len(lookups) == 2 and _query(lookups[0])["origClientOrderId"] == CLIENT_ORDER_ID
    assert clock.sleeps[:2] == list(QUERY_DELAYS_S[:2])


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, {"code": -1000, "msg": "Unknown error, please check your request or try again later."}),
        (408, {"code": -1007, "msg": "Timeout waiting for response from backend server."}),
        (500, {"code": -1000, "msg": "An unknown error occured while processing the request."}),
    ],
)
def test_unknown_outcome_answers_are_settled_by_lookup(rsps, client, creds, clock, status, body):
    """GIVEN an "unknown outcome" answer (503 unknown, -1007, 5xx) WHEN submitting THEN the lookup decides."""
    rsps.post(ORDER_URL, status=status, json=body)
    rsps.get(ORDER_URL, json=_order_body())

    result = submit_futures_order(client, creds, LIMIT, CLIENT_ORDER_ID, clock=clock, sleep=clock.sleep)

    assert result.source == "recovered"
    assert len(_calls(rsps, "POST")) == 1


def test_unsettled_outcome_raises_unknown_outcome_naming_the_id(rsps, client, creds, clock):
    """GIVEN a lost answer, order never shown WHEN submitting THEN unknown_outcome naming the id."""
    rsps.post(ORDER_URL, body=requests.exceptions.ConnectionError("connection reset after send"))
    rsps.get(ORDER_URL, status=400, json={"code": -2013, "msg": "Order does not exist."})

    with pytest.raises(KlineoError) as raised:
        submit_futures_order(client, creds, LIMIT, CLIENT_ORDER_ID, clock=clock, sleep=clock.sleep)

    assert raised.value.category is ErrorCategory.UNKNOWN_OUTCOME and raised.value.retryable is False
    assert CLIENT_ORDER_ID in raised.value.message
    assert len(_calls(rsps, "POST")) == 1
    assert len(_calls(rsps, "GET")) == len(QUERY_DELAYS_S)


def test_failing_lookups_are_tried_again_then_unknown(rsps, client, creds, clock):
    """GIVEN lookups that fail (503) WHEN settling THEN each scheduled try is made, then unknown_outcome."""
    rsps.post(ORDER_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    rsps.get(ORDER_URL, status=503, json={"code": -1001, "msg": "Service Unavailable."})

    with pytest.raises(KlineoError) as raised:
        submit_futures_order(client, creds, LIMIT, CLIENT_ORDER_ID, clock=clock, sleep=clock.sleep)

    assert raised.value.category is ErrorCategory.UNKNOWN_OUTCOME
    assert len(_calls(rsps, "GET")) == len(QUERY_DELAYS_S) and len(_calls(rsps, "POST")) == 1


def test_settling_stops_within_its_time_budget(rsps, client, creds, clock):
    """GIVEN each lookup takes long WHEN settling THEN no lookup starts past SETTLE_BUDGET_S."""
    rsps.post(ORDER_URL, body=requests.exceptions.ReadTimeout("read timed out"))

    def slow_absent(request):
        clock.now += 3.0
        return 400, {}, '{"code": -2013, "msg": "Order does not exist."}'

    rsps.add_callback("GET", ORDER_URL, callback=slow_absent)

    with pytest.raises(KlineoError):
        submit_futures_order(client, creds, LIMIT, CLIENT_ORDER_ID, clock=clock, sleep=clock.sleep)

    lookups = len(_calls(rsps, "GET"))
    assert 1 <= lookups < len(QUERY_DELAYS_S)
    assert lookups * 3.0 + sum(QUERY_DELAYS_S[:lookups]) <= SETTLE_BUDGET_S + 3.0


# ---------------------------------------------------------------- duplicate id (-4116)


def test_duplicate_client_order_id_returns_the_existing_order(rsps, client, creds, clock):
    """GIVEN Binance answers -4116 WHEN submitting THEN the open order with that id is returned."""
    rsps.post(ORDER_URL, status=400, json={"code": -4116, "msg": "ClientOrderId is duplicated."})
    rsps.get(ORDER_URL, json=_order_body())

    result = submit_futures_order(client, creds, LIMIT, CLIENT_ORDER_ID, clock=clock, sleep=clock.sleep)

    assert result.source == "existing" and result.order_id == 4100000001
    assert len(_calls(rsps, "POST")) == 1


def test_duplicate_id_not_found_by_symbol_is_a_duplicate_order_error(rsps, client, creds, clock):
    """GIVEN -4116 but no such order on this symbol WHEN submitting THEN duplicate_order, nothing re-sent."""
    rsps.post(ORDER_URL, status=400, json={"code": -4116, "msg": "ClientOrderId is duplicated."})
    rsps.get(ORDER_URL, status=400, json={"code": -2013, "msg": "Order does not exist."})

    with pytest.raises(KlineoError) as raised:
        submit_futures_order(client, creds, LIMIT, CLIENT_ORDER_ID, clock=clock, sleep=clock.sleep)

    assert raised.value.category is ErrorCategory.DUPLICATE_ORDER and raised.value.code == -4116
    assert len(_calls(rsps, "POST")) == 1


# ---------------------------------------------------------------- repeating an earlier attempt


def test_earlier_attempt_found_is_returned_without_sending(rsps, client, creds, clock):
    """GIVEN an earlier attempt that reached Binance WHEN submitting again THEN its order, no POST."""
    rsps.get(ORDER_URL, json=_order_body("FILLED"))

    result = submit_futures_order(
        client,
        creds,
        LIMIT,
        CLIENT_ORDER_ID,
        earlier_attempt_ms=int(clock() * 1000) - 1000,
        clock=clock,
        sleep=clock.sleep,
    )

    assert result.source == "existing" and result.status == "FILLED"
    assert _calls(rsps, "POST") == []


def test_recent_earlier_attempt_absent_is_not_resent(rsps, client, creds, clock):
    """GIVEN an earlier attempt within recvWindow + margin, absent WHEN resubmitted THEN unknown, no POST."""
    rsps.get(ORDER_URL, status=400, json={"code": -2013, "msg": "Order does not exist."})
    claims: list[bool] = []

    with pytest.raises(KlineoError) as raised:
        submit_futures_order(
            client,
            creds,
            LIMIT,
            CLIENT_ORDER_ID,
            earlier_attempt_ms=int(clock() * 1000) - 10_000,
            before_resend=lambda: claims.append(True),
            clock=clock,
            sleep=clock.sleep,
        )

    assert raised.value.category is ErrorCategory.UNKNOWN_OUTCOME and CLIENT_ORDER_ID in raised.value.message
    assert _calls(rsps, "POST") == [] and claims == []


def test_old_earlier_attempt_absent_is_sent_again_after_the_claim(rsps, client, creds, clock):
    """GIVEN an earlier attempt past recvWindow + margin, absent WHEN resubmitted THEN claimed, sent once."""
    rsps.get(ORDER_URL, status=400, json={"code": -2013, "msg": "Order does not exist."})
    rsps.post(ORDER_URL, json=_order_body())
    claims: list[bool] = []
    earlier = int(clock() * 1000) - 10_000 - SETTLE_MARGIN_MS - 1

    result = submit_futures_order(
        client,
        creds,
        LIMIT,
        CLIENT_ORDER_ID,
        earlier_attempt_ms=earlier,
        before_resend=lambda: claims.append(True),
        clock=clock,
        sleep=clock.sleep,
    )

    assert result.source == "placed" and claims == [True]
    assert len(_calls(rsps, "POST")) == 1


def test_a_late_not_found_answer_counts_from_the_lookups_request(rsps, client, creds, clock):
    """GIVEN a lookup sent within recvWindow + margin whose -2013 arrives past it WHEN resubmitted THEN
    unknown, no POST: "does not exist" is Binance's word as of the request, the earlier one may land later."""
    earlier = int(clock() * 1000) - 10_000 - SETTLE_MARGIN_MS + 2_000  # 2 s short of provably lost

    def late_answer(request: object) -> tuple[int, dict, str]:
        clock.now += 3.0  # the answer comes back 3 s after Binance read its state
        return 400, {}, '{"code": -2013, "msg": "Order does not exist."}'

    rsps.add_callback("GET", ORDER_URL, callback=late_answer)

    with pytest.raises(KlineoError) as raised:
        submit_futures_order(client, creds, LIMIT, CLIENT_ORDER_ID, earlier_attempt_ms=earlier,
                             clock=clock, sleep=clock.sleep)

    assert raised.value.category is ErrorCategory.UNKNOWN_OUTCOME and _calls(rsps, "POST") == []


def test_lost_claim_stops_the_second_send(rsps, client, creds, clock):
    """GIVEN another retry won the claim WHEN submitting again THEN its error stands and nothing is sent."""
    rsps.get(ORDER_URL, status=400, json={"code": -2013, "msg": "Order does not exist."})

    def lose() -> None:
        raise KlineoError(ErrorCategory.CONFLICT, "someone else is placing it", retryable=True)

    with pytest.raises(KlineoError) as raised:
        submit_futures_order(
            client,
            creds,
            LIMIT,
            CLIENT_ORDER_ID,
            earlier_attempt_ms=int(clock() * 1000) - 60_000,  # past recvWindow, well within retention
            before_resend=lose,
            clock=clock,
            sleep=clock.sleep,
        )

    assert raised.value.category is ErrorCategory.CONFLICT
    assert _calls(rsps, "POST") == []


# ---------------------------------------------------------------- outcome metrics


def _order_counts() -> dict[str, float]:
    """Sums of the Orders* metrics recorded since the last clear (what the next flush would publish)."""
    tally.drain()  # as the flush does: the tally's counts join the metric set
    return {
        name: sum(entry["Value"])
        for name, entry in metrics.metric_set.items()
        if name.startswith("Orders")
    }


def test_an_unknown_outcome_then_its_settlement_are_counted_once_each(rsps, client, creds, clock):
    """GIVEN a lost answer never shown, then a later call that finds the order WHEN both run THEN
    OrdersUnknownOutcome 1, then OrdersExisting 1 and OrdersUnknownSettled 1 (what the alarm compares)."""
    metrics.clear_metrics()
    rsps.post(ORDER_URL, body=requests.exceptions.ConnectionError("connection reset after send"))
    rsps.get(ORDER_URL, status=400, json={"code": -2013, "msg": "Order does not exist."})
    with pytest.raises(KlineoError):
        submit_futures_order(client, creds, LIMIT, CLIENT_ORDER_ID, clock=clock, sleep=clock.sleep)
    after_loss = _order_counts()

    rsps.replace("GET", ORDER_URL, json=_order_body("FILLED"))
    submit_futures_order(
        client, creds, LIMIT, CLIENT_ORDER_ID,
        earlier_attempt_ms=int(clock() * 1000) - 1000, clock=clock, sleep=clock.sleep,
    )

    assert after_loss == {"OrdersUnknownOutcome": 1}
    assert _order_counts() == {"OrdersUnknownOutcome": 1, "OrdersExisting": 1, "OrdersUnknownSettled": 1}
    metrics.clear_metrics()


def test_placed_and_refused_orders_are_counted_by_outcome(rsps, client, creds, clock):
    """GIVEN one accepted and one refused POST WHEN submitted THEN OrdersPlaced 1 and OrdersRejected 1."""
    metrics.clear_metrics()
    rsps.post(ORDER_URL, json=_order_body("NEW"))
    submit_futures_order(client, creds, LIMIT, CLIENT_ORDER_ID, clock=clock, sleep=clock.sleep)
    rsps.replace("POST", ORDER_URL, status=400, json={"code": -2019, "msg": "Margin is insufficient."})
    with pytest.raises(KlineoError):
        submit_futures_order(client, creds, LIMIT, CLIENT_ORDER_ID, clock=clock, sleep=clock.sleep)

    assert _order_counts() == {"OrdersPlaced": 1, "OrdersRejected": 1}
    metrics.clear_metrics()


@pytest.mark.parametrize(("status", "body", "counted"), [
    (400, {"code": -2023, "msg": "User in liquidation mode now."}, "OrdersRejected"),
    (429, {"code": -1015, "msg": "Too many new orders."}, "OrdersNotSent"),
], ids=["lifts_by_itself", "rate_limit"])
def test_a_refusal_that_lifts_by_itself_is_counted_rejected_not_unsent(rsps, client, creds, clock, status,
                                                                         body, counted):
    """GIVEN a POST Binance refuses with a code whose refusal lifts by itself (-2023, retryable) WHEN sent
    THEN it counts as OrdersRejected (Binance refused it), while a rate limit still counts as OrdersNotSent
    (before: -2023 counted as never sent, for its retryable rule)."""
    metrics.clear_metrics()
    rsps.post(ORDER_URL, status=status, json=body, headers={"Retry-After": "0"})
    with pytest.raises(KlineoError):
        submit_futures_order(client, creds, LIMIT, CLIENT_ORDER_ID, clock=clock, sleep=clock.sleep)

    assert _order_counts() == {counted: 1}
    metrics.clear_metrics()


def test_an_unrecorded_attempts_order_found_is_counted_as_settled_and_its_params_are_binances(
        rsps, client, creds):
    """GIVEN an attempt that stopped before its outcome (no parameters recorded) WHEN its order is found by
    find_earlier_order THEN OrdersExisting 1 and OrdersUnknownSettled 1, as the exactly-once flow counts a
    found order, and sent_params gives the parameters Binance holds (one GET, nothing sent)."""
    from klineo.services.algo_orders import find_earlier_order, sent_params
    from klineo.store.orders import pending_record

    metrics.clear_metrics()
    rsps.get(ORDER_URL, json=_order_body("FILLED", executedQty="0.010", avgPrice="20000.0"))
    record = pending_record("user-a", CLIENT_ORDER_ID, connection_id="c" * 32, symbol="BTCUSDT",
                            request={}, params={}, attempt_ms=1_000)

    found = find_earlier_order(client, creds, record)

    assert _order_counts() == {"OrdersExisting": 1, "OrdersUnknownSettled": 1}
    assert sent_params(found) == LIMIT.to_params(CLIENT_ORDER_ID)
    assert (len(_calls(rsps, "GET")), len(_calls(rsps, "POST"))) == (1, 0)
    metrics.clear_metrics()
