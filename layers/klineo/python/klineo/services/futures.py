"""Futures orders of the HTTP API: placing an order, reading its status.

The futures account (test, enable with settings, disable) is klineo.services.futures_account; the
risk gate every order passes is klineo.services.risk.

Placing an order (`place_futures_order`) needs an Idempotency-Key (428 without one: exactly once
must not depend on the caller reading our README; with a key, a retry is always safe). Warm, it
costs exactly 2 AWS round trips (measured by `python -m bench.aws_calls`, target 2):
1. ONE TransactWriteItems (klineo.store.order_claim): the PENDING order record, conditional on the
   key being free, plus ConditionChecks on the gates (global and user kill switches, and the
   connection: its kill switch, futures_enabled, not disabled, and every setting the order was
   checked against unchanged);
2. ONE UpdateItem recording the outcome.
What is not a round trip: the connection item comes from a per-container cache that the
transaction re-validates (a cold container reads it once, consistently: 3 calls); the secret from
the in-memory secret cache; the kill switches are not read at all (the transaction checks them).

In order: `check_order` on the cached connection without the limits (switches, state, position
side: no Binance call), the claim, then the limits (the mark price for a MARKET or SELL LIMIT order,
on the connection the claim just validated) and the symbol's filters (PERCENT_PRICE against that mark
when it was read), then the send. So a
kill switch refuses before any Binance call. A refusal is never given on cached data (the context
is read fresh and the gate asked again); a cancelled transaction hands back the items whose checks
failed, so `check_order` names the gate exactly as on a fresh read; a refusal after the claim
(limits, filters), or any failure before the send, deletes the claim, so the key is free again. The
parameters sent are stored by the outcome's update. A refusal by the gate or the symbol's rules (never
one of the body's shape, the Idempotency-Key's, or Binance's own, which the order record keeps) is
recorded as a refused order attempt (``klineo.store.order_attempts``): ONE PutItem on the refusal path
only, whose failure is logged and never changes the answer. So is one that stops a retry resuming its
key's unsettled order (the record keeps its state), except a REJECTED record's resend refused by the
limits: that record stays REJECTED, the refusal its error, which the attempts' listing shows (``_resume``).

Why not Powertools idempotency any more: its record is a PutItem of its own, and it cannot fold
condition checks on other items into that write. Here the order record IS the idempotency record:
- the key is free: the order is claimed and sent;
- same key, same body, settled: the first answer comes back (`source: existing`), no AWS write;
- same key, another body: 409 naming Idempotency-Key;
- the record's lease (`lease_until_ms`, the first attempt's deadline) is running: 409 "in
  progress", retryable;
- otherwise (a crashed, UNKNOWN or REJECTED attempt) the lease is taken with a second transaction
  and the order resumed: `klineo.services.orders.submit_futures_order` looks it up by clientOrderId
  and only sends it again once Binance provably cannot execute the earlier attempt any more (recvWindow
  and the settle margin counted from its invocation's end, the latest it could have sent: ``_sent_by_ms``);
  an attempt older than Binance's retention is UNKNOWN_PURGED and never sent again.

Conditional types (STOP*, TAKE_PROFIT*, TRAILING_STOP_MARKET) take the same path to the point where
the order is sent, which routes them to Binance's algo service (``klineo.services.algo_orders``);
an entry's ``stop_loss`` / ``take_profit`` are placed after it fills (``klineo.services.protective``),
also when a retry with the same key replays the entry; ``quote_quantity`` becomes a quantity once the
claim is held (``klineo.services.order_size``).

Dry run (``preview_futures_order``; POST /futures/order/check through ``klineo.services.order_check``):
the gate on ONE consistent read of the connection and both kill switches (there is no claim to re-check
them), then ``_prepared``, the same step a claimed order takes (quote size, limits, the symbol's grid);
nothing is claimed, recorded or sent, and the symbol's settings are not applied.

Deadline: the whole placement runs inside `call_deadline(Deadline.of_invocation(ctx).at)`, so the
answer comes before API Gateway's 29 s; an order not settled by then is unknown_outcome with its
clientOrderId (see klineo.services.orders).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from functools import cache
from typing import Any

from klineo.binance import (
    BinanceClient,
    Credentials,
    Environment,
    ErrorCategory,
    Market,
    call_deadline,
    endpoints,
    get_client,
)
from klineo.binance.filters import get_symbol_rules
from klineo.errors import KlineoError
from klineo.models.futures import FuturesOrderRequest, FuturesOrderResponse
from klineo.observability import logger, metrics
from klineo.services.algo_orders import (
    AlgoOrder,
    find_earlier_order,
    prepare_algo_order,
    query_algo_order,
    recorded_order,
    sent_params,
    submit_order,
)
from klineo.services.key_health import READ, TRADE, note_futures_outcome, note_key_outcome
from klineo.services.order_response import futures_order_response
from klineo.services.order_size import with_quote_quantity
from klineo.services.orders import (
    Deadline,
    FuturesOrder,
    OrderResult,
    absent_earlier_attempt,
    check_client_order_id,
    idempotent_client_order_id,
    query_futures_order,
)
from klineo.services.protective import (
    answered_states,
    arm_on_read,
    arm_protective_orders,
    check_protective_targets,
    check_protective_ticks,
)
from klineo.services.risk import (
    OrderIntent,
    check_order,
    closed_for_every_order,
    order_notional,
    params_reduce,
)
from klineo.services.symbol_settings import prepare_symbol
from klineo.store.connections import (
    Connection,
    TradingContext,
    connection_credentials,
    connection_from_item,
    load_trading_context,
    load_trading_contexts,
    require_connection,
    require_trading_context,
)
from klineo.store.flags import kill_switch_of
from klineo.store.order_claim import (
    ClaimRefusal,
    GateChecks,
    cached_connection_item,
    claim_new_order,
    claim_resume,
    forget_connection,
    release_claim,
    remember_connection,
)
from klineo.store.orders import (
    FOREIGN_ORIGINS,
    KIND_ALGO,
    KIND_ORDER,
    ORIGIN_API,
    STATUS_REJECTED,
    STATUS_UNKNOWN,
    STATUS_UNKNOWN_PURGED,
    OrderRecord,
    claim_resend,
    get_order_record,
    pending_record,
    record_order_outcome_quietly,
)
from klineo.validation import (
    IDEMPOTENCY_HEADER,
    IDEMPOTENCY_KEY_MAX_LENGTH,
    check_idempotency_key,
    plain_text_or_none,
)

__all__ = [
    "IDEMPOTENCY_KEY_MAX_LENGTH",
    "ORDER_FUNCTION_TIMEOUT_MS",
    "OrderPreview",
    "get_futures_order_status",
    "place_futures_order",
    "preview_futures_order",
]

# The lease outlives the deadline by this much: the outcome is recorded after the last Binance call.
_LEASE_MARGIN_MS = 3000
# The order functions' Timeout (template.yaml: FuturesOrderFunction, FuturesPositionCloseFunction): Lambda
# stops an invocation by then, so no attempt sends its order later than this after its claim.
ORDER_FUNCTION_TIMEOUT_MS = 29_000
# The order's own refusals by our gate and the symbol's rules (a gate, a rule, the symbol's filters):
# what a dry run answers as its verdict, and what a refused order attempt records. Any other error (the
# connection not found, Binance unreachable) is no refusal of the order.
_ORDER_REFUSALS = frozenset({ErrorCategory.INVALID_REQUEST, ErrorCategory.CONFLICT,
                             ErrorCategory.ORDER_REJECTED})


def _futures_client(connection: Connection) -> BinanceClient:
    return get_client(Market.FUTURES, Environment(connection.environment))


# ---------------------------------------------------------------- orders


def _intent(order: FuturesOrderRequest) -> OrderIntent:
    # closePosition in one-way mode only ever reduces, like reduceOnly (hedge: the side says it).
    # A quote_quantity order has no quantity before the claim: the gate's limits see it once converted.
    closes_all = order.closePosition and order.positionSide == "BOTH"
    return OrderIntent(symbol=order.symbol, side=order.side, type=order.type,
                       quantity=order.quantity or Decimal(0), price=order.price,
                       reduce_only=order.reduceOnly or closes_all, position_side=order.positionSide,
                       trigger_price=order.triggerPrice, activation_price=order.activationPrice,
                       callback_rate=order.callbackRate)


def _not_found() -> KlineoError:
    return KlineoError(ErrorCategory.NOT_FOUND, "connection not found")


class _Gated:
    """The connection an order was checked against: its cached item, Binance client, and the prices read
    at most once each: ``mark`` (GET premiumIndex) and ``reference``, the price the symbol's filters and
    the quote size use (the order's own price, else the mark: facts §6)."""

    def __init__(self, user_id: str, order: FuturesOrderRequest, item: dict[str, Any],
                 read: TradingContext | None = None) -> None:
        self.user_id, self.order, self.item, self.read = user_id, order, item, read
        self.connection = connection_from_item(item)
        self.client = _futures_client(self.connection)
        self.mark = cache(lambda: endpoints.futures_mark_price(self.client, order.symbol))
        self.reference = cache(lambda: order.price if order.price is not None else self.mark())

    def mark_at_hand(self) -> Decimal | None:
        """The mark price when this order's path has read it already (to value it), else None: no read."""
        return self.mark() if self.mark.cache_info().currsize else None

    def context(self, failed: dict[str, dict[str, Any] | None] | None = None) -> TradingContext:
        """The trading context: a dry run's own consistent read (``read``: no claim re-checks it); else the
        switches are off unless a transaction's failed check says otherwise."""
        if self.read is not None:
            return self.read
        failed = failed or {}
        return TradingContext(self.connection, user_kill_switch=kill_switch_of(failed.get("user_flags")),
                              global_kill_switch=kill_switch_of(failed.get("global_flags")))

    def gates(self) -> GateChecks:
        """What the claim transaction re-checks for this order."""
        return GateChecks(self.user_id, self.item, switches=not _intent(self.order).reduces)


def _gated(user_id: str, order: FuturesOrderRequest) -> _Gated:
    """Risk gate on the cached connection, limits aside (they may need the mark price: checked once the
    claim validated the cache); a refusal is only ever given after a fresh, consistent read."""
    item = cached_connection_item(user_id, order.connection_id)
    if item is None:
        raise _not_found()
    gated = _Gated(user_id, order, item)
    try:
        check_order(gated.context(), _intent(order))
    except KlineoError:
        forget_connection(user_id, order.connection_id)
        check_order(load_trading_context(user_id, order.connection_id), _intent(order))
        item = cached_connection_item(user_id, order.connection_id)  # the cache was stale; it passes now
        if item is None:
            raise _not_found() from None
        gated = _Gated(user_id, order, item)
    return gated


def _refuse_by_gates(gated: _Gated, refusal: ClaimRefusal) -> _Gated:
    """Raise the gate refusal the failed checks mean (named by check_order); else the refreshed connection."""
    failed = refusal.failed
    if "connection" in failed:
        item = failed["connection"]
        if item is None:
            forget_connection(gated.user_id, gated.order.connection_id)
            raise _not_found()
        remember_connection(gated.user_id, gated.order.connection_id, item)
        gated = _Gated(gated.user_id, gated.order, item)
    check_order(gated.context(failed), _intent(gated.order))
    return gated  # only a setting the order was checked against had changed: claim again with it


def _rounded(gated: _Gated) -> FuturesOrder | AlgoOrder:
    """The order checked against the symbol's rules (cached exchange info; mark price for a MARKET order;
    PERCENT_PRICE against the mark when the limits read it, and a stop-limit's against its trigger).

    What the caller typed (quantity, prices, a stop-loss/take-profit price) is refused off the grid,
    never rounded; a quantity converted from quote_quantity is on it already (rounded down).
    """
    order = gated.order
    rules = get_symbol_rules(gated.client, order.symbol)
    if order.conditional:
        return prepare_algo_order(rules, order, gated.mark)
    check_protective_ticks(order, rules)
    # The minimum notional never binds an order that only reduces, reduce-only or a hedge-mode close
    # (SymbolRules.min_notional_applies): a position worth less than it stays closable.
    quantity, price = rules.prepare_order(order.side, order.type, order.quantity, order.price,
                                          gated.reference(), reduce_only=order.reduceOnly, exact=True,
                                          position_side=order.positionSide)
    mark = gated.mark_at_hand()
    if price is not None and mark is not None:
        # PERCENT_PRICE only where the mark is at hand (an opening SELL LIMIT, valued at it): a BUY LIMIT
        # reads no mark, and one more Binance read for every order would cost more than the rare refusal.
        rules.check_price_band(order.side, price, mark)
    return FuturesOrder(symbol=order.symbol, side=order.side, type=order.type, quantity=quantity, price=price,
                        time_in_force=order.timeInForce, reduce_only=order.reduceOnly,
                        position_side=order.positionSide)


def _lease_until_ms(deadline: Deadline) -> int:
    return int(deadline.at * 1000) + _LEASE_MARGIN_MS


def _sent_by_ms(record: OrderRecord) -> int:
    """The latest instant the attempt that claimed ``record`` could have sent its order: its invocation's end.

    Not its claim (``attempt_ms``): Binance calls may come between the two (the mark price, the quote size,
    the symbol's settings), each until the deadline (a read past it still goes, with a 0.1 s timeout; the
    client signs no POST past it, ``klineo.binance.call_deadline``), and an order sent late may still execute
    recvWindow after it left. A resend's wait counts from here, as the
    runner's does from its lease's end."""
    return record.attempt_ms + ORDER_FUNCTION_TIMEOUT_MS


def _new_record(gated: _Gated, client_order_id: str, deadline: Deadline, role: str | None = None,
                position_left: str | None = None) -> OrderRecord:
    """The claim's record: the request, no parameters yet (the outcome's update stores what was sent)."""
    return pending_record(
        gated.user_id, client_order_id, connection_id=gated.connection.connection_id,
        symbol=gated.order.symbol, request=gated.order.fingerprint(), params={},
        attempt_ms=int(time.time() * 1000), lease_until_ms=_lease_until_ms(deadline),
        kind=KIND_ALGO if gated.order.conditional else KIND_ORDER, role=role, position_left=position_left,
    )


def _in_progress() -> KlineoError:
    return KlineoError(
        ErrorCategory.CONFLICT,
        f"A request with this {IDEMPOTENCY_HEADER} is in progress; retry in a moment for its result.",
        field=IDEMPOTENCY_HEADER,
        retryable=True,
    )


def _note_refusal(user_id: str, order: FuturesOrderRequest, client_order_id: str, role: str | None,
                  refusal: KlineoError) -> None:
    """Record an order our gate or the symbol's rules refused before anything was sent (before its claim,
    or with its claim given back): a ``RefusedAttempt``, the order as asked and the refusal as answered.
    Any other error is no refusal of the order and records nothing."""
    if refusal.category not in _ORDER_REFUSALS:
        return
    # Imported here: only a refusal records an attempt, so an order's cold start does not load the
    # attempts' store (nor the history and strategy stores it brings).
    from klineo.store.order_attempts import RefusedAttempt, record_refused_attempt, refusal_of

    by_quote = order.quote_quantity is not None  # the quantity converted from it was not asked
    record_refused_attempt(RefusedAttempt(
        user_id=user_id, client_order_id=client_order_id, connection_id=order.connection_id,
        symbol=order.symbol, origin=ORIGIN_API, attempt_ms=int(time.time() * 1000), side=order.side,
        type=order.type, refusal=refusal_of(refusal),
        quantity=None if by_quote else plain_text_or_none(order.quantity),
        quote_quantity=plain_text_or_none(order.quote_quantity), price=plain_text_or_none(order.price),
        position_side=order.positionSide, reduce_only=order.reduceOnly, role=role,
    ))


@contextmanager
def _noting_refusal(gated: _Gated, client_order_id: str, role: str | None) -> Iterator[None]:
    """The block, its refusal of the order (if any) recorded as a refused attempt (``_note_refusal``) and
    raised on. For a refusal that reaches the caller with nothing else telling it."""
    try:
        yield
    except KlineoError as refused:
        _note_refusal(gated.user_id, gated.order, client_order_id, role, refused)
        raise


def _place(user_id: str, order: FuturesOrderRequest, client_order_id: str, deadline: Deadline,
           role: str | None = None, position_left: str | None = None) -> FuturesOrderResponse:
    """Gate, ONE claim transaction, limits and rounding, then the order sent (or the key's order answered).

    The claim comes before any Binance call, so a kill switch refuses with nothing sent at all.
    """
    try:
        gated = _gated(user_id, order)
    except KlineoError as refused:
        # A gate closed since: a key whose order was placed still answers it, and one in flight or purged
        # says so, as the claim does (a replay sends no order of its own; its entry's missing stops ask
        # the gate as the reducing orders they are); a key taken by another body is its conflict.
        first = _first_answer(user_id, client_order_id, order)
        if first is None:
            _note_refusal(user_id, order, client_order_id, role, refused)
            raise
        return first
    for _ in range(2):
        record = _new_record(gated, client_order_id, deadline, role, position_left)
        refusal = claim_new_order(record, gated.gates())
        if refusal is None:
            return _send_claimed(gated, record, deadline)
        if refusal.existing is not None:
            return _answer_existing(gated, refusal.existing, refusal, deadline)
        with _noting_refusal(gated, client_order_id, role):
            gated = _refuse_by_gates(gated, refusal)
    raise KlineoError(ErrorCategory.UPSTREAM_UNAVAILABLE,
                      "This connection's settings changed while placing the order; try again.",
                      retryable=True)


def _replay(record: OrderRecord) -> FuturesOrderResponse | None:
    """The first answer of a settled record (`source: existing`), else None."""
    if not record.settled or record.result is None:
        return None
    return futures_order_response(OrderResult.from_record(record.result), record.connection_id, "existing")


def _first_answer(user_id: str, client_order_id: str,
                  order: FuturesOrderRequest) -> FuturesOrderResponse | None:
    """The key's answer when it holds a record of this same body that a gate cannot refuse (``_held_answer``:
    settled, purged, in flight), else None: the gate's refusal stands (one read). A record of another body
    is the key's conflict (``_check_same_body``), as the claim answers it in a warm container.

    It answers as a container whose claim found the gate closed does (``_answer_existing``): a settled
    order through ``_protected`` on the connection as just read, which asks the gate for the entry's
    missing stops as the reducing orders they are. Past a gate of new exposure only (a kill switch, futures
    off) they are placed; a disabled connection or one being deleted refuses them, naming the gate and the
    entry that stands; stops placed before are listed as in the first answer. Only a connection gone
    answers the order alone. Which container answers never changes the answer.
    """
    record = get_order_record(user_id, client_order_id)
    if record is None:
        return None
    _check_same_body(record, order)
    answer = _held_answer(record, int(time.time() * 1000))
    if answer is None:
        return None
    item = cached_connection_item(user_id, order.connection_id)
    return answer if item is None else _protected(_Gated(user_id, order, item), record, answer)


def _send_claimed(gated: _Gated, record: OrderRecord, deadline: Deadline) -> FuturesOrderResponse:
    """The key is claimed: the limits (on the connection the claim validated), rounding, then the order.

    A refusal before sending, or any other failure there, gives the key back (the claim is deleted):
    nothing was sent. Never after the send: from then on the record is the only trace of the order.
    """
    try:
        futures_order = _prepared(gated)
    except KlineoError as refused:
        release_claim(record)
        _note_refusal(gated.user_id, gated.order, record.client_order_id, record.role, refused)
        raise
    except Exception:
        release_claim(record)  # a fault, no refusal, but still before the send: no PENDING order may stay
        raise
    outcome = _Outcome(gated.user_id, record.client_order_id, gated.connection,
                       params=futures_order.to_params(record.client_order_id))
    answer = outcome.settle(lambda: _send(gated, futures_order, record.client_order_id, deadline))
    return _protected(gated, outcome.settled_record(record), answer, first_arming=True)


def _prepared(gated: _Gated) -> FuturesOrder | AlgoOrder:
    """The order as it is sent: quote_quantity converted, the gate's limits, the symbol's grid (the real
    route after its claim, and its dry run, ``preview_futures_order``)."""
    gated.order = with_quote_quantity(gated.client, gated.order, gated.reference)
    _check_limits(gated)
    return _rounded(gated)


def _check_limits(gated: _Gated) -> None:
    """The gate's limits (the mark price read only when they need it), and an attached stop-loss/take-profit
    on the right side of the reference price."""
    check_order(gated.context(), _intent(gated.order), gated.mark)
    check_protective_targets(gated.order, gated.reference)


def _protected(gated: _Gated, entry: OrderRecord, answer: FuturesOrderResponse,
               first_arming: bool = False) -> FuturesOrderResponse:
    """The entry's answer with its stop-loss/take-profit, placed once it filled (exactly once: their
    clientAlgoIds derive from the entry's); unchanged when the entry asked for none.
    ``first_arming``: the entry was just claimed and sent, so none of them can be recorded yet.
    A reducing order that executed re-fits the stops of what it left instead (``_follow_reduction``; its
    answer unchanged)."""
    creds = connection_credentials(gated.connection)
    _follow_reduction(gated.user_id, entry, gated.client, creds, gated.connection)
    if gated.order.stop_loss is None and gated.order.take_profit is None:
        return answer
    # Armed later than the entry's own claim (a replay, a resume): asked through the gate first. At the first
    # arming too, a refusal of the key counts on the connection's key health (once), as later armings do.
    states = arm_protective_orders(gated.user_id, entry, gated.client, creds, first_arming=first_arming,
                                   connection=gated.connection)
    if not first_arming:  # a replay or a resume answers them as a status read does: a lost one placed again
        states = answered_states(gated.user_id, entry, states, gated.client, creds, gated.connection)
    return answer.model_copy(update={"protective_orders": states})


def _follow_reduction(user_id: str, record: OrderRecord, client: BinanceClient, creds: Credentials,
                      connection: Connection) -> None:
    """``klineo.services.protective_resize.follow_reduction`` for a reducing order (reduce-only, or closing
    a hedge side); loaded only then: an entry never re-fits stops. Not on a connection closed for every order
    (disabled, being deleted), for a replay and a status read alike: the re-placed stops would be refused, so
    nothing is read with its key (the reconciler's cleanup re-fits them once it is open again)."""
    if params_reduce(record.params) and not closed_for_every_order(connection):
        from klineo.services.protective_resize import follow_reduction

        follow_reduction(user_id, record, client, creds, connection)


def _send(gated: _Gated, futures_order: FuturesOrder | AlgoOrder, client_order_id: str, deadline: Deadline,
          before_send: Callable[[], None] | None = None, **resume: Any) -> OrderResult:
    """The connection's settings on the symbol (new exposure only), then the order, exactly once."""
    if before_send is not None:
        before_send()
    creds = connection_credentials(gated.connection)
    stored = prepare_symbol(gated.client, creds, gated.connection, gated.order.symbol,
                            reduces=_intent(gated.order).reduces)
    if stored is not None:  # its symbol_settings changed: the next order reads them from the cache
        remember_connection(gated.user_id, gated.order.connection_id, stored)
    return submit_order(gated.client, creds, futures_order, client_order_id, deadline=deadline, **resume)


class _Outcome:
    """Runs a send and records what became of the order in ONE UpdateItem (which ends the lease)."""

    def __init__(self, user_id: str, client_order_id: str, connection: Connection, params: dict[str, str],
                 earlier: OrderRecord | None = None) -> None:
        self.user_id, self.client_order_id, self.connection = user_id, client_order_id, connection
        self.params, self.earlier = params, earlier
        self.resent = earlier is None or earlier.status == STATUS_REJECTED
        self.purged = False
        self.result: OrderResult | None = None

    def settled_record(self, record: OrderRecord) -> OrderRecord:
        """``record`` as the outcome's update left it (after a successful ``settle``)."""
        assert self.result is not None
        return dataclasses.replace(record, params=self.params, status=self.result.status,
                                   order_id=self.result.order_id, result=self.result.to_record())

    def failure_status(self, exc: KlineoError) -> str:
        """UNKNOWN_PURGED, UNKNOWN, REJECTED (Binance refused a send: nothing placed), or the state as was."""
        if self.purged:
            return STATUS_UNKNOWN_PURGED
        if exc.category == ErrorCategory.UNKNOWN_OUTCOME:
            return STATUS_UNKNOWN
        if self.resent or self.earlier is None:
            return STATUS_REJECTED
        return self.earlier.status  # a lookup failed before anything was sent: the state stands

    def failed(self, exc: KlineoError) -> None:
        """Record that the attempt ended in ``exc`` (the caller raises it).

        The key failure is counted first, while the lease still holds: recording the outcome ends it, and
        a retry of the same key could then send again before a third failure had disabled the connection.
        A storage error while counting is logged, never raised (``note_key_outcome``): the outcome is
        recorded and answered whatever the count did.
        """
        note_key_outcome(self.connection, exc, TRADE)
        record_order_outcome_quietly(self.user_id, self.client_order_id, status=self.failure_status(exc),
                                     params=self.params, error={**exc.to_dict(), "code": exc.code})

    def settle(self, send: Callable[[], OrderResult]) -> FuturesOrderResponse:
        """``send()`` and record its outcome; the answer is what Binance said."""
        try:
            result = send()
        except KlineoError as exc:
            self.failed(exc)
            raise
        self.result = result
        record_order_outcome_quietly(self.user_id, self.client_order_id, status=result.status,
                                     params=self.params, order_id=result.order_id, result=result.to_record())
        note_key_outcome(self.connection, None, TRADE)
        logger.info("futures order done", extra={
            "client_order_id": self.client_order_id, "status": result.status, "source": result.source,
            "symbol": result.symbol})
        return futures_order_response(result, self.connection.connection_id)


def _check_same_body(existing: OrderRecord, order: FuturesOrderRequest) -> None:
    """409 naming the key when its record is of another body: the client's error whatever the gates say now
    (the body was never a new order, so no gate judges it and no refused attempt is recorded)."""
    if existing.request != order.fingerprint():
        raise KlineoError(
            ErrorCategory.CONFLICT,
            f"This {IDEMPOTENCY_HEADER} was already used for a different order; use a new key.",
            field=IDEMPOTENCY_HEADER,
        )


def _held_answer(existing: OrderRecord, now_ms: int) -> FuturesOrderResponse | None:
    """What the key's record of this same body answers whatever the gates say now, in every container: its
    first answer once settled; 409 once Binance no longer knows it (never sent again), or while an attempt's
    lease runs (it may be placing the order right now). None: resumable, a send the gates must allow."""
    replayed = _replay(existing)
    if replayed is not None:
        return replayed
    if existing.status == STATUS_UNKNOWN_PURGED:
        raise KlineoError(ErrorCategory.CONFLICT, (existing.error or {}).get(
            "message", "Binance no longer knows this order; it will never be sent again. Use a new key."),
            field=IDEMPOTENCY_HEADER)
    if existing.lease_until_ms is not None and existing.lease_until_ms >= now_ms:
        raise _in_progress()
    return None


def _answer_existing(gated: _Gated, existing: OrderRecord, refusal: ClaimRefusal,
                     deadline: Deadline) -> FuturesOrderResponse:
    """The key holds a record: its first answer, 409 (other body, in progress, purged), or it resumed."""
    _check_same_body(existing, gated.order)
    now_ms = int(time.time() * 1000)
    replayed = _held_answer(existing, now_ms)
    if replayed is not None:
        return _replayed_as_claimed(gated, existing, refusal, replayed)
    # A gate refusing the resume (in the claim's checks or the resume's own) leaves the record as it was:
    # only a refused attempt tells it.
    if refusal.failed:
        with _noting_refusal(gated, existing.client_order_id, existing.role):
            gated = _refuse_by_gates(gated, refusal)
    resumed = claim_resume(existing, _lease_until_ms(deadline), now_ms, gated.gates())
    if resumed is not None:
        if resumed.existing is None:
            with _noting_refusal(gated, existing.client_order_id, existing.role):
                _refuse_by_gates(gated, resumed)
        raise _in_progress()
    return _resume(gated, existing, deadline)


def _replayed_as_claimed(gated: _Gated, existing: OrderRecord, refusal: ClaimRefusal,
                         replayed: FuturesOrderResponse) -> FuturesOrderResponse:
    """A settled record's replay on the connection as the claim found it (its check failed: a gate or a
    setting changed since it was cached): the missing stops ask the gate on it, never on the stale copy. A
    connection deleted since answers the order alone, as a cold container does (``_first_answer``): nothing
    is read or sent with a copy of a connection that no longer exists."""
    if "connection" in refusal.failed:
        current = refusal.failed["connection"]
        if current is None:
            forget_connection(gated.user_id, gated.order.connection_id)
            return replayed
        remember_connection(gated.user_id, gated.order.connection_id, current)
        gated = _Gated(gated.user_id, gated.order, current)
    return _protected(gated, existing, replayed)


def _resume(gated: _Gated, existing: OrderRecord, deadline: Deadline) -> FuturesOrderResponse:
    """The lease is ours: return the earlier attempt's order, or place it once it provably is not there.

    The order sent again is the one recorded (same parameters as the first attempt), never a
    fresh rounding of the body; only an attempt that stopped between its claim and its outcome (no
    parameters recorded) is rounded again from its recorded request, once Binance provably holds no
    order of it (``_found_unrecorded``). A second send passes the
    limits first (on the connection the resume claim validated).

    A refusal of that rounding or of those limits is a refused attempt, except a REJECTED record's: its
    outcome's update keeps the refusal on the record itself (REJECTED, with the refusal as its error,
    which the attempts' listing shows); any other record keeps its state, so nothing else would tell it.
    """
    coid = existing.client_order_id
    unrecorded = not existing.params and existing.status != STATUS_REJECTED
    if unrecorded and (found := _found_unrecorded(gated, existing)) is not None:
        return found

    def limits() -> None:
        gated.order = with_quote_quantity(gated.client, gated.order, gated.reference)
        _check_limits(gated)

    with _noting_refusal(gated, coid, existing.role):
        if not existing.params:
            gated.order = with_quote_quantity(gated.client, gated.order, gated.reference)
        recorded = recorded_order(existing) if existing.params else _rounded(gated)
    outcome = _Outcome(gated.user_id, coid, gated.connection, recorded.to_params(coid), earlier=existing)

    attempt_ms = int(time.time() * 1000)

    def claim() -> None:
        # The record turns PENDING with this attempt's time before the send: should this invocation
        # die before recording the outcome, the next retry looks the order up instead of sending again.
        if existing.status == STATUS_REJECTED:
            limits()
        else:
            with _noting_refusal(gated, coid, existing.role):
                limits()
        earlier = existing.attempt_ms
        if not claim_resend(gated.user_id, coid, previous_attempt_ms=earlier, attempt_ms=attempt_ms):
            raise _in_progress()
        outcome.resent = True

    if existing.status == STATUS_REJECTED or unrecorded:
        # Nothing was placed and nothing can still arrive: Binance refused the earlier attempt, or it
        # provably holds none of it (``_found_unrecorded`` looked): sent without another lookup.
        answer = outcome.settle(lambda: _send(gated, recorded, coid, deadline, before_send=claim))
        return _protected(gated, outcome.settled_record(existing), answer)

    def purged() -> None:
        outcome.purged = True

    answer = outcome.settle(lambda: _send(gated, recorded, coid, deadline, before_resend=claim,
                                          earlier_attempt_ms=_sent_by_ms(existing), when_purged=purged))
    return _protected(gated, outcome.settled_record(existing), answer)


def _found_unrecorded(gated: _Gated, existing: OrderRecord) -> FuturesOrderResponse | None:
    """An attempt that stopped between its claim and its outcome (no parameters recorded) may have reached
    Binance: its order is looked up BEFORE the body is rounded again, since today's market or rules may
    refuse what Binance took then (a minimum notional at a lower mark, an opening SELL LIMIT outside the
    PERCENT_PRICE band of today's mark, a changed filter), and no refusal is answered for an order that
    exists. Found: answered and recorded with the parameters Binance holds. None when Binance provably has
    none and none can still arrive (older than recvWindow when the lookup was sent, not when its answer came:
    a late -2013 is Binance's word as of the request; an attempt past Binance's retention is purged, never
    sent): the resume then rounds it and sends it once."""
    outcome = _Outcome(gated.user_id, existing.client_order_id, gated.connection, {}, earlier=existing)

    def purged() -> None:
        outcome.purged = True

    try:
        asked_ms = time.time() * 1000  # before the lookup: its "not found" is as old as its request
        found = find_earlier_order(gated.client, connection_credentials(gated.connection), existing)
        if found is None:
            absent_earlier_attempt(gated.client, existing.client_order_id, _sent_by_ms(existing),
                                   time.time() * 1000, purged, looked_up_ms=asked_ms)
            return None
    except KlineoError as exc:
        outcome.failed(exc)
        raise
    outcome.params = sent_params(found)
    answer = outcome.settle(lambda: found)
    return _protected(gated, outcome.settled_record(existing), answer)


def _check_idempotency_key(value: str | None) -> str:
    if value is None:
        raise KlineoError(
            ErrorCategory.PRECONDITION_REQUIRED,
            f"Placing an order needs an {IDEMPOTENCY_HEADER} header (any new value per order, e.g. a UUID): "
            "with it, a retry after a timeout or a lost answer returns the first order instead of placing "
            "a second one, so repeating the request is always safe.",
            field=IDEMPOTENCY_HEADER,
        )
    return check_idempotency_key(value)


def place_futures_order(
    user_id: str,
    order: FuturesOrderRequest,
    idempotency_key: str | None,
    lambda_context: Any = None,
    role: str | None = None,
    position_left: str | None = None,
) -> FuturesOrderResponse:
    """Place a USDT-M order for the caller, exactly once per Idempotency-Key (see the module docstring).

    ``role``: stored on the order's record (``"position_close"`` for the close route's orders), as is
    ``position_left`` (a close's: what it leaves of the position, for a replay to answer).
    """
    key = _check_idempotency_key(idempotency_key)
    deadline = Deadline.of_invocation(lambda_context)
    with call_deadline(deadline.at):
        return _place(user_id, order, idempotent_client_order_id(user_id, key), deadline, role, position_left)


# Refusals that come before the gate values the order (or that leave its quantity unknown).
_REFUSED_BEFORE_VALUING = frozenset({"max_leverage", "quote_quantity", "symbol"})


@dataclasses.dataclass(frozen=True)
class OrderPreview:
    """What ``place_futures_order`` would do with an order: what it would send, or its refusal.

    ``order``: the request, its quote_quantity converted when the preview got that far; ``sent``: the
    order on the symbol's grid as it would reach Binance (None when refused); ``notional``: the value
    the risk gate counts (None for an order that only reduces, or one refused before it is valued).
    """

    order: FuturesOrderRequest
    connection: Connection
    sent: FuturesOrder | AlgoOrder | None = None
    refusal: KlineoError | None = None
    notional: Decimal | None = None


def _read_gated(user_id: str, order: FuturesOrderRequest) -> _Gated:
    """The connection and both kill switches in ONE consistent read: no claim will re-check them."""
    pair = (user_id, order.connection_id)
    items: dict[str, dict[str, Any]] = {}
    contexts = load_trading_contexts([pair], lambda _user, _id, item: items.update(connection=item))
    context = require_trading_context(contexts[pair])
    return _Gated(user_id, order, items["connection"], read=context)


def _valued(gated: _Gated, refusal: KlineoError | None) -> Decimal | None:
    """The gate's valuation of new exposure (``order_notional``, reading nothing the gate did not read)."""
    intent = _intent(gated.order)
    if intent.reduces or not intent.quantity:
        return None
    if refusal is not None and (refusal.field in _REFUSED_BEFORE_VALUING or refusal.code is not None):
        return None
    return order_notional(intent, gated.mark, gated.connection.max_notional_usdt)


def preview_futures_order(user_id: str, order: FuturesOrderRequest) -> OrderPreview:
    """The dry run of ``place_futures_order``: the same gate and the same ``_prepared`` step, nothing
    claimed, recorded or sent. A gate's refusal costs no Binance call, as on the real route; NOT_FOUND
    and errors that are not the order's refusal are raised."""
    gated = _read_gated(user_id, order)
    try:
        check_order(gated.context(), _intent(order))
    except KlineoError as refusal:
        return OrderPreview(order, gated.connection, refusal=refusal)
    try:
        sent = _prepared(gated)
    except KlineoError as refusal:
        if refusal.category not in _ORDER_REFUSALS:
            raise
        return OrderPreview(gated.order, gated.connection, refusal=refusal, notional=_valued(gated, refusal))
    return OrderPreview(gated.order, gated.connection, sent=sent, notional=_valued(gated, None))


def _note_read(user_id: str, record: OrderRecord, found: OrderResult) -> bool:
    """Record what a status read learned of our order (nothing when it learned nothing), unless another
    reader settled the record since it was read (``record_unsettled_outcome``: an older answer never takes
    it back); True when its executed quantity moved and was recorded."""
    now = found.to_record()
    executed = (record.result or {}).get("executed_quantity") != now["executed_quantity"]
    if executed or (record.status, record.order_id) != (found.status, found.order_id):
        if not record_order_outcome_quietly(user_id, record.client_order_id, unsettled_only=True,
                                            status=found.status, order_id=found.order_id, result=now):
            return False  # settled by the reconciler since read: its state is newer than this read's
        if record.status == STATUS_UNKNOWN:
            metrics.add_metric(name="OrdersUnknownSettled", unit="Count", value=1)
    return executed


def _query_order(record: OrderRecord | None, connection: Connection, keyed: tuple[BinanceClient, Credentials],
                 client_order_id: str, symbol: str) -> OrderResult | None:
    """Binance's state of the order (None: it holds none by that id), counted on the connection's key health
    (``note_futures_outcome``, a READ): a refusal of the key counts, any other answer clears what a read
    disproves of the count."""
    client, creds = keyed
    try:
        if record is not None and record.kind == KIND_ALGO:
            found = query_algo_order(client, creds, client_order_id)
        else:
            # An order we did not place is recorded under its Binance orderId (klineo.services.reconcile).
            foreign_id = record.order_id if record is not None and record.origin in FOREIGN_ORIGINS else None
            found = query_futures_order(client, creds, symbol, client_order_id, order_id=foreign_id)
    except KlineoError as exc:
        note_futures_outcome(connection, exc, READ)
        raise
    note_futures_outcome(connection, None, READ)
    return found


def get_futures_order_status(
    user_id: str,
    client_order_id: str,
    connection_id: str | None = None,
    symbol: str | None = None,
    lambda_context: Any = None,
) -> FuturesOrderResponse:
    """An order's state from Binance, found through the caller's own order record (or connection + symbol).

    Its Binance calls run inside the invocation's ``call_deadline``: the stops the read places record it
    (a lost one is sent again recvWindow + margin after it, ``klineo.services.protective``)."""
    with call_deadline(Deadline.of_invocation(lambda_context).at):
        return _order_status(user_id, client_order_id, connection_id, symbol)


def _order_status(user_id: str, client_order_id: str, connection_id: str | None,
                  symbol: str | None) -> FuturesOrderResponse:
    check_client_order_id(client_order_id, field="clientOrderId")
    record = get_order_record(user_id, client_order_id)
    if record is not None:
        if connection_id is not None and connection_id != record.connection_id:
            raise KlineoError(ErrorCategory.NOT_FOUND, "order not found on this connection")
        if symbol is not None and symbol != record.symbol:
            raise KlineoError(ErrorCategory.ORDER_NOT_FOUND, "order not found for this symbol")
        if record.status == STATUS_REJECTED:
            reason = (record.error or {}).get("message", "")
            raise KlineoError(
                ErrorCategory.ORDER_NOT_FOUND,
                f"Binance refused this order; it was never placed. {reason}".strip(),
            )
        connection_id, symbol = record.connection_id, record.symbol
    elif connection_id is None:
        raise KlineoError(ErrorCategory.NOT_FOUND, "order not found")
    elif symbol is None:
        raise KlineoError(
            ErrorCategory.INVALID_REQUEST,
            "symbol is required for an order that was not placed through this API",
            field="symbol",
        )
    connection = require_connection(user_id, connection_id)
    creds = connection_credentials(connection)
    client = _futures_client(connection)
    found = _query_order(record, connection, (client, creds), client_order_id, symbol)
    if found is None:
        raise KlineoError(ErrorCategory.ORDER_NOT_FOUND, "Binance has no order with this clientOrderId on "
                          "this symbol.", field="clientOrderId")
    response = futures_order_response(found, connection_id)
    if record is not None and _note_read(user_id, record, found):
        # A read that learns of a fill re-fits the stops it left (a repeated read sends nothing).
        _follow_reduction(user_id, dataclasses.replace(record, status=found.status, result=found.to_record()),
                          client, creds, connection)
    protective = arm_on_read(user_id, record, found, client, creds, connection) if record else None
    return response if protective is None else response.model_copy(update={"protective_orders": protective})
