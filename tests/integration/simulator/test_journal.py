"""The request journal: what tests read to prove which endpoints were (not) called."""

from __future__ import annotations

import requests

from local.binance_sim.testing import SignedClient


def test_journal_records_method_path_key_status_and_code(binance_sim):
    """Each API request is journaled with method, path, api_key, env, status, code and weight."""
    # GIVEN the spot-only key
    account = binance_sim.account("spot-only")
    client = SignedClient(binance_sim.url, account)
    # WHEN it reads time, its spot account, and (refused) its futures account
    client.public("GET", "/api/v3/time")
    client.signed("GET", "/api/v3/account")
    client.signed("GET", "/fapi/v2/account")
    # THEN three records describe those calls
    records = binance_sim.journal
    assert [(r.method, r.path, r.status, r.code) for r in records] == [
        ("GET", "/api/v3/time", 200, None),
        ("GET", "/api/v3/account", 200, None),
        ("GET", "/fapi/v2/account", 401, -2015),
    ]
    assert all(r.api_key == account.api_key and r.env == "production" for r in records)
    assert records[1].weight == 20


def test_journal_never_stores_query_strings_or_secrets(binance_sim):
    """Paths are stored without the signed query; the secret appears nowhere."""
    # GIVEN a signed call
    account = binance_sim.account("futures-full")
    SignedClient(binance_sim.url, account).signed("GET", "/fapi/v2/balance")
    # WHEN the journal is read over HTTP
    dumped = requests.get(f"{binance_sim.url}/__sim__/journal", timeout=5).text
    # THEN no signature, query or secret is in it
    assert "signature" not in dumped and "timestamp=" not in dumped and account.secret not in dumped
    assert '"/fapi/v2/balance"' in dumped


def test_spot_only_flow_can_be_proven_to_never_touch_fapi(binance_sim):
    """A spot connection test (time, account, apiRestrictions) leaves no /fapi record."""
    # GIVEN the full-rights key doing a spot-only connection test
    client = SignedClient(binance_sim.url, binance_sim.account("futures-full"))
    client.public("GET", "/api/v3/time")
    client.signed("GET", "/api/v3/account")
    client.signed("GET", "/sapi/v1/account/apiRestrictions")
    # WHEN the journal is inspected
    paths = [r.path for r in binance_sim.journal]
    # THEN no futures path was called
    assert paths and not any(p.startswith("/fapi") for p in paths)


def test_control_calls_and_faults_are_journaled_correctly(binance_sim):
    """Control calls are not journaled; a faulted request is, with its fault kind; testnet env is marked."""
    # GIVEN a fault on the testnet ping
    binance_sim.faults.add("http_500", path="/api/v3/ping", env="testnet")
    # WHEN control and API calls are made
    requests.get(f"{binance_sim.url}/__sim__/accounts", timeout=5)
    requests.get(f"{binance_sim.testnet_url}/api/v3/ping", timeout=5)
    # THEN only the API call is journaled, with its env and fault
    [record] = binance_sim.journal
    assert (record.path, record.env, record.status, record.fault) == (
        "/api/v3/ping",
        "testnet",
        500,
        "http_500",
    )
