"""``klineo.validation.plain_text``: the one rule writing a Decimal as plain text (API, records, Binance)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from klineo.validation import plain_text, plain_text_or_none


@pytest.mark.parametrize("zero", ["0", "-0", "0E-8", "0.00", "-0.000", "0E+2"])
def test_every_zero_is_written_as_0(zero) -> None:
    """A zero of any sign or exponent reads "0": never "-0", "0E-8" or "0.00"."""
    assert plain_text(Decimal(zero)) == "0"


@pytest.mark.parametrize(("value", "expected"), [
    ("1E+2", "100"),
    ("100.00", "100"),
    ("0.00012300", "0.000123"),
    ("1E-8", "0.00000001"),
    ("123456789012345678.123456789", "123456789012345678.123456789"),
    ("-42.50", "-42.5"),
    ("-1E+3", "-1000"),
    ("0.5", "0.5"),
])
def test_a_number_is_written_without_exponent_or_trailing_zeros(value, expected) -> None:
    """Plain notation: an exponent is expanded, trailing zeros dropped, the sign of a non-zero kept."""
    assert plain_text(Decimal(value)) == expected


def test_a_number_past_the_default_context_is_written_exactly() -> None:
    """30 significant digits (a futures price or quantity may have that many) are written as they are,
    not rounded to Python's default 28."""
    assert plain_text(Decimal("12345678901234.1234567890123456")) == "12345678901234.1234567890123456"
    assert plain_text(Decimal("100000000000000000000000000000.5")) == "100000000000000000000000000000.5"


def test_absent_stays_absent_and_a_number_follows_the_same_rule() -> None:
    """plain_text_or_none keeps None and writes a number exactly as plain_text does."""
    assert plain_text_or_none(None) is None
    assert plain_text_or_none(Decimal("-0")) == "0"
    assert plain_text_or_none(Decimal("2.500")) == "2.5"
