"""Futures account-setting endpoints: paths, parameters and the answer shapes Binance documents."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from klineo.binance import ErrorCategory, KlineoError, Market, endpoints

from tests.unit.binance.conftest import FUTURES, START, add_time

SERVER_MS = int(START * 1000)
BRACKETS = [{"bracket": 1, "initialLeverage": 75, "notionalCap": 5000, "notionalFloor": 0}]


def _sent(rsps, path: str) -> list[tuple[str, dict[str, str]]]:
    return [
        (c.request.method, dict(parse_qsl(urlsplit(c.request.url).query)))
        for c in rsps.calls
        if urlsplit(c.request.url).path == path
    ]


def test_position_mode_is_read_and_changed_with_dual_side_position(rsps, make_client, creds):
    """GIVEN GET/POST positionSide/dual WHEN used THEN the flag is read as a bool and sent as "true"."""
    add_time(rsps, FUTURES, SERVER_MS, Market.FUTURES)
    rsps.get(FUTURES + "/fapi/v1/positionSide/dual", json={"dualSidePosition": True})
    rsps.post(FUTURES + "/fapi/v1/positionSide/dual", json={"code": 200, "msg": "success"})
    client = make_client(Market.FUTURES)

    assert endpoints.futures_position_mode(client, creds) is True
    endpoints.futures_change_position_mode(client, creds, hedge=True)

    sent = _sent(rsps, "/fapi/v1/positionSide/dual")
    assert [m for m, _ in sent] == ["GET", "POST"] and sent[1][1]["dualSidePosition"] == "true"


def test_margin_type_is_sent_in_binance_spelling_and_anything_else_refused(rsps, make_client, creds):
    """GIVEN marginType WHEN ISOLATED is set THEN sent with the symbol; "isolated" is refused unsent."""
    add_time(rsps, FUTURES, SERVER_MS, Market.FUTURES)
    rsps.post(FUTURES + "/fapi/v1/marginType", json={"code": 200, "msg": "success"})
    client = make_client(Market.FUTURES)

    endpoints.futures_change_margin_type(client, creds, "btcusdt", "ISOLATED")
    with pytest.raises(KlineoError) as caught:
        endpoints.futures_change_margin_type(client, creds, "BTCUSDT", "isolated")

    ((method, params),) = _sent(rsps, "/fapi/v1/marginType")
    assert (method, params["symbol"], params["marginType"]) == ("POST", "BTCUSDT", "ISOLATED")
    assert (caught.value.category, caught.value.field) == (ErrorCategory.INVALID_REQUEST, "margin_type")


@pytest.mark.parametrize(
    "answer", [[{"symbol": "BNBUSDT", "brackets": BRACKETS}], {"symbol": "BNBUSDT", "brackets": BRACKETS}]
)
def test_leverage_brackets_accept_a_list_or_a_bare_object(rsps, make_client, creds, answer):
    """GIVEN either documented shape of leverageBracket WHEN read for one symbol THEN its brackets."""
    add_time(rsps, FUTURES, SERVER_MS, Market.FUTURES)
    rsps.get(FUTURES + "/fapi/v1/leverageBracket", json=answer)

    assert endpoints.futures_leverage_brackets(make_client(Market.FUTURES), creds, "BNBUSDT") == BRACKETS


def test_symbol_config_returns_the_one_symbols_row(rsps, make_client, creds):
    """GIVEN symbolConfig's list answer WHEN read for BTCUSDT THEN that row, asked with the symbol."""
    add_time(rsps, FUTURES, SERVER_MS, Market.FUTURES)
    row = {
        "symbol": "BTCUSDT",
        "marginType": "CROSSED",
        "isAutoAddMargin": False,
        "leverage": 20,
        "maxNotionalValue": "1000000",
    }
    rsps.get(FUTURES + "/fapi/v1/symbolConfig", json=[row])

    assert endpoints.futures_symbol_config(make_client(Market.FUTURES), creds, "BTCUSDT") == row
    assert _sent(rsps, "/fapi/v1/symbolConfig")[0][1]["symbol"] == "BTCUSDT"


def test_unreadable_setting_answers_are_upstream_errors(rsps, make_client, creds):
    """GIVEN answers without the documented fields WHEN read THEN upstream_unavailable, never a KeyError."""
    add_time(rsps, FUTURES, SERVER_MS, Market.FUTURES)
    rsps.get(FUTURES + "/fapi/v1/positionSide/dual", json={"unexpected": 1})
    rsps.get(FUTURES + "/fapi/v1/leverageBracket", json=[{"symbol": "BTCUSDT"}])
    client = make_client(Market.FUTURES)

    for call in (
        lambda: endpoints.futures_position_mode(client, creds),
        lambda: endpoints.futures_leverage_brackets(client, creds, "BTCUSDT"),
    ):
        with pytest.raises(KlineoError) as caught:
            call()
        assert caught.value.category is ErrorCategory.UPSTREAM_UNAVAILABLE
