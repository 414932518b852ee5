"""Exchange connections in the data table (pk=USER#<sub>, sk=CONN#<id>); never the secret itself.

Every read is keyed by the caller's user id, so another user's connection is simply absent.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from pydantic import BaseModel

from klineo.errors import ErrorCategory, KlineoError
from klineo.settings import get_settings
from klineo.store import aws
from klineo.store.flags import FLAGS_SK, GLOBAL_PK, batch_get_consistent, kill_switch_of, user_pk
from klineo.validation import CONNECTION_ID_PATTERN

__all__ = [
    "Connection",
    "TradingContext",
    "connection_sk",
    "delete_connection",
    "get_connection",
    "is_connection_id",
    "list_connections",
    "load_trading_context",
    "new_connection_id",
    "put_connection",
    "record_test_result",
    "set_futures_enabled",
]

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()
_CONN_PREFIX = "CONN#"
# Ids are made by new_connection_id(); anything else cannot exist (and an over-long key would be a
# DynamoDB ValidationException), so it is simply not found.
_CONNECTION_ID = re.compile(CONNECTION_ID_PATTERN)


class Connection(BaseModel):
    """One user's link to one Binance API key (the key itself lives in Secrets Manager)."""

    user_id: str
    connection_id: str
    label: str
    environment: str
    key_type: str
    api_key_masked: str
    secret_name: str
    futures_enabled: bool = False
    created_at: str
    last_test: dict[str, Any] | None = None
    futures_last_test: dict[str, Any] | None = None


@dataclass(frozen=True)
class TradingContext:
    """What an order needs to know, read in one consistent round trip."""

    connection: Connection
    user_kill_switch: bool
    global_kill_switch: bool

    @property
    def kill_switch(self) -> bool:
        """True when either switch is on."""
        return self.user_kill_switch or self.global_kill_switch


def new_connection_id() -> str:
    """A fresh random connection id (32 hex characters)."""
    return uuid.uuid4().hex


def connection_sk(connection_id: str) -> str:
    """The sort key of a connection item."""
    return f"{_CONN_PREFIX}{connection_id}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _to_attr(value: Any) -> dict[str, Any]:
    # DynamoDB takes no binary floats: round-trip through JSON with exact decimals.
    return _SERIALIZER.serialize(json.loads(json.dumps(value), parse_float=Decimal))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, set, tuple)):
        return [_plain(v) for v in value]
    return value


def _from_item(item: dict[str, Any]) -> Connection:
    data = {k: _plain(_DESERIALIZER.deserialize(v)) for k, v in item.items()}
    return Connection(
        user_id=data["pk"].removeprefix("USER#"),
        connection_id=data["connection_id"],
        label=data["label"],
        environment=data["environment"],
        key_type=data["key_type"],
        api_key_masked=data["api_key_masked"],
        secret_name=data["secret_name"],
        futures_enabled=bool(data.get("futures_enabled", False)),
        created_at=data["created_at"],
        last_test=data.get("last_test"),
        futures_last_test=data.get("futures_last_test"),
    )


def _key(user_id: str, connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": user_pk(user_id)}, "sk": {"S": connection_sk(connection_id)}}


def is_connection_id(value: str) -> bool:
    """True when ``value`` has the shape of a connection id."""
    return isinstance(value, str) and _CONNECTION_ID.fullmatch(value) is not None


def get_connection(user_id: str, connection_id: str, consistent: bool = False) -> Connection | None:
    """One of the user's connections, or None (also when it belongs to someone else)."""
    if not is_connection_id(connection_id):
        return None
    item = aws.dynamodb().get_item(
        TableName=get_settings().data_table, Key=_key(user_id, connection_id), ConsistentRead=consistent,
    ).get("Item")
    return _from_item(item) if item else None


def list_connections(user_id: str) -> list[Connection]:
    """All the user's connections, oldest first."""
    client = aws.dynamodb()
    connections: list[Connection] = []
    request: dict[str, Any] = {
        "TableName": get_settings().data_table,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": {":pk": {"S": user_pk(user_id)}, ":prefix": {"S": _CONN_PREFIX}},
    }
    while True:
        page = client.query(**request)
        connections.extend(_from_item(item) for item in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return sorted(connections, key=lambda c: (c.created_at, c.connection_id))


def put_connection(connection: Connection) -> None:
    """Write a NEW connection item (never overwrites an existing one)."""
    item: dict[str, Any] = {
        **_key(connection.user_id, connection.connection_id),
        "entity": {"S": "connection"},
        "connection_id": {"S": connection.connection_id},
        "label": {"S": connection.label},
        "environment": {"S": connection.environment},
        "key_type": {"S": connection.key_type},
        "api_key_masked": {"S": connection.api_key_masked},
        "secret_name": {"S": connection.secret_name},
        "futures_enabled": {"BOOL": connection.futures_enabled},
        "created_at": {"S": connection.created_at},
    }
    if connection.last_test is not None:
        item["last_test"] = _to_attr(connection.last_test)
    if connection.futures_last_test is not None:
        item["futures_last_test"] = _to_attr(connection.futures_last_test)
    aws.dynamodb().put_item(
        TableName=get_settings().data_table, Item=item, ConditionExpression="attribute_not_exists(pk)",
    )


def delete_connection(user_id: str, connection_id: str) -> bool:
    """Remove the connection item; False when there was none."""
    if not is_connection_id(connection_id):
        return False
    old = aws.dynamodb().delete_item(
        TableName=get_settings().data_table, Key=_key(user_id, connection_id), ReturnValues="ALL_OLD",
    ).get("Attributes")
    return bool(old)


def _update_existing(user_id: str, connection_id: str, expression: str,
                     values: dict[str, Any]) -> Connection:
    if not is_connection_id(connection_id):
        raise KlineoError(ErrorCategory.NOT_FOUND, "connection not found")
    client = aws.dynamodb()
    try:
        answer = client.update_item(
            TableName=get_settings().data_table,
            Key=_key(user_id, connection_id),
            UpdateExpression=expression,
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
    except client.exceptions.ConditionalCheckFailedException:
        raise KlineoError(ErrorCategory.NOT_FOUND, "connection not found") from None
    return _from_item(answer["Attributes"])


def set_futures_enabled(user_id: str, connection_id: str, enabled: bool,
                        futures_last_test: dict[str, Any] | None = None) -> Connection:
    """Switch futures on or off (optionally recording the futures test); NOT_FOUND when absent."""
    expression = "SET futures_enabled = :enabled, futures_updated_at = :now"
    values: dict[str, Any] = {":enabled": {"BOOL": bool(enabled)}, ":now": {"S": _now()}}
    if futures_last_test is not None:
        expression += ", futures_last_test = :test"
        values[":test"] = _to_attr(futures_last_test)
    return _update_existing(user_id, connection_id, expression, values)


def record_test_result(user_id: str, connection_id: str, result: dict[str, Any], *,
                       futures: bool = False) -> Connection:
    """Store a test result on the item (last_test, or futures_last_test); NOT_FOUND when absent."""
    attribute = "futures_last_test" if futures else "last_test"
    return _update_existing(user_id, connection_id, f"SET {attribute} = :test", {":test": _to_attr(result)})


def load_trading_context(user_id: str, connection_id: str) -> TradingContext:
    """Connection and both kill switches in ONE consistent BatchGetItem; NOT_FOUND when no connection."""
    if not is_connection_id(connection_id):
        raise KlineoError(ErrorCategory.NOT_FOUND, "connection not found")
    conn_key = (user_pk(user_id), connection_sk(connection_id))
    user_flags, global_flags = (user_pk(user_id), FLAGS_SK), (GLOBAL_PK, FLAGS_SK)
    items = batch_get_consistent([conn_key, user_flags, global_flags])
    if conn_key not in items:
        raise KlineoError(ErrorCategory.NOT_FOUND, "connection not found")
    return TradingContext(
        connection=_from_item(items[conn_key]),
        user_kill_switch=kill_switch_of(items.get(user_flags)),
        global_kill_switch=kill_switch_of(items.get(global_flags)),
    )
