"""Klines for spot or USDT-M futures: a spot request only ever calls a spot URL, futures a futures URL.

Chart data never takes the weight trading needs. Binance counts request weight per IP, and every
function shares one egress IP, so a user refreshing charts in a loop could otherwise spend the
minute's weight that orders, closes and strategies need. Any call stops at 90 % of the minute's weight
(``klineo.binance.ratelimit``). A chart request also leaves ``TRADING_RESERVE`` (40 %) of it unspent
(``BinanceClient.leave_trading_reserve``, the rule backtests' klines obey too): past that it is a 429
``rate_limit`` with ``retry_after`` at the next minute. It is judged on the IP's usage that Binance's
last answer to this container reported, plus what the container sent since.
"""

from __future__ import annotations

from klineo.binance import Environment, Market, endpoints, get_client
from klineo.binance.ratelimit import endpoint_weight
from klineo.models.candles import Candle, CandlesQuery, CandlesResponse
from klineo.models.fields import decimal_string

__all__ = ["CHARTS_PAUSED", "get_candles"]

# The refusal's reason; its advice (retry shortly) is the error's own (``leave_trading_reserve``).
CHARTS_PAUSED = ("Chart data is paused for the rest of this minute so that trading keeps its Binance request "
                 "budget.")


def get_candles(query: CandlesQuery) -> CandlesResponse:
    """Klines (oldest first) for a validated query."""
    client = get_client(Market(query.market), Environment(query.environment))
    weight = endpoint_weight("GET", endpoints.klines_path(client), {"limit": query.limit})
    client.leave_trading_reserve(weight, CHARTS_PAUSED)
    rows = endpoints.klines(client, query.symbol, query.interval, limit=query.limit,
                            start_time=query.from_ms, end_time=query.to_ms)
    candles = [
        Candle(open_time=int(c.open_time), open=decimal_string(c.open), high=decimal_string(c.high),
               low=decimal_string(c.low), close=decimal_string(c.close), volume=decimal_string(c.volume),
               close_time=int(c.close_time))
        for c in rows
    ]
    return CandlesResponse(symbol=query.symbol, interval=query.interval, market=query.market,
                           environment=query.environment, candles=candles)
