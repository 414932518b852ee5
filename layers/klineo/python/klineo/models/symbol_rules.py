"""Response model of GET /exchange-connections/{id}/futures/symbols/{symbol}: a symbol's trading rules.

The rules are Binance's exchangeInfo for the connection's environment, as ``klineo.binance.filters``
reads them for every order (the same cached document); the limits are the connection's own, as the
risk gate applies them. Numbers are decimal strings (``klineo.validation.plain_text``); "0" means
Binance sets no such limit.
"""


from pydantic import Field

from klineo.models.base import BaseModel
from klineo.models.fields import ConnectionEnvironment, DecimalString

__all__ = ["SymbolRulesResponse"]


class SymbolRulesResponse(BaseModel):
    """One USDT-M symbol's trading rules on a connection's environment, with the connection's limits."""

    connection_id: str
    environment: ConnectionEnvironment
    symbol: str
    status: str = Field(description="Binance's contract status; only TRADING symbols are answered.")
    base_asset: str
    quote_asset: str
    order_types: list[str]
    tick_size: DecimalString = Field(description="PRICE_FILTER: a price is minPrice plus a multiple of it.")
    min_price: DecimalString
    max_price: DecimalString
    step_size: DecimalString = Field(
        description="LOT_SIZE (LIMIT and conditional orders): a quantity is minQty plus a multiple of it.")
    min_quantity: DecimalString
    max_quantity: DecimalString
    market_step_size: DecimalString = Field(description="MARKET_LOT_SIZE: the step of a MARKET order.")
    market_min_quantity: DecimalString
    market_max_quantity: DecimalString
    min_notional: DecimalString = Field(
        description="MIN_NOTIONAL: the least an order may be worth (quantity times price, MARKET at the mark "
                    "price); reduce-only orders are exempt.")
    percent_price_multiplier_up: DecimalString = Field(
        examples=["1.05"],
        description="PERCENT_PRICE multiplierUp: the top of Binance's price band ('0': no band). A LIMIT "
                    "BUY's price may be at most the mark price times it (Binance -4016); a stop-limit's "
                    "(STOP, TAKE_PROFIT) price, BUY or SELL, at most its triggerPrice times it (-4183). "
                    "The band moves with the mark: a LIMIT price is checked before sending only when the "
                    "order's placement read the mark already (an opening SELL LIMIT), else Binance "
                    "refuses it; a stop-limit's is always checked before sending.")
    percent_price_multiplier_down: DecimalString = Field(
        examples=["0.95"],
        description="PERCENT_PRICE multiplierDown: the bottom of Binance's price band ('0': no band). A "
                    "LIMIT SELL's price must be at least the mark price times it (Binance -4024; checked "
                    "before sending when its placement read the mark, as an opening SELL LIMIT does); a "
                    "stop-limit's (STOP, TAKE_PROFIT) price, BUY or SELL, at least its triggerPrice times "
                    "it (-4184, always checked before sending).")
    max_leverage: int = Field(description="The connection's max_leverage, which the risk gate applies.")
    leverage: int | None = Field(
        default=None, description="The connection's default leverage (the risk gate checks it against "
                                  "max_leverage); None: the account's own.")
    max_notional_usdt: DecimalString = Field(
        description="The connection's limit on the value of an order that adds exposure (risk gate).")
