"""Attribute values written without boto3 are the ones boto3's TypeSerializer writes, and read back alike."""

from __future__ import annotations

from decimal import Decimal
from enum import IntEnum, StrEnum

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from klineo.store.attribute_values import deserialize, serialize


class _Side(StrEnum):
    BUY = "BUY"


class _Level(IntEnum):
    HIGH = 3


SAMPLES = [
    None, True, False, 0, -7, 10**37, 10**38 - 1, -(10**38) + 1, _Side.BUY, _Level.HIGH,
    Decimal("0.00000001"), Decimal("-1234.5600"), Decimal("1E+5"),
    "", "BTCUSDT", "ünïcode ✓", b"\x00\xffraw", bytearray(b"ab"),
    {"a", "b"}, {Decimal("1.5"), 2}, {b"x", b"y"}, set(),
    [], [1, "two", None, [True, {"k": Decimal("3.30")}]], ("tuple", 1),
    {}, {"pk": "USER#1", "nested": {"list": [Decimal("0.1"), "x"], "flag": False, "none": None}},
]


@pytest.mark.parametrize("value", SAMPLES, ids=[repr(v)[:30] for v in SAMPLES])
def test_serialize_writes_what_boto3_writes(value) -> None:
    """GIVEN a value of each type the stores write WHEN serialised THEN the attribute equals boto3's
    (sets compared as sets: their order is the set's), and it reads back as boto3 reads it."""
    ours, theirs = serialize(value), TypeSerializer().serialize(value)
    assert ours.keys() == theirs.keys()
    kind = next(iter(ours))
    if kind in ("SS", "NS", "BS"):
        assert sorted(ours[kind]) == sorted(theirs[kind])
    else:
        assert ours == theirs
    if kind not in ("B", "BS"):  # boto3 reads binary into its Binary wrapper, we into bytes
        assert deserialize(ours) == TypeDeserializer().deserialize(theirs)


REFUSED = [
    1.5, [{"nested": 1.5}], Decimal("NaN"), Decimal("Infinity"), Decimal("1." + "1" * 40), 10**38, -(10**40),
    object(),
]


@pytest.mark.parametrize("value", REFUSED, ids=["float", "nested_float", "nan", "infinity", "41_digits",
                                                "39_digit_int", "41_digit_negative_int", "object"])
def test_values_boto3_refuses_are_refused_without_their_text(value) -> None:
    """GIVEN a value DynamoDB cannot hold exactly (or at all) WHEN serialised THEN it is refused, as
    boto3 refuses it, and the message does not repeat the value."""
    with pytest.raises(Exception) as theirs:
        TypeSerializer().serialize(value)
    with pytest.raises(type(theirs.value)) as ours:
        serialize(value)
    assert repr(value) not in str(ours.value) and str(value) not in str(ours.value)


@pytest.mark.parametrize("value", SAMPLES, ids=[repr(v)[:30] for v in SAMPLES])
def test_allowing_floats_changes_nothing_for_a_value_without_floats(value) -> None:
    """GIVEN a value without floats WHEN serialised with floats allowed THEN the attribute is the same."""
    assert serialize(value, floats=True) == serialize(value)


def test_allowed_floats_are_written_as_the_decimal_their_text_reads() -> None:
    """GIVEN floats anywhere in a value WHEN serialised with floats allowed THEN each is written as boto3
    writes the Decimal of its shortest text (0.1 as 0.1, not the binary fraction), and keys as text."""
    ours = serialize({"price": 0.1, 7: [1.25, {"q": 3.0}]}, floats=True)
    theirs = TypeSerializer().serialize(
        {"price": Decimal("0.1"), "7": [Decimal("1.25"), {"q": Decimal("3.0")}]}
    )
    assert ours == theirs
