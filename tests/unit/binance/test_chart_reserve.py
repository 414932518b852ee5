"""GET /candles leaves the IP's weight that trading needs: the chart reserve, over a precise HTTP exchange;
and the reserve's wait for the next minute (``BinanceClient.leave_trading_reserve``) backtest jobs use."""

from __future__ import annotations

import pytest
from klineo.binance import TRADING_RESERVE, KlineoError, Market
from klineo.errors import RETRY_SHORTLY, ErrorCategory
from klineo.models.candles import CandlesQuery
from klineo.services import candles

from tests.unit.binance.conftest import FUTURES

KLINE = [1_700_000_000_000, "1", "2", "0.5", "1.5", "10", 1_700_000_059_999, "15", 3, "5", "7", "0"]


@pytest.fixture
def futures_client(make_client, monkeypatch):
    """The candles service's futures client, on the fake clock and the mocked HTTP."""
    client = make_client(Market.FUTURES)
    monkeypatch.setattr(candles, "get_client", lambda market, environment: client)
    return client


def _query(limit: int = 500) -> CandlesQuery:
    return CandlesQuery(symbol="BTCUSDT", market="futures", interval="1m", limit=limit)


def test_chart_requests_stop_where_the_weight_kept_for_trading_begins(futures_client, rsps, clock):
    """GIVEN Binance reporting 1,200 of the IP's 2,400 weight used this minute (other containers'
    traffic) WHEN the chart is read again THEN it is refused, 429 rate_limit with retry_after at the next
    minute, and nothing is sent; an order could still spend up to 90 % of the minute."""
    rsps.get(FUTURES + "/fapi/v1/klines", json=[KLINE], headers={"X-MBX-USED-WEIGHT-1M": "1200"})
    assert len(candles.get_candles(_query()).candles) == 1

    with pytest.raises(KlineoError) as refused:
        candles.get_candles(_query())

    assert refused.value.category is ErrorCategory.RATE_LIMIT and refused.value.retryable
    assert refused.value.retry_after == 40  # the fake clock is 20 s into its minute
    assert len(rsps.calls) == 1
    assert futures_client.spare_weight() > 2400 * TRADING_RESERVE - 5 > 0


def test_a_smaller_chart_still_fits_and_the_next_minute_opens_again(futures_client, rsps, clock):
    """GIVEN 1,195 weight used WHEN a chart of weight 1 still leaves the reserve THEN it is sent, while
    one of weight 10 is refused; WHEN the minute has turned THEN charts are served again."""
    rsps.get(FUTURES + "/fapi/v1/klines", json=[KLINE], headers={"X-MBX-USED-WEIGHT-1M": "1195"})
    candles.get_candles(_query())
    candles.get_candles(_query(limit=99))  # weight 1: 2160 - 1195 - 1 = 964 >= 960
    with pytest.raises(KlineoError):
        candles.get_candles(_query(limit=1500))  # weight 10: 2160 - 1195 - 10 = 955 < 960

    clock.advance(60)
    candles.get_candles(_query(limit=1500))
    assert len(rsps.calls) == 3


def test_a_cold_container_honours_the_reserve_other_containers_shared(futures_client, store, rsps, clock):
    """GIVEN other containers behind the same IP having shared 2,000 of the minute's 2,400 WHEN a cold
    container serves a chart THEN it reads that first and refuses, sending nothing to Binance."""
    store.save_usage(futures_client.host, int(clock() * 1000 // 60_000), 2000)
    rsps.get(FUTURES + "/fapi/v1/klines", json=[KLINE], headers={"X-MBX-USED-WEIGHT-1M": "2005"})

    with pytest.raises(KlineoError) as refused:
        candles.get_candles(_query())

    assert refused.value.category is ErrorCategory.RATE_LIMIT
    assert len(rsps.calls) == 0


def test_the_reserve_waits_for_the_next_minute_only_while_the_caller_may(futures_client, rsps, clock):
    """GIVEN the IP's minute used up to the reserve WHEN a caller may wait until the next minute THEN it
    sleeps exactly to it (40 s on the fake clock) and returns; WHEN it may not wait that long (or not at
    all) THEN rate_limit with retry_after at the next minute, the refusal as its reason and the advice to
    retry shortly apart, and no sleep."""
    rsps.get(FUTURES + "/fapi/v1/klines", json=[KLINE], headers={"X-MBX-USED-WEIGHT-1M": "1200"})
    candles.get_candles(_query())

    with pytest.raises(KlineoError) as refused:
        futures_client.leave_trading_reserve(5, "paused", wait_until=clock() + 39)
    assert (refused.value.retry_after, refused.value.reason, refused.value.advice, clock.sleeps) == (
        40, "paused", RETRY_SHORTLY, [])

    futures_client.leave_trading_reserve(5, "paused", wait_until=clock() + 40)
    assert clock.sleeps == [40]
