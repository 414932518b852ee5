"""Real handlers' answers against openapi.json: every status and header they send is documented."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.openapi import OPENAPI_PATH
from tests.integration.api.conftest import USER_A, connection_event

DOCUMENT = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
# Headers every answer may carry that no operation documents: HTTP's own and CORS'.
UNDOCUMENTED_BY_DESIGN = frozenset({"content-type"})
# (function, path suffix, documented path, Binance path, fault): a 429 or 503 with Retry-After.
REFUSALS = [
    ("balance", "/balance", "/exchange-connections/{id}/balance", "/api/v3/account", "http_429"),
    ("balance", "/balance", "/exchange-connections/{id}/balance", "/api/v3/account", "http_418"),
    ("futures_positions", "/futures/positions", "/exchange-connections/{id}/futures/positions",
     "/fapi/v3/positionRisk", "http_429"),
    ("futures_open_orders", "/futures/open-orders", "/exchange-connections/{id}/futures/open-orders",
     "/fapi/v1/openOrders", "http_418"),
]


def _sent_headers(response: dict[str, Any]) -> set[str]:
    names = {name.lower() for name in response.get("headers") or {}}
    return {n for n in names if n not in UNDOCUMENTED_BY_DESIGN and not n.startswith("access-control-")}


@pytest.mark.parametrize(("function", "suffix", "documented", "binance_path", "fault"), REFUSALS)
def test_retry_after_of_a_refusal_is_a_documented_header(stored_connection, invoke, sim_env, function, suffix,
                                                         documented, binance_path, fault):
    """GIVEN Binance rate-limits or bans WHEN a read route answers 429/503 THEN its headers are documented."""
    sim_env.faults.add(fault, count=3, path=binance_path)
    response = invoke(function, connection_event(function, stored_connection.id, USER_A, suffix))
    status = str(response["statusCode"])
    assert status in ("429", "503") and "Retry-After" in response["headers"]
    answer = DOCUMENT["paths"][documented]["get"]["responses"][status]
    assert _sent_headers(response) <= {name.lower() for name in answer.get("headers", {})}
