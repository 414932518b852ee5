"""Public market-data endpoints of the simulator: ping, time, exchangeInfo, klines."""

from __future__ import annotations

import time
from itertools import pairwise

import requests


def test_ping_answers_empty_object_on_spot_and_futures(binance_sim):
    """ping is {} on /api/v3 and /fapi/v1."""
    # GIVEN a running simulator
    # WHEN both pings are called
    spot = requests.get(f"{binance_sim.url}/api/v3/ping", timeout=5)
    futures = requests.get(f"{binance_sim.url}/fapi/v1/ping", timeout=5)
    # THEN both answer 200 {}
    assert (spot.status_code, spot.json()) == (200, {})
    assert (futures.status_code, futures.json()) == (200, {})


def test_time_is_real_wall_clock_in_ms(binance_sim):
    """serverTime is the wall clock in milliseconds."""
    # GIVEN no clock skew
    # WHEN /api/v3/time and /fapi/v1/time are read
    before = time.time() * 1000
    spot = requests.get(f"{binance_sim.url}/api/v3/time", timeout=5).json()["serverTime"]
    futures = requests.get(f"{binance_sim.url}/fapi/v1/time", timeout=5).json()["serverTime"]
    after = time.time() * 1000
    # THEN both lie between the local clock readings
    assert before - 1 <= spot <= after + 1
    assert before - 1 <= futures <= after + 1


def test_clock_skew_shifts_server_time(binance_sim):
    """set_clock_skew_ms moves serverTime by the skew."""
    # GIVEN a server clock 5 s ahead
    binance_sim.set_clock_skew_ms(5000)
    # WHEN the time is read
    server = requests.get(f"{binance_sim.url}/api/v3/time", timeout=5).json()["serverTime"]
    # THEN it is about 5 s ahead of the local clock
    assert 4500 < server - time.time() * 1000 < 5500


def test_spot_exchange_info_has_real_filters_for_the_main_symbols(binance_sim):
    """Spot exchangeInfo lists BTCUSDT, ETHUSDT, BNBUSDT with PRICE_FILTER, LOT_SIZE, NOTIONAL."""
    # WHEN spot exchangeInfo is read
    body = requests.get(f"{binance_sim.url}/api/v3/exchangeInfo", timeout=5).json()
    # THEN the documented top-level fields and filters are there
    assert {"timezone", "serverTime", "rateLimits", "exchangeFilters", "symbols"} <= body.keys()
    symbols = {s["symbol"]: s for s in body["symbols"]}
    assert {"BTCUSDT", "ETHUSDT", "BNBUSDT"} <= symbols.keys()
    filters = {f["filterType"]: f for f in symbols["BTCUSDT"]["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01"
    assert filters["LOT_SIZE"]["stepSize"] == "0.00001"
    assert filters["NOTIONAL"]["minNotional"] == "5.00000000"
    assert symbols["BTCUSDT"]["permissionSets"] == [["SPOT", "MARGIN"]]


def test_spot_exchange_info_filters_by_symbol_and_rejects_unknown(binance_sim):
    """exchangeInfo?symbol= returns one symbol; an unknown symbol is -1121."""
    # WHEN one known and one unknown symbol are asked for
    one = requests.get(f"{binance_sim.url}/api/v3/exchangeInfo", params={"symbol": "ETHUSDT"}, timeout=5)
    unknown = requests.get(f"{binance_sim.url}/api/v3/exchangeInfo", params={"symbol": "NOPEUSDT"}, timeout=5)
    # THEN the first lists only ETHUSDT and the second is -1121
    assert [s["symbol"] for s in one.json()["symbols"]] == ["ETHUSDT"]
    assert unknown.status_code == 400
    assert unknown.json() == {"code": -1121, "msg": "Invalid symbol."}


def test_futures_exchange_info_uses_futures_filter_shapes(binance_sim):
    """Futures exchangeInfo has MIN_NOTIONAL with key `notional`, PERCENT_PRICE and precisions."""
    # WHEN futures exchangeInfo is read
    body = requests.get(f"{binance_sim.url}/fapi/v1/exchangeInfo", timeout=5).json()
    # THEN each main symbol is a perpetual with futures-style filters
    symbols = {s["symbol"]: s for s in body["symbols"]}
    btc = symbols["BTCUSDT"]
    assert btc["contractType"] == "PERPETUAL" and btc["marginAsset"] == "USDT"
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert filters["MIN_NOTIONAL"] == {"filterType": "MIN_NOTIONAL", "notional": "100"}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.10"
    assert filters["PERCENT_PRICE"]["multiplierUp"] == "1.0500"
    assert {"ETHUSDT", "BNBUSDT"} <= symbols.keys()
    assert {r["rateLimitType"] for r in body["rateLimits"]} == {"REQUEST_WEIGHT", "ORDERS"}
    assert body["assets"][0].keys() == {"asset", "marginAvailable", "autoAssetExchange"}


def test_klines_rows_have_twelve_fields_and_end_at_now(binance_sim):
    """klines rows are Binance's 12-field arrays; the last candle opened at or before now."""
    # WHEN 5 one-minute candles are read
    rows = requests.get(
        f"{binance_sim.url}/api/v3/klines",
        params={"symbol": "BTCUSDT", "interval": "1m", "limit": 5},
        timeout=5,
    ).json()
    now = time.time() * 1000
    # THEN there are 5 contiguous rows, the last one still open
    assert len(rows) == 5 and all(len(row) == 12 for row in rows)
    assert [b[0] - a[0] for a, b in pairwise(rows)] == [60_000] * 4
    assert rows[-1][0] <= now < rows[-1][6] + 1
    open_, high, low, close = (float(v) for v in rows[0][1:5])
    assert low <= min(open_, close) <= max(open_, close) <= high


def test_klines_are_deterministic_and_spot_agrees_with_futures(binance_sim, binance_sim_factory):
    """The same seed gives the same candles on spot, futures and another simulator."""
    # GIVEN a second simulator with the same (default) seed
    other = binance_sim_factory()
    params = {"symbol": "ETHUSDT", "interval": "1h", "limit": 50, "endTime": 1_700_000_000_000}
    # WHEN the same historical window is read from spot, futures and the other simulator
    spot = requests.get(f"{binance_sim.url}/api/v3/klines", params=params, timeout=5).json()
    futures = requests.get(f"{binance_sim.url}/fapi/v1/klines", params=params, timeout=5).json()
    again = requests.get(f"{other.url}/api/v3/klines", params=params, timeout=5).json()
    # THEN all three are identical
    assert spot == futures == again
    assert len(spot) == 50 and spot[-1][0] == 1_699_999_200_000


def test_a_different_seed_gives_different_candles(binance_sim, binance_sim_factory):
    """price_seed changes the series."""
    # GIVEN a simulator with another seed
    other = binance_sim_factory(price_seed=7)
    params = {"symbol": "BTCUSDT", "interval": "1d", "limit": 3, "endTime": 1_700_000_000_000}
    # WHEN the same window is read from both
    first = requests.get(f"{binance_sim.url}/api/v3/klines", params=params, timeout=5).json()
    second = requests.get(f"{other.url}/api/v3/klines", params=params, timeout=5).json()
    # THEN the prices differ
    assert [r[4] for r in first] != [r[4] for r in second]


def test_klines_respect_start_time_and_limits(binance_sim):
    """startTime starts at the first candle opening at or after it; spot caps at 1000, futures at 1500."""
    # WHEN candles are asked from a start time, and with limits over the maximum
    start = 1_700_000_030_000
    from_start = requests.get(
        f"{binance_sim.url}/fapi/v1/klines",
        params={"symbol": "BNBUSDT", "interval": "1m", "startTime": start, "limit": 3},
        timeout=5,
    ).json()
    spot_max = requests.get(
        f"{binance_sim.url}/api/v3/klines",
        params={"symbol": "BNBUSDT", "interval": "1m", "limit": 5000},
        timeout=5,
    ).json()
    futures_max = requests.get(
        f"{binance_sim.url}/fapi/v1/klines",
        params={"symbol": "BNBUSDT", "interval": "1m", "limit": 5000},
        timeout=5,
    ).json()
    # THEN the window and the caps are respected
    assert [r[0] for r in from_start] == [1_700_000_040_000, 1_700_000_100_000, 1_700_000_160_000]
    assert len(spot_max) == 1000 and len(futures_max) == 1500


def test_klines_reject_unknown_interval_and_missing_symbol(binance_sim):
    """A bad interval is -1120; a missing symbol is -1102."""
    # WHEN klines are called wrongly
    bad_interval = requests.get(
        f"{binance_sim.url}/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "7m"}, timeout=5
    )
    no_symbol = requests.get(f"{binance_sim.url}/fapi/v1/klines", params={"interval": "1m"}, timeout=5)
    # THEN the documented codes come back
    assert bad_interval.json()["code"] == -1120
    assert no_symbol.json() == {
        "code": -1102,
        "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
    }


def test_futures_klines_weight_depends_on_limit(binance_sim):
    """Futures klines weigh 1, 2, 5 or 10 by limit."""
    # WHEN klines with growing limits are read in turn
    used = []
    for limit in (50, 200, 800, 1200):
        response = requests.get(
            f"{binance_sim.url}/fapi/v1/klines",
            params={"symbol": "BTCUSDT", "interval": "1m", "limit": limit},
            timeout=5,
        )
        used.append(int(response.headers["X-MBX-USED-WEIGHT-1M"]))
    # THEN the used weight grows by 1, 2, 5, 10
    assert [b - a for a, b in zip([0, *used[:-1]], used, strict=True)] == [1, 2, 5, 10]


def test_a_stopped_futures_symbol_shows_its_status_and_makes_no_candle_until_it_trades_again(binance_sim):
    """A symbol stopped (set_symbol_status, POST /__sim__/symbol-status) shows its status in futures
    exchangeInfo and no candle opens while it is stopped: none after a delisting, a gap after a halt that
    ended; reset trades it again."""

    def status() -> str:
        body = requests.get(f"{binance_sim.url}/fapi/v1/exchangeInfo", timeout=5).json()
        return next(s["status"] for s in body["symbols"] if s["symbol"] == "ETHUSDT")

    def opens() -> list[int]:
        rows = requests.get(f"{binance_sim.url}/fapi/v1/klines", timeout=5,
                            params={"symbol": "ETHUSDT", "interval": "1m", "limit": 10}).json()
        return [row[0] for row in rows]

    minute = 60_000
    first = opens()
    # WHEN it is delisted from four candles back
    binance_sim.set_symbol_status("ETHUSDT", "SETTLING", since_ms=first[-4])
    # THEN its status says so and no candle opened since
    assert status() == "SETTLING" and opens() == first[:-4]
    # WHEN it trades again from the last of them: the three candles of the stop stay a gap
    resumed = requests.post(f"{binance_sim.url}/__sim__/symbol-status", timeout=5,
                            json={"symbol": "ETHUSDT", "status": "TRADING", "since_ms": first[-1]})
    assert resumed.status_code == 200 and resumed.json() == {"stopped": {}}
    assert status() == "TRADING" and first[-1] in opens() and not set(first[-4:-1]) & set(opens())
    # WHEN the simulator is reset THEN its klines are whole again
    binance_sim.reset()
    after = opens()
    assert after == [after[-1] - k * minute for k in range(len(after) - 1, -1, -1)]


def test_aggregated_candles_span_their_1m_candles(binance_sim):
    """With ``aggregated_candles`` a closed 1h or 1d candle opens at its first 1m candle's open, closes at its
    last's close and has their highest high and lowest low (as Binance's do); off, its wicks are its own."""
    # GIVEN the hours and the day before the current one
    day = (int(time.time() * 1000) // 86_400_000 - 1) * 86_400_000

    def read(interval: str, start: int, limit: int) -> list:
        params = {"symbol": "BTCUSDT", "interval": interval, "startTime": start, "limit": limit}
        return requests.get(f"{binance_sim.url}/fapi/v1/klines", params=params, timeout=5).json()

    minutes = read("1m", day, 1440)
    default_hour = read("1h", day, 1)[0]
    # WHEN coarse candles are read with aggregated_candles on
    binance_sim.configure(aggregated_candles=True)
    hours, days = read("1h", day, 24), read("1d", day, 1)
    # THEN each is its 1m candles' range
    spans = [(h, minutes[i * 60:(i + 1) * 60]) for i, h in enumerate(hours)]
    for coarse, fine in [*spans, (days[0], minutes)]:
        assert (coarse[1], coarse[4]) == (fine[0][1], fine[-1][4])
        assert float(coarse[2]) == max(float(m[2]) for m in fine)
        assert float(coarse[3]) == min(float(m[3]) for m in fine)
    assert default_hour[2:4] != hours[0][2:4], "the default hour's wicks are drawn on their own"
