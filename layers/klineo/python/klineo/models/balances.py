"""Response models of GET /exchange-connections/{id}/balances.

A module of their own so the balance function creates only its own models (each class statement
costs a cold start, even with ``defer_build``).
"""


from klineo.models.base import BaseModel
from klineo.models.fields import ConnectionEnvironment, DecimalString

__all__ = ["Balance", "BalanceResponse"]


class Balance(BaseModel):
    """One asset's spot balance, free and locked as decimal strings."""

    asset: str
    free: DecimalString
    locked: DecimalString


class BalanceResponse(BaseModel):
    """Non-zero spot balances of one connection."""

    connection_id: str
    environment: ConnectionEnvironment
    balances: list[Balance]
