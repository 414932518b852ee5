"""Klines for spot or USDT-M futures: a spot request only ever calls a spot URL, futures a futures URL."""

from __future__ import annotations

from klineo.binance import Environment, Market, endpoints, get_client
from klineo.models.candles import Candle, CandlesQuery, CandlesResponse
from klineo.models.fields import decimal_string

__all__ = ["get_candles"]


def get_candles(query: CandlesQuery) -> CandlesResponse:
    """Klines (oldest first) for a validated query."""
    client = get_client(Market(query.market), Environment(query.environment))
    rows = endpoints.klines(client, query.symbol, query.interval, limit=query.limit)
    candles = [
        Candle(open_time=int(c.open_time), open=decimal_string(c.open), high=decimal_string(c.high),
               low=decimal_string(c.low), close=decimal_string(c.close), volume=decimal_string(c.volume),
               close_time=int(c.close_time))
        for c in rows
    ]
    return CandlesResponse(symbol=query.symbol, interval=query.interval, market=query.market,
                           environment=query.environment, candles=candles)
