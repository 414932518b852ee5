"""Thin, typed helpers for the Binance endpoints KLINEO uses (paths, parameters and weights: facts §3)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, NamedTuple

from klineo.binance.client import BinanceClient
from klineo.binance.credentials import Credentials
from klineo.binance.enums import Market
from klineo.errors import ErrorCategory, KlineoError
from klineo.validation import SPOT_INTERVALS, check_client_order_id

__all__ = [
    "CLOCK_SKEW_MS",
    "EXCHANGE_INFO_TTL_S",
    "INTERVALS",
    "USER_TRADES_PAGE",
    "Candle",
    "clear_exchange_info_cache",
    "exchange_info",
    "futures_account",
    "futures_account_config",
    "futures_balance",
    "futures_cancel_algo_order",
    "futures_cancel_all_orders",
    "futures_cancel_order",
    "futures_change_leverage",
    "futures_change_margin_type",
    "futures_change_position_mode",
    "futures_force_orders",
    "futures_leverage_brackets",
    "futures_mark_price",
    "futures_new_algo_order",
    "futures_new_order",
    "futures_open_algo_orders",
    "futures_open_orders",
    "futures_order_by_id",
    "futures_order_trades",
    "futures_position_mode",
    "futures_position_risk",
    "futures_query_algo_order",
    "futures_query_order",
    "futures_symbol_config",
    "futures_symbol_configs",
    "futures_ticker_price",
    "futures_trades_after",
    "futures_user_trades",
    "klines",
    "klines_path",
    "server_time",
    "spot_account",
    "spot_api_restrictions",
    "spot_ticker_price",
]

INTERVALS = frozenset(SPOT_INTERVALS)  # klines' check (the rule's one home: klineo.validation)
_MAX_KLINES = {Market.SPOT: 1000, Market.FUTURES: 1500}
_SYMBOL = re.compile(r"\S{1,40}")
EXCHANGE_INFO_TTL_S = 3600.0
USER_TRADES_PAGE = 1000  # the most rows one GET /fapi/v1/userTrades answers (facts §14)
USER_TRADES_SPAN_MS = 7 * 86_400_000  # its longest startTime-endTime span, and the window sent neither (§14)
# The most our clock and Binance's may differ by, for the trade reads' windows (an hour, generous).
CLOCK_SKEW_MS = 3_600_000
# An order placed longer ago than this (7 days less the clocks' skew) may have trades outside the window
# userTrades answers without a time: they are read in windows of the order's own days.
RECENT_ORDER_MS = USER_TRADES_SPAN_MS - CLOCK_SKEW_MS
# userTrades answers "the past 3 months" of trades (change log 2026-08-26, facts §14): no window starts
# before that.
USER_TRADES_KEPT_MS = 90 * 86_400_000


class Candle(NamedTuple):
    """One kline: open/close times in epoch ms, prices and base volume as Decimals."""

    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    close_time: int


def _require(client: BinanceClient, market: Market) -> None:
    if client.market is not market:
        raise ValueError(f"this endpoint needs a {market.value} client, got {client.market.value}")


def _signed_rows(
    client: BinanceClient, creds: Credentials, path: str, params: dict[str, Any] | None, what: str
) -> list[dict[str, Any]]:
    """A signed GET whose answer is a list of objects; anything else is an unreadable answer."""
    rows = client.signed("GET", path, params, creds)
    if not isinstance(rows, list):
        raise KlineoError(ErrorCategory.UPSTREAM_UNAVAILABLE, f"Binance returned unreadable {what}.")
    return [row for row in rows if isinstance(row, dict)]


def _symbol(symbol: str) -> str:
    if not isinstance(symbol, str) or not _SYMBOL.fullmatch(symbol):
        raise KlineoError(ErrorCategory.INVALID_REQUEST, "symbol is missing or malformed", field="symbol")
    return symbol.upper() if symbol.isascii() else symbol


def server_time(client: BinanceClient) -> int:
    """Binance server time in epoch ms (public, weight 1)."""
    path = "/api/v3/time" if client.market is Market.SPOT else "/fapi/v1/time"
    data = client.public("GET", path)
    value = data.get("serverTime") if isinstance(data, dict) else None
    if not isinstance(value, int):
        raise KlineoError(ErrorCategory.UPSTREAM_UNAVAILABLE, "Binance returned an unreadable server time.")
    return value


def spot_account(
    client: BinanceClient, creds: Credentials, omit_zero_balances: bool = False
) -> dict[str, Any]:
    """GET /api/v3/account (weight 20): permissions flags and balances."""
    _require(client, Market.SPOT)
    params = {"omitZeroBalances": "true"} if omit_zero_balances else None
    return client.signed("GET", "/api/v3/account", params, creds)


def spot_api_restrictions(client: BinanceClient, creds: Credentials) -> dict[str, Any]:
    """GET /sapi/v1/account/apiRestrictions (weight 1): key permissions and ipRestrict (production only)."""
    _require(client, Market.SPOT)
    return client.signed("GET", "/sapi/v1/account/apiRestrictions", None, creds)


def spot_ticker_price(client: BinanceClient, symbol: str) -> Decimal:
    """GET /api/v3/ticker/price for one symbol: last price."""
    _require(client, Market.SPOT)
    data = client.public("GET", "/api/v3/ticker/price", {"symbol": _symbol(symbol)})
    return _decimal(data, "price")


def klines_path(client: BinanceClient) -> str:
    """The klines endpoint of the client's market."""
    return "/api/v3/klines" if client.market is Market.SPOT else "/fapi/v1/klines"


def klines(
    client: BinanceClient,
    symbol: str,
    interval: str,
    limit: int = 500,
    start_time: int | None = None,
    end_time: int | None = None,
) -> list[Candle]:
    """Candles for a symbol (spot /api/v3/klines or futures /fapi/v1/klines), oldest first."""
    if interval not in INTERVALS:
        raise KlineoError(
            ErrorCategory.INVALID_REQUEST, "interval is not a Binance kline interval", field="interval"
        )
    maximum = _MAX_KLINES[client.market]
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= maximum:
        raise KlineoError(
            ErrorCategory.INVALID_REQUEST, f"limit must be between 1 and {maximum}", field="limit"
        )
    params: dict[str, Any] = {"symbol": _symbol(symbol), "interval": interval, "limit": limit}
    if start_time is not None:
        params["startTime"] = int(start_time)
    if end_time is not None:
        params["endTime"] = int(end_time)
    rows = client.public("GET", klines_path(client), params)
    if not isinstance(rows, list):
        raise KlineoError(ErrorCategory.UPSTREAM_UNAVAILABLE, "Binance returned unreadable candles.")
    try:
        return [
            Candle(
                int(r[0]),
                Decimal(r[1]),
                Decimal(r[2]),
                Decimal(r[3]),
                Decimal(r[4]),
                Decimal(r[5]),
                int(r[6]),
            )
            for r in rows
        ]
    except (IndexError, TypeError, ValueError, InvalidOperation):
        raise KlineoError(
            ErrorCategory.UPSTREAM_UNAVAILABLE, "Binance returned unreadable candles."
        ) from None


def futures_account(client: BinanceClient, creds: Credentials) -> dict[str, Any]:
    """GET /fapi/v3/account (weight 5): totals, assets and open positions."""
    _require(client, Market.FUTURES)
    return client.signed("GET", "/fapi/v3/account", None, creds)


def futures_account_config(client: BinanceClient, creds: Credentials) -> dict[str, Any]:
    """GET /fapi/v1/accountConfig (weight 5): canTrade, dualSidePosition, multiAssetsMargin, feeTier."""
    _require(client, Market.FUTURES)
    return client.signed("GET", "/fapi/v1/accountConfig", None, creds)


def futures_balance(client: BinanceClient, creds: Credentials) -> list[dict[str, Any]]:
    """GET /fapi/v3/balance (weight 5): one entry per asset."""
    _require(client, Market.FUTURES)
    return client.signed("GET", "/fapi/v3/balance", None, creds)


def futures_position_risk(
    client: BinanceClient, creds: Credentials, symbol: str | None = None
) -> list[dict[str, Any]]:
    """GET /fapi/v3/positionRisk (weight 5): positions (only symbols with a position or orders)."""
    _require(client, Market.FUTURES)
    params = {"symbol": _symbol(symbol)} if symbol else None
    return client.signed("GET", "/fapi/v3/positionRisk", params, creds)


def futures_force_orders(
    client: BinanceClient, creds: Credentials, symbol: str, start_time_ms: int | None = None,
) -> list[dict[str, Any]]:
    """GET /fapi/v1/forceOrders (weight 20 with symbol): its liquidation and ADL orders (facts §8)."""
    _require(client, Market.FUTURES)
    params: dict[str, Any] = {"symbol": _symbol(symbol)}
    if start_time_ms is not None:
        params["startTime"] = start_time_ms
    return client.signed("GET", "/fapi/v1/forceOrders", params, creds)


def futures_new_order(client: BinanceClient, creds: Credentials, params: dict[str, Any]) -> dict[str, Any]:
    """POST /fapi/v1/order; never re-sent on an unclear outcome (unknown_outcome: the caller settles it)."""
    _require(client, Market.FUTURES)
    params = dict(params)
    params["symbol"] = _symbol(params.get("symbol", ""))
    if params.get("newClientOrderId") is not None:
        check_client_order_id(params["newClientOrderId"], "newClientOrderId")
    return client.signed("POST", "/fapi/v1/order", params, creds)


def futures_query_order(
    client: BinanceClient, creds: Credentials, symbol: str, orig_client_order_id: str
) -> dict[str, Any]:
    """GET /fapi/v1/order by client order id (weight 1); order_not_found when Binance does not know it."""
    _require(client, Market.FUTURES)
    params = {
        "symbol": _symbol(symbol),
        "origClientOrderId": check_client_order_id(orig_client_order_id, "origClientOrderId"),
    }
    return client.signed("GET", "/fapi/v1/order", params, creds)


def futures_cancel_order(
    client: BinanceClient,
    creds: Credentials,
    symbol: str,
    orig_client_order_id: str | None = None,
    order_id: int | None = None,
) -> dict[str, Any]:
    """DELETE /fapi/v1/order by client order id or order id (weight 1)."""
    _require(client, Market.FUTURES)
    if orig_client_order_id is None and order_id is None:
        raise KlineoError(
            ErrorCategory.INVALID_REQUEST, "give a client order id or an order id", field="origClientOrderId"
        )
    params: dict[str, Any] = {"symbol": _symbol(symbol)}
    if order_id is not None:
        params["orderId"] = int(order_id)
    if orig_client_order_id is not None:
        params["origClientOrderId"] = check_client_order_id(orig_client_order_id, "origClientOrderId")
    return client.signed("DELETE", "/fapi/v1/order", params, creds)


def futures_change_leverage(
    client: BinanceClient, creds: Credentials, symbol: str, leverage: int
) -> dict[str, Any]:
    """POST /fapi/v1/leverage (weight 1): initial leverage 1-125 for a symbol."""
    _require(client, Market.FUTURES)
    if not isinstance(leverage, int) or isinstance(leverage, bool) or not 1 <= leverage <= 125:
        raise KlineoError(
            ErrorCategory.INVALID_REQUEST, "leverage must be an integer from 1 to 125", field="leverage"
        )
    return client.signed(
        "POST", "/fapi/v1/leverage", {"symbol": _symbol(symbol), "leverage": leverage}, creds
    )


def futures_position_mode(client: BinanceClient, creds: Credentials) -> bool:
    """GET /fapi/v1/positionSide/dual (weight 30): True in hedge mode, False in one-way mode.

    Weight 30: prefer ``dualSidePosition`` from accountConfig (weight 5) when that is read anyway.
    """
    _require(client, Market.FUTURES)
    data = client.signed("GET", "/fapi/v1/positionSide/dual", None, creds)
    return _flag(data, "dualSidePosition")


def futures_change_position_mode(client: BinanceClient, creds: Credentials, hedge: bool) -> dict[str, Any]:
    """POST /fapi/v1/positionSide/dual (weight 1): every symbol's mode; -4059 when already so."""
    _require(client, Market.FUTURES)
    params = {"dualSidePosition": "true" if hedge else "false"}
    return client.signed("POST", "/fapi/v1/positionSide/dual", params, creds)


def futures_change_margin_type(
    client: BinanceClient, creds: Credentials, symbol: str, margin_type: str
) -> dict[str, Any]:
    """POST /fapi/v1/marginType (weight 1): ISOLATED or CROSSED for one symbol; -4046 when already so."""
    _require(client, Market.FUTURES)
    if margin_type not in ("ISOLATED", "CROSSED"):
        raise KlineoError(ErrorCategory.INVALID_REQUEST, "margin type must be ISOLATED or CROSSED",
                          field="margin_type")
    params = {"symbol": _symbol(symbol), "marginType": margin_type}
    return client.signed("POST", "/fapi/v1/marginType", params, creds)


def futures_symbol_config(client: BinanceClient, creds: Credentials, symbol: str) -> dict[str, Any]:
    """GET /fapi/v1/symbolConfig for one symbol (weight 5): marginType (ISOLATED/CROSSED) and leverage."""
    _require(client, Market.FUTURES)
    rows = client.signed("GET", "/fapi/v1/symbolConfig", {"symbol": _symbol(symbol)}, creds)
    row = rows[0] if isinstance(rows, list) and rows else rows
    if not isinstance(row, dict):
        raise KlineoError(
            ErrorCategory.UPSTREAM_UNAVAILABLE, "Binance returned an unreadable symbol configuration."
        )
    return row


def futures_symbol_configs(client: BinanceClient, creds: Credentials) -> list[dict[str, Any]]:
    """GET /fapi/v1/symbolConfig for every symbol (weight 5): marginType and leverage per symbol."""
    _require(client, Market.FUTURES)
    return _signed_rows(client, creds, "/fapi/v1/symbolConfig", None, "symbol configuration")


def futures_open_algo_orders(
    client: BinanceClient, creds: Credentials, symbol: str | None
) -> list[dict[str, Any]]:
    """GET /fapi/v1/openAlgoOrders (weight 1 for one symbol, 40 for all): conditional orders not yet fired."""
    _require(client, Market.FUTURES)
    params = {"symbol": _symbol(symbol)} if symbol is not None else {}
    return _signed_rows(client, creds, "/fapi/v1/openAlgoOrders", params, "open algo orders")


def futures_new_algo_order(
    client: BinanceClient, creds: Credentials, params: dict[str, Any]
) -> dict[str, Any]:
    """POST /fapi/v1/algoOrder (weight 0, counts as an order; facts §7, §13): a conditional order.

    Never re-sent on an unclear outcome (unknown_outcome: the caller settles it by clientAlgoId).
    """
    _require(client, Market.FUTURES)
    params = {**params, "algoType": "CONDITIONAL", "symbol": _symbol(params.get("symbol", ""))}
    if params.get("clientAlgoId") is not None:
        check_client_order_id(params["clientAlgoId"], "clientAlgoId")
    return client.signed("POST", "/fapi/v1/algoOrder", params, creds)


def _algo_id_params(client: BinanceClient, client_algo_id: str) -> dict[str, Any]:
    _require(client, Market.FUTURES)
    return {"clientAlgoId": check_client_order_id(client_algo_id, "clientAlgoId")}


def futures_query_algo_order(
    client: BinanceClient, creds: Credentials, client_algo_id: str
) -> dict[str, Any]:
    """GET /fapi/v1/algoOrder by clientAlgoId (weight 1); order_not_found (-2013) when Binance has none."""
    return client.signed("GET", "/fapi/v1/algoOrder", _algo_id_params(client, client_algo_id), creds)


def futures_cancel_algo_order(
    client: BinanceClient, creds: Credentials, client_algo_id: str
) -> dict[str, Any]:
    """DELETE /fapi/v1/algoOrder by clientAlgoId (weight 1); -2011 when nothing open has that id."""
    return client.signed("DELETE", "/fapi/v1/algoOrder", _algo_id_params(client, client_algo_id), creds)


def futures_open_orders(
    client: BinanceClient, creds: Credentials, symbol: str | None
) -> list[dict[str, Any]]:
    """GET /fapi/v1/openOrders (weight 1 for one symbol, 40 for all): regular orders still open."""
    _require(client, Market.FUTURES)
    params = {"symbol": _symbol(symbol)} if symbol is not None else {}
    return _signed_rows(client, creds, "/fapi/v1/openOrders", params, "open orders")


def futures_cancel_all_orders(client: BinanceClient, creds: Credentials, symbol: str) -> dict[str, Any]:
    """DELETE /fapi/v1/allOpenOrders (weight 1): every open regular order on the symbol (not algo orders)."""
    _require(client, Market.FUTURES)
    return client.signed("DELETE", "/fapi/v1/allOpenOrders", {"symbol": _symbol(symbol)}, creds)


def futures_leverage_brackets(client: BinanceClient, creds: Credentials, symbol: str) -> list[dict[str, Any]]:
    """GET /fapi/v1/leverageBracket for one symbol (weight 1): its notional brackets, highest leverage first.

    Binance's page shows a bare object for one symbol and clients read a list: both are accepted.
    """
    _require(client, Market.FUTURES)
    data = client.signed("GET", "/fapi/v1/leverageBracket", {"symbol": _symbol(symbol)}, creds)
    row = data[0] if isinstance(data, list) and data else data
    brackets = row.get("brackets") if isinstance(row, dict) else None
    if not isinstance(brackets, list):
        raise KlineoError(
            ErrorCategory.UPSTREAM_UNAVAILABLE, "Binance returned unreadable leverage brackets."
        )
    return brackets


def futures_user_trades(
    client: BinanceClient,
    creds: Credentials,
    symbol: str,
    *,
    order_id: int | None = None,
    from_id: int | None = None,
    start_time: int | None = None,
    end_time: int | None = None,
    limit: int = USER_TRADES_PAGE,
) -> list[dict[str, Any]]:
    """GET /fapi/v1/userTrades (weight 5): the account's trades on a symbol, oldest first (facts §14).

    By ``order_id`` (one order's fills), from trade id ``from_id``, or within ``start_time``-``end_time``
    (ms, at most 7 days apart; neither sent: the last 7 days, by orderId too); ``fromId`` cannot be sent
    with a time.
    """
    _require(client, Market.FUTURES)
    params: dict[str, Any] = {"symbol": _symbol(symbol), "limit": max(1, min(int(limit), USER_TRADES_PAGE))}
    if order_id is not None:
        params["orderId"] = int(order_id)
    if from_id is not None:
        params["fromId"] = int(from_id)
    else:
        times = (("startTime", start_time), ("endTime", end_time))
        params.update({key: int(value) for key, value in times if value is not None})
    return _signed_rows(client, creds, "/fapi/v1/userTrades", params, "trades")


def futures_order_trades(
    client: BinanceClient, creds: Credentials, symbol: str, order_id: int, *, placed_ms: int | None = None,
    via: Callable[..., list[dict[str, Any]]] | None = None, after: tuple[int, int] | None = None,
) -> list[dict[str, Any]]:
    """Every fill of one order, oldest first. ``futures_user_trades`` sent no time answers only the last 7
    days, by orderId too (facts §14): an order placed (``placed_ms``, its ``time``) within them is read by
    ``order_id`` page after page (``fromId`` = the last id + 1) until a page holds fewer than
    ``USER_TRADES_PAGE`` rows, one request for most orders; an older one in windows of at most 7 days from
    its placing on (``_window_trades``), the last one sent its start only. None: placed just now.

    ``via(futures_user_trades, *args, **kwargs)`` sends each page (the reconciler's: charged to its budget).
    ``after``: (trade id, its time) of the last fill an earlier read got to; only the fills from there on are
    read (by id after it; by time from its millisecond, whose rows may come again).
    """
    send = partial(via or _direct, futures_user_trades, client, creds, symbol, order_id=order_id)
    if placed_ms is None or time.time() * 1000 - placed_ms < RECENT_ORDER_MS:
        return _trades_by_id(send, after=None if after is None else after[0])
    return _trades_in_windows(send, int(placed_ms) if after is None else max(int(placed_ms), after[1]))


def futures_trades_after(
    client: BinanceClient, creds: Credentials, symbol: str, after_id: int, after_ms: int | None, *,
    via: Callable[..., list[dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """The symbol's trades after trade ``after_id`` (made at ``after_ms``; None: unknown), oldest first.
    Within the last 7 days less an hour: one page by ``fromId`` (no time). Older: a query sent no time
    answers only the last 7 days, ``fromId`` too (facts §14), so the trades are read in windows of at most
    7 days from ``after_ms`` on (from 3 months ago at the earliest: Binance keeps no older), up to the first
    page that has any after ``after_id``; a later call goes on from the last of them, so a week of trades
    larger than one run's budget is read over runs, a page each, instead of never.
    ``via`` as in ``futures_order_trades``."""
    send = partial(via or _direct, futures_user_trades, client, creds, symbol)
    now = time.time() * 1000
    if after_ms is None or now - after_ms < RECENT_ORDER_MS:
        return send(from_id=after_id + 1)
    start = int(max(after_ms, now - USER_TRADES_KEPT_MS))
    return _trades_in_windows(send, start, after_id=after_id)


_Rows = list[dict[str, Any]]


def _trades_in_windows(send: Callable[..., _Rows], start: int, after_id: int | None = None) -> _Rows:
    """Trades from ``start`` (ms) to now in windows of at most 7 days, the last one sent its start only (and
    begun less than 7 days less the clocks' skew ago);
    oldest first, none of id ``after_id`` or below. Without ``after_id`` every window is read; with it,
    reading stops at the first page that has any."""
    rows: dict[int, dict[str, Any]] = {}
    while True:
        # The last window reaches 7 days past its start by Binance's clock, which may be ahead of ours: one
        # starting within the skew of 7 days ago would end before Binance's now and lose its last trades.
        last = time.time() * 1000 - start < USER_TRADES_SPAN_MS - CLOCK_SKEW_MS
        end = None if last else start + USER_TRADES_SPAN_MS - 1
        for row in _window_trades(send, start, end, after_id):
            if after_id is None or int(row["id"]) > after_id:
                rows.setdefault(int(row["id"]), row)
        if last or (after_id is not None and rows):
            return [rows[key] for key in sorted(rows)]
        start = end + 1


def _trades_by_id(send: Callable[..., _Rows], after: int | None = None) -> _Rows:
    """An order's trades by orderId, no time, page after page by ``fromId`` (from trade id ``after`` + 1)."""
    rows: list[dict[str, Any]] = []
    while True:
        last_id = int(rows[-1]["id"]) if rows else after
        page = send(from_id=None if last_id is None else last_id + 1)
        rows += page
        if len(page) < USER_TRADES_PAGE:
            return rows


def _window_trades(send: Callable[..., _Rows], start: int, end: int | None,
                   after_id: int | None = None) -> _Rows:
    """An order's trades from ``start`` to ``end`` (ms; None: its start only), page after page: the next
    page starts at the last row's millisecond (its rows again, dropped by id), as ``fromId`` cannot be sent
    with a time. A full page all of one millisecond cannot be paged so: the rest by ``fromId`` (no time).
    With ``after_id``, the pages up to the first that has a trade of a higher id."""
    rows: dict[int, dict[str, Any]] = {}
    while True:
        page = send(start_time=start, end_time=end)
        rows.update((int(row["id"]), row) for row in page)
        if len(page) < USER_TRADES_PAGE or (after_id is not None and int(page[-1]["id"]) > after_id):
            return list(rows.values())
        if int(page[-1]["time"]) == start:
            return [*rows.values(), *_trades_by_id(send, after=int(page[-1]["id"]))]
        start = int(page[-1]["time"])


def _direct(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Send a request as it is, outside any budget."""
    return fn(*args, **kwargs)


def futures_order_by_id(
    client: BinanceClient, creds: Credentials, symbol: str, order_id: int
) -> dict[str, Any]:
    """GET /fapi/v1/order by Binance's orderId (weight 1): how a trade's order is named (clientOrderId)."""
    _require(client, Market.FUTURES)
    params = {"symbol": _symbol(symbol), "orderId": int(order_id)}
    return client.signed("GET", "/fapi/v1/order", params, creds)


def _flag(data: Any, key: str) -> bool:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, bool):
        raise KlineoError(ErrorCategory.UPSTREAM_UNAVAILABLE, f"Binance returned no readable {key}.")
    return value


def futures_mark_price(client: BinanceClient, symbol: str) -> Decimal:
    """GET /fapi/v1/premiumIndex (weight 1): the symbol's mark price."""
    _require(client, Market.FUTURES)
    data = client.public("GET", "/fapi/v1/premiumIndex", {"symbol": _symbol(symbol)})
    return _decimal(data, "markPrice")


def futures_ticker_price(client: BinanceClient, symbol: str) -> Decimal:
    """GET /fapi/v2/ticker/price for one symbol (weight 1): last price (v1 is deprecated, facts §11)."""
    _require(client, Market.FUTURES)
    data = client.public("GET", "/fapi/v2/ticker/price", {"symbol": _symbol(symbol)})
    return _decimal(data, "price")


def _decimal(data: Any, key: str) -> Decimal:
    try:
        return Decimal(data[key])
    except (KeyError, TypeError, ValueError, InvalidOperation):
        raise KlineoError(
            ErrorCategory.UPSTREAM_UNAVAILABLE, "Binance returned an unreadable price."
        ) from None


# ---------------------------------------------------------------------- exchangeInfo cache
_info_cache: dict[tuple[str, str | None], tuple[float, dict[str, Any]]] = {}
_info_lock = threading.Lock()


def exchange_info(
    client: BinanceClient, symbol: str | None = None, ttl_s: float = EXCHANGE_INFO_TTL_S
) -> dict[str, Any]:
    """exchangeInfo, cached per base URL (and spot symbol) for ``ttl_s``; never fetched at import.

    Spot's full exchangeInfo is several MB and weighs 20, so spot callers pass ``symbol``; futures
    always fetches the whole (weight 1) document and ignores ``symbol``.
    """
    spot = client.market is Market.SPOT
    key_symbol = _symbol(symbol) if (spot and symbol) else None
    key = (client.base_url, key_symbol)
    now = client.clock()
    cached = _info_cache.get(key)
    if cached is not None and now - cached[0] < ttl_s:
        return cached[1]
    path = "/api/v3/exchangeInfo" if spot else "/fapi/v1/exchangeInfo"
    data = client.public("GET", path, {"symbol": key_symbol} if key_symbol else None)
    if not isinstance(data, dict) or not isinstance(data.get("symbols"), list):
        raise KlineoError(
            ErrorCategory.UPSTREAM_UNAVAILABLE, "Binance returned unreadable exchange information."
        )
    with _info_lock:
        _info_cache[key] = (now, data)
    return data


def clear_exchange_info_cache() -> None:
    """Forget cached exchangeInfo documents (tests)."""
    with _info_lock:
        _info_cache.clear()
