"""The Binance endpoints the simulator serves: route table (weight, security) and handlers.

Handlers take a `Call` (parsed parameters, authenticated account, server time, state) and
return the JSON body; they raise `ApiError` for Binance error answers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal

from . import errors, futures_settings
from .accounts import PRODUCTION, DemoAccount
from .brackets import bracket_rows
from .errors import FUTURES, SAPI, SPOT
from .market import (
    FUTURES_INTERVALS,
    INTERVALS_MS,
    SYMBOLS,
    futures_exchange_info,
    get_symbol,
    spot_exchange_info,
)
from .state import SimulatorState

__all__ = ["MARKET_DATA", "NONE", "ROUTES", "SIGNED", "Call", "Endpoint"]

NONE = "NONE"  # public
MARKET_DATA = "MARKET_DATA"  # public; an API key may be sent
SIGNED = "SIGNED"  # TRADE / USER_DATA: key, signature and timestamp required


@dataclasses.dataclass
class Call:
    """One request as the handlers see it."""

    method: str
    path: str
    env: str
    family: str
    params: dict[str, str]
    account: DemoAccount | None
    now_ms: float
    state: SimulatorState
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """A route: family, security type, weight (fixed or computed from params), handler."""

    family: str
    security: str
    weight: int | Callable[[dict], int]
    handler: Callable[[Call], object]
    counts_order: bool = False
    production_only: bool = False
    needs_futures: bool = False

    def weight_for(self, params: dict) -> int:
        """Request weight of this call."""
        return self.weight(params) if callable(self.weight) else self.weight


# ----- shared helpers -------------------------------------------------------------------------
def _int_param(params: dict, name: str) -> int | None:
    text = params.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise errors.mandatory(name) from None


def _klines(call: Call, max_limit: int, intervals: frozenset, listed_ms: int = 0) -> list:
    """Kline rows of the call's symbol; none opens before ``listed_ms`` (a futures symbol's onboardDate:
    a startTime before it answers from the listing on, an endTime before it nothing)."""
    symbol = call.params.get("symbol")
    if not symbol:
        raise errors.mandatory("symbol")
    series = call.state.series.get(symbol)
    if series is None:
        raise errors.invalid_symbol()
    interval = call.params.get("interval")
    if not interval:
        raise errors.mandatory("interval")
    if interval not in intervals:
        raise errors.invalid_interval()
    limit = _int_param(call.params, "limit") or 500
    # Above the maximum the simulator caps rather than rejects (Binance's answer unverified).
    limit = max(1, min(limit, max_limit))
    start, end = _int_param(call.params, "startTime"), _int_param(call.params, "endTime")
    if call.family == SPOT:  # spot accepts µs timestamps since 2024-12-17
        start = start // 1000 if start is not None and start >= 10**15 else start
        end = end // 1000 if end is not None and end >= 10**15 else end
    start = max(start, listed_ms) if start is not None else start
    rows = series.klines(interval, call.now_ms, limit, start, end,
                         aggregated=call.state.config.aggregated_candles)
    return [row for row in rows if row[0] >= listed_ms]


def _futures_klines_weight(params: dict) -> int:
    try:
        limit = int(params.get("limit") or 500)
    except ValueError:
        return 5
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    return 5 if limit <= 1000 else 10


def _symbols_param(params: dict) -> list[str] | None:
    if params.get("symbol"):
        return [params["symbol"]]
    raw = params.get("symbols")
    if raw:
        return [s.strip().strip('"') for s in raw.strip("[]").split(",") if s.strip()]
    return None


# ----- spot -----------------------------------------------------------------------------------
def ping(call: Call) -> dict:
    """GET /api/v3/ping, /fapi/v1/ping."""
    return {}


def server_time(call: Call) -> dict:
    """GET /api/v3/time, /fapi/v1/time."""
    return {"serverTime": int(call.now_ms)}


def spot_exchange_info_handler(call: Call) -> dict:
    """GET /api/v3/exchangeInfo."""
    return spot_exchange_info(
        int(call.now_ms), call.state.config.spot_weight_limit, _symbols_param(call.params)
    )


def spot_klines(call: Call) -> list:
    """GET /api/v3/klines (limit max 1000)."""
    return _klines(call, 1000, frozenset(INTERVALS_MS))


def _ticker_prices(call: Call, decimals: int) -> object:
    symbol = call.params.get("symbol")
    symbols = [get_symbol(symbol).symbol] if symbol else list(SYMBOLS)
    rows = [{"symbol": s, "price": f"{call.state.mark_price(s, call.now_ms):.{decimals}f}"} for s in symbols]
    if call.family == FUTURES:
        for row in rows:
            row["time"] = int(call.now_ms)
    return rows[0] if symbol else rows


def spot_ticker_price(call: Call) -> object:
    """GET /api/v3/ticker/price."""
    return _ticker_prices(call, 8)


def spot_avg_price(call: Call) -> dict:
    """GET /api/v3/avgPrice."""
    spec = get_symbol(call.params.get("symbol"))
    price = call.state.mark_price(spec.symbol, call.now_ms)
    return {"mins": 5, "price": f"{price:.8f}", "closeTime": int(call.now_ms)}


def spot_account(call: Call) -> dict:
    """GET /api/v3/account."""
    account = call.account
    omit_zero = call.params.get("omitZeroBalances", "false").lower() == "true"
    balances = [
        {"asset": asset, "free": f"{Decimal(amount):.8f}", "locked": "0.00000000"}
        for asset, amount in account.spot_balances.items()
        if not (omit_zero and Decimal(amount) == 0)
    ]
    permissions = ["SPOT"] + (["MARGIN"] if account.permissions.margin else [])
    return {
        "makerCommission": 10,
        "takerCommission": 10,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": "0.00100000",
            "taker": "0.00100000",
            "buyer": "0.00000000",
            "seller": "0.00000000",
        },
        "canTrade": account.permissions.spot_trading,
        "canWithdraw": account.permissions.withdrawals,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": account.create_time,
        "accountType": "SPOT",
        "balances": balances,
        "permissions": permissions,
        "uid": account.uid,
    }


def spot_commission(call: Call) -> dict:
    """GET /api/v3/account/commission."""
    symbol = call.params.get("symbol")
    if not symbol:
        raise errors.mandatory("symbol")
    get_symbol(symbol)
    standard = {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0.00000000", "seller": "0.00000000"}
    zero = {"maker": "0.00000000", "taker": "0.00000000", "buyer": "0.00000000", "seller": "0.00000000"}
    return {
        "symbol": symbol,
        "standardCommission": standard,
        "specialCommission": dict(zero),
        "taxCommission": dict(zero),
        "discount": {
            "enabledForAccount": True,
            "enabledForSymbol": True,
            "discountAsset": "BNB",
            "discount": "0.75000000",
        },
    }


def api_restrictions(call: Call) -> dict:
    """GET /sapi/v1/account/apiRestrictions (production only)."""
    account = call.account
    permissions = account.permissions
    return {
        "ipRestrict": bool(permissions.ip_allow_list),
        "createTime": account.create_time,
        "enableReading": permissions.reading,
        "enableWithdrawals": permissions.withdrawals,
        "enableInternalTransfer": False,
        "enableMargin": permissions.margin,
        "enableFutures": permissions.futures,
        "permitsUniversalTransfer": False,
        "enableVanillaOptions": False,
        "enableFixApiTrade": False,
        "enableFixReadOnly": False,
        "enableSpotAndMarginTrading": permissions.spot_trading,
        "enablePortfolioMarginTrading": False,
    }


# ----- futures --------------------------------------------------------------------------------
def futures_exchange_info_handler(call: Call) -> dict:
    """GET /fapi/v1/exchangeInfo."""
    config = call.state.config
    return futures_exchange_info(
        int(call.now_ms),
        config.futures_weight_limit,
        config.futures_orders_1m_limit,
        config.futures_orders_10s_limit,
        {symbol: status for symbol, (status, _) in call.state.stopped.items()},
        call.state.order_types,
    )


def futures_klines(call: Call) -> list:
    """GET /fapi/v1/klines (limit max 1500); none before the symbol's onboardDate, nor from when it stopped
    (``set_symbol_status``)."""
    symbol = call.params.get("symbol")
    listed = SYMBOLS[symbol].onboard_date if symbol in SYMBOLS else 0
    return call.state.trading_klines(symbol, _klines(call, 1500, FUTURES_INTERVALS, listed))


def futures_ticker_price(call: Call) -> object:
    """GET /fapi/v1/ticker/price and /fapi/v2/ticker/price."""
    return _ticker_prices(call, 2)


def premium_index(call: Call) -> object:
    """GET /fapi/v1/premiumIndex: mark price and funding."""
    symbol = call.params.get("symbol")
    symbols = [get_symbol(symbol).symbol] if symbol else list(SYMBOLS)
    now = int(call.now_ms)
    next_funding = (now // 28_800_000 + 1) * 28_800_000
    rows = []
    for name in symbols:
        mark = call.state.mark_price(name, call.now_ms)
        rows.append(
            {
                "symbol": name,
                "markPrice": f"{mark:.8f}",
                "indexPrice": f"{mark:.8f}",
                "estimatedSettlePrice": f"{mark:.8f}",
                "lastFundingRate": "0.00010000",
                "interestRate": "0.00010000",
                "nextFundingTime": next_funding,
                "time": now,
            }
        )
    return rows[0] if symbol else rows


def futures_account_v2(call: Call) -> dict:
    """GET /fapi/v2/account."""
    return call.state.futures.account(call.account, call.now_ms, 2)


def futures_account_v3(call: Call) -> dict:
    """GET /fapi/v3/account."""
    return call.state.futures.account(call.account, call.now_ms, 3)


def futures_account_config(call: Call) -> dict:
    """GET /fapi/v1/accountConfig."""
    return call.state.futures.account_config(call.account, call.now_ms)


def futures_balance(call: Call) -> list:
    """GET /fapi/v2/balance and /fapi/v3/balance."""
    return call.state.futures.balances(call.account, call.now_ms)


def position_risk_v2(call: Call) -> list:
    """GET /fapi/v2/positionRisk."""
    return call.state.futures.position_risk(call.account, call.params.get("symbol"), call.now_ms, 2)


def position_risk_v3(call: Call) -> list:
    """GET /fapi/v3/positionRisk."""
    return call.state.futures.position_risk(call.account, call.params.get("symbol"), call.now_ms, 3)


def new_order(call: Call) -> dict:
    """POST /fapi/v1/order; refused on a symbol not trading now (``SimulatorState.require_trading``), or of a
    type the symbol no longer lists (``SimulatorState.require_order_type``)."""
    call.state.require_trading(call.params.get("symbol"))
    call.state.require_order_type(call.params.get("symbol"), call.params.get("type"))
    return call.state.futures.place_order(call.account, call.params, call.now_ms)


def query_order(call: Call) -> dict:
    """GET /fapi/v1/order."""
    return call.state.futures.query_order(call.account, call.params, call.now_ms)


def cancel_order(call: Call) -> dict:
    """DELETE /fapi/v1/order."""
    return call.state.futures.cancel_order(call.account, call.params, call.now_ms)


def cancel_all_orders(call: Call) -> dict:
    """DELETE /fapi/v1/allOpenOrders."""
    return call.state.futures.cancel_all(call.account, call.params, call.now_ms)


def open_orders(call: Call) -> list:
    """GET /fapi/v1/openOrders."""
    return call.state.futures.open_orders(call.account, call.params.get("symbol"), call.now_ms)


def _settings(call: Call, action: Callable, *args) -> object:
    return call.state.futures.with_state(call.account, call.now_ms, action, *args)


def change_leverage(call: Call) -> dict:
    """POST /fapi/v1/leverage."""
    return _settings(call, futures_settings.change_leverage, call.params)


def position_mode(call: Call) -> dict:
    """GET /fapi/v1/positionSide/dual."""
    return _settings(call, futures_settings.position_mode)


def change_position_mode(call: Call) -> dict:
    """POST /fapi/v1/positionSide/dual."""
    return _settings(call, futures_settings.change_position_mode, call.params)


def change_margin_type(call: Call) -> dict:
    """POST /fapi/v1/marginType."""
    return _settings(call, futures_settings.change_margin_type, call.params)


def symbol_config(call: Call) -> list:
    """GET /fapi/v1/symbolConfig."""
    return _settings(call, futures_settings.symbol_config, call.params.get("symbol"))


def leverage_bracket(call: Call) -> object:
    """GET /fapi/v1/leverageBracket (a list, or one object when `symbol` is sent)."""
    symbol = call.params.get("symbol")
    return bracket_rows(get_symbol(symbol).symbol if symbol else None)


def new_algo_order(call: Call) -> dict:
    """POST /fapi/v1/algoOrder; refused on a symbol not trading now, as a new order is
    (``SimulatorState.require_trading``: the algo service's answer is assumed the same)."""
    call.state.require_trading(call.params.get("symbol"))
    return call.state.algo.place(call.account, call.params, call.now_ms)


def query_algo_order(call: Call) -> dict:
    """GET /fapi/v1/algoOrder."""
    return call.state.algo.query(call.account, call.params, call.now_ms)


def cancel_algo_order(call: Call) -> dict:
    """DELETE /fapi/v1/algoOrder."""
    return call.state.algo.cancel(call.account, call.params, call.now_ms)


def open_algo_orders(call: Call) -> list:
    """GET /fapi/v1/openAlgoOrders."""
    return call.state.algo.open_orders(call.account, call.params, call.now_ms)


def cancel_all_algo_orders(call: Call) -> dict:
    """DELETE /fapi/v1/algoOpenOrders."""
    return call.state.algo.cancel_all(call.account, call.params, call.now_ms)


def all_algo_orders(call: Call) -> list:
    """GET /fapi/v1/allAlgoOrders."""
    return call.state.algo.history(call.account, call.params, call.now_ms)


def user_trades(call: Call) -> list:
    """GET /fapi/v1/userTrades."""
    return call.state.history.user_trades(call.account, call.params, call.now_ms)


def all_orders(call: Call) -> list:
    """GET /fapi/v1/allOrders."""
    return call.state.history.all_orders(call.account, call.params, call.now_ms)


def force_orders(call: Call) -> list:
    """GET /fapi/v1/forceOrders."""
    return call.state.history.force_orders(call.account, call.params, call.now_ms)


def order_rate_limits(call: Call) -> list:
    """GET /fapi/v1/rateLimit/order."""
    config = call.state.config
    return [
        {
            "rateLimitType": "ORDERS",
            "interval": "SECOND",
            "intervalNum": 10,
            "limit": config.futures_orders_10s_limit,
        },
        {
            "rateLimitType": "ORDERS",
            "interval": "MINUTE",
            "intervalNum": 1,
            "limit": config.futures_orders_1m_limit,
        },
    ]


def _one_or_all(single: int, every: int) -> Callable[[dict], int]:
    return lambda params: single if params.get("symbol") else every


ROUTES: dict[tuple[str, str], Endpoint] = {
    ("GET", "/api/v3/ping"): Endpoint(SPOT, NONE, 1, ping),
    ("GET", "/api/v3/time"): Endpoint(SPOT, NONE, 1, server_time),
    ("GET", "/api/v3/exchangeInfo"): Endpoint(SPOT, NONE, 20, spot_exchange_info_handler),
    ("GET", "/api/v3/klines"): Endpoint(SPOT, NONE, 2, spot_klines),
    ("GET", "/api/v3/ticker/price"): Endpoint(SPOT, NONE, _one_or_all(2, 4), spot_ticker_price),
    ("GET", "/api/v3/avgPrice"): Endpoint(SPOT, NONE, 2, spot_avg_price),
    ("GET", "/api/v3/account"): Endpoint(SPOT, SIGNED, 20, spot_account),
    ("GET", "/api/v3/account/commission"): Endpoint(SPOT, SIGNED, 20, spot_commission),
    ("GET", "/sapi/v1/account/apiRestrictions"): Endpoint(
        SAPI, SIGNED, 1, api_restrictions, production_only=True
    ),
    ("GET", "/fapi/v1/ping"): Endpoint(FUTURES, NONE, 1, ping),
    ("GET", "/fapi/v1/time"): Endpoint(FUTURES, NONE, 1, server_time),
    ("GET", "/fapi/v1/exchangeInfo"): Endpoint(FUTURES, NONE, 1, futures_exchange_info_handler),
    ("GET", "/fapi/v1/klines"): Endpoint(FUTURES, NONE, _futures_klines_weight, futures_klines),
    ("GET", "/fapi/v1/ticker/price"): Endpoint(FUTURES, NONE, _one_or_all(1, 2), futures_ticker_price),
    ("GET", "/fapi/v2/ticker/price"): Endpoint(FUTURES, NONE, _one_or_all(1, 2), futures_ticker_price),
    ("GET", "/fapi/v1/premiumIndex"): Endpoint(FUTURES, NONE, _one_or_all(1, 10), premium_index),
    ("GET", "/fapi/v2/account"): Endpoint(FUTURES, SIGNED, 5, futures_account_v2, needs_futures=True),
    ("GET", "/fapi/v3/account"): Endpoint(FUTURES, SIGNED, 5, futures_account_v3, needs_futures=True),
    ("GET", "/fapi/v1/accountConfig"): Endpoint(
        FUTURES, SIGNED, 5, futures_account_config, needs_futures=True
    ),
    ("GET", "/fapi/v2/balance"): Endpoint(FUTURES, SIGNED, 5, futures_balance, needs_futures=True),
    ("GET", "/fapi/v3/balance"): Endpoint(FUTURES, SIGNED, 5, futures_balance, needs_futures=True),
    ("GET", "/fapi/v2/positionRisk"): Endpoint(FUTURES, SIGNED, 5, position_risk_v2, needs_futures=True),
    ("GET", "/fapi/v3/positionRisk"): Endpoint(FUTURES, SIGNED, 5, position_risk_v3, needs_futures=True),
    ("POST", "/fapi/v1/order"): Endpoint(
        FUTURES, SIGNED, 0, new_order, counts_order=True, needs_futures=True
    ),
    ("GET", "/fapi/v1/order"): Endpoint(FUTURES, SIGNED, 1, query_order, needs_futures=True),
    ("DELETE", "/fapi/v1/order"): Endpoint(FUTURES, SIGNED, 1, cancel_order, needs_futures=True),
    ("DELETE", "/fapi/v1/allOpenOrders"): Endpoint(FUTURES, SIGNED, 1, cancel_all_orders, needs_futures=True),
    ("GET", "/fapi/v1/openOrders"): Endpoint(
        FUTURES, SIGNED, _one_or_all(1, 40), open_orders, needs_futures=True
    ),
    ("POST", "/fapi/v1/leverage"): Endpoint(FUTURES, SIGNED, 1, change_leverage, needs_futures=True),
    ("GET", "/fapi/v1/positionSide/dual"): Endpoint(FUTURES, SIGNED, 30, position_mode, needs_futures=True),
    ("POST", "/fapi/v1/positionSide/dual"): Endpoint(
        FUTURES, SIGNED, 1, change_position_mode, needs_futures=True
    ),
    ("POST", "/fapi/v1/marginType"): Endpoint(FUTURES, SIGNED, 1, change_margin_type, needs_futures=True),
    ("GET", "/fapi/v1/symbolConfig"): Endpoint(FUTURES, SIGNED, 5, symbol_config, needs_futures=True),
    ("GET", "/fapi/v1/leverageBracket"): Endpoint(FUTURES, SIGNED, 1, leverage_bracket, needs_futures=True),
    ("POST", "/fapi/v1/algoOrder"): Endpoint(
        FUTURES, SIGNED, 0, new_algo_order, counts_order=True, needs_futures=True
    ),
    ("GET", "/fapi/v1/algoOrder"): Endpoint(FUTURES, SIGNED, 1, query_algo_order, needs_futures=True),
    ("DELETE", "/fapi/v1/algoOrder"): Endpoint(FUTURES, SIGNED, 1, cancel_algo_order, needs_futures=True),
    ("GET", "/fapi/v1/openAlgoOrders"): Endpoint(
        FUTURES, SIGNED, _one_or_all(1, 40), open_algo_orders, needs_futures=True
    ),
    ("DELETE", "/fapi/v1/algoOpenOrders"): Endpoint(
        FUTURES, SIGNED, 1, cancel_all_algo_orders, needs_futures=True
    ),
    ("GET", "/fapi/v1/allAlgoOrders"): Endpoint(FUTURES, SIGNED, 5, all_algo_orders, needs_futures=True),
    ("GET", "/fapi/v1/userTrades"): Endpoint(FUTURES, SIGNED, 5, user_trades, needs_futures=True),
    ("GET", "/fapi/v1/allOrders"): Endpoint(FUTURES, SIGNED, 5, all_orders, needs_futures=True),
    ("GET", "/fapi/v1/forceOrders"): Endpoint(
        FUTURES, SIGNED, _one_or_all(20, 50), force_orders, needs_futures=True
    ),
    ("GET", "/fapi/v1/rateLimit/order"): Endpoint(FUTURES, SIGNED, 1, order_rate_limits, needs_futures=True),
}


def family_of(path: str) -> str | None:
    """Which API a path belongs to (spot /api, /sapi, futures /fapi), or None."""
    if path.startswith("/api/"):
        return SPOT
    if path.startswith("/fapi/"):
        return FUTURES
    if path.startswith("/sapi/"):
        return SAPI
    return None


def is_production(account: DemoAccount) -> bool:
    """True for a production key."""
    return account.environment == PRODUCTION
