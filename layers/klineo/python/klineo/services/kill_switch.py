"""The caller's kill switch, and whether the operators' global one is on."""

from __future__ import annotations

from klineo.models.kill_switch import KillSwitchResponse
from klineo.observability import logger
from klineo.store import flags

__all__ = ["get_kill_switch", "set_kill_switch"]


def get_kill_switch(user_id: str) -> KillSwitchResponse:
    """Both switches, read together with one strongly consistent read."""
    user_on, global_on = flags.get_kill_switches(user_id)
    return KillSwitchResponse(enabled=user_on, global_enabled=global_on, trading_blocked=user_on or global_on)


def set_kill_switch(user_id: str, enabled: bool) -> KillSwitchResponse:
    """Set the caller's switch, then answer with both as they now stand."""
    flags.set_user_kill_switch(user_id, enabled)
    logger.info("user kill switch set", extra={"enabled": enabled})
    return get_kill_switch(user_id)
