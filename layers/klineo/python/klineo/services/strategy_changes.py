"""Creating strategies: POST /strategies (changing one, PATCH: ``klineo.services.strategy_updates``).

The rules are those of ``klineo.services.strategies`` (its module docstring). Creating and
changing live apart from it because only they read the
caller's connection (the connections and secrets stores and the ``Connection`` model) and the
symbol's exchange rules: the six other strategy functions load none of that at cold start.
Creating answers with the new strategy through ``klineo.services.strategy_view``, so it loads
neither the runs and events stores nor their models.

An optional Idempotency-Key makes a create exactly once: a frontend whose answer was lost sends it again
with the same key and body and gets the strategy the first one made (200, as it is now) instead of a second
strategy trading the same signals. The key's record and the strategy are written in ONE TransactWriteItems
(``klineo.store.strategies.put_new_strategy``), the last step of a create, so there is no create "in
progress" a retry could see: a key is either free or holds its strategy. The same key with another body is
409 naming Idempotency-Key; so is a key whose strategy was deleted since. A create refused before its write
(bad input, the connection, the symbol) leaves the key free. Keys are the user's own (another user's equal
key is another key) and expire after ``EventRetentionDays``. Without the header, each create makes one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from klineo.binance import Environment, Market, get_client, get_symbol_rules
from klineo.errors import ErrorCategory, KlineoError, refuse_together
from klineo.models.strategies import StrategyResponse
from klineo.runner.planning import require_market_orders, require_tradable_sizing
from klineo.services.strategy_connection import require_runnable
from klineo.services.strategy_view import new_strategy_response
from klineo.store import strategies as strategy_store
from klineo.store.connections import STRATEGY_REFUSED, Connection, refuse_deleting, require_connection
from klineo.store.strategies import SETTING_NAMES, CreateKey, CreateKeyHolder, Strategy, TradingSettings
from klineo.validation import IDEMPOTENCY_HEADER, keyed_request_digests

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


def _create_key(body: StrategyCreateRequest, idempotency_key: str | None) -> CreateKey | None:
    """The create's key as stored (digests of the key and of the validated body); None without the header."""
    if idempotency_key is None:
        return None
    key_digest, body_digest = keyed_request_digests(idempotency_key, body)
    return CreateKey(key_digest=key_digest, body_digest=body_digest)


def _key_refused(message: str) -> KlineoError:
    return KlineoError(ErrorCategory.CONFLICT, message, field=IDEMPOTENCY_HEADER)


def _first_creation(user_id: str, key: CreateKey, holder: CreateKeyHolder) -> StrategyResponse:
    """The strategy the key's first create made, as stored now; 409 naming the key for another body, or when
    that strategy was deleted since (nothing is created again)."""
    if holder.body_digest != key.body_digest:
        raise _key_refused(f"This {IDEMPOTENCY_HEADER} was already used to create a different strategy; "
                           "use a new key.")
    strategy = strategy_store.get_strategy(user_id, holder.strategy_id, consistent=True)
    if strategy is None:
        raise _key_refused(f"The strategy created with this {IDEMPOTENCY_HEADER} was deleted since; nothing "
                           "was created. Use a new key to create it again.")
    return new_strategy_response(strategy)  # its runs are not read: GET /strategies/{id} shows them


def create_strategy(user_id: str, body: StrategyCreateRequest,
                    idempotency_key: str | None = None) -> tuple[StrategyResponse, bool]:
    """Create a strategy on one of the caller's connections, not one being deleted; an active one only when it
    could run there (``klineo.services.strategy_connection.require_runnable``). Answers the strategy and
    whether this request created it (False: the key's first create did, see the module docstring)."""
    key = _create_key(body, idempotency_key)
    holder = strategy_store.get_create_key(user_id, key) if key is not None else None
    if key is not None and holder is not None:
        return _first_creation(user_id, key, holder), False
    strategy = _new_strategy(user_id, body)
    holder = strategy_store.put_new_strategy(strategy, key)
    if key is not None and holder is not None:  # a create with the same key committed meanwhile
        return _first_creation(user_id, key, holder), False
    return new_strategy_response(strategy), True


def _new_strategy(user_id: str, body: StrategyCreateRequest) -> Strategy:
    """The strategy ``body`` asks for, once every rule of a create holds (nothing written yet)."""
    from klineo.strategies import parse_parameters

    connection = require_connection(user_id, body.connection_id, consistent=True, field="connection_id")
    refuse_deleting(connection, STRATEGY_REFUSED)
    refuse_together(lambda: _require_runnable_if_active(connection, body),
                    lambda: _require_tradable(connection, body))
    now = strategy_store.now_iso()
    return Strategy(
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
