"""What an active strategy needs of its connection: the one rule, asked from both sides.

A strategy may be ACTIVE only when the runner could then run it:
- its connection exists and is not being deleted (``deleting_since``: no order is placed on it any
  more) and is not disabled (its key kept failing: every order is refused);
- live only (``live_conflicts``): futures enabled and the strategy's leverage within the connection's
  max_leverage (``leverage_allowed``). Either position mode will do: the runner places its orders in
  the connection's mode (hedge: positionSide LONG / SHORT, a flip in two orders; ``klineo.runner.execution``).

Asked when a strategy becomes active or live-and-active (POST /strategies as active, PATCH
/strategies/{id}: ``require_runnable``), and when a connection's settings change under live active
strategies (PATCH /exchange-connections/{id} and POST /exchange-connections/{id}/futures/disable:
``check_settings_change``, lowering max_leverage below one's leverage or switching futures off is refused;
a switch of position mode is not: live strategies trade in either mode, and Binance itself refuses the
switch while the account holds a position or an open order). Paused strategies never block a settings
change: they are asked again when resumed, by the user or by POST /exchange-connections/{id}/enable
(``klineo.services.key_health.resume_connection_strategies``, which asks the user's resume's own rule,
``klineo.services.strategy_updates.require_may_activate``, and leaves paused those it refuses).

The race. The two sides read each other's item, then write their own: a strategy activated in the
milliseconds between a settings change's read of the strategies and its write (or the reverse) is
not refused. Nothing wrong is sent then: the runner puts every strategy order through the one risk
gate (``klineo.services.risk.check_order``) on the connection read strongly consistent at that turn,
so such a strategy is skipped with a reason (``max_leverage``, a disabled or deleting connection) and a
``risk_block`` event, until it is paused or its connection changed back.
"""

from __future__ import annotations

from typing import Any

from klineo.errors import ErrorCategory, KlineoError
from klineo.services.risk import check_leverage_setting, leverage_allowed
from klineo.store.connections import STRATEGY_REFUSED, Connection, refuse_deleting

__all__ = ["check_settings_change", "live_conflicts", "require_runnable"]

_FIELD = "connection_id"  # what a refusal for the connection's state names
_IDS_SHOWN = 5  # the strategies named in a refused settings change (all are counted)
_LIVE = "live"
# The connection settings a live strategy needs (``live_conflicts``), in the order a refusal names them.
_LIVE_SETTINGS = ("futures_enabled", "max_leverage")


def live_conflicts(leverage: int | None, *, futures_enabled: bool, max_leverage: int) -> list[str]:
    """The connection settings that keep a live strategy at ``leverage`` from running (empty: none)."""
    conflicts = []
    if not futures_enabled:
        conflicts.append("futures_enabled")
    if not leverage_allowed(leverage, max_leverage):
        conflicts.append("max_leverage")
    return conflicts


def require_runnable(connection: Connection | None, mode: str, leverage: int | None) -> Connection:
    """The connection of a strategy becoming active (in ``mode``, at ``leverage``), when the strategy could
    run on it; otherwise 409 naming connection_id (gone, being deleted, disabled) or mode (futures off),
    or 422 naming leverage (above max_leverage)."""
    if connection is None:
        raise KlineoError(ErrorCategory.CONFLICT, "the strategy's connection no longer exists", field=_FIELD)
    refuse_deleting(connection, STRATEGY_REFUSED)
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
                               max_leverage=connection.max_leverage)
    if "futures_enabled" in conflicts:
        raise KlineoError(
            ErrorCategory.CONFLICT,
            "futures are not enabled on this connection; enable them before running a strategy live",
            field="mode",
        )
    check_leverage_setting(leverage, connection.max_leverage)
    return connection


def _blocked(field: str, ids: list[str]) -> KlineoError:
    shown = ", ".join(ids[:_IDS_SHOWN]) + (", ..." if len(ids) > _IDS_SHOWN else "")
    if field == "futures_enabled":
        what = "futures cannot be disabled while live strategies run on this connection"
        fix = "pause them or switch them to paper first; to stop every order at once, turn the kill switch on"
    else:
        what = "max_leverage cannot go below the leverage of live strategies running on this connection"
        fix = "pause them or lower their leverage first"
    return KlineoError(ErrorCategory.CONFLICT, f"{what}: {len(ids)} active ({shown}); {fix}.", field=field)


def _live_active(user_id: str, connection_id: str) -> list[Any]:
    """The connection's live ACTIVE strategies (one Query of the user's strategies)."""
    # Imported here: only a change of _LIVE_SETTINGS reads the strategies, not every PATCH.
    from klineo.store.strategies import list_strategies

    return [strategy for strategy in list_strategies(user_id)
            if strategy.connection_id == connection_id and strategy.active and strategy.mode == _LIVE]


def check_settings_change(user_id: str, connection: Connection, changes: dict[str, Any]) -> None:
    """Refuse (409 naming the field and the strategies in the way) a futures_enabled or max_leverage
    change that would keep one of the connection's live ACTIVE strategies from running (paused ones and
    paper ones never block). A position mode change never does: live strategies trade in either mode."""
    changed = {name for name in _LIVE_SETTINGS
               if name in changes and changes[name] != getattr(connection, name)}
    if not changed:
        return
    after = {name: changes.get(name, getattr(connection, name)) for name in _LIVE_SETTINGS}
    blocking: dict[str, list[str]] = {name: [] for name in changed}
    for strategy in _live_active(user_id, connection.connection_id):
        conflicts = live_conflicts(strategy.settings.leverage, **after)
        for name in changed.intersection(conflicts):
            blocking[name].append(strategy.strategy_id)
    for name in _LIVE_SETTINGS:
        if blocking.get(name):
            raise _blocked(name, blocking[name])
