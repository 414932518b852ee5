"""Quote-size orders: ``quote_quantity`` (USDT) turned into the order's quantity before anything is checked.

The conversion uses the price the order is valued at (``klineo.services.futures``'s reference price:
the mark price for market-type orders, the limit price for priced ones), rounds DOWN to the symbol's
step, and checks the lot and minimum notional (``SymbolRules.quantity_for_quote``), so a refusal names
``quote_quantity`` and nothing is sent. The caller's request (and its fingerprint, what "the same
request" means for a retry) keeps the quote size; only the order built from it carries the quantity.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from klineo.binance import BinanceClient
from klineo.binance.filters import get_symbol_rules
from klineo.models.futures import FuturesOrderRequest

__all__ = ["with_quote_quantity"]


def with_quote_quantity(
    client: BinanceClient, order: FuturesOrderRequest, reference_price: Callable[[], Decimal]
) -> FuturesOrderRequest:
    """``order`` itself, or (with quote_quantity) a copy carrying the converted quantity."""
    if order.quote_quantity is None:
        return order
    rules = get_symbol_rules(client, order.symbol)
    market_order = order.type.endswith("MARKET")
    quantity = rules.quantity_for_quote(order.quote_quantity, reference_price(), market_order)
    return order.model_copy(update={"quantity": quantity})
