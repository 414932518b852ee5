"""Request and response models of the strategies routes (POST/GET/PATCH/DELETE /strategies[/{id}]).

Parameters are checked per strategy type inside the request models (the type's own pydantic
model, from ``klineo.strategies.REGISTRY``), so a bad parameter is a 422 naming it, e.g.
``parameters.fast``. A PATCH that changes parameters names the type with them, so that the
check needs nothing stored.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, WithJsonSchema, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from klineo.models.base import BaseModel
from klineo.models.common import ApiModel, DecimalString, PositiveDecimal
from klineo.strategies import INTERVALS_MS, REGISTRY, parse_parameters
from klineo.validation import CONNECTION_ID_PATTERN, STRATEGY_ID_PATTERN, SYMBOL_PATTERN

__all__ = [
    "RUNS_SHOWN",
    "STRATEGY_ID_PATTERN",
    "PendingOrderResponse",
    "RunError",
    "RunOrder",
    "RunResponse",
    "StrategyCreateRequest",
    "StrategyDetailResponse",
    "StrategyListResponse",
    "StrategyResponse",
    "StrategyUpdateRequest",
]

# How many of the latest runs GET /strategies/{id} returns.
RUNS_SHOWN = 20

RunnerInterval = Literal[tuple(INTERVALS_MS)]  # type: ignore[valid-type]
StrategyTypeName = Literal[tuple(REGISTRY)]  # type: ignore[valid-type]
Mode = Literal["paper", "live"]
Status = Literal["active", "paused"]
# Contracts per order (base asset), e.g. "0.002" BTC; rounded down to the symbol's step when trading.
Size = Annotated[PositiveDecimal, Field(le=Decimal(1_000_000), max_digits=24, decimal_places=12)]


# The JSON types a parameter of each declared type may have: no "5" for 5, no true for 1.
_JSON_TYPES: dict[Any, tuple[str, tuple[type, ...]]] = {
    int: ("an integer", (int,)),
    bool: ("true or false", (bool,)),
    Decimal: ("a number", (int, Decimal)),
}


def _strict_json_types(type_name: str, value: dict[str, Any]) -> None:
    """Each known parameter has its declared JSON type (pydantic's lax mode would coerce it)."""
    fields = REGISTRY[type_name].params_model.model_fields
    errors = []
    for name, item in value.items():
        declared = _JSON_TYPES.get(fields[name].annotation) if name in fields else None
        if declared is not None and type(item) not in declared[1]:
            errors.append(InitErrorDetails(
                type=PydanticCustomError("strict_type", "must be {expected}", {"expected": declared[0]}),
                loc=(name,), input=item))
    if errors:
        raise ValidationError.from_exception_data(type_name, errors)


def _parameters_schema() -> dict[str, Any]:
    """Each strategy type's parameters as the API takes them: numbers as JSON numbers, no other keys."""
    variants = []
    for name, strategy_type in REGISTRY.items():
        schema = strategy_type.params_model.model_json_schema()
        for prop in schema.get("properties", {}).values():
            numbers = [choice for choice in prop.pop("anyOf", []) if choice.get("type") == "number"]
            prop.update(numbers[0] if numbers else {})
            if numbers and isinstance(prop.get("default"), str):
                prop["default"] = float(prop["default"])
        variants.append({**schema, "title": f"{name} parameters"})
    return {"type": "object", "anyOf": variants,
            "description": "The parameters of the strategy's `type` (sent with it); defaults fill the rest."}


PARAMETERS_SCHEMA = _parameters_schema()


def _checked_parameters(value: dict[str, Any] | None, type_name: Any) -> dict[str, Any] | None:
    """The parameters validated for ``type_name`` with defaults filled in (nested errors keep their field)."""
    if value is None or type_name is None:
        return value
    _strict_json_types(type_name, value)
    return parse_parameters(type_name, value).model_dump()


class StrategyCreateRequest(ApiModel):
    """POST /strategies: a strategy on one of the caller's connections."""

    connection_id: Annotated[str, Field(pattern=CONNECTION_ID_PATTERN)]
    symbol: Annotated[str, Field(pattern=SYMBOL_PATTERN, examples=["BTCUSDT"])]
    interval: RunnerInterval
    type: StrategyTypeName
    parameters: Annotated[dict[str, Any], WithJsonSchema(PARAMETERS_SCHEMA)] = Field(
        default_factory=dict, validate_default=True)
    size: Size
    mode: Mode = "paper"
    status: Status = "active"

    @field_validator("parameters")
    @classmethod
    def _parameters_fit_type(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any] | None:
        """Checked against the type's own parameter model."""
        return _checked_parameters(value, info.data.get("type"))


class StrategyUpdateRequest(ApiModel):
    """PATCH /strategies/{id}: any of type (+parameters), parameters (with type), size, mode, status."""

    type: StrategyTypeName | None = None
    parameters: Annotated[
        dict[str, Any] | None, WithJsonSchema({"anyOf": [PARAMETERS_SCHEMA, {"type": "null"}]})] = None
    size: Size | None = None
    mode: Mode | None = None
    status: Status | None = None

    @field_validator("parameters")
    @classmethod
    def _parameters_fit_type(
        cls, value: dict[str, Any] | None, info: ValidationInfo,
    ) -> dict[str, Any] | None:
        """Sent with the type they are for (the strategy's current type, or a new one)."""
        if value is not None and info.data.get("type") is None:
            if "type" in info.data:
                raise ValueError("send the strategy's type together with its parameters")
            return value  # the type itself was invalid: its own error is reported
        return _checked_parameters(value, info.data.get("type"))


class PendingOrderResponse(BaseModel):
    """A live order the runner sent (or is sending) and has not settled yet."""

    client_order_id: str
    side: str
    quantity: DecimalString
    close_time: int


class RunOrder(BaseModel):
    """The order of a run: placed at Binance (live) or simulated at the candle's close (paper)."""

    client_order_id: str
    order_id: int | None = None
    side: str
    type: str = "MARKET"
    status: str
    quantity: DecimalString
    executed_quantity: DecimalString
    average_price: DecimalString | None = None
    reduce_only: bool = False
    simulated: bool


class RunError(BaseModel):
    """Why a run's order failed: the error category and a user-safe message."""

    category: str
    message: str


class RunResponse(BaseModel):
    """What the runner did on one closed candle."""

    close_time: int
    status: str
    mode: str
    signal: str | None = None
    reason: str | None = None
    indicators: dict[str, str] = Field(default_factory=dict)
    position_before: DecimalString | None = None
    target_position: DecimalString | None = None
    order: RunOrder | None = None
    error: RunError | None = None
    skip_reason: str | None = None
    recorded_at: str
    updated_at: str


class StrategyResponse(BaseModel):
    """One strategy: the user's settings and where the runner stands."""

    id: str
    connection_id: str
    environment: str
    symbol: str
    interval: str
    type: str
    parameters: dict[str, Any]
    size: DecimalString
    mode: Mode
    status: Status
    status_reason: str | None = None
    position: DecimalString
    live_position: DecimalString
    paper_position: DecimalString
    last_run_close_time: int | None = None
    pending_order: PendingOrderResponse | None = None
    created_at: str
    updated_at: str


class StrategyListResponse(BaseModel):
    """The caller's strategies, oldest first."""

    strategies: list[StrategyResponse]


class StrategyDetailResponse(StrategyResponse):
    """One strategy and its latest runs, newest candle first."""

    runs: list[RunResponse]
