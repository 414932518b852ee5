"""Body and response models of GET/PUT /kill-switch.

A module of their own so the kill-switch functions create only their own models.
"""


from pydantic import StrictBool

from klineo.models.base import BaseModel
from klineo.models.fields import ApiModel

__all__ = ["KillSwitchResponse", "KillSwitchSetRequest"]


class KillSwitchSetRequest(ApiModel):
    """PUT /kill-switch body."""

    enabled: StrictBool


class KillSwitchResponse(BaseModel):
    """The caller's kill switch, and whether the operators' global one is on."""

    enabled: bool
    global_enabled: bool
    trading_blocked: bool
