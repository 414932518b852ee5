"""A strategy's trading settings applied to one turn: direction, entry size, leverage and margin type.

- Direction: with ``direction`` "long" a short signal means flat; with "short" a long one does
  (``klineo.strategies.simulation.apply_direction``, shared with the backtest).
- Re-entry after a close the strategy did not make (``reentry_block``): once the runner has seen
  the exchange close a position (by hand, a protective order, liquidation or ADL) or a paper stop
  or take-profit closed it, the signal that opened it does not open it again; the strategy waits
  until its signal changes (``simulation.effective_signal``, the backtest's own rule). The block is
  the lost position's mode's (``reentry_block_mode``): a paper stop never keeps a strategy switched to
  live from entering, nor a live close one switched to paper.
- A signal for the side already held keeps the position as it is (never topped up or resized).
- Entry size (``simulation.size_quantity``, shared with the backtest), from exactly one sizing:
  ``size`` contracts, ``quote_size_usdt`` / price, or ``size_pct`` % of the available balance
  (live: USDT ``availableBalance`` of /fapi/v3/balance; paper: the paper equity) x leverage
  (default 1) / price, rounded down to the step (``SymbolRules``).
- Leverage and margin type: the strategy's own values override the connection's for its symbol,
  applied through the connection's machinery (``prepare_symbol``) and checked against the
  connection's ``max_leverage`` by the risk gate. Binance holds ONE leverage and margin type per
  (account, symbol): strategies sharing a symbol on one connection should agree on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

from klineo.binance import SymbolRules
from klineo.store.connections import Connection, TradingContext
from klineo.store.strategies import Strategy
from klineo.strategies import Signal
from klineo.strategies.simulation import Sizing, apply_direction, effective_signal, size_quantity
from klineo.validation import MARGIN_TYPES_OURS

__all__ = ["acted_signal", "entry_size", "sizing_of", "strategy_trading_context"]


def acted_signal(
    signal: Signal, direction: str, position: Decimal, reentry_block: str | None = None,
) -> tuple[Signal, str | None]:
    """(the signal to act on, the side still blocked): the backtest's own rule (``simulation``).

    The direction turns the forbidden side into flat; a signal for the side already held keeps the
    position; the side of a position lost outside the strategy stays blocked until the signal changes.
    """
    stopped = Signal(reentry_block) if reentry_block else None
    acted, still = effective_signal(apply_direction(signal, direction), position, stopped)
    return acted, still.value if still is not None else None


def sizing_of(strategy: Strategy) -> Sizing:
    """The strategy's one sizing rule (with its leverage, for percent sizing)."""
    settings = strategy.settings
    return Sizing(size=strategy.size, quote_size_usdt=settings.quote_size_usdt, size_pct=settings.size_pct,
                  leverage=settings.leverage)


def _side_of(position: Decimal) -> Signal | None:
    return Signal.LONG if position > 0 else Signal.SHORT if position < 0 else None


def entry_size(
    strategy: Strategy, signal: Signal, position: Decimal, price: Decimal, rules: SymbolRules,
    balance: Callable[[], Decimal],
) -> Decimal | None:
    """Contracts for a LONG/SHORT signal, rounded down to the step as the backtest sizes them (the paper
    margin check reads this quantity); None = keep the position as it is (quote/percent sizing).

    ``balance`` is called only for percent sizing of a new entry (a live read costs weight 5).
    """
    if strategy.size is not None:
        return size_quantity(sizing_of(strategy), price, Decimal(0), rules)
    if _side_of(position) is signal:
        return None
    equity = balance() if strategy.settings.size_pct is not None else Decimal(0)
    return size_quantity(sizing_of(strategy), price, equity, rules)


def _connection_for(strategy: Strategy, connection: Connection) -> Connection:
    settings = strategy.settings
    changes: dict[str, object] = {}
    if settings.leverage is not None:
        changes["leverage"] = settings.leverage
    if settings.margin_type is not None:
        changes["margin_type"] = MARGIN_TYPES_OURS[settings.margin_type]
    return connection.model_copy(update=changes) if changes else connection


def strategy_trading_context(strategy: Strategy, trading: TradingContext) -> TradingContext:
    """``trading`` with the strategy's leverage and margin type in place of the connection's defaults."""
    connection = _connection_for(strategy, trading.connection)
    return trading if connection is trading.connection else replace(trading, connection=connection)
