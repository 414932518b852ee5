"""Spot balances of one stored connection (never a futures URL).

Every key can read spot (Binance keys always have reading), so a refusal here is a key failure
that counts toward disabling the connection, and an answer clears what a read disproves of the count
(``klineo.services.key_health``: not the refusals of orders for the key's trading permission). Amounts are
written by ``klineo.validation.plain_text``, the rule of every number the API answers: Binance's
"0.00100000" is "0.001", a zero "0".
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from klineo.binance import Environment, ErrorCategory, Market, endpoints, get_client
from klineo.errors import KlineoError
from klineo.models.balances import Balance, BalanceResponse
from klineo.services.key_health import READ, note_key_outcome
from klineo.store import connections as connection_store
from klineo.validation import plain_text

__all__ = ["get_balances", "non_zero_balances"]


def _amount(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise KlineoError(ErrorCategory.OTHER, "Binance returned a balance that is not a number") from None


def non_zero_balances(rows: list[dict[str, Any]]) -> list[Balance]:
    """Balances with free or locked above zero, amounts as plain decimal text, by asset name."""
    balances = []
    for row in rows:
        free, locked = _amount(row.get("free", "0")), _amount(row.get("locked", "0"))
        if free or locked:
            balances.append(Balance(asset=str(row["asset"]), free=plain_text(free),
                                    locked=plain_text(locked)))
    return sorted(balances, key=lambda b: b.asset)


def get_balances(user_id: str, connection_id: str) -> BalanceResponse:
    """One DynamoDB read (the connection), the secret from the cache, one signed spot call."""
    connection = connection_store.require_connection(user_id, connection_id)
    creds = connection_store.connection_credentials(connection)
    client = get_client(Market.SPOT, Environment(connection.environment))
    # omitZeroBalances asks Binance to leave zeros out; the filter above also drops them, whatever
    # Binance sends (the flag is a spot-only, recent parameter).
    try:
        account = endpoints.spot_account(client, creds, omit_zero_balances=True)
    except KlineoError as exc:
        note_key_outcome(connection, exc, READ)
        raise
    note_key_outcome(connection, None, READ)
    return BalanceResponse(connection_id=connection.connection_id, environment=connection.environment,
                           balances=non_zero_balances(list(account.get("balances") or [])))
