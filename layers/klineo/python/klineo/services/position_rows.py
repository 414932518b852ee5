"""A connection's open positions as Binance's raw rows, and their numbers, for reading and for closing.

Apart from ``klineo.services.positions`` (the positions view: its response models, the foreign
fills of ``klineo.services.reconcile`` and the order history they read) so that closing a position
(``klineo.services.position_close``) does not import the view's modules at its cold start.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from klineo.binance import endpoints
from klineo.errors import ErrorCategory, KlineoError
from klineo.services.key_health import READ, note_futures_outcome
from klineo.services.symbol_settings import futures_client
from klineo.store.connections import Connection, connection_credentials

__all__ = ["open_position_rows", "position_number"]

_ZERO = Decimal(0)


def _unreadable() -> KlineoError:
    return KlineoError(ErrorCategory.UPSTREAM_UNAVAILABLE, "Binance returned an unreadable position.")


def position_number(row: dict[str, Any], key: str) -> Decimal:
    """A finite decimal field of a Binance position row; an unreadable one is upstream_unavailable."""
    try:
        value = Decimal(str(row.get(key)))
    except (InvalidOperation, ValueError):
        raise _unreadable() from None
    if not value.is_finite():
        raise _unreadable()
    return value


def open_position_rows(connection: Connection, symbol: str | None = None) -> list[dict[str, Any]]:
    """positionRisk rows with a non-zero amount (v3 also lists symbols that only hold open orders)."""
    client, creds = futures_client(connection), connection_credentials(connection)
    try:
        rows = endpoints.futures_position_risk(client, creds, symbol)
    except KlineoError as exc:
        note_futures_outcome(connection, exc, READ)
        raise
    if not isinstance(rows, list):
        raise KlineoError(ErrorCategory.UPSTREAM_UNAVAILABLE, "Binance returned unreadable positions.")
    return [r for r in rows if isinstance(r, dict) and position_number(r, "positionAmt") != _ZERO]
