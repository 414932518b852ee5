"""Creating strategies: POST /strategies (changing one, PATCH: ``klineo.services.strategy_updates``).

The rules are those of ``klineo.services.strategies`` (its module docstring). Creating and
changing live apart from it because only they read the
caller's connection (the connections and secrets stores and the ``Connection`` model) and the
symbol's exchange rules: the six other strategy functions load none of that at cold start.
Creating answers with the new strategy through ``klineo.services.strategy_view``, so it loads
neither the runs and events stores nor their models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from klineo.binance import Environment, Market, get_client, get_symbol_rules
from klineo.errors import refuse_together
from klineo.models.strategies import StrategyResponse
from klineo.runner.planning import require_market_orders, require_tradable_sizing
from klineo.services.strategy_connection import require_runnable
from klineo.services.strategy_view import new_strategy_response
from klineo.store import strategies as strategy_store
from klineo.store.connections import STRATEGY_REFUSED, Connection, refuse_deleting, require_connection
from klineo.store.strategies import SETTING_NAMES, Strategy, TradingSettings

if TYPE_CHECKING:
    # The function's own route imports its request model; the service only reads its fields.
    from klineo.models.strategy_requests import StrategyCreateRequest

__all__ = ["create_strategy"]


def _settings_of(body: StrategyCreateRequest) -> TradingSettings:
    """The request's trading settings (defaults filled in by the model)."""
    return TradingSettings(**{name: getattr(body, name) for name in SETTING_NAMES})


def _require_runnable_if_active(connection: Connection, body: StrategyCreateRequest) -> None:
    if body.status == strategy_store.ACTIVE:
        require_runnable(connection, body.mode, body.leverage)


def _require_tradable(connection: Connection, body: StrategyCreateRequest) -> None:
    """The runner trades USDT-M futures with MARKET orders: a symbol Binance does not trade there would never
    run, nor one that takes no MARKET orders (422 naming symbol), nor a sizing no order of the symbol can
    pass (422 naming size or quote_size_usdt), paused or not: the symbol never changes."""
    rules = get_symbol_rules(get_client(Market.FUTURES, Environment(connection.environment)), body.symbol)
    refuse_together(lambda: require_market_orders(rules),
                    lambda: require_tradable_sizing(rules, body.size, body.quote_size_usdt))


def create_strategy(user_id: str, body: StrategyCreateRequest) -> StrategyResponse:
    """Create a strategy on one of the caller's connections, not one being deleted; an active one only when it
    could run there (``klineo.services.strategy_connection.require_runnable``)."""
    from klineo.strategies import parse_parameters

    connection = require_connection(user_id, body.connection_id, consistent=True, field="connection_id")
    refuse_deleting(connection, STRATEGY_REFUSED)
    refuse_together(lambda: _require_runnable_if_active(connection, body),
                    lambda: _require_tradable(connection, body))
    now = strategy_store.now_iso()
    strategy = Strategy(
        user_id=user_id,
        strategy_id=strategy_store.new_strategy_id(),
        connection_id=connection.connection_id,
        environment=connection.environment,
        symbol=body.symbol,
        interval=body.interval,
        type=body.type,
        parameters=parse_parameters(body.type, body.parameters).model_dump(),
        size=body.size,
        settings=_settings_of(body),
        mode=body.mode,
        status=body.status,
        status_reason="created paused" if body.status == strategy_store.PAUSED else None,
        created_at=now,
        updated_at=now,
    )
    strategy_store.put_new_strategy(strategy)
    return new_strategy_response(strategy)
