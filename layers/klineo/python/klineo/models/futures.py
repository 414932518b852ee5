"""Request and response models of the futures order routes (order, order status, cancel, close).

The answers of the futures test, enable and disable routes are in ``klineo.models.futures_account``
(not re-exported here): the functions that only read or switch a connection's futures state do not
create the order models.

Field names of the order body follow the KLINEO frontend (and Binance): `connection_id`, then
Binance's own camelCase names. Unknown fields are refused, so a typo such as `reduce_only` is an
error naming the field instead of an order silently placed without it.
"""


from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
)

from klineo.models.base import BaseModel, one_of_refusal, rule_of_fields_sent
from klineo.models.fields import PositiveDecimal, positive_decimal_example
from klineo.models.protective_states import ProtectiveOrderState
from klineo.validation import (
    CLIENT_ORDER_ID_PATTERN,
    CONDITIONAL_ORDER_TYPES,
    CONNECTION_ID_PATTERN,
    ORDER_POSITION_SIDES,
    ORDER_SIDES,
    ORDER_SIZE_FIELDS,
    ORDER_TIME_IN_FORCE,
    ORDER_TYPES,
    ORDER_WORKING_TYPES,
    SYMBOL_PATTERN,
    check_close_position,
    check_conditional_field,
    check_order_price,
    check_order_size,
    check_protection,
    check_size_beside_close,
    check_trigger,
    order_time_in_force,
)

__all__ = [
    "CLIENT_ORDER_ID_PATTERN",
    "FuturesOrderRequest",
    "FuturesOrderResponse",
    "ProtectiveOrderState",
    "ProtectiveTarget",
]

_Positive = Annotated[PositiveDecimal, Field(max_digits=30, decimal_places=16)]
# The same, documented with a BTCUSDT price, a USDT amount, a percent (a quantity's "0.002" is none of them).
_Price = Annotated[_Positive, positive_decimal_example("65000")]
_Usdt = Annotated[_Positive, positive_decimal_example("150")]
_Percent = Annotated[_Positive, positive_decimal_example("2.5")]
# The grid rule of a typed value (README "Values are sent as typed"): Binance refuses an off-grid one
# (-4023, -4014) rather than change it, and so do we, before anything is sent.
_TICK_RULE = ("Must be a multiple of the symbol's tick size (PRICE_FILTER tickSize in GET "
              "/fapi/v1/exchangeInfo, counted from minPrice): otherwise refused with a 400 invalid_request "
              "naming this field, never rounded.")
_STEP_RULE = ("Must be a multiple of the symbol's step size (LOT_SIZE stepSize in GET /fapi/v1/exchangeInfo; "
              "MARKET_LOT_SIZE's for MARKET, STOP_MARKET, TAKE_PROFIT_MARKET and TRAILING_STOP_MARKET, "
              "counted from its minQty): otherwise refused with a 400 invalid_request naming quantity, never "
              "rounded.")


_TARGETS = ("price", "percent")


class ProtectiveTarget(BaseModel):
    """Where an attached stop-loss or take-profit fires: a trigger price, or a percent from the fill."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    price: _Price | None = Field(default=None,
                                 description=f"Trigger price (mark price) in USDT. {_TICK_RULE}")
    percent: _Percent | None = Field(
        default=None, lt=100,
        description="Distance from the entry's average fill price, in percent (2.5 = 2.5 %).")

    @rule_of_fields_sent()
    def _exactly_one(cls, fields: Mapping[str, Any]) -> None:
        """Exactly one of price and percent (a refusal names one: ``one_of_refusal``)."""
        sent = [name for name in _TARGETS if fields[name] is not None]
        if len(sent) != 1:
            raise one_of_refusal(cls, _TARGETS, sent, "send exactly one of price and percent")


# Fields added for conditional, protective and quote-size orders: left out of the fingerprint when
# unused, so an order recorded before they existed still counts as "the same request" on a retry.
_ADDED_FIELDS = ("quote_quantity", "triggerPrice", "callbackRate", "activationPrice", "closePosition",
                 "workingType", "priceProtect", "stop_loss", "take_profit")


class FuturesOrderRequest(BaseModel):
    """Body of POST /futures/order: one USDT-M order on one of the caller's connections.

    MARKET and LIMIT go to /fapi/v1/order; the conditional types (STOP_MARKET, TAKE_PROFIT_MARKET,
    STOP, TAKE_PROFIT, TRAILING_STOP_MARKET) go to Binance's algo order service. Fields are declared
    in the order their rules depend on each other (each validator sees the fields above it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    connection_id: str = Field(pattern=CONNECTION_ID_PATTERN)
    symbol: str = Field(pattern=SYMBOL_PATTERN)
    side: Literal[ORDER_SIDES]  # type: ignore[valid-type]
    type: Literal[ORDER_TYPES + CONDITIONAL_ORDER_TYPES]  # type: ignore[valid-type]
    reduceOnly: StrictBool = False
    closePosition: StrictBool = Field(
        default=False, description="STOP_MARKET / TAKE_PROFIT_MARKET only: close the whole position.")
    quantity: _Positive | None = Field(default=None,
                                       description=f"Order size in the base asset. {_STEP_RULE}")
    quote_quantity: _Usdt | None = Field(
        default=None,
        description="Order size in USDT instead of quantity: converted at the mark price (the limit price "
                    "for priced orders), rounded down to the symbol's step.")
    price: _Price | None = Field(default=None, validate_default=True, description=(
        f"Limit price in USDT (LIMIT, STOP, TAKE_PROFIT). {_TICK_RULE}"))
    triggerPrice: _Price | None = Field(default=None, validate_default=True, description=(
        f"The price at which a STOP*, TAKE_PROFIT* order fires, in USDT. {_TICK_RULE}"))
    callbackRate: _Percent | None = Field(default=None, validate_default=True,
                                          description="Trailing stop callback, 0.1 to 20 (%).")
    activationPrice: _Price | None = Field(default=None, validate_default=True, description=(
        f"TRAILING_STOP_MARKET: the price from which the stop starts trailing, in USDT. {_TICK_RULE}"))
    timeInForce: Literal[ORDER_TIME_IN_FORCE] | None = Field(  # type: ignore[valid-type]
        default=None, validate_default=True)
    workingType: Literal[ORDER_WORKING_TYPES] | None = Field(  # type: ignore[valid-type]
        default=None, validate_default=True)
    priceProtect: StrictBool | None = Field(default=None, validate_default=True)
    # reduceOnly beside LONG/SHORT is the risk gate's to refuse (400 naming reduceOnly, with the account's
    # other position-mode rules: README "Risk limits"), not a 422 of this model.
    positionSide: Literal[ORDER_POSITION_SIDES] = Field(  # type: ignore[valid-type]
        default="BOTH", validate_default=True)
    stop_loss: ProtectiveTarget | None = Field(default=None, validate_default=True)
    take_profit: ProtectiveTarget | None = Field(default=None, validate_default=True)

    @field_validator("closePosition")
    @classmethod
    def _close_position_fits(cls, value: bool, info: ValidationInfo) -> bool:
        check_close_position(info.data.get("type"), value, bool(info.data.get("reduceOnly")))
        return value

    @field_validator("quantity", "quote_quantity")
    @classmethod
    def _no_size_beside_close(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        check_size_beside_close(value, bool(info.data.get("closePosition")))
        return value

    @field_validator("price")
    @classmethod
    def _price_matches_type(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        check_order_price(info.data.get("type"), value)
        return value

    @field_validator("triggerPrice", "callbackRate", "activationPrice")
    @classmethod
    def _trigger_matches_type(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        check_trigger(info.data.get("type"), str(info.field_name), value)
        return value

    @field_validator("timeInForce")
    @classmethod
    def _time_in_force_matches_type(cls, value: str | None, info: ValidationInfo) -> str | None:
        return order_time_in_force(info.data.get("type"), value)

    @field_validator("workingType", "priceProtect")
    @classmethod
    def _conditional_only(cls, value: Any, info: ValidationInfo) -> Any:
        check_conditional_field(info.data.get("type"), str(info.field_name), value)
        return value

    @field_validator("stop_loss", "take_profit")
    @classmethod
    def _protects_an_entry(cls, value: ProtectiveTarget | None, info: ValidationInfo) -> Any:
        if value is not None:
            data = info.data
            check_protection(data.get("type"), data.get("side"), bool(data.get("reduceOnly")),
                             data.get("positionSide"))
        return value

    @rule_of_fields_sent("closePosition")
    def _one_size(cls, fields: Mapping[str, Any]) -> None:
        """Exactly one of quantity and quote_quantity unless closePosition (``check_order_size``); a refusal
        names one (``one_of_refusal``): quantity when neither is sent, quote_quantity beside a quantity."""
        sent = [name for name in ORDER_SIZE_FIELDS if fields[name] is not None]
        try:
            check_order_size(sent, fields["closePosition"] is True)
        except ValueError as refused:
            raise one_of_refusal(cls, ORDER_SIZE_FIELDS, sent, str(refused)) from None

    @property
    def conditional(self) -> bool:
        """True for the types Binance takes only through its algo order service."""
        return self.type in CONDITIONAL_ORDER_TYPES

    def typed_value(self, field: str) -> Decimal | None:
        """The value of ``field`` (as a refusal names it) when the caller typed it and it must lie on the
        symbol's grid, refused off it, never rounded (the order path's checks and the dry run's
        valid_nearby both read it here); None for any other field, or one not sent. A quantity converted
        from quote_quantity is not typed (it is rounded down to the step)."""
        typed = _TYPED_ON_GRID.get(field)
        return None if typed is None else typed(self)

    def fingerprint(self) -> dict[str, Any]:
        """The request as plain JSON values (Decimals as strings): what "the same request" means."""
        dump = self.model_dump(mode="json")
        return {k: v for k, v in dump.items() if k not in _ADDED_FIELDS or v not in (None, False)}


# The values a caller types that must lie on the symbol's grid, by the field a refusal names.
_TYPED_ON_GRID: dict[str, Callable[[FuturesOrderRequest], Decimal | None]] = {
    "quantity": lambda order: order.quantity if order.quote_quantity is None else None,
    "price": lambda order: order.price,
    "triggerPrice": lambda order: order.triggerPrice,
    "activationPrice": lambda order: order.activationPrice,
    "stop_loss.price": lambda order: order.stop_loss.price if order.stop_loss else None,
    "take_profit.price": lambda order: order.take_profit.price if order.take_profit else None,
}


class FuturesOrderResponse(BaseModel):
    """An order as Binance knows it, with how this answer was obtained."""

    client_order_id: str
    connection_id: str
    order_id: int | None = None
    symbol: str
    side: str
    type: str
    status: str
    quantity: str | None = Field(
        description="null for a closePosition order, which is for the whole position (Binance's 0 there).")
    executed_quantity: str
    price: str | None = None
    average_price: str | None = None
    time_in_force: str | None = None
    reduce_only: bool = False
    position_side: str = "BOTH"
    update_time: int | None = None
    kind: Literal["order", "algo"] = Field(
        default="order",
        description="order: /fapi/v1/order; algo: Binance's algo (conditional) order service, "
                                     "where client_order_id is the clientAlgoId and order_id the algoId.")
    trigger_price: str | None = None
    close_position: bool = False
    protective_orders: list[ProtectiveOrderState] | None = Field(
        default=None,
        description="The stop-loss / take-profit attached to this entry, when it asked for any: for each, "
                    "the latest placed, which is re-placed for what is left of the position (clientAlgoId "
                    "ending -sl1, -tp1, ...) after a reduce-only order or a close of ours made it smaller "
                    "than they were for.")
    position_left: str | None = Field(
        default=None,
        description="Close route only: the part of the position this close did not include. One MARKET "
                    "order may close at most the symbol's MARKET_LOT_SIZE maxQty: a larger position is "
                    "closed up to it, and the rest answered here; send the close again with a NEW "
                    "Idempotency-Key to close it (meanwhile the stop-loss / take-profit orders of the "
                    "position's API entries are re-placed for what is left, the old ones cancelled). "
                    "Less than one MARKET_LOT_SIZE step (which MARKET orders must be a multiple "
                    "of, and which may be coarser than the position's) is left by the grid: close it with a "
                    "reduce-only LIMIT order. Absent when the whole position was closed. A retry with the "
                    "close's Idempotency-Key answers the first close's value (kept with its order), not a "
                    "fresh reading.")
    source: Literal["placed", "recovered", "existing", "queried"] = Field(
        description=(
            "placed: Binance's answer to this request; recovered: the answer was lost and the order was "
            "found by clientOrderId; existing: an earlier request with the same Idempotency-Key already "
            "placed it; queried: read back from Binance by the status route."
        )
    )
