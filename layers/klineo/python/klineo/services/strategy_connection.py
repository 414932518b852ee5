"""What an active strategy needs of its connection: the one rule.

A strategy may be ACTIVE only when the runner could then run it:
- its connection exists and is not being deleted (``deleting_since``: no order is placed on it any
  more) and is not disabled (its key kept failing: every order is refused);
- live only (``live_conflicts``): futures enabled, the account in one-way mode (the runner places
  one-way orders only: ``LIVE_NEEDS_ONE_WAY``) and the strategy's leverage within the connection's
  max_leverage (``leverage_allowed``).

Asked when a strategy becomes active or live-and-active (POST /strategies as active, PATCH
/strategies/{id}: ``require_runnable``). A paused strategy is asked when resumed. The connection can
change afterwards: the runner puts every strategy order through the one risk gate
(``klineo.services.risk.check_order``) on the connection read strongly consistent at that turn.
"""

from __future__ import annotations

from klineo.errors import ErrorCategory, KlineoError
from klineo.services.risk import HEDGE, LIVE_NEEDS_ONE_WAY, check_leverage_setting, leverage_allowed
from klineo.store.connections import Connection

__all__ = ["live_conflicts", "refuse_deleting", "require_runnable"]

_FIELD = "connection_id"  # what a refusal for the connection's state names
_LIVE = "live"


def live_conflicts(leverage: int | None, *, futures_enabled: bool, position_mode: str | None,
                   max_leverage: int) -> list[str]:
    """The connection settings that keep a live strategy at ``leverage`` from running (empty: none)."""
    conflicts = []
    if not futures_enabled:
        conflicts.append("futures_enabled")
    if position_mode == HEDGE:
        conflicts.append("position_mode")
    if not leverage_allowed(leverage, max_leverage):
        conflicts.append("max_leverage")
    return conflicts


def refuse_deleting(connection: Connection) -> None:
    """A connection being deleted takes no strategy (409 naming connection_id)."""
    if connection.deleting_since is not None:
        raise KlineoError(
            ErrorCategory.CONFLICT,
            "The connection is being deleted: no strategy can run on it. If its delete did not finish, "
            "send the DELETE again.",
            field=_FIELD,
        )


def require_runnable(connection: Connection | None, mode: str, leverage: int | None) -> Connection:
    """The connection of a strategy becoming active (in ``mode``, at ``leverage``), when the strategy could
    run on it; otherwise 409 naming connection_id (gone, being deleted, disabled) or mode (futures off,
    hedge mode), or 422 naming leverage (above max_leverage)."""
    if connection is None:
        raise KlineoError(ErrorCategory.CONFLICT, "the strategy's connection no longer exists", field=_FIELD)
    refuse_deleting(connection)
    if connection.disabled:
        raise KlineoError(
            ErrorCategory.CONFLICT,
            "The connection is disabled after repeated key failures: fix its key (PUT "
            "/exchange-connections/{id}/credentials) and enable it (POST /exchange-connections/{id}/enable) "
            "before a strategy on it can be active; a paused one is fine.",
            field=_FIELD,
        )
    if mode != _LIVE:
        return connection
    conflicts = live_conflicts(leverage, futures_enabled=connection.futures_enabled,
                               position_mode=connection.position_mode, max_leverage=connection.max_leverage)
    if "futures_enabled" in conflicts:
        raise KlineoError(
            ErrorCategory.CONFLICT,
            "futures are not enabled on this connection; enable them before running a strategy live",
            field="mode",
        )
    if "position_mode" in conflicts:
        raise KlineoError(ErrorCategory.CONFLICT, LIVE_NEEDS_ONE_WAY, field="mode")
    check_leverage_setting(leverage, connection.max_leverage)
    return connection
