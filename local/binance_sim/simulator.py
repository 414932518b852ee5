"""`Simulator`: start and stop the local Binance exchange in a background thread (tests, local stack)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from decimal import Decimal

from .accounts import PRODUCTION, DemoAccount, Permissions
from .config import SimulatorConfig
from .control import apply_config
from .faults import FaultInjector
from .journal import JournalRecord
from .server import TESTNET_PREFIX, SimulatorHTTPServer
from .state import SimulatorState

__all__ = ["Simulator"]


class Simulator:
    """A running (after `start()`) simulator on 127.0.0.1.

    `Simulator(latency_ms=20, futures_weight_limit=50)` takes SimulatorConfig fields as keywords.
    """

    def __init__(self, config: SimulatorConfig | None = None, **overrides):
        config = dataclasses.replace(config or SimulatorConfig(), **overrides)
        self.state = SimulatorState(config)
        self._server: SimulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle ---------------------------------------------------------------------------
    def bind(self) -> Simulator:
        """Bind 127.0.0.1:config.port (0 = a free port) without serving yet."""
        if self._server is None:
            self._server = SimulatorHTTPServer(self.state, self.state.config.port)
        return self

    def start(self) -> Simulator:
        """Bind and serve in a daemon thread."""
        if self._thread is not None:
            return self
        self.bind()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"binance-sim-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Bind and serve in the calling thread until interrupted (the CLI)."""
        self.bind()
        try:
            self._server.serve_forever(poll_interval=0.2)
        finally:
            self._server.server_close()
            self._server = None

    def stop(self) -> None:
        """Stop serving, close the listening socket and any keep-alive connections."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ----- addresses and accounts --------------------------------------------------------------
    @property
    def port(self) -> int:
        """The bound port."""
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """Production base URL, e.g. http://127.0.0.1:54321 (spot /api, /sapi; futures /fapi)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def testnet_url(self) -> str:
        """Testnet base URL: the production URL plus /testnet."""
        return self.url + TESTNET_PREFIX

    def base_url_for(self, account: DemoAccount) -> str:
        """The base URL of the account's environment."""
        return self.url if account.environment == PRODUCTION else self.testnet_url

    @property
    def accounts(self) -> dict[str, DemoAccount]:
        """Demo accounts by id (futures-full, spot-only, read-only, ip-restricted, ...)."""
        return self.state.accounts

    def account(self, account_id: str) -> DemoAccount:
        """One demo account by id."""
        return self.state.accounts[account_id]

    def add_key(self, account_id: str, api_key: str, secret: str,
                permissions: Permissions | None = None) -> DemoAccount:
        """Another HMAC API key of the account (tests only): the same uid, balances, positions and orders,
        its own ``permissions`` when given; returned as a DemoAccount that signs with it. Kept until the
        simulator stops."""
        return self.state.add_key(account_id, api_key, secret, permissions)

    def revoke_key(self, api_key: str) -> None:
        """Delete a key ``add_key`` gave (tests only), as its owner does on Binance: -2015 from then on."""
        self.state.revoke_key(api_key)

    # ----- observation and control -------------------------------------------------------------
    @property
    def journal(self) -> list[JournalRecord]:
        """Snapshot of every Binance-API request so far (control calls excluded)."""
        return self.state.journal.records()

    def clear_journal(self) -> None:
        """Forget journal records."""
        self.state.journal.clear()

    @property
    def faults(self) -> FaultInjector:
        """The fault API: `faults.add("http_503_unknown", count=1, method="POST", path="/fapi/v1/order")`."""
        return self.state.faults

    @property
    def config(self) -> SimulatorConfig:
        """The live config (use `configure` to change it)."""
        return self.state.config

    def configure(self, **changes) -> dict:
        """Change runtime settings: weight limits, ban length, latency_ms, clock_skew_ms, ..."""
        return apply_config(self.state, changes)

    def use_weight(self, weight: int, family: str = "futures", ip: str = "127.0.0.1") -> int:
        """Count ``weight`` as spent this window by other clients behind ``ip`` (as another container's
        calls would be; nothing journaled); returns the IP's used weight, which the next answer reports."""
        return self.state.rate_limiter.charge(ip, family, weight)

    def set_clock_skew_ms(self, skew_ms: int) -> None:
        """Shift the server clock by skew_ms (positive: server ahead of wall-clock)."""
        self.state.config.clock_skew_ms = int(skew_ms)

    def server_time_ms(self) -> int:
        """The server time the simulator reports."""
        return int(self.state.server_time_ms())

    def mark_price(self, symbol: str) -> float:
        """The current futures mark price of a symbol."""
        return self.state.mark_price(symbol, self.state.server_time_ms())

    def set_mark_price(self, symbol: str, price: float | None) -> None:
        """Pin the futures mark price (None unpins); resting orders and algo triggers react at once."""
        self.state.set_mark_price(symbol, price)

    def set_symbol_status(self, symbol: str, status: str, since_ms: int | None = None) -> None:
        """Stop a futures symbol as Binance does when it delists (``SETTLING``) or halts one: its
        exchangeInfo entry shows ``status`` and no candle opens from ``since_ms`` (default now) on;
        ``TRADING`` resumes it from ``since_ms``, the stop left as a gap in its klines. A new order on it,
        conditional ones too, is refused (400, -4140, facts §15); cancels are not. ``reset`` resumes all."""
        self.state.set_symbol_status(symbol, status, since_ms)

    def set_order_types(self, symbol: str, order_types: Sequence[str] | None) -> None:
        """List only ``order_types`` in a futures symbol's exchangeInfo entry (e.g. ``["LIMIT"]``: a symbol
        that takes no MARKET orders), tests only; None: the usual list. A new order (POST /fapi/v1/order) of a
        type it lacks is refused as Binance does (400, -1116).
        ``reset`` restores the usual list."""
        self.state.set_order_types(symbol, order_types)

    def set_market_depth(self, symbol: str, quantity: str | None) -> None:
        """Thin liquidity: each later futures MARKET order on ``symbol`` fills at most ``quantity``, the rest
        expires (EXPIRED, executedQty < origQty; "0": nothing executed); None: full fills again. ``reset``
        clears it."""
        self.state.futures.set_market_depth(symbol, None if quantity is None else Decimal(quantity))

    def futures_settings(self, account_id: str, symbol: str) -> dict:
        """Position mode, margin type and leverage as the simulator holds them (no request, no journal)."""
        return self.state.futures.settings(self.account(account_id), symbol)

    def inject_trade(self, account_id: str, kind: str, symbol: str, **details) -> dict:
        """A liquidation, ADL or "manual" (Binance app) trade on an account; returns the order."""
        document = {"kind": kind, "symbol": symbol, **details}
        return self.state.history.inject(self.account(account_id), document, self.state.server_time_ms())

    def list_trades(self) -> int:
        """userTrades lists from now on the trades of the forced orders injected with ``listed=False``."""
        return self.state.history.list_trades()

    def age_orders(self, ms: int) -> dict:
        """Make every order `ms` older and purge what Binance's retention rules forget."""
        return self.state.history.age(ms, self.state.server_time_ms())

    def reset(self) -> None:
        """Fresh balances and orders; counters, bans, faults and journal cleared."""
        self.state.reset()
