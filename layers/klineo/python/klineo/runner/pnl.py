"""A strategy's PnL: realised from its fills (fees included) and unrealised at the mark, paper and live.

Paper: the ``simulation.Ledger`` of ``klineo.runner.paper`` (the backtest's ledger: same fees, same
slippage). Live: what Binance did. When a live order settles, its fills are read back (GET
/fapi/v1/userTrades by orderId, pages of 1000, weight 5 each, facts §8) and their ``realizedPnl`` and
``commission`` (USDT) are added to the strategy's ``live_book`` in the same conditional write that settles
the order, so each order counts once; that write also stores them on the order's record (``Fills.stored``:
its order history complete, the record settled, so the reconciler never reads the order again). Only while
the minute's request weight leaves room (``klineo.runner.execution.FILLS_READ_RESERVE``, weighed before each
page: an order of many pages must not spend what the strategies' orders need), the read works and the trades
listed add up to the order's executed quantity: otherwise, also when the weight ran out after its first
pages (their partial sum is never booked as exact), the fill is estimated (its average price, the taker fee,
the PnL against the strategy's own entry), counted in ``estimated_fills``, and what was counted for it is
kept on the order's record (``booked_estimate``). An order answered without its average price is priced from
the fills read (their average, ``Fills.price``), else estimated at its decision candle's close
(``klineo.runner.execution``). The reconciler reads the fills of every strategy order whose record has none
for its order history; for an estimated one it then books Binance's own figures in place of the estimate
(``book_exact``; an entry priced at its decision candle's close then gets its fills' average price as
the book's ``entry_price``), in one write with the record, once, so an estimated book becomes exact again
within a reconciler run. The book's ``entry_price`` is the average entry of the strategy's own position
(``moved_entry``), from which the unrealised PnL at the mark follows: ``(mark - entry_price) x position``. A
commission paid in another asset (BNB) is not converted: it is left out of ``fees`` and counted in
``fees_other_assets``.

The book also names ``entry_client_order_id``: the strategy's order that opened, grew or flipped the
position (``is_entry``), kept on a reduction, dropped when flat. It is written here, in the settle's
write, because it is the position's other fact beside ``entry_price``: percents added to a position
entered without any are placed as that order's protective orders (``klineo.runner.reprice``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

from klineo.binance import Credentials
from klineo.binance.endpoints import futures_order_trades
from klineo.errors import KlineoError
from klineo.observability import logger
from klineo.runner.paper import ledger_of
from klineo.services.key_health import is_key_failure
from klineo.store.order_fills import FEE_ASSET, FillTotals, stored_fills
from klineo.store.orders import NOTHING_COUNTED
from klineo.store.strategies import Strategy
from klineo.strategies.simulation import fee

__all__ = ["Fills", "book_exact", "estimated_fills", "fills_of", "fills_totalled", "forced_estimates",
           "forced_fills", "forced_share", "is_entry", "live_book_after", "moved_entry", "read_fills",
           "strategy_pnl"]

_ZERO = Decimal(0)


def is_entry(before: Decimal, after: Decimal) -> bool:
    """True when a fill opened, grew or flipped a position (an entry that wants protective orders)."""
    return after != 0 and (abs(after) > abs(before) or after * before < 0)


def moved_entry(position: Decimal, entry: Decimal, signed_fill: Decimal, price: Decimal) -> Decimal:
    """The average entry after a fill: averaged when adding, kept when reducing, reset when flat/flipped."""
    after = position + signed_fill
    if after == 0:
        return _ZERO
    if position == 0 or (after > 0) != (position > 0):
        return price
    if abs(after) > abs(position):
        return (entry * abs(position) + price * abs(signed_fill)) / abs(after)
    return entry


class Fills(NamedTuple):
    """What an order's fills add to a live book: realised PnL before fees, USDT fees, fees in other assets."""

    realised: Decimal
    fees: Decimal
    other: int
    estimated: bool = False
    # The fills' average price (userTrades read back): the order's when its answer lacked avgPrice; of an
    # estimate, the price it was estimated at when that was unknown too (the decision candle's close).
    price: Decimal | None = None
    # Binance's fills as the order's record keeps them (``fills``, ``fills_summary``), written by the settle
    # so that the reconciler has nothing left to read of the order; None for an estimate.
    stored: Mapping[str, Any] | None = None

    def recorded(self) -> dict[str, Decimal]:
        """The estimate as kept on the order's record (``booked_estimate``) until Binance's is booked; with
        the ``price`` it was estimated at when the fill price itself was unknown."""
        recorded = {"realised": self.realised, "fees": self.fees}
        return recorded if self.price is None else {**recorded, "price": self.price}


def fills_of(trades: Iterable[tuple[Any, Any, Any]]) -> Fills:
    """The sum of (realized PnL, commission, commission asset) of an order's trades, as Binance gave them."""
    realised, fees, other = _ZERO, _ZERO, 0
    for pnl, commission, asset in trades:
        realised += Decimal(str(pnl))
        if str(asset) == FEE_ASSET:
            fees += Decimal(str(commission))
        else:
            other += 1
    return Fills(realised, fees, other)


def fills_totalled(totals: FillTotals) -> Fills:
    """``fills_of`` an order's stored fills, from their exact totals (``klineo.store.order_fills``: a record
    lists at most ``FILLS_KEPT`` of them)."""
    other = sum(n for asset, n in totals.commission_fills.items() if asset != FEE_ASSET)
    price = totals.value / totals.quantity if totals.quantity > 0 else None
    return Fills(totals.realized_pnl, totals.commission.get(FEE_ASSET, _ZERO), other, price=price)


class _NoWeightToSpare(Exception):
    """The minute's spare request weight fell under the fills read's reserve before its next page."""


def read_fills(client_creds: tuple[Any, Credentials], symbol: str, order_id: int, executed: Decimal, *,
               reserve: int, priced: bool = False) -> Fills | None:
    """Binance's fills of ``order_id`` (userTrades, weight 5 a page of 1000: one for most orders, every page
    read) with the turn's futures client and keys, as booked and as stored (``Fills.stored``); with ``priced``
    (the order's answer lacked its avgPrice) also their average price (``price``). Each page is sent only
    while the client's spare weight is at least ``reserve``; None when it is not (before the first page or a
    later one), or when the trades listed do not add up to the ``executed`` quantity (not all listed yet):
    the caller estimates, and the reconciler books Binance's fills later."""
    try:
        rows = _weighed_trades(client_creds, symbol, [order_id], reserve)
    except _NoWeightToSpare:
        return None
    traded = [(Decimal(str(row.get("price", "0"))), Decimal(str(row.get("qty", "0")))) for row in rows]
    if sum((qty for _, qty in traded), _ZERO) != executed:
        return None
    fills = _fills_of_rows(rows)._replace(stored=stored_fills(rows))
    if not priced or executed <= 0:
        return fills
    return fills._replace(price=sum((price * qty for price, qty in traded), _ZERO) / executed)


def _weighed_trades(client_creds: tuple[Any, Credentials], symbol: str, order_ids: Iterable[int],
                    reserve: int) -> list[dict[str, Any]]:
    """The userTrades rows of each of ``order_ids`` in turn, each page sent only while the client's spare
    weight is at least ``reserve`` (_NoWeightToSpare before one that is not)."""
    client, creds = client_creds

    def weighed(send: Any, *args: Any, **kwargs: Any) -> Any:
        if client.spare_weight() < reserve:
            raise _NoWeightToSpare
        return send(*args, **kwargs)

    return [row for order_id in order_ids
            for row in futures_order_trades(client, creds, symbol, order_id, via=weighed)]


def _fills_of_rows(rows: Iterable[Mapping[str, Any]]) -> Fills:
    """``fills_of`` Binance's userTrades ``rows``."""
    return fills_of((row.get("realizedPnl", "0"), row.get("commission", "0"),
                     row.get("commissionAsset", "USDT")) for row in rows)


def estimated_fills(strategy: Strategy, signed_fill: Decimal, price: Decimal,
                    position_before: Decimal) -> Fills:
    """A fill whose trades were not read: the taker fee, the PnL of the part it closed from our own entry."""
    entry = Decimal(str((strategy.live_book or {}).get("entry_price", 0)))
    closed = min(abs(signed_fill), abs(position_before)) if signed_fill * position_before < 0 else _ZERO
    direction = 1 if position_before > 0 else -1
    return Fills((price - entry) * closed * direction, fee(signed_fill, price), 0, estimated=True)


def forced_fills(client_creds: tuple[Any, Credentials], strategy: Strategy,
                 forced: Sequence[Mapping[str, Any]], moved: tuple[Decimal, Decimal],
                 price: Decimal, *, reserve: int) -> Fills:
    """What Binance's liquidation / ADL orders ``forced`` (``klineo.runner.positions.forced_closes``, at least
    one), which moved the strategy's position from moved[0] to moved[1], add to its live book: their fills
    (userTrades), the strategy's share of them when they closed more than its own (``forced_share``: the
    account's position on the symbol may hold another strategy's or the user's too). Each page is read only
    while the client's spare weight is at least ``reserve``, as ``read_fills`` reads. Estimated
    (``estimated_fills``, at ``price``: the last one's average) when the weight ran out before all were read,
    when the read failed (``_forced_rows``), or while Binance lists fewer fills than they executed:
    ``forced_estimates`` keeps that estimate on their records for the reconciler to replace."""
    before, after = moved
    rows = _forced_rows(client_creds, strategy, forced, reserve)
    traded = sum((Decimal(str(row.get("qty", "0"))) for row in rows or ()), _ZERO)
    if rows is None or traded < _executed(forced):
        return estimated_fills(strategy, after - before, price, before)
    fills, closed = _fills_of_rows(rows), abs(before - after)
    return fills if traded <= closed else _shared(fills, closed / traded)


def _forced_rows(client_creds: tuple[Any, Credentials], strategy: Strategy,
                 forced: Sequence[Mapping[str, Any]], reserve: int) -> list[dict[str, Any]] | None:
    """The userTrades rows of the forced orders; None when the weight ran out or the read failed (a 503, a
    rate limit, the network: the position's correction is not held up by its fills, the reconciler reads
    them later). A refusal of the key itself (``is_key_failure``) is raised: the turn fails counting it, as
    a read of the position would."""
    try:
        return _weighed_trades(client_creds, strategy.symbol, [int(o["orderId"]) for o in forced], reserve)
    except _NoWeightToSpare:
        return None
    except KlineoError as exc:
        if is_key_failure(exc):
            raise
        logger.warning("forced order fills not read; PnL estimated with the taker fee", extra={
            "strategy_id": strategy.strategy_id, "category": str(exc.category)})
        return None


def _executed(forced: Sequence[Mapping[str, Any]]) -> Decimal:
    """What Binance says the forced orders executed in all (their ``executedQty``)."""
    return sum((Decimal(str(o.get("executedQty", "0"))) for o in forced), _ZERO)


def forced_share(forced: Sequence[Mapping[str, Any]], moved: tuple[Decimal, Decimal]) -> Decimal:
    """The strategy's share of the forced orders' fills: what they closed of its own position (moved[0] to
    moved[1]) over what they executed in all, at most 1."""
    executed = _executed(forced)
    return min(Decimal(1), abs(moved[0] - moved[1]) / executed) if executed > 0 else Decimal(1)


def _shared(fills: Fills, share: Decimal) -> Fills:
    """``fills`` scaled to a strategy's ``share`` of them (realised PnL and USDT fees)."""
    if share >= 1:
        return fills
    return fills._replace(realised=fills.realised * share, fees=fills.fees * share)


def forced_estimates(strategy: Strategy, forced: Sequence[Mapping[str, Any]], moved: tuple[Decimal, Decimal],
                     fills: Fills) -> dict[int, dict[str, Any]]:
    """The ``booked_estimate`` each forced order's record keeps (by orderId) when ``fills`` is an estimate
    ({} when it is Binance's own): the last one what the live book counted, the others ``counted`` False
    (their fills are added when read), each naming the strategy and its ``forced_share``, so the reconciler
    books the strategy's share of Binance's fills in the estimate's place (``book_exact``); a record keeps
    it beside other strategies' estimates of the same order (``klineo.store.orders.kept_estimates``)."""
    if not fills.estimated:
        return {}
    share = forced_share(forced, moved)
    named = {"strategy_id": strategy.strategy_id, "share": share}
    estimates = {int(o["orderId"]): {**NOTHING_COUNTED, **named} for o in forced[:-1]}
    estimates[int(forced[-1]["orderId"])] = {**fills.recorded(), **named}
    return estimates


def live_book_after(
    strategy: Strategy, fills: Fills, signed_fill: Decimal, price: Decimal, position_before: Decimal,
    client_order_id: str | None = None,
) -> dict[str, Any]:
    """The strategy's live book once this order's ``fills`` are in (read, or estimated); ``client_order_id``:
    the order's, the book's ``entry_client_order_id`` when it is an entry."""
    book = dict(strategy.live_book or {})
    entry = Decimal(str(book.get("entry_price", 0)))
    moved = {"entry_price": moved_entry(position_before, entry, signed_fill, price),
             **_counted(book, fills, 1)}
    after = position_before + signed_fill
    entry_order = client_order_id if is_entry(position_before, after) else book.get("entry_client_order_id")
    if entry_order and after != 0:
        moved["entry_client_order_id"] = entry_order
    return moved


def _counted(book: Mapping[str, Any], fills: Fills, sign: int) -> dict[str, Any]:
    """The book's PnL figures with ``fills`` added (``sign`` 1) or taken out again (-1)."""
    return {
        "realised_pnl": Decimal(str(book.get("realised_pnl", 0))) + sign * (fills.realised - fills.fees),
        "fees": Decimal(str(book.get("fees", 0))) + sign * fills.fees,
        "fees_other_assets": int(book.get("fees_other_assets", 0)) + sign * fills.other,
        "estimated_fills": max(0, int(book.get("estimated_fills", 0)) + (sign if fills.estimated else 0)),
    }


def book_exact(book: Mapping[str, Any], estimate: Mapping[str, Any], exact: Fills,
               client_order_id: str | None = None) -> dict[str, Any]:
    """``book`` with an order's Binance fills (``exact``; the strategy's ``share`` of them for a forced order,
    ``forced_estimates``) in place of the ``estimate`` it counted for it (``NOTHING_COUNTED``: none, the fills
    are simply added); and, when that order (``client_order_id``) is still the position's entry at the price
    it was estimated at, its fills' average price as the entry."""
    counted = Fills(Decimal(str(estimate["realised"])), Decimal(str(estimate["fees"])), 0,
                    estimated=estimate.get("counted", True) is not False)
    exact = _shared(exact, Decimal(str(estimate.get("share", 1))))
    booked = {**book, **_counted(_counted(book, counted, -1), exact, 1)}
    if _entry_estimated(book, estimate, client_order_id) and exact.price is not None:
        booked["entry_price"] = exact.price
    return booked


def _entry_estimated(book: Mapping[str, Any], estimate: Mapping[str, Any],
                     client_order_id: str | None) -> bool:
    """Whether the book's entry price is still the estimated price of the order ``client_order_id``."""
    guessed = estimate.get("price")
    return (guessed is not None and client_order_id is not None
            and book.get("entry_client_order_id") == client_order_id
            and Decimal(str(book.get("entry_price", 0))) == Decimal(str(guessed)))


def strategy_pnl(strategy: Strategy, mark: Decimal | None) -> dict[str, Decimal | int | None]:
    """realised_pnl (fees included), fees, entry_price, unrealised_pnl at ``mark``, current mode; live, the
    fills counted by estimate and those whose commission was in another asset (left out of ``fees``)."""
    estimated = other_assets = 0
    if strategy.mode == "paper":
        ledger = ledger_of(strategy)
        realised, fees = ledger.realised_pnl, ledger.fees
        entry, position = ledger.entry_price, ledger.position
    else:
        book = strategy.live_book or {}
        realised = Decimal(str(book.get("realised_pnl", 0)))
        fees = Decimal(str(book.get("fees", 0)))
        entry, position = Decimal(str(book.get("entry_price", 0))), strategy.live_position
        estimated = int(book.get("estimated_fills", 0))
        other_assets = int(book.get("fees_other_assets", 0))
    unrealised = (mark - entry) * position if mark is not None and position != 0 and entry else None
    return {"realised_pnl": realised, "fees": fees, "entry_price": entry if position else None,
            "unrealised_pnl": _ZERO if position == 0 else unrealised, "mark_price": mark,
            "estimated_fills": estimated, "fees_other_assets": other_assets}
