"""Hedge mode on the simulator: the futures-hedge demo account, positionSide rules, LONG and SHORT.

Rules (docs/binance-facts.md §4): in hedge mode an order needs positionSide LONG or SHORT
(BOTH or nothing is -4061) and may not send reduceOnly at all (-1106); in one-way mode only
BOTH is accepted (-4061). A closing order larger than its side's position is -2022.
"""

from __future__ import annotations

import pytest
import requests

from local.binance_sim.testing import SignedClient

BUY = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002"}
SELL = {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.002"}


@pytest.fixture
def hedge(binance_sim) -> SignedClient:
    return SignedClient(binance_sim.url, binance_sim.account("futures-hedge"))


def _order(client: SignedClient, params: dict, **extra):
    return client.signed("POST", "/fapi/v1/order", {**params, **extra})


def _positions(client: SignedClient) -> dict[str, str]:
    rows = client.signed("GET", "/fapi/v3/positionRisk", {"symbol": "BTCUSDT"}).json()
    return {row["positionSide"]: row["positionAmt"] for row in rows}


def test_the_hedge_demo_account_starts_in_hedge_mode(binance_sim, hedge):
    """futures-hedge reads dualSidePosition true; the control listing says so too."""
    # WHEN the mode is read over the API and the control interface
    mode = hedge.signed("GET", "/fapi/v1/positionSide/dual").json()
    config = hedge.signed("GET", "/fapi/v1/accountConfig").json()
    listed = requests.get(f"{binance_sim.url}/__sim__/accounts", timeout=5).json()["accounts"]
    # THEN all three say hedge, and futures-full stays one-way
    assert mode == {"dualSidePosition": True} and config["dualSidePosition"] is True
    flags = {a["id"]: a["dual_side_position"] for a in listed}
    assert flags["futures-hedge"] is True and flags["futures-full"] is False


@pytest.mark.parametrize("extra", [{}, {"positionSide": "BOTH"}])
def test_hedge_order_without_long_or_short_is_4061_and_creates_nothing(hedge, extra):
    """No positionSide (or BOTH) in hedge mode is -4061; no order and no position appear."""
    # WHEN an order without LONG/SHORT is sent
    response = _order(hedge, BUY, **extra)
    # THEN it is refused and nothing exists afterwards
    assert (response.status_code, response.json()["code"]) == (400, -4061)
    assert response.json()["msg"] == "Order's position side does not match user's setting."
    assert hedge.signed("GET", "/fapi/v1/openOrders").json() == []
    assert hedge.signed("GET", "/fapi/v3/positionRisk").json() == []


@pytest.mark.parametrize("value", ["true", "false"])
def test_hedge_order_with_reduce_only_is_1106_whatever_its_value(hedge, value):
    """reduceOnly may not be sent in hedge mode, not even "false": -1106."""
    # WHEN a LONG order carries reduceOnly
    response = _order(hedge, BUY, positionSide="LONG", reduceOnly=value)
    # THEN it is refused naming the parameter
    assert response.status_code == 400
    assert response.json() == {"code": -1106, "msg": "Parameter 'reduceonly' sent when not required."}


def test_long_and_short_positions_live_side_by_side(hedge):
    """BUY LONG and SELL SHORT open two positions; SELL LONG then closes only the long."""
    # WHEN a long and a short are opened, then the long is closed
    opened_long = _order(hedge, BUY, positionSide="LONG")
    opened_short = _order(hedge, SELL, positionSide="SHORT", quantity="0.003")
    both = _positions(hedge)
    _order(hedge, SELL, positionSide="LONG")
    after_close = _positions(hedge)
    # THEN each side holds its own amount (short negative) and closing one leaves the other
    assert opened_long.status_code == 200 and opened_short.status_code == 200
    assert both == {"LONG": "0.002", "SHORT": "-0.003"}
    assert after_close == {"SHORT": "-0.003"}


@pytest.mark.parametrize(
    ("opening", "closing"),
    [
        (None, {**SELL, "positionSide": "LONG"}),
        ({**BUY, "positionSide": "LONG"}, {**SELL, "positionSide": "LONG", "quantity": "0.003"}),
        (None, {**BUY, "positionSide": "SHORT"}),
    ],
)
def test_closing_more_than_the_side_holds_is_2022(hedge, opening, closing):
    """Closing LONG or SHORT with no position, or beyond it, is -2022 and the position is unchanged."""
    # GIVEN no position, or a 0.002 long
    if opening:
        _order(hedge, opening)
    before = _positions(hedge)
    # WHEN a larger closing order is sent
    response = _order(hedge, closing)
    # THEN it is refused and nothing moved
    assert response.json() == {"code": -2022, "msg": "ReduceOnly Order is rejected."}
    assert _positions(hedge) == before


def test_position_risk_v2_lists_long_and_short_rows_in_hedge_mode(hedge):
    """positionRisk v2 has one LONG and one SHORT row per symbol in hedge mode, none BOTH."""
    # WHEN v2 is read for one symbol
    rows = hedge.signed("GET", "/fapi/v2/positionRisk", {"symbol": "ETHUSDT"}).json()
    # THEN both sides are listed
    assert sorted(row["positionSide"] for row in rows) == ["LONG", "SHORT"]


@pytest.mark.parametrize("side", ["LONG", "SHORT"])
def test_one_way_account_refuses_long_or_short(binance_sim, side):
    """On the one-way futures-full account, LONG or SHORT is -4061."""
    # GIVEN the one-way account
    client = SignedClient(binance_sim.url, binance_sim.account("futures-full"))
    # WHEN an order names a hedge side
    response = _order(client, BUY, positionSide=side)
    # THEN it is refused
    assert response.json()["code"] == -4061


def test_switching_to_one_way_then_reset_restores_hedge_mode(binance_sim, hedge):
    """After switching the hedge account to one-way, a reset gives it back its hedge start."""
    # GIVEN the hedge account switched to one-way, where BOTH now works
    switched = hedge.signed("POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "false"})
    one_way_order = _order(hedge, BUY)
    # WHEN the simulator is reset
    requests.post(f"{binance_sim.url}/__sim__/reset", timeout=5)
    # THEN the account is in hedge mode again
    assert switched.json() == {"code": 200, "msg": "success"}
    assert one_way_order.status_code == 200
    assert hedge.signed("GET", "/fapi/v1/positionSide/dual").json() == {"dualSidePosition": True}
