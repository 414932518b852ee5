"""The work message: one (environment, symbol, interval, candle) group of strategies, as JSON on SQS.

Strategies that share a market and a candle travel together so a worker fetches their klines
once. Version 2 (what the dispatcher sends) carries, with each strategy's key, a SNAPSHOT of its
item as the dispatcher's index Query read it (``klineo.store.strategies.snapshot_of``), and the
worker decides from it without reading the strategy again. Version 1 (keys only) is still
accepted, for messages in flight during a deploy.

Why deciding from a snapshot is safe: the snapshot may be a few seconds old (an eventually
consistent index read), but nothing is done on its word alone. Every order and position move is a
conditional write against the base item (``klineo.store.runs``: behind this candle, no pending
order, the position as sized, unchanged since it was read), and an order's claim re-checks the
gates, so a strategy paused, changed, traded or deleted since the dispatch is refused there and
never acted on twice. The worker reads the strategy strongly consistent instead when the snapshot
cannot be trusted to be recent: on a redelivery (the first attempt may have moved it), for a
version 1 message, and for a strategy with a pending order (its snapshot is not even sent).

A snapshot holds the strategy's own attributes only: no API key or secret ever (those live in
Secrets Manager, named by the connection, which is read by the worker, not sent). A message stays
under SQS's 256 KiB: the dispatcher measures each encoded strategy and splits a group by bytes
as well as by ``MAX_STRATEGIES_PER_MESSAGE``; a strategy too big to share a message travels
without its snapshot (read by the worker).
"""

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_STRATEGIES_PER_MESSAGE",
    "SQS_MESSAGE_LIMIT_BYTES",
    "StrategyRef",
    "WorkMessage",
    "encoded",
]

# ~1.5 KB per strategy with its snapshot: 100 of them stay below the byte cap, and one worker
# thread pool gets through them in a few seconds. A larger group is split over several messages.
MAX_STRATEGIES_PER_MESSAGE = 100
# SQS's maximum message size. A batch of 10 such messages (2.5 MiB) also fits Lambda's 6 MB
# invocation payload, which a larger message size would not.
SQS_MESSAGE_LIMIT_BYTES = 256 * 1024
# What the dispatcher fills a message up to: the limit less room for SQS's own attributes.
MAX_MESSAGE_BYTES = SQS_MESSAGE_LIMIT_BYTES - 4 * 1024


def encoded(value: Any) -> str:
    """Compact JSON, as every message body is written (ASCII only: one byte per character)."""
    return json.dumps(value, separators=(",", ":"))


class StrategyRef(BaseModel):
    """Which strategy: its owner and id (the item's key) and, in version 2, its item's snapshot."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: str = Field(min_length=1, max_length=256)
    strategy_id: str = Field(min_length=1, max_length=64)
    # The item's attributes as DynamoDB wrote them, keys and index attributes left out; None when
    # the worker must read the item itself (pending order, too big, version 1).
    snapshot: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        """The plain form sent on the queue (no ``snapshot`` key when there is none)."""
        plain: dict[str, Any] = {"user_id": self.user_id, "strategy_id": self.strategy_id}
        if self.snapshot is not None:
            plain["snapshot"] = self.snapshot
        return plain


class WorkMessage(BaseModel):
    """Strategies of one market and interval to run on the candle closing at ``close_time``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1, 2] = 2
    tick: int
    environment: str
    symbol: str
    interval: str
    close_time: int
    strategies: list[StrategyRef] = Field(min_length=1, max_length=MAX_STRATEGIES_PER_MESSAGE)

    @model_validator(mode="after")
    def _snapshots_only_in_v2(self) -> "WorkMessage":
        if self.v == 1 and any(ref.snapshot is not None for ref in self.strategies):
            raise ValueError("a version 1 message carries no snapshots")
        return self

    @property
    def group(self) -> tuple[str, str, str, int]:
        """(environment, symbol, interval, close_time): what shares one klines request."""
        return self.environment, self.symbol, self.interval, self.close_time

    def header(self) -> dict[str, Any]:
        """Every field but the strategies, in the plain form sent on the queue."""
        return {"v": self.v, "tick": self.tick, "environment": self.environment, "symbol": self.symbol,
                "interval": self.interval, "close_time": self.close_time}

    def body(self) -> str:
        """The message body as sent on the queue."""
        return encoded({**self.header(), "strategies": [ref.as_json() for ref in self.strategies]})
