"""Python values to and from DynamoDB attribute values, without importing boto3.

boto3's ``boto3.dynamodb.types`` cannot be imported without the whole boto3 package, whose import
brings s3transfer, multiprocessing and the resource layer: about 100 ms of every cold start, for a
layer that uses only botocore's low-level clients (``klineo.store.aws``). Reading is Powertools'
``TypeDeserializer`` (boto3's rules; binary comes back as ``bytes``, not boto3's ``Binary``).
Writing follows boto3's ``TypeSerializer`` rules, written out here because neither Powertools nor
botocore has one: the same Python types map to the same DynamoDB types, numbers go through the same
38-digit context (a number DynamoDB cannot hold exactly is refused), floats are refused, and an
unsupported value is refused without its text in the message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from decimal import Decimal
from typing import Any

from aws_lambda_powertools.shared.dynamodb_deserializer import DYNAMODB_CONTEXT, TypeDeserializer

__all__ = ["deserialize", "serialize"]

_DESERIALIZE: Callable[[dict[str, Any]], Any] = TypeDeserializer().deserialize
_NUMBER = DYNAMODB_CONTEXT.create_decimal


def deserialize(attribute: dict[str, Any]) -> Any:
    """A DynamoDB attribute value as Python (numbers as Decimal in DynamoDB's 38-digit context).

    The kinds every item of ours is made of are decoded here directly, exactly as the
    ``TypeDeserializer`` decodes them, at a fraction of its cost (the runner decodes every strategy
    of every tick); sets, binaries and malformed attributes go to it.
    """
    if len(attribute) == 1:
        [(kind, value)] = attribute.items()
        if kind == "S" or kind == "BOOL":
            return value
        if kind == "N":
            return _NUMBER(value)
        if kind == "M":
            return {name: deserialize(inner) for name, inner in value.items()}
        if kind == "L":
            return [deserialize(inner) for inner in value]
        if kind == "NULL":
            return None
    elif not attribute:
        raise TypeError("an attribute value names exactly one DynamoDB type")
    return _DESERIALIZE(attribute)


_INT_LIMIT = 10**38  # a whole number below it in magnitude has at most DynamoDB's 38 digits


def _is_number(value: Any, floats: bool = False) -> bool:
    if isinstance(value, float) and not floats:
        raise TypeError("Float types are not supported. Use Decimal types instead.")
    return isinstance(value, (int, Decimal)) and not isinstance(value, bool)


def _number(value: int | Decimal) -> str:
    number = _NUMBER(value)
    if not number.is_finite():
        raise TypeError("DynamoDB numbers must be finite")
    return str(number)


def _is_binary(value: Any) -> bool:
    return isinstance(value, (bytes, bytearray))


def _same(value: Any) -> Any:
    return value


# Set types in boto3's order: an empty set is a number set, as there.
_SETS = (("NS", _is_number, _number), ("SS", lambda v: isinstance(v, str), _same), ("BS", _is_binary, _same))


def serialize(value: Any, *, floats: bool = False) -> dict[str, Any]:
    """``value`` as a DynamoDB attribute value: None, bool, int/Decimal, str, bytes, set, mapping, list.

    With ``floats``, a float anywhere in ``value`` is written as the decimal its shortest text
    reads (``0.1`` as 0.1, not the binary fraction) and mapping keys as text; without, a float is
    refused, as boto3 refuses it. The kinds every item of ours is made of (exactly str, Decimal,
    int, dict, bool, None, list) are written first, in one walk, with the same results as the
    general rules below them: the runner writes about fifty attributes per order.
    """
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is Decimal:
        return {"N": _number(value)}
    if kind is int:
        return {"N": str(value) if -_INT_LIMIT < value < _INT_LIMIT else _number(value)}
    if kind is dict:
        return {"M": _members(value, floats)}
    if kind is bool:
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if kind is list or kind is tuple:
        return {"L": [serialize(item, floats=floats) for item in value]}
    return _serialize_other(value, floats)


def _members(value: Mapping[Any, Any], floats: bool) -> dict[Any, dict[str, Any]]:
    # Text keys and values (nearly all of ours) without a call; the rest by the rules.
    return {(key if type(key) is str or not floats else str(key)):
            ({"S": item} if type(item) is str else serialize(item, floats=floats))
            for key, item in value.items()}


def _serialize_other(value: Any, floats: bool) -> dict[str, Any]:
    """The general rules: subclasses, floats, bytes, sets, other mappings and sequences."""
    if isinstance(value, float) and floats:
        return {"N": _number(Decimal(str(value)))}
    if isinstance(value, bool):
        return {"BOOL": value}
    if _is_number(value):
        return {"N": _number(value)}
    if isinstance(value, str):
        return {"S": value}
    if _is_binary(value):
        return {"B": value}
    if isinstance(value, AbstractSet):
        for kind, member, convert in _SETS:
            if all(member(item) for item in value):
                return {kind: [convert(item) for item in value]}
    if isinstance(value, Mapping):
        return {"M": _members(value, floats)}
    if isinstance(value, (list, tuple)):
        return {"L": [serialize(item, floats=floats) for item in value]}
    raise TypeError(f"a {type(value).__name__} cannot be stored in DynamoDB")
