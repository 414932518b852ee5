"""An API entry's stop-loss / take-profit follow what is left of its position after a reduction of ours.

Why: an entry's protective orders (``klineo.services.protective``) are for its EXECUTED quantity,
reduce-only in one-way mode and closing the entry's positionSide in hedge mode, and Binance refuses a
reduce-only or closing order larger than the position (-2022, docs/binance-facts.md §4; whether it trims
a TRIGGERED conditional order instead is undocumented, and the simulator takes the strict reading: the
algo ends REJECTED). So once the trader took part of the position off through us, a stop still sized for
the whole entry would leave what is left unprotected when it fires. The runner does the same for a
strategy's own stops (``klineo.runner.reprice``, "What is left"); this module does it for API entries.

When (``follow_reduction``): after a reducing order of ours placed through the API (origin ``api``,
a regular order: reduce-only in one-way mode, SELL LONG / BUY SHORT in hedge mode, the close route's
orders included) executed in whole or in part: on its own answer (a MARKET, or a replay of its key), on
a status read of it, and when the reconciler settles it (``klineo.services.reconcile``, which keeps the
order in its unsettled index until the re-placing is done or refused for good, so a transient failure or
a crash is resumed on its next run). A position reduced any other way (a trade on Binance's own apps, a
strategy's order, another entry's fired stop, a partial liquidation) is found by the reconciler's cleanup
(an API stop for more than its position holds) and re-fitted by ``refit_position`` the same way.

What (``refit_position``), for the (connection, symbol, position side) the order reduced:
1. The open algo orders of the symbol that close that side (``GET /fapi/v1/openAlgoOrders``, weight 1)
   whose records are API entries' stop-loss / take-profit (a strategy's are left to the runner: their
   records' ``origin`` is the strategy's id). None: nothing else is read or sent.
2. L = what is left on that side, read from Binance (``GET /fapi/v3/positionRisk``, weight 5, or the
   reconciler's read of this run; never computed from our records), rounded DOWN to the MARKET_LOT_SIZE
   step (the lot Binance checks a STOP_MARKET / TAKE_PROFIT_MARKET against), never up.
3. For each entry, each role's armed order is its latest generation still open (clientAlgoIds
   ``protective_client_algo_id``: "-sl", "-sl1", ...). Those for more than L are re-placed for L at the
   SAME trigger prices in a new generation: claimed first on the entry's record (``protective_resize``:
   generation, quantity, roles with their triggers, the clientAlgoIds it replaces; written only while
   ``protective_generations`` is as read, so two settles never both claim), placed through the risk gate
   as reducing orders and recorded exactly as the arming path does (``arm_protective_orders`` with the
   generation), then the claim is ended and only then the replaced orders cancelled. A crash anywhere
   resumes: an unfinished claim for at most L is placed again (only what is missing; each order is
   looked up by clientAlgoId, never sent twice), one for more than L is dropped (what it placed
   cancelled) and claimed anew; older generations still open next to one placed in full (the entry's
   ``protective_resized``) are cancelled. An attempt whose claim a newer one dropped meanwhile (the
   position shrank again) cancels what it placed. Orders already for at most L are left alone.
4. A role refused for good (e.g. -2021, the mark already crossed its trigger) or lost: that role's old
   order stays, the roles placed still replace theirs (a refused take-profit never keeps the stop-loss
   sized for more than is left), and for a refusal ``protective_refused_quantity`` keeps that L from being
   tried again. A lost one (its attempt unanswered past Binance's retention) was never refused: its old
   order, still for more than L, is re-placed for L again by the next settle or reconciler run, and a
   claim with a lost role records no refusal (the one refused is refused again then, and recorded). A
   transient failure keeps the claim and the old orders; the next settle or reconciler run resumes it.

Several entries built one position: each entry's orders are capped at L independently (a product
decision). Each stop can then close all that is left when it fires; the nearest fires first, and the
others are then orders of a gone position, cancelled as today (the reconciler cancels our protective
orders on a side whose position reads 0).

A stop LOST (``replace_lost``): one whose attempt's outcome stayed unknown until Binance's retention had
passed is recorded UNKNOWN_PURGED (``klineo.services.protective``). It cannot be standing: Binance forgets
only an order that ended CANCELED or EXPIRED without a fill (docs/binance-facts.md §9), never an open one,
and one that fired has a fill and is found. So while the entry's position stands (read from Binance: a side
of 0, or a one-way position flipped past zero, has nothing left to guard, nor has dust below the symbol's
MARKET minimum, which no stop can guard and which only shrinks as this entry's; the entry's record keeps
that, ``position_gone_ms``, so no later read asks Binance again) it is re-placed, at its trigger, for its
quantity capped at L, in a new generation claimed as above (``replaces``: the role's earlier
generations; one still open, e.g. the order a lost re-fit was to replace, is cancelled once the new one is
placed), once: a role is re-placed only while its LATEST generation's order is the lost one (a first order,
or, once the entry's orders were re-placed, any generation's), the claim is taken only while
``protective_generations`` is as read, and an unfinished claim is resumed, never claimed anew. The entry's
reads then show the re-placed order (``latest_states``). By the entry's status read (``arm_on_read``) or
the reconciler's arming (``arm_entry_stops``), whichever comes first.

L = 0: nothing is sent here; the existing cleanup cancels the orders of a gone position (the close
route's own after a full close, the reconciler's at the latest). A close route's order that FILLED leaving
less than one MARKET step is not followed at all: that route cancels the side's orders anyway.
0 < L below the symbol's minimum (dust): the orders are KEPT, not cancelled. A re-placing is impossible
(Binance refuses an order below the minimum); cancelling would leave the dust certainly unguarded, while
a kept stop is at worst refused when it fires (the same unguarded dust) and closes it if Binance trims a
triggered reduce-only order.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from klineo.binance import BinanceClient, Credentials, endpoints
from klineo.binance.filters import get_symbol_rules
from klineo.errors import KlineoError
from klineo.models.futures import ProtectiveOrderState
from klineo.observability import logger
from klineo.services.key_health import KeyCount
from klineo.services.position_rows import open_position_rows, position_number
from klineo.services.protective import (
    arm_protective_orders,
    cancel_protective_orders,
    closes_position_side,
    placed_and_refused,
    refuse_at_gate,
    stop_rules,
)
from klineo.services.protective_siblings import protective_client_algo_id
from klineo.services.risk import closed_for_every_order, params_reduce
from klineo.services.strategy_protection import disarm_protective_orders
from klineo.store.aws import STORAGE_ERRORS
from klineo.store.connections import Connection
from klineo.store.orders import (
    CLOSE_ROLE,
    KIND_ALGO,
    KIND_ORDER,
    ORIGIN_API,
    STATUS_UNKNOWN_PURGED,
    OrderRecord,
    claim_protective_resize,
    end_protective_resize,
    get_order_record,
    get_order_records,
    record_position_gone,
)
from klineo.validation import plain_text

__all__ = ["arm_entry_stops", "follow_reduction", "follow_settled", "leaves_a_part", "reduced_by",
           "refit_after", "refit_position", "replace_lost"]

# The roles an API entry's request can ask for (a trailing stop is a strategy's only).
_ROLES = ("stop_loss", "take_profit")


@dataclasses.dataclass(frozen=True)
class _Side:
    """One position side of a symbol on a connection, and L: what is left of it, on the step grid."""

    user_id: str
    connection: Connection
    client: BinanceClient
    creds: Credentials
    left: Decimal
    minimum: Decimal
    # The count a refusal of the key of its stops goes on (a reconciler run's: once a run); None: one each.
    key_count: KeyCount | None = None


def reduced_by(record: OrderRecord) -> bool:
    """True when ``record`` is a regular order placed through the API that reduced a position (reduce-only,
    or closing a hedge side) and executed something."""
    executed = Decimal(str((record.result or {}).get("executed_quantity") or 0))
    return (record.kind == KIND_ORDER and record.origin == ORIGIN_API and executed > 0
            and params_reduce(record.params))


def refit_after(user_id: str, record: OrderRecord, client: BinanceClient, creds: Credentials,
                connection: Connection, key_count: KeyCount | None = None) -> None:
    """Re-fit the protective orders of the side ``record`` reduced, when it is such an order (module
    docstring); raises KlineoError when one could not be re-placed yet (retryable) or was not sent."""
    if reduced_by(record) and not _closed_in_full(record, client):
        refit_position(user_id, connection, client, creds, record.symbol, record.position_side,
                       key_count=key_count)


def follow_settled(user_id: str, record: OrderRecord, client: BinanceClient, creds: Credentials,
                   connection: Connection, key_count: KeyCount | None = None) -> None:
    """The reconciler's follow-up of a reducing order it settles: ``refit_after``; for a close route's order
    that closed the position in full (``_closed_in_full``), that route's cleanup once more (the stops it
    leaves standing that Binance created by the time it filled, ``cancel_protective_orders``): the route
    logs a cancel that failed and goes on, so nobody else would cancel one that is not an entry's stop-loss /
    take-profit (the reconciler's flat-side cleanup cancels only those). Raises KlineoError while a transient
    failure keeps one standing (the order then stays in the reconciler's index, the next run resumes it);
    one for good (e.g. the key refused) is logged and left. ``key_count``: the reconciler run's
    (``_Side``)."""
    if not (reduced_by(record) and _closed_in_full(record, client)):
        refit_after(user_id, record, client, creds, connection, key_count)
        return
    filled_at = (record.result or {}).get("update_time")
    try:
        cancel_protective_orders(user_id, connection, record.symbol, record.position_side,
                                 str(record.params.get("side", "")),
                                 placed_by=int(filled_at) if filled_at is not None else record.attempt_ms)
    except KlineoError as exc:
        if exc.transient:
            raise
        logger.warning("stops left standing after a close not cancelled", extra={
            "client_order_id": record.client_order_id, "category": str(exc.category)})


def _closed_in_full(record: OrderRecord, client: BinanceClient) -> bool:
    """True for a close route's order that FILLED leaving less than one MARKET step: that route cancels the
    side's protective orders itself (``klineo.services.position_close``), so nothing is re-fitted for them
    (should it not get there, or a cancel fail, the reconciler does it again when it settles the order:
    ``follow_settled``)."""
    return (record.role == CLOSE_ROLE and record.status == "FILLED"
            and not leaves_a_part(client, record.symbol, record.position_left))


def leaves_a_part(client: BinanceClient, symbol: str, position_left: str | None) -> bool:
    """True when a close's ``position_left`` is at least one MARKET step of ``symbol``: a real part of the
    position is still open and its stops guard it; less is dust (cached exchange info, no request)."""
    if not position_left:
        return False
    step, _, _ = get_symbol_rules(client, symbol).lot_for(market_order=True)
    return Decimal(position_left) >= step


def follow_reduction(user_id: str, record: OrderRecord, client: BinanceClient, creds: Credentials,
                     connection: Connection) -> None:
    """``refit_after`` on a reducing order's answer or status read: a failure, Binance's or storage's, is
    logged, never raised (the order executed: its outcome is answered; the reconciler resumes the
    re-placing)."""
    try:
        refit_after(user_id, record, client, creds, connection)
    except KlineoError as exc:
        logger.warning("protective orders not re-fitted after a reduction", extra={
            "client_order_id": record.client_order_id, "category": str(exc.category)})
    except STORAGE_ERRORS as exc:
        logger.warning("protective orders not re-fitted after a reduction", extra={
            "client_order_id": record.client_order_id, "category": "storage", "error": type(exc).__name__})


def refit_position(user_id: str, connection: Connection, client: BinanceClient, creds: Credentials,
                   symbol: str, position_side: str, held: Decimal | None = None,
                   key_count: KeyCount | None = None) -> None:
    """Re-place for what is left of the side the API entries' stops guarding it that are for more (module
    docstring, steps 1-4). Raises the first failure after every entry was tried. ``held``: the side's size
    when the caller has just read it from Binance (the reconciler's run, once per connection), else read
    here."""
    rows = [r for r in endpoints.futures_open_algo_orders(client, creds, symbol)
            if closes_position_side(r, position_side)]
    guards = _api_guards(user_id, [str(r.get("clientAlgoId", "")) for r in rows])
    if not guards:
        return
    entries = get_order_records(user_id, sorted(guards))
    rules = stop_rules(client, symbol)  # a halt is retryable; an ended contract final
    _, minimum, _ = rules.lot_for(market_order=True)
    held = _held(connection, symbol, position_side) if held is None else held
    side = _Side(user_id, connection, client, creds, rules.round_quantity(held, market_order=True), minimum,
                 key_count)
    if held == 0 or side.left < minimum:
        return  # gone: the cleanup cancels them; dust: kept (module docstring)
    failure: KlineoError | None = None
    for parent, open_guards in guards.items():
        entry = entries.get(parent)
        if entry is None or entry.origin != ORIGIN_API:
            continue
        try:
            _refit_entry(side, entry, open_guards)
        except KlineoError as exc:
            failure = failure or exc
    if failure is not None:
        raise failure


def _api_guards(user_id: str, client_algo_ids: list[str]) -> dict[str, dict[str, OrderRecord]]:
    """Among these open algo orders, the API entries' stop-loss / take-profit, by entry: {clientAlgoId:
    record}."""
    guards: dict[str, dict[str, OrderRecord]] = {}
    for algo_id, record in get_order_records(user_id, client_algo_ids).items() if client_algo_ids else ():
        if (record.kind == KIND_ALGO and record.role in _ROLES and record.origin == ORIGIN_API
                and record.parent_client_order_id):
            guards.setdefault(record.parent_client_order_id, {})[algo_id] = record
    return guards


def _held(connection: Connection, symbol: str, position_side: str) -> Decimal:
    """What Binance holds on that side of the symbol (its size, whatever the sign)."""
    return abs(_position_amount(connection, symbol, position_side))


def _position_amount(connection: Connection, symbol: str, position_side: str) -> Decimal:
    """Binance's positionAmt of that side of the symbol (negative for a one-way short; weight 5)."""
    return sum((position_number(r, "positionAmt") for r in open_position_rows(connection, symbol)
                if str(r.get("positionSide") or "BOTH") == position_side), Decimal(0))


def _entry_held(connection: Connection, entry: OrderRecord) -> Decimal:
    """The size of the position the entry opened as Binance holds it now: 0 for a one-way position flipped
    past zero since (the one the entry opened is gone)."""
    position_side = str(entry.params.get("positionSide") or "BOTH")
    amount = _position_amount(connection, entry.symbol, position_side)
    flipped = (amount < 0) if entry.params.get("side") == "BUY" else (amount > 0)
    return Decimal(0) if position_side == "BOTH" and flipped else abs(amount)


def _armed(entry: OrderRecord, open_guards: dict[str, OrderRecord]
           ) -> tuple[dict[str, OrderRecord], list[str]]:
    """(role -> its latest generation still open, the older ones still open next to a latest one that a
    re-placing placed in full: superseded, to cancel)."""
    generations, finished = entry.protective_generations or 1, entry.protective_resized or 0
    of_id = {protective_client_algo_id(entry.client_order_id, role, g): (role, g)
             for g in range(generations) for role in _ROLES}
    ranked = sorted((of_id[i][1], of_id[i][0], i) for i in open_guards if i in of_id)
    latest = {role: (g, open_guards[algo_id]) for g, role, algo_id in ranked}  # the highest generation wins
    older = [algo_id for _, role, algo_id in ranked
             if latest[role][1].client_order_id != algo_id and latest[role][0] <= finished]
    return {role: record for role, (_, record) in latest.items()}, older


def _refit_entry(side: _Side, entry: OrderRecord, open_guards: dict[str, OrderRecord]) -> None:
    """One entry's orders re-fitted to L: resume an unfinished claim, drop one for more than L, cancel
    superseded generations, or claim a new one for the roles sized above L."""
    claim = entry.protective_resize
    if claim and Decimal(str(claim["quantity"])) > side.left:
        dropped = _claimed_ids(entry, claim)
        _disarm(side, dropped)
        if not end_protective_resize(side.user_id, entry.client_order_id, int(claim["generation"]),
                                     placed=False):
            return  # a newer claim exists: its settle re-fits this entry
        entry = dataclasses.replace(entry, protective_resize=None)
        open_guards = {i: r for i, r in open_guards.items() if i not in dropped}
        claim = None
    if claim:
        _place(side, entry, claim)
        return
    latest, older = _armed(entry, open_guards)
    _disarm(side, older)  # a finished re-placing's replaced orders whose cancel was lost
    due = {role: record for role, record in latest.items() if record.sent_quantity > side.left}
    if not due or entry.protective_refused_quantity == plain_text(side.left):
        return
    seen = entry.protective_generations or 1
    claim = {"generation": seen, "quantity": plain_text(side.left),
             "roles": {role: record.params["triggerPrice"] for role, record in due.items()},
             "replaces": sorted(record.client_order_id for record in due.values())}
    if claim_protective_resize(side.user_id, entry.client_order_id, seen, claim):
        _place(side, dataclasses.replace(entry, protective_generations=seen + 1), claim)


def _claimed_ids(entry: OrderRecord, claim: dict[str, Any]) -> list[str]:
    generation = int(claim["generation"])
    return [protective_client_algo_id(entry.client_order_id, role, generation) for role in claim["roles"]]


def _place(side: _Side, entry: OrderRecord, claim: dict[str, Any]) -> None:
    """Place the claim's roles (only what is missing), end the claim, then cancel what they replace; a role
    refused for good (or lost): its own old order stays, the quantity is remembered, the roles placed still
    replace theirs (a refused take-profit never keeps the stop-loss sized for more than is left)."""
    generation = int(claim["generation"])
    sized = dataclasses.replace(
        entry, request={role: {"price": str(trigger)} for role, trigger in claim["roles"].items()},
        result={**(entry.result or {}), "executed_quantity": str(claim["quantity"])})
    states = arm_protective_orders(side.user_id, sized, side.client, side.creds, connection=side.connection,
                                   generation=generation, key_count=side.key_count)
    placed, refused = placed_and_refused(states, claim["roles"])
    lost = {state.role for state in states if state.status == STATUS_UNKNOWN_PURGED}
    if refused:
        _disarm(side, _claimed_ids(entry, {**claim, "roles": sorted(refused)}))
        logger.warning("protective orders refused for what is left of the position",
                       extra={"client_order_id": entry.client_order_id, "roles": sorted(refused)})
    # Only a refusal for good is remembered, and only when no role was lost: a lost one never reached a
    # verdict, so its old order (sized for more) is re-fitted again by the next settle or reconciler run
    # (which then records a refusal that repeats), and ``replace_lost`` finds it lost.
    ended = end_protective_resize(side.user_id, entry.client_order_id, generation, placed=bool(placed),
                                  refused_quantity=str(claim["quantity"]) if refused and not lost else None)
    if ended:
        roles = _roles_of(entry, [str(i) for i in claim["replaces"]])
        _disarm(side, [algo_id for algo_id, role in roles.items() if role in placed])
    else:  # a newer claim dropped this one (the position shrank again meanwhile): what it placed is nobody's
        _disarm(side, _claimed_ids(entry, claim))


def _roles_of(entry: OrderRecord, client_algo_ids: list[str]) -> dict[str, str | None]:
    """The role of each of the entry's protective clientAlgoIds (None: not one of its generations')."""
    of_id = {protective_client_algo_id(entry.client_order_id, role, g): role
             for g in range(entry.protective_generations or 1) for role in _ROLES}
    return {algo_id: of_id.get(algo_id) for algo_id in client_algo_ids}


def _disarm(side: _Side, client_algo_ids: list[str]) -> None:
    """Cancel those still open (a failure is logged: the next settle cancels them as superseded)."""
    if client_algo_ids:
        disarm_protective_orders(side.connection, client_algo_ids)


def arm_entry_stops(user_id: str, entry: OrderRecord, client: BinanceClient, creds: Credentials, *,
                    connection: Connection, wind_down: str | None = None,
                    key_count: KeyCount | None = None) -> list[ProtectiveOrderState]:
    """The reconciler's arming of a filled API entry's stops (``arm_protective_orders``), then the re-placing
    of one lost past Binance's retention (``replace_lost``; not in a delete's wind-down, which leaves the
    connection). Raises as they do: the entry then stays in the reconciler's index. ``key_count``: the run's
    (``klineo.services.key_health.KeyCount``), so all its armings count a refusal of the key once."""
    states = arm_protective_orders(user_id, entry, client, creds, connection=connection, wind_down=wind_down,
                                   key_count=key_count)
    if wind_down is None:
        replace_lost(user_id, entry, states, client, creds, connection, key_count)
    return states


def replace_lost(user_id: str, entry: OrderRecord, states: list[ProtectiveOrderState], client: BinanceClient,
                 creds: Credentials, connection: Connection,
                 key_count: KeyCount | None = None) -> OrderRecord:
    """Re-place, once, the filled API ``entry``'s stops lost past Binance's retention (``states``: its
    first orders' states) while its position stands, or resume that re-placing (module docstring, "A stop
    LOST"). Returns the entry as its reads must see it (its generations counted). Raises KlineoError when one
    could not be placed yet (the claim stays: the next read or reconciler run resumes it), and the gate's
    refusal, before any read or claim, on a connection closed for every order (disabled, being deleted: as a
    reduction's re-fit, nothing is read with its key; the reconciler keeps the entry until it opens)."""
    if entry.origin != ORIGIN_API or entry.position_gone_ms is not None:
        return entry  # a position once read gone is never this entry's again: not read again
    lost = _lost(user_id, entry, states)
    if not lost and not entry.protective_resize:
        return entry
    if closed_for_every_order(connection):  # the gate refuses it: no signed read, no claim to resume later
        refuse_at_gate(connection, entry, min(lost or entry.protective_resize["roles"]))
    rules = stop_rules(client, entry.symbol)
    _, minimum, _ = rules.lot_for(market_order=True)
    held = _entry_held(connection, entry)
    left = rules.round_quantity(held, market_order=True)
    if held == 0 or left < minimum:  # gone, or dust no stop can guard (it only shrinks): not read again
        record_position_gone(user_id, entry.client_order_id)
        return entry
    side = _Side(user_id, connection, client, creds, left, minimum, key_count)
    if entry.protective_resize:  # an unfinished claim (this or a reduction's): resumed, never claimed over
        _refit_entry(side, entry, {})
        entry = get_order_record(user_id, entry.client_order_id) or entry
        lost = _lost(user_id, entry, states)  # what the resumed claim placed is lost no more
        if not lost or entry.protective_resize:
            return entry
    seen = entry.protective_generations or 1
    quantity = min([*(record.sent_quantity for record in lost.values()), left])
    # What a lost re-fit was to replace may still stand (an older order, for more): cancelled once placed.
    older = [protective_client_algo_id(entry.client_order_id, role, g) for role in lost for g in range(seen)]
    claim = {"generation": seen, "quantity": plain_text(quantity),
             "roles": {role: record.params["triggerPrice"] for role, record in lost.items()},
             "replaces": sorted(set(older) - {record.client_order_id for record in lost.values()})}
    if not claim_protective_resize(user_id, entry.client_order_id, seen, claim):
        return get_order_record(user_id, entry.client_order_id) or entry  # claimed meanwhile: placed there
    logger.warning("protective orders lost past Binance's retention placed again",
                   extra={"client_order_id": entry.client_order_id, "roles": sorted(lost)})
    entry = dataclasses.replace(entry, protective_generations=seen + 1)
    _place(side, entry, claim)
    return entry


def _lost(user_id: str, entry: OrderRecord, states: list[ProtectiveOrderState]) -> dict[str, OrderRecord]:
    """Role -> its record, for each role of the entry whose LATEST generation's order was lost past Binance's
    retention (UNKNOWN_PURGED): a first order in ``states``, or a later generation's (a re-fit's, while an
    older order stood). One BatchGetItem, only when a first order was lost or the orders were re-placed."""
    seen = entry.protective_generations or 1
    purged = [s.role for s in states if s.role in _ROLES and (seen > 1 or s.status == STATUS_UNKNOWN_PURGED)]
    if not purged:
        return {}
    generations = range(seen - 1, -1, -1)  # the latest first
    ids = {(role, g): protective_client_algo_id(entry.client_order_id, role, g) for role in purged
           for g in generations}
    records = get_order_records(user_id, list(ids.values()))
    latest = {role: next((records[ids[role, g]] for g in generations if ids[role, g] in records), None)
              for role in purged}
    return {role: record for role, record in latest.items()
            if record is not None and record.status == STATUS_UNKNOWN_PURGED}
