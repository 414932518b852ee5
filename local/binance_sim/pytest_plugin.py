"""pytest fixtures for the local Binance simulator.

- `binance_sim`: a fresh simulator per test on a free 127.0.0.1 port, stopped at teardown.
  It has `.url`, `.testnet_url`, `.accounts`, `.journal`, `.faults`, `.set_clock_skew_ms(ms)`,
  `.configure(spot_weight_limit=..., futures_weight_limit=..., latency_ms=..., ...)`.
- `binance_sim_factory`: `binance_sim_factory(latency_ms=20, futures_weight_limit=100)` starts a
  simulator with custom SimulatorConfig fields; every one started is stopped at teardown.

Load with `pytest_plugins = ["local.binance_sim.pytest_plugin"]` in the root conftest or
`-p local.binance_sim.pytest_plugin`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .simulator import Simulator

__all__ = ["binance_sim", "binance_sim_factory"]


@pytest.fixture
def binance_sim_factory() -> Iterator[Callable[..., Simulator]]:
    """Start simulators with custom config; all are stopped when the test ends."""
    started: list[Simulator] = []

    def start(**config) -> Simulator:
        simulator = Simulator(**config).start()
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        simulator.stop()


@pytest.fixture
def binance_sim(binance_sim_factory: Callable[..., Simulator]) -> Simulator:
    """A fresh simulator with default (Binance) limits on a free port."""
    return binance_sim_factory()
