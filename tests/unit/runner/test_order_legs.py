"""The orders of a plan by the account's position mode (``klineo.runner.planning.order_legs``).

One-way: the plan's one order, positionSide BOTH. Hedge: the side the order moves, never reduceOnly, and a
flip in two orders (close the old side, then open the new one). Rules: test_plan_order's BTCUSDT filters.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from klineo.runner.planning import OrderLeg, order_legs, plan_order
from klineo.strategies import Signal

from tests.unit.runner.test_plan_order import PRICE, RULES

SIZE = Decimal("0.002")


def _legs(signal: Signal, position: str, hedge: bool) -> tuple[OrderLeg, ...]:
    plan = plan_order(signal, SIZE, Decimal(position), RULES, PRICE)
    return order_legs(plan, Decimal(position), hedge, RULES, PRICE)


@pytest.mark.parametrize(("signal", "position", "expected"), [
    (Signal.LONG, "0", ("BUY", "0.002", "LONG")),
    (Signal.FLAT, "0.002", ("SELL", "0.002", "LONG")),
    (Signal.SHORT, "0", ("SELL", "0.002", "SHORT")),
    (Signal.FLAT, "-0.002", ("BUY", "0.002", "SHORT")),
    (Signal.SHORT, "-0.004", ("BUY", "0.002", "SHORT")),
])
def test_a_hedge_order_names_the_side_it_moves_and_never_reduce_only(signal, position, expected) -> None:
    """GIVEN a hedge-mode account WHEN a plan opens, reduces or closes one side THEN one order on that side
    (BUY LONG opens a long, SELL LONG closes it, SELL SHORT opens a short, BUY SHORT closes it)."""
    legs = _legs(signal, position, hedge=True)
    assert [(leg.side, str(leg.quantity), leg.position_side, leg.reduce_only) for leg in legs] == [
        (*expected, False)]


@pytest.mark.parametrize(("signal", "position", "expected"), [
    (Signal.SHORT, "0.002", [("SELL", "0.002", "LONG"), ("SELL", "0.002", "SHORT")]),
    (Signal.LONG, "-0.003", [("BUY", "0.003", "SHORT"), ("BUY", "0.002", "LONG")]),
])
def test_a_hedge_flip_closes_the_old_side_then_opens_the_new_one(signal, position, expected) -> None:
    """GIVEN a hedge-mode account holding one side WHEN the signal flips THEN two orders: the old side's
    close for the whole position, then the new side's entry for the target size."""
    legs = _legs(signal, position, hedge=True)
    assert [(leg.side, str(leg.quantity), leg.position_side) for leg in legs] == expected
    assert not any(leg.reduce_only for leg in legs)


@pytest.mark.parametrize(("signal", "position", "expected"), [
    (Signal.LONG, "0", ("BUY", "0.002", False)),
    (Signal.FLAT, "0.002", ("SELL", "0.002", True)),
    (Signal.SHORT, "0.002", ("SELL", "0.004", False)),
])
def test_a_one_way_plan_is_its_one_order_with_position_side_both(signal, position, expected) -> None:
    """GIVEN a one-way account WHEN any plan THEN its one order as planned (a flip too), positionSide BOTH."""
    legs = _legs(signal, position, hedge=False)
    assert [(leg.side, str(leg.quantity), leg.reduce_only, leg.position_side) for leg in legs] == [
        (*expected, "BOTH")]


@pytest.mark.parametrize("hedge", [True, False])
def test_a_hold_has_no_order(hedge: bool) -> None:
    """GIVEN a long WHEN the signal is long again THEN no order in either mode."""
    assert _legs(Signal.LONG, "0.002", hedge) == ()


def test_a_flips_second_order_has_its_own_client_order_id_within_binances_pattern() -> None:
    """GIVEN a strategy and a candle WHEN the flip's two ids are derived THEN the first is the candle's id,
    the second starts with kf: both within Binance's pattern, the same on every attempt, and the second's
    protective ids (its first characters + -sl / -tp, any generation) differ from every id the first's."""
    import re

    from klineo.runner.schedule import client_order_id
    from klineo.services.protective_siblings import entry_protective_ids
    from klineo.validation import CLIENT_ORDER_ID_PATTERN

    first = client_order_id("0f5b2a1e-6c2d-4b8e-9b9e-3b1f2c4d5e6f", 4_102_444_799_999)
    second = client_order_id("0f5b2a1e-6c2d-4b8e-9b9e-3b1f2c4d5e6f", 4_102_444_799_999, 2)
    assert second == "kf" + first[2:] and first.startswith("ks") and len(second) <= 36
    assert second == client_order_id("0f5b2a1e-6c2d-4b8e-9b9e-3b1f2c4d5e6f", 4_102_444_799_999, 2)
    assert all(re.fullmatch(CLIENT_ORDER_ID_PATTERN, i) for i in (first, second))
    theirs = set(entry_protective_ids(second, 40))
    assert not theirs & set(entry_protective_ids(first, 40)) and first not in theirs
    assert all(re.fullmatch(CLIENT_ORDER_ID_PATTERN, i) for i in theirs)
