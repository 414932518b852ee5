"""Field types and the request base every model module shares, apart from any route's models.

Every model module imports them from here, so a function that validates a futures order or
lists strategies does not also create the connection, balance, candle and kill-switch model
classes (each class statement costs a cold start even with ``defer_build``).
"""


from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, ValidationInfo, WithJsonSchema, field_validator

from klineo.models.base import BaseModel
from klineo.validation import POSITIVE_DECIMAL_PATTERN, positive_decimal

__all__ = ["ApiModel", "ConnectionEnvironment", "DecimalString", "EpochMs", "PositiveDecimal",
           "TimeRangeQuery", "decimal_string", "positive_decimal_example"]

ConnectionEnvironment = Literal["production", "testnet"]

# A decimal as a string, exactly as precise as the exchange gave it (never a binary float).
DecimalString = Annotated[str, Field(pattern=r"^-?\d+(\.\d+)?$", examples=["0.50000000"])]


def positive_decimal_example(example: str) -> WithJsonSchema:
    """A ``PositiveDecimal``'s JSON schema with ``example``: annotate a field of a price, a USDT amount or a
    percent with it (the API page starts its "Try it out" bodies from the examples; "0.002" is a quantity)."""
    return WithJsonSchema({
        "anyOf": [{"type": "string", "pattern": POSITIVE_DECIMAL_PATTERN, "maxLength": 40},
                  {"type": "number", "exclusiveMinimum": 0}],
        "examples": [example],
    })


# A quantity, price or size in a request: a plain decimal string (or a JSON number) above 0.
PositiveDecimal = Annotated[Decimal, BeforeValidator(positive_decimal), positive_decimal_example("0.002")]


# A time in epoch milliseconds, as Binance and our answers write it (bounded to 13 digits).
EpochMs = Annotated[int, Field(ge=0, le=9_999_999_999_999)]


def decimal_string(value: Any) -> str:
    """A Decimal (or a Binance decimal string) as a plain decimal string, no exponent."""
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    return format(number, "f")


class ApiModel(BaseModel):
    """Base of every request model: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class TimeRangeQuery(ApiModel):
    """?from=&to= of a query, epoch ms, both inclusive; one rule for every route that takes them."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_ms: Annotated[EpochMs | None, Field(alias="from", description="epoch ms, inclusive")] = None
    to_ms: Annotated[EpochMs | None,
                     Field(alias="to", description="epoch ms, inclusive, not before from")] = None

    @field_validator("to_ms")
    @classmethod
    def _not_before_from(cls, value: int | None, info: ValidationInfo) -> int | None:
        """`to` must not be before `from` (the error names `to`)."""
        start = info.data.get("from_ms")
        if value is not None and start is not None and value < start:
            raise ValueError("must not be before from")
        return value
