"""Builders for strategies and runs in the stores (unit tests of the runner, under moto)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from klineo.store import strategies as strategy_store
from klineo.store.runs import Run
from klineo.store.strategies import PendingOrder, Strategy

__all__ = ["make_pending", "make_run", "make_strategy"]


# A strategy's default creation: before every candle the runner's unit tests tick (the dispatcher sends a
# strategy only the candles that close after it became active).
CREATED_AT = "2025-01-01T00:00:00.000+00:00"


def make_strategy(user_id: str = "user-a", **changes: Any) -> Strategy:
    """An active live SMA strategy on BTCUSDT 1m (stored), with ``changes`` applied; created at
    ``CREATED_AT`` unless ``changes`` say otherwise."""
    fields: dict[str, Any] = {
        "user_id": user_id, "strategy_id": strategy_store.new_strategy_id(), "connection_id": "c" * 32,
        "environment": "production", "symbol": "BTCUSDT", "interval": "1m", "type": "sma_crossover",
        "parameters": {"fast": 2, "slow": 3, "allow_short": True}, "size": Decimal("0.002"), "mode": "live",
        "status": "active", "created_at": CREATED_AT, "updated_at": strategy_store.now_iso(),
    }
    fields.update(changes)
    strategy = Strategy(**fields)
    strategy_store.put_new_strategy(strategy)
    return strategy


def make_run(strategy: Strategy, close_time: int, status: str = "no_change", **fields: Any) -> Run:
    """A run of ``strategy`` on the candle closing at ``close_time``."""
    return Run(strategy_id=strategy.strategy_id, user_id=strategy.user_id, close_time=close_time,
               status=status, mode=strategy.mode, **fields)


def make_pending(close_time: int, *, lease_until_ms: int, position_before: str = "0") -> PendingOrder:
    """A pending BUY 0.002 for one candle."""
    return PendingOrder(close_time=close_time, client_order_id=f"ks{close_time}", side="BUY",
                        quantity=Decimal("0.002"), reduce_only=False,
                        position_before=Decimal(position_before),
                        claimed_at_ms=lease_until_ms - 60_000, lease_until_ms=lease_until_ms)
