"""A strategy as the API shows it, and finding the caller's own: what every strategy route shares.

Apart from ``klineo.services.strategies`` so that POST /strategies, which answers with the strategy
it has just made, loads neither the runs and events stores nor the run, event and PnL models at
cold start (issue 16 item 3). The answer's ``last_run_close_time`` comes from the strategy's newest
run, which ``klineo.services.strategies`` reads (a page of GET /strategies: many at once).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from klineo.binance import ErrorCategory
from klineo.errors import KlineoError
from klineo.models.strategies import STRATEGY_ID_PATTERN, PendingOrderResponse, StrategyResponse
from klineo.store import strategies as strategy_store
from klineo.store.strategies import Strategy
from klineo.validation import plain_text, plain_text_or_none

__all__ = ["new_strategy_response", "not_found", "owned_strategy", "response_fields", "valid_id"]

_STRATEGY_ID = re.compile(STRATEGY_ID_PATTERN)


def _settings_fields(strategy: Strategy) -> dict[str, Any]:
    """The trading settings as the API shows them (decimals as strings)."""
    values = strategy.settings.as_attrs()
    return {name: plain_text(v) if isinstance(v, Decimal) else v for name, v in values.items()}


def _plain_number(value: Any) -> Any:
    """Parameters for JSON: whole Decimals as int, others as float (they are thresholds, not money)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _last_run_close_time(strategy: Strategy, newest_run: int | None) -> int | None:
    """The candle of the strategy's latest run: a hold or a plain skip writes its run only, and moves
    ``last_close`` no more (klineo.store.runs), so the newest run counts too."""
    known = [close for close in (strategy.last_close, newest_run) if close is not None]
    return max(known) if known else None


def response_fields(strategy: Strategy, newest_run: int | None = None) -> dict[str, Any]:
    """The fields of ``StrategyResponse`` for ``strategy`` whose newest run closed at ``newest_run``."""
    pending = strategy.pending
    return {
        "id": strategy.strategy_id,
        "connection_id": strategy.connection_id,
        "environment": strategy.environment,
        "symbol": strategy.symbol,
        "interval": strategy.interval,
        "type": strategy.type,
        "parameters": {k: _plain_number(v) for k, v in strategy.parameters.items()},
        "size": plain_text_or_none(strategy.size),
        **_settings_fields(strategy),
        "mode": strategy.mode,
        "status": strategy.status,
        "status_reason": strategy.status_reason,
        "position": plain_text(strategy.position),
        "live_position": plain_text(strategy.live_position),
        "paper_position": plain_text(strategy.paper_position),
        "last_run_close_time": _last_run_close_time(strategy, newest_run),
        "pending_order": PendingOrderResponse(
            client_order_id=pending.client_order_id, side=pending.side, quantity=plain_text(pending.quantity),
            close_time=pending.close_time,
        ) if pending else None,
        "failed_runs": strategy.failed_runs,
        "key_failures": strategy.key_failures,
        "created_at": strategy.created_at,
        "updated_at": strategy.updated_at,
    }


def new_strategy_response(strategy: Strategy) -> StrategyResponse:
    """A strategy just created, as answered: it has no run yet, so nothing more is read."""
    return StrategyResponse(**response_fields(strategy))


def not_found() -> KlineoError:
    """The one answer for a strategy that is not the caller's, or does not exist."""
    return KlineoError(ErrorCategory.NOT_FOUND, "strategy not found")


def valid_id(strategy_id: str) -> bool:
    """Whether ``strategy_id`` has the shape of a strategy id (anything else is simply not found)."""
    return bool(_STRATEGY_ID.fullmatch(strategy_id or ""))


def owned_strategy(user_id: str, strategy_id: str) -> Strategy:
    """The caller's strategy (strongly consistent read), else NOT_FOUND."""
    if not valid_id(strategy_id):
        raise not_found()
    strategy = strategy_store.get_strategy(user_id, strategy_id, consistent=True)
    if strategy is None:
        raise not_found()
    return strategy
