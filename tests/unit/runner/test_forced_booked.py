"""The record of the forced orders a correction counted (``klineo.runner.positions.forced_booked``)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from klineo.runner.positions import forced_booked
from klineo.store.strategies import Strategy

STRATEGY = Strategy(user_id="user-a", strategy_id="s1", connection_id="c" * 32, environment="production",
                    symbol="BTCUSDT", interval="1m", type="sma_crossover", parameters={},
                    size=Decimal("0.002"), mode="live", status="active", created_at="", updated_at="")


def _forced(order_id: int, time_ms: int) -> dict:
    """A forceOrders row (an ADL) made at ``time_ms``."""
    return {"orderId": order_id, "time": time_ms, "clientOrderId": "adl_autoclose", "symbol": "BTCUSDT"}


def test_it_names_the_last_time_and_the_orders_made_then() -> None:
    """Only the orders of the last one's time are named: the read starts at that time."""
    booked = forced_booked(STRATEGY, [_forced(7, 1000), _forced(9, 2000), _forced(8, 2000)])

    assert booked == {"time": 2000, "order_ids": [8, 9]}


def test_orders_counted_before_at_the_same_time_stay_named() -> None:
    """A later correction's order made in the same ms as one counted before keeps both named (as stored)."""
    before = replace(STRATEGY, forced_booked={"time": Decimal(2000), "order_ids": [Decimal(8)]})

    assert forced_booked(before, [_forced(9, 2000)]) == {"time": 2000, "order_ids": [8, 9]}
    assert forced_booked(before, [_forced(10, 3000)]) == {"time": 3000, "order_ids": [10]}
