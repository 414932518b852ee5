"""A change of a strategy's stop-loss / take-profit / trailing percent, applied to its open position.

PATCH /strategies/{id} only stores the percents (it sends nothing to Binance). The strategy's next
runner turn moves the open position's protection to them, priced from the position's recorded entry
price by the rule of an entry (``klineo.runner.paper.protective_record``). Nothing happens without an
open position, or while the levels the percents give are the ones recorded.

Paper (``repriced_paper_levels``), before the candle's exit check: the candles of the turn's window
before its own keep the old levels (one of them that reaches an old level closes the position first,
as it would have); the new levels count from the turn's candle on (``entry_close_time`` moves up to
the candle before it), so a level set now never fires on a candle that closed before.

Live (``LiveReprice``), in a turn that neither enters nor closes (an entry arms its own orders from
the settings), once the position was checked against the exchange. Only the levels that changed are
re-placed: a new or moved level gets a new order, a cleared one loses its order, an unchanged one keeps
its order untouched. A trailing stop placed anew would trail from the current price, not from the best
price the one armed has seen, so moving only the stop-loss must not replace it. The record says which
order each role has armed: ``orders`` = {role: generation of its clientAlgoId}
(``protective_client_algo_id``; a record without it: the entry's first orders, generation 0).

1. Claim a generation before anything is sent: ``protective.repricing`` = {generation n, the new
   levels, ``roles`` placed in n, ``replaces`` = {role: generation} of the orders it replaces (moved or
   cleared)}, ``generations`` = n + 1 (how many were ever claimed, also on the entry's order record, for
   the sibling rule), written on condition that the position, its entry and ``generations`` are as
   read. A repeat (a redelivered message, a crash) with the same levels resumes the claim as written;
   other levels cancel what n placed and claim the next one. (Every role is placed anew while the
   record is not ``armed``: its orders may be missing.)
2. Place the claimed roles (clientAlgoIds of generation n) for the open position, reduce-only, through
   the risk gate as reducing orders, each exactly once.
3. All placed: record the new ``protective`` (``orders`` updated, armed, the replaced orders in
   ``superseded``) with a ``protective_repriced`` event (old and new levels), then cancel the replaced
   orders (a crash in between leaves them to the next turn, never a claim whose replaced orders are
   gone). Every write of an attempt holds the ``generations`` it read or claimed: one that lost to a
   newer claim, or whose strategy was deleted meanwhile, writes nothing and cancels what it placed (a delete
   cancels what an unfinished claim placed: ``unrecorded_ids``). Every percent cleared:
   every order the position had is cancelled and ``protective`` forgotten. An order that could not be
   cancelled is kept in ``superseded`` (clientAlgoIds) and cancelled again on the next turns.
4. A placement failed: the old orders stay; an ``error`` event (``protective_not_repriced``). Refused for
   good (e.g. -2021, a level the mark price already crossed: the entry path records such a refusal
   and places nothing instead): what generation n placed is cancelled and the levels are remembered as
   ``refused`` (not tried again until the percents change); orders of the earlier levels sized for more
   than is left are then re-placed for it in the same turn ("What is left"); an entry's own order that a
   transient failure kept off (never refused) is still placed at its earlier level on the next turns
   (``LiveReprice.rearm``), as without the change. A transient failure keeps the claim: the next turn
   resumes it (its strategy deleted meanwhile, or a newer claim written: what it placed is cancelled, as in
   step 3). An earlier order counts only where it stands on Binance
   (``standing_earlier``): each one an armed record names; of a record not armed (the entry's orders
   refused for good in part, or kept off by a failure), only those still open by their order records, never
   one Binance refused or never took. When a role Binance placed had no earlier order standing (from no
   levels, the record having none: ``start``; a role added beside moved ones, e.g. a stop-loss added to a
   position armed with a take-profit, the take-profit moved too, and a trailing stop moved or not; or a
   stop-loss refused or kept off at entry, now moved), the per-role rule of "What is left" applies to every
   role: each role Binance placed keeps its new order (a moved one replaces its earlier order), a role
   refused for good keeps its earlier order if it stands, or has none (a take-profit the mark already
   crossed never takes away the stop-loss Binance accepted when no earlier stop-loss stands). The
   record then has the new levels but, for a refused role whose earlier order stands, its earlier level (the
   order that stands), armed, ``orders`` naming each role's order that stands (a role with a level and no
   order is a refused one with no earlier order standing; an entry's order Binance never took is replaced,
   never named), the levels wanted remembered as ``refused`` (the refused role is not sent again until the
   percents change, then placed anew as a moved level or a role with no order is), a
   ``protective_repriced`` event (the recorded levels) and an ``error`` event naming the refused role. An
   earlier order that stays for more than is left (part closed elsewhere in the same turn) keeps the
   record's earlier ``quantity``, so it is re-placed for what is left at its level in the same turn (only it:
   the roles just placed are for what is left already). Refused entirely: nothing stays, as above. When
   every role placed had an earlier order standing (e.g. a moved stop-loss beside the refused take-profit),
   the earlier orders stay, as above: the position stays protected at the old levels.

What is left: the orders are for the position's quantity (the record's ``quantity``): reduce-only in
one-way mode, and in hedge mode closing the side, so Binance refuses one larger than the position (-2022,
docs/binance-facts.md §4): a stop for the whole position would no longer protect what is left of it. When
the strategy's own order leaves less of it on the same side (a close, or a one-way flip, filled only in
part; a smaller size: ``klineo.runner.execution``'s ``follow_reduction``, right after the fill, with
``after_fill``: its events tagged apart from the same candle's re-pricing), or a turn finds less of it
than ``quantity`` (part closed elsewhere and corrected from the exchange, or a crash between the fill and
the re-placing), every role is re-placed for the position held at the recorded levels (or the ones the
percents moved to) by the same steps: a claim naming its ``quantity``, placed, recorded, then the old
orders cancelled; a claim for another quantity is dropped (what it placed cancelled) and claimed anew.
Its ``protective_repriced`` event gives ``quantity`` and ``old_quantity`` (its ``error`` event too). A
trailing stop placed anew trails from the price at its placing. A role refused for good: its old
order stays, the roles placed still replace theirs (a refused take-profit never keeps the stop-loss sized for
more than is left: ``klineo.services.protective.placed_and_refused``, the API entries' rule too), an ``error``
event says so, and ``refused_quantity`` keeps that quantity from being tried again (none placed: the old
orders stay); an entry whose own orders were refused re-places only those of them that stand (e.g. its
take-profit beside a refused stop), never the refused one.

Lost (``LiveReprice.replace_lost``): an entry's own order whose POST went unanswered until Binance's retention
passed is recorded UNKNOWN_PURGED (``klineo.services.protective``), never sent again under its id. It cannot
be standing (Binance forgets no open order, and one that fired is found), so it never counts as refused:
while the position stands, the turn that finds it (``rearm``) claims a new generation for those roles only
(``repricing`` with ``lost``, replacing the lost orders, nothing that stands), at the recorded levels for the
position, and places it by steps 2-3 with a ``protective_placed`` event naming the roles (``lost``). An
unfinished such claim is resumed by the next turns, never dropped nor claimed anew (unless the percents or
the position change: then claimed anew as above, every role placed); refused for good, it is remembered in
``refused`` as an entry's refused order is. Likewise an order of any claim (a re-pricing, a re-placing for
what is left, or a lost one's) found lost past the retention when the claim is resumed never counts as
refused (``LiveReprice.reclaim``): what the claim placed is cancelled and its plan (roles, levels, the orders
it replaces) claimed again in the next generation and placed in the same turn (a new id is never found
lost, so once).

A live position with no record (entered while the strategy had no percents) whose percents are now set
(``LiveReprice.start``) gets its levels the same way, as a re-pricing from no levels: priced from the
position's average entry (``live_book.entry_price``), for the order that entered it
(``live_book.entry_client_order_id``, ``klineo.runner.pnl``), every role placed. Its claim starts past
every generation ever claimed for that entry (its order record's ``protective_generations``: a record
forgotten when every percent was cleared took its count with it) and is written only while the position
still has no record and that entry (``klineo.store.runs.replace_protective``'s ``first``), so a racing
entry or another attempt wins and this one sends nothing. Its event gives the new levels only; a refusal
or a failure is told and remembered as above (every role refused, or a failure: the record then holds the
entry and no levels; refused in part: the roles placed stay, step 4's per-role rule); every percent
cleared again forgets it. A position whose entry names no order (opened by an older version)
cannot get any: one ``error`` event (``protective_not_repriced``, category ``entry_not_recorded``) per
change of the percents, remembered in a record with no parent (``unrecorded_entry``: the percents told),
nothing sent; its next entry arms its own as usual. A record naming an earlier entry than the book's (the
entry that grew or flipped the position had its record refused to a newer turn, and cancelled its orders:
``LiveReprice.restart``) is forgotten, its orders cancelled if still open, and the position gets its
levels the same way, from the book, for the book's entry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from functools import partial
from typing import Any

from klineo.binance import Candle
from klineo.errors import KlineoError
from klineo.observability import logger
from klineo.runner.paper import (
    live_percents,
    paper_exit,
    paper_protective,
    protective_details,
    protective_record,
    protective_targets,
)
from klineo.store.connections import Connection
from klineo.store.events import StrategyEvent
from klineo.store.orders import STATUS_UNKNOWN_PURGED, protective_generations_update
from klineo.store.runs import replace_protective
from klineo.store.strategies import Strategy
from klineo.validation import decimal_or_none

__all__ = [
    "LiveReprice", "arm_entry_orders", "armed_ids", "armed_orders", "level_details", "levels", "named_ids",
    "protection_due", "repriced_paper_levels", "unrecorded_ids",
]

LEVELS = ("stop_loss", "take_profit", "trailing_stop_pct")
# The record of a position whose entry names no order (``LiveReprice.unrecorded_entry``): the percents told.
UNRECORDED = "unrecorded_entry"
# A turn's events of a re-pricing carry this tag: an error of the turn's own order keeps its own key.
_TAG = "reprice"
# ... and those of the re-placing right after the turn's own order left less of the position.
_AFTER_FILL_TAG = "resize"


def levels(record: dict[str, Any] | None) -> dict[str, Decimal]:
    """The levels of a protective record (or of a stored levels map), as numbers."""
    found = {name: decimal_or_none((record or {}).get(name)) for name in LEVELS}
    return {name: value for name, value in found.items() if value is not None}


def level_details(old: dict[str, Decimal], new: dict[str, Decimal]) -> dict[str, Decimal]:
    """An event's details of a re-pricing: ``old_<level>`` and ``new_<level>`` for each level set."""
    return {**{f"old_{k}": v for k, v in old.items()}, **{f"new_{k}": v for k, v in new.items()}}


def _side(position: Decimal) -> str:
    return "BUY" if position > 0 else "SELL"


def repriced_paper_levels(
    strategy: Strategy, candles: Sequence[Candle],
) -> tuple[dict[str, Any] | None, dict[str, Decimal]] | None:
    """(the open paper position's new record, None when every percent is cleared; the event's details),
    or None when nothing changes (see the module docstring)."""
    record = paper_protective(strategy) or {}
    position = strategy.paper_position
    price = decimal_or_none(record.get("entry_price")) or decimal_or_none(
        (strategy.paper_book or {}).get("entry_price"))
    if position == 0 or not price or not candles or record.get("mode", "paper") != "paper":
        return None
    wanted = protective_record(strategy, _side(position), price, "paper")
    if levels(wanted) == levels(record):
        return None
    if record and paper_exit(strategy, candles[:-1], candles[-1].close_time) is not None:
        return None  # an earlier candle reached an old level: the exit check closes the position there
    if wanted is not None:
        since = decimal_or_none(record.get("entry_close_time"))
        before = candles[-2].close_time if len(candles) > 1 else candles[-1].close_time - 1
        wanted["entry_close_time"] = max(int(since), before) if since is not None else before
    return wanted, level_details(levels(record), levels(wanted))


def _claimed_generations(user_id: str, parent: str) -> int:
    """How many generations of protective orders were ever claimed for the entry ``parent`` (its order
    record's ``protective_generations``; 1: its first orders, placed or not). A first record starts past
    them: an earlier record of the position may have been forgotten with every percent cleared, and a
    clientAlgoId used before would be answered from its old record (placed, cancelled or refused)."""
    from klineo.store.orders import get_order_record

    record = get_order_record(user_id, parent)
    return (record.protective_generations if record is not None else None) or 1


def arm_entry_orders(connection: Connection, strategy: Strategy, record: dict[str, Any],
                     lost: list[str] | None = None) -> bool:
    """Place the entry's own protective orders (generation 0) that a live protective ``record`` asks for
    (its ``parent_client_order_id``, ``entry_side``, ``quantity``, ``entry_price`` and levels); True when all
    are armed.

    Through ``klineo.services.strategy_protection`` (the API entries' protective orders: reduce-only,
    mark-price triggered, clientAlgoIds derived from the entry's, recorded with origin = the strategy;
    the trailing stop is a TRAILING_STOP_MARKET with ``trailing_stop_pct`` as its callbackRate), each
    exactly once: a repeat places only what is missing. Refused for good (Binance's REJECTED answer, or
    ``REFUSED_FOR_GOOD``): False with the levels kept in ``record["refused"]``, not tried again until the
    percents change. A refusal for the symbol's status comes judged by the tick's rule
    (``klineo.services.protective``): a halt since the entry (retryable, field symbol) is waited out, only an
    ended or unlisted contract refuses for good; a refusal Binance lifts by itself (retryable, e.g. -2023
    while the account is being liquidated) is waited out too. Any other failure: logged, False, ``record``
    unchanged: the next turns try again (``LiveReprice.rearm``). With ``lost`` (``LiveReprice.rearm``): the
    roles whose order was lost past Binance's retention (UNKNOWN_PURGED: it cannot be standing) are added to
    it, False, and are not counted as refused (the caller places them again in a new generation).
    """
    # Loaded here, on a live entry with protection only: the algo-order path it brings (protective and algo
    # order services, the futures API models) is about 13 ms of every strategy_worker cold start.
    from klineo.services.strategy_protection import NOT_ARMED, REFUSED_FOR_GOOD, arm_strategy_protection

    try:
        states = arm_strategy_protection(
            connection, strategy.strategy_id, strategy.symbol, record["parent_client_order_id"],
            record["entry_side"], record["quantity"], record["entry_price"], protective_targets(record))
    except KlineoError as exc:
        logger.warning("protective orders not armed", extra={
            "strategy_id": strategy.strategy_id, "symbol": strategy.symbol, "category": str(exc.category)})
        if exc.category not in REFUSED_FOR_GOOD or exc.retryable:  # e.g. a halt, a liquidation: waited out
            return False
        states = []
    gone = [s.role for s in states if s.status == STATUS_UNKNOWN_PURGED] if lost is not None else []
    refused = not states or any(state.status in NOT_ARMED and state.role not in gone for state in states)
    if refused:
        record["refused"] = levels(record)
    (lost if lost is not None else []).extend(gone)
    return not gone and not refused


def protection_due(strategy: Strategy) -> bool:
    """True when the live position's protection may need work this turn: a record, or a position entered
    without one whose percents are now set (``LiveReprice.start``)."""
    return bool(strategy.protective) or (strategy.live_position != 0 and bool(live_percents(strategy)))


def _order_ids(parent: str, orders: Iterable[tuple[str, int]]) -> list[str]:
    """The clientAlgoIds of the entry ``parent``'s orders (role, generation)."""
    # Loaded here: only a live strategy whose percents changed reaches this line (cold start).
    from klineo.services.protective_siblings import protective_client_algo_id

    return [protective_client_algo_id(parent, role, generation) for role, generation in orders]


def _roles(record: dict[str, Any] | None) -> dict[str, Decimal]:
    """The levels of a protective record (or of a stored levels map) by the role of their orders."""
    return protective_targets(levels(record))


def _of_roles(found: dict[str, Decimal], roles: set[str]) -> dict[str, Decimal]:
    """The levels of ``found`` whose orders have one of ``roles``."""
    return {name: value for name, value in found.items()
            if not roles.isdisjoint(protective_targets({name: value}))}


def _refusal_message(same: bool, kept: set[str], refused: set[str], stays: set[str]) -> str:
    """The ``error`` message of a refused re-pricing (``LiveReprice.refusal``): ``same``, for what is left."""
    if not kept and same:
        return ("Binance refused the protective orders for what is left of the position; the earlier ones "
                "stay.")
    if not kept:
        return ("Binance refused a re-priced protective order (a level the mark price already crossed?); the "
                "earlier orders stay.")
    named = " and ".join(sorted(role.replace("_", "-") for role in refused))
    if same:
        return (f"Binance refused the {named} for what is left of the position; its earlier order stays, the "
                "others were re-placed.")
    placed = " and ".join(sorted(role.replace("_", "-") for role in kept))
    earlier = f", the earlier {named} stays" if stays else ""
    return (f"Binance refused the {named} (a level the mark price already crossed?); the {placed} "
            f"{'was' if len(kept) == 1 else 'were'} placed{earlier}. The {named} "
            f"{'is' if len(refused) == 1 else 'are'} tried again once the percents change.")


def _lost_refused_message(refused: set[str]) -> str:
    """The ``error`` message of roles lost past Binance's retention, placed again and refused for good."""
    named = " and ".join(sorted(role.replace("_", "-") for role in refused))
    return (f"Binance refused the {named} placed again after its first order was lost past Binance's "
            "retention (a level the mark price already crossed?); it is tried again once the percents "
            "change.")


def armed_ids(record: dict[str, Any] | None) -> dict[str, str]:
    """Role -> clientAlgoId of the orders a live protective record has armed on Binance ({}: none armed)."""
    return named_ids(record) if record and record.get("armed") is True else {}


def named_ids(record: dict[str, Any] | None) -> dict[str, str]:
    """Role -> clientAlgoId of the orders a live protective record names, armed or not (``armed_orders``)."""
    parent = (record or {}).get("parent_client_order_id")
    if not record or record.get("mode") != "live" or not parent:
        return {}
    orders = armed_orders(record)
    return dict(zip(orders, _order_ids(str(parent), orders.items()), strict=True))


def unrecorded_ids(record: dict[str, Any] | None) -> list[str]:
    """The clientAlgoIds an unfinished re-pricing of a live protective record claimed (``repricing``: its
    roles, of its generation): placed on Binance, or being placed, and not recorded in ``orders`` yet."""
    parent, claim = (record or {}).get("parent_client_order_id"), (record or {}).get("repricing")
    if not claim or record.get("mode") != "live" or not parent:
        return []
    return _claim_ids(str(parent), claim)


def _claim_ids(parent: str, claim: dict[str, Any]) -> list[str]:
    """The clientAlgoIds a claim of the entry ``parent``'s orders places (its roles, of its generation)."""
    generation = int(claim["generation"])
    return _order_ids(parent, [(str(role), generation) for role in claim.get("roles") or []])


def armed_orders(record: dict[str, Any]) -> dict[str, int]:
    """The generation of each role's armed order: ``orders``, else (the entry's first orders) 0 for each."""
    stored = record.get("orders")
    if stored is not None:
        return {str(role): int(generation) for role, generation in stored.items()}
    return {role: 0 for role in _roles(record)}


class LiveReprice:
    """The live position's protective orders moved to the strategy's percents, or placed for a position
    entered without any (module docstring)."""

    def __init__(self, strategy: Strategy, connection: Connection,
                 make_event: Callable[..., StrategyEvent], *, after_fill: bool = False) -> None:
        self.strategy = strategy
        # Right after a fill of the strategy's own order (``after_fill``) its events keep apart from the ones
        # of the same candle's re-pricing before that order (each its own tag).
        self.tag = _AFTER_FILL_TAG if after_fill else _TAG
        self.connection = connection
        # Tagged as they are made: the turn numbers a second event of one kind and tag (``seq``).
        self.make_event = partial(make_event, tag=self.tag)
        self.record = dict(strategy.protective or {})
        self.parent = str(self.record.get("parent_client_order_id") or "")
        self.held = strategy.live_position
        # True while the position has no record of its own: the next write is its first (``start``).
        self.first = False

    def play(self) -> bool:
        """Re-price when the percents moved; True when the strategy was written (read it again)."""
        if self.held == 0:
            return False
        if not self.record or self.record.get(UNRECORDED) is not None:
            return self.start()
        if self.record.get("mode") != "live" or not self.parent:
            return False
        if self.parent != str((self.strategy.live_book or {}).get("entry_client_order_id") or self.parent):
            return self.restart()
        return self.move()

    def restart(self) -> bool:
        """The record is an earlier entry's: the order that grew or flipped the position since (the book's
        entry) armed its own, but its record was refused (a newer turn had claimed an order meanwhile,
        ``record_protective``) and its orders cancelled. The earlier entry's orders (cancelled by that
        entry; again here if still open) and record go, and the position gets a first record of its own
        (``start``: priced from the book), never one re-priced from the earlier entry's price. The orders
        the book's entry placed (its turn ended before recording them) are replaced once the new ones are
        recorded."""
        from klineo.services.protective_siblings import recorded_protective_ids

        if not self.disarm(recorded_protective_ids(self.record)):
            return False  # tried again next turn
        if not self.write(None):
            return True
        self.record = {}
        return self.start(replacing=True) or True  # written: the record is forgotten even with no percent now

    def start(self, *, replacing: bool = False) -> bool:
        """A position without a record (entered without percents) that the percents now protect: a
        re-pricing from no levels, priced from its average entry, for the order that entered it;
        ``replacing``: the orders of that entry's earlier generations go once the new ones are recorded."""
        book = self.strategy.live_book or {}
        parent = str(book.get("entry_client_order_id") or "")
        if not parent:
            return self.unrecorded_entry()
        price = decimal_or_none(book.get("entry_price"))
        if not price or not live_percents(self.strategy):
            return False
        self.parent, self.first = parent, True
        generations = _claimed_generations(self.strategy.user_id, parent)
        self.record = {"mode": "live", "entry_side": _side(self.held), "entry_price": price,
                       "parent_client_order_id": parent, "generations": generations}
        if replacing:
            from klineo.services.protective_siblings import entry_protective_ids

            self.record["superseded"] = entry_protective_ids(parent, generations)
        return self.move()

    def unrecorded_entry(self) -> bool:
        """A position whose entry names no order (placed by an older version): no protective order can be
        placed for it until its next entry. One error event says so per change of the percents, which the
        record remembers (``unrecorded_entry``: no parent, nothing placed; gone at the next entry)."""
        percents, told = live_percents(self.strategy), self.record.get(UNRECORDED)
        if told == (percents or None):
            return False
        self.first = True
        if not percents:  # cleared: nothing to tell, the note is forgotten
            return self.write(None) or True
        message = ("This position was opened before its entry order was recorded: no stop-loss, take-profit "
                   "or trailing stop can be placed for it. They are placed at the strategy's next entry.")
        event = self.make_event("error", what="protective_not_repriced", category="entry_not_recorded",
                                message=message, **percents)
        return self.write({"mode": "live", UNRECORDED: percents}, [event]) or True

    def move(self, sized: frozenset[str] = frozenset()) -> bool:
        """The recorded position's orders moved to the percents, or re-placed for what is left of it (the
        module docstring's steps); ``sized``: roles this turn already placed for what is left, kept."""
        record = self.record
        price = decimal_or_none(record.get("entry_price"))
        if not price:
            return False
        wanted = protective_record(self.strategy, _side(self.held), price, "live")
        if wanted is None:
            return self.remove_all()  # every percent cleared (or a first record that never armed)
        new, claimed = levels(wanted), dict(record.get("repricing") or {})
        refused = record.get("refused")
        # The levels stay: unchanged, or the ones wanted were refused for good (tried again once the
        # percents change).
        kept = new == levels(record) or (not claimed and refused is not None and new == levels(refused))
        if kept and not self.resizing():
            if claimed.get("lost"):  # placing again what was lost past the retention: resumed, never dropped
                return self.place(self.own_levels(), claimed)
            if claimed:
                return self.abandon(claimed)
            # The entry's own orders, kept from being placed by a transient failure: still placed after a
            # change of the levels was refused (``refused``: those levels, not the entry's), never once
            # Binance refused them (``entry_refused``); a record from no levels has none.
            if (not record.get("armed") and levels(record) and not self.entry_refused()
                    and "orders" not in record):
                return self.rearm()
            return self.retire()
        if kept:  # the same levels for what is left of the position
            wanted, new = self.own_levels(), levels(record)
        if claimed and (levels(claimed.get("levels")) != new or not self.sized(claimed)):
            self.note_cancelled(self.claimed_ids(claimed))  # an earlier attempt at other levels or size
            claimed = {}
        claimed = claimed or self.claim(new, sized)
        if not claimed:
            return True
        return self.place(wanted, claimed)

    def sized(self, record: dict[str, Any]) -> bool:
        """True when ``record`` (the position's record or a claim) is for the position's quantity; one that
        names none (an older version's) is taken as such."""
        quantity = decimal_or_none(record.get("quantity"))
        return quantity is None or quantity == abs(self.held)

    def resizing(self) -> bool:
        """True when the position's orders are for another quantity than it holds now (an order of the
        strategy that left less of it, a part closed elsewhere), unless Binance refused them for this
        quantity already (``refused_quantity``) or refused the entry's own (none to re-place)."""
        record = self.record
        if self.sized(record) or not levels(record):
            return False
        if decimal_or_none(record.get("refused_quantity")) == abs(self.held):
            return False
        return not self.entry_refused() or bool(self.standing_roles())

    def entry_refused(self) -> bool:
        """True when Binance refused the entry's own orders for good (``arm_entry_orders``: ``refused``, the
        record's levels, not armed): only those of its orders it did place stand (``standing_roles``)."""
        refused = self.record.get("refused")
        return refused is not None and not self.record.get("armed") and levels(refused) == levels(self.record)

    def standing_roles(self) -> set[str]:
        """The roles whose order the record names is still open, by its order record (one BatchGetItem)."""
        from klineo.services.algo_orders import ALGO_FINAL
        from klineo.store.orders import get_order_records

        orders = armed_orders(self.record)
        ids = dict(zip(orders, _order_ids(self.parent, orders.items()), strict=True))
        found = get_order_records(self.strategy.user_id, list(ids.values()))
        return {role for role, algo_id in ids.items()
                if algo_id in found and found[algo_id].status not in ALGO_FINAL and not found[algo_id].final}

    def standing_earlier(self, claim: dict[str, Any]) -> set[str]:
        """The roles whose earlier order ``claim`` replaces and that stands on Binance, the only ones a
        refused role may keep: each one an armed record names; of a record not armed (the entry's orders
        refused in part, or kept off by a failure), only those still open by their order records
        (``standing_roles``), never an order Binance refused or never took."""
        replaces = set(claim.get("replaces") or {})
        if not replaces or self.record.get("armed"):
            return replaces
        return replaces & self.standing_roles()

    def own_levels(self) -> dict[str, Any]:
        """The recorded levels and the entry they are priced from, as numbers: what a re-placing at another
        quantity places."""
        record = self.record
        return {"mode": "live", "entry_side": _side(self.held), **levels(record),
                "entry_price": decimal_or_none(record.get("entry_price"))}

    # ------------------------------------------------------------------ steps
    def plan(self, new: dict[str, Decimal], sized: frozenset[str] = frozenset()) -> dict[str, Any]:
        """The roles a re-pricing to ``new`` places (a new or moved level; every one while the record is
        not armed or its orders are for another quantity, but the ``sized`` ones, already for what is left)
        and the orders it replaces (role -> generation: moved, cleared or re-placed)."""
        old, wanted = _roles(self.record), _roles(new)
        if new == levels(self.record) and self.entry_refused():  # what is left of the entry's own orders
            standing = self.standing_roles()
            replaces = {role: g for role, g in armed_orders(self.record).items() if role in standing}
            return {"roles": sorted(set(wanted) & standing), "replaces": replaces}
        armed = bool(self.record.get("armed")) and self.sized(self.record)
        orders = armed_orders(self.record)
        # A level whose order was refused (placed from no levels: no order in ``orders``) is placed anew.
        kept = {role for role, value in wanted.items()
                if (armed or role in sized) and old.get(role) == value and role in orders}
        replaces = {role: g for role, g in orders.items() if role not in kept}
        return {"roles": sorted(set(wanted) - kept), "replaces": replaces}

    def claim(self, new: dict[str, Decimal], sized: frozenset[str] = frozenset(),
              lost: frozenset[str] = frozenset(), plan: dict[str, Any] | None = None
              ) -> dict[str, Any] | None:
        """Claim the next generation with its plan (written before anything is sent, on the entry's record
        too); ``lost``: only those roles, lost past Binance's retention (``replace_lost``), replacing their
        lost orders; ``plan``: an earlier claim's, one of whose orders was lost (``reclaim``). None when the
        strategy moved."""
        seen = int(self.record.get("generations", 1))
        plan = plan or (self.plan(new, sized) if not lost else {
            "roles": sorted(lost), "lost": sorted(lost),
            "replaces": {role: g for role, g in armed_orders(self.record).items() if role in lost}})
        claim = {"generation": seen, "levels": new, "quantity": abs(self.held), **plan}
        # A re-placing at the recorded levels keeps the levels refused earlier (still not tried again).
        dropped = {"refused_quantity"} | ({"refused"} if new != levels(self.record) else set())
        record = {k: v for k, v in self.record.items() if k not in dropped}
        record.update(generations=seen + 1, repricing=claim)
        entry = protective_generations_update(self.strategy.user_id, self.parent, seen + 1)
        if not self.write(record, seen_generations=seen, entry_update=entry):
            return None
        self.record = record
        return claim

    def place(self, wanted: dict[str, Any], claim: dict[str, Any]) -> bool:
        """Place the claimed roles at ``wanted``; the replaced orders are cancelled once all are placed
        (re-placed for what is left: once each is placed or refused, each placed one replacing its own)."""
        # Loaded here: only a live strategy whose percents changed reaches this line (cold start).
        from klineo.services.protective import placed_and_refused
        from klineo.services.strategy_protection import NOT_ARMED, arm_strategy_protection

        generation = int(claim["generation"])
        roles = set(claim.get("roles") or [])
        targets = {role: level for role, level in protective_targets(wanted).items() if role in roles}
        try:
            states = arm_strategy_protection(
                self.connection, self.strategy.strategy_id, self.strategy.symbol, self.parent,
                _side(self.held), abs(self.held), wanted["entry_price"], targets,
                generation=generation) if targets else []
        except KlineoError as exc:  # transient: the claim stays, the next turn resumes it
            return self.failed(self.record, levels(wanted), exc.trader_message, str(exc.category))
        if any(state.status == STATUS_UNKNOWN_PURGED for state in states):
            return self.reclaim(wanted, claim)
        placed, refused = placed_and_refused(states, roles, NOT_ARMED)
        if not refused:
            return self.finish(wanted, claim)
        before = self.record
        kept = self.refusal(wanted, claim, placed, refused)
        # The earlier orders that stay, sized for more than is left (a part closed elsewhere), are re-placed
        # for it now, role by role, at their levels, never kept until the next turn (Binance refuses: -2022);
        # the ones just placed (``kept``) are already for what is left.
        if self.record is not before and self.resizing():
            self.move(kept)
        return True

    def reclaim(self, wanted: dict[str, Any], claim: dict[str, Any]) -> bool:
        """An order of ``claim`` was lost past Binance's retention (UNKNOWN_PURGED: not standing, never sent
        again under its id), never refused (module docstring, "Lost"): what the claim placed is cancelled and
        its plan claimed again in the next generation (on the entry's record too), placed at ``wanted``."""
        self.note_cancelled(self.claimed_ids(claim))
        plan = {key: claim[key] for key in ("roles", "replaces", "lost") if key in claim}
        again = self.claim(levels(claim.get("levels")), plan=plan)
        return self.place(wanted, again) if again else True

    def refusal(self, wanted: dict[str, Any], claim: dict[str, Any], placed: set[str],
                refused: set[str]) -> frozenset[str]:
        """Binance placed ``placed`` and refused ``refused`` for good, decided once (the module
        docstring's step 4): each role placed keeps its new order when re-placed for what is left or when one
        had no earlier order standing (a stop never cancelled for a refused role), a refused one keeping its
        earlier order and level where it stands (``stays``); else none is kept, the earlier orders stay. An
        ``error`` event tells it; ``refused_quantity`` (what is left) or ``refused`` (levels) remembers it.
        Returns the roles whose new order is kept."""
        new, same = levels(wanted), levels(wanted) == levels(self.record)
        earlier = self.standing_earlier(claim)  # the roles whose earlier order stands and is replaced
        kept = placed if placed and (same or not placed <= earlier) else set()
        stays = refused & earlier
        dropped = set(claim.get("roles") or []) - kept
        self.note_cancelled(self.claimed_ids({**claim, "roles": sorted(dropped)}))  # a lost one may stand
        message = _lost_refused_message(refused) if claim.get("lost") else _refusal_message(
            same, kept, refused, stays)
        # A lost order placed again and refused: its levels are not tried again (``entry_refused``).
        remember: dict[str, Any] = ({"refused_quantity": abs(self.held)} if same and not claim.get("lost")
                                    else {"refused": new})
        if not kept:
            record = {k: v for k, v in self.record.items() if k != "repricing"}
            self.failed({**record, **remember}, new, message, "order_rejected")
            return frozenset()
        if not same:
            wanted = {**wanted, **_of_roles(levels(self.record), stays)}  # the level of the order that stays
        if same or stays:  # an earlier order stays, for its quantity (even at the level wanted)
            remember["quantity"] = self.record.get("quantity", abs(self.held))
        # Every earlier order but the ones that stay is replaced: none is named armed unless it stands.
        replaces = {role: g for role, g in (claim.get("replaces") or {}).items() if role not in stays}
        self.finish(wanted, {**claim, "roles": sorted(kept), "replaces": replaces},
                    self.error_event(new, message, "order_rejected"), **remember)
        return frozenset(kept)

    def finish(self, wanted: dict[str, Any], claim: dict[str, Any], refusal: StrategyEvent | None = None,
               **remember: Any) -> bool:
        """All claimed roles placed: cancel the orders they replace, record which order each role has; with
        ``refusal`` (the error event of roles Binance refused, left out of ``claim``), the record also holds
        ``remember`` (``refused`` or ``refused_quantity``, and the old ``quantity`` of an earlier order that
        stays: ``LiveReprice.refusal``)."""
        replaces = {str(role): int(g) for role, g in (claim.get("replaces") or {}).items()}
        orders = {role: g for role, g in armed_orders(self.record).items() if role not in replaces}
        orders.update({str(role): int(claim["generation"]) for role in claim.get("roles") or []})
        # The levels claimed (``wanted`` but the level of a refused role whose earlier order stays).
        same = levels(claim.get("levels")) == levels(self.record)
        # What is left of an entry's own orders refused in part stays unarmed: the refused one is not sent
        # again.
        armed = not (same and self.entry_refused())
        record = {**wanted, "quantity": abs(self.held), "parent_client_order_id": self.parent, "armed": armed,
                  "orders": orders, "generations": self.record["generations"]}
        if same and "refused" in self.record:
            record["refused"] = self.record["refused"]  # re-placed at the same levels: still not tried again
        record.update(remember)
        # The replaced orders are cancelled only once the record names the new ones (kept in ``superseded``
        # until then): a crash in between never leaves a claim whose replaced orders are already gone.
        superseded = {str(i) for i in self.record.get("superseded") or []}
        superseded |= set(_order_ids(self.parent, replaces.items()))
        if superseded:
            record["superseded"] = sorted(superseded)
        if claim.get("lost"):  # lost past Binance's retention, placed again: which ones
            event = self.make_event("protective_placed", lost=claim["lost"], **protective_details(record))
        else:
            event = self.make_event("protective_repriced", mode="live", **level_details(
                levels(self.record), levels(wanted)), **self.quantities(), entry_price=wanted["entry_price"])
        if not self.write(record, [event, *([refusal] if refusal is not None else [])]):
            self.drop_if_superseded(claim)
            return True
        self.record = record
        self.retire()
        return True

    def rearm(self) -> bool:
        """Place again the entry's own orders (generation 0) that a transient failure kept from being placed
        at entry: each exactly once, only what is missing (their clientAlgoIds are the entry's). A failure
        again: tried on the next turn (logged, no event: the entry's ``protective_not_armed`` told it).
        Refused for good (``arm_entry_orders``): an ``error`` event, remembered in ``refused`` until the
        percents change; after a change of the levels was refused, ``refused`` keeps that change's levels
        and ``orders`` names the entry's orders that stand (not armed: the next turns place nothing). Lost
        past Binance's retention: placed again in a new generation (``replace_lost``)."""
        record = {**self.record, "entry_side": _side(self.held), "quantity": abs(self.held)}
        lost: list[str] = []
        record["armed"] = arm_entry_orders(self.connection, self.strategy, record, lost)
        if lost:
            return self.replace_lost(record, frozenset(lost))
        if record["armed"]:
            event = self.make_event("protective_placed", **protective_details(record))
        elif "refused" in record:
            event = self.make_event("error", what="protective_not_armed", **protective_details(record))
            if self.record.get("refused") is not None:  # a change refused before: neither sent again
                record.update(refused=self.record["refused"],
                              orders={role: 0 for role in sorted(self.standing_roles())})
        else:
            return False
        return self.write(record, [event]) or True

    def replace_lost(self, record: dict[str, Any], lost: frozenset[str]) -> bool:
        """The entry's own orders of the ``lost`` roles went unanswered until Binance's retention passed
        (UNKNOWN_PURGED, never sent again under their ids): none can be standing (Binance forgets no open
        order, and one that fired is found), so each is placed again, once, at its recorded level for the
        position, in a new generation claimed as a re-pricing's (``claim``: written before anything is sent,
        on the entry's record too), never two at once: the next turns resume that claim (``move``), never
        claim another. ``record``: what ``rearm`` armed; a role refused for good beside them is told (an
        ``error`` event) and stays refused."""
        if levels(record.get("refused")) == levels(record) and levels(self.record.get("refused")) != levels(
                record):
            event = self.make_event("error", what="protective_not_armed", **protective_details(record))
            if not self.write(record, [event]):
                return True
        self.record = record
        claimed = self.claim(levels(record), lost=lost)
        return self.place(self.own_levels(), claimed) if claimed else True

    def drop_if_superseded(self, claim: dict[str, Any]) -> None:
        """This attempt's claim lost to a newer one (another attempt claimed the next generation after a
        change of the percents), or the strategy was deleted meanwhile: what it placed is nobody's, cancel it
        (the newer claim, which cancels an earlier attempt's orders, or the delete, which cancels a claim's,
        may have looked before they were placed)."""
        from klineo.store.strategies import get_strategy

        current = get_strategy(self.strategy.user_id, self.strategy.strategy_id, consistent=True)
        if current is None:
            self.disarm(self.claimed_ids(claim))
            return
        stored = current.protective or {}
        if (stored.get("parent_client_order_id") == self.parent
                and int(stored.get("generations", 1)) != int(self.record.get("generations", 1))):
            self.disarm(self.claimed_ids(claim))

    def remove_all(self) -> bool:
        """Every percent cleared: cancel every order the position had (each role, each generation, and the
        ``superseded`` ones an earlier entry or re-pricing left), forget the record."""
        from klineo.services.protective_siblings import recorded_protective_ids

        old = self.record
        if not self.disarm(recorded_protective_ids({**old, "parent_client_order_id": self.parent})):
            return self.failed(old, {}, "The protective orders could not all be cancelled; tried again next "
                               "turn.", "cancel_failed")
        event = self.make_event("protective_repriced", mode="live", **level_details(levels(old), {}),
                                quantity=abs(self.held))
        return self.write(None, [event] if levels(old) else []) or True

    def abandon(self, claimed: dict[str, Any]) -> bool:
        """The percents went back to the armed levels: cancel what the unfinished claim placed."""
        self.note_cancelled(self.claimed_ids(claimed))
        return self.write({k: v for k, v in self.record.items() if k != "repricing"}) or True

    def retire(self) -> bool:
        """Cancel again what an earlier re-pricing could not cancel (``superseded``); False when none."""
        superseded = self.record.get("superseded")
        if not superseded or not self.disarm([str(i) for i in superseded]):
            return False
        return self.write({k: v for k, v in self.record.items() if k != "superseded"}) or True

    def quantities(self) -> dict[str, Decimal]:
        """An event's ``quantity`` (the position's) and ``old_quantity`` when the orders were for another."""
        old = decimal_or_none(self.record.get("quantity"))
        held = abs(self.held)
        return {"quantity": held, **({"old_quantity": old} if old is not None and old != held else {})}

    def claimed_ids(self, claim: dict[str, Any]) -> list[str]:
        """The clientAlgoIds a claim places (its roles, of its generation)."""
        return _claim_ids(self.parent, claim)

    def note_cancelled(self, client_algo_ids: Sequence[str]) -> None:
        """Cancel these orders if open; the ones that could not be are kept in ``superseded`` (the record
        written next carries it) and cancelled again on the next turns."""
        if client_algo_ids and not self.disarm(client_algo_ids):
            superseded = {str(i) for i in self.record.get("superseded") or []} | set(client_algo_ids)
            self.record["superseded"] = sorted(superseded)

    def failed(self, record: dict[str, Any], new: dict[str, Decimal], message: str, category: str) -> bool:
        """The old orders stay: ``record`` (the claim kept or dropped) with an error event. Not written as
        the strategy was deleted meanwhile (or a newer claim won), what the claim kept placed is nobody's: it
        is cancelled (``drop_if_superseded``), an order whose outcome is not known looked up by its cancel."""
        logger.warning("protective orders not re-priced", extra={
            "strategy_id": self.strategy.strategy_id, "category": category})
        if self.record.get("superseded"):
            record["superseded"] = self.record["superseded"]
        if self.write(record, [self.error_event(new, message, category)]):
            self.record = record
        elif record.get("repricing"):
            self.drop_if_superseded(record["repricing"])
        return True

    def error_event(self, new: dict[str, Decimal], message: str, category: str) -> StrategyEvent:
        """The ``protective_not_repriced`` error event of a re-pricing to ``new``, failed or refused."""
        return self.make_event("error", what="protective_not_repriced", category=category, message=message,
                               **level_details(levels(self.record), new), **self.quantities())

    # ------------------------------------------------------------------ Binance and the store
    def disarm(self, client_algo_ids: Sequence[str]) -> bool:
        """Cancel those of ``client_algo_ids`` still open; True when none is left."""
        from klineo.services.strategy_protection import disarm_protective_orders

        return disarm_protective_orders(self.connection, client_algo_ids)

    def write(self, record: dict[str, Any] | None, events: Sequence[StrategyEvent] = (),
              **claim: Any) -> bool:
        """Record the live position's ``protective`` (conditional on the position and its entry; a claim's
        ``seen_generations`` / ``entry_update``: ``klineo.store.runs.replace_protective``)."""
        strategy = self.strategy
        # Every write holds the generations this attempt read or claimed: a stale attempt never writes
        # its record over a newer claim's (its orders would be forgotten, a generation claimed twice).
        claim.setdefault("seen_generations", int(self.record.get("generations", 1)))
        written = replace_protective(strategy.user_id, strategy.strategy_id, record, held=self.held,
                                     parent=self.parent, events=events, first=self.first, **claim)
        if written:
            self.first = False
        else:
            logger.info("strategy moved while its protective orders were re-priced",
                        extra={"strategy_id": strategy.strategy_id})
        return written
