"""GET /exchange-connections/{id}/futures/symbols/{symbol}: a symbol's rules, on moto and the simulator."""

from __future__ import annotations

from typing import Any

import pytest
from klineo.store.connections import update_settings

from local.binance_sim.market import futures_exchange_info
from tests.integration.api.conftest import USER_A, USER_B, connection_event
from tests.integration.futures.helpers import body_of


def _event(connection_id: str, symbol: str, user: str = USER_A) -> dict[str, Any]:
    event = connection_event("futures_symbol_rules", connection_id, user, f"/futures/symbols/{symbol}")
    event["pathParameters"]["symbol"] = symbol
    return event


def _simulated_filters(symbol: str) -> dict[str, dict[str, Any]]:
    """The simulator's own exchangeInfo entry of ``symbol``, its filters by type."""
    (entry,) = [s for s in futures_exchange_info(0, 2400, 1200, 300)["symbols"] if s["symbol"] == symbol]
    return {f["filterType"]: f for f in entry["filters"]}


def _same_number(ours: str, binance: str) -> bool:
    return float(ours) == float(binance) and "e" not in ours.lower()


def test_btcusdt_rules_are_the_simulators_exchange_info_with_the_connections_limits(
        sim_env, invoke, stored_connection):
    """GIVEN a connection with max_notional_usdt 2500 WHEN BTCUSDT's rules are read THEN every filter (its
    PERCENT_PRICE band's multipliers too) is the simulator's exchangeInfo as a plain decimal string, with the
    connection's limits beside them."""
    update_settings(USER_A, stored_connection.id, {"max_notional_usdt": 2500})
    sim_env.clear_journal()

    response = invoke("futures_symbol_rules", _event(stored_connection.id, "BTCUSDT"))

    assert response["statusCode"] == 200, response["body"]
    rules, filters = body_of(response), _simulated_filters("BTCUSDT")
    expected = {
        "tick_size": filters["PRICE_FILTER"]["tickSize"], "min_price": filters["PRICE_FILTER"]["minPrice"],
        "max_price": filters["PRICE_FILTER"]["maxPrice"], "step_size": filters["LOT_SIZE"]["stepSize"],
        "min_quantity": filters["LOT_SIZE"]["minQty"], "max_quantity": filters["LOT_SIZE"]["maxQty"],
        "market_step_size": filters["MARKET_LOT_SIZE"]["stepSize"],
        "market_min_quantity": filters["MARKET_LOT_SIZE"]["minQty"],
        "market_max_quantity": filters["MARKET_LOT_SIZE"]["maxQty"],
        "min_notional": filters["MIN_NOTIONAL"]["notional"],
        "percent_price_multiplier_up": filters["PERCENT_PRICE"]["multiplierUp"],
        "percent_price_multiplier_down": filters["PERCENT_PRICE"]["multiplierDown"],
    }
    assert {name: rules[name] for name in expected if not _same_number(rules[name], expected[name])} == {}
    assert (rules["symbol"], rules["status"], rules["base_asset"], rules["quote_asset"]) == (
        "BTCUSDT", "TRADING", "BTC", "USDT")
    assert "STOP_MARKET" in rules["order_types"] and rules["environment"] == "production"
    assert (rules["max_leverage"], rules["max_notional_usdt"]) == (10, "2500")
    assert [r.path for r in sim_env.journal] == ["/fapi/v1/exchangeInfo"]


@pytest.mark.parametrize("symbol", ["NOPEUSDT", "btc-usdt"])
def test_an_unknown_or_malformed_symbol_is_refused_naming_symbol(sim_env, invoke, stored_connection, symbol):
    """GIVEN a symbol Binance does not list, or one off the symbol pattern WHEN read THEN 400 naming symbol,
    whose message never repeats it; a malformed one never reaches Binance."""
    sim_env.clear_journal()
    response = invoke("futures_symbol_rules", _event(stored_connection.id, symbol))

    assert response["statusCode"] == 400, response["body"]
    error = body_of(response)["error"]
    assert (error["category"], error["field"]) == ("invalid_request", "symbol")
    assert symbol not in response["body"], response["body"]
    if symbol == "btc-usdt":
        assert sim_env.journal == []


def test_another_users_connection_is_not_found(sim_env, invoke, stored_connection):
    """GIVEN USER_A's connection WHEN USER_B reads a symbol's rules on it THEN 404, nothing from Binance."""
    sim_env.clear_journal()
    response = invoke("futures_symbol_rules", _event(stored_connection.id, "BTCUSDT", user=USER_B))

    assert response["statusCode"] == 404, response["body"]
    assert body_of(response)["error"]["category"] == "not_found"
    assert sim_env.journal == []
