"""The simulator's whole state in one object: config, accounts, markets, futures, limits, faults, journal."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence

from .accounts import DemoAccount, Permissions, load_accounts
from .algo import AlgoService
from .config import SimulatorConfig
from .errors import ApiError
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
        # Further API keys of an account (``add_key``): (key, the account it belongs to), kept across resets.
        self.added_keys: list[tuple[DemoAccount, DemoAccount]] = []
        self.series = {symbol: PriceSeries(spec, config.price_seed) for symbol, spec in SYMBOLS.items()}
        self.rate_limiter = RateLimiter(config)
        self.faults = FaultInjector()
        self.journal = Journal()
        self.mark_overrides: dict[str, float] = {}
        # Futures symbols Binance stopped trading (``set_symbol_status``): symbol -> (status, since ms); and
        # the earlier stops of symbols trading again: symbol -> [(from ms, to ms)], no candle opened then.
        self.stopped: dict[str, tuple[str, int]] = {}
        self.gaps: dict[str, list[tuple[int, int]]] = {}
        # Futures symbols whose exchangeInfo entry lists other order types (``set_order_types``).
        self.order_types: dict[str, tuple[str, ...]] = {}
        self.futures = self._new_futures()
        self.algo = AlgoService(self.futures)
        self.history = HistoryService(self.futures)

    def _new_futures(self) -> FuturesExchange:
        futures = FuturesExchange(self.accounts, self.mark_price, self.config.default_leverage)
        for key, account in self.added_keys:
            futures.share_state(key, account)
        return futures

    def add_key(self, account_id: str, api_key: str, secret: str,
                permissions: Permissions | None = None) -> DemoAccount:
        """Another HMAC API key of the account, as its owner creates on Binance's API management page: the
        same uid, balances, positions and orders, its own key and secret, and its own ``permissions`` when
        given (each key has its own on Binance; else the account's key's)."""
        account = self.accounts[account_id]
        if api_key in self.accounts_by_key:
            raise ValueError("API keys must be unique")
        key = dataclasses.replace(account, key_type="HMAC", api_key=api_key, secret=secret,
                                  permissions=permissions or account.permissions,
                                  public_key_path=None, private_key_path=None, _public_key=None)
        self.accounts_by_key[api_key] = key
        self.added_keys.append((key, account))
        self.futures.share_state(key, account)
        return key

    def revoke_key(self, api_key: str) -> None:
        """Delete a key ``add_key`` gave, as its owner deletes it on Binance's API management page: every
        later call with it is answered -2015. An account's own key is never revoked (the accounts outlive a
        test)."""
        if not any(key.api_key == api_key for key, _account in self.added_keys):
            raise ValueError("only a key add_key gave can be revoked")
        self.accounts_by_key.pop(api_key, None)

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

    def set_symbol_status(self, symbol: str, status: str, since_ms: int | None = None) -> None:
        """A futures symbol's status from ``since_ms`` (default now): anything but TRADING stops it (its
        exchangeInfo entry says so, and no candle opens from then: a delisted or halted contract makes
        none); TRADING makes candles again, the stop left as a gap in its klines."""
        if symbol not in self.series:
            raise ValueError(f"unknown symbol {symbol}")
        since = int(self.server_time_ms()) if since_ms is None else int(since_ms)
        stopped = self.stopped.pop(symbol, None)
        if status != "TRADING":
            self.stopped[symbol] = (status, stopped[1] if stopped is not None else since)
        elif stopped is not None:
            self.gaps.setdefault(symbol, []).append((stopped[1], since))

    def set_order_types(self, symbol: str, order_types: Sequence[str] | None) -> None:
        """The order types a futures symbol's exchangeInfo entry lists (None: the usual ones again)."""
        if symbol not in self.series:
            raise ValueError(f"unknown symbol {symbol}")
        if order_types is None:
            self.order_types.pop(symbol, None)
        else:
            self.order_types[symbol] = tuple(order_types)

    def require_order_type(self, symbol: object, order_type: object) -> None:
        """Refuse a new futures order whose type the symbol's exchangeInfo entry no longer lists
        (``set_order_types``), as Binance refuses a type a symbol does not take: 400, -1116."""
        listed = self.order_types.get(symbol) if isinstance(symbol, str) else None
        if listed is not None and order_type not in listed:
            raise ApiError(400, -1116, "Invalid orderType.")

    def require_trading(self, symbol: object) -> None:
        """Refuse a new futures order, regular or conditional (the algo service), on a symbol that is not
        TRADING now (``set_symbol_status``), as Binance does: 400, -4140 (docs/binance-facts.md §15; the same
        answer for every status, and from the algo service, is assumed). Cancels are not refused."""
        stopped = self.stopped.get(symbol) if isinstance(symbol, str) else None
        if stopped is not None:
            raise ApiError(400, -4140, "Invalid symbol status for opening position.")

    def trading_klines(self, symbol: str, rows: list[list]) -> list[list]:
        """``rows`` without the candles a stopped symbol never made (opening while it was stopped)."""
        stops = list(self.gaps.get(symbol, ()))
        if symbol in self.stopped:
            stops.append((self.stopped[symbol][1], math.inf))
        return [row for row in rows if not any(start <= row[0] < end for start, end in stops)]

    def server_time_ms(self) -> float:
        """Wall-clock time plus the configured skew, in ms."""
        return time.time() * 1000.0 + self.config.clock_skew_ms

    def reset(self) -> None:
        """Fresh balances, positions and orders; counters, bans, faults and journal cleared."""
        self.mark_overrides.clear()
        self.stopped.clear()
        self.gaps.clear()
        self.order_types.clear()
        self.futures = self._new_futures()
        self.algo = AlgoService(self.futures)
        self.history = HistoryService(self.futures)
        self.rate_limiter.reset()
        self.faults.clear()
        self.journal.clear()
