"""Small helpers the tests share: canonical events from events/, and their variations."""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of ``events/<name>.json``."""
    return json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def with_user(event: dict[str, Any], sub: str) -> dict[str, Any]:
    """The event as if user ``sub`` had sent it (the JWT `sub` claim API Gateway passes on)."""
    event = copy.deepcopy(event)
    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = sub
    return event


def with_body(event: dict[str, Any], body: Any, *, base64_encoded: bool = False) -> dict[str, Any]:
    """The event with a new JSON body (optionally base64-encoded, as `sam local generate-event` does)."""
    event = copy.deepcopy(event)
    raw = body if isinstance(body, str) else json.dumps(body)
    if base64_encoded:
        event["body"] = base64.b64encode(raw.encode()).decode()
        event["isBase64Encoded"] = True
    else:
        event["body"] = raw
        event["isBase64Encoded"] = False
    return event


def response_json(response: dict[str, Any]) -> Any:
    """The JSON body of a Lambda proxy response."""
    body = response.get("body") or "null"
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return json.loads(body)


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passes; its last answer (for background threads)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


TS_CLIENT_DIR = Path(__file__).resolve().parent.parent / "clients" / "typescript"


def run_npm(script: str, env: dict[str, str] | None = None, timeout_s: float = 300) -> str:
    """`npm run <script>` in clients/typescript; fails the test with npm's output when it fails."""
    assert (TS_CLIENT_DIR / "node_modules").is_dir(), "node deps missing: run `make ts-client-deps`"
    done = subprocess.run(  # noqa: S603 - fixed arguments
        ["npm", "run", "--silent", script],  # noqa: S607 - npm from PATH, as a developer runs it
        cwd=TS_CLIENT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"npm run {script} failed:\n{output}"
    return output


def put_paper_strategy(user_id: str, connection_id: str, *, symbol: str, interval: str,
                       parameters: dict[str, Any], size: Any, label: str = "paper") -> str:
    """A stored connection (keys never used) and an active paper sma_crossover strategy on it; its id."""
    from klineo.store import strategies as strategy_store
    from klineo.store.connections import Connection, put_connection

    put_connection(Connection(
        user_id=user_id, connection_id=connection_id, label=label, environment="production", key_type="hmac",
        api_key_masked="abcd...", secret_name="unused", created_at="2026-01-01T00:00:00+00:00"))
    now = strategy_store.now_iso()
    strategy = strategy_store.Strategy(
        user_id=user_id, strategy_id=strategy_store.new_strategy_id(), connection_id=connection_id,
        environment="production", symbol=symbol, interval=interval, type="sma_crossover",
        parameters=parameters, size=size, mode="paper", status="active", created_at=now, updated_at=now)
    strategy_store.put_new_strategy(strategy)
    return strategy.strategy_id


def status_after_the_fill(sim: Any, monkeypatch: Any, status: str, symbol: str = "BTCUSDT", *,
                          forget: bool = True) -> Callable[[], None]:
    """Binance sets ``symbol``'s ``status`` right after the next futures order fills on simulator ``sim`` (the
    container's exchangeInfo is forgotten: what arms its stops reads the new status; ``forget`` False keeps
    it: they read TRADING and only the algo service's refusal tells); returns the undo of the patch (the
    status stays)."""
    from klineo.binance.endpoints import clear_exchange_info_cache

    futures = sim.state.futures
    place_order = futures.place_order

    def then_status(*args: Any) -> Any:
        answer = place_order(*args)
        sim.set_symbol_status(symbol, status)
        if forget:
            clear_exchange_info_cache()
        return answer

    monkeypatch.setattr(futures, "place_order", then_status)
    return lambda: monkeypatch.setattr(futures, "place_order", place_order)
