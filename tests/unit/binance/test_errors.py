"""Error taxonomy: every Binance code and HTTP status of facts §4 maps to the right category, safely."""

from __future__ import annotations

import pickle

import pytest
from klineo.binance import ErrorCategory, KlineoError, classify, classify_detail
from klineo.binance.codes import CODE_TABLE, position_mode_refusal

C = ErrorCategory

# (HTTP status, Binance code, Binance message, expected category, expected field)
CASES = [
    (400, -1000, "An unknown error occurred while processing the request.", C.UNKNOWN_OUTCOME, None),
    (400, -1000, "An unknown error occured while processing the request.", C.UNKNOWN_OUTCOME, None),
    (
        500,
        -1001,
        "Internal error; unable to process your request. Please try again.",
        C.UPSTREAM_UNAVAILABLE,
        None,
    ),
    (429, -1003, "Too many requests queued.", C.RATE_LIMIT, None),
    (
        429,
        -1003,
        "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. Please use "
        "WebSocket Streams for live updates to avoid polling the API.",
        C.RATE_LIMIT,
        None,
    ),
    (
        418,
        -1003,
        "Way too much request weight used; IP banned until 1700000120000. Please use WebSocket Streams "
        "for live updates to avoid bans.",
        C.IP_BANNED,
        None,
    ),
    (
        429,
        -1003,
        "Too many requests; current limit is 2400 requests per minute. Please use the websocket for live "
        "updates to avoid polling the API.",
        C.RATE_LIMIT,
        None,
    ),
    (
        429,
        -1003,
        "Way too many requests; IP banned until 1700000120000. Please use the websocket.",
        C.IP_BANNED,
        None,
    ),
    (
        503,
        -1007,
        "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
        C.UNKNOWN_OUTCOME,
        None,
    ),
    (
        503,
        -1008,
        "Request throttled by system-level protection. Reduce-only/close-position orders are exempt. "
        "Please try again.",
        C.UPSTREAM_UNAVAILABLE,
        None,
    ),
    (
        503,
        -1008,
        "Server is currently overloaded with other requests. Please try again in a few minutes.",
        C.UPSTREAM_UNAVAILABLE,
        None,
    ),
    (400, -1013, "Filter failure: LOT_SIZE", C.INVALID_REQUEST, "quantity"),
    (400, -1013, "Filter failure: PRICE_FILTER", C.INVALID_REQUEST, "price"),
    (400, -1013, "Filter failure: NOTIONAL", C.INVALID_REQUEST, "quantity"),
    (400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.", C.TIMESTAMP, None),
    (400, -1021, "Timestamp for this request is outside of the recvWindow.", C.TIMESTAMP, None),
    (400, -1022, "Signature for this request is not valid.", C.SIGNATURE, None),
    (
        400,
        -1100,
        "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[a-zA-Z0-9-_]{1,36}$'.",
        C.INVALID_REQUEST,
        "newClientOrderId",
    ),
    (
        400,
        -1102,
        "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.",
        C.INVALID_REQUEST,
        "quantity",
    ),
    (
        400,
        -1102,
        "Param 'orderId' or 'origClientOrderId' must be sent, but both were empty/null!",
        C.INVALID_REQUEST,
        "orderId",
    ),
    (400, -1111, "Parameter 'quantity' has too much precision.", C.INVALID_REQUEST, "quantity"),
    (400, -1111, "Precision is over the maximum defined for this asset.", C.INVALID_REQUEST, None),
    (400, -1121, "Invalid symbol.", C.INVALID_REQUEST, "symbol"),
    (400, -2010, "Duplicate order sent.", C.DUPLICATE_ORDER, None),
    (400, -2010, "Account has insufficient balance for requested action.", C.INSUFFICIENT_BALANCE, None),
    (400, -2010, "Market is closed.", C.ORDER_REJECTED, None),
    (400, -2010, "Order would immediately match and take.", C.ORDER_REJECTED, None),
    (400, -2011, "Unknown order sent.", C.ORDER_NOT_FOUND, None),
    (400, -2011, "Cancel request failure as open order not found in the orderbook", C.ORDER_NOT_FOUND, None),
    (400, -2013, "Order does not exist.", C.ORDER_NOT_FOUND, None),
    (401, -2014, "API-key format invalid.", C.PERMISSION, None),
    (401, -2015, "Invalid API-key, IP, or permissions for action.", C.PERMISSION, None),
    (
        401,
        -2015,
        "Invalid API-key, IP, or permissions for action, request ip: 203.0.113.5",
        C.PERMISSION,
        None,
    ),
    (400, -2019, "Margin is insufficient.", C.INSUFFICIENT_BALANCE, None),
    (400, -4003, "Quantity less than or equal to zero.", C.INVALID_REQUEST, "quantity"),
    (400, -4004, "Quantity less than min quantity.", C.INVALID_REQUEST, "quantity"),
    (400, -4005, "Quantity greater than max quantity.", C.INVALID_REQUEST, "quantity"),
    (400, -4013, "Price less than min price.", C.INVALID_REQUEST, "price"),
    (400, -4014, "Price not increased by tick size.", C.INVALID_REQUEST, "price"),
    (
        400,
        -4015,
        "Client order id length should not be more than 36 chars",
        C.INVALID_REQUEST,
        "newClientOrderId",
    ),
    (400, -4023, "Qty not increased by step size.", C.INVALID_REQUEST, "quantity"),
    (400, -4028, "Leverage 200 is not valid", C.INVALID_REQUEST, "leverage"),
    (400, -4061, "Order's position side does not match user's setting.", C.INVALID_REQUEST, "positionSide"),
    (400, -4116, "ClientOrderId is duplicated.", C.DUPLICATE_ORDER, None),
    (400, -4116, "clientOrderId is duplicated", C.DUPLICATE_ORDER, None),
    (
        400,
        -4117,
        "Stop order is in triggering process. Please try again later.",
        C.UPSTREAM_UNAVAILABLE,
        None,
    ),
    (
        400,
        -4120,
        "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.",
        C.INVALID_REQUEST,
        "type",
    ),
    (
        400,
        -4164,
        "Order's notional must be no smaller than 5 (unless you choose reduce only).",
        C.INVALID_REQUEST,
        "quantity",
    ),
    (400, -5028, "Timestamp for this request is outside of the ME recvWindow.", C.TIMESTAMP, None),
    # HTTP statuses without a Binance code (WAF pages, gateways, empty bodies).
    (403, None, "", C.RATE_LIMIT, None),
    (408, None, "", C.UNKNOWN_OUTCOME, None),
    (418, None, "", C.IP_BANNED, None),
    (429, None, "", C.RATE_LIMIT, None),
    (451, None, "", C.RESTRICTED, None),
    (451, -2015, "Service unavailable from a restricted location", C.RESTRICTED, None),
    (503, None, "Unknown error, please check your request or try again later.", C.UNKNOWN_OUTCOME, None),
    (503, None, "Service Unavailable.", C.UPSTREAM_UNAVAILABLE, None),
    (
        503,
        None,
        "Internal error; unable to process your request. Please try again.",
        C.UPSTREAM_UNAVAILABLE,
        None,
    ),
    (503, None, "", C.UNKNOWN_OUTCOME, None),
    (500, None, "", C.UNKNOWN_OUTCOME, None),
    (502, None, "", C.UNKNOWN_OUTCOME, None),
    (504, None, "", C.UNKNOWN_OUTCOME, None),
    (400, None, "", C.INVALID_REQUEST, None),
    (401, None, "", C.PERMISSION, None),
    (404, None, "", C.OTHER, None),
    (None, None, "", C.NETWORK, None),
    (400, -9999, "A code nobody knows", C.INVALID_REQUEST, None),
    # issue 12 fidelity fixes: texts from the USDⓈ-M error-code page (docs/binance-facts.md §11)
    (400, -5021, "Due to the order could not be filled immediately, the FOK order has been rejected.",
     C.ORDER_REJECTED, None),
    (400, -5022, "Due to the order could not be executed as maker, the Post Only order will be rejected.",
     C.ORDER_REJECTED, None),
    (400, -4118, "ReduceOnly Order Failed. Please check your existing position and open orders",
     C.ORDER_REJECTED, None),
    (400, -2025, "Reach max open order limit.", C.ORDER_REJECTED, None),
    (400, -4400, "Futures Trading Quantitative Rules violated, only reduceOnly order is allowed, please try "
     "again later.", C.ORDER_REJECTED, None),
    (400, -4401, "Futures Trading Risk Control Rules of large position holding violated, only reduceOnly "
     "order is allowed, please reduce the position. .", C.ORDER_REJECTED, None),
    (400, -4189, "Restricted account permission: can only place reduceOnly order on the symbol.",
     C.RESTRICTED, None),
    (400, -4192, "Trade forbidden due to Cooling-off Period.", C.ORDER_REJECTED, None),
    (400, -4402, "Dear user, as per our Terms of Use and compliance with local regulations, this feature is "
     "currently not available in your region.", C.RESTRICTED, None),
    (400, -2023, "User in liquidation mode now.", C.ORDER_REJECTED, None),
    *[(400, code, "Leverage adjustment failed.", C.INVALID_REQUEST, "leverage")
      for code in (-4202, -4203, -4204, -4205, -4206, -4207, -4208, -4209, -4403)],
    (400, -4001, "Price less than 0.", C.INVALID_REQUEST, "price"),
    (400, -4002, "Price greater than max price.", C.INVALID_REQUEST, "price"),
    (400, -4025, "Multiplier decimal less than zero.", C.INVALID_REQUEST, "price"),
    # the PERCENT_PRICE bands of conditional orders (docs/binance-facts.md §6)
    (400, -4183, "Limit price can't be higher than 63000.", C.INVALID_REQUEST, "price"),
    (400, -4184, "Limit price can't be lower than 57000.", C.INVALID_REQUEST, "price"),
    # -2021: futures' "would immediately trigger" (its trigger price); spot's cancel-replace partly done
    (400, -2021, "Order would immediately trigger.", C.ORDER_REJECTED, "stopPrice"),
    (409, -2021, "Order cancel-replace partially failed.", C.ORDER_REJECTED, None),
]


@pytest.mark.parametrize(("status", "code", "msg", "category", "field"), CASES)
def test_classify_maps_every_documented_code_and_status(status, code, msg, category, field):
    """GIVEN a Binance answer from facts §4 WHEN classified THEN category and field are as documented."""
    result = classify_detail(status, code, msg)
    assert result.category is category
    assert result.field == field
    assert classify(status, code, msg) == (result.category, " ".join(filter(None, (result.message,
                                                                                   result.advice))))


@pytest.mark.parametrize(("status", "code", "msg", "category", "field"), CASES)
def test_classified_messages_never_echo_binance_text(status, code, msg, category, field):
    """GIVEN any Binance message WHEN classified THEN our message copies no IP, limit or raw text."""
    _, message = classify(status, code, msg)
    assert message
    assert "203.0.113.5" not in message and "1700000120000" not in message
    if msg and len(msg) > 20:
        assert msg not in message


def test_every_facts_code_is_in_the_one_table():
    """GIVEN the codes of facts §4 WHEN looked up THEN each has an explicit row in CODE_TABLE."""
    documented = {
        -1000,
        -1001,
        -1003,
        -1007,
        -1008,
        -1013,
        -1021,
        -1022,
        -1100,
        -1102,
        -1111,
        -1121,
        -2010,
        -2011,
        -2013,
        -2014,
        -2015,
        -2019,
        -4003,
        -4004,
        -4005,
        -4013,
        -4014,
        -4015,
        -4023,
        -4028,
        -4061,
        -4116,
        -4117,
        -4120,
        -4164,
        -5028,
    }
    assert documented <= set(CODE_TABLE)


def test_timestamp_message_tells_the_user_to_retry():
    """GIVEN -1021 WHEN classified THEN the message says the backend resyncs and asks for a retry."""
    for msg in (
        "Timestamp for this request is outside of the recvWindow.",
        "Timestamp for this request was 1000ms ahead of the server's time.",
    ):
        _, message = classify(400, -1021, msg)
        assert "resync" in message and "retry" in message


@pytest.mark.parametrize(
    "body_msg",
    ["<html><body><h1>403 Forbidden</h1>Request blocked by WAF</body></html>", "", None, 12345],
)
def test_non_json_or_odd_messages_classify_without_raising(body_msg):
    """GIVEN an HTML page, an empty body or a non-string message WHEN classified THEN the status decides."""
    assert classify(403, None, body_msg)[0] is C.RATE_LIMIT
    assert classify(502, None, body_msg)[0] is C.UNKNOWN_OUTCOME


@pytest.mark.parametrize(
    ("category", "retryable"),
    [
        (C.PERMISSION, False),
        (C.TIMESTAMP, True),
        (C.SIGNATURE, False),
        (C.IP_WHITELIST, False),
        (C.RATE_LIMIT, True),
        (C.IP_BANNED, True),
        (C.RESTRICTED, False),
        (C.INVALID_REQUEST, False),
        (C.INSUFFICIENT_BALANCE, False),
        (C.ORDER_REJECTED, False),
        (C.DUPLICATE_ORDER, False),
        (C.ORDER_NOT_FOUND, False),
        (C.UNKNOWN_OUTCOME, False),
        (C.UPSTREAM_UNAVAILABLE, True),
        (C.NETWORK, True),
        (C.OTHER, False),
        (C.NOT_FOUND, False),
        (C.CONFLICT, False),
    ],
)
def test_each_category_says_whether_a_retry_is_safe(category, retryable):
    """GIVEN a category WHEN asked THEN retryable is set (never for unknown_outcome: look it up)."""
    assert category.retryable is retryable
    assert KlineoError(category).retryable is retryable
    assert category.value == category.value.lower()


def test_metric_names_match_the_template_alarm():
    """GIVEN ip_banned WHEN its metric is named THEN it is BinanceIpBanned, as template.yaml alarms on."""
    assert C.IP_BANNED.metric_name == "BinanceIpBanned"
    assert C.UNKNOWN_OUTCOME.metric_name == "BinanceUnknownOutcome"
    assert len({c.metric_name for c in C}) == len(C)


def test_klineo_error_carries_its_details_and_survives_pickling():
    """GIVEN an app-level error WHEN printed and pickled THEN its fields stay and str is the message."""
    err = KlineoError(
        C.INVALID_REQUEST, "quantity must be positive", field="quantity", status=400, code=-4003
    )
    assert str(err) == "quantity must be positive"
    assert err.to_dict() == {
        "category": "invalid_request",
        "message": "quantity must be positive",
        "retryable": False,
        "field": "quantity",
    }
    copy = pickle.loads(pickle.dumps(err))  # noqa: S301 -- our own bytes, round-tripped
    assert (copy.category, copy.message, copy.field, copy.status, copy.code) == (
        C.INVALID_REQUEST,
        "quantity must be positive",
        "quantity",
        400,
        -4003,
    )
    assert KlineoError("not_found").message == C.NOT_FOUND.default_message


# (Binance code, message, whether it refuses the order for the account's position mode)
MODE_CASES = [
    (-4061, "Order's position side does not match user's setting.", True),
    (-1106, "Parameter 'reduceonly' sent when not required.", True),
    (-1106, "Parameter 'reduceOnly' sent when not required.", True),
    (-1106, "Parameter 'closePosition' sent when not required.", False),
    (-1102, "Mandatory parameter 'positionSide' was not sent, was empty/null, or malformed.", False),
    (-2022, "ReduceOnly Order is rejected.", False),
    (-4164, "Order's notional must be no smaller than 100 (unless you choose reduce only).", False),
]


@pytest.mark.parametrize(("code", "msg", "mode"), MODE_CASES)
def test_a_position_mode_refusal_is_told_by_its_code_and_the_field_its_classification_names(code, msg, mode):
    """-4061 (positionSide) and -1106 naming reduceOnly, as classified, are position-mode refusals; -1106
    naming another parameter, or another code naming positionSide, is not."""
    assert position_mode_refusal(code, classify_detail(400, code, msg).field) is mode


def test_our_own_gates_position_side_refusal_is_no_binance_position_mode_refusal():
    """A refusal without a Binance code (the risk gate's own, naming positionSide) is not Binance's."""
    assert position_mode_refusal(None, "positionSide") is False


@pytest.mark.parametrize(("code", "msg"), [
    (-4140, "Invalid symbol status for opening position."),
    (-1122, "Invalid symbol status."),
    (-4141, "Symbol is closed."),
    (-1013, "Market is closed."),  # spot
])
def test_an_order_refused_for_the_symbols_status_names_the_symbol(code, msg):
    """GIVEN Binance's answers to an order on a symbol it does not trade now (facts §15) WHEN classified THEN
    invalid_request on field symbol saying so, not retryable (never a retry storm, never a 500)."""
    result = classify_detail(400, code, msg)
    assert (result.category, result.field) == (ErrorCategory.INVALID_REQUEST, "symbol")
    assert "not trading" in result.message and not result.category.retryable


def test_a_spot_filter_failure_still_names_its_filter_field():
    """GIVEN spot -1013 for a filter WHEN classified THEN the market-closed rule leaves it as it was."""
    assert classify_detail(400, -1013, "Filter failure: LOT_SIZE").field == "quantity"


def test_a_key_of_the_other_environment_keeps_where_it_belongs_through_pickling():
    """GIVEN a KeyOfOtherEnvironment WHEN pickled and written as a dict THEN suggested_environment stays."""
    from klineo.errors import KeyOfOtherEnvironment

    err = KeyOfOtherEnvironment("This key belongs to the Binance testnet.", "testnet", field="environment")
    copy = pickle.loads(pickle.dumps(err))  # noqa: S301 -- our own bytes, round-tripped
    assert isinstance(copy, KeyOfOtherEnvironment)
    assert (copy.suggested_environment, copy.field, copy.message) == ("testnet", "environment", err.message)
    assert copy.to_dict()["suggested_environment"] == "testnet" and copy.category is C.PERMISSION
