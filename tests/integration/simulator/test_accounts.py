"""Account views: spot account and commission, apiRestrictions, futures account/balance/positions."""

from __future__ import annotations

import pytest

from local.binance_sim.testing import SignedClient


@pytest.fixture
def full(binance_sim):
    return SignedClient(binance_sim.url, binance_sim.account("futures-full"))


def test_spot_account_shows_balances_and_permissions(full):
    """GET /api/v3/account returns the documented fields, demo balances and rights."""
    # WHEN the full-rights key reads its spot account
    body = full.signed("GET", "/api/v3/account").json()
    # THEN the documented fields and the demo balances are there
    assert {
        "makerCommission",
        "commissionRates",
        "canTrade",
        "canWithdraw",
        "canDeposit",
        "accountType",
        "balances",
        "permissions",
        "uid",
        "updateTime",
    } <= body.keys()
    balances = {b["asset"]: b for b in body["balances"]}
    assert balances["USDT"] == {"asset": "USDT", "free": "10000.00000000", "locked": "0.00000000"}
    assert (body["canTrade"], body["canWithdraw"], body["permissions"]) == (True, False, ["SPOT"])


def test_spot_account_omit_zero_balances(full):
    """omitZeroBalances=true drops zero balances."""
    # WHEN the account is read with and without the flag
    every = {b["asset"] for b in full.signed("GET", "/api/v3/account").json()["balances"]}
    non_zero = {
        b["asset"]
        for b in full.signed("GET", "/api/v3/account", {"omitZeroBalances": "true"}).json()["balances"]
    }
    # THEN BNB (zero) disappears
    assert "BNB" in every and "BNB" not in non_zero


def test_spot_account_reflects_trading_and_withdrawal_flags(binance_sim):
    """canTrade/canWithdraw follow the demo key's permissions."""
    # WHEN the read-only and the withdrawals-enabled keys read their accounts
    read_only = SignedClient(binance_sim.url, binance_sim.account("read-only")).signed(
        "GET", "/api/v3/account"
    )
    withdraw = SignedClient(binance_sim.url, binance_sim.account("withdrawals-enabled")).signed(
        "GET", "/api/v3/account"
    )
    # THEN the flags match
    assert (read_only.json()["canTrade"], read_only.json()["canWithdraw"]) == (False, False)
    assert (withdraw.json()["canTrade"], withdraw.json()["canWithdraw"]) == (True, True)


def test_spot_commission_requires_symbol(full):
    """account/commission returns the documented groups and needs a symbol."""
    # WHEN commission is read with and without a symbol
    body = full.signed("GET", "/api/v3/account/commission", {"symbol": "BTCUSDT"}).json()
    missing = full.signed("GET", "/api/v3/account/commission")
    # THEN the groups are there, and the missing symbol is -1102
    assert {"symbol", "standardCommission", "specialCommission", "taxCommission", "discount"} == body.keys()
    assert missing.json()["code"] == -1102


def test_api_restrictions_report_the_key_permissions(binance_sim):
    """apiRestrictions shows reading, trading, futures, withdrawals and ipRestrict."""
    # WHEN the full key and the withdrawals key read their restrictions
    full_body = (
        SignedClient(binance_sim.url, binance_sim.account("futures-full"))
        .signed("GET", "/sapi/v1/account/apiRestrictions")
        .json()
    )
    withdraw_body = (
        SignedClient(binance_sim.url, binance_sim.account("withdrawals-enabled"))
        .signed("GET", "/sapi/v1/account/apiRestrictions")
        .json()
    )
    # THEN the documented fields reflect each key
    assert {
        "ipRestrict",
        "createTime",
        "enableReading",
        "enableWithdrawals",
        "enableInternalTransfer",
        "enableMargin",
        "enableFutures",
        "permitsUniversalTransfer",
        "enableVanillaOptions",
        "enableFixApiTrade",
        "enableFixReadOnly",
        "enableSpotAndMarginTrading",
        "enablePortfolioMarginTrading",
    } == full_body.keys()
    assert full_body["enableFutures"] and full_body["enableSpotAndMarginTrading"]
    assert not full_body["enableWithdrawals"] and not full_body["ipRestrict"]
    assert withdraw_body["enableWithdrawals"] and not withdraw_body["enableFutures"]


def test_api_restrictions_does_not_exist_on_testnet(binance_sim):
    """The testnet has no /sapi: 404 with a JSON body."""
    # WHEN the testnet key asks for apiRestrictions on the testnet URL
    client = SignedClient(binance_sim.testnet_url, binance_sim.account("testnet-futures"))
    response = client.signed("GET", "/sapi/v1/account/apiRestrictions")
    # THEN 404, JSON
    assert response.status_code == 404
    assert "code" in response.json()


def test_futures_v2_account_has_permissions_and_all_positions(full):
    """/fapi/v2/account has canTrade/feeTier, totals, assets and every symbol's position."""
    # WHEN the v2 account is read
    body = full.signed("GET", "/fapi/v2/account").json()
    # THEN the v2 fields are there
    assert {
        "feeTier",
        "canTrade",
        "canDeposit",
        "canWithdraw",
        "totalWalletBalance",
        "availableBalance",
        "maxWithdrawAmount",
        "assets",
        "positions",
        "multiAssetsMargin",
    } <= body.keys()
    assert body["totalWalletBalance"] == "10000.00000000"
    assert {p["symbol"] for p in body["positions"]} >= {"BTCUSDT", "ETHUSDT", "BNBUSDT"}


def test_futures_v3_account_has_no_permission_flags_and_only_active_positions(full):
    """/fapi/v3/account drops canTrade etc. and lists only symbols with a position or orders."""
    # WHEN the v3 account and accountConfig are read
    body = full.signed("GET", "/fapi/v3/account").json()
    config = full.signed("GET", "/fapi/v1/accountConfig").json()
    # THEN v3 has totals but no flags, and accountConfig carries them
    assert "canTrade" not in body and "feeTier" not in body
    assert body["positions"] == []
    assert body["assets"][0].keys() >= {"asset", "walletBalance", "availableBalance", "crossWalletBalance"}
    assert config == {
        "feeTier": 0,
        "canTrade": True,
        "canDeposit": True,
        "canWithdraw": False,
        "dualSidePosition": False,
        "updateTime": 0,
        "multiAssetsMargin": False,
        "tradeGroupId": -1,
    }


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_futures_balance_lists_assets(full, version):
    """balance v2 and v3 return the documented fields for USDT."""
    # WHEN the balance is read
    rows = full.signed("GET", f"/fapi/{version}/balance").json()
    # THEN USDT is listed with its wallet balance
    usdt = next(r for r in rows if r["asset"] == "USDT")
    assert usdt.keys() == {
        "accountAlias",
        "asset",
        "balance",
        "crossWalletBalance",
        "crossUnPnl",
        "availableBalance",
        "maxWithdrawAmount",
        "marginAvailable",
        "updateTime",
    }
    assert usdt["balance"] == "10000.00000000"


def test_position_risk_v2_lists_every_symbol_and_v3_only_held_ones(full):
    """positionRisk v2 has leverage/marginType for all symbols; v3 is empty without positions."""
    # WHEN both versions are read without positions
    v2 = full.signed("GET", "/fapi/v2/positionRisk").json()
    v3 = full.signed("GET", "/fapi/v3/positionRisk").json()
    one = full.signed("GET", "/fapi/v2/positionRisk", {"symbol": "ETHUSDT"}).json()
    # THEN v2 lists everything with v2 fields, v3 nothing, and the filter works
    assert {r["symbol"] for r in v2} >= {"BTCUSDT", "ETHUSDT", "BNBUSDT"}
    assert {"leverage", "marginType", "isAutoAddMargin", "maxNotionalValue", "markPrice"} <= v2[0].keys()
    assert v2[0]["leverage"] == "20" and v2[0]["marginType"] == "cross"
    assert v3 == []
    assert [r["symbol"] for r in one] == ["ETHUSDT"]
