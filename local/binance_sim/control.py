"""The control interface under /__sim__/ (a path no Binance client uses).

GET  /__sim__/journal            {"records": [...]}        DELETE /__sim__/journal clears it
POST /__sim__/faults             {"kind", "count", "match": {"method", "path", "env", "api_key"},
                                  "delay_ms", "retry_after_s", "execute", "after", "weight"}
GET  /__sim__/faults             armed faults              DELETE /__sim__/faults disarms all
POST /__sim__/clock              {"skew_ms": N}            GET /__sim__/clock
POST /__sim__/config             {"spot_weight_limit": ..., "latency_ms": ..., ...}; GET returns it
POST /__sim__/reset              fresh balances, orders, counters, faults and journal
GET  /__sim__/accounts           demo accounts (no secrets)
POST /__sim__/mark               {"symbol": "BTCUSDT", "price": 61000.5} pins the futures mark price
                                 ("price": null unpins); GET /__sim__/mark lists pinned prices
POST /__sim__/trades             {"account": "futures-full", "kind": "liquidation"|"adl"|"manual",
                                  "symbol", "side", "quantity", "price", "positionSide"} (see history.py)
POST /__sim__/age                {"ms": N} makes every order N ms older and purges as Binance does
POST /__sim__/symbol-status      {"symbol": "ETHUSDT", "status": "SETTLING", "since_ms": N} stops a futures
                                 symbol (no candle from since_ms, default now; new orders refused -4140,
                                 cancels not); "TRADING" resumes it

Control calls are never rate-limited, faulted or journaled.
"""

from __future__ import annotations

import dataclasses
import json

from .config import RUNTIME_FIELDS
from .state import SimulatorState

__all__ = ["apply_config", "handle_control"]


def apply_config(state: SimulatorState, changes: dict) -> dict:
    """Change runtime-tunable settings; unknown fields raise ValueError."""
    unknown = set(changes) - RUNTIME_FIELDS
    if unknown:
        raise ValueError(f"not tunable at runtime: {sorted(unknown)}; tunable: {sorted(RUNTIME_FIELDS)}")
    for name, value in changes.items():
        current = getattr(state.config, name)
        setattr(state.config, name, type(current)(value))
    return config_view(state)


def config_view(state: SimulatorState) -> dict:
    """The config as JSON."""
    view = dataclasses.asdict(state.config)
    view["accounts_file"] = str(view["accounts_file"])
    return view


def _add_fault(state: SimulatorState, document: dict) -> dict:
    match = document.get("match") or {}
    options = {key: document[key] for key in ("delay_ms", "retry_after_s", "execute", "after", "weight")
               if key in document}
    fault = state.faults.add(
        document["kind"],
        int(document.get("count", 1)),
        method=match.get("method"),
        path=match.get("path"),
        env=match.get("env"),
        api_key=match.get("api_key"),
        **options,
    )
    return fault.as_dict()


def handle_control(state: SimulatorState, method: str, path: str, body: bytes) -> tuple[int, dict]:
    """Answer one control request: (HTTP status, JSON body)."""
    try:
        document = json.loads(body) if body.strip() else {}
    except ValueError:
        return 400, {"error": "body must be JSON"}
    route = (method, path.rstrip("/"))
    try:
        if route == ("GET", "/__sim__/journal"):
            return 200, {"records": [r.as_dict() for r in state.journal.records()]}
        if route == ("DELETE", "/__sim__/journal"):
            state.journal.clear()
            return 200, {}
        if route == ("POST", "/__sim__/faults"):
            return 200, _add_fault(state, document)
        if route == ("GET", "/__sim__/faults"):
            return 200, {"faults": [f.as_dict() for f in state.faults.pending()]}
        if route == ("DELETE", "/__sim__/faults"):
            state.faults.clear()
            return 200, {}
        if route == ("POST", "/__sim__/clock"):
            state.config.clock_skew_ms = int(document["skew_ms"])
            return 200, {"skew_ms": state.config.clock_skew_ms, "serverTime": int(state.server_time_ms())}
        if route == ("GET", "/__sim__/clock"):
            return 200, {"skew_ms": state.config.clock_skew_ms, "serverTime": int(state.server_time_ms())}
        if route == ("POST", "/__sim__/config"):
            return 200, apply_config(state, document)
        if route == ("GET", "/__sim__/config"):
            return 200, config_view(state)
        if route == ("POST", "/__sim__/reset"):
            state.reset()
            return 200, {}
        if route == ("POST", "/__sim__/mark"):
            state.set_mark_price(document["symbol"], document["price"])
            return 200, {"marks": dict(state.mark_overrides)}
        if route == ("GET", "/__sim__/mark"):
            return 200, {"marks": dict(state.mark_overrides)}
        if route == ("POST", "/__sim__/trades"):
            account = state.accounts[document["account"]]
            return 200, state.history.inject(account, document, state.server_time_ms())
        if route == ("POST", "/__sim__/age"):
            return 200, state.history.age(int(document["ms"]), state.server_time_ms())
        if route == ("POST", "/__sim__/symbol-status"):
            state.set_symbol_status(document["symbol"], str(document["status"]), document.get("since_ms"))
            return 200, {"stopped": {symbol: status for symbol, (status, _) in state.stopped.items()}}
        if route == ("GET", "/__sim__/accounts"):
            return 200, {"accounts": [a.summary() for a in state.accounts.values()]}
    except (KeyError, TypeError, ValueError) as error:
        return 400, {"error": str(error)}
    return 404, {"error": f"no control endpoint {method} {path}"}
