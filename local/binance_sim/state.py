"""The simulator's whole state in one object: config, accounts, markets, futures, limits, faults, journal."""

from __future__ import annotations

import time

from .accounts import DemoAccount, load_accounts
from .algo import AlgoService
from .config import SimulatorConfig
from .faults import FaultInjector
from .futures import FuturesExchange
from .history import HistoryService
from .journal import Journal
from .market import SYMBOLS, PriceSeries
from .ratelimit import RateLimiter

__all__ = ["SimulatorState"]


class SimulatorState:
    """Built once per simulator; `reset()` restores balances, orders and counters."""

    def __init__(self, config: SimulatorConfig):
        self.config = config
        self.accounts: dict[str, DemoAccount] = load_accounts(config.accounts_file)
        self.accounts_by_key = {account.api_key: account for account in self.accounts.values()}
        self.series = {symbol: PriceSeries(spec, config.price_seed) for symbol, spec in SYMBOLS.items()}
        self.rate_limiter = RateLimiter(config)
        self.faults = FaultInjector()
        self.journal = Journal()
        self.mark_overrides: dict[str, float] = {}
        self.futures = self._new_futures()
        self.algo = AlgoService(self.futures)
        self.history = HistoryService(self.futures)

    def _new_futures(self) -> FuturesExchange:
        return FuturesExchange(self.accounts, self.mark_price, self.config.default_leverage)

    def mark_price(self, symbol: str, now_ms: float) -> float:
        """The futures mark price: the price a test set, else the latest candle close."""
        override = self.mark_overrides.get(symbol)
        return override if override is not None else self.series[symbol].mark_price(now_ms)

    def set_mark_price(self, symbol: str, price: float | None) -> None:
        """Pin a symbol's mark price (None: back to the candles), then fire what it crosses.

        Resting LIMIT orders and algo triggers of every account are checked at once, so a move
        that is undone later still fills what it crossed.
        """
        if symbol not in self.series:
            raise ValueError(f"unknown symbol {symbol}")
        if price is None:
            self.mark_overrides.pop(symbol, None)
        elif not float(price) > 0:
            raise ValueError("price must be positive")
        else:
            self.mark_overrides[symbol] = float(price)
        self.futures.sweep(self.server_time_ms())

    def server_time_ms(self) -> float:
        """Wall-clock time plus the configured skew, in ms."""
        return time.time() * 1000.0 + self.config.clock_skew_ms

    def reset(self) -> None:
        """Fresh balances, positions and orders; counters, bans, faults and journal cleared."""
        self.mark_overrides.clear()
        self.futures = self._new_futures()
        self.algo = AlgoService(self.futures)
        self.history = HistoryService(self.futures)
        self.rate_limiter.reset()
        self.faults.clear()
        self.journal.clear()
