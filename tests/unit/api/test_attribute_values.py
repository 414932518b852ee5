"""DynamoDB attribute values: made and decoded exactly as boto3's TypeSerializer/TypeDeserializer do."""

from __future__ import annotations

from decimal import Decimal, Inexact
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from klineo.store.dynamo import from_attr, to_attr

VALUES: list[Any] = [
    "", "text", Decimal("0"), Decimal("-0.00"), Decimal("123.4500"), Decimal("1E+5"), 7, True, False, None,
    {"nested": {"list": [Decimal("1.5"), "a", None, {"deep": [True]}]}, "empty": {}}, [], [[], {}],
    {"a", "b"}, {Decimal("1"), Decimal("2.5")}, Binary(b"\x00\x01"),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda value: type(value).__name__)
def test_every_kind_decodes_as_boto3_decodes_it(value: Any) -> None:
    """GIVEN a value as DynamoDB stores it WHEN decoded THEN the value, type and digits boto3 gives."""
    attribute = TypeSerializer().serialize(value)
    decoded, expected = from_attr(attribute), TypeDeserializer().deserialize(attribute)
    if isinstance(expected, Binary):  # the layer reads binary as bytes (klineo.store.attribute_values)
        expected = expected.value
    assert decoded == expected and repr(decoded) == repr(expected)


@pytest.mark.parametrize("value", [v for v in VALUES if not isinstance(v, Binary)],
                         ids=lambda value: type(value).__name__)
def test_every_kind_is_written_as_boto3_writes_it(value: Any) -> None:
    """GIVEN a Python value WHEN made an attribute THEN exactly the attribute boto3 makes of it."""
    assert to_attr(value) == TypeSerializer().serialize(value)


def test_floats_are_written_as_their_exact_decimal_text() -> None:
    """GIVEN floats, nested too WHEN made an attribute THEN numbers with the float's shortest text."""
    expected = {"M": {"price": {"N": "0.1"}, "nested": {"L": [{"N": "1.25"}]}}}
    assert to_attr({"price": 0.1, "nested": [1.25]}) == expected


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("1" * 40), object()],
                         ids=["nan", "infinity", "40 digits", "object"])
def test_what_boto3_refuses_is_refused_alike(value: Any) -> None:
    """GIVEN a value DynamoDB cannot hold WHEN made an attribute THEN the same error boto3 raises."""
    with pytest.raises(Exception) as ours:
        to_attr(value)
    with pytest.raises(Exception) as boto3s:
        TypeSerializer().serialize(value)
    assert type(ours.value) is type(boto3s.value)


def test_a_number_beyond_dynamodb_precision_is_refused_as_boto3_refuses_it() -> None:
    """GIVEN 40 significant digits (DynamoDB keeps 38) WHEN decoded THEN Inexact, not a rounded number."""
    with pytest.raises(Inexact):
        from_attr({"N": "1" * 40})


def test_an_empty_attribute_is_refused() -> None:
    """GIVEN an attribute with no type WHEN decoded THEN TypeError, as boto3 answers."""
    with pytest.raises(TypeError):
        from_attr({})
