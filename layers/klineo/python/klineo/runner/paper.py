"""A paper strategy's book: simulated fills, fees, PnL and stop-loss/take-profit (``simulation.Ledger``).

Paper mode and the backtest share ``klineo.strategies.simulation`` (fill price with slippage,
taker fee, sizing, protective levels and exits, the ledger), so the same candles give the same
trades. The strategy item keeps the ledger's state between candles: ``paper_position`` and
``paper_book`` (``entry_price``, ``gross_pnl``, ``fees``); the protective levels of the open paper
position are in ``protective`` (``mode`` "paper"). A trailing stop is live-only (ignored here).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from klineo.store.strategies import Strategy
from klineo.strategies.simulation import Ledger, PriceRange, Trade, protective_exit, protective_prices
from klineo.validation import decimal_or_none

__all__ = ["PaperExit", "book_of", "ledger_of", "paper_exit", "protective_record"]

_ZERO = Decimal(0)


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
        ledger.trades.append(Trade(side, 0, ledger.entry_price, abs(ledger.position), Decimal(0)))
    return ledger


def _book_number(book: dict[str, Any], name: str) -> Decimal:
    """A stored book number as a Decimal, 0 when absent (``is None``: a stored 0.00 stays as it is)."""
    number = decimal_or_none(book.get(name))
    return _ZERO if number is None else number


def book_of(ledger: Ledger) -> dict[str, Any]:
    """What the strategy item stores of a ledger besides the position."""
    return {"entry_price": ledger.entry_price, "gross_pnl": ledger.gross_pnl, "fees": ledger.fees}


def protective_record(
    strategy: Strategy, side: str, entry_price: Decimal, mode: str,
) -> dict[str, Any] | None:
    """The stop-loss/take-profit wanted for an entry on ``side`` at ``entry_price``; None when none is set."""
    settings = strategy.settings
    if settings.stop_loss_pct is None and settings.take_profit_pct is None:
        return None
    sl, tp = protective_prices(side, entry_price, settings.stop_loss_pct, settings.take_profit_pct)
    record: dict[str, Any] = {"mode": mode, "entry_side": side, "entry_price": entry_price, "armed": False}
    record.update({k: v for k, v in (("stop_loss", sl), ("take_profit", tp)) if v is not None})
    if mode == "live" and settings.trailing_stop_pct is not None:
        record["trailing_stop_pct"] = settings.trailing_stop_pct
    return record


@dataclass(frozen=True)
class PaperExit:
    """A paper stop-loss or take-profit hit on a candle: why, at what price, and the ledger after it."""

    reason: str
    price: Decimal
    position_before: Decimal
    ledger: Ledger


def paper_exit(strategy: Strategy, candle: PriceRange, close_time: int) -> PaperExit | None:
    """The paper position's protective exit on ``candle`` (None when no level was reached)."""
    protective = strategy.protective
    position = strategy.paper_position
    if not protective or protective.get("mode") != "paper" or position == 0:
        return None
    # A level that is absent, or stored as no finite number, is no level (as the book's numbers are).
    sl, tp = (decimal_or_none(protective.get(k)) for k in ("stop_loss", "take_profit"))
    hit = protective_exit("LONG" if position > 0 else "SHORT", sl, tp, candle)
    if hit is None:
        return None
    reason, price = hit
    ledger = ledger_of(strategy)
    ledger.fill("SELL" if position > 0 else "BUY", abs(position), price, close_time, reason)
    return PaperExit(reason, price, position, ledger)
