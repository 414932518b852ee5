"""A hold's run item fits one write unit (1 KB), sized by DynamoDB's published item-size rules.

The rules (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html):
a string is its UTF-8 bytes; a number 1 byte per two significant digits + 1; a boolean or null 1;
a map or list 3 bytes + 1 per element + its elements; every attribute adds its name's UTF-8 bytes.
A write costs one write unit per started KB, so the run must stay at or under 1,024 bytes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from klineo.store.events import write_time
from klineo.store.runs import Run
from klineo.strategies.base import fmt

ONE_WRITE_UNIT = 1024


def _value_size(attribute: dict[str, Any]) -> int:
    (kind, value), = attribute.items()
    if kind == "S":
        return len(value.encode())
    if kind == "N":
        digits = Decimal(value).normalize().as_tuple().digits
        return (len(digits) + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(name.encode()) + _value_size(inner) + 1 for name, inner in value.items())
    if kind == "L":
        return 3 + sum(_value_size(inner) + 1 for inner in value)
    raise AssertionError(f"unexpected attribute type {kind}")


def item_size(item: dict[str, Any]) -> int:
    """Bytes DynamoDB counts for ``item`` (names plus values, by the rules in the module docstring)."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _biggest_hold() -> Run:
    """A live SMA hold with every field a hold writes at its longest: a Cognito sub, BTC-sized indicators."""
    price = Decimal("104523.123456789")
    return Run(
        strategy_id="0123456789abcdef0123456789abcdef", user_id="0f6e4a1c-2b3d-4e5f-8a9b-0c1d2e3f4a5b",
        close_time=1_764_487_859_999, status="no_change", mode="live", signal="hold",
        reason="fast SMA crossed above slow SMA",  # the longest reason any type gives
        indicators={"fast_sma": fmt(price), "slow_sma": fmt(price), "fast_sma_prev": fmt(price),
                    "slow_sma_prev": fmt(price)},
        position_before=Decimal("-1234.567"), target_position=Decimal("-1234.567"),
    )


def test_the_item_size_rules_count_a_known_item_as_documented() -> None:
    """GIVEN a string, a number and a map WHEN sized THEN the documented bytes (names, values, overheads)."""
    item = {"pk": {"S": "abc"}, "n": {"N": "12345"}, "m": {"M": {"k": {"S": "xy"}}}}
    assert item_size(item) == (2 + 3) + (1 + 3 + 1) + (1 + 3 + (1 + 2 + 1))


def test_a_realistic_hold_run_fits_one_write_unit() -> None:
    """GIVEN the largest hold run the runner writes WHEN sized by DynamoDB's rules THEN <= 1 KB (one WCU)."""
    size = item_size(_biggest_hold().to_item(write_time()))
    assert size <= ONE_WRITE_UNIT, size
    assert size < 700  # room left for a longer reason or another indicator


def test_a_run_that_was_never_updated_does_not_store_updated_at_twice() -> None:
    """GIVEN a new run WHEN built THEN updated_at is not stored (it equals created_at) and reads back so."""
    item = _biggest_hold().to_item(write_time())
    assert "updated_at" not in item
    back = Run.from_item(item)
    assert back.updated_at == back.created_at != ""
