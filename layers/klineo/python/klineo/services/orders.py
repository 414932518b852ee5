"""Exactly-once USDT-M futures orders at the exchange level: no AWS here, only Binance.

The HTTP order route and the strategy runner both place orders through

    submit_futures_order(client, creds, order, client_order_id, *, earlier_attempt_ms=None) -> OrderResult

with a `newClientOrderId` the caller chose and will reuse for every retry of the same order.
What the function guarantees for ONE call:

- the order is sent at most once (POST /fapi/v1/order is never re-sent by the client layer);
- when the answer is lost (read timeout, lost connection after sending, 5xx, 408, -1007, -1000
  or the "unknown" 503: the client raises KlineoError(UNKNOWN_OUTCOME)), the order is looked up
  by `origClientOrderId` a few times with a short backoff, and the real order is returned
  (`source="recovered"`); if it still cannot be found the call raises UNKNOWN_OUTCOME naming the
  clientOrderId, and nothing is sent again;
- -4116 (clientOrderId duplicated: an OPEN order already has this id) returns that order
  (`source="existing"`).

What the CALLER must do when it repeats an order (same clientOrderId) in a later call:
pass `earlier_attempt_ms`, the wall-clock ms at which the earlier attempt started sending, at the latest
(not its claim when Binance calls may come between the two: its lease's or invocation's end).
Binance only refuses a duplicate id while the first order is open; a filled MARKET order's id
can be used again, so a blind re-send could double it. With `earlier_attempt_ms` the order is
looked up first and returned when it exists; when it does not, it is only sent if the earlier
attempt can no longer execute: the matching engine rejects a request whose timestamp is older
than recvWindow (facts §2, -5028), so once `recvWindow + SETTLE_MARGIN_MS` have passed since the
earlier attempt, "not found" is final: counted to the moment the lookup was SENT, not answered (a
late answer says what Binance held when it was asked, while the earlier request may still have landed
since). Before that the call raises UNKNOWN_OUTCOME.

A retry that cannot settle (item 4 of issue 12's faults): when an earlier attempt may have
reached Binance and the lookup fails (ip_banned, rate_limit, network, upstream_unavailable, ...),
the call raises UNKNOWN_OUTCOME naming the clientOrderId, never the lookup's own category: that
would read as "nothing was sent" while the order may exist.

Purged orders (facts §9): Binance forgets a CANCELED or EXPIRED order without fills 3 days after it
was created, and every order after 90 days. An earlier attempt older than the shortest of these
(`PURGE_AFTER_MS`) that Binance does not know may have existed and been forgotten: it is never sent
again. The call reports it through `when_purged` (the API records UNKNOWN_PURGED, a final state)
and raises CONFLICT: not unknown_outcome, whose promise "repeat to learn the outcome" can no
longer be kept, and not a retryable error, since no retry will ever settle it.

Deadline: `Deadline.of_invocation(lambda_context)` is the instant an order-sending route must
have answered by (the invocation's remaining time less `DEADLINE_MARGIN_S`, at most
`DEADLINE_MAX_S`, well below API Gateway's 29 s). Inside `klineo.binance.call_deadline(deadline.at)`
every Binance call's timeouts and retry waits end by then, and the settle loop starts no lookup
that could not finish: an unsettled order then answers UNKNOWN_OUTCOME with its clientOrderId.

Client order ids: `new_client_order_id()` makes `klneo_<ms>_<16 hex>` (the audit's format, 36
characters); `idempotent_client_order_id(user_id, key)` derives `k` + 35 base32 characters of
sha256(user, key), so two users' keys never give the same id and the same key always does.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import secrets
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from klineo.binance import BinanceClient, Credentials, ErrorCategory, endpoints
from klineo.errors import KlineoError
from klineo.observability import logger
from klineo.telemetry import tally
from klineo.validation import (
    CLIENT_ORDER_ID_RE,
    ORDER_POSITION_SIDES,
    ORDER_SIDES,
    ORDER_TYPES,
    check_client_order_id,
    check_order_price,
    check_reduce_only,
    decimal_or_none,
    order_time_in_force,
    plain_text,
    positive_decimal,
)

__all__ = [
    "CLIENT_ORDER_ID_RE",
    "DEADLINE_MARGIN_S",
    "DEADLINE_MAX_S",
    "FORGOTTEN_AFTER_MS",
    "PURGE_AFTER_MS",
    "QUERY_DELAYS_S",
    "REGULAR_ORDERS",
    "SETTLE_BUDGET_S",
    "SETTLE_MARGIN_MS",
    "Deadline",
    "FuturesOrder",
    "OrderResult",
    "OrderVenue",
    "absent_earlier_attempt",
    "check_client_order_id",
    "count_earlier_found",
    "find_earlier_attempt",
    "idempotent_client_order_id",
    "new_client_order_id",
    "query_futures_order",
    "send_exactly_once",
    "submit_futures_order",
]

# Pauses before each lookup by origClientOrderId after a lost answer (about 4 s in all).
QUERY_DELAYS_S: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
# No new lookup starts once this long has passed since the first: the order route runs inside a
# 29 s Lambda behind a 30 s API Gateway limit, after a send that may have used a 10 s read timeout,
# and each lookup may itself retry inside the client.
SETTLE_BUDGET_S = 8.0
# Added to recvWindow before an order absent at Binance is taken as never executed: covers the
# 1000 ms a timestamp may run ahead of server time plus drift of our server-time offset.
SETTLE_MARGIN_MS = 5000
# Binance forgets CANCELED/EXPIRED orders without fills 3 days after creation (facts §9): an
# earlier attempt older than this that Binance does not know can no longer be told apart from one
# that never arrived.
PURGE_AFTER_MS = 3 * 24 * 3600 * 1000
# Binance forgets every order 90 days after creation, one that executed too (facts §9): until then, an
# order it does not know never executed (an attempt that never arrived, or one canceled or expired unfilled).
FORGOTTEN_AFTER_MS = 90 * 24 * 3600 * 1000
# An order-sending route answers this long before its invocation would end (the outcome is still
# recorded and the answer built after the last Binance call), and never later than DEADLINE_MAX_S
# after it started (API Gateway gives up after 29 s).
DEADLINE_MARGIN_S = 2.0
DEADLINE_MAX_S = 25.0
# A lookup is only started when at least this long is left before the deadline.
_MIN_LOOKUP_S = 0.5
# Binance: "Order does not exist." (GET /fapi/v1/order) and "ClientOrderId is duplicated."
_ORDER_DOES_NOT_EXIST = -2013
_CLIENT_ORDER_ID_DUPLICATED = -4116



def _one_of(value: Any, allowed: tuple[str, ...], message: str) -> None:
    if value not in allowed:
        raise ValueError(message)


def new_client_order_id(clock: Callable[[], float] = time.time) -> str:
    """A fresh id in the audit's format `klneo_<ms>_<16 hex>` (36 characters)."""
    return f"klneo_{int(clock() * 1000)}_{secrets.token_hex(8)}"


def idempotent_client_order_id(user_id: str, idempotency_key: str) -> str:
    """`k` + 35 base32 characters of sha256(user, key): deterministic per user and key, 36 characters."""
    digest = hashlib.sha256(f"{user_id}\x00{idempotency_key}".encode()).digest()
    return "k" + base64.b32encode(digest).decode("ascii").lower().rstrip("=")[:35]


@dataclasses.dataclass(frozen=True)
class Deadline:
    """The wall-clock instant (epoch s, ``time.time``) by which an order-sending route must answer."""

    at: float

    @classmethod
    def of_invocation(cls, lambda_context: Any = None, clock: Callable[[], float] = time.time) -> Deadline:
        """The invocation's remaining time less DEADLINE_MARGIN_S, and at most DEADLINE_MAX_S from now."""
        budget = DEADLINE_MAX_S
        remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
        if remaining is not None:
            budget = min(budget, remaining() / 1000.0 - DEADLINE_MARGIN_S)
        return cls(clock() + max(budget, 0.0))

    def left(self, clock: Callable[[], float] = time.time) -> float:
        """Seconds until the deadline (negative once past)."""
        return self.at - clock()


@dataclasses.dataclass(frozen=True)
class FuturesOrder:
    """One USDT-M order, already rounded to the symbol's filters (see klineo.binance.filters)."""

    symbol: str
    side: str
    type: str
    quantity: Decimal
    price: Decimal | None = None
    time_in_force: str | None = None
    reduce_only: bool = False
    position_side: str = "BOTH"

    def __post_init__(self) -> None:
        # The same rules as the order request model (klineo.validation), as the taxonomy's error, in
        # this order (the first refusal names its field). Checked inline, not through a list of
        # closures: every order of the runner's live turns is made here.
        field = "side"
        try:
            _one_of(self.side, ORDER_SIDES, "side must be BUY or SELL")
            field = "type"
            _one_of(self.type, ORDER_TYPES, "type must be MARKET or LIMIT")
            field = "quantity"
            positive_decimal(self.quantity if isinstance(self.quantity, Decimal) else "not a Decimal")
            field = "price"
            check_order_price(self.type, self.price)
            field = "timeInForce"
            object.__setattr__(self, "time_in_force", order_time_in_force(self.type, self.time_in_force))
            field = "positionSide"
            _one_of(self.position_side, ORDER_POSITION_SIDES, "positionSide must be BOTH, LONG or SHORT")
            field = "reduceOnly"
            check_reduce_only(self.reduce_only, self.position_side)
        except ValueError as refusal:
            message = f"{field} {refusal}" if field == "quantity" else str(refusal)
            raise KlineoError(ErrorCategory.INVALID_REQUEST, message, field=field) from None

    @classmethod
    def from_params(cls, params: dict[str, str]) -> FuturesOrder:
        """Inverse of `to_params` (an order exactly as an earlier attempt sent it)."""
        price = params.get("price")
        return cls(
            symbol=params["symbol"],
            side=params["side"],
            type=params["type"],
            quantity=Decimal(params["quantity"]),
            price=Decimal(price) if price is not None else None,
            time_in_force=params.get("timeInForce"),
            reduce_only=params.get("reduceOnly") == "true",
            position_side=params.get("positionSide", "BOTH"),
        )

    def to_params(self, client_order_id: str) -> dict[str, str]:
        """The POST /fapi/v1/order parameters, newClientOrderId included, all strings."""
        params = {
            "symbol": self.symbol,
            "side": self.side,
            "type": self.type,
            "quantity": plain_text(self.quantity),
            "positionSide": self.position_side,
            "newClientOrderId": client_order_id,
            # RESULT: the final state of a MARKET order (FILLED) instead of the bare ACK.
            "newOrderRespType": "RESULT",
        }
        if self.type == "LIMIT":
            params["price"] = plain_text(self.price)  # type: ignore[arg-type]  # checked in __post_init__
            params["timeInForce"] = self.time_in_force  # type: ignore[assignment]
        if self.reduce_only:
            params["reduceOnly"] = "true"
        return params


@dataclasses.dataclass(frozen=True)
class OrderResult:
    """An order as Binance reported it, and how we learned it.

    source: "placed" (Binance's answer to our POST), "recovered" (the answer was lost; found by
    clientOrderId), "existing" (the order was already there: -4116 or an earlier attempt),
    "queried" (read back by a status lookup).
    """

    client_order_id: str
    order_id: int | None
    symbol: str
    side: str
    type: str
    status: str
    quantity: Decimal
    executed_quantity: Decimal
    price: Decimal | None
    average_price: Decimal | None
    time_in_force: str | None
    reduce_only: bool
    position_side: str
    update_time: int | None
    source: str
    # An algo (conditional) order: client_order_id is its clientAlgoId, order_id its algoId, status
    # its algoStatus (klineo.services.algo_orders reads Binance's algo answers into this shape).
    kind: str = "order"
    trigger_price: Decimal | None = None
    close_position: bool = False

    @classmethod
    def from_binance(cls, body: dict[str, Any], source: str) -> OrderResult:
        """Read Binance's order object (new-order RESULT/ACK or query answer)."""
        order_id = body.get("orderId")
        price = decimal_or_none(body.get("price"))
        average = decimal_or_none(body.get("avgPrice"))
        update_time = body.get("updateTime") or body.get("time")
        return cls(
            client_order_id=str(body.get("clientOrderId", "")),
            order_id=int(order_id) if order_id is not None else None,
            symbol=str(body.get("symbol", "")),
            side=str(body.get("side", "")),
            type=str(body.get("origType") or body.get("type", "")),
            status=str(body.get("status", "")),
            quantity=decimal_or_none(body.get("origQty")) or Decimal(0),
            executed_quantity=decimal_or_none(body.get("executedQty")) or Decimal(0),
            price=price if price else None,
            average_price=average if average else None,
            time_in_force=body.get("timeInForce") or None,
            reduce_only=bool(body.get("reduceOnly", False)),
            position_side=str(body.get("positionSide") or "BOTH"),
            update_time=int(update_time) if update_time is not None else None,
            source=source,
        )

    def with_source(self, source: str) -> OrderResult:
        """The same order, learned another way."""
        return dataclasses.replace(self, source=source)

    def to_record(self) -> dict[str, Any]:
        """JSON-safe form (Decimals as strings) for storage and idempotent replays."""
        # The frozen dataclass's __init__ sets every field, in declaration order, and nothing else: its
        # __dict__ is the record's names and values (no getattr per field; a live turn stores it twice).
        return {name: plain_text(value) if isinstance(value, Decimal) else value
                for name, value in vars(self).items()}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> OrderResult:
        """Inverse of `to_record`."""
        values = dict(record)
        for name in ("quantity", "executed_quantity"):
            values[name] = Decimal(str(values[name]))
        for name in ("price", "average_price", "trigger_price"):
            values[name] = decimal_or_none(values.get(name))
        for name in ("order_id", "update_time"):
            values[name] = int(values[name]) if values.get(name) is not None else None
        values["reduce_only"] = bool(values.get("reduce_only", False))
        known = _result_fields()
        return cls(**{k: v for k, v in values.items() if k in known})


@functools.cache
def _result_fields() -> tuple[str, ...]:
    """OrderResult's field names in declaration order (``dataclasses.fields`` rebuilds them per call)."""
    return tuple(field.name for field in dataclasses.fields(OrderResult))


def query_futures_order(
    client: BinanceClient, creds: Credentials, symbol: str, client_order_id: str, *, source: str = "queried",
    order_id: int | None = None,
) -> OrderResult | None:
    """The order with this clientOrderId (GET /fapi/v1/order; by Binance's ``order_id`` when given: an order
    we did not place, whose record is named after it), or None when Binance has none."""
    try:
        if order_id is None:
            body = endpoints.futures_query_order(client, creds, symbol, client_order_id)
        else:
            body = endpoints.futures_order_by_id(client, creds, symbol, order_id)
    except KlineoError as exc:
        if exc.code == _ORDER_DOES_NOT_EXIST or exc.category == ErrorCategory.ORDER_NOT_FOUND:
            return None
        raise
    return OrderResult.from_binance(body, source)


def _unknown(client_order_id: str, detail: str, noun: str = "order") -> KlineoError:
    return KlineoError(
        ErrorCategory.UNKNOWN_OUTCOME, f"{detail}; the {noun}'s outcome is unknown.",
        advice=f"Look it up by clientOrderId {client_order_id} (or repeat the request with the same "
        "Idempotency-Key) before placing it again.",
    )


@dataclasses.dataclass(frozen=True)
class OrderVenue:
    """What differs between Binance's two order services in the one exactly-once flow (``send_exactly_once``).

    ``send`` POSTs the order under its client id and answers Binance's body; ``placed`` reads that
    body into the result; ``lookup`` finds the order of a symbol by its client id (None: Binance has none);
    ``refused`` says a refusal the way the venue means it; ``noun`` names the order in messages.
    """

    noun: str
    send: Callable[[BinanceClient, Credentials, Any, str], dict[str, Any]]
    placed: Callable[[BinanceClient, Credentials, dict[str, Any]], OrderResult]
    lookup: Callable[[BinanceClient, Credentials, str, str, str], OrderResult | None]
    refused: Callable[[KlineoError], KlineoError] = lambda exc: exc


def _settle_lost_answer(
    venue: OrderVenue,
    client: BinanceClient,
    creds: Credentials,
    order: Any,
    client_order_id: str,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    deadline: Deadline | None = None,
) -> OrderResult:
    """After a lost answer: look the order up a few times with backoff; never send it again.

    No lookup starts past SETTLE_BUDGET_S, nor when it could not finish before ``deadline``.
    """
    started = clock()
    for delay in QUERY_DELAYS_S:
        if clock() - started + delay > SETTLE_BUDGET_S:
            break
        if deadline is not None and deadline.left(clock) < delay + _MIN_LOOKUP_S:
            break
        sleep(delay)
        try:
            found = venue.lookup(client, creds, order.symbol, client_order_id, "recovered")
        except KlineoError as exc:
            logger.warning(
                "order lookup failed",
                extra={"client_order_id": client_order_id, "category": str(exc.category)},
            )
            continue
        if found is not None:
            logger.info(
                "lost order answer recovered",
                extra={"client_order_id": client_order_id, "status": found.status},
            )
            return found
    raise _unknown(client_order_id, f"Binance did not answer the {venue.noun} and has not confirmed it since",
                   venue.noun)


# Metric per order outcome (README "Metrics"): first attempts by how they ended; a later call with
# `earlier_attempt_ms` that finds or places the order settles one that was left unknown. Counted in
# the tally (klineo.telemetry): the runner places many orders per invocation, and the flush
# publishes the same sums as one Powertools add_metric per order, for a fraction of the CPU.
_ORDER_METRICS = {
    "placed": "OrdersPlaced",
    "recovered": "OrdersRecovered",
    "existing": "OrdersExisting",
    "rejected": "OrdersRejected",
    "not_sent": "OrdersNotSent",
    "unknown": "OrdersUnknownOutcome",
    "settled": "OrdersUnknownSettled",
}


def _count(outcome: str) -> None:
    if outcome in _ORDER_METRICS:  # a metric never fails an order
        tally.count(_ORDER_METRICS[outcome])


def count_earlier_found(result: OrderResult) -> None:
    """Count an earlier attempt's order found outside ``send_exactly_once`` as that flow counts it: under
    its source (existing), and as settled."""
    _count(result.source)
    _count("settled")


def _count_outcome(submit: Callable[..., OrderResult]) -> Callable[..., OrderResult]:
    """Count each call of `submit` under its outcome's metric (the alarms and dashboard read them)."""

    @functools.wraps(submit)
    def counted(*args: Any, earlier_attempt_ms: int | None = None, **kwargs: Any) -> OrderResult:
        try:
            result = submit(*args, earlier_attempt_ms=earlier_attempt_ms, **kwargs)
        except KlineoError as exc:
            if earlier_attempt_ms is None:
                unknown = exc.category == ErrorCategory.UNKNOWN_OUTCOME
                # Binance's refusal is one even when it lifts by itself (``KlineoError.transient``).
                _count("unknown" if unknown else "not_sent" if exc.transient else "rejected")
            raise
        if earlier_attempt_ms is not None:
            count_earlier_found(result)
        else:
            _count(result.source)
        return result

    return counted


def find_earlier_attempt(
    venue: OrderVenue, client: BinanceClient, creds: Credentials, symbol: str, client_order_id: str
) -> OrderResult | None:
    """The earlier attempt's order, or None when Binance has none; a failed lookup is UNKNOWN_OUTCOME."""
    try:
        return venue.lookup(client, creds, symbol, client_order_id, "existing")
    except KlineoError as exc:
        logger.warning("earlier attempt lookup failed",
                       extra={"client_order_id": client_order_id, "category": str(exc.category)})
        raise _unknown(
            client_order_id,
            f"an earlier attempt may have reached Binance and looking it up failed ({exc.category})",
            venue.noun,
        ) from None


def _purged(client_order_id: str, age_ms: float) -> KlineoError:
    return KlineoError(
        ErrorCategory.CONFLICT,
        f"Binance does not know clientOrderId {client_order_id}, first sent "
        f"{age_ms / 86_400_000:.1f} days ago: "
        "it forgets canceled or expired orders without fills after 3 days and every order after 90, so "
        "this order's outcome can no longer be learned. It will never be sent again; check the "
        "position and trades, then use a new key for a new order.",
    )


def absent_earlier_attempt(
    client: BinanceClient,
    client_order_id: str,
    earlier_attempt_ms: int,
    now_ms: float,
    when_purged: Callable[[], None] | None,
    looked_up_ms: float | None = None,
    sent_by_ms: int | None = None,
) -> None:
    """Binance has no order with this id: raise unless the earlier attempt provably never executed.

    ``looked_up_ms``: when the lookup that found nothing was sent (default ``now_ms``). Its "does not exist"
    is Binance's word as of that request, not of its answer, which may come seconds later while the earlier
    attempt's request still lands: the recvWindow wait counts from the request (the purge from now).
    ``sent_by_ms``: the latest instant the earlier attempt could sign its request (default
    ``earlier_attempt_ms``): the recvWindow wait counts up to the lookup from it, the purge age from
    ``earlier_attempt_ms`` (its order, if any, is no older than that)."""
    age_ms = now_ms - earlier_attempt_ms
    if age_ms >= PURGE_AFTER_MS:
        if when_purged is not None:
            when_purged()
        raise _purged(client_order_id, age_ms)
    asked_ms = now_ms if looked_up_ms is None else looked_up_ms
    last_sign_ms = earlier_attempt_ms if sent_by_ms is None else max(sent_by_ms, earlier_attempt_ms)
    if asked_ms - last_sign_ms < float(client.recv_window) + SETTLE_MARGIN_MS:
        raise _unknown(client_order_id, "an earlier attempt with this clientOrderId may still reach Binance")


def send_exactly_once(
    venue: OrderVenue,
    client: BinanceClient,
    creds: Credentials,
    order: Any,
    client_order_id: str,
    *,
    earlier_attempt_ms: int | None = None,
    before_resend: Callable[[], None] | None = None,
    when_purged: Callable[[], None] | None = None,
    deadline: Deadline | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    earlier_sent_by_ms: int | None = None,
) -> OrderResult:
    """Place `order` under `client_order_id` exactly once at ``venue``; see the module docstring.

    `earlier_attempt_ms`: wall-clock ms when an earlier attempt with the same id began sending
    (None when this id was never used): the order is then looked up first, and only sent again
    once the earlier attempt is past recvWindow + SETTLE_MARGIN_MS and still absent, but younger
    than PURGE_AFTER_MS (older: `when_purged` is called and CONFLICT raised; never sent).
    `earlier_sent_by_ms`: the latest instant that attempt could sign its request, when later than
    `earlier_attempt_ms`: the recvWindow wait counts from it (``absent_earlier_attempt``).
    `before_resend`: called right before such a second send; it may raise to stop it (the API
    uses it to win an optimistic lock against a concurrent retry of the same order).
    `deadline`: the settle loop starts no lookup it could not finish by then.
    Raises KlineoError: UNKNOWN_OUTCOME when the outcome cannot be settled, the exchange's
    category when Binance refused the order (nothing placed), INVALID_REQUEST for a bad id.
    """
    check_client_order_id(client_order_id)
    if earlier_attempt_ms is not None:
        asked_ms = clock() * 1000  # before the lookup: its "not found" is as old as its request
        existing = find_earlier_attempt(venue, client, creds, order.symbol, client_order_id)
        if existing is not None:
            return existing
        absent_earlier_attempt(client, client_order_id, earlier_attempt_ms, clock() * 1000, when_purged,
                               looked_up_ms=asked_ms, sent_by_ms=earlier_sent_by_ms)
        if before_resend is not None:
            before_resend()
        logger.info(
            "earlier attempt never reached Binance; sending again", extra={"client_order_id": client_order_id}
        )
    try:
        body = venue.send(client, creds, order, client_order_id)
    except KlineoError as exc:
        if exc.category == ErrorCategory.UNKNOWN_OUTCOME:
            logger.warning("order answer lost; looking it up", extra={"client_order_id": client_order_id})
            return _settle_lost_answer(venue, client, creds, order, client_order_id, clock, sleep, deadline)
        if exc.code == _CLIENT_ORDER_ID_DUPLICATED:
            return _duplicated(venue, client, creds, order, client_order_id, exc)
        raise venue.refused(exc) from None
    return venue.placed(client, creds, body)


def _duplicated(
    venue: OrderVenue, client: BinanceClient, creds: Credentials, order: Any, client_order_id: str,
    exc: KlineoError,
) -> OrderResult:
    """-4116: an open order has this id already; return it (a failed lookup leaves the outcome unknown)."""
    existing = find_earlier_attempt(venue, client, creds, order.symbol, client_order_id)
    if existing is not None:
        return existing
    raise KlineoError(
        ErrorCategory.DUPLICATE_ORDER,
        f"clientOrderId {client_order_id} is already used by another open {venue.noun}",
        status=exc.status,
        code=exc.code,
    ) from None


def _with_fill_price(client: BinanceClient, creds: Credentials, result: OrderResult) -> OrderResult:
    """The placed order with its average fill price, read back when the answer lacks ``avgPrice``.

    Binance's SDK models dropped ``avgPrice`` from the new-order answer (facts §11): when it is
    missing and something filled, the order is read once. The order stands whatever that read
    gives; a failed read only leaves the average price unknown (the status route reads it later).
    """
    if result.average_price is not None or result.executed_quantity <= 0:
        return result
    try:
        found = query_futures_order(client, creds, result.symbol, result.client_order_id, source="placed")
    except KlineoError as exc:
        logger.warning("fill price lookup failed",
                       extra={"client_order_id": result.client_order_id, "category": str(exc.category)})
        return result
    if found is None or found.average_price is None:
        return result
    return dataclasses.replace(result, average_price=found.average_price)


def _send_regular(client: BinanceClient, creds: Credentials, order: FuturesOrder, client_order_id: str,
                  ) -> dict[str, Any]:
    return endpoints.futures_new_order(client, creds, order.to_params(client_order_id))


def _placed_regular(client: BinanceClient, creds: Credentials, body: dict[str, Any]) -> OrderResult:
    return _with_fill_price(client, creds, OrderResult.from_binance(body, "placed"))


def _lookup_regular(client: BinanceClient, creds: Credentials, symbol: str, client_order_id: str,
                    source: str) -> OrderResult | None:
    return query_futures_order(client, creds, symbol, client_order_id, source=source)


# Regular orders: POST/GET /fapi/v1/order.
REGULAR_ORDERS = OrderVenue(noun="order", send=_send_regular, placed=_placed_regular, lookup=_lookup_regular)


@_count_outcome
def submit_futures_order(
    client: BinanceClient, creds: Credentials, order: FuturesOrder, client_order_id: str, **options: Any
) -> OrderResult:
    """Place a regular order exactly once (``send_exactly_once`` at /fapi/v1/order; same options)."""
    return send_exactly_once(REGULAR_ORDERS, client, creds, order, client_order_id, **options)
