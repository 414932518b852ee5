"""Stop-loss and take-profit attached to an entry, placed through Binance's algo service exactly once.

Shape (``POST /futures/order`` on a MARKET or LIMIT entry that opens a position):
``"stop_loss": {"price": "58000"}`` or ``{"percent": "2.5"}``, the same for ``take_profit``. A
percent is taken from the entry's average fill price: a long's stop-loss fires 2.5 % below it, its
take-profit above it (a short's the other way), rounded to the tick toward the entry. An explicit
price must lie on the protecting side of the entry's reference price (the limit price, or the mark for
MARKET), and on the symbol's tick grid, else the entry is refused before anything is sent (field
``stop_loss`` / ``take_profit``, ``stop_loss.price`` / ``take_profit.price`` off the grid).

What is placed, right after the entry filled: a STOP_MARKET (stop-loss) and a TAKE_PROFIT_MARKET
(take-profit) on the closing side, ``workingType=MARK_PRICE`` (a wick of the last price does not
fire them), for the entry's EXECUTED quantity: ``reduceOnly`` in one-way mode, the entry's
``positionSide`` in hedge mode (where Binance refuses reduceOnly). Not ``closePosition``: that
closes the whole position, including size other orders add later, while a reduce-only order for the
filled quantity protects exactly what this entry bought and can never open or flip a position.

When: a MARKET entry fills at once, so both are placed in the same request. A LIMIT entry that
rests answers ``WAITING_FOR_FILL``; ``arm_protective_orders`` places them once it has filled: on
the next status read of the entry (``arm_on_read``), or by the reconciler at the latest (the entry stays
in its unsettled index until they are placed or refused for good). Both ask the risk gate first: with
futures switched off or the connection disabled nothing is sent, and the reconciler places them once
the gate is open again. Only a FILLED entry,
or one that ended with a partial fill, is armed: a partly filled open order waits for its end.

Exactly once: each ``clientAlgoId`` is derived from the entry's clientOrderId (its first 33
characters + ``-sl`` / ``-tp``: 36 characters within Binance's ``^[\\.A-Z\\:/a-z0-9_-]{1,36}$``), and
recorded (kind ``algo``, ``role``, ``parent_client_order_id``) with a conditional write before sending:
ONE transaction (``klineo.store.order_claim.claim_protective_order``) that also checks the connection
still exists and is not being deleted. Deleting a connection winds its orders down and answers with
what it left on Binance (``klineo.services.connection_orders``); a reconciler run or a strategy turn
that read the connection before could otherwise place a stop after that answer, unlisted, on a key
nobody manages any more. So a refused write sends nothing and raises ``connection_deleting`` (final);
only the wind-down itself, holding the delete's token (``wind_down``), still records the missing stops
of the entries it settles. A second send of an unfinished record is claimed the same way.
A live strategy whose percents change re-prices the orders of the levels that changed in a new
generation (``klineo.runner.reprice``): the same derivation with the generation in base 36 after the
suffix (``-sl1``, ``-tp1``, ...; the entry's id gives up as many characters), so it too is placed once;
the entry's record counts the generations claimed (``protective_generations``). An API entry's own
orders get new generations the same way when a reduction of ours leaves less of its position than they
are for (``klineo.services.protective_resize``); its status read and replays then answer, for each role,
its latest generation still standing (``latest_states``).
A status read or a replay of the entry reads both derived records first (one BatchGetItem): one
already placed answers its recorded state with no write; only a missing one is put and sent. An
existing record that is not settled is resumed (looked up by clientAlgoId, never re-sent blindly: one
absent is sent again only once recvWindow and the settle margin have passed since the latest instant its
earlier attempt could sign its POST, ``send_by_ms``: the ``call_deadline`` that attempt ran under (the
client signs no POST after it, a retry after a 429's Retry-After or a time resync neither), else the end of
the invocation that ran it (the strategy worker's: Lambda stops it then), written with its stamp
``attempt_ms`` at its claim; without one, ``STOP_SENT_WITHIN_MS`` after the stamp),
so a retry places only what is missing and never doubles. A transient failure raises (retryable)
after the entry is recorded: repeating the request with the same Idempotency-Key places the
missing order. A definitive refusal (e.g. the trigger already crossed) is recorded and answered as REJECTED.
A refusal of the key (permission, signature, IP allow-list) or of this server's location is recorded REJECTED
too, but not for good: it is raised (not retryable: a repeat meets it again), and the next read or reconciler
run after the key works sends the stop again under its id (the second send claimed: once). Not before: one
refused for the key, armed by a caller that names the connection or its count (the order route's first
arming, a read, a replay, the reconciler, a strategy's turn), is counted on the key's health once for that
arming, however many of its stops were refused, or once for the caller's whole scope when it hands over its
own count (``klineo.services.key_health.KeyCount``: a reconciler run counts once for all the entries it arms;
a stop is an order the key must be able to place)
and then waits while that health says the key fails (``consecutive_failures``:
cleared by an answer that disproves it, ``klineo.services.key_health``: a refusal of a stop for permission
only by a call that traded; a passing test, a new key, an enable), at most
``KEY_REFUSED_RESEND_AFTER_MS`` after its last POST (nothing else may ever clear that health), so a dead key
costs a POST per period, not one per run, and the stop is sent on the first arming after it clears; one
refused for the location only once ``RESTRICTED_RESEND_AFTER_MS`` has passed since it was last sent. Until
then the recorded refusal is raised, nothing sent (its record says why it is not standing), and the
reconciler does not read the entry from Binance in between (``stops_kept_off``).
An unfinished one that Binance no longer knows once its retention has passed (``klineo.services.orders``:
it may have been placed and then cancelled or expired) is recorded UNKNOWN_PURGED, as the order route records
a purged attempt: never sent again under its id. It cannot be standing (Binance forgets no open order, and
one that fired is found), so while the entry's position stands the entry's status read, a replay of its key
(both ``answered_states``) or the reconciler places it again under a new generation's id, once
(``klineo.services.protective_resize.replace_lost``), and the entry's reads show that one; with the position
gone they show the lost one, not standing.

Cleanup: ``cancel_protective_orders`` cancels the open algo orders that close a position side of a
symbol (ours and any other reduce-only / closePosition ones, and in one-way mode any other conditional order
on the closing side, which once flat would open a position the other way) after a close; one that fails for
that order alone does not keep the others armed. The clientAlgoIds and the
sibling rule (one of an entry's protective orders fired: cancel the others) are in
``klineo.services.protective_siblings``, which the open orders' read loads without this module.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from klineo.binance import BinanceClient, Credentials, endpoints, posts_signed_by
from klineo.binance.filters import SymbolRules, get_symbol_rules
from klineo.errors import ErrorCategory, KlineoError
from klineo.models.futures import FuturesOrderRequest, ProtectiveOrderState
from klineo.observability import logger
from klineo.services.algo_orders import AlgoOrder, cancel_algo_order, submit_algo_order
from klineo.services.key_health import KEY_FAILURE_CATEGORIES, TRADE, KeyCount
from klineo.services.orders import OrderResult, query_futures_order
from klineo.services.protective_siblings import ACCOUNT_REFUSALS, ROLES, protective_client_algo_id
from klineo.services.risk import (
    CONNECTION_DELETING,
    CONNECTION_DISABLED,
    OrderIntent,
    check_order,
    deleting_refusal,
    reduces_position,
)
from klineo.services.symbol_settings import futures_client
from klineo.store.connections import Connection, TradingContext, connection_credentials
from klineo.store.order_claim import ConnectionGuard, claim_protective_order, claim_protective_resend
from klineo.store.orders import (
    FINAL_STATUSES,
    KIND_ALGO,
    NOTHING_COUNTED,
    ORIGIN_API,
    STATUS_REJECTED,
    STATUS_UNKNOWN,
    STATUS_UNKNOWN_PURGED,
    OrderRecord,
    get_order_record,
    get_order_records,
    pending_record,
    record_order_outcome_quietly,
)
from klineo.validation import plain_text, plain_text_or_none

__all__ = [
    "NOT_STANDING",
    "STOP_SENT_WITHIN_MS",
    "WAITING_FOR_FILL",
    "answered_states",
    "arm_on_read",
    "arm_protective_orders",
    "cancel_protective_orders",
    "check_protective_targets",
    "check_protective_ticks",
    "closes_position_side",
    "latest_states",
    "placed_and_refused",
    "refuse_at_gate",
    "stop_rules",
    "stops_kept_off",
]

WAITING_FOR_FILL = "WAITING_FOR_FILL"
# The states of a protective order that does not stand on Binance and is never sent again under its id:
# refused for good, or lost past Binance's retention (``_not_standing``).
NOT_STANDING = frozenset({STATUS_REJECTED, STATUS_UNKNOWN_PURGED})
# Refusals no repeat lifts but a change outside the stop does: the key fixed or replaced, this server's
# location (or the account's restriction) lifted. A stop refused so is not refused for good (``_for_good``).
_LIFTED_LATER = frozenset({*KEY_FAILURE_CATEGORIES, ErrorCategory.RESTRICTED})
# A stop refused for this server's location (HTTP 451) or the account's region (-4402), RESTRICTED, is sent
# again at most once per this period after its last POST (``_held_back``), not on every reconciler run
# (5 minutes) and runner turn: such a refusal ends only when the backend is moved or Binance lifts it (hours
# at least), so a repeat in between is a signed request refused again. Once lifted, the stop is placed
# within this period: at most 25 minutes later than a run every 5 minutes would, for a sixth of the POSTs.
RESTRICTED_RESEND_AFTER_MS = 30 * 60 * 1000
# A stop refused for the key is sent again at once when the key is shown working (its key health cleared: a
# passing test or read, an order Binance took, a new key, an enable), else at most once per this period after
# its last POST (``_held_back``): nothing else may ever clear that health (an idle account whose key was
# refused for a moment, or whose trading permission came back, with no read or order of its user), and the
# position would then stay without its stop for good. A dead key costs a POST per period, not one per run.
KEY_REFUSED_RESEND_AFTER_MS = 15 * 60 * 1000
# The longest Timeout of a function that sends stops (template.yaml: OrderReconcilerFunction's): no attempt
# signs its POST later than this after its stamp, Lambda having ended it. A resend of a record that does not
# say when its attempt's POST had to be signed by (``send_by_ms``: claimed with no deadline known, or
# written before it was stored, when the client could still sign a retry after the deadline) counts its wait
# from there: the only bound known for it, at the price of about 4 minutes before such a stop is sent again.
STOP_SENT_WITHIN_MS = 240_000


def _signing_ends_ms() -> int | None:
    """The latest instant (epoch ms) this attempt may sign its POST (``klineo.binance.posts_signed_by``: the
    ``call_deadline`` in force, after which the client signs none, else the end of the invocation sending
    it); None when neither is known."""
    at = posts_signed_by()
    return None if at is None else math.ceil(at * 1000)


def _sent_by_ms(record: OrderRecord) -> int:
    """The latest instant the record's attempt could have signed its POST: its ``send_by_ms``, else its stamp
    + ``STOP_SENT_WITHIN_MS`` (see there)."""
    return record.send_by_ms if record.send_by_ms is not None else record.attempt_ms + STOP_SENT_WITHIN_MS


def _fires_below(role: str, entry_side: str) -> bool:
    """A long's stop-loss and a short's take-profit fire below the entry; the other two above."""
    return (role == "stop_loss") == (entry_side == "BUY")


def check_protective_targets(order: FuturesOrderRequest, reference_price: Callable[[], Decimal]) -> None:
    """Refuse (before the entry is sent) an explicit trigger price on the wrong side of the entry: its own
    price, else the mark price (``reference_price``). Only the mark is quoted: the entry's price is the
    caller's own, never repeated to it."""
    for role in ROLES:
        target = getattr(order, role, None)
        if target is None or target.price is None:
            continue
        reference = reference_price()
        below = _fires_below(role, order.side)
        if (target.price >= reference) if below else (target.price <= reference):
            where = "below" if below else "above"
            entry = "the entry's price" if order.price is not None else f"the mark ({plain_text(reference)})"
            raise KlineoError(ErrorCategory.INVALID_REQUEST,
                              f"{role}.price must be {where} {entry} for a {order.side} entry",
                              field=f"{role}.price")


def check_protective_ticks(order: FuturesOrderRequest, rules: SymbolRules) -> None:
    """Refuse (before the entry is sent) an explicit trigger price off the symbol's tick grid: it is
    placed as typed, never moved (field ``stop_loss.price`` / ``take_profit.price``)."""
    for role in ROLES:
        price = order.typed_value(f"{role}.price")
        if price is not None:
            rules.exact_price(price, f"{role}.price")


def _trigger(role: str, target: dict[str, Any], entry_side: str, average: Decimal | None,
             rules: SymbolRules) -> Decimal:
    """The trigger price on the tick grid: the given price, or percent from the fill.

    Rounded toward the entry, so it fires no later than the level asked: a stop never lets the loss
    run further, a take-profit never waits for more (a long's stop-loss and a short's take-profit,
    below the entry, round up; the other two down). A given price is on the grid already (checked
    before the entry was sent), so rounding leaves it as typed.
    """
    below = _fires_below(role, entry_side)
    if target.get("price") is not None:
        return rules.round_price(Decimal(str(target["price"])), up=below)
    if average is None:  # the reason alone: what is done next is ``_not_placed``'s, by who acts on it
        raise KlineoError(ErrorCategory.UPSTREAM_UNAVAILABLE, "The entry's fill price is not known yet.")
    share = Decimal(str(target["percent"])) / 100
    return rules.round_price(average * (1 - share if below else 1 + share), up=below)


def _fill(entry: OrderRecord, client: BinanceClient, creds: Credentials) -> tuple[Decimal, Decimal | None]:
    """(executed quantity, average fill price) of the entry; the price is read back when not recorded."""
    result = OrderResult.from_record(entry.result or {})
    average = result.average_price
    if average is None and result.executed_quantity > 0:
        found = query_futures_order(client, creds, entry.symbol, entry.client_order_id)
        average = found.average_price if found is not None else None
    return result.executed_quantity, average


def _filled(entry: OrderRecord) -> bool:
    executed = Decimal(str((entry.result or {}).get("executed_quantity") or 0))
    return entry.status == "FILLED" or (entry.status in FINAL_STATUSES and executed > 0)


def _state(role: str, client_algo_id: str, result: OrderResult | None, status: str) -> ProtectiveOrderState:
    return ProtectiveOrderState(
        role=role, client_algo_id=client_algo_id, type=ROLES[role][1],
        trigger_price=plain_text_or_none(result.trigger_price) if result else None,
        quantity=plain_text_or_none(result.quantity) if result else None,
        status=result.status if result else status, algo_id=result.order_id if result else None,
    )


def _protective_order(entry: OrderRecord, role: str, target: dict[str, Any], average: Decimal | None,
                      rules: SymbolRules, quantity: Decimal) -> AlgoOrder:
    """The role's algo order closing the entry: triggered at its price, or (a trailing stop) trailing by
    its percent, activated at once (Binance: no activatePrice means the current price)."""
    side, position_side = entry.params["side"], entry.params.get("positionSide", "BOTH")
    trailing = role == "trailing_stop"
    return AlgoOrder(
        symbol=entry.symbol, side="SELL" if side == "BUY" else "BUY", type=ROLES[role][1], quantity=quantity,
        trigger_price=None if trailing else _trigger(role, target, side, average, rules),
        callback_rate=Decimal(str(target["percent"])) if trailing else None,
        reduce_only=position_side == "BOTH", position_side=position_side, working_type="MARK_PRICE",
    )


def _resume(existing: OrderRecord, client: BinanceClient, creds: Credentials,
            guard: ConnectionGuard, sending: Callable[[], None], purged: Callable[[], None]) -> OrderResult:
    """A protective order recorded earlier: its recorded state, or placed once it provably is not there
    (the second send claimed with ``guard``: never on a connection being deleted). ``sending`` is called
    once the second send is claimed, right before its POST: a failure after it is Binance's answer to it.
    ``purged`` is called when Binance no longer knows an attempt older than its retention (the order core's
    rule, ``klineo.services.orders``): its outcome can never be learned and it is never sent again."""
    if existing.settled and existing.result is not None:
        return OrderResult.from_record(existing.result).with_source("existing")

    def claim() -> None:
        # Stamped at the claim, right before the POST, never before the lookup (which may last until the
        # deadline), with the deadline this POST must be signed by (the same write): a later resume counts
        # its recvWindow wait from that.
        refusal = claim_protective_resend(existing, int(time.time() * 1000), guard, _signing_ends_ms())
        if refusal is None:
            sending()
            return
        if "connection" in refusal.failed:
            raise deleting_refusal()
        raise KlineoError(ErrorCategory.CONFLICT, "Another request is placing this protective order "
                          "right now; retry in a moment.", retryable=True)

    algo = AlgoOrder.from_params(existing.params)
    if existing.status == STATUS_REJECTED:
        # Binance refused the earlier attempt (transiently, or the key since fixed): nothing was placed; send
        # once claimed.
        claim()
        return submit_algo_order(client, creds, algo, existing.client_order_id)
    return submit_algo_order(client, creds, algo, existing.client_order_id,
                             earlier_attempt_ms=existing.attempt_ms, earlier_sent_by_ms=_sent_by_ms(existing),
                             before_resend=claim, when_purged=purged)


def _record_new(user_id: str, entry: OrderRecord, role: str, algo: AlgoOrder, algo_id: str,
                guard: ConnectionGuard) -> OrderRecord | None:
    """Record the protective order PENDING iff its key is free and ``guard`` holds (ONE transaction): None
    when recorded (it is to be sent), else the record that holds the key. ``connection_deleting`` when the
    connection is gone or being deleted: nothing recorded, nothing to send."""
    record = pending_record(
        user_id, algo_id, connection_id=entry.connection_id, symbol=entry.symbol,
        request={"role": role, "target": entry.request[role]}, params=algo.to_params(algo_id),
        attempt_ms=int(time.time() * 1000), send_by_ms=_signing_ends_ms(), kind=KIND_ALGO, role=role,
        parent_client_order_id=entry.client_order_id, origin=entry.origin,
    )
    if entry.origin != ORIGIN_API:  # a strategy's: once it fires, the reconciler books its fills in its PnL
        record = dataclasses.replace(record, booked_estimate=dict(NOTHING_COUNTED))
    refusal = claim_protective_order(record, guard)
    if refusal is None:
        return None
    if refusal.existing is not None:
        return refusal.existing  # recorded before (placed, or to resume): answered or resumed, never doubled
    if "connection" in refusal.failed:
        raise deleting_refusal()
    existing = get_order_record(user_id, algo_id)
    if existing is None:
        raise KlineoError(ErrorCategory.UPSTREAM_UNAVAILABLE, "The protective order's record could not be "
                          "written; nothing was sent.", retryable=True)
    return existing


def _arm_one(user_id: str, entry: OrderRecord, role: str, algo: AlgoOrder, client: BinanceClient,
             creds: Credentials, existing: OrderRecord | None, algo_id: str,
             guard: ConnectionGuard, health: KeyCount | None = None) -> ProtectiveOrderState:
    """Exactly once: record (unless ``existing``; guarded), send or resume, record the outcome. ``health``
    (the entry's connection's): holds back a stop refused for the key, and counts a refusal for the key of
    this POST (module docstring)."""
    if existing is None:
        existing = _record_new(user_id, entry, role, algo, algo_id, guard)
    if existing is not None and (gone := _not_standing(existing)) is not None:
        return _state(role, algo_id, None, gone)  # refused for good (e.g. trigger crossed), or lost
    if existing is not None and (held := _held_back(existing, health and health.connection)) is not None:
        raise held  # refused for the key while it still fails, or for the location lately: not sent yet
    posted, purged = [existing is None], []  # posted: True once a POST goes out (a first or claimed second)
    try:
        result = submit_algo_order(client, creds, algo, algo_id) if existing is None else _resume(
            existing, client, creds, guard, lambda: posted.append(True), lambda: purged.append(True))
    except KlineoError as exc:
        if exc.field == CONNECTION_DELETING:
            raise  # our refusal of a second send: nothing was sent, the record keeps its state
        if purged:  # settled as the order route settles a purged attempt: shown, never looked up again
            record_order_outcome_quietly(user_id, algo_id, status=STATUS_UNKNOWN_PURGED,
                                         error={**exc.to_dict(), "code": exc.code})
            logger.warning("protective order lost: Binance no longer knows it",
                           extra={"client_order_id": algo_id})
            return _state(role, algo_id, None, STATUS_UNKNOWN_PURGED)
        if exc.category == ErrorCategory.UNKNOWN_OUTCOME:
            record_order_outcome_quietly(user_id, algo_id, status=STATUS_UNKNOWN, error=exc.to_dict())
            raise
        if not any(posted):
            raise  # nothing sent (another attempt holds the claim): the record keeps its state
        # The POST itself failed definitively: nothing was placed. Refused for the symbol's status, which
        # the rules read just before still called TRADING: judged on the status read now (a halt waits).
        by_status = exc.field == "symbol" and not exc.retryable
        if by_status:
            exc = _judged(client, algo.symbol, exc, fresh=True)
        record_order_outcome_quietly(user_id, algo_id, status=STATUS_REJECTED,
                                     error={**exc.to_dict(), "code": exc.code})
        if health is not None:
            health.refused(exc, TRADE)  # the stop then waits for the key (``_held_back``)
        if exc.retryable or by_status or exc.category in _LIFTED_LATER:
            raise exc from None  # not refused for good: armed again by a later read or reconciler run
        logger.warning("protective order refused", extra={"client_order_id": algo_id, "code": exc.code})
        return _state(role, algo_id, None, STATUS_REJECTED)
    record_order_outcome_quietly(user_id, algo_id, status=result.status, order_id=result.order_id,
                                 result=result.to_record())
    return _state(role, algo_id, result, result.status)


def _not_standing(record: OrderRecord) -> str | None:
    """REJECTED for a protective order Binance refused for good, UNKNOWN_PURGED for one it no longer knows
    past its retention (its outcome never to be learned): neither is sent again. None for any other record."""
    if record.status == STATUS_UNKNOWN_PURGED:
        return STATUS_UNKNOWN_PURGED
    if record.status == STATUS_REJECTED and _for_good(record.error or {}):
        return STATUS_REJECTED
    return None


def _for_good(error: dict[str, Any]) -> bool:
    """True for a recorded refusal of the stop itself (e.g. its trigger crossed, -2021): not retryable,
    and not one a change outside the stop lifts (``_LIFTED_LATER``: the key, the location)."""
    return not error.get("retryable") and error.get("category") not in _LIFTED_LATER


def _held_back(record: OrderRecord, connection: Connection | None = None) -> KlineoError | None:
    """The recorded refusal of a stop not to be sent again yet, raised instead: one Binance refused for the
    key while the ``connection``'s key health still says the key fails (``consecutive_failures``; unknown
    without a connection: sent) and less than ``KEY_REFUSED_RESEND_AFTER_MS`` after its last POST
    (``attempt_ms``, moved by each send), or one refused for the location (RESTRICTED) less than
    ``RESTRICTED_RESEND_AFTER_MS`` after it. None when it is to be sent (any other record, the key shown
    working since, or the period passed)."""
    error = record.error or {}
    category = error.get("category")
    if record.status != STATUS_REJECTED:
        return None
    if category == ErrorCategory.RESTRICTED:
        period = RESTRICTED_RESEND_AFTER_MS
    elif category in KEY_FAILURE_CATEGORIES and connection is not None and connection.consecutive_failures:
        period = KEY_REFUSED_RESEND_AFTER_MS
    else:
        return None
    if int(time.time() * 1000) - record.attempt_ms >= period:
        return None
    return KlineoError(ErrorCategory(category), error.get("message"), field=error.get("field"),
                       code=error.get("code"), retryable=False)


def stops_kept_off(entry: OrderRecord, connection: Connection | None = None) -> bool:
    """True when arming the filled ``entry``'s stops now would send nothing: each one not at rest
    (``_at_rest``) is held back (``_held_back``, the rule its POST waits by: refused for the key while the
    ``connection``'s key health says it fails, or for the location lately). The reconciler then does not read
    the entry from Binance before one is due: a filled entry changes no more, and its fills are stored once
    its stops are placed. One BatchGetItem."""
    if not _filled(entry):
        return False
    ids, recorded, states = _recorded_states(entry.user_id, entry)
    missing = [recorded.get(ids[role]) for role, state in states.items() if state is None]
    return bool(missing) and all(r is not None and _held_back(r, connection) is not None for r in missing)


_RoleStates = tuple[dict[str, str], dict[str, OrderRecord], dict[str, ProtectiveOrderState | None]]


def _recorded_states(user_id: str, entry: OrderRecord, generation: int = 0, *,
                     read: bool = True) -> _RoleStates:
    """Per role of the filled ``entry``'s stops: its clientAlgoId, its record (one BatchGetItem; none read
    without ``read``) and its state at rest (``_at_rest``: None when it is still to be armed)."""
    ids = {role: protective_client_algo_id(entry.client_order_id, role, generation)
           for role in entry.protective_targets}
    recorded = get_order_records(user_id, list(ids.values())) if read else {}
    return ids, recorded, {role: _at_rest(role, recorded.get(ids[role])) for role in ids}


def _at_rest(role: str, record: OrderRecord | None) -> ProtectiveOrderState | None:
    """The state of a protective order already placed (or refused for good, or lost), else None (to arm).

    Read from its record alone: nothing is sent and nothing written for it.
    """
    if record is None:
        return None
    if record.settled and record.result is not None:
        result = OrderResult.from_record(record.result)
        return _state(role, record.client_order_id, result, result.status)
    gone = _not_standing(record)
    return None if gone is None else _state(role, record.client_order_id, None, gone)


def _check_gate(connection: Connection, entry: OrderRecord, wind_down: str | None) -> None:
    """The one risk gate, asked for the entry's protective orders as the reducing orders they are: no
    kill switch, limit or futures switched off stops them; a disabled connection or a delete still do.
    The delete's own wind-down (``wind_down``: its token) passes the delete's gate: its token is checked
    with each order's record write."""
    if wind_down is not None:
        connection = connection.model_copy(update={"deleting_since": None})
    side, position_side = entry.params.get("side", "BUY"), entry.params.get("positionSide", "BOTH")
    check_order(TradingContext(connection, user_kill_switch=False, global_kill_switch=False), OrderIntent(
        symbol=entry.symbol, side="SELL" if side == "BUY" else "BUY", type="STOP_MARKET",
        quantity=Decimal(0), reduce_only=position_side == "BOTH", position_side=position_side))


def refuse_at_gate(connection: Connection, entry: OrderRecord, role: str) -> None:
    """Raise the risk gate's refusal of ``entry``'s ``role`` on ``connection`` as an arming raises it
    (``_not_placed``, naming the gate), when the gate refuses it; nothing is read or sent."""
    try:
        _check_gate(connection, entry, None)
    except KlineoError as exc:
        raise _not_placed(entry, role, exc) from None


def arm_protective_orders(
    user_id: str, entry_record: OrderRecord, client: BinanceClient, creds: Credentials, *,
    first_arming: bool = False, connection: Connection | None = None, generation: int = 0,
    wind_down: str | None = None, key_count: KeyCount | None = None,
) -> list[ProtectiveOrderState]:
    """Place the entry's stop-loss / take-profit once it has filled (see the module docstring).

    Their records are read first (one BatchGetItem of the derived ids): one placed already answers
    its recorded state, only a missing or unfinished one is armed. ``first_arming``: the entry was
    placed by this very call, so none can exist and the read is skipped. ``connection``: its key health
    counts a refusal of the key, once for the arming (``key_count``: the caller's own count, e.g. a
    reconciler run's, counted once for all its armings; the strategy's first arming names no connection, only
    its count), and ``key_count``'s connection holds back a stop refused for it; asked through
    the risk gate before anything missing is sent, unless ``first_arming`` (the entry's own claim passed it),
    by the callers that arm later than the entry's own
    request (a replay, a status read, the reconciler); a refusal raises it, not retryable, its message saying
    the entry stands and which of them was not placed (``_not_placed``: a 409 alone would read as nothing
    placed). ``generation``: the
    re-priced orders of a live strategy's position (their own clientAlgoIds, ``protective_client_algo_id``).
    ``wind_down``: the token of the delete whose wind-down arms them (module docstring).
    Returns their states (WAITING_FOR_FILL while the entry has not filled). Raises a retryable
    KlineoError when one could not be placed for a transient reason (the others are placed first) or for a
    halt of the symbol (field ``symbol``; the others are not sent after it), a final one naming
    ``connection_deleting`` when the connection is being deleted (nothing sent), or a final one naming
    ``symbol`` when its contract ended or Binance no longer lists it (``_judged``: no stop can ever be
    placed on it; the others are not sent after it either).
    """
    targets = entry_record.protective_targets
    if not _filled(entry_record):
        return [_state(role, protective_client_algo_id(entry_record.client_order_id, role, generation), None,
                       WAITING_FOR_FILL) for role in targets]
    ids, recorded, states = _recorded_states(user_id, entry_record, generation, read=not first_arming)
    if all(states.values()):
        return [state for state in states.values() if state is not None]
    try:
        if connection is not None and not first_arming:  # the entry's own claim just passed the gates
            _check_gate(connection, entry_record, wind_down)  # its refusal names the entry too
        rules = get_symbol_rules(client, entry_record.symbol)  # e.g. halted since the entry: not placed yet
        quantity, average = _fill(entry_record, client, creds)
    except KlineoError as exc:
        missing = next(role for role, state in states.items() if state is None)
        raise _not_placed(entry_record, missing, _judged(client, entry_record.symbol, exc)) from None
    guard = ConnectionGuard(user_id, entry_record.connection_id, wind_down)
    health = key_count or (None if connection is None else KeyCount(connection))
    failure: tuple[str, KlineoError] | None = None
    for role in (role for role, state in states.items() if state is None):
        try:
            algo = _protective_order(entry_record, role, targets[role], average, rules, quantity)
            states[role] = _arm_one(user_id, entry_record, role, algo, client, creds, recorded.get(ids[role]),
                                    ids[role], guard, health)
        except KlineoError as exc:
            if failure is None or exc.field == CONNECTION_DELETING:
                failure = (role, exc)
            if exc.field == "symbol":
                break  # its status refused this one (read again once): the others wait with it, unsent
    if failure is not None:
        role, exc = failure
        raise _not_placed(entry_record, role, _judged(client, entry_record.symbol, exc))
    return [state for state in states.values() if state is not None]


def stop_rules(client: BinanceClient, symbol: str) -> SymbolRules:
    """``get_symbol_rules`` for placing stops on ``symbol``: a refusal for its status judged as the arming
    judges it (``_judged``): final when its contract ended or Binance no longer lists it, else retryable."""
    try:
        return get_symbol_rules(client, symbol)
    except KlineoError as exc:
        raise _judged(client, symbol, exc) from None


def _judged(client: BinanceClient, symbol: str, exc: KlineoError, *, fresh: bool = False) -> KlineoError:
    """A failure to place stops that names the symbol (its status refused them, docs/binance-facts.md §15)
    judged by the tick's one status rule (``klineo.runner.candles.status_refusal``): the contract ended or
    Binance no longer lists it, that refusal, final (not retryable): no stop can ever be placed; a halt (or a
    symbol trading again), ``exc`` retryable: they are placed once it trades. Any other failure as it is.
    The status judged is at most ``STATUS_MAX_AGE_S`` old (the one the rules read just refused, shared by
    the container): the entries of one symbol read it once, not once each (a reconciler run's backlog).
    ``fresh``: read now instead, for Binance's own refusal of a stop whose rules read TRADING (the cached
    status predates the halt or the end; the read refreshes it for the container's later callers)."""
    if exc.field != "symbol":
        return exc
    from klineo.runner.candles import status_refusal  # only a failure naming the symbol loads the rule

    judged = status_refusal(client, symbol, exc, fresh=fresh)
    if judged is not exc and judged.field == "symbol":
        return KlineoError(judged.category, judged.message, field="symbol", code=exc.code)
    return KlineoError(exc.category, exc.message, field="symbol", retry_after=exc.retry_after, retryable=True,
                       code=exc.code)


# What is done next about a stop not placed yet, by who acts on it (an API caller, or a strategy's runner,
# which has no request to repeat and tries again by itself) and whether its POST went unanswered (then it is
# looked up first, never sent twice): for an API caller the advice of ``_not_placed``'s error, in place of its
# reason's own; for a strategy the end of its reason, which its events tell (``KlineoError.trader_message``).
_NEXT_STEP = {
    (True, False): "Repeat the request with the same Idempotency-Key to place it.",
    (True, True): ("Repeat the request with the same Idempotency-Key: it is looked up first and placed only "
                   "if Binance does not have it."),
    (False, False): "It is tried again on the strategy's next run.",
    (False, True): "It is looked up on the strategy's next run and placed only if Binance does not have it.",
}


def _not_placed(entry: OrderRecord, role: str, exc: KlineoError) -> KlineoError:
    """The failure of arming ``role``, its field kept: final on a connection being deleted or a symbol that
    will never trade again (``_judged``: field symbol), neither ever placed; retryable when the failure is
    transient, with what is done next (``_NEXT_STEP``) as its advice instead of the reason's own (``reason``:
    a repeat with the same key resumes it, an unknown outcome looked up first; a strategy's entry has no
    request to repeat: its runner tries again by itself on the next run, which its reason ends with, as its
    event log says it: ``KlineoError.trader_message``); any
    other refusal (the key, the server's location, a disabled connection) comes again on a repeat: not
    retryable, placed once it is lifted (a disabled connection's: once it is enabled again, by the reconciler
    or a repeat)."""
    head = f"The entry {entry.client_order_id} is {entry.status}, but"
    reason = exc.reason if exc.reason.endswith((".", "!", "?")) else f"{exc.reason}."  # one sentence
    if exc.field == CONNECTION_DELETING or (exc.field == "symbol" and not exc.retryable):
        return KlineoError(exc.category, f"{head} its {role} was not placed: {reason}", field=exc.field)
    if not (exc.retryable or exc.category.transient):
        once = ("the connection is enabled again" if exc.field == CONNECTION_DISABLED else
                "the key works again" if exc.category in KEY_FAILURE_CATEGORIES else "Binance accepts it")
        return KlineoError(exc.category, f"{head} its {role} was not placed: {reason} Until that is resolved "
                           f"the position has no {role}; it is placed once {once}.", field=exc.field,
                           retryable=False)
    unknown, api = exc.category == ErrorCategory.UNKNOWN_OUTCOME, entry.origin == ORIGIN_API
    what = f"Binance did not confirm its {role}" if unknown else f"its {role} could not be placed yet"
    said, step = f"{head} {what}: {reason}", _NEXT_STEP[api, unknown]
    return KlineoError(exc.category, said if api else f"{said} {step}", advice=step if api else None,
                       field=exc.field, retry_after=exc.retry_after, retryable=True)


def closes_position_side(row: dict[str, Any], position_side: str) -> bool:
    """True for an open algo order that closes this position side (reduce-only, closePosition, or hedge)."""
    side, held = str(row.get("side", "")), str(row.get("positionSide") or "BOTH")
    flagged = row.get("reduceOnly") is True or row.get("closePosition") is True
    return held == position_side and reduces_position(side, held, flagged)


def _stops_closed_side(row: dict[str, Any], position_side: str, closing_side: str) -> bool:
    """True for an open algo order a close of ``position_side`` by a ``closing_side`` order leaves standing
    for nothing: one that closes that side (``closes_position_side``), and in one-way mode any conditional
    order on ``closing_side`` (a SELL stop of a long) even without reduceOnly: once flat it would open a
    position the other way. One on the other side (a BUY stop above a long) was never the position's stop."""
    if closes_position_side(row, position_side):
        return True
    one_way = position_side == "BOTH" and str(row.get("positionSide") or "BOTH") == "BOTH"
    return one_way and str(row.get("side", "")) == closing_side


def _placed_by(row: dict[str, Any], placed_by: int | None) -> bool:
    """True when the open algo order ``row`` was created no later than ``placed_by`` (Binance's ms; None:
    any): one created after a close filled guards a position opened since, not the one closed."""
    created = row.get("createTime")
    return placed_by is None or not isinstance(created, int) or created <= placed_by


def cancel_protective_orders(
    user_id: str, connection: Connection, symbol: str, position_side: str, closing_side: str,
    placed_by: int | None = None,
) -> list[OrderResult]:
    """Cancel the open algo orders a close of ``position_side`` of ``symbol`` by a ``closing_side`` order
    leaves standing for nothing (``_stops_closed_side``; with ``placed_by``, those Binance created by then:
    ``_placed_by``); our records get the outcome. A cancel that fails for that order alone does not keep the
    others armed: they are cancelled, then its error is raised; one failing for the account
    (``ACCOUNT_REFUSALS``) is raised at once, as every further call would meet it."""
    client, creds = futures_client(connection), connection_credentials(connection)
    cancelled, failed = [], None
    for row in endpoints.futures_open_algo_orders(client, creds, symbol):
        if not (_stops_closed_side(row, position_side, closing_side) and _placed_by(row, placed_by)):
            continue
        try:
            result = cancel_algo_order(client, creds, str(row.get("clientAlgoId", "")))
        except KlineoError as exc:
            if exc.category in ACCOUNT_REFUSALS:
                raise
            failed = failed or exc
            continue
        if get_order_record(user_id, result.client_order_id) is not None:
            record_order_outcome_quietly(user_id, result.client_order_id, status=result.status,
                                         order_id=result.order_id, result=result.to_record())
        cancelled.append(result)
    if failed is not None:
        raise failed
    return cancelled


# A re-placed order in one of these states no longer stands for its role (the one before it is shown).
_GONE = frozenset({"CANCELED", "EXPIRED", STATUS_REJECTED})


def placed_and_refused(states: Iterable[ProtectiveOrderState], roles: Iterable[str],
                       not_standing: frozenset[str] = NOT_STANDING) -> tuple[set[str], set[str]]:
    """(roles placed, roles refused for good or lost) of a re-placing of ``roles``: each role placed replaces
    its own old order, only a refused one keeps its own (a refused take-profit never keeps the stop-loss sized
    for more than is left); the API entries' (``protective_resize``) and the strategies' (``runner.reprice``)
    rule."""
    refused = {state.role for state in states if state.status in not_standing}
    return set(roles) - refused, refused


def latest_states(user_id: str, entry: OrderRecord,
                  states: list[ProtectiveOrderState]) -> list[ProtectiveOrderState]:
    """The entry's protective orders as the trader sees them: for each role, its latest generation
    re-placed for what a reduction left (``klineo.services.protective_resize``) that is not gone (cancelled,
    expired, refused), else ``states`` (its first orders'). One BatchGetItem when it was ever re-placed."""
    generations = entry.protective_generations or 1
    if generations <= 1 or entry.origin != ORIGIN_API:
        return states
    ids = {(role, g): protective_client_algo_id(entry.client_order_id, role, g)
           for role in ROLES for g in range(1, generations)}
    records = get_order_records(user_id, list(ids.values()))
    shown = []
    for state in states:
        found = (records.get(ids[state.role, g]) for g in range(generations - 1, 0, -1))
        latest = next((r for r in found if r is not None and r.settled and r.result is not None
                       and r.status not in _GONE), None)
        result = OrderResult.from_record(latest.result) if latest is not None and latest.result else None
        shown.append(state if latest is None or result is None
                     else _state(state.role, latest.client_order_id, result, result.status))
    return shown


def arm_on_read(
    user_id: str, entry_record: OrderRecord, found: OrderResult, client: BinanceClient, creds: Credentials,
    connection: Connection | None = None,
) -> list[ProtectiveOrderState] | None:
    """On a status read of an entry: arm its stop-loss / take-profit once it has filled (again, in a new
    generation, one lost past Binance's retention while its position stands, with ``connection``:
    ``klineo.services.protective_resize.replace_lost``); their states.

    None when the entry asked for none. A failure is logged, never raised: the read answers the
    entry's state, and the next read (or the reconciler) places what is missing.
    """
    if not entry_record.protective_targets:
        return None
    entry = dataclasses.replace(entry_record, status=found.status, result=found.to_record())
    try:
        states = arm_protective_orders(user_id, entry, client, creds, connection=connection)
    except KlineoError as exc:
        logger.warning("protective orders not placed on read",
                       extra={"client_order_id": entry.client_order_id, "category": str(exc.category)})
        return None
    if connection is None:
        return latest_states(user_id, entry, states)
    return answered_states(user_id, entry, states, client, creds, connection)


def answered_states(user_id: str, entry: OrderRecord, states: list[ProtectiveOrderState],
                    client: BinanceClient, creds: Credentials, connection: Connection
                    ) -> list[ProtectiveOrderState]:
    """The filled ``entry``'s stops as a status read (``arm_on_read``) or a replay of its key answers them,
    ``states`` being what arming them found: one lost past Binance's retention is first placed again, in a
    new generation, while its position stands (``klineo.services.protective_resize.replace_lost``), then
    each role's latest order standing (``latest_states``). A failure to place it is logged, never raised:
    the answer shows the lost one (not standing), and the next read or reconciler run resumes it."""
    from klineo.services.protective_resize import replace_lost  # imports this module

    try:
        entry = replace_lost(user_id, entry, states, client, creds, connection)
    except KlineoError as exc:
        logger.warning("lost protective order not placed again on read",
                       extra={"client_order_id": entry.client_order_id, "category": str(exc.category)})
    return latest_states(user_id, entry, states)
