"""Use cases the HTTP functions and the runner call; each module is one area (connections, balances, …).

Import from the submodules (``klineo.services.connections`` and so on); this package re-exports nothing.
Importing it wires the one cross-package dependency the layer has: Binance clients share their
weight and ban state through the RateLimitTable store (``klineo.binance`` never imports the store).
"""

from klineo.binance import share_rate_limits_through
from klineo.store.rate_limit import shared_rate_limit_store

__all__: list[str] = []

share_rate_limits_through(shared_rate_limit_store)
