"""DynamoDB plumbing the stores share: attribute values, paged queries and update expressions.

Built on boto3's attribute-value rules (``klineo.store.attribute_values``) and botocore's Query
paginator, so each store writes only its keys, conditions and item shapes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from botocore.exceptions import ClientError

from klineo.errors import ErrorCategory, KlineoError
from klineo.settings import get_settings
from klineo.store import aws
from klineo.store.attribute_values import deserialize, serialize

__all__ = [
    "Update", "conditional_write", "from_attr", "get_data_item", "page_of", "query_growing", "query_items",
    "query_prefix", "to_attr", "to_item", "transact",
]


def to_attr(value: Any) -> dict[str, Any]:
    """A Python value (Decimals, ints, floats, bools, strings, dicts, lists) as a DynamoDB attribute.

    A float is stored as the decimal its text reads (DynamoDB takes no binary floats).
    """
    return serialize(value, floats=True)


def to_item(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``values`` as DynamoDB attributes, leaving out those that are None (absent, not NULL).

    Text, most of every item, is written here without a call (the runner builds a few hundred
    attributes per order); every other value goes through ``to_attr``'s rules.
    """
    return {name: {"S": value} if type(value) is str else serialize(value, floats=True)
            for name, value in values.items() if value is not None}


def from_attr(attribute: dict[str, Any]) -> Any:
    """A DynamoDB attribute as a Python value (numbers come back as Decimal)."""
    return deserialize(attribute)


def query_items(**request: Any) -> Iterator[dict[str, Any]]:
    """Every item a Query answers, page after page (botocore's paginator follows LastEvaluatedKey)."""
    for page in aws.dynamodb().get_paginator("query").paginate(**request):
        yield from page.get("Items", [])


def query_growing(limit: int, **request: Any) -> Iterator[dict[str, Any]]:
    """Every item a Query answers, as ``query_items``, its first DynamoDB page read with ``Limit`` ``limit``
    and each next one with twice the last's (read lazily: no page is asked for before its items are).

    For a listing that wants the first few items of a large partition. Without a Limit a Query reads up to
    1 MB, and DynamoDB charges every item it reads, kept by the filter or not. ``limit`` is what the caller
    would read if the filter kept every item; when it keeps fewer, doubling reaches the next match in a
    number of round trips that grows with the logarithm of the items in between, and reads at most about
    twice the items needed (each page still stops at 1 MB).
    """
    while True:
        page = aws.dynamodb().query(**request, Limit=limit)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        request = {**request, "ExclusiveStartKey": page["LastEvaluatedKey"]}
        limit *= 2


def page_of(items: Iterable[dict[str, Any]], limit: int,
            sort_key: str) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``limit`` of ``items`` (read lazily, one past the page at most), and the ``sort_key`` of the
    page's last item when another item follows it (None: the page is the last).

    Why not LastEvaluatedKey: DynamoDB returns it whenever a Query stopped at its Limit, also when nothing
    is left, so a last page of exactly ``limit`` items would get a cursor to an empty page.
    """
    page: list[dict[str, Any]] = []
    for item in items:
        if len(page) == limit:
            return page, page[-1][sort_key]["S"]
        page.append(item)
    return page, None


def query_prefix(pk: str, sk_prefix: str) -> Iterator[dict[str, Any]]:
    """Every item of the data table's partition ``pk`` whose sort key starts with ``sk_prefix``."""
    return query_items(
        TableName=get_settings().data_table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": {"S": pk}, ":prefix": {"S": sk_prefix}},
    )


def conditional_write(call: Any, **request: Any) -> bool:
    """Run one conditional write (``call`` is e.g. ``update_item``); False when its condition failed."""
    try:
        call(**request)
    except ClientError as exc:
        if aws.error_code(exc) != aws.CONDITION_FAILED:
            raise
        return False
    return True


# TransactionConflict (another transaction on one of the items at that moment) is tried this often.
_CONFLICT_ATTEMPTS = 3


def transact(named: list[tuple[str, dict[str, Any]]],
             sleep: Callable[[float], None] = time.sleep) -> dict[str, dict[str, Any] | None]:
    """Run ONE TransactWriteItems of named writes; {} when it committed.

    Otherwise the names whose condition failed, each with the item as it is now when the write asked
    for it (``ReturnValuesOnConditionCheckFailure: ALL_OLD``; None: absent or not asked). Nothing was
    written then. A conflict with another transaction is tried again a few times, then answered as a
    retryable UPSTREAM_UNAVAILABLE (nothing written either).
    """
    for attempt in range(_CONFLICT_ATTEMPTS):
        try:
            aws.dynamodb().transact_write_items(TransactItems=[write for _, write in named])
            return {}
        except ClientError as exc:
            if aws.error_code(exc) != aws.TRANSACTION_CANCELED:
                raise
            reasons = exc.response.get("CancellationReasons") or []
        failed = {name: reason.get("Item") for (name, _), reason in zip(named, reasons, strict=False)
                  if reason.get("Code") == "ConditionalCheckFailed"}
        if failed:
            return failed
        if attempt + 1 < _CONFLICT_ATTEMPTS:
            sleep(0.02 * 2**attempt + random.uniform(0, 0.02))  # noqa: S311  (jitter, not a secret)
    raise KlineoError(ErrorCategory.UPSTREAM_UNAVAILABLE, aws.STORAGE_BUSY, retryable=True)


def get_data_item(key: dict[str, Any], *, consistent: bool = False) -> dict[str, Any] | None:
    """One item of the data table by its key, or None."""
    return aws.dynamodb().get_item(
        TableName=get_settings().data_table, Key=key, ConsistentRead=consistent,
    ).get("Item")


@lru_cache(maxsize=512)
def _alias_parts(name: str) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """(``#a.#b``, ``:a_b``, the ``#`` aliases of its parts) of a document path ``a.b``."""
    parts = name.split(".")
    return _path(name), _placeholder(name), tuple((f"#{part}", part) for part in parts)


def _aliases(name: str, names: dict[str, str]) -> tuple[str, str]:
    """``name``'s path and placeholder, its parts' aliases added to ``names``."""
    path, holder, parts = _alias_parts(name)
    names.update(parts)
    return path, holder


def _path(name: str) -> str:
    """``name`` as an aliased document path: ``a.b`` becomes ``#a.#b``."""
    return ".".join(f"#{part}" for part in name.split("."))


def _placeholder(name: str) -> str:
    return ":" + name.replace(".", "_")


@dataclass
class Update:
    """An UpdateExpression built from named SETs, REMOVEs, ADDs, SET-if-absent ``defaults`` and ``copies``
    (target: (source, value when the item has no source): SET one attribute to another's stored value).

    Attribute names go through ``#`` aliases and may be document paths (``symbol_settings.BTCUSDT``);
    each value is ``:name`` (dots as underscores), so conditions may refer to them.
    """

    sets: dict[str, Any] = field(default_factory=dict)
    removes: list[str] = field(default_factory=list)
    adds: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    copies: dict[str, tuple[str, Any]] = field(default_factory=dict)

    @classmethod
    def of_changes(cls, changes: Mapping[str, Any], allowed: Collection[str], sets: dict[str, Any]) -> Update:
        """``sets`` plus a SET per change (None REMOVEs it); ValueError for a name not in ``allowed``."""
        unknown = set(changes) - set(allowed)
        if unknown:
            raise ValueError(f"not settings here: {sorted(unknown)}")
        update = cls(sets=dict(sets))
        for name, value in changes.items():
            if value is None:
                update.removes.append(name)
            else:
                update.sets[name] = value
        return update

    def without(self, *names: str) -> Update:
        """The same update without the SETs of ``names``."""
        sets = {k: v for k, v in self.sets.items() if k not in names}
        return Update(sets, list(self.removes), dict(self.adds), dict(self.defaults), dict(self.copies))

    def request(self, extra_names: Mapping[str, str] | None = None,
                **extra_values: dict[str, Any]) -> dict[str, Any]:
        """UpdateExpression, ExpressionAttributeNames, ExpressionAttributeValues (plus a condition's)."""
        expression, names, holders = _expression(
            tuple(self.sets), tuple(self.defaults), tuple(self.adds), tuple(self.removes),
            tuple((target, source) for target, (source, _) in self.copies.items()))
        given = (*self.sets.values(), *self.defaults.values(), *(value for _, value in self.copies.values()),
                 *self.adds.values())
        values = {holder: to_attr(value) for holder, value in zip(holders, given, strict=True)}
        request = {
            "UpdateExpression": expression,
            "ExpressionAttributeNames": {**names, **(extra_names or {})},
            "ExpressionAttributeValues": {**values, **extra_values},
        }
        return {key: value for key, value in request.items() if value}  # DynamoDB refuses empty maps


@lru_cache(maxsize=256)
def _expression(sets: tuple[str, ...], defaults: tuple[str, ...], adds: tuple[str, ...],
                removes: tuple[str, ...], copies: tuple[tuple[str, str], ...] = (),
                ) -> tuple[str, MappingProxyType[str, str], tuple[str, ...]]:
    """(UpdateExpression, its ``#`` aliases, the ``:`` placeholders of sets, defaults, copies (each its
    target's, the value when the source is absent) and adds in order).

    The same few shapes of update come back every tick (the runner's moves): built once per shape.
    The aliases are read-only: the cached mapping is shared by every request of its shape.
    """
    names: dict[str, str] = {}
    holders: list[str] = []
    set_clauses, remove_clauses, add_clauses = [], [], []
    for name in sets:
        path, holder = _aliases(name, names)
        set_clauses.append(f"{path} = {holder}")
        holders.append(holder)
    for name in defaults:
        path, holder = _aliases(name, names)
        set_clauses.append(f"{path} = if_not_exists({path}, {holder})")
        holders.append(holder)
    for target, source in copies:
        path, holder = _aliases(target, names)
        set_clauses.append(f"{path} = if_not_exists({_aliases(source, names)[0]}, {holder})")
        holders.append(holder)
    for name in adds:
        path, holder = _aliases(name, names)
        add_clauses.append(f"{path} {holder}")
        holders.append(holder)
    for name in removes:
        remove_clauses.append(_aliases(name, names)[0])
    clauses = (("SET", set_clauses), ("REMOVE", remove_clauses), ("ADD", add_clauses))
    expression = " ".join(f"{verb} {', '.join(items)}" for verb, items in clauses if items)
    return expression, MappingProxyType(names), tuple(holders)
