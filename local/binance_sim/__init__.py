"""A faithful local Binance exchange (Spot + USDT-M Futures REST) for tests and the local stack.

Never deployed. One port serves every API and both environments:

- production: `http://127.0.0.1:PORT` (spot `/api`, `/sapi`; futures `/fapi`)
- testnet:    `http://127.0.0.1:PORT/testnet` (`/testnet/api`, `/testnet/fapi`; no `/sapi`)

A key used on the other environment's URL is answered -2015. Control interface: `/__sim__/`
(see `control`). Run it with `python -m local.binance_sim --port 8900`; in tests use the
`binance_sim` / `binance_sim_factory` fixtures of `local.binance_sim.pytest_plugin`.
"""

from . import _layer_path  # noqa: F401 - first: klineo on sys.path outside `make` (see the module)
from .accounts import DemoAccount, Permissions
from .config import SimulatorConfig
from .faults import FAULT_KINDS, Fault, FaultInjector
from .journal import JournalRecord
from .simulator import Simulator

__all__ = [
    "FAULT_KINDS",
    "DemoAccount",
    "Fault",
    "FaultInjector",
    "JournalRecord",
    "Permissions",
    "Simulator",
    "SimulatorConfig",
]
