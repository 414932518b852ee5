"""Target position and the order that reaches it, rounded to the symbol's futures filters.

Rules used: BTCUSDT-like futures filters, LOT_SIZE step 0.001 from minQty 0.001, MIN_NOTIONAL 100.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from klineo.binance import ErrorCategory, KlineoError, Market
from klineo.binance.filters import parse_symbol_rules
from klineo.runner.execution import plan_order
from klineo.strategies import Signal

RULES = parse_symbol_rules({
    "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
    "orderTypes": ["LIMIT", "MARKET"],
    "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "556.80", "maxPrice": "4529764", "tickSize": "0.10"},
        {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "120", "stepSize": "0.001"},
        {"filterType": "MIN_NOTIONAL", "notional": "100"},
    ],
}, Market.FUTURES)
PRICE = Decimal("65000")


def test_long_from_flat_buys_the_size_rounded_down_to_the_step() -> None:
    """GIVEN flat and size 0.0025 WHEN the signal is LONG THEN BUY 0.002 (target +0.002)."""
    plan = plan_order(Signal.LONG, Decimal("0.0025"), Decimal(0), RULES, PRICE)
    assert (plan.target, plan.side, plan.quantity, plan.reduce_only) == (
        Decimal("0.002"), "BUY", Decimal("0.002"), False)


def test_short_from_long_flips_in_one_order() -> None:
    """GIVEN long 0.002 WHEN the signal is SHORT THEN SELL 0.004 (not reduce-only: it opens a short)."""
    plan = plan_order(Signal.SHORT, Decimal("0.002"), Decimal("0.002"), RULES, PRICE)
    assert (plan.target, plan.side, plan.quantity, plan.reduce_only) == (
        Decimal("-0.002"), "SELL", Decimal("0.004"), False)


def test_flat_from_long_closes_reduce_only() -> None:
    """GIVEN long 0.002 WHEN the signal is FLAT THEN SELL 0.002 reduce-only (never opens a short)."""
    plan = plan_order(Signal.FLAT, Decimal("0.002"), Decimal("0.002"), RULES, PRICE)
    assert (plan.target, plan.side, plan.quantity, plan.reduce_only) == (
        Decimal(0), "SELL", Decimal("0.002"), True)


def test_smaller_size_reduces_reduce_only_even_below_min_notional() -> None:
    """GIVEN long 0.004 and size 0.002 WHEN LONG THEN SELL 0.002 reduce-only (130 USDT would pass anyway)."""
    plan = plan_order(Signal.LONG, Decimal("0.002"), Decimal("0.004"), RULES, PRICE)
    assert (plan.side, plan.quantity, plan.reduce_only) == ("SELL", Decimal("0.002"), True)


def test_hold_and_same_side_change_nothing() -> None:
    """GIVEN long 0.002 WHEN HOLD, or LONG again THEN no order."""
    assert plan_order(Signal.HOLD, Decimal("0.002"), Decimal("0.002"), RULES, PRICE).side is None
    same = plan_order(Signal.LONG, Decimal("0.002"), Decimal("0.002"), RULES, PRICE)
    assert same.side is None and same.target == Decimal("0.002")


def test_size_below_the_minimum_is_an_invalid_request_naming_quantity() -> None:
    """GIVEN size 0.0005 (< minQty 0.001) WHEN LONG THEN invalid_request on quantity, nothing planned."""
    with pytest.raises(KlineoError) as caught:
        plan_order(Signal.LONG, Decimal("0.0005"), Decimal(0), RULES, PRICE)
    assert caught.value.category is ErrorCategory.INVALID_REQUEST
    assert caught.value.field == "quantity"


def test_order_value_below_min_notional_is_refused_before_sending() -> None:
    """GIVEN size 0.001 at 65000 (65 USDT < 100) WHEN LONG from flat THEN invalid_request."""
    with pytest.raises(KlineoError) as caught:
        plan_order(Signal.LONG, Decimal("0.001"), Decimal(0), RULES, PRICE)
    assert caught.value.category is ErrorCategory.INVALID_REQUEST


def test_a_flip_above_the_market_lot_maximum_closes_the_old_side_alone() -> None:
    """GIVEN long 70 and size 70 (a market order may carry at most 120) WHEN the signal is SHORT THEN not
    one SELL 140, which Binance would refuse, but the long's reduce-only close: SELL 70, target 0."""
    plan = plan_order(Signal.SHORT, Decimal(70), Decimal(70), RULES, PRICE)
    assert (plan.target, plan.side, plan.quantity, plan.reduce_only) == (
        Decimal(0), "SELL", Decimal(70), True)
