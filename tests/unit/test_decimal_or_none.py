"""``klineo.validation.decimal_or_none``: the one rule turning a stored or received number into a Decimal."""

from __future__ import annotations

from decimal import Decimal

import pytest
from klineo.validation import decimal_or_none


@pytest.mark.parametrize("absent", [None, ""])
def test_an_absent_value_is_none(absent) -> None:
    """None and the empty string (how Binance and old items leave a number out) both mean absent."""
    assert decimal_or_none(absent) is None


def test_a_decimal_is_handed_back_as_the_same_object() -> None:
    """What DynamoDB reads back is returned as is: no text round trip, trailing zeros kept."""
    stored = Decimal("0.0100")
    assert decimal_or_none(stored) is stored


@pytest.mark.parametrize(("value", "expected"), [
    (3, "3"), (0, "0"), (-2, "-2"), (0.1, "0.1"), (1e-7, "1E-7"), ("0.00200", "0.00200"), ("-1.5", "-1.5"),
])
def test_ints_floats_and_text_become_the_decimal_of_their_text(value, expected) -> None:
    """An int, a float (its shortest text, not its binary expansion) or a numeric string keeps its digits."""
    number = decimal_or_none(value)
    assert type(number) is Decimal and str(number) == expected


@pytest.mark.parametrize("garbage", ["abc", "1.2.3", "0x10", True, [], {}, b"1", object()])
def test_what_is_not_a_number_is_none(garbage) -> None:
    """Unparsable values are None, never an exception (a bad stored or answered value is not a crash)."""
    assert decimal_or_none(garbage) is None


@pytest.mark.parametrize("not_finite", [
    "NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf", float("nan"), float("inf"),
    Decimal("NaN"), Decimal("-Infinity"),
])
def test_not_a_number_and_infinities_are_none(not_finite) -> None:
    """NaN and the infinities, as text, floats or Decimals, are None: no amount is ever non-finite."""
    assert decimal_or_none(not_finite) is None
