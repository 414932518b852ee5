"""The answer of the spot key test: POST /exchange-connections/test and /exchange-connections/{id}/test.

Apart from ``klineo.models.common`` (which re-exports it, as a stored connection shows its last
test) so that testing a stored connection builds none of the connection routes' other models
(issue 16 item 3, cold start).
"""


from pydantic import Field

from klineo.models.base import BaseModel
from klineo.models.fields import ConnectionEnvironment

__all__ = ["ConnectionTestResponse", "KeyWarning"]


class KeyWarning(BaseModel):
    """A permission finding that does not fail the test."""

    code: str
    message: str


class ConnectionTestResponse(BaseModel):
    """The capability-based spot test: ok, or the category and a user-safe message, plus warnings."""

    ok: bool
    environment: ConnectionEnvironment
    category: str | None = None
    message: str | None = None
    retryable: bool | None = None
    warnings: list[KeyWarning] = Field(default_factory=list)
    permissions: list[str] = Field(default_factory=list)
    can_trade: bool | None = None
    can_withdraw: bool | None = None
    ip_restricted: bool | None = None
    server_time_offset_ms: int | None = None
    suggested_environment: ConnectionEnvironment | None = None
    egress_ip: str | None = None
    tested_at: str
