"""Request bodies of POST /strategies and PATCH /strategies/{id} (and a backtest's strategy part).

Trading settings (all optional on create; defaults as documented in the README):
- ``direction`` "long" | "short" | "both" (default "both"): with "long" a short signal means flat,
  with "short" a long signal means flat;
- ``leverage`` 1..125 and ``margin_type`` ISOLATED | CROSSED (default: the connection's settings),
  applied per symbol before a live order;
- sizing, exactly one of ``size`` (contracts), ``quote_size_usdt`` (USDT per entry) or
  ``size_pct`` (0 < x <= 100 percent of the available balance, times leverage);
  ``paper_balance_usdt`` (default 10000) is the paper account's starting capital (a new value restarts
  the paper ledger, only while the paper position is flat: ``klineo.services.strategy_updates``);
- ``stop_loss_pct`` / ``take_profit_pct`` (0 < x < 100, from the entry fill price) and
  ``trailing_stop_pct`` (Binance's callbackRate 0.1..20; placed live only).

Parameters are checked per strategy type inside the request models (the type's own pydantic
model, from ``klineo.strategies.REGISTRY``), so a bad parameter is a 422 naming it, e.g.
``parameters.fast``. A PATCH that changes parameters names the type with them, so that the
check needs nothing stored.
"""


import copy
from collections.abc import Mapping
from decimal import Decimal
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    GetJsonSchemaHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from klineo.models.base import NULL_REFUSED, field_refusal, one_of_refusal, rule_of_fields_sent
from klineo.models.fields import ApiModel, PositiveDecimal, positive_decimal_example
from klineo.models.strategies import SIZING_FIELDS, Direction, MarginType, Mode, Status
from klineo.strategies import INTERVALS_MS, NO_SIDE_LEFT, REGISTRY, leaves_no_side, parse_parameters
from klineo.validation import CALLBACK_RATE_MAX, CALLBACK_RATE_MIN, CONNECTION_ID_PATTERN, SYMBOL_PATTERN

__all__ = ["StrategyCreateRequest", "StrategyDefinition", "StrategyUpdateRequest"]

RunnerInterval = Literal[tuple(INTERVALS_MS)]  # type: ignore[valid-type]
StrategyTypeName = Literal[tuple(REGISTRY)]  # type: ignore[valid-type]
# Contracts per order (base asset), e.g. "0.002" BTC; rounded down to the symbol's step when trading.
Size = Annotated[PositiveDecimal, Field(le=Decimal(1_000_000), max_digits=24, decimal_places=12)]
Leverage = Annotated[int, Field(ge=1, le=125, strict=True)]
QuoteSize = Annotated[PositiveDecimal, Field(le=Decimal(100_000_000), max_digits=24, decimal_places=8),
                      positive_decimal_example("150")]
SizePct = Annotated[PositiveDecimal, Field(le=Decimal(100), max_digits=12, decimal_places=8),
                    positive_decimal_example("10")]
Percent = Annotated[PositiveDecimal, Field(lt=Decimal(100), max_digits=12, decimal_places=8),
                    positive_decimal_example("2")]
TrailingPct = Annotated[PositiveDecimal, Field(ge=CALLBACK_RATE_MIN, le=CALLBACK_RATE_MAX, decimal_places=1),
                        positive_decimal_example("1")]
# What a sizing that can never trade is answered (klineo.runner.planning.sizing_refusal), for both bodies.
_SIZE_DOC = ("Contracts (base asset) per entry, rounded down to the symbol's step. One below the symbol's "
             "MARKET minimum quantity once rounded, or above its maximum, can never trade: 422 naming size.")
_QUOTE_SIZE_DOC = ("USDT per entry (quantity = it / price, rounded down to the step). One below the symbol's "
                   "minimum order value can never trade: 422 naming quote_size_usdt.")
PaperBalance = Annotated[PositiveDecimal, Field(le=Decimal(1_000_000_000), max_digits=24, decimal_places=8),
                         positive_decimal_example("10000")]


def _a_side_to_trade(cls: type, fields: Mapping[str, Any]) -> None:
    """``direction`` refused when the parameters sent with it turn every signal flat (``NO_SIDE_LEFT``).

    A rule across the two fields (``rule_of_fields_sent``), refused with ``field_refusal``: a field
    validator's ValueError carries the direction sent, and the API's echo guard then answers the message,
    which says "direction short", as a bare "invalid value"."""
    if leaves_no_side(fields["direction"], fields["parameters"]):
        raise field_refusal(cls, "direction", NO_SIDE_LEFT)


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


@cache
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


class _ParametersJsonSchema:
    """``WithJsonSchema`` for ``parameters``, the schema made when a JSON schema is asked for.

    Building each strategy type's JSON schema at import cost every strategy function's cold start
    (the models' schemas are built on first use, ``klineo.models.base``); only the OpenAPI document
    needs it.
    """

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return copy.deepcopy(_parameters_schema())


def _checked_parameters(value: dict[str, Any] | None, type_name: Any) -> dict[str, Any] | None:
    """The parameters validated for ``type_name`` with defaults filled in (nested errors keep their field)."""
    if value is None or type_name is None:
        return value
    _strict_json_types(type_name, value)
    return parse_parameters(type_name, value).model_dump()


class StrategyDefinition(ApiModel):
    """What a strategy trades and how: the fields POST /strategies and a backtest share, each rule once."""

    symbol: Annotated[str, Field(pattern=SYMBOL_PATTERN, examples=["BTCUSDT"])]
    interval: RunnerInterval
    type: StrategyTypeName
    parameters: Annotated[dict[str, Any], _ParametersJsonSchema()] = Field(
        default_factory=dict, validate_default=True)
    size: Size | None = Field(default=None, description=_SIZE_DOC)
    quote_size_usdt: QuoteSize | None = Field(default=None, description=_QUOTE_SIZE_DOC)
    size_pct: SizePct | None = None
    direction: Direction = "both"
    leverage: Leverage | None = None
    stop_loss_pct: Percent | None = None
    take_profit_pct: Percent | None = None
    trailing_stop_pct: TrailingPct | None = Field(
        default=None,
        description="Binance's callbackRate: a live entry gets a reduce-only TRAILING_STOP_MARKET beside its "
                    "stop-loss / take-profit (paper and backtests ignore it).")
    paper_balance_usdt: PaperBalance = Field(default=Decimal(10_000), description=(
        "The paper account's starting capital in USDT (paper mode and backtests): the paper equity is it "
        "plus the realised PnL (net of fees) and the open position's unrealised PnL."))

    @field_validator("parameters")
    @classmethod
    def _parameters_fit_type(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any] | None:
        """Checked against the type's own parameter model."""
        return _checked_parameters(value, info.data.get("type"))

    _direction_trades = rule_of_fields_sent("parameters", "direction")(_a_side_to_trade)

    @rule_of_fields_sent()
    def _one_sizing(cls, fields: Mapping[str, Any]) -> None:
        """Exactly one of size, quote_size_usdt and size_pct (a refusal names one: ``one_of_refusal``)."""
        chosen = [name for name in SIZING_FIELDS if fields[name] is not None]
        if len(chosen) != 1:
            raise one_of_refusal(cls, SIZING_FIELDS, chosen,
                                 "send exactly one of size, quote_size_usdt or size_pct")


class StrategyCreateRequest(StrategyDefinition):
    """POST /strategies: a strategy definition on one of the caller's connections."""

    connection_id: Annotated[str, Field(pattern=CONNECTION_ID_PATTERN)]
    mode: Mode = "paper"
    status: Status = "active"
    margin_type: MarginType | None = None


class StrategyUpdateRequest(ApiModel):
    """PATCH /strategies/{id}: type (+parameters), sizing, mode, status and trading settings; a field left
    out keeps its value.

    Parameters replace the stored ones (defaults fill the rest); a new type sent without parameters takes its
    defaults, the strategy's own type sent without them keeps its parameters. A sizing replaces the stored
    one. null clears leverage, margin_type, stop_loss_pct, take_profit_pct and
    trailing_stop_pct; the other fields cannot be cleared, and null on one is refused (400 naming it).
    """

    type: Annotated[StrategyTypeName | None, NULL_REFUSED] = None
    parameters: Annotated[dict[str, Any] | None, _ParametersJsonSchema()] = None
    size: Annotated[Size | None, NULL_REFUSED] = Field(default=None, description=_SIZE_DOC)
    quote_size_usdt: Annotated[QuoteSize | None, NULL_REFUSED] = Field(default=None,
                                                                    description=_QUOTE_SIZE_DOC)
    size_pct: Annotated[SizePct | None, NULL_REFUSED] = None
    mode: Annotated[Mode | None, NULL_REFUSED] = None
    status: Annotated[Status | None, NULL_REFUSED] = None
    direction: Annotated[Direction | None, NULL_REFUSED] = None
    leverage: Leverage | None = None
    margin_type: MarginType | None = None
    stop_loss_pct: Percent | None = None
    take_profit_pct: Percent | None = None
    trailing_stop_pct: TrailingPct | None = None
    paper_balance_usdt: Annotated[PaperBalance | None, NULL_REFUSED] = Field(default=None, description=(
        "A new starting capital restarts the paper ledger from it (realised PnL and fees back to 0, so the "
        "paper equity is this value; a `paper_reset` event), in the PATCH's one write. Only while the paper "
        "position is flat: 409 `conflict` naming `paper_balance_usdt` while it is open. The stored value "
        "sent again changes nothing, except when the paper equity is gone (a liquidation): then it restarts "
        "the ledger too, the way to resume such a strategy."))

    _direction_trades = rule_of_fields_sent("parameters", "direction")(_a_side_to_trade)

    @rule_of_fields_sent()
    def _at_most_one_sizing(cls, fields: Mapping[str, Any]) -> None:
        """At most one sizing (it replaces the stored one); a refusal names the last one sent."""
        chosen = [name for name in SIZING_FIELDS if fields[name] is not None]
        if len(chosen) > 1:
            raise one_of_refusal(cls, SIZING_FIELDS, chosen,
                                 "send at most one of size, quote_size_usdt or size_pct")

    @field_validator("parameters")
    @classmethod
    def _parameters_fit_type(
        cls, value: dict[str, Any] | None, info: ValidationInfo,
    ) -> dict[str, Any] | None:
        """Checked against the type sent with them (the strategy's current type, or a new one); without it
        (``_type_with_parameters``), or with an invalid one (its own error is reported), left as sent."""
        return _checked_parameters(value, info.data.get("type"))

    @rule_of_fields_sent()
    def _type_with_parameters(cls, fields: Mapping[str, Any]) -> None:
        """Parameters come with the type they are for, so that their check reads nothing stored: refused
        naming type, the field to add (``field_refusal``), the message naming both."""
        if fields["parameters"] is not None and fields["type"] is None:
            raise field_refusal(cls, "type", "send the strategy's type together with its parameters")
