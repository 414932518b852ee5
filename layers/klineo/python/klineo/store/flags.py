"""Kill switches in the data table: the user's (USER#<sub>/FLAGS) and the operators' (GLOBAL/FLAGS).

Always read with a strongly consistent read: a switch turned on a second ago must stop the next
order. (Powertools Parameters would cache it for 300 s; that is why it is not used here.)
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from klineo.errors import ErrorCategory, KlineoError
from klineo.settings import get_settings
from klineo.store import aws
from klineo.store.dynamo import Update

__all__ = [
    "FLAGS_SK",
    "GLOBAL_PK",
    "batch_get_consistent",
    "get_kill_switches",
    "kill_switch_of",
    "set_global_kill_switch",
    "set_user_kill_switch",
    "user_pk",
]

GLOBAL_PK = "GLOBAL"
FLAGS_SK = "FLAGS"
_BATCH_ATTEMPTS = 4


def user_pk(user_id: str) -> str:
    """The partition key of one user's items."""
    return f"USER#{user_id}"


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def batch_get_consistent(keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Read up to 100 items in ONE strongly consistent BatchGetItem (retrying unprocessed keys only).

    Returns raw DynamoDB items by (pk, sk); missing items are simply absent.
    """
    table = get_settings().data_table
    request: dict[str, Any] = {table: {"Keys": [_key(pk, sk) for pk, sk in keys], "ConsistentRead": True}}
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for attempt in range(_BATCH_ATTEMPTS):
        answer = aws.dynamodb().batch_get_item(RequestItems=request)
        for item in answer.get("Responses", {}).get(table, []):
            found[(item["pk"]["S"], item["sk"]["S"])] = item
        request = answer.get("UnprocessedKeys") or {}
        if not request:
            return found
        time.sleep(0.05 * 2**attempt)
    raise KlineoError(ErrorCategory.UPSTREAM_UNAVAILABLE, aws.STORAGE_BUSY)


def kill_switch_of(item: dict[str, Any] | None) -> bool:
    """A FLAGS item's kill switch: off when the item or its attribute is absent or exactly false, on for any
    other value. An operator who writes the global item by hand as ``{"S": "yes"}`` meant it on; the order
    claim's ConditionCheck (``kill_switch = false``) already reads it so, and every reader must agree."""
    if not item or "kill_switch" not in item:
        return False
    return item["kill_switch"] != {"BOOL": False}


def get_kill_switches(user_id: str) -> tuple[bool, bool]:
    """(user's switch on, global switch on), read together and strongly consistent."""
    user_key, global_key = (user_pk(user_id), FLAGS_SK), (GLOBAL_PK, FLAGS_SK)
    items = batch_get_consistent([user_key, global_key])
    return kill_switch_of(items.get(user_key)), kill_switch_of(items.get(global_key))


def _set(pk: str, on: bool) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    update = Update(sets={"kill_switch": bool(on), "updated_at": now})
    aws.dynamodb().update_item(TableName=get_settings().data_table, Key=_key(pk, FLAGS_SK),
                               **update.request())


def set_user_kill_switch(user_id: str, on: bool) -> None:
    """Turn the user's own kill switch on or off."""
    _set(user_pk(user_id), on)


def set_global_kill_switch(on: bool) -> None:
    """Turn the operators' global kill switch on or off (stops every user's trading)."""
    _set(GLOBAL_PK, on)
