"""Attribute values written without boto3 are the ones boto3's TypeSerializer writes, and read back alike."""

from __future__ import annotations

from decimal import Decimal

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from klineo.store.attribute_values import deserialize, serialize

SAMPLES = [
    None, True, False, 0, -7, 10**37, Decimal("0.00000001"), Decimal("-1234.5600"), Decimal("1E+5"),
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


REFUSED = [1.5, Decimal("NaN"), Decimal("Infinity"), Decimal("1." + "1" * 40), object()]


@pytest.mark.parametrize("value", REFUSED, ids=["float", "nan", "infinity", "41_digits", "object"])
def test_values_boto3_refuses_are_refused_without_their_text(value) -> None:
    """GIVEN a value DynamoDB cannot hold exactly (or at all) WHEN serialised THEN it is refused, as
    boto3 refuses it, and the message does not repeat the value."""
    with pytest.raises(Exception) as theirs:
        TypeSerializer().serialize(value)
    with pytest.raises(type(theirs.value)) as ours:
        serialize(value)
    assert repr(value) not in str(ours.value) and str(value) not in str(ours.value)
