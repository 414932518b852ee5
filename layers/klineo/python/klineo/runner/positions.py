"""The exchange's truth for live strategies: positions read once per worker batch, and why one vanished.

A live strategy believes it holds ``live_position`` (its own fills). Binance may have closed it
since: by hand (web app, API), by a protective stop-loss/take-profit, by liquidation or by ADL.
Before a live strategy acts on its belief, the runner reads the account's position on the symbol
(GET /fapi/v3/positionRisk, weight 5): the row of positionSide BOTH in one-way mode; in hedge mode the
side the belief is on (LONG for a long, SHORT for a short: the other side is not the strategy's) and:

- belief 0: nothing to check (a position the strategy did not open is not its business);
- the exchange holds less than the belief on the same side, nothing, or the other side: the
  strategy's position was closed (wholly or in part) outside it. The runner appends ONE
  ``position_closed`` event for the candle with its cause, sets the belief to what is left (0 when
  gone; its stops still open, a fired one's siblings, are then cancelled: left armed, one would close
  the strategy's next position at the old levels), and only then decides. It never sends a reduce
  order into nothing, and never doubles on a stale belief. After a full close the signal that opened
  the position does not re-open it: the strategy waits for its signal to change
  (``klineo.runner.trading.apply_direction``).
- Cause (facts §8): a forced order (GET /fapi/v1/forceOrders, weight 20, only on a mismatch, from the
  strategy's last own fill on, of the positionSide read above: in hedge mode the other side's are not
  the strategy's; and on the side that closes it: in one-way mode a BUY one closed a short of the account,
  the user's own, never the strategy's long) with clientOrderId ``autoclose-…`` is a liquidation,
  ``adl_autoclose`` an ADL;
  otherwise, when a protective order the strategy placed stood (``standing_stops``: any of an armed
  record; of one not armed, its entry's orders refused or kept off in part, one Binance took; and beside
  them an earlier one whose cancel failed, ``superseded``, or one an unfinished re-pricing placed, each one
  Binance took: ``closing_stops``), those are read on Binance (GET /fapi/v1/algoOrder, weight 1 each, and
  a fired one's order, weight 1; only then): "protective" when one of them fired and its order executed,
  "manual" when none did (a close by hand, or by another order of the account, while the stops stood),
  "unknown" when one could not be read; with no
  stop standing, "manual". An unknown cause is settled later: the correction keeps the stops read
  (``unknown_close``), and each next turn of the strategy reads them (only then; ``stops_cause``) until
  Binance answers for all, at most ``UNKNOWN_CLOSE_READS`` turns; the turn that reads them removes it in one
  write with a ``close_cause_settled`` event (protective or manual, naming the close), so once.
  A liquidation or ADL closed the strategy's own position: its fills (userTrades, weight 5 per forced order)
  go into the strategy's live PnL in the correction's write (``klineo.runner.pnl.forced_fills``), as a stop's
  are booked by the reconciler; a manual trade is the user's own, not counted. Once: that write also records
  the forced orders it counted (``forced_booked``: the last one's time, the ids made then), and a later
  correction (the rest of a partly liquidated position closed) reads the forced orders after them only.
  While Binance lists fewer of their fills than they executed, the book counts an estimate, kept in the
  same write on each forced order's record (``forced_order_record``, the key the reconciler records it
  under), which the reconciler replaces with Binance's fills once it reads them.

Weight budget (Binance: 2,400 request weight per minute per IP, facts §3 and §16). The goal is
10,000 strategies over 100 markets. Reading every strategy's position every minute would cost
10,000 x 5 = 50,000 weight a minute: twenty times the budget. So the runner reads
- once per connection per worker batch: GET /fapi/v3/positionRisk without a symbol costs the same
  5 and answers for every symbol of the account, so all strategies of one connection in a batch
  share one read (``PositionBook``);
- only for LIVE strategies with a non-zero belief, and only where it matters: when the decision
  would send an order (the order must not be built on a stale position) or when the strategy has
  protective orders recorded (a triggered stop must be recorded at the next tick) or percents set for
  a position entered without any (its orders are placed only on a checked position,
  ``klineo.runner.reprice``). A strategy that holds without either is not read: its closed position is
  seen before its next order.
Paper strategies never read (their simulated position is the truth).
With mixed intervals (about 700 evaluations a minute at an average 15m interval) and one order in
20 evaluations, that is about 35 reads (175 weight) plus one per connection with a protected
position, next to about 200 weight of klines for 100 markets: inside the budget. The worst case
(every strategy on 1m, protected, on its own connection) does not fit: the client's weight limiter
(``klineo.binance.ratelimit``) then delays calls into the next window, and a read that cannot be
made in the invocation's time fails the message for redelivery (nothing is sent on an unverified
position). ``bench/runner_tick.py`` reports the reads and their weight per tick.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from klineo.binance import Market, get_client
from klineo.binance.endpoints import futures_force_orders, futures_position_risk
from klineo.errors import ErrorCategory, KlineoError
from klineo.runner.reprice import armed_ids, named_ids, unrecorded_ids
from klineo.services.key_health import READ, note_key_outcome
from klineo.services.orders import OrderResult
from klineo.store.connections import Connection, connection_credentials
from klineo.store.orders import OrderRecord
from klineo.store.strategies import Strategy
from klineo.timestamps import utc_iso

__all__ = [
    "FORCE_ORDERS_WEIGHT",
    "POSITION_READ_WEIGHT",
    "UNKNOWN_CLOSE_READS",
    "PositionBook",
    "closing_cause",
    "closing_stops",
    "forced_booked",
    "forced_closes",
    "forced_order_record",
    "position_left",
    "purged_order_position",
    "standing_stops",
    "stops_cause",
]

POSITION_READ_WEIGHT = 5
FORCE_ORDERS_WEIGHT = 20
# How many of a strategy's next turns read the stops of a close whose cause was unknown (``unknown_close``)
# before it stays unknown: a stop Binance no longer knows is never read, and a failing read is not tried
# every turn for good.
UNKNOWN_CLOSE_READS = 3


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    amounts: dict[tuple[str, str], Decimal] | None = None


class PositionBook:
    """One worker batch's positions, read lazily once per connection and shared by its strategies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}
        self.reads = 0
        self.weight = 0

    def _entry(self, connection: Connection) -> _Entry:
        with self._lock:
            return self._entries.setdefault((connection.user_id, connection.connection_id), _Entry())

    def amount(self, connection: Connection, symbol: str, position_side: str = "BOTH") -> Decimal:
        """The account's position on ``symbol``'s ``position_side`` (BOTH: one-way; LONG / SHORT: hedge mode,
        a short negative), 0 when none; KlineoError when unreadable."""
        entry = self._entry(connection)
        with entry.lock:
            if entry.amounts is None:
                entry.amounts = self._read(connection)
            return entry.amounts.get((symbol, position_side), Decimal(0))

    def _read(self, connection: Connection) -> dict[tuple[str, str], Decimal]:
        client = get_client(Market.FUTURES, connection.environment)
        rows = futures_position_risk(client, connection_credentials(connection))
        # The key read: what a read disproves of its count is cleared, once a batch and connection, written
        # only when the connection's item (the batch's) holds such a count: a hold costs nothing more.
        note_key_outcome(connection, None, READ)
        with self._lock:
            self.reads += 1
            self.weight += POSITION_READ_WEIGHT
        amounts: dict[tuple[str, str], Decimal] = {}
        try:
            for row in rows:
                side = str(row.get("positionSide") or "BOTH")
                amounts[(str(row["symbol"]), side)] = Decimal(str(row["positionAmt"]))
        except (KeyError, ArithmeticError, TypeError):
            raise KlineoError(ErrorCategory.OTHER, "Binance sent an unreadable position list") from None
        return amounts


def position_left(belief: Decimal, exchange: Decimal) -> Decimal | None:
    """What is left of the strategy's ``belief`` given the account's position; None when it stands."""
    if belief == 0:
        return None
    if exchange == 0 or (exchange > 0) != (belief > 0):
        return Decimal(0)
    if abs(exchange) < abs(belief):
        return exchange
    return None


def purged_order_position(before: Decimal, filled: Decimal, exchange: Decimal) -> Decimal:
    """The strategy's position after its order Binance no longer knows (purged: what it executed can no longer
    be read), from ``before`` it to ``filled`` had it filled in full: the account's position on the side,
    ``exchange``, kept within that span. The order did between nothing and all of it; what Binance holds says
    how much, and a trade of someone else's on the symbol never moves the strategy past its own order."""
    return min(max(exchange, min(before, filled)), max(before, filled))


def _forced_cause(order: dict[str, Any]) -> str | None:
    """liquidation or adl for a forced order of Binance's engines (by its clientOrderId), else None."""
    client_id = str(order.get("clientOrderId", ""))
    if client_id.startswith("autoclose-"):
        return "liquidation"
    return "adl" if client_id == "adl_autoclose" else None


def _forced_time(order: dict[str, Any]) -> int:
    """When Binance made a forced order (its ``time``, else ``updateTime``), in ms."""
    return int(order.get("time") or order.get("updateTime") or 0)


def forced_closes(connection: Connection, strategy: Strategy, position_side: str) -> list[dict[str, Any]]:
    """The account's liquidation and ADL orders on the strategy's symbol (forceOrders) since its last own fill
    that no correction of its position counted yet (``forced_booked``), oldest first; only those of the
    ``position_side`` its position was on (BOTH one-way; in hedge mode the other side's are not its own), and
    on the side that closes it (a SELL closes a long): in one-way mode a BUY one closed a short of the
    account's (the user's own, made in Binance's app), never the strategy's long."""
    booked = strategy.forced_booked or {}
    since = max(strategy.last_fill_ms or 0, int(booked.get("time", 0))) or None
    counted = {int(order_id) for order_id in booked.get("order_ids", ())}
    closing = "SELL" if strategy.live_position > 0 else "BUY"
    client = get_client(Market.FUTURES, connection.environment)
    forced = futures_force_orders(client, connection_credentials(connection), strategy.symbol, since)
    return [order for order in forced
            if _forced_cause(order) is not None and int(order["orderId"]) not in counted
            and str(order.get("positionSide") or "BOTH") == position_side
            and str(order.get("side", closing)) == closing]


def forced_booked(strategy: Strategy, forced: list[dict[str, Any]]) -> dict[str, Any]:
    """The strategy's ``forced_booked`` once the correction counted ``forced`` (``forced_closes``, at least
    one): the time of the last of them and the ids of those made then (with the ones counted before at that
    same time), from which ``forced_closes`` reads on, so that a later close never counts them again."""
    last = max(_forced_time(order) for order in forced)
    before = strategy.forced_booked or {}
    ids = {int(order_id) for order_id in before.get("order_ids", ())} if before.get("time") == last else set()
    ids.update(int(order["orderId"]) for order in forced if _forced_time(order) == last)
    return {"time": last, "order_ids": sorted(ids)}


def forced_order_record(connection: Connection, order: dict[str, Any],
                        booked_estimate: dict[str, Any]) -> OrderRecord:
    """The record of a forced order (``forced_closes``) keeping what a strategy's live book counted for it by
    estimate: the record the reconciler keeps of that order (``<liquidation|adl>-<orderId>``, origin the
    cause), not written here (``klineo.store.orders.estimate_kept_update``)."""
    cause = _forced_cause(order)
    assert cause is not None
    created = _forced_time(order)
    when = utc_iso(created, zulu=True)
    return OrderRecord(
        user_id=connection.user_id, client_order_id=f"{cause}-{order['orderId']}",
        connection_id=connection.connection_id, symbol=str(order["symbol"]), request={}, params={},
        status=str(order.get("status", "FILLED")), attempt_ms=created, created_at=when, updated_at=when,
        order_id=int(order["orderId"]), result=OrderResult.from_binance(order, "queried").to_record(),
        origin=cause, booked_estimate=booked_estimate,
    )


def closing_cause(connection: Connection, strategy: Strategy,
                  forced: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """(liquidation, adl, protective, manual or unknown: who closed the strategy's position, as Binance says
    (see the module doc), given the forced orders since its last own fill not counted before
    (``forced_closes``); the stops read). Without one, the stops its record has standing (``closing_stops``:
    with the earlier ones kept after a failed cancel and an unfinished re-pricing's) are read on Binance
    (``stop_filled``): protective only when one of them fired and executed."""
    if forced:
        cause = _forced_cause(forced[-1])
        assert cause is not None
        return cause, []
    stops = closing_stops(strategy.user_id, strategy.protective)
    return (stops_cause(connection, stops) or "unknown") if stops else "manual", stops


def stops_cause(connection: Connection, stops: list[str]) -> str | None:
    """protective when one of ``stops`` fired and its order executed, as Binance says now (``stop_filled``),
    manual when none did, None when one could not be read."""
    # Loaded here: only a position found closed while its stops stood reaches this line (cold start).
    from klineo.services.strategy_protection import stop_filled

    filled = stop_filled(connection, stops)
    return None if filled is None else "protective" if filled else "manual"


def closing_stops(user_id: str, record: dict[str, Any] | None) -> list[str]:
    """The clientAlgoIds of every stop of the strategy's that may have closed its position: the ones its
    record has standing (``standing_stops`` with ``fired``), and those it keeps beside them that Binance took
    and that stand or fired by their order records (``stops_standing``): an earlier order whose cancel
    failed (``superseded``: a re-pricing or a reduction replaced it, it stayed armed) and one an unfinished
    re-pricing placed (``unrecorded_ids``)."""
    stops = list(standing_stops(user_id, record, fired=True).values())
    kept = [str(i) for i in [*((record or {}).get("superseded") or []), *unrecorded_ids(record)]]
    kept = list(dict.fromkeys(i for i in kept if i not in stops))
    if not kept:
        return stops
    # Loaded here: only a record keeping such orders reaches this line (cold start).
    from klineo.services.strategy_protection import stops_standing

    return stops + list(stops_standing(user_id, {i: i for i in kept}, fired=True).values())


def standing_stops(user_id: str, record: dict[str, Any] | None, *, fired: bool = False) -> dict[str, str]:
    """Role -> clientAlgoId of the orders a live protective ``record`` has standing on Binance: each one an
    armed record names (nothing read); of a record not armed (its entry's orders refused or kept off in part,
    ``klineo.runner.reprice``), those of the ones it names that Binance took and that stand by their order
    records (``stops_standing``, one BatchGetItem; ``fired``: one that fired too)."""
    if not record or record.get("armed") is True:
        return armed_ids(record)
    named = named_ids(record)
    if not named:
        return {}
    # Loaded here: only a record whose entry's orders were not all placed reaches this line (cold start).
    from klineo.services.strategy_protection import stops_standing

    return stops_standing(user_id, named, fired=fired)
