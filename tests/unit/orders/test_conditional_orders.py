"""Conditional, protective and quote-size orders without Binance: request rules, params, ids, rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest
from klineo.binance import Market
from klineo.binance.filters import parse_symbol_rules
from klineo.errors import KlineoError
from klineo.models.futures import FuturesOrderRequest
from klineo.services.algo_orders import AlgoOrder, algo_result, prepare_algo_order
from klineo.services.protective import check_protective_ticks
from klineo.services.protective_siblings import protective_client_algo_id
from klineo.validation import CLIENT_ORDER_ID_RE
from pydantic import ValidationError

CONNECTION = "0123456789abcdef0123456789abcdef"
RULES = parse_symbol_rules({
    "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
    "filters": [
        {"filterType": "PRICE_FILTER", "tickSize": "0.10", "minPrice": "556.80", "maxPrice": "4529764"},
        {"filterType": "LOT_SIZE", "stepSize": "0.001", "minQty": "0.001", "maxQty": "1000"},
        {"filterType": "MARKET_LOT_SIZE", "stepSize": "0.001", "minQty": "0.001", "maxQty": "120"},
        {"filterType": "MIN_NOTIONAL", "notional": "100"},
    ],
}, Market.FUTURES)


def _request(**changes) -> FuturesOrderRequest:
    fields = {"connection_id": CONNECTION, "symbol": "BTCUSDT", "side": "SELL", **changes}
    return FuturesOrderRequest(**fields)


def _refused_fields(**changes) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        _request(**changes)
    return [str(error["loc"][0]) for error in caught.value.errors()]


@pytest.mark.parametrize(("changes", "field"), [
    ({"type": "STOP_MARKET", "quantity": "0.01"}, "triggerPrice"),
    ({"type": "MARKET", "quantity": "0.01", "triggerPrice": "1"}, "triggerPrice"),
    ({"type": "TRAILING_STOP_MARKET", "quantity": "0.01"}, "callbackRate"),
    ({"type": "TRAILING_STOP_MARKET", "quantity": "0.01", "callbackRate": "21"}, "callbackRate"),
    ({"type": "STOP_MARKET", "quantity": "0.01", "triggerPrice": "1", "activationPrice": "2"},
     "activationPrice"),
    ({"type": "STOP", "quantity": "0.01", "triggerPrice": "1"}, "price"),
    ({"type": "STOP", "closePosition": True, "triggerPrice": "1", "price": "1"}, "closePosition"),
    ({"type": "STOP_MARKET", "closePosition": True, "reduceOnly": True, "triggerPrice": "1"},
     "closePosition"),
    ({"type": "STOP_MARKET", "closePosition": True, "quantity": "0.01", "triggerPrice": "1"}, "quantity"),
    ({"type": "STOP_MARKET", "closePosition": True, "quote_quantity": "100", "triggerPrice": "1"},
     "quote_quantity"),
    ({"type": "MARKET"}, "quantity"),
    ({"type": "MARKET", "quantity": "0.01", "quote_quantity": "100"}, "quote_quantity"),
    ({"type": "MARKET", "quantity": "0.01", "workingType": "MARK_PRICE"}, "workingType"),
    ({"type": "STOP_MARKET", "quantity": "0.01", "triggerPrice": "1", "stop_loss": {"percent": "1"}},
     "stop_loss"),
    ({"type": "MARKET", "quantity": "0.01", "reduceOnly": True, "take_profit": {"percent": "1"}},
     "take_profit"),
    ({"type": "MARKET", "quantity": "0.01", "stop_loss": {"percent": "1", "price": "1"}}, "stop_loss"),
    ({"type": "MARKET", "quantity": "0.01", "stop_loss": {"percent": "100"}}, "stop_loss"),
])
def test_each_conditional_rule_names_its_field(changes, field):
    """A body breaking one rule is refused with exactly that field named."""
    assert _refused_fields(**changes) == [field]


@pytest.mark.parametrize("rate", ["0.1", "10.5", "20"])
def test_trailing_callback_rate_up_to_20_is_accepted(rate):
    """callbackRate 0.1 to 20 passes: Binance raised the maximum from 10 to 20 on 2026-10-23."""
    order = _request(type="TRAILING_STOP_MARKET", quantity="0.01", callbackRate=rate)

    assert order.callbackRate == Decimal(rate)


def test_close_position_stop_needs_no_quantity():
    """STOP_MARKET with closePosition and triggerPrice is valid without quantity or quote_quantity."""
    order = _request(type="STOP_MARKET", closePosition=True, triggerPrice="60000")

    assert order.conditional and order.quantity is None


def test_fingerprint_of_a_plain_order_is_unchanged_by_the_new_fields():
    """A MARKET order's fingerprint holds only the fields that existed before (old records still match)."""
    fingerprint = _request(type="MARKET", quantity="0.01").fingerprint()

    assert set(fingerprint) == {"connection_id", "symbol", "side", "type", "quantity", "price", "timeInForce",
                                "reduceOnly", "positionSide"}


def _no_mark() -> Decimal:
    """The mark price reader of an order whose own prices value it: never called."""
    raise AssertionError("the mark price was read for an order that carries its own price")


def test_algo_order_params_round_trip_and_send_flags_only_when_true():
    """to_params/from_params are inverse; reduceOnly/closePosition are absent when false."""
    order = prepare_algo_order(RULES, _request(type="STOP", quantity="0.010", triggerPrice="60000.0",
                                               price="59990.00", workingType="MARK_PRICE"), _no_mark)

    params = order.to_params("abc-sl")

    assert params["quantity"] == "0.01" and params["triggerPrice"] == "60000" and params["price"] == "59990"
    assert params["timeInForce"] == "GTC" and "reduceOnly" not in params and "closePosition" not in params
    assert AlgoOrder.from_params(params) == order


def test_algo_order_below_min_notional_is_refused_before_sending():
    """A non-reducing STOP_MARKET under the minimum notional at its trigger is refused (quantity)."""
    with pytest.raises(KlineoError) as caught:
        prepare_algo_order(RULES, _request(type="STOP_MARKET", quantity="0.001", triggerPrice="60000"),
                           _no_mark)

    assert caught.value.field == "quantity"


@pytest.mark.parametrize(("side", "position_side", "changes"), [
    ("SELL", "LONG", {"type": "STOP_MARKET", "triggerPrice": "60000"}),
    ("BUY", "SHORT", {"type": "TAKE_PROFIT_MARKET", "triggerPrice": "60000"}),
    ("SELL", "LONG", {"type": "TRAILING_STOP_MARKET", "callbackRate": "1"}),
])
def test_a_hedge_close_below_min_notional_is_not_refused_before_sending(side, position_side, changes):
    """GIVEN a hedge-mode conditional order closing its side (SELL LONG, BUY SHORT: reduceOnly is refused
    there) worth 60 USDT at its trigger, under the minimum 100 WHEN prepared THEN it passes, as the one-way
    reduce-only one does (Binance books a hedge close reduce-only: -4164 exempts it), and reads no mark."""
    order = prepare_algo_order(RULES, _request(side=side, positionSide=position_side, quantity="0.001",
                                               **changes), _no_mark)

    assert (order.quantity, order.position_side, order.reduce_only) == (
        Decimal("0.001"), position_side, False)


def test_a_hedge_opening_below_min_notional_is_still_refused_before_sending():
    """GIVEN a hedge-mode STOP_MARKET that opens (BUY LONG) worth 60 USDT at its trigger WHEN prepared THEN
    refused naming quantity: only a close is exempt."""
    with pytest.raises(KlineoError) as caught:
        prepare_algo_order(RULES, _request(side="BUY", positionSide="LONG", type="STOP_MARKET",
                                           quantity="0.001", triggerPrice="60000"), _no_mark)

    assert caught.value.field == "quantity"


def test_trigger_price_below_min_price_names_trigger_price():
    """A triggerPrice under the symbol's minPrice is refused naming triggerPrice, not price."""
    with pytest.raises(KlineoError) as caught:
        prepare_algo_order(RULES, _request(type="STOP_MARKET", closePosition=True, triggerPrice="1"),
                           _no_mark)

    assert caught.value.field == "triggerPrice" and "triggerPrice" in caught.value.message


@pytest.mark.parametrize(("changes", "field", "value"), [
    ({"type": "STOP", "quantity": "0.0105", "triggerPrice": "60000", "price": "59990"}, "quantity", "0.0105"),
    ({"type": "STOP", "quantity": "0.01", "triggerPrice": "60000.05", "price": "59990"}, "triggerPrice",
     "60000.05"),
    ({"type": "STOP", "quantity": "0.01", "triggerPrice": "60000", "price": "59990.05"}, "price", "59990.05"),
    ({"type": "TRAILING_STOP_MARKET", "quantity": "0.01", "callbackRate": "1", "activationPrice": "60000.05"},
     "activationPrice", "60000.05"),
    ({"type": "LIMIT", "quantity": "0.01", "price": "60000", "timeInForce": "GTC",
      "stop_loss": {"price": "61000.05"}}, "stop_loss.price", "61000.05"),
    ({"type": "LIMIT", "quantity": "0.01", "price": "60000", "timeInForce": "GTC",
      "take_profit": {"price": "59000.05"}}, "take_profit.price", "59000.05"),
], ids=["quantity", "triggerPrice", "price", "activationPrice", "stop_loss", "take_profit"])
def test_an_off_grid_typed_value_is_refused_naming_the_field_the_request_gives_it_by(changes, field, value):
    """GIVEN an order with one typed value off the grid WHEN checked against the symbol's rules THEN the
    refusal names the field whose typed value (``typed_value``, which the dry run's valid_nearby reads too)
    is that very value: one home for which values are typed."""
    order = _request(**changes)

    with pytest.raises(KlineoError) as caught:
        if order.conditional:
            prepare_algo_order(RULES, order, _no_mark)
        else:
            check_protective_ticks(order, RULES)

    assert caught.value.field == field and order.typed_value(field) == Decimal(value)


def test_a_quantity_from_quote_quantity_and_untyped_fields_have_no_typed_value():
    """GIVEN a quote-sized STOP_MARKET with its converted quantity WHEN its typed values are asked THEN the
    quantity is not one (it was rounded down to the step), nor is callbackRate, nor an unknown field."""
    order = _request(type="STOP_MARKET", quote_quantity="100", triggerPrice="60000").model_copy(
        update={"quantity": Decimal("0.001")})
    trailing = _request(type="TRAILING_STOP_MARKET", quantity="0.01", callbackRate="1")

    typed = [order.typed_value(field) for field in ("quantity", "triggerPrice", "price")]
    assert typed == [None, Decimal(60000), None]
    assert (trailing.typed_value("callbackRate"), trailing.typed_value("max_notional_usdt")) == (None, None)


def test_algo_answer_reads_into_an_order_result():
    """Binance's algo object (orderType, algoStatus, algoId as string-free int) maps onto OrderResult."""
    result = algo_result({"algoId": 1000000033000001, "clientAlgoId": "x-sl", "orderType": "STOP_MARKET",
                          "symbol": "BTCUSDT", "side": "SELL", "positionSide": "BOTH", "quantity": "0.002",
                          "algoStatus": "NEW", "triggerPrice": "58000", "price": "0", "reduceOnly": True,
                          "closePosition": False, "createTime": 5}, "placed")

    assert (result.kind, result.order_id, result.type, result.status) == ("algo", 1000000033000001,
                                                                          "STOP_MARKET", "NEW")
    assert result.trigger_price == Decimal(58000) and result.price is None and result.reduce_only


@pytest.mark.parametrize("entry", ["k" + "a" * 35, "klneo_1767225600000_0123456789abcdef", "short"])
def test_protective_ids_stay_within_binance_rule_and_differ_per_role(entry):
    """-sl/-tp ids derived from any entry id are valid clientAlgoIds (≤ 36) and distinct."""
    ids = {protective_client_algo_id(entry, role) for role in ("stop_loss", "take_profit")}

    assert len(ids) == 2 and all(CLIENT_ORDER_ID_RE.fullmatch(i) for i in ids)


def test_quote_quantity_rounds_down_and_refuses_below_min_notional():
    """500 USDT at 65432.1 → 0.007 BTC (floored); 50 USDT is under the 100 USDT minimum → quote_quantity."""
    assert RULES.quantity_for_quote(Decimal(500), Decimal("65432.1"), True) == Decimal("0.007")
    with pytest.raises(KlineoError) as caught:
        RULES.quantity_for_quote(Decimal(50), Decimal("65432.1"), True)
    assert caught.value.field == "quote_quantity"


def test_a_quote_quantity_too_small_for_one_step_is_refused_without_repeating_it():
    """1.2345 USDT at 65432.1 buys less than BTCUSDT's minimum quantity: refused naming quote_quantity, with
    the minimum and the price, and never the amount the caller sent."""
    with pytest.raises(KlineoError) as caught:
        RULES.quantity_for_quote(Decimal("1.2345"), Decimal("65432.1"), True)
    assert caught.value.field == "quote_quantity"
    assert "minimum quantity" in caught.value.message and "1.2345" not in caught.value.message
