"""Simulated trading shared by paper mode and backtests: fills, fees, sizing, stop-loss/take-profit, PnL.

Pure (no I/O, no clock, Decimal only), so that a paper strategy and a backtest over the same
candles produce the same trades by construction. The model, stated once:

- **Fees.** Every simulated fill is a taker fill and pays ``TAKER_FEE_RATE`` (0.05 %, Binance
  USDⓈ-M futures' base-tier taker rate) of its notional, ``quantity * fill_price``.
- **Slippage.** A market order decided on a closed candle fills at that candle's close moved
  ``SLIPPAGE_BPS`` (2 basis points) against the taker: a BUY pays ``close * (1 + 0.0002)``, a SELL
  receives ``close * (1 - 0.0002)``.
- **Stop-loss / take-profit.** Percent distances from the entry FILL price. They are checked on
  every candle after the entry candle, against its high and low. A triggered exit fills at its
  trigger price moved against the taker the same way; a stop-loss whose candle OPENS beyond it
  (a gap) fills at the open instead (also moved against the taker). When one candle's range
  crosses both levels, the stop-loss is assumed to have come first (pessimistic).
  After a protective exit the strategy does not re-enter on the same side until its signal has
  changed (``effective_signal``), and a signal for the side already held keeps the position as it
  is (no re-sizing). A trailing stop is live-only: the simulation ignores it.
- **Sizing.** Exactly one of ``size`` (contracts), ``quote_size_usdt`` (quantity = quote / price)
  or ``size_pct`` (percent of the simulated equity at the decision candle's close, realised plus
  the open position's unrealised PnL, times leverage, / price); rounded DOWN to the symbol's step
  when rules are known.
- **Margin** (``initial_margin``, ``entry_fits``). An entry at leverage ``L`` (the sizing's
  ``leverage``, default 1) ties up ``quantity * price / L`` of the equity, the price being the
  decision candle's close (the price the order is valued at, as Binance values a market order at the
  mark price). It is taken only when that initial margin is at most the equity at that close (the
  whole equity backs the one position: cross margin; the entry's taker fee is paid from it at the
  fill and is not reserved first, as Binance's order cost is the margin, not the fee).
- **Liquidation** (``liquidation_price``). With the whole equity as margin, a position is
  liquidated where the equity after the closing fee would be zero (the bankruptcy price): the
  simulation closes it there, and a candle that opens beyond it (a gap) still closes it there
  (Binance's insurance fund takes the rest), so the equity never goes below zero. Binance
  liquidates earlier, at the maintenance margin, which the simulation does not model: a symbol's rate
  is only in the signed leverage brackets (exchangeInfo's ``maintMarginPercent`` is a placeholder
  Binance says to ignore), and a backtest may run without a key (docs/binance-facts.md §21). Which exit a
  candle makes, stop-loss / take-profit or liquidation, is ``position_exit``'s one rule.
- **PnL.** ``Ledger`` keeps the position (signed quantity), its average entry price, the realised
  PnL of closed quantity, the fees, and one ``Trade`` per round trip (flat -> position -> flat, a
  flip closes one trade and opens the next). Realised PnL is net of fees; unrealised PnL is
  measured at a mark price and does not deduct the fee of a future exit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from klineo.strategies.base import Signal

__all__ = [
    "DIRECTIONS",
    "SLIPPAGE_BPS",
    "TAKER_FEE_RATE",
    "Fill",
    "Ledger",
    "PriceRange",
    "Sizing",
    "Trade",
    "apply_direction",
    "effective_signal",
    "entry_fits",
    "fee",
    "initial_margin",
    "leverage_of",
    "liquidation_price",
    "market_fill",
    "position_exit",
    "protective_exit",
    "protective_prices",
    "size_quantity",
    "slipped",
]

TAKER_FEE_RATE = Decimal("0.0005")
SLIPPAGE_BPS = Decimal("2")
DIRECTIONS = ("long", "short", "both")

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
_BPS = Decimal(10_000)


class PriceRange(Protocol):
    """What ``protective_exit`` reads from a candle (``klineo.binance.Candle`` and ``Bar`` fit)."""

    open: Decimal
    high: Decimal
    low: Decimal


class _Rules(Protocol):
    """The part of ``klineo.binance.SymbolRules`` sizing needs."""

    def round_quantity(self, quantity: Decimal, market_order: bool = False) -> Decimal: ...


def _check_side(side: str) -> None:
    if side not in ("BUY", "SELL"):
        raise ValueError("side must be BUY or SELL")


def slipped(side: str, price: Decimal) -> Decimal:
    """``price`` moved ``SLIPPAGE_BPS`` against a taker on ``side`` (BUY pays more, SELL gets less)."""
    _check_side(side)
    move = price * SLIPPAGE_BPS / _BPS
    return price + move if side == "BUY" else price - move


def market_fill(side: str, reference_price: Decimal) -> Decimal:
    """The simulated fill price of a MARKET order on ``side`` decided at ``reference_price`` (a close)."""
    return slipped(side, reference_price)


def fee(quantity: Decimal, price: Decimal) -> Decimal:
    """The taker fee of a fill: ``|quantity| * price * TAKER_FEE_RATE`` in USDT."""
    return abs(quantity) * price * TAKER_FEE_RATE


def apply_direction(signal: Signal, direction: str) -> Signal:
    """The signal a strategy may act on: with "long" a SHORT means FLAT, with "short" a LONG means FLAT."""
    if direction not in DIRECTIONS:
        raise ValueError("direction must be long, short or both")
    if direction == "long" and signal is Signal.SHORT:
        return Signal.FLAT
    if direction == "short" and signal is Signal.LONG:
        return Signal.FLAT
    return signal


def effective_signal(
    signal: Signal, position: Decimal, stopped: Signal | None,
) -> tuple[Signal, Signal | None]:
    """(the signal to act on, the side still blocked) given the position and the side last stopped out of.

    HOLD for the side already held (keep the position as sized) and for ``stopped``, the side a
    stop-loss/take-profit just closed, until a different LONG/SHORT/FLAT signal clears it.
    """
    if stopped is not None and signal is not stopped and signal is not Signal.HOLD:
        stopped = None
    if signal is stopped:
        return Signal.HOLD, stopped
    if (signal is Signal.LONG and position > 0) or (signal is Signal.SHORT and position < 0):
        return Signal.HOLD, stopped
    return signal, stopped


@dataclass(frozen=True)
class Sizing:
    """How big an entry is: exactly one of ``size``, ``quote_size_usdt`` or ``size_pct``."""

    size: Decimal | None = None
    quote_size_usdt: Decimal | None = None
    size_pct: Decimal | None = None
    leverage: int | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.size, self.quote_size_usdt, self.size_pct) if v is not None]
        if len(given) != 1:
            raise ValueError("exactly one of size, quote_size_usdt or size_pct is required")
        if given[0] <= 0:
            raise ValueError("the order size must be greater than 0")
        if self.size_pct is not None and self.size_pct > _HUNDRED:
            raise ValueError("size_pct must be at most 100")

    @classmethod
    def of(cls, fields: Mapping[str, Any]) -> Sizing:
        """The sizing fields of a strategy (a stored item or a request body), others ignored."""
        def dec(name: str) -> Decimal | None:
            value = fields.get(name)
            return None if value is None else Decimal(str(value))
        leverage = fields.get("leverage")
        return cls(dec("size"), dec("quote_size_usdt"), dec("size_pct"),
                   None if leverage is None else int(leverage))


def size_quantity(sizing: Sizing, price: Decimal, equity: Decimal, rules: _Rules | None) -> Decimal:
    """Contracts for one entry at ``price`` by the sizing rule, rounded down to the step given ``rules``.

    ``equity`` is the simulated equity (paper/backtest) or the available futures balance (live);
    only ``size_pct`` reads it. A result below the symbol's minimum is left for the order rules to refuse.
    """
    if price <= 0:
        raise ValueError("price must be greater than 0")
    if sizing.size is not None:
        quantity = sizing.size
    elif sizing.quote_size_usdt is not None:
        quantity = sizing.quote_size_usdt / price
    else:
        assert sizing.size_pct is not None
        quantity = max(equity, _ZERO) * sizing.size_pct / _HUNDRED * leverage_of(sizing) / price
    if rules is not None:
        return rules.round_quantity(quantity, market_order=True)
    return quantity


def leverage_of(sizing: Sizing) -> Decimal:
    """The leverage an entry is sized and margined at: the sizing's own, 1 when it has none."""
    return Decimal(sizing.leverage or 1)


def initial_margin(quantity: Decimal, price: Decimal, leverage: Decimal) -> Decimal:
    """The equity an entry of ``quantity`` valued at ``price`` ties up: notional / leverage."""
    return abs(quantity) * price / leverage


def entry_fits(quantity: Decimal, price: Decimal, sizing: Sizing, equity: Decimal) -> bool:
    """Whether an entry's initial margin at the sizing's leverage is at most ``equity`` (module doc)."""
    return initial_margin(quantity, price, leverage_of(sizing)) <= equity


def liquidation_price(ledger: Ledger) -> Decimal | None:
    """The price at which the open position's equity, after the fee of closing it there, is zero.

    None when flat or when no positive price gets there (a long fully paid for at leverage 1).
    """
    position = ledger.position
    if position == 0:
        return None
    cash = ledger.equity()  # starting equity + realised PnL, before the open position's
    price = (ledger.entry_price * position - cash) / (position - abs(position) * TAKER_FEE_RATE)
    return price if price > 0 else None


def protective_prices(
    side: str, entry_price: Decimal, stop_loss_pct: Decimal | None, take_profit_pct: Decimal | None,
) -> tuple[Decimal | None, Decimal | None]:
    """(stop-loss, take-profit) trigger prices of an entry on ``side`` filled at ``entry_price``.

    A long (BUY) entry stops below and takes profit above; a short (SELL) the reverse. None where
    no percent is set. Not rounded: callers that place real orders round to the tick.
    """
    _check_side(side)
    sign = Decimal(1) if side == "BUY" else Decimal(-1)

    def at(pct: Decimal | None, direction: int) -> Decimal | None:
        if pct is None:
            return None
        if not _ZERO < pct < _HUNDRED:
            raise ValueError("protective percents must be between 0 and 100")
        return entry_price * (1 + direction * sign * pct / _HUNDRED)

    return at(stop_loss_pct, -1), at(take_profit_pct, 1)


def protective_exit(
    position_side: str, sl: Decimal | None, tp: Decimal | None, candle: PriceRange,
) -> tuple[str, Decimal] | None:
    """("stop_loss" | "take_profit", fill price) when ``candle`` reaches a level of the position, else None.

    ``position_side`` is "LONG" or "SHORT". The stop-loss wins when both are inside the candle; a
    stop gapped through at the open fills at the open; fills move against the taker (``slipped``).
    """
    if position_side not in ("LONG", "SHORT"):
        raise ValueError("position_side must be LONG or SHORT")
    long = position_side == "LONG"
    exit_side = "SELL" if long else "BUY"
    if sl is not None and (candle.low <= sl if long else candle.high >= sl):
        gapped = candle.open > 0 and (candle.open < sl if long else candle.open > sl)
        return "stop_loss", slipped(exit_side, candle.open if gapped else sl)
    if tp is not None and (candle.high >= tp if long else candle.low <= tp):
        return "take_profit", slipped(exit_side, tp)
    return None


def _beyond(long: bool, price: Decimal, level: Decimal | None) -> bool:
    """Whether ``price`` is at or past ``level`` against a long (below) or a short (above)."""
    return level is not None and (price <= level if long else price >= level)


def position_exit(
    ledger: Ledger, sl: Decimal | None, tp: Decimal | None, candle: PriceRange,
) -> tuple[str, Decimal] | None:
    """("stop_loss" | "take_profit" | "liquidation", fill price) when ``candle`` closes the ledger's open
    position, else None (flat: None).

    The stop-loss / take-profit (``protective_exit``) comes first, unless its fill would pass the
    liquidation price (``liquidation_price``: a gap, or the slippage of a stop just above it), or it is
    the take-profit of a candle that also reaches the liquidation price (which came first is unknown: the
    adverse one, as a stop-loss before a take-profit): then, as when a candle's low (long) or high (short)
    reaches the liquidation price without a stop, the position closes there.
    """
    if ledger.position == 0:
        return None
    long = ledger.position > 0
    liquidation = liquidation_price(ledger)
    hit = None
    if sl is not None or tp is not None:
        hit = protective_exit("LONG" if long else "SHORT", sl, tp, candle)
    stop_first = hit is not None and hit[0] == "stop_loss"
    reached = candle.low if long else candle.high
    if liquidation is not None and ((hit is not None and _beyond(long, hit[1], liquidation))
                                    or (not stop_first and _beyond(long, reached, liquidation))):
        return "liquidation", liquidation
    return hit


@dataclass(frozen=True)
class Fill:
    """One simulated fill: side, quantity (> 0), price, fee, when and why."""

    time: int
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    reason: str = "signal"


@dataclass
class Trade:
    """One round trip: entry to flat (or to a flip). ``pnl`` is net of the entry and exit fees."""

    side: str  # "long" | "short"
    entry_time: int
    entry_price: Decimal
    quantity: Decimal
    fees: Decimal
    exit_time: int | None = None
    exit_price: Decimal | None = None
    exit_reason: str | None = None
    gross_pnl: Decimal = _ZERO

    @property
    def pnl(self) -> Decimal:
        """Gross PnL minus every fee paid on this trade."""
        return self.gross_pnl - self.fees


@dataclass
class Ledger:
    """Position, PnL and trades of one simulated strategy; fed fills in time order.

    ``realised_pnl`` = gross PnL of closed quantity - all fees paid (entry fees included as they
    are paid). ``equity(mark)`` = ``starting_equity + realised_pnl + unrealised(mark)``.
    """

    starting_equity: Decimal = Decimal(10_000)
    position: Decimal = _ZERO
    entry_price: Decimal = _ZERO
    gross_pnl: Decimal = _ZERO
    fees: Decimal = _ZERO
    fills: list[Fill] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    # At most this many fills and trades are kept (the first ones; past them only the latest trade, the one
    # a position is in); None: all. Each trade is counted all the same (``trade_count``, ``closed_trades``,
    # ``winning_trades``), so that a long backtest's memory does not grow with its trades.
    kept: int | None = None
    dropped_trades: int = 0
    closed_trades: int = 0
    winning_trades: int = 0  # closed with a pnl above 0

    @property
    def trade_count(self) -> int:
        """Every trade of this ledger, kept or not."""
        return len(self.trades) + self.dropped_trades

    @property
    def realised_pnl(self) -> Decimal:
        """Closed PnL net of every fee paid so far."""
        return self.gross_pnl - self.fees

    @property
    def open_trade(self) -> Trade | None:
        """The trade of the current position, None when flat."""
        return self.trades[-1] if self.position != 0 and self.trades else None

    def unrealised(self, mark: Decimal) -> Decimal:
        """PnL of the open position at ``mark`` (no exit fee deducted)."""
        return (mark - self.entry_price) * self.position

    def equity(self, mark: Decimal | None = None) -> Decimal:
        """Starting equity + realised PnL (+ unrealised at ``mark`` when given)."""
        open_pnl = self.unrealised(mark) if mark is not None and self.position != 0 else _ZERO
        return self.starting_equity + self.realised_pnl + open_pnl

    def fill(self, side: str, quantity: Decimal, price: Decimal, time: int, reason: str = "signal") -> Fill:
        """Apply one taker fill: close what it reduces, open what is left; returns the recorded fill."""
        _check_side(side)
        if quantity <= 0:
            raise ValueError("quantity must be greater than 0")
        done = Fill(time, side, quantity, price, fee(quantity, price), reason)
        if self.kept is None or len(self.fills) < self.kept:
            self.fills.append(done)
        signed = quantity if side == "BUY" else -quantity
        closing = min(quantity, abs(self.position)) if self.position * signed < 0 else _ZERO
        opening = quantity - closing
        fee_close = done.fee * closing / quantity
        if closing:
            self._close(closing, price, fee_close, time, reason)
        if opening:
            self._open(side, opening, price, done.fee - fee_close, time)
        self.fees += done.fee
        return done

    def _close(self, quantity: Decimal, price: Decimal, paid: Decimal, time: int, reason: str) -> None:
        direction = 1 if self.position > 0 else -1
        gross = (price - self.entry_price) * quantity * direction
        self.gross_pnl += gross
        trade = self.trades[-1]
        trade.gross_pnl += gross
        trade.fees += paid
        self.position -= quantity * direction
        if self.position == 0:
            trade.exit_time, trade.exit_price, trade.exit_reason = time, price, reason
            self.entry_price = _ZERO
            self.closed_trades += 1
            self.winning_trades += 1 if trade.pnl > 0 else 0

    def _open(self, side: str, quantity: Decimal, price: Decimal, paid: Decimal, time: int) -> None:
        signed = quantity if side == "BUY" else -quantity
        if self.position == 0:
            if self.kept is not None and len(self.trades) > self.kept:  # the latest, closed, is not kept
                self.trades.pop()
                self.dropped_trades += 1
            self.trades.append(Trade("long" if side == "BUY" else "short", time, price, quantity, paid))
            self.entry_price = price
        else:  # adding to the position: average the entry
            total = abs(self.position) + quantity
            self.entry_price = (self.entry_price * abs(self.position) + price * quantity) / total
            trade = self.trades[-1]
            trade.entry_price, trade.quantity = self.entry_price, total
            trade.fees += paid
        self.position += signed

    @classmethod
    def replay(cls, fills: list[Fill], starting_equity: Decimal = Decimal(10_000)) -> Ledger:
        """A ledger rebuilt from recorded fills (e.g. a paper strategy's run records), oldest first."""
        ledger = cls(starting_equity=starting_equity)
        for item in fills:
            ledger.fill(item.side, item.quantity, item.price, item.time, item.reason)
        return ledger

    def summary(self) -> dict[str, Any]:
        """Realised PnL, fees, position and entry price as plain values (for records and responses)."""
        return {
            "position": self.position, "entry_price": self.entry_price,
            "realised_pnl": self.realised_pnl, "fees": self.fees,
            "trades": [asdict(trade) | {"pnl": trade.pnl} for trade in self.trades],
        }

