"""Simulator settings: weight limits, ban lengths, added latency, accounts file, price seed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

__all__ = ["DEFAULT_ACCOUNTS_FILE", "RUNTIME_FIELDS", "SimulatorConfig"]

DEFAULT_ACCOUNTS_FILE = Path(__file__).resolve().parent.parent / "demo-accounts.json"


@dataclasses.dataclass
class SimulatorConfig:
    """Everything a test or the CLI may tune. Defaults are Binance's documented limits.

    There is no host setting: the simulator always binds 127.0.0.1.
    """

    port: int = 0
    accounts_file: Path = DEFAULT_ACCOUNTS_FILE
    # Request weight per IP per window (spot and /sapi share one counter, futures has its own).
    spot_weight_limit: int = 6000
    futures_weight_limit: int = 2400
    weight_window_s: int = 60
    # Orders per account (futures: 300 per 10 s, 1200 per minute; 3rd-party fixtures / docs).
    futures_orders_10s_limit: int = 300
    futures_orders_1m_limit: int = 1200
    # After this many 429 answers in one window, the next request gets 418 and the IP is banned.
    rejections_before_ban: int = 2
    # Binance bans start at 2 minutes; tests want much shorter bans.
    ban_seconds: int = 120
    # Extra latency added to every Binance-API request (not to /__sim__ control calls).
    latency_ms: float = 0.0
    # Server clock skew added to wall-clock time.
    clock_skew_ms: int = 0
    # Seed mixed into every symbol's price series; same seed gives the same candles.
    price_seed: int = 20240101
    # Futures default leverage for every symbol.
    default_leverage: int = 20
    # Intraday candles above 1m made from their 1m candles, as Binance's are (``market`` module doc).
    aggregated_candles: bool = False


# Fields that may be changed while the simulator runs (POST /__sim__/config, Simulator.configure).
RUNTIME_FIELDS = frozenset(
    {
        "spot_weight_limit",
        "futures_weight_limit",
        "weight_window_s",
        "futures_orders_10s_limit",
        "futures_orders_1m_limit",
        "rejections_before_ban",
        "ban_seconds",
        "latency_ms",
        "clock_skew_ms",
        "aggregated_candles",
    }
)
