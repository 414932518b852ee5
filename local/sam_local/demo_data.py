"""The data ``events/*.json`` refer to, made in a sam-local stack so every event works as it is.

The events name one user (their JWT ``sub``), one connection and one strategy (and
``strategy_create.json`` a second connection). ``seed`` makes them through the layer's own services,
with the ``futures-full`` demo key of the simulator: two connections (futures on for the first) and
a paper SMA strategy. The layer is pointed at the stack through this process's environment, which
``aimed_at`` sets and restores (one stack at a time).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any
from unittest import mock

from local.aws_emulation import FAKE_CREDENTIALS, functions_environment
from local.binance_urls import binance_environment
from local.template import REPO_ROOT

__all__ = ["EVENT_CONNECTION", "EVENT_STRATEGY", "EVENT_USER", "aimed_at", "host_environment", "seed"]

EVENT_USER = "5f3c2a1e-7b9d-4c8e-a6f0-123456789abc"
EVENT_CONNECTION = "0123456789abcdef0123456789abcdef"
EVENT_STRATEGY = "0123456789abcdef0123456789abcdef"
EVENT_OTHER_CONNECTION = "fedcba9876543210fedcba9876543210"


def host_environment(stack: Any) -> dict[str, str]:
    """The functions' variables for this process, aimed at ``stack``'s published 127.0.0.1 ports."""
    return {
        **FAKE_CREDENTIALS,
        "AWS_REGION": stack.resolver.region,
        "AWS_DEFAULT_REGION": stack.resolver.region,
        "AWS_ENDPOINT_URL": stack.moto_url,
        "POWERTOOLS_TRACE_DISABLED": "true",
        **binance_environment(stack.sim_url),
        **functions_environment(stack.resolver),
    }


def clear_layer_caches() -> None:
    """Forget the layer's cached clients, settings and secrets (after the environment changed)."""
    from klineo.binance import clear_all_caches
    from klineo.settings import get_settings
    from klineo.store import aws as aws_clients
    from klineo.store import secrets as secret_store

    clear_all_caches()
    secret_store.clear_cache()
    get_settings.cache_clear()
    aws_clients.clear_clients()


@contextlib.contextmanager
def aimed_at(stack: Any) -> Iterator[None]:
    """os.environ and the layer's caches pointed at ``stack`` for a while, then restored."""
    values = host_environment(stack)
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    clear_layer_caches()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        clear_layer_caches()


def _demo_key() -> dict[str, str]:
    accounts = json.loads((REPO_ROOT / "local" / "demo-accounts.json").read_text(encoding="utf-8"))
    account = next(a for a in accounts["accounts"] if a["id"] == "futures-full")
    return {"api_key": account["api_key"], "secret": account["secret"]}


def seed() -> None:
    """Two connections of the events' user (futures on for the first) and a paper strategy on it."""
    from klineo.models.common import ConnectionCreateRequest
    from klineo.models.strategy_requests import StrategyCreateRequest
    from klineo.services import connection_records, strategy_changes
    from klineo.store import connections as connection_store

    ids = iter([EVENT_CONNECTION, EVENT_OTHER_CONNECTION])
    with mock.patch.object(connection_store, "new_connection_id", lambda: next(ids)):
        for label in ("demo futures", "demo other"):
            request = ConnectionCreateRequest(
                label=label, environment="production", key_type="hmac", **_demo_key()
            )
            connection_records.create_connection(EVENT_USER, request)
    connection_store.set_futures_enabled(EVENT_USER, EVENT_CONNECTION, True)
    strategy = StrategyCreateRequest(
        connection_id=EVENT_CONNECTION, symbol="BTCUSDT", interval="15m", type="sma_crossover",
        parameters={"fast": 9, "slow": 21}, size="0.002", mode="paper",
    )
    with mock.patch.object(strategy_changes.strategy_store, "new_strategy_id", lambda: EVENT_STRATEGY):
        strategy_changes.create_strategy(EVENT_USER, strategy)
