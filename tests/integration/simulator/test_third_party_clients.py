"""Third-party Binance clients (not ours) work against the simulator as against the real API.

binance-connector (`binance.spot`), binance-futures-connector (`binance.um_futures`) and
python-binance (`binance.client`) share the top-level `binance` package in the venv; all three
import and work side by side.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import pytest
from binance.client import Client
from binance.error import ClientError
from binance.exceptions import BinanceAPIException
from binance.spot import Spot
from binance.um_futures import UMFutures


def _futures_round_trip(client: UMFutures) -> dict:
    """Place a resting LIMIT order, query it by id and client id, cancel it; return the states."""
    placed = client.new_order(
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        quantity=0.002,
        price=50000,
        timeInForce="GTC",
        newClientOrderId="third-party-1",
    )
    by_id = client.query_order(symbol="BTCUSDT", orderId=placed["orderId"])
    by_client_id = client.query_order(symbol="BTCUSDT", origClientOrderId="third-party-1")
    cancelled = client.cancel_order(symbol="BTCUSDT", orderId=placed["orderId"])
    return {
        "placed": placed["status"],
        "by_id": by_id["status"],
        "by_client_id": by_client_id["orderId"] == placed["orderId"],
        "cancelled": cancelled["status"],
    }


def test_binance_connector_spot_reads_time_and_account(binance_sim):
    """binance-connector Spot: server time and account with an HMAC key."""
    # GIVEN the official spot connector pointed at the simulator
    account = binance_sim.account("futures-full")
    client = Spot(api_key=account.api_key, api_secret=account.secret, base_url=binance_sim.url)
    # WHEN it reads time and account
    server_time = client.time()
    body = client.account(omitZeroBalances="true")
    # THEN both parse and carry the demo data
    assert server_time["serverTime"] > 0
    assert {b["asset"] for b in body["balances"]} == {"USDT", "BTC", "ETH"}


@pytest.mark.parametrize("account_id", ["ed25519-futures", "rsa-futures"])
def test_binance_connector_spot_signs_with_asymmetric_keys(binance_sim, account_id):
    """binance-connector Spot with an Ed25519 or RSA private key reads the account."""
    # GIVEN the connector with a private key
    account = binance_sim.account(account_id)
    client = Spot(api_key=account.api_key, private_key=account.private_key_pem, base_url=binance_sim.url)
    # WHEN it reads the account
    body = client.account()
    # THEN it is accepted
    assert body["canTrade"] is True


def test_binance_futures_connector_full_order_flow(binance_sim):
    """UMFutures: time, account, balance, then place, query and cancel an order."""
    # GIVEN the official futures connector pointed at the simulator with the full-rights key
    account = binance_sim.account("futures-full")
    client = UMFutures(key=account.api_key, secret=account.secret, base_url=binance_sim.url)
    # WHEN it reads time, account and balance and does an order round trip
    server_time = client.time()
    body = client.account()
    balances = client.balance()
    states = _futures_round_trip(client)
    # THEN every call worked
    assert server_time["serverTime"] > 0
    assert body["totalWalletBalance"] == "10000.00000000"
    assert next(b for b in balances if b["asset"] == "USDT")["availableBalance"] == "10000.00000000"
    assert states == {"placed": "NEW", "by_id": "NEW", "by_client_id": True, "cancelled": "CANCELED"}


def test_binance_futures_connector_with_rsa_key_on_the_testnet_prefix_fails_cleanly(binance_sim):
    """UMFutures with the RSA key works on production; a production key on the testnet URL is -2015."""
    # GIVEN the RSA key on production and the same key on the testnet URL
    account = binance_sim.account("rsa-futures")
    production = UMFutures(key=account.api_key, private_key=account.private_key_pem, base_url=binance_sim.url)
    testnet = UMFutures(
        key=account.api_key, private_key=account.private_key_pem, base_url=binance_sim.testnet_url
    )
    # WHEN both do a signed call
    states = _futures_round_trip(production)
    with pytest.raises(ClientError) as refused:
        testnet.balance()
    # THEN production works and the testnet refuses the key as Binance would
    assert states["cancelled"] == "CANCELED"
    assert refused.value.status_code == 401 and refused.value.error_code == -2015


def test_binance_futures_connector_surfaces_permission_errors(binance_sim):
    """A spot-only key through UMFutures raises ClientError -2015."""
    # GIVEN the spot-only key in the futures connector
    account = binance_sim.account("spot-only")
    client = UMFutures(key=account.api_key, secret=account.secret, base_url=binance_sim.url)
    # WHEN it reads the futures account
    with pytest.raises(ClientError) as refused:
        client.account()
    # THEN the connector surfaces Binance's code
    assert refused.value.error_code == -2015


def _python_binance(binance_sim, account, **kwargs) -> Client:
    client = Client(account.api_key, account.secret, ping=False, **kwargs)
    client.API_URL = binance_sim.url + "/api"
    client.MARGIN_API_URL = binance_sim.url + "/sapi"
    client.FUTURES_URL = binance_sim.url + "/fapi"
    return client


def test_python_binance_reads_and_trades(binance_sim):
    """python-binance Client: time, account, apiRestrictions, futures balance and an order round trip."""
    # GIVEN python-binance pointed at the simulator
    account = binance_sim.account("futures-full")
    client = _python_binance(binance_sim, account)
    # WHEN it reads and trades
    server_time = client.get_server_time()
    spot = client.get_account()
    restrictions = client.get_account_api_permissions()
    balances = client.futures_account_balance()
    placed = client.futures_create_order(
        symbol="BTCUSDT", side="BUY", type="LIMIT", quantity=0.002, price=50000, timeInForce="GTC"
    )
    queried = client.futures_get_order(symbol="BTCUSDT", origClientOrderId=placed["clientOrderId"])
    cancelled = client.futures_cancel_order(symbol="BTCUSDT", orderId=placed["orderId"])
    # THEN every call worked
    assert server_time["serverTime"] > 0 and spot["canTrade"] is True
    assert restrictions["enableFutures"] is True
    assert any(b["asset"] == "USDT" for b in balances)
    assert (placed["status"], queried["status"], cancelled["status"]) == ("NEW", "NEW", "CANCELED")


@pytest.mark.parametrize("account_id", ["ed25519-futures", "rsa-futures"])
def test_python_binance_with_private_keys_places_futures_orders(binance_sim, account_id):
    """python-binance signing with Ed25519/RSA keys is accepted for account reads and orders."""
    # GIVEN python-binance with a private key
    account = binance_sim.account(account_id)
    client = Client(account.api_key, private_key=account.private_key_pem, ping=False)
    client.API_URL = binance_sim.url + "/api"
    client.FUTURES_URL = binance_sim.url + "/fapi"
    # WHEN it reads its account and buys at market
    spot = client.get_account()
    order = client.futures_create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.002)
    # THEN both are accepted
    assert spot["canTrade"] is True
    assert client.futures_get_order(symbol="BTCUSDT", orderId=order["orderId"])["status"] == "FILLED"


def test_binance_futures_connector_sets_position_mode_margin_type_and_leverage(binance_sim):
    """UMFutures: hedge mode, isolated margin and 5x land in the simulator; repeats surface -4059/-4046."""
    # GIVEN the official futures connector on the one-way futures-full key
    account = binance_sim.account("futures-full")
    client = UMFutures(key=account.api_key, secret=account.secret, base_url=binance_sim.url)
    # WHEN it sets hedge mode, isolated margin and 5x, then asks for the same mode and margin again
    mode = client.change_position_mode(dualSidePosition="true")
    margin = client.change_margin_type(symbol="BTCUSDT", marginType="ISOLATED")
    leverage = client.change_leverage(symbol="BTCUSDT", leverage=5)
    with pytest.raises(ClientError) as same_mode:
        client.change_position_mode(dualSidePosition="true")
    with pytest.raises(ClientError) as same_margin:
        client.change_margin_type(symbol="BTCUSDT", marginType="ISOLATED")
    # THEN each answer parses and the reads show exactly what was set
    assert mode == {"code": 200, "msg": "success"} and margin == {"code": 200, "msg": "success"}
    assert leverage["leverage"] == 5
    assert client.get_position_mode() == {"dualSidePosition": True}
    config = client.symbol_configuration(symbol="BTCUSDT")[0]
    assert (config["marginType"], config["leverage"]) == ("ISOLATED", 5)
    assert (same_mode.value.status_code, same_mode.value.error_code) == (400, -4059)
    assert (same_margin.value.status_code, same_margin.value.error_code) == (400, -4046)


def test_python_binance_sets_position_mode_margin_type_and_leverage(binance_sim):
    """python-binance: mode, margin type and leverage calls work; a hedge order then needs positionSide."""
    # GIVEN python-binance on the one-way futures-full key
    client = _python_binance(binance_sim, binance_sim.account("futures-full"))
    # WHEN it switches to hedge mode with isolated 5x, then places orders with and without positionSide
    client.futures_change_position_mode(dualSidePosition="true")
    client.futures_change_margin_type(symbol="BTCUSDT", marginType="ISOLATED")
    client.futures_change_leverage(symbol="BTCUSDT", leverage=5)
    with pytest.raises(BinanceAPIException) as no_side:
        client.futures_create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.002)
    placed = client.futures_create_order(
        symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.002, positionSide="LONG"
    )
    # THEN the settings read back, the bare order was -4061 and the LONG order filled
    assert client.futures_get_position_mode() == {"dualSidePosition": True}
    assert client.futures_account_config()["dualSidePosition"] is True
    config = client.futures_symbol_config(symbol="BTCUSDT")[0]
    assert (config["marginType"], config["leverage"]) == ("ISOLATED", 5)
    assert no_side.value.code == -4061
    assert client.futures_get_order(symbol="BTCUSDT", orderId=placed["orderId"])["positionSide"] == "LONG"


def test_python_binance_reads_leverage_brackets(binance_sim):
    """python-binance futures_leverage_bracket: every symbol as a list, one symbol as an object."""
    # GIVEN python-binance on the futures-full key
    client = _python_binance(binance_sim, binance_sim.account("futures-full"))
    # WHEN it reads brackets without and with a symbol
    every = client.futures_leverage_bracket()
    one = client.futures_leverage_bracket(symbol="BTCUSDT")
    # THEN both parse and BTCUSDT's first bracket allows 125x
    assert any(row["symbol"] == "ETHUSDT" for row in every)
    assert one["brackets"][0]["initialLeverage"] == 125


def _tick_price(binance_sim, factor: str) -> str:
    """BTCUSDT's mark times `factor`, rounded down to its 0.10 tick."""
    mark = Decimal(str(binance_sim.mark_price("BTCUSDT")))
    return str(
        (mark * Decimal(factor) / Decimal("0.1")).to_integral_value(rounding=ROUND_DOWN) * Decimal("0.1")
    )


def test_python_binance_full_futures_journey_with_an_algo_stop(binance_sim):
    """python-binance: settings, open and read a position, reduce-only limit, cancel all, algo stop, close."""
    # GIVEN python-binance on the futures-full key
    client = _python_binance(binance_sim, binance_sim.account("futures-full"))
    # WHEN it sets the account up (hedge and back to one-way, isolated, 5x) and opens a long
    client.futures_change_position_mode(dualSidePosition="true")
    client.futures_change_position_mode(dualSidePosition="false")
    client.futures_change_margin_type(symbol="BTCUSDT", marginType="ISOLATED")
    client.futures_change_leverage(symbol="BTCUSDT", leverage=5)
    client.futures_create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
    opened = client.futures_position_information(symbol="BTCUSDT")
    # AND rests a reduce-only take-profit limit, then cancels every open order
    client.futures_create_order(
        symbol="BTCUSDT",
        side="SELL",
        type="LIMIT",
        quantity=0.01,
        price=_tick_price(binance_sim, "1.03"),
        timeInForce="GTC",
        reduceOnly="true",
    )
    resting = client.futures_get_open_orders(symbol="BTCUSDT")
    client.futures_cancel_all_open_orders(symbol="BTCUSDT")
    # AND places a stop through the algo service (the client routes STOP_MARKET there), reads and cancels it
    stop = client.futures_create_order(
        symbol="BTCUSDT",
        side="SELL",
        type="STOP_MARKET",
        stopPrice=_tick_price(binance_sim, "0.95"),
        closePosition="true",
    )
    read = client.futures_get_algo_order(algoId=stop["algoId"])
    cancelled = client.futures_cancel_algo_order(algoId=stop["algoId"])
    # AND closes the position
    client.futures_create_order(
        symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.01, reduceOnly="true"
    )
    # THEN each step is what Binance would answer, and nothing conditional went to /fapi/v1/order
    assert (opened[0]["positionAmt"], opened[0]["positionSide"]) == ("0.010", "BOTH")
    assert [o["reduceOnly"] for o in resting] == [True]
    assert client.futures_get_open_orders(symbol="BTCUSDT") == []
    assert (read["algoStatus"], read["orderType"]) == ("NEW", "STOP_MARKET")
    assert cancelled["code"] == "200"
    assert client.futures_position_information(symbol="BTCUSDT") == []
    assert all(record.code != -4120 for record in binance_sim.journal)


def test_binance_futures_connector_full_futures_journey_with_an_algo_stop(binance_sim):
    """UMFutures: settings, open and read a position, closing limit, cancel all, algo stop (signed), close."""
    # GIVEN the official futures connector on the futures-full key (it has no algo helpers: sign_request)
    account = binance_sim.account("futures-full")
    client = UMFutures(key=account.api_key, secret=account.secret, base_url=binance_sim.url)
    # WHEN it sets hedge mode, isolated margin and 5x, and opens a long
    client.change_position_mode(dualSidePosition="true")
    client.change_margin_type(symbol="BTCUSDT", marginType="ISOLATED")
    client.change_leverage(symbol="BTCUSDT", leverage=5)
    client.new_order(symbol="BTCUSDT", side="BUY", positionSide="LONG", type="MARKET", quantity=0.01)
    opened = client.get_position_risk(symbol="BTCUSDT")
    # AND rests a closing LIMIT on the long (hedge mode: no reduceOnly), then cancels all open orders
    client.new_order(
        symbol="BTCUSDT",
        side="SELL",
        positionSide="LONG",
        type="LIMIT",
        quantity=0.01,
        price=_tick_price(binance_sim, "1.03"),
        timeInForce="GTC",
    )
    resting = client.get_orders(symbol="BTCUSDT")
    client.cancel_open_orders(symbol="BTCUSDT")
    # AND places, reads and cancels a stop through the algo service
    stop = client.sign_request(
        "POST",
        "/fapi/v1/algoOrder",
        {
            "algoType": "CONDITIONAL",
            "symbol": "BTCUSDT",
            "side": "SELL",
            "positionSide": "LONG",
            "type": "STOP_MARKET",
            "triggerPrice": _tick_price(binance_sim, "0.95"),
            "closePosition": "true",
        },
    )
    read = client.sign_request("GET", "/fapi/v1/algoOrder", {"algoId": stop["algoId"]})
    cancelled = client.sign_request("DELETE", "/fapi/v1/algoOrder", {"algoId": stop["algoId"]})
    # AND closes the long
    client.new_order(symbol="BTCUSDT", side="SELL", positionSide="LONG", type="MARKET", quantity=0.01)
    # THEN every step worked as on Binance
    assert [(p["positionSide"], p["positionAmt"]) for p in opened] == [("LONG", "0.010")]
    assert [o["positionSide"] for o in resting] == ["LONG"]
    assert client.get_orders(symbol="BTCUSDT") == []
    assert (read["algoStatus"], read["positionSide"]) == ("NEW", "LONG")
    assert cancelled["msg"] == "success"
    assert client.get_position_risk(symbol="BTCUSDT") == []
