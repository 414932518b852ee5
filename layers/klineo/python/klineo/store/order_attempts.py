"""Refused order attempts: orders our risk gate or a symbol's rules refused before they were claimed.

An order that gets past its claim has an order record (``klineo.store.orders``); one refused before it
(a kill switch, futures not enabled, max_leverage, max_notional_usdt, the position mode, the symbol's
grid, lot or minimum notional) left nothing but its answer. It is recorded here, so the audit listing
(GET /futures/order-attempts, ``klineo.services.order_attempts``) can say why an order did not go
through. Only the parsed fields of the order are kept (never a body, a key, a signature or a URL)
and the refusal as its caller got it: category, field, message.

Key design (also in the DataTable comment in template.yaml):
- item: ``pk = USER#<sub>``, ``sk = ATTEMPT#<attempt ms, 13 digits>#<clientOrderId>``, ``entity =
  order_attempt``, ``ttl``: kept as long as a strategy's runs and events (``EVENT_RETENTION_DAYS``, 90
  days by default). ``clientOrderId`` is the id the order would have had: the Idempotency-Key's
  (``idempotent_client_order_id``: a retry with that key is placed under it), a strategy's for the
  candle (``klineo.runner.schedule.client_order_id``; a hedge flip's entry: its own, ``kf...``; a one-way
  flip a limit refused: ``kf...`` too, as its close went out under the candle's own id, so an attempt's id
  never repeats an order record's, and no two rows of the listing share a cursor).
- index: the order history's own gsi1 partition and sort-key shape, ``gsi1pk = ORDERS#<sub>``,
  ``gsi1sk = <attempt ms>#<clientOrderId>``. So ONE Query of the caller's partition reads placed
  orders and refused attempts together, newest first, the outcome a filter on ``entity``
  (``list_attempt_page``); the order history's reads filter attempts out
  (``klineo.store.order_history.ORDERS_ONLY``). A cursor is a gsi1sk: the partition always comes from
  the caller's identity.

Writes: an API refusal is ONE PutItem on the refusal path only (an accepted order's AWS calls are
unchanged), and its failure is logged, never the caller's answer (``record_refused_attempt``); a
strategy's refusal is one more Put in the transaction that records its skipped run (``attempt_put``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from klineo.errors import KlineoError
from klineo.observability import logger
from klineo.settings import get_settings
from klineo.store import aws
from klineo.store.dynamo import from_attr, to_item
from klineo.store.events import retention_ttl
from klineo.store.order_history import ATTEMPT_ENTITY, ORDERS_ONLY, HistoryFilter, list_history_items
from klineo.store.orders import FOREIGN_ORIGINS, ORDERS_INDEX_PREFIX, OrderRecord
from klineo.timestamps import utc_iso

__all__ = [
    "OUTCOME_PLACED",
    "OUTCOME_REFUSED",
    "RefusedAttempt",
    "attempt_put",
    "list_attempt_page",
    "record_refused_attempt",
    "refusal_of",
]

OUTCOME_PLACED = "placed"
OUTCOME_REFUSED = "refused"
_PREFIX = "ATTEMPT#"
# The kind conditions of a listing's Query, by outcome (None: both). Orders Binance made without us
# (manual, liquidation, ADL, settlement) were never an attempt of ours: left out of all of them.
_FOREIGN = {f":foreign{i}": {"S": origin} for i, origin in enumerate(sorted(FOREIGN_ORIGINS))}
_NOT_FOREIGN = f"NOT #origin IN ({', '.join(_FOREIGN)})"
_KINDS: dict[str | None, tuple[str, dict[str, Any]]] = {
    None: (_NOT_FOREIGN, _FOREIGN),
    OUTCOME_PLACED: (f"{ORDERS_ONLY} AND {_NOT_FOREIGN}", _FOREIGN),
    OUTCOME_REFUSED: ("#entity = :attempt", {":attempt": {"S": ATTEMPT_ENTITY}}),
}


def refusal_of(exc: KlineoError, message: str | None = None) -> dict[str, str]:
    """What is kept of a refusal: its category, field (when it names one) and message (``message``: the
    text its caller was told instead, when that was not the exception's own)."""
    refusal = {"category": exc.category.value, "message": message or exc.message}
    if exc.field:
        refusal["field"] = exc.field
    return refusal


@dataclasses.dataclass(frozen=True)
class RefusedAttempt:
    """One refused order: whose, when, where, the order as asked, where it came from, and why not."""

    user_id: str
    client_order_id: str
    connection_id: str
    symbol: str
    origin: str  # "api" or the strategy's id
    attempt_ms: int
    side: str
    type: str
    refusal: dict[str, str]
    quantity: str | None = None
    quote_quantity: str | None = None
    price: str | None = None
    position_side: str | None = None
    reduce_only: bool = False
    role: str | None = None  # "position_close" for an order of the close route

    @property
    def sort_key(self) -> str:
        """Its gsi1sk: the history's shape, so attempts and orders sort together."""
        return f"{self.attempt_ms:013d}#{self.client_order_id}"

    @property
    def created_at(self) -> str:
        """The attempt's time as ISO-8601 UTC with milliseconds (the order history's form)."""
        return utc_iso(self.attempt_ms, zulu=True)

    def to_item(self) -> dict[str, Any]:
        """The DynamoDB item, expiring ``EVENT_RETENTION_DAYS`` from now."""
        return to_item({
            "pk": f"USER#{self.user_id}", "sk": f"{_PREFIX}{self.sort_key}", "entity": ATTEMPT_ENTITY,
            "gsi1pk": f"{ORDERS_INDEX_PREFIX}{self.user_id}", "gsi1sk": self.sort_key,
            "user_id": self.user_id, "client_order_id": self.client_order_id,
            "connection_id": self.connection_id, "symbol": self.symbol, "origin": self.origin,
            "attempt_ms": self.attempt_ms, "side": self.side, "type": self.type, "refusal": self.refusal,
            "quantity": self.quantity, "quote_quantity": self.quote_quantity, "price": self.price,
            "position_side": self.position_side, "reduce_only": self.reduce_only, "role": self.role,
            "ttl": retention_ttl(),
        })

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> RefusedAttempt:
        """An attempt from its DynamoDB item."""
        plain = {name: from_attr(value) for name, value in item.items()}
        names = [f.name for f in dataclasses.fields(cls)]
        values = {name: plain[name] for name in names if plain.get(name) is not None}
        values["attempt_ms"] = int(values["attempt_ms"])
        values["refusal"] = {str(k): str(v) for k, v in values["refusal"].items()}
        return cls(**values)


def attempt_put(attempt: RefusedAttempt) -> dict[str, Any]:
    """The attempt's Put, for a transaction that records it with something else (a skipped run)."""
    return {"Put": {"TableName": get_settings().data_table, "Item": attempt.to_item()}}


def record_refused_attempt(attempt: RefusedAttempt) -> None:
    """Write the attempt (ONE PutItem); a storage failure is logged, never in the way of the refusal."""
    try:
        aws.dynamodb().put_item(**attempt_put(attempt)["Put"])
    except (ClientError, BotoCoreError):
        logger.exception("refused order attempt not recorded", extra={
            "client_order_id": attempt.client_order_id, "field": attempt.refusal.get("field")})


def list_attempt_page(
    user_id: str, history: HistoryFilter, outcome: str | None, limit: int, after_sk: str | None = None,
) -> tuple[list[OrderRecord | RefusedAttempt], str | None]:
    """Up to ``limit`` of the user's placed orders and refused attempts (``outcome``: one of them only),
    newest first, and the gsi1sk to resume after (None: the end): ONE Query of the user's partition."""
    kind, values = _KINDS[outcome]
    items, last_sk = list_history_items(user_id, history, limit, after_sk, kind=kind, kind_values=values)
    return [_from_item(item) for item in items], last_sk


def _from_item(item: dict[str, Any]) -> OrderRecord | RefusedAttempt:
    """A listing item as what it is: a refused attempt (its ``entity``) or an order record."""
    refused = item.get("entity", {}).get("S") == ATTEMPT_ENTITY
    return RefusedAttempt.from_item(item) if refused else OrderRecord.from_item(item)
