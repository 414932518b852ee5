"""The work message: one (environment, symbol, interval, candle) group of strategies, as JSON on SQS.

Strategies that share a market and a candle travel together so a worker fetches their klines
once. The message names strategies only; the worker re-reads each one (strongly consistent)
before acting, so a strategy paused, changed or deleted after dispatch is seen as it is now.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MAX_STRATEGIES_PER_MESSAGE", "StrategyRef", "WorkMessage"]

# ~90 bytes per reference: 100 of them stay far below SQS's 256 KiB, and one worker thread pool
# gets through them in a few seconds. A larger group is split over several messages.
MAX_STRATEGIES_PER_MESSAGE = 100


class StrategyRef(BaseModel):
    """Which strategy: its owner and id (the item's key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: str = Field(min_length=1, max_length=256)
    strategy_id: str = Field(min_length=1, max_length=64)


class WorkMessage(BaseModel):
    """Strategies of one market and interval to run on the candle closing at ``close_time``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    tick: int
    environment: str
    symbol: str
    interval: str
    close_time: int
    strategies: list[StrategyRef] = Field(min_length=1, max_length=MAX_STRATEGIES_PER_MESSAGE)

    @property
    def group(self) -> tuple[str, str, str, int]:
        """(environment, symbol, interval, close_time): what shares one klines request."""
        return self.environment, self.symbol, self.interval, self.close_time
