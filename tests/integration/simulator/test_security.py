"""Signed-request security: API key, signatures over raw bytes, timing, environments, permissions."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote

import pytest
import requests

from local.binance_sim.accounts import DemoAccount, Permissions
from local.binance_sim.testing import SignedClient, sign_payload


@pytest.fixture
def full(binance_sim):
    return SignedClient(binance_sim.url, binance_sim.account("futures-full"))


def test_signed_call_without_api_key_header_is_rejected(binance_sim, full):
    """No X-MBX-APIKEY on a signed endpoint: 401 -2014."""
    # GIVEN a correctly signed query but no key header
    payload = f"timestamp={int(time.time() * 1000)}"
    url = f"{binance_sim.url}/api/v3/account?{payload}&signature={sign_payload(full.account, payload)}"
    # WHEN it is sent
    response = requests.get(url, timeout=5)
    # THEN it is rejected as a key-format error
    assert response.status_code == 401
    assert response.json() == {"code": -2014, "msg": "API-key format invalid."}


def test_unknown_api_key_is_minus_2015(full):
    """An API key the exchange does not know: 401 -2015."""
    # WHEN a call carries an unknown key
    response = full.signed("GET", "/api/v3/account", api_key="x" * 64)
    # THEN -2015 with the documented text
    assert response.status_code == 401
    assert response.json() == {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}


@pytest.mark.parametrize("placement", ["query", "body", "both"])
def test_hmac_signature_accepted_in_query_body_or_both(full, placement):
    """Signed params may sit in the query, a form body, or be split between them."""
    # WHEN a futures leverage change is signed with the params in each placement
    response = full.signed(
        "POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 7}, placement=placement
    )
    # THEN it succeeds
    assert response.status_code == 200, response.text
    assert response.json()["leverage"] == 7


def test_hmac_signature_is_case_insensitive_and_order_free(binance_sim, full):
    """Uppercase hex works, and parameters may come in any order (raw bytes are what is signed)."""
    # GIVEN params in an unusual order, signed, with the hex in upper case
    payload = f"recvWindow=5000&timestamp={int(time.time() * 1000)}&omitZeroBalances=true"
    signature = sign_payload(full.account, payload).upper()
    # WHEN it is sent without any content type
    response = requests.get(
        f"{binance_sim.url}/api/v3/account?{payload}&signature={signature}",
        headers={"X-MBX-APIKEY": full.account.api_key},
        timeout=5,
    )
    # THEN it is accepted
    assert response.status_code == 200, response.text


def test_signature_is_checked_over_the_percent_encoded_bytes_as_sent(binance_sim, full):
    """Signing the percent-encoded bytes as sent verifies; signing the decoded text is -1022."""
    # GIVEN a value that needs percent-encoding
    encoded = f"symbol=BTCUSDT&newClientOrderId={quote('a:b/c', safe='')}&timestamp={int(time.time() * 1000)}"
    decoded = encoded.replace("%3A", ":").replace("%2F", "/")
    headers = {"X-MBX-APIKEY": full.account.api_key}
    # WHEN the same bytes are sent once signed as sent and once signed decoded
    good = requests.get(
        f"{binance_sim.url}/fapi/v1/openOrders?{encoded}&signature={sign_payload(full.account, encoded)}",
        headers=headers,
        timeout=5,
    )
    bad = requests.get(
        f"{binance_sim.url}/fapi/v1/openOrders?{encoded}&signature={sign_payload(full.account, decoded)}",
        headers=headers,
        timeout=5,
    )
    # THEN only the first verifies
    assert good.status_code == 200, good.text
    assert bad.json() == {"code": -1022, "msg": "Signature for this request is not valid."}


def test_wrong_hmac_signature_is_minus_1022(full):
    """A signature made with another secret: 400 -1022."""
    # WHEN the signature is wrong
    response = full.signed("GET", "/api/v3/account", signature="0" * 64)
    # THEN -1022
    assert response.status_code == 400
    assert response.json()["code"] == -1022


def test_hmac_matches_the_documented_futures_test_vector():
    """The simulator's HMAC agrees with the futures docs' example (facts §2)."""
    # GIVEN the documented secret and payload
    secret = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
    payload = (
        "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
        "&recvWindow=5000&timestamp=1591702613943"
    )
    # WHEN it is signed the way the simulator verifies
    account = vector_account(secret)
    # THEN the documented signature verifies (case-insensitively)
    expected = b"3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
    assert account.verify(payload.encode(), expected)
    assert account.verify(payload.encode(), expected.upper())
    assert hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest().encode() == expected


@pytest.mark.parametrize("account_id", ["ed25519-futures", "rsa-futures"])
def test_ed25519_and_rsa_signatures_are_verified(binance_sim, account_id):
    """Ed25519 and RSA keys sign with percent-encoded base64; a tampered payload is -1022."""
    # GIVEN an asymmetric-key account
    client = SignedClient(binance_sim.url, binance_sim.account(account_id))
    # WHEN a correctly signed call and a call with another payload's signature are sent
    good = client.signed("GET", "/fapi/v2/balance")
    other = sign_payload(client.account, "timestamp=1")
    bad = client.signed("GET", "/fapi/v2/balance", signature=other)
    # THEN the first succeeds and the second is -1022
    assert good.status_code == 200, good.text
    assert bad.json()["code"] == -1022


def test_timestamp_1000ms_ahead_is_rejected(full):
    """A timestamp >= serverTime + 1000: -1021 'ahead' message."""
    # WHEN the timestamp is 2 s in the future
    response = full.signed("GET", "/api/v3/account", timestamp=int(time.time() * 1000) + 2000)
    # THEN -1021 ahead
    assert response.status_code == 400
    assert response.json() == {
        "code": -1021,
        "msg": "Timestamp for this request was 1000ms ahead of the server's time.",
    }


def test_timestamp_older_than_recv_window_is_rejected(full):
    """serverTime - timestamp > recvWindow: -1021 'outside of the recvWindow'."""
    # WHEN the timestamp is 6 s old with the default 5000 ms window
    response = full.signed("GET", "/fapi/v2/account", timestamp=int(time.time() * 1000) - 6000)
    # THEN -1021 outside
    assert response.json() == {
        "code": -1021,
        "msg": "Timestamp for this request is outside of the recvWindow.",
    }


def test_recv_window_extends_the_allowed_age(full):
    """With recvWindow=10000 a 6 s old timestamp passes."""
    # WHEN the same old timestamp comes with a wider window
    response = full.signed(
        "GET", "/api/v3/account", {"recvWindow": 10000}, timestamp=int(time.time() * 1000) - 6000
    )
    # THEN it passes
    assert response.status_code == 200, response.text


def test_recv_window_above_60000_is_rejected(full):
    """recvWindow > 60000 is refused."""
    # WHEN recvWindow is 60001
    response = full.signed("GET", "/api/v3/account", {"recvWindow": 60001})
    # THEN 400 -1131
    assert response.status_code == 400
    assert response.json() == {"code": -1131, "msg": "recvWindow must be less than 60000"}


def test_server_clock_skew_makes_a_correct_client_clock_fail(binance_sim, full):
    """A server clock 10 s ahead rejects a client that does not sync (-1021 outside)."""
    # GIVEN a skewed server
    binance_sim.set_clock_skew_ms(10_000)
    # WHEN a client uses its own clock
    response = full.signed("GET", "/api/v3/account")
    # THEN the timestamp is outside the window
    assert response.json()["code"] == -1021


def test_query_parameter_wins_over_body(full):
    """A param sent in both query and body takes the query's value."""
    # GIVEN leverage 3 in the query and 9 in the body (all signed)
    timestamp = int(time.time() * 1000)
    query = f"symbol=BTCUSDT&leverage=3&timestamp={timestamp}"
    body = "leverage=9"
    signature = sign_payload(full.account, query + body)
    # WHEN it is posted
    response = requests.post(
        f"{full.base_url}/fapi/v1/leverage?{query}",
        data=f"{body}&signature={signature}",
        headers={"X-MBX-APIKEY": full.account.api_key, "Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    )
    # THEN the query value was used
    assert response.status_code == 200, response.text
    assert response.json()["leverage"] == 3


def test_production_key_on_testnet_and_testnet_key_on_production_fail(binance_sim):
    """Keys only exist in their own environment: the other one answers -2015."""
    # GIVEN a production and a testnet key, each pointed at the wrong base URL
    production_on_testnet = SignedClient(binance_sim.testnet_url, binance_sim.account("futures-full"))
    testnet_on_production = SignedClient(binance_sim.url, binance_sim.account("testnet-futures"))
    testnet_on_testnet = SignedClient(binance_sim.testnet_url, binance_sim.account("testnet-futures"))
    # WHEN each reads its account
    wrong_one = production_on_testnet.signed("GET", "/api/v3/account")
    wrong_two = testnet_on_production.signed("GET", "/fapi/v2/account")
    right = testnet_on_testnet.signed("GET", "/fapi/v2/account")
    # THEN the mismatched ones are -2015 and the matched one works
    assert wrong_one.status_code == 401 and wrong_one.json()["code"] == -2015
    assert wrong_two.status_code == 401 and wrong_two.json()["code"] == -2015
    assert right.status_code == 200, right.text


def test_key_without_futures_rights_gets_minus_2015_on_fapi(binance_sim):
    """A spot-only key is refused on every /fapi signed call but works on spot."""
    # GIVEN the spot-only key
    client = SignedClient(binance_sim.url, binance_sim.account("spot-only"))
    # WHEN it reads spot and futures accounts
    spot = client.signed("GET", "/api/v3/account")
    futures = client.signed("GET", "/fapi/v2/account")
    # THEN spot works, futures is -2015 (with the futures text)
    assert spot.status_code == 200
    assert futures.status_code == 401
    assert futures.json() == {
        "code": -2015,
        "msg": "Invalid API-key, IP, or permissions for action, request ip: 127.0.0.1",
    }


def test_ip_allow_list_excluding_the_caller_gives_minus_2015(binance_sim):
    """A key restricted to other IPs is refused from 127.0.0.1."""
    # GIVEN the IP-restricted key
    client = SignedClient(binance_sim.url, binance_sim.account("ip-restricted"))
    # WHEN it reads its spot account
    response = client.signed("GET", "/api/v3/account")
    # THEN -2015
    assert response.status_code == 401 and response.json()["code"] == -2015


def test_missing_timestamp_or_signature_is_minus_1102(binance_sim, full):
    """Signed endpoints require timestamp and signature (-1102)."""
    # WHEN a call has no timestamp, and another has no signature
    headers = {"X-MBX-APIKEY": full.account.api_key}
    no_timestamp = requests.get(f"{binance_sim.url}/api/v3/account?signature=abc", headers=headers, timeout=5)
    no_signature = requests.get(
        f"{binance_sim.url}/api/v3/account?timestamp={int(time.time() * 1000)}", headers=headers, timeout=5
    )
    # THEN both are -1102 naming the parameter
    assert no_timestamp.json()["code"] == -1102 and "'timestamp'" in no_timestamp.json()["msg"]
    assert no_signature.json()["code"] == -1102 and "'signature'" in no_signature.json()["msg"]


def test_hmac_matches_the_documented_spot_non_ascii_test_vector():
    """The spot docs' percent-encoded UTF-8 symbol example verifies over the encoded bytes."""
    # GIVEN the documented spot secret and the payload with a percent-encoded UTF-8 symbol
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    payload = (
        "symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY&type=LIMIT"
        "&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    )
    account = vector_account(secret)
    # WHEN the documented signature is checked
    expected = b"e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"
    # THEN it verifies over the encoded bytes
    assert account.verify(payload.encode(), expected)


def test_form_body_without_content_type_is_accepted(binance_sim, full):
    """A POST whose signed params are in a body sent with no Content-Type still works."""
    # GIVEN a signed form body
    body = f"symbol=ETHUSDT&leverage=5&timestamp={int(time.time() * 1000)}"
    body = f"{body}&signature={sign_payload(full.account, body)}"
    # WHEN it is posted as raw bytes with no content type
    response = requests.post(
        f"{binance_sim.url}/fapi/v1/leverage",
        data=body.encode(),
        headers={"X-MBX-APIKEY": full.account.api_key},
        timeout=5,
    )
    # THEN it is accepted
    assert response.status_code == 200, response.text
    assert response.json()["leverage"] == 5


def vector_account(secret: str) -> DemoAccount:
    """An HMAC account holding a documented test vector's secret (nothing else about it matters)."""
    return DemoAccount(
        id="vector", description="", environment="production", key_type="HMAC", api_key="k",
        permissions=Permissions(), spot_balances={}, futures_balances={}, create_time=0, uid=0, secret=secret,
    )
