"""The dispatcher's record of the ticks it completed (pk=RUNNER, sk=TICK#<minute ms>, with a ``ttl``).

At most one small item a minute for the whole system, never one per strategy, and only for a minute
that queued a candle the next tick would look at again (a close of 3m and up; none on a minute of 1m
candles alone). The dispatcher puts it once every message of its minute is queued
(``klineo.runner.dispatcher``), and the tick one minute later
reads it before its catch-up look: the candles that closed on a completed tick are not dispatched a
second time (a holding strategy does not move its ``last_close``, so only this tells that it ran).

- The Put is unconditional and idempotent: a duplicate or concurrent invocation of a minute writes
  the same item. A tick that failed to queue a message never writes it, so the catch-up still runs.
- The read is eventually consistent (half a read unit): a miss (not replicated yet, throttled) only
  lets the catch-up look run as before, where the run record refuses each repeated turn.
- A transient failure of either call is logged and answered as "not completed"; the tick goes on.

Cost: at most 1 write unit and half a read unit a minute in all (7 minutes in 15 are closes of 3m and
up: about 20,000 write and 10,000 read units a month while such strategies exist), whatever the number
of strategies. Items expire after ``TICK_TTL_S`` (TTL deletes are free).
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from klineo.observability import logger
from klineo.settings import get_settings
from klineo.store import aws
from klineo.store.dynamo import get_data_item

__all__ = ["TICKS_PK", "TICK_TTL_S", "record_tick", "tick_completed"]

TICKS_PK = "RUNNER"
TICK_TTL_S = 24 * 3600


def _key(tick_ms: int) -> dict[str, dict[str, str]]:
    return {"pk": {"S": TICKS_PK}, "sk": {"S": f"TICK#{tick_ms}"}}


def record_tick(tick_ms: int) -> bool:
    """Remember that the tick of minute ``tick_ms`` queued all its messages; False if it could not."""
    item = {**_key(tick_ms), "ttl": {"N": str(tick_ms // 1000 + TICK_TTL_S)}}
    try:
        aws.dynamodb().put_item(TableName=get_settings().data_table, Item=item)
    except (BotoCoreError, ClientError) as exc:
        if not aws.is_transient(exc):
            raise
        logger.warning("tick not recorded: its candles get the catch-up look", extra={"tick": tick_ms})
        return False
    return True


def tick_completed(tick_ms: int) -> bool:
    """Whether the tick of minute ``tick_ms`` was recorded (False when the read fails transiently)."""
    try:
        return get_data_item(_key(tick_ms)) is not None
    except (BotoCoreError, ClientError) as exc:
        if not aws.is_transient(exc):
            raise
        logger.warning("tick record not read: the catch-up look runs", extra={"tick": tick_ms})
        return False
