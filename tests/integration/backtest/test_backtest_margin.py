"""POST /strategies/backtest: a simulated account trades within its equity and says what it skipped.

Against the simulator (deterministic past klines: BTCUSDT near 66,000 in January 2025; minimum
quantity 0.001, minimum order value 100 USDT) and moto, through the route, as ``test_backtest_api``.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from klineo.binance.endpoints import clear_exchange_info_cache
from klineo.services import backtest as backtest_service

from tests.helpers import response_json
from tests.integration.api.conftest import iam as iam  # fixture
from tests.integration.api.conftest import invoke as invoke  # fixture
from tests.integration.api.conftest import sim_env as sim_env  # fixture
from tests.integration.backtest.test_backtest_api import BODY, _klines_requests, _post

BY_SIZE: dict[str, Any] = {**BODY, "quote_size_usdt": None}


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    names = ("final_equity", "total_return_pct", "max_drawdown_pct", "win_rate_pct", "fees_paid",
             "number_of_trades", "skipped_entries", "skipped_reasons", "liquidated_at")
    return {name: result[name] for name in names}


def test_the_testers_tiny_balance_with_a_large_size_trades_nothing_and_says_why(sim_env, invoke) -> None:
    """GIVEN 0.0001 USDT and size 0.01 BTC WHEN backtested THEN no trade, 0 %, entries skipped for margin."""
    response = _post(invoke, {**BY_SIZE, "size": "0.01", "paper_balance_usdt": "0.0001"})
    assert response["statusCode"] == 200, response["body"]
    result = response_json(response)["result"]
    assert (result["number_of_trades"], result["final_equity"]) == (0, "0.0001")
    assert (result["total_return_pct"], result["max_drawdown_pct"]) == ("0", "0")
    assert result["skipped_entries"] > 0
    assert result["skipped_reasons"] == {"insufficient_margin": result["skipped_entries"]}


def test_a_size_below_the_symbols_minimum_quantity_is_refused_naming_size(sim_env, invoke) -> None:
    """GIVEN size 0.0004 (minimum 0.001) WHEN posting THEN 422 naming size and the minimum, no klines."""
    response = _post(invoke, {**BY_SIZE, "size": "0.0004"})
    assert response["statusCode"] == 422, response["body"]
    answer = response_json(response)["error"]
    assert answer["field"] == "size"
    assert answer["message"] == "size is below BTCUSDT's minimum quantity 0.001"
    assert "0.0004" not in response["body"]
    assert _klines_requests(sim_env) == []


def test_a_quote_size_below_the_minimum_order_value_is_refused_naming_it(sim_env, invoke) -> None:
    """GIVEN quote_size_usdt 50 (minimum order value 100) WHEN posting THEN 422 naming it and the minimum."""
    response = _post(invoke, {**BODY, "quote_size_usdt": 50})
    assert response["statusCode"] == 422, response["body"]
    answer = response_json(response)["error"]
    assert answer["field"] == "quote_size_usdt"
    assert answer["message"] == "quote_size_usdt is below BTCUSDT's minimum order value 100 USDT"
    assert "50" not in answer["message"]


def test_affordable_backtests_keep_their_figures_and_skip_nothing(sim_env, invoke) -> None:
    """GIVEN affordable entries WHEN backtested THEN the figures from before margins, nothing skipped."""
    quote = response_json(_post(invoke, BODY))["result"]
    assert _summary(quote) == {
        "final_equity": "9766.37883815", "total_return_pct": "-2.34", "max_drawdown_pct": "2.68",
        "win_rate_pct": "21.13", "fees_paid": "68.11060029", "number_of_trades": 71,
        "skipped_entries": 0, "skipped_reasons": {}, "liquidated_at": None}
    percent = response_json(_post(invoke, {**BODY, "quote_size_usdt": None, "size_pct": 50,
                                           "leverage": 3}))["result"]
    assert _summary(percent) == {
        "final_equity": "6894.29193547", "total_return_pct": "-31.06", "max_drawdown_pct": "34.44",
        "win_rate_pct": "21.13", "fees_paid": "863.68419749", "number_of_trades": 71,
        "skipped_entries": 0, "skipped_reasons": {}, "liquidated_at": None}
    assert percent["model"]["leverage"] == "3"


def test_a_queued_backtest_that_can_never_trade_is_refused_at_once_like_a_synchronous_one(
    sim_env, invoke, aws, monkeypatch
) -> None:
    """GIVEN a period over the sync limit and a quote_size_usdt below the minimum order value WHEN posting
    THEN the same 422 naming quote_size_usdt as a synchronous backtest, before any klines: nothing queued."""
    monkeypatch.setattr(backtest_service, "SYNC_MAX_CANDLES", 100)

    response = _post(invoke, {**BODY, "quote_size_usdt": 50})

    assert response["statusCode"] == 422, response["body"]
    answer = response_json(response)["error"]
    assert (answer["field"], answer["message"]) == (
        "quote_size_usdt", "quote_size_usdt is below BTCUSDT's minimum order value 100 USDT")
    assert _klines_requests(sim_env) == []
    sqs = boto3.client("sqs", region_name=aws.region)
    assert sqs.receive_message(QueueUrl=aws.refs["BacktestQueue"]).get("Messages", []) == []


NO_MARKET = {
    "category": "invalid_request", "field": "symbol",
    "message": "BTCUSDT takes no MARKET orders, which the backtest simulates",
}


def test_a_symbol_that_takes_no_market_orders_is_refused_naming_symbol_before_any_klines(
    sim_env, invoke
) -> None:
    """GIVEN a symbol whose exchangeInfo lists only LIMIT orders WHEN backtesting THEN 422 naming symbol and
    why (every simulated order is a MARKET one, so nothing could trade), before any klines are fetched."""
    sim_env.set_order_types("BTCUSDT", ["LIMIT"])

    response = _post(invoke, BODY)

    assert response["statusCode"] == 422, response["body"]
    answer = response_json(response)["error"]
    assert {name: answer[name] for name in NO_MARKET} == NO_MARKET
    assert answer["errors"] == [{"field": "symbol", "message": NO_MARKET["message"]}]
    assert _klines_requests(sim_env) == []


def test_a_queued_backtest_on_a_symbol_that_takes_no_market_orders_is_refused_before_its_job(
    sim_env, invoke, aws, monkeypatch
) -> None:
    """GIVEN a period over the sync limit on a LIMIT-only symbol WHEN posting THEN the same 422 naming symbol
    as a synchronous backtest, before any klines: no job queued to wait for a result that cannot trade."""
    monkeypatch.setattr(backtest_service, "SYNC_MAX_CANDLES", 100)
    sim_env.set_order_types("BTCUSDT", ["LIMIT"])

    response = _post(invoke, BODY)

    assert response["statusCode"] == 422, response["body"]
    answer = response_json(response)["error"]
    assert {name: answer[name] for name in NO_MARKET} == NO_MARKET
    assert _klines_requests(sim_env) == []
    sqs = boto3.client("sqs", region_name=aws.region)
    assert sqs.receive_message(QueueUrl=aws.refs["BacktestQueue"]).get("Messages", []) == []


@pytest.mark.parametrize("status", ["SETTLING", "TRADING_HALT"])
def test_a_symbol_stopped_now_is_still_backtested_over_a_period_it_traded(sim_env, invoke, status) -> None:
    """GIVEN BTCUSDT stopped now (being delisted, or halted) WHEN backtesting a month of last year, when it
    traded THEN the same answer as while it traded: its klines are the history asked for, and a backtest
    places no order, so the status it has today is no refusal (before: 400 'not trading now')."""
    traded = response_json(_post(invoke, BODY))["result"]
    sim_env.set_symbol_status("BTCUSDT", status)
    clear_exchange_info_cache()
    response = _post(invoke, BODY)
    assert response["statusCode"] == 200, response["body"]
    assert response_json(response)["result"] == traded
