"""Futures account settings on the simulator: position mode, margin type, leverage, brackets.

Each answer and error code is the one docs/binance-facts.md records for Binance.
"""

from __future__ import annotations

import pytest

from local.binance_sim.testing import SignedClient

MARKET_BUY = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002"}
RESTING_BUY = {
    "symbol": "BTCUSDT",
    "side": "BUY",
    "type": "LIMIT",
    "quantity": "0.002",
    "price": "50000",
    "timeInForce": "GTC",
}
SUCCESS = {"code": 200, "msg": "success"}


@pytest.fixture
def full(binance_sim) -> SignedClient:
    return SignedClient(binance_sim.url, binance_sim.account("futures-full"))


def _error(response) -> tuple[int, int, str]:
    body = response.json()
    return response.status_code, body["code"], body["msg"]


def _set_mode(client: SignedClient, dual: str):
    return client.signed("POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": dual})


def _set_margin(client: SignedClient, margin_type: str, symbol: str = "BTCUSDT"):
    return client.signed("POST", "/fapi/v1/marginType", {"symbol": symbol, "marginType": margin_type})


def test_position_mode_switches_to_hedge_and_shows_in_both_reads(full):
    """POST positionSide/dual true succeeds; GET positionSide/dual and accountConfig then say hedge."""
    # GIVEN a one-way account
    before = full.signed("GET", "/fapi/v1/positionSide/dual").json()
    # WHEN hedge mode is set
    changed = _set_mode(full, "true")
    # THEN Binance's success body comes back and both reads show the new mode
    assert before == {"dualSidePosition": False}
    assert (changed.status_code, changed.json()) == (200, SUCCESS)
    assert full.signed("GET", "/fapi/v1/positionSide/dual").json() == {"dualSidePosition": True}
    assert full.signed("GET", "/fapi/v1/accountConfig").json()["dualSidePosition"] is True


def test_setting_the_current_position_mode_again_is_4059(full):
    """Asking for the mode already set answers -4059 and changes nothing."""
    # WHEN one-way is asked on a one-way account, then hedge twice
    same_one_way = _set_mode(full, "false")
    _set_mode(full, "true")
    same_hedge = _set_mode(full, "true")
    # THEN both repeats are -4059 and the mode stays hedge
    assert _error(same_one_way) == (400, -4059, "No need to change position side.")
    assert _error(same_hedge) == (400, -4059, "No need to change position side.")
    assert full.signed("GET", "/fapi/v1/positionSide/dual").json() == {"dualSidePosition": True}


def test_position_mode_change_is_refused_with_an_open_order_then_with_a_position(full):
    """An open order anywhere gives -4067, a position gives -4068; the mode is unchanged."""
    # GIVEN a resting order
    placed = full.signed("POST", "/fapi/v1/order", RESTING_BUY).json()
    with_order = _set_mode(full, "true")
    # WHEN it is cancelled and a position is opened instead
    full.signed("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": placed["orderId"]})
    full.signed("POST", "/fapi/v1/order", MARKET_BUY)
    with_position = _set_mode(full, "true")
    # THEN each is refused with its own code and the account is still one-way
    assert _error(with_order) == (
        400,
        -4067,
        "Position side cannot be changed if there exists open orders.",
    )
    assert _error(with_position) == (400, -4068, "Position side cannot be changed if there exists position.")
    assert full.signed("GET", "/fapi/v1/positionSide/dual").json() == {"dualSidePosition": False}


@pytest.mark.parametrize(
    ("params", "code"),
    [({}, -1102), ({"dualSidePosition": "yes"}, -1100)],
)
def test_position_mode_change_needs_a_true_or_false(full, params, code):
    """A missing dualSidePosition is -1102, a value other than true/false is -1100."""
    # WHEN the parameter is missing or malformed
    response = full.signed("POST", "/fapi/v1/positionSide/dual", params)
    # THEN the request is refused naming the parameter
    assert response.status_code == 400
    assert response.json()["code"] == code and "dualSidePosition" in response.json()["msg"]


def test_margin_type_changes_per_symbol_and_shows_in_symbol_config_and_position_risk(full):
    """ISOLATED on BTCUSDT only: symbolConfig says ISOLATED, positionRisk v2 says isolated."""
    # WHEN BTCUSDT is switched to isolated
    changed = _set_margin(full, "ISOLATED")
    # THEN only that symbol changed, in Binance's two spellings
    config = {row["symbol"]: row for row in full.signed("GET", "/fapi/v1/symbolConfig").json()}
    risk = {row["symbol"]: row for row in full.signed("GET", "/fapi/v2/positionRisk").json()}
    assert (changed.status_code, changed.json()) == (200, SUCCESS)
    assert config["BTCUSDT"]["marginType"] == "ISOLATED" and config["ETHUSDT"]["marginType"] == "CROSSED"
    assert risk["BTCUSDT"]["marginType"] == "isolated" and risk["ETHUSDT"]["marginType"] == "cross"


def test_setting_the_current_margin_type_again_is_4046(full):
    """CROSSED on a cross symbol, or ISOLATED twice, answers -4046."""
    # WHEN the current margin type is asked for
    same_cross = _set_margin(full, "CROSSED")
    _set_margin(full, "ISOLATED")
    same_isolated = _set_margin(full, "ISOLATED")
    # THEN both are -4046
    assert _error(same_cross) == (400, -4046, "No need to change margin type.")
    assert _error(same_isolated) == (400, -4046, "No need to change margin type.")


def test_margin_type_change_is_refused_with_an_order_or_a_position_in_that_symbol(full):
    """-4047 with an open order in the symbol, -4048 with a position; other symbols still change."""
    # GIVEN a resting BTCUSDT order
    placed = full.signed("POST", "/fapi/v1/order", RESTING_BUY).json()
    with_order = _set_margin(full, "ISOLATED")
    other_symbol = _set_margin(full, "ISOLATED", "ETHUSDT")
    # WHEN the order is replaced by a position
    full.signed("DELETE", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": placed["orderId"]})
    full.signed("POST", "/fapi/v1/order", MARKET_BUY)
    with_position = _set_margin(full, "ISOLATED")
    # THEN BTCUSDT is refused each time, ETHUSDT changed
    assert _error(with_order) == (400, -4047, "Margin type cannot be changed if there exists open orders.")
    assert _error(with_position) == (400, -4048, "Margin type cannot be changed if there exists position.")
    assert other_symbol.json() == SUCCESS


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "BTCUSDT"}, -1102),
        ({"symbol": "BTCUSDT", "marginType": "cross"}, -1100),
        ({"symbol": "NOPEUSDT", "marginType": "ISOLATED"}, -1121),
    ],
)
def test_margin_type_change_validates_its_parameters(full, params, code):
    """Missing marginType -1102, a value other than ISOLATED/CROSSED -1100, unknown symbol -1121."""
    # WHEN the change is malformed
    response = full.signed("POST", "/fapi/v1/marginType", params)
    # THEN it is refused with the matching code
    assert response.status_code == 400 and response.json()["code"] == code


def test_leverage_change_shows_in_symbol_config_with_its_bracket_cap(full):
    """Leverage 5 on BTCUSDT: the answer and symbolConfig both say 5 and the 5x notional cap."""
    # WHEN leverage 5 is set, then set again
    first = full.signed("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 5})
    again = full.signed("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 5})
    config = full.signed("GET", "/fapi/v1/symbolConfig", {"symbol": "BTCUSDT"}).json()
    # THEN both succeed and symbolConfig carries the documented fields
    assert first.json() == {"leverage": 5, "maxNotionalValue": "80000000", "symbol": "BTCUSDT"}
    assert again.status_code == 200 and again.json() == first.json()
    assert config == [
        {
            "symbol": "BTCUSDT",
            "marginType": "CROSSED",
            "isAutoAddMargin": "false",
            "leverage": 5,
            "maxNotionalValue": "80000000",
        }
    ]


def test_leverage_above_the_symbol_maximum_is_4028(full):
    """SOLUSDT allows 75x: 76 is -4028 "Leverage 76 is not valid" and the leverage stays."""
    # WHEN 76x is asked on a 75x symbol
    response = full.signed("POST", "/fapi/v1/leverage", {"symbol": "SOLUSDT", "leverage": 76})
    config = full.signed("GET", "/fapi/v1/symbolConfig", {"symbol": "SOLUSDT"}).json()
    # THEN it is refused and the default leverage is unchanged
    assert _error(response) == (400, -4028, "Leverage 76 is not valid")
    assert config[0]["leverage"] == 20


def test_isolated_leverage_cannot_be_lowered_with_an_open_position(full):
    """Isolated with a position: lowering leverage is -4161, raising it succeeds."""
    # GIVEN an isolated BTCUSDT long at 20x
    _set_margin(full, "ISOLATED")
    full.signed("POST", "/fapi/v1/order", MARKET_BUY)
    # WHEN leverage is lowered, then raised
    lower = full.signed("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 10})
    higher = full.signed("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 25})
    # THEN only the raise is accepted
    assert _error(lower) == (
        400,
        -4161,
        "Leverage reduction is not supported in Isolated Margin Mode with open positions",
    )
    assert higher.json()["leverage"] == 25


def test_leverage_brackets_list_every_symbol_and_one_symbol_as_an_object(full):
    """Without symbol: a list of all symbols; with symbol: one object whose first bracket caps at its max."""
    # WHEN brackets are read both ways
    every = full.signed("GET", "/fapi/v1/leverageBracket").json()
    one = full.signed("GET", "/fapi/v1/leverageBracket", {"symbol": "SOLUSDT"}).json()
    # THEN the shapes follow the docs and leverage never exceeds the symbol's maximum
    assert {"BTCUSDT", "ETHUSDT", "SOLUSDT"} <= {row["symbol"] for row in every}
    assert one["symbol"] == "SOLUSDT"
    first = one["brackets"][0]
    fields = {"bracket", "initialLeverage", "notionalCap", "notionalFloor", "maintMarginRatio", "cum"}
    assert first.keys() == fields
    assert first["initialLeverage"] == 75 and first["notionalFloor"] == 0
    caps = [b["notionalCap"] for b in one["brackets"]]
    assert caps == sorted(caps)


def test_symbol_config_of_an_unknown_symbol_is_1121(full):
    """symbolConfig and leverageBracket refuse an unknown symbol with -1121."""
    # WHEN an unknown symbol is asked
    config = full.signed("GET", "/fapi/v1/symbolConfig", {"symbol": "NOPEUSDT"})
    brackets = full.signed("GET", "/fapi/v1/leverageBracket", {"symbol": "NOPEUSDT"})
    # THEN both are -1121
    assert config.json()["code"] == -1121 and brackets.json()["code"] == -1121


def test_settings_endpoints_need_the_futures_permission(binance_sim):
    """A spot-only key gets -2015 on every settings call, as on other signed futures calls."""
    # GIVEN the spot-only key
    client = SignedClient(binance_sim.url, binance_sim.account("spot-only"))
    # WHEN each settings endpoint is called
    codes = {
        client.signed("POST", "/fapi/v1/positionSide/dual", {"dualSidePosition": "true"}).json()["code"],
        client.signed("POST", "/fapi/v1/marginType", {"symbol": "BTCUSDT", "marginType": "ISOLATED"}).json()[
            "code"
        ],
        client.signed("GET", "/fapi/v1/symbolConfig").json()["code"],
        client.signed("GET", "/fapi/v1/leverageBracket").json()["code"],
    }
    # THEN all are -2015
    assert codes == {-2015}


def test_settings_read_back_from_python_without_a_request(binance_sim, full):
    """Simulator.futures_settings shows hedge + ISOLATED + 5x after the calls, and adds no journal record."""
    # GIVEN hedge mode, isolated margin and 5x set over the API
    _set_mode(full, "true")
    _set_margin(full, "ISOLATED")
    full.signed("POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 5})
    journaled = len(binance_sim.journal)
    # WHEN the test reads the simulator's own state
    settings = binance_sim.futures_settings("futures-full", "BTCUSDT")
    # THEN it is exactly what was set, and the read left no trace
    assert settings == {"dual_side_position": True, "margin_type": "ISOLATED", "leverage": 5}
    assert binance_sim.futures_settings("futures-full", "ETHUSDT")["margin_type"] == "CROSSED"
    assert len(binance_sim.journal) == journaled
