"""A paper strategy's book: simulated fills, fees, PnL and stop-loss/take-profit (``simulation.Ledger``).

Paper mode and the backtest share ``klineo.strategies.simulation`` (fill price with slippage,
taker fee, sizing, protective levels and exits, the ledger), so the same candles give the same
trades. The strategy item keeps the ledger's state between candles: ``paper_position`` and
``paper_book`` (``entry_price``, ``gross_pnl``, ``fees``, and ``protective``: the levels of the open
paper position, ``mode`` "paper"). The strategy's own ``protective`` attribute belongs to the LIVE
position (its armed algo orders): a strategy switched between modes holds both positions, and a
paper fill must never overwrite the record that disarms the live one's stops (nor a live fill the
paper one's). Items written before keep their paper record in ``protective``; it is still read.
A trailing stop is live-only (ignored here). The book also keeps the open position's
``entry_close_time``, so its exits are checked on every candle since its entry, levels or none.

Every candle, even one older than the turn's window (the klines the worker reads): the levels stand while
the strategy is paused, as a live position's stop orders stay armed on Binance, and while the runner does
not play its turns (a kill switch, lost ticks, the live mode). When the window does not reach back to the
candle after the last one checked (``unchecked_since``), the turn reads the candles between first
(``klineo.runner.candles.CandleGroup.since``) and, when none of them closes the position, the book keeps
``checked_close_time``, the turn's candle: the candles up to it are never read again (a position held
longer than the window costs one small klines request and one write per window length, not per turn).
A long gap is scanned coarse to fine (``klineo.runner.candles.first_closing``) on the position's exit rule
(``exit_levels``): only its first candle that closes the position is read at the strategy's interval.

Liquidation (``simulation.position_exit``, the backtest's rule): a candle whose low (long) or high
(short) reaches the price where the paper equity after the closing fee is zero closes the position
there (``liquidation``); the paper equity is then 0 and the runner pauses the strategy
(``PAPER_LIQUIDATED``).

``paper_balance_usdt`` is the paper account's starting capital: the ledger's equity is it plus the
realised PnL of the book (``ledger_of``). A PATCH of it restarts the ledger from the new capital (the
book removed) while the paper position is flat, and is refused while it is open
(``klineo.services.strategy_updates``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from klineo.binance import Candle
from klineo.store.strategies import Strategy
from klineo.strategies.simulation import (
    Ledger,
    PriceRange,
    Trade,
    liquidation_price,
    position_exit,
    protective_prices,
)
from klineo.validation import decimal_or_none, plain_text

__all__ = [
    "LIQUIDATED_MESSAGE",
    "MARGIN_GATE",
    "MARGIN_MESSAGE",
    "PAPER_LIQUIDATED",
    "PaperExit",
    "PaperLevels",
    "book_of",
    "exit_levels",
    "ledger_of",
    "legacy_paper_levels",
    "live_percents",
    "paper_exit",
    "paper_protective",
    "protective_details",
    "protective_record",
    "protective_targets",
    "unchecked_since",
]

_ZERO = Decimal(0)
# The pause reason of a paper strategy whose position was liquidated (its paper equity is 0), and what
# its ``paused`` event tells the trader.
PAPER_LIQUIDATED = "paper_liquidated"
LIQUIDATED_MESSAGE = ("The paper position was liquidated: the paper equity is 0 and nothing is left to "
                      "trade with. Send paper_balance_usdt (the capital the paper ledger starts again from) "
                      "to resume the strategy.")
# The gate (and skip reason) of a paper entry whose initial margin does not fit the paper equity (the
# backtest's skipped_reasons key), and what its ``risk_block`` event tells the trader.
MARGIN_GATE = "insufficient_margin"
MARGIN_MESSAGE = ("The entry was not taken: its initial margin (quantity x close / leverage) is above the "
                  "paper equity. Lower the size or raise paper_balance_usdt.")


def ledger_of(strategy: Strategy) -> Ledger:
    """The strategy's paper ledger as stored (an open position becomes the ledger's open trade)."""
    book = strategy.paper_book or {}
    ledger = Ledger(
        starting_equity=strategy.settings.paper_balance_usdt, position=strategy.paper_position,
        entry_price=_book_number(book, "entry_price"), gross_pnl=_book_number(book, "gross_pnl"),
        fees=_book_number(book, "fees"),
    )
    if ledger.position != 0:
        side = "long" if ledger.position > 0 else "short"
        entered = int(_book_number(book, "entry_close_time"))  # 0: an item written before it was kept
        ledger.trades.append(Trade(side, entered, ledger.entry_price, abs(ledger.position), Decimal(0)))
    return ledger


def _book_number(book: dict[str, Any], name: str) -> Decimal:
    """A stored book number as a Decimal, 0 when absent (``is None``: a stored 0.00 stays as it is)."""
    number = decimal_or_none(book.get(name))
    return _ZERO if number is None else number


def book_of(ledger: Ledger, protective: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the strategy item stores of a ledger besides the position (with the open position's levels)."""
    book: dict[str, Any] = {"entry_price": ledger.entry_price, "gross_pnl": ledger.gross_pnl,
                            "fees": ledger.fees}
    trade = ledger.open_trade
    if trade is not None and trade.entry_time:
        book["entry_close_time"] = trade.entry_time
    if protective and ledger.position != 0:
        book["protective"] = dict(protective)
    return book


def legacy_paper_levels(strategy: Strategy) -> dict[str, Any] | None:
    """An item written before paper levels moved to ``paper_book``: its paper record in ``protective``."""
    legacy = strategy.protective
    return dict(legacy) if legacy and legacy.get("mode") == "paper" else None


def paper_protective(strategy: Strategy) -> dict[str, Any] | None:
    """The protective levels of the open paper position (``paper_book``; older items: ``protective``)."""
    record = (strategy.paper_book or {}).get("protective")
    return dict(record) if record else legacy_paper_levels(strategy)


def protective_record(
    strategy: Strategy, side: str, entry_price: Decimal, mode: str,
) -> dict[str, Any] | None:
    """The stop-loss/take-profit (and live, the trailing stop) wanted for an entry on ``side`` at
    ``entry_price``; None when none is set."""
    settings = strategy.settings
    trailing = settings.trailing_stop_pct if mode == "live" else None
    if settings.stop_loss_pct is None and settings.take_profit_pct is None and trailing is None:
        return None
    sl, tp = protective_prices(side, entry_price, settings.stop_loss_pct, settings.take_profit_pct)
    record: dict[str, Any] = {"mode": mode, "entry_side": side, "entry_price": entry_price, "armed": False}
    record.update({k: v for k, v in (("stop_loss", sl), ("take_profit", tp)) if v is not None})
    if trailing is not None:
        record["trailing_stop_pct"] = trailing
    return record


def protective_details(record: Mapping[str, Any]) -> dict[str, Any]:
    """An event's details of a live protective record: its levels, quantity and entry."""
    names = ("stop_loss", "take_profit", "trailing_stop_pct", "quantity", "entry_price", "entry_side")
    return {k: record[k] for k in names if k in record}


def live_percents(strategy: Strategy) -> dict[str, str]:
    """The stop-loss / take-profit / trailing percents set for the live position, as plain text ({}: none)."""
    settings = strategy.settings
    wanted = {"stop_loss_pct": settings.stop_loss_pct, "take_profit_pct": settings.take_profit_pct,
              "trailing_stop_pct": settings.trailing_stop_pct}
    return {k: plain_text(v) for k, v in wanted.items() if v is not None}


# The key of each protective role's level in a protective record (a trailing stop's: its callbackRate).
_LEVEL_OF_ROLE = {"stop_loss": "stop_loss", "take_profit": "take_profit",
                  "trailing_stop": "trailing_stop_pct"}


def protective_targets(record: Mapping[str, Any]) -> dict[str, Any]:
    """Role -> level of the protective orders a record (or a map of levels) asks for: the ``targets`` of
    ``klineo.services.strategy_protection.arm_strategy_protection``."""
    return {role: record[key] for role, key in _LEVEL_OF_ROLE.items() if record.get(key) is not None}


def _closed_since(candles: Sequence[Candle], close_time: Decimal) -> list[Candle]:
    """The candles (oldest first) closed after ``close_time``: scanned from the newest, since they are
    the last few of the turn's window (usually one), not the whole lookback."""
    after: list[Candle] = []
    for candle in reversed(candles):
        if candle.close_time <= close_time:
            break
        after.append(candle)
    return after[::-1]


def _checked_until(strategy: Strategy, protective: Mapping[str, Any], ledger: Ledger) -> int | None:
    """The close time of the last candle the open paper position's exits need not be checked on: the
    latest of its entry's candle (it entered at that close), its levels' record's ``entry_close_time``
    (re-priced levels, ``klineo.runner.reprice``, count from the turn that moved them only; the candles
    before it were checked against the old ones) and the book's ``checked_close_time``; None when the
    position's entry time was never kept."""
    since = [t for t in (ledger.trades[-1].entry_time if ledger.trades else None,
                         decimal_or_none(protective.get("entry_close_time")),
                         decimal_or_none((strategy.paper_book or {}).get("checked_close_time")))
             if t]
    return int(max(since)) if since else None


def unchecked_since(strategy: Strategy, candles: Sequence[Candle]) -> int | None:
    """The close time after which the open paper position's exits must still be checked when ``candles``
    (the turn's window, oldest first) do not reach back to the next candle (the module doc); None when
    they do, or when the paper position is flat."""
    if strategy.paper_position == 0 or not candles:
        return None
    record = paper_protective(strategy) or {}
    since = _checked_until(strategy, record if record.get("mode") == "paper" else {}, ledger_of(strategy))
    return since if since is not None and since + 1 < candles[0].open_time else None


@dataclass(frozen=True)
class PaperLevels:
    """The open paper position's exit rule (``simulation.position_exit``): its ledger, stop-loss and
    take-profit (None: not set), as ``paper_exit`` reads them; a ``klineo.runner.candles.GapFilter``."""

    ledger: Ledger
    stop_loss: Decimal | None
    take_profit: Decimal | None

    def closes(self, candle: PriceRange) -> bool:
        """Whether ``candle`` closes the position (``position_exit``: stop-loss, take-profit, liquidation)."""
        return position_exit(self.ledger, self.stop_loss, self.take_profit, candle) is not None

    def may_close(self, candle: PriceRange) -> bool:
        """False only when no price within ``candle``'s range reaches a level: ``position_exit`` closes
        on a low (a long; a short's high) at or past the stop-loss or the liquidation price, or a high (a
        short's low) at or past the take-profit, and on nothing else."""
        long = self.ledger.position > 0
        against = [p for p in (self.stop_loss, liquidation_price(self.ledger)) if p is not None]
        if long:
            return (bool(against) and candle.low <= max(against)) or (
                self.take_profit is not None and candle.high >= self.take_profit)
        return (bool(against) and candle.high >= min(against)) or (
            self.take_profit is not None and candle.low <= self.take_profit)


def exit_levels(strategy: Strategy) -> PaperLevels:
    """The open paper position's exit rule (``PaperLevels``) as stored: the levels of its paper record (a
    level absent, or stored as no finite number, is no level, as the book's numbers are)."""
    protective = paper_protective(strategy) or {}
    if protective.get("mode") != "paper":
        protective = {}
    sl, tp = (decimal_or_none(protective.get(k)) for k in ("stop_loss", "take_profit"))
    return PaperLevels(ledger_of(strategy), sl, tp)


@dataclass(frozen=True)
class PaperExit:
    """A paper stop-loss, take-profit or liquidation on a candle: why, at what price, the ledger after it,
    and the close time of the candle that reached it (``candle_close_time``: the turn's or an earlier one)."""

    reason: str
    price: Decimal
    position_before: Decimal
    ledger: Ledger
    candle_close_time: int


def paper_exit(strategy: Strategy, candles: Sequence[Candle], close_time: int) -> PaperExit | None:
    """The paper position's exit (``simulation.position_exit``: stop-loss, take-profit or liquidation) on
    the first of ``candles`` (oldest first, ending with the turn's candle) that makes one, else None.

    Every candle after the last one checked is checked (``_checked_until``: the entry's candle, the
    candle before a re-pricing's turn, or the book's ``checked_close_time``), not only the turn's: a candle
    the runner skipped (a stale or lost tick, a kill switch, a pause) reached the level just as well, and
    the backtest closes the position on it. ``candles`` reach back to it (``unchecked_since``: the runner
    reads those older than its window first). A liquidated ledger holds exactly 0 (the
    Decimal division's dust is no money, as in the backtest's equity).
    """
    position = strategy.paper_position
    if position == 0 or not candles:
        return None
    protective = paper_protective(strategy) or {}
    levels = exit_levels(strategy)
    sl, tp, ledger = levels.stop_loss, levels.take_profit, levels.ledger
    entered_at = _checked_until(strategy, protective if protective.get("mode") == "paper" else {}, ledger)
    # A position stored before its entry's close time was kept is checked on the turn's candle alone, as
    # it always was.
    checked = [candles[-1]] if entered_at is None else _closed_since(candles, Decimal(entered_at))
    for candle in checked:
        hit = position_exit(ledger, sl, tp, candle)
        if hit is None:
            continue
        reason, price = hit
        ledger.fill("SELL" if position > 0 else "BUY", abs(position), price, candle.close_time, reason)
        if reason == "liquidation":
            ledger.gross_pnl = ledger.fees - ledger.starting_equity
        return PaperExit(reason, price, position, ledger, candle.close_time)
    return None
