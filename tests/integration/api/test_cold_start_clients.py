"""The cold-start bench builds, for every function, the Binance client its handler builds.

``bench.cold_start`` times each function's import plus the clients it uses, and the Binance client
(with the ``requests`` import it brings) is the largest of those. Which functions build one is
written down there (``BINANCE_MARKET``); this runs every function of template.yaml with its own
``events/`` file on moto and the simulator, on the data those events name (``local.sam_local``'s
``seed``), and compares the market of the first Binance client each handler built with that table.
"""

from __future__ import annotations

from typing import Any

import pytest
from klineo.binance import clear_all_caches
from klineo.binance.client import BinanceClient

from bench.cold_start import BINANCE_MARKET, BINANCE_MARKET_WHEN
from local.sam_local.demo_data import seed
from local.template import function_specs
from tests.helpers import load_event

# The events that change what the others find run last, in this order: the kill switch turned on
# (orders and runs are refused after it), the strategy deleted, then the connection deleted.
LAST = ("kill_switch_set", "strategy_delete", "connection_delete")
PACKAGES = sorted((spec.package for spec in function_specs()),
                  key=lambda name: (LAST.index(name) if name in LAST else -1, name))


@pytest.fixture
def clients_built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The market of every BinanceClient made from now on, in order."""
    built: list[str] = []
    original = BinanceClient.__init__

    def recording(client: BinanceClient, market: Any, *args: Any, **kwargs: Any) -> None:
        built.append(str(getattr(market, "value", market)).upper())
        original(client, market, *args, **kwargs)

    monkeypatch.setattr(BinanceClient, "__init__", recording)
    return built


def test_every_function_is_timed_with_the_binance_client_its_handler_builds(
    sim_env: Any, invoke: Any, clients_built: list[str]
) -> None:
    """GIVEN the events' data seeded WHEN each function handles its event THEN the Binance client it
    built first (or none) is the one bench.cold_start builds for it; a function whose client depends
    on data the event does not find (BINANCE_MARKET_WHEN) may build none."""
    seed()
    mismatches = {}
    for package in PACKAGES:
        clear_all_caches()  # each function starts as a new container: no client cached
        clients_built.clear()
        invoke(package, load_event(package))
        built = clients_built[0] if clients_built else None
        expected = BINANCE_MARKET.get(package)
        if built != expected and not (built is None and package in BINANCE_MARKET_WHEN):
            mismatches[package] = {"handler built": built, "bench builds": expected}
    assert mismatches == {}, "\n".join(f"{name}: {seen}" for name, seen in mismatches.items())


def test_the_data_dependent_clients_are_ones_the_bench_builds() -> None:
    """GIVEN BINANCE_MARKET_WHEN (clients built only on some data) THEN each names a function the bench
    times with that client, and says when."""
    assert set(BINANCE_MARKET_WHEN) <= set(BINANCE_MARKET)
    assert all(reason.strip() for reason in BINANCE_MARKET_WHEN.values())
