"""Creating and changing strategies: POST /strategies and PATCH /strategies/{id}.

The rules are those of ``klineo.services.strategies`` (its module docstring). These two live apart
because only they read the caller's connection (the connections and secrets stores and the
``Connection`` model) and the symbol's exchange rules: the six other strategy functions load none
of that at cold start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from klineo.binance import Environment, ErrorCategory, Market, get_client, get_symbol_rules
from klineo.errors import KlineoError
from klineo.models.strategies import CLEARABLE_FIELDS, SIZING_FIELDS, StrategyResponse
from klineo.services.strategies import note_status_change, owned_strategy, strategy_response
from klineo.store import strategies as strategy_store
from klineo.store.connections import Connection, get_connection, require_connection
from klineo.store.strategies import SETTING_NAMES, Strategy, TradingSettings

if TYPE_CHECKING:
    # The function's own route imports its request model; the service only reads its fields.
    from klineo.models.strategy_requests import StrategyCreateRequest, StrategyUpdateRequest

__all__ = ["create_strategy", "update_strategy"]


def _settings_of(body: StrategyCreateRequest) -> TradingSettings:
    """The request's trading settings (defaults filled in by the model)."""
    return TradingSettings(**{name: getattr(body, name) for name in SETTING_NAMES})


def _settings_changes(body: StrategyUpdateRequest) -> dict[str, Any]:
    """Settings a PATCH sets (a new sizing clears the other two; null clears a clearable setting)."""
    sent = body.model_fields_set
    changes: dict[str, Any] = {
        name: getattr(body, name) for name in (*SIZING_FIELDS, *SETTING_NAMES)
        if getattr(body, name) is not None
    }
    if any(name in changes for name in SIZING_FIELDS):
        changes.update({name: None for name in SIZING_FIELDS if name not in changes})
    changes.update({name: None for name in CLEARABLE_FIELDS if name in sent and getattr(body, name) is None})
    return changes


def _require_futures(connection: Connection | None) -> None:
    if connection is None:
        raise KlineoError(ErrorCategory.CONFLICT, "the strategy's connection no longer exists")
    if not connection.futures_enabled:
        raise KlineoError(
            ErrorCategory.CONFLICT,
            "futures are not enabled on this connection; enable them before running a strategy live",
            field="mode",
        )


def create_strategy(user_id: str, body: StrategyCreateRequest) -> StrategyResponse:
    """Create a strategy on one of the caller's connections (live needs futures enabled there)."""
    from klineo.strategies import parse_parameters

    connection = require_connection(user_id, body.connection_id, consistent=True, field="connection_id")
    if body.mode == "live":
        _require_futures(connection)
    # The runner trades USDT-M futures: a symbol Binance does not trade there would never run.
    get_symbol_rules(get_client(Market.FUTURES, Environment(connection.environment)), body.symbol)
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
    return strategy_response(strategy, new=True)


def update_strategy(user_id: str, strategy_id: str, body: StrategyUpdateRequest) -> StrategyResponse:
    """Change type/parameters, sizing, mode, status or trading settings of one of the caller's strategies."""
    from klineo.strategies import parse_parameters

    current = owned_strategy(user_id, strategy_id)
    changes: dict[str, Any] = {}
    if body.type is not None:
        changes["type"] = body.type
        changes["parameters"] = parse_parameters(body.type, body.parameters or {}).model_dump()
    changes.update(_settings_changes(body))
    if body.mode is not None:
        changes["mode"] = body.mode
    if body.status is not None:
        changes["status"] = body.status
        changes["status_reason"] = "paused by user" if body.status == strategy_store.PAUSED else None
    mode = changes.get("mode", current.mode)
    status = changes.get("status", current.status)
    if mode == "live" and status == strategy_store.ACTIVE and (
        current.mode != "live" or current.status != strategy_store.ACTIVE
    ):
        _require_futures(get_connection(user_id, current.connection_id, consistent=True))
    if not changes:
        return strategy_response(current)
    updated = strategy_store.update_settings(user_id, strategy_id, current, changes=changes)
    note_status_change(current, updated)
    return strategy_response(updated)
