"""Keys that keep failing: count them per connection, switch the connection off, switch it on again.

A key failure is Binance refusing the key itself (permission, signature, ip_whitelist), seen by
the API (futures test, orders) or the runner. Any other answer from Binance proves the key works
and resets the count. After ``KEY_FAILURE_LIMIT`` in a row the connection is disabled with its
reason and time, and its active strategies are paused (reason ``connection_disabled:<category>``)
in the same step. ``POST /exchange-connections/{id}/enable`` (klineo.services.connections) clears
that state and resumes exactly those strategies.
"""

from __future__ import annotations

from klineo.errors import ErrorCategory, KlineoError
from klineo.observability import logger
from klineo.store import connections as connection_store
from klineo.store.connections import Connection

__all__ = [
    "DISABLED_PREFIX",
    "KEY_FAILURE_CATEGORIES",
    "KEY_FAILURE_LIMIT",
    "is_key_failure",
    "note_key_outcome",
    "pause_connection_strategies",
    "resume_connection_strategies",
]

KEY_FAILURE_LIMIT = 3
KEY_FAILURE_CATEGORIES = frozenset(
    {ErrorCategory.PERMISSION, ErrorCategory.IP_WHITELIST, ErrorCategory.SIGNATURE}
)
DISABLED_PREFIX = "connection_disabled"


def is_key_failure(error: KlineoError | None) -> bool:
    """True when Binance refused the key itself."""
    return error is not None and error.category in KEY_FAILURE_CATEGORIES


def pause_connection_strategies(user_id: str, connection_id: str, reason: str) -> list[str]:
    """Pause every active strategy of the connection (off the active index); returns their ids."""
    # Imported here: only a disabled connection reaches the strategies, and every futures and
    # connection route imports this module for note_key_outcome.
    from klineo.store import strategies as strategy_store

    paused = []
    for strategy in strategy_store.list_strategies(user_id):
        if (
            strategy.connection_id == connection_id
            and strategy.active
            and strategy_store.pause_strategy(user_id, strategy.strategy_id, reason)
        ):
            paused.append(strategy.strategy_id)
    return paused


def resume_connection_strategies(user_id: str, connection_id: str) -> list[str]:
    """Resume the strategies a disabled connection paused (not those the user paused); returns their ids."""
    from klineo.store import strategies as strategy_store

    resumed = []
    for strategy in strategy_store.list_strategies(user_id):
        reason = strategy.status_reason or ""
        if (
            strategy.connection_id == connection_id
            and not strategy.active
            and reason.startswith(DISABLED_PREFIX)
        ):
            strategy_store.update_settings(
                user_id,
                strategy.strategy_id,
                strategy,
                changes={"status": strategy_store.ACTIVE, "status_reason": None},
            )
            resumed.append(strategy.strategy_id)
    return resumed


def note_key_outcome(connection: Connection, error: KlineoError | None) -> None:
    """Count a key failure (``error``), or reset the count after any answer that proves the key works.

    Costs nothing on the usual path: a working key on a connection with no failures writes nothing.
    """
    user_id, connection_id = connection.user_id, connection.connection_id
    if not is_key_failure(error):
        if error is None or error.status is not None:  # Binance answered: the key itself works
            if connection.consecutive_failures:
                connection_store.reset_key_failures(user_id, connection_id)
        return
    assert error is not None
    count = connection_store.add_key_failure(user_id, connection_id)
    if count < KEY_FAILURE_LIMIT or connection.disabled:
        return
    reason = f"{DISABLED_PREFIX}:{error.category}"
    connection_store.disable_connection(user_id, connection_id, reason)
    paused = pause_connection_strategies(user_id, connection_id, reason)
    logger.warning(
        "connection disabled: its key keeps failing",
        extra={
            "connection_id": connection_id,
            "category": str(error.category),
            "paused_strategies": len(paused),
        },
    )
