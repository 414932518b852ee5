"""A USDT-M symbol's trading rules on one of the caller's connections (GET .../futures/symbols/{symbol}).

The rules come from the cached exchangeInfo of the connection's environment through
``klineo.binance.filters.get_symbol_rules``, the function every order is checked with, so this view and
the orders cannot disagree: an unknown or non-trading symbol is refused here as an order on it is (400
naming ``symbol``). PERCENT_PRICE is listed as its multipliers, not as prices: its band moves with the
mark price (a LIMIT's) or sits around the order's own trigger (a stop-limit's), so only the caller's
reference turns it into prices (see the response model and ``SymbolRules.check_price_band``).
"""

from __future__ import annotations

from klineo.binance.filters import get_symbol_rules
from klineo.models.symbol_rules import SymbolRulesResponse
from klineo.services.symbol_settings import futures_client
from klineo.store.connections import require_connection
from klineo.validation import check_symbol, plain_text

__all__ = ["symbol_trading_rules"]


def symbol_trading_rules(user_id: str, connection_id: str, symbol: str) -> SymbolRulesResponse:
    """``symbol``'s rules on the connection's environment, with the connection's risk limits."""
    check_symbol(symbol)
    connection = require_connection(user_id, connection_id)
    rules = get_symbol_rules(futures_client(connection), symbol)
    return SymbolRulesResponse(
        connection_id=connection.connection_id, environment=connection.environment, symbol=rules.symbol,
        status=rules.status, base_asset=rules.base_asset, quote_asset=rules.quote_asset,
        order_types=list(rules.order_types), tick_size=plain_text(rules.tick_size),
        min_price=plain_text(rules.min_price), max_price=plain_text(rules.max_price),
        step_size=plain_text(rules.step_size), min_quantity=plain_text(rules.min_qty),
        max_quantity=plain_text(rules.max_qty), market_step_size=plain_text(rules.market_step_size),
        market_min_quantity=plain_text(rules.market_min_qty),
        market_max_quantity=plain_text(rules.market_max_qty), min_notional=plain_text(rules.min_notional),
        percent_price_multiplier_up=plain_text(rules.multiplier_up),
        percent_price_multiplier_down=plain_text(rules.multiplier_down),
        max_leverage=connection.max_leverage, leverage=connection.leverage,
        max_notional_usdt=plain_text(connection.max_notional_usdt),
    )
