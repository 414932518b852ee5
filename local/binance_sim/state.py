"""The simulator's whole state in one object: config, accounts, markets, futures, limits, faults, journal."""

from __future__ import annotations

import time

from .accounts import DemoAccount, load_accounts
from .config import SimulatorConfig
from .faults import FaultInjector
from .futures import FuturesExchange
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
        self.futures = self._new_futures()

    def _new_futures(self) -> FuturesExchange:
        return FuturesExchange(self.accounts, self.mark_price, self.config.default_leverage)

    def mark_price(self, symbol: str, now_ms: float) -> float:
        """The futures mark price (latest candle close) of a symbol."""
        return self.series[symbol].mark_price(now_ms)

    def server_time_ms(self) -> float:
        """Wall-clock time plus the configured skew, in ms."""
        return time.time() * 1000.0 + self.config.clock_skew_ms

    def reset(self) -> None:
        """Fresh balances, positions and orders; counters, bans, faults and journal cleared."""
        self.futures = self._new_futures()
        self.rate_limiter.reset()
        self.faults.clear()
        self.journal.clear()
