"""Market data: symbol definitions, exchangeInfo documents, and deterministic candles.

Prices come from a deterministic function of (symbol, second): a few slow sine waves plus
hash-based value noise at several time scales, on a log scale. Any candle of any interval is
derived from that function (open = price at openTime, close = price at the next openTime or
"now" for the open candle), so candles are stable across calls and restarts, spot and futures
agree, and the same seed gives the same candles. The futures mark price is the close of the
latest (still open) candle, i.e. the price at the current server second.

Each candle's wicks are drawn on their own, so a coarse candle's high/low are not those of the 1m candles
it spans (Binance's are: it aggregates the same trades). ``klines(..., aggregated=True)`` (the config's
``aggregated_candles``) makes every intraday candle above 1m from its 1m candles instead (open of the
first, close of the last, highest high, lowest low, summed volumes): off by default, since a 1d candle then
costs 1440 1m candles.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal

from . import errors

__all__ = [
    "FUTURES_ORDER_TYPES",
    "INTERVALS_MS",
    "SYMBOLS",
    "PriceSeries",
    "SymbolSpec",
    "futures_exchange_info",
    "get_symbol",
    "spot_exchange_info",
]

# Futures PERCENT_PRICE of every simulated symbol: exchangeInfo lists it, orders are held to it.
FUTURES_MULTIPLIER_UP = "1.0500"
FUTURES_MULTIPLIER_DOWN = "0.9500"
INTERVALS_MS = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
    "1M": 0,
}
FUTURES_INTERVALS = frozenset(INTERVALS_MS) - {"1s"}
_WEEK_OFFSET_MS = 4 * 86_400_000  # 1970-01-01 was a Thursday; weekly candles open on Monday.
_MASK64 = (1 << 64) - 1


@dataclasses.dataclass(frozen=True)
class SymbolSpec:
    """One symbol as listed on both spot and USDT-M futures, with real-looking filters."""

    symbol: str
    base_asset: str
    quote_asset: str
    base_price: float
    series_decimals: int
    spot_tick: str
    spot_min_price: str
    spot_max_price: str
    spot_step: str
    spot_min_qty: str
    spot_max_qty: str
    spot_min_notional: str
    futures_tick: str
    futures_min_price: str
    futures_max_price: str
    futures_step: str
    futures_min_qty: str
    futures_max_qty: str
    futures_market_max_qty: str
    futures_min_notional: str
    price_precision: int
    quantity_precision: int
    max_leverage: int
    onboard_date: int
    base_volume_per_minute: float
    # MARKET_LOT_SIZE's stepSize and minQty where coarser than LOT_SIZE's (as on some real symbols);
    # "" = the same as LOT_SIZE's.
    futures_market_step: str = ""
    futures_market_min_qty: str = ""

    def futures_decimal(self, name: str) -> Decimal:
        """A futures filter value as a Decimal (e.g. 'tick', 'min_qty')."""
        return Decimal(getattr(self, f"futures_{name}"))


def _listing(
    symbol: str,
    price: float,
    futures_tick: str,
    futures_step: str,
    price_precision: int,
    quantity_precision: int,
    spot_tick: str,
    spot_step: str,
    minute_volume: float,
) -> SymbolSpec:
    """A secondary USDT pair with plausible filters derived from its price and increments."""
    tick = Decimal(futures_tick)
    min_price = max(tick, (Decimal(repr(price)) / 100 / tick).to_integral_value() * tick)
    return SymbolSpec(
        symbol,
        symbol.removesuffix("USDT"),
        "USDT",
        price,
        max(0, -tick.normalize().as_tuple().exponent),
        spot_tick,
        spot_tick,
        "1000000.00000000",
        spot_step,
        spot_step,
        "9000000.00000000",
        "5.00000000",
        futures_tick,
        str(min_price),
        str(int(price * 1000)),
        futures_step,
        futures_step,
        "10000000",
        "1000000",
        "5",
        price_precision,
        quantity_precision,
        75,
        1569398400000,
        minute_volume,
    )


# fmt: off
SYMBOLS: dict[str, SymbolSpec] = {spec.symbol: spec for spec in (
    SymbolSpec("BTCUSDT", "BTC", "USDT", 65000.0, 1,
               "0.01", "0.01", "1000000.00", "0.00001", "0.00001", "9000.00000000", "5.00000000",
               "0.10", "556.80", "4529764", "0.001", "0.001", "1000", "120", "100",
               2, 3, 125, 1569398400000, 45.0),
    SymbolSpec("ETHUSDT", "ETH", "USDT", 3200.0, 2,
               "0.01", "0.01", "1000000.00", "0.0001", "0.0001", "9000.00000000", "5.00000000",
               "0.01", "39.86", "306177", "0.001", "0.001", "10000", "2000", "20",
               2, 3, 125, 1569398400000, 600.0),
    SymbolSpec("BNBUSDT", "BNB", "USDT", 580.0, 2,
               "0.01", "0.01", "1000000.00", "0.001", "0.001", "900000.00000000", "5.00000000",
               "0.010", "6.600", "100000", "0.01", "0.01", "100000", "2000", "5",
               # quantityPrecision 3 is finer than stepSize 0.01 on purpose (the docs warn that
               # precision is not the step): 0.015 is -4023, 0.0015 is -1111.
               3, 3, 75, 1569398400000, 900.0),
    # More pairs so runner benchmarks can spread strategies over about 20 symbols.
    _listing("SOLUSDT", 150.0, "0.0100", "1", 4, 0, "0.01", "0.001", 3000.0),
    _listing("XRPUSDT", 0.55, "0.0001", "0.1", 4, 1, "0.0001", "0.1", 900000.0),
    _listing("ADAUSDT", 0.45, "0.00010", "1", 5, 0, "0.0001", "0.1", 500000.0),
    _listing("DOGEUSDT", 0.12, "0.000010", "1", 6, 0, "0.00001", "1", 4000000.0),
    _listing("AVAXUSDT", 30.0, "0.0010", "1", 4, 0, "0.01", "0.01", 8000.0),
    _listing("DOTUSDT", 6.5, "0.001", "0.1", 3, 1, "0.001", "0.01", 30000.0),
    _listing("LINKUSDT", 15.0, "0.001", "0.01", 3, 2, "0.01", "0.01", 15000.0),
    _listing("LTCUSDT", 80.0, "0.01", "0.001", 2, 3, "0.01", "0.001", 2000.0),
    _listing("TRXUSDT", 0.12, "0.00001", "1", 5, 0, "0.0001", "0.1", 1000000.0),
    _listing("ATOMUSDT", 8.0, "0.001", "0.01", 3, 2, "0.001", "0.01", 12000.0),
    _listing("UNIUSDT", 8.0, "0.0010", "1", 4, 0, "0.001", "0.01", 9000.0),
    _listing("ETCUSDT", 25.0, "0.001", "0.01", 3, 2, "0.01", "0.01", 5000.0),
    _listing("XLMUSDT", 0.11, "0.00001", "1", 5, 0, "0.0001", "1", 600000.0),
    _listing("NEARUSDT", 5.0, "0.0010", "1", 4, 0, "0.001", "0.1", 20000.0),
    _listing("FILUSDT", 5.0, "0.001", "0.1", 3, 1, "0.001", "0.01", 15000.0),
    _listing("APTUSDT", 9.0, "0.00010", "0.1", 5, 1, "0.001", "0.01", 10000.0),
    _listing("ARBUSDT", 0.9, "0.00010", "0.1", 5, 1, "0.0001", "0.1", 150000.0),
    _listing("OPUSDT", 2.0, "0.0001000", "0.1", 7, 1, "0.001", "0.01", 60000.0),
    _listing("SUIUSDT", 1.5, "0.000100", "0.1", 6, 1, "0.0001", "0.1", 90000.0),
)}
# fmt: on


def get_symbol(symbol: str | None) -> SymbolSpec:
    """The spec for a symbol, or -1121 Invalid symbol."""
    spec = SYMBOLS.get(symbol or "")
    if spec is None:
        raise errors.invalid_symbol()
    return spec


def _mix64(value: int) -> int:
    """splitmix64 finaliser: a fast, well-spread integer hash."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def _unit(value: int) -> float:
    """Hash to a float in [0, 1)."""
    return _mix64(value) / 18446744073709551616.0


class PriceSeries:
    """The deterministic price path and candles of one symbol."""

    # (scale in seconds, amplitude on log-price) for the value-noise layers.
    _NOISE_LAYERS = (
        (604_800, 0.06),
        (86_400, 0.02),
        (14_400, 0.008),
        (3_600, 0.004),
        (300, 0.0015),
        (60, 0.0006),
        (1, 0.0002),
    )
    _WAVES = ((2_592_000, 0.05), (259_200, 0.012))

    def __init__(self, spec: SymbolSpec, seed: int):
        self.spec = spec
        self._seed = _mix64(seed ^ int.from_bytes(spec.symbol.encode()[:8], "big"))
        self._log_base = math.log(spec.base_price)
        self._phases = [_unit(self._seed + 101 + k) * 2 * math.pi for k in range(len(self._WAVES))]
        self._candle_cache: dict[tuple[int, int], list] = {}

    def _noise(self, layer: int, index: int) -> float:
        return _unit(self._seed ^ (layer << 56) ^ (index & 0xFFFFFFFFFFFFFF)) * 2.0 - 1.0

    def price_at(self, second: int) -> float:
        """The price at a Unix second, rounded to the symbol's series precision."""
        log_price = self._log_base
        for (period, amplitude), phase in zip(self._WAVES, self._phases, strict=True):
            log_price += amplitude * math.sin(2 * math.pi * second / period + phase)
        for layer, (scale, amplitude) in enumerate(self._NOISE_LAYERS):
            index, offset = divmod(second, scale)
            left = self._noise(layer, index)
            if offset:
                left += (self._noise(layer, index + 1) - left) * (offset / scale)
            log_price += amplitude * left
        return round(math.exp(log_price), self.spec.series_decimals)

    def mark_price(self, now_ms: float) -> float:
        """The mark price: the close of the latest candle, i.e. the price at this second."""
        return self.price_at(int(now_ms // 1000))

    def _candle(self, open_ms: int, close_ms: int, interval_ms: int, now_ms: float) -> list:
        """One kline row; closed candles are cached."""
        closed = close_ms < now_ms
        key = (open_ms, close_ms)
        if closed and key in self._candle_cache:
            return self._candle_cache[key]
        open_price = self.price_at(open_ms // 1000)
        close_price = self.price_at((close_ms + 1) // 1000 if closed else int(now_ms // 1000))
        wick_seed = self._seed ^ (open_ms * 31 + interval_ms)
        span = max(interval_ms / 60_000.0, 1 / 60.0)
        wick = 0.0004 * math.sqrt(span)
        decimals = self.spec.series_decimals
        high = round(max(open_price, close_price) * (1 + wick * _unit(wick_seed + 1)), decimals)
        low = round(min(open_price, close_price) * (1 - wick * _unit(wick_seed + 2)), decimals)
        fraction = 1.0 if closed else max(0.0, (now_ms - open_ms) / (close_ms + 1 - open_ms))
        volume = self.spec.base_volume_per_minute * span * (0.5 + _unit(wick_seed + 3)) * fraction
        taker_share = 0.4 + 0.2 * _unit(wick_seed + 4)
        average = (open_price + close_price) / 2
        row = [
            open_ms,
            f"{open_price:.8f}",
            f"{high:.8f}",
            f"{low:.8f}",
            f"{close_price:.8f}",
            f"{volume:.8f}",
            close_ms,
            f"{volume * average:.8f}",
            int(volume * 40),
            f"{volume * taker_share:.8f}",
            f"{volume * taker_share * average:.8f}",
            "0",
        ]
        if closed:
            if len(self._candle_cache) > 200_000:
                self._candle_cache.clear()
            self._candle_cache[key] = row
        return row

    def _aggregate(self, open_ms: int, size: int, now_ms: float) -> list:
        """One kline row of ``size`` ms made from its 1m candles (the module doc); closed ones cached."""
        key = (open_ms, -size)
        if key in self._candle_cache:
            return self._candle_cache[key]
        last = min(open_ms + size, int(now_ms) // 60_000 * 60_000 + 1)
        minutes = [self._candle(o, o + 59_999, 60_000, now_ms) for o in range(open_ms, last, 60_000)]
        row = [open_ms, minutes[0][1], max(minutes, key=lambda m: float(m[2]))[2],
               min(minutes, key=lambda m: float(m[3]))[3], minutes[-1][4],
               f"{sum(float(m[5]) for m in minutes):.8f}", open_ms + size - 1,
               f"{sum(float(m[7]) for m in minutes):.8f}", sum(m[8] for m in minutes),
               f"{sum(float(m[9]) for m in minutes):.8f}", f"{sum(float(m[10]) for m in minutes):.8f}", "0"]
        if open_ms + size - 1 < now_ms:
            self._candle_cache[key] = row
        return row

    def klines(
        self, interval: str, now_ms: float, limit: int, start_ms: int | None = None,
        end_ms: int | None = None, *, aggregated: bool = False,
    ) -> list[list]:
        """Kline rows as Binance returns them; only candles whose openTime <= now. ``aggregated``: intraday
        candles above 1m made from their 1m candles (the module doc)."""
        if interval == "1M":
            return self._monthly_klines(now_ms, limit, start_ms, end_ms)
        size = INTERVALS_MS[interval]
        offset = _WEEK_OFFSET_MS if interval == "1w" else 0
        last_open = (int(now_ms) - offset) // size * size + offset
        if end_ms is not None:
            last_open = min(last_open, (end_ms - offset) // size * size + offset)
        if start_ms is not None:
            first_open = -((offset - start_ms) // size) * size + offset  # ceil to a boundary
            opens = range(first_open, min(last_open, first_open + (limit - 1) * size) + 1, size)
        else:
            opens = range(max(last_open - (limit - 1) * size, offset), last_open + 1, size)
        if aggregated and 60_000 < size <= 86_400_000:
            return [self._aggregate(o, size, now_ms) for o in opens]
        return [self._candle(o, o + size - 1, size, now_ms) for o in opens]

    def _monthly_klines(self, now_ms, limit, start_ms, end_ms):
        def month_start(year, month):
            return calendar.timegm((year, month, 1, 0, 0, 0)) * 1000

        def shift(year, month, months):
            total = year * 12 + (month - 1) + months
            return total // 12, total % 12 + 1

        now = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)
        last = (now.year, now.month)
        if end_ms is not None:
            end = dt.datetime.fromtimestamp(end_ms / 1000, dt.UTC)
            last = min(last, (end.year, end.month))
        if start_ms is not None:
            start = dt.datetime.fromtimestamp(start_ms / 1000, dt.UTC)
            first = (start.year, start.month)
            if month_start(*first) < start_ms:
                first = shift(*first, 1)
            months = []
            current = first
            while current <= last and len(months) < limit:
                months.append(current)
                current = shift(*current, 1)
        else:
            months = [shift(*last, -k) for k in range(limit - 1, -1, -1)]
        rows = []
        for year, month in months:
            open_ms = month_start(year, month)
            close_ms = month_start(*shift(year, month, 1)) - 1
            rows.append(self._candle(open_ms, close_ms, close_ms + 1 - open_ms, now_ms))
        return rows


def _spot_symbol(spec: SymbolSpec) -> dict:
    return {
        "symbol": spec.symbol,
        "status": "TRADING",
        "baseAsset": spec.base_asset,
        "baseAssetPrecision": 8,
        "quoteAsset": spec.quote_asset,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": [
            "LIMIT",
            "LIMIT_MAKER",
            "MARKET",
            "STOP_LOSS",
            "STOP_LOSS_LIMIT",
            "TAKE_PROFIT",
            "TAKE_PROFIT_LIMIT",
        ],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "amendAllowed": True,
        "pegInstructionsAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": spec.spot_min_price,
                "maxPrice": spec.spot_max_price,
                "tickSize": spec.spot_tick,
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": spec.spot_min_qty,
                "maxQty": spec.spot_max_qty,
                "stepSize": spec.spot_step,
            },
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.00000000",
                "maxQty": "100.00000000",
                "stepSize": "0.00000000",
            },
            {
                "filterType": "TRAILING_DELTA",
                "minTrailingAboveDelta": 10,
                "maxTrailingAboveDelta": 2000,
                "minTrailingBelowDelta": 10,
                "maxTrailingBelowDelta": 2000,
            },
            {
                "filterType": "PERCENT_PRICE_BY_SIDE",
                "bidMultiplierUp": "5",
                "bidMultiplierDown": "0.2",
                "askMultiplierUp": "5",
                "askMultiplierDown": "0.2",
                "avgPriceMins": 5,
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": spec.spot_min_notional,
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [],
        "permissionSets": [["SPOT", "MARGIN"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"],
    }


def spot_exchange_info(server_time_ms: int, weight_limit: int, symbols: list[str] | None = None) -> dict:
    """GET /api/v3/exchangeInfo."""
    specs = [get_symbol(s) for s in symbols] if symbols else list(SYMBOLS.values())
    return {
        "timezone": "UTC",
        "serverTime": server_time_ms,
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": weight_limit,
            },
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 300000},
        ],
        "exchangeFilters": [],
        "symbols": [_spot_symbol(spec) for spec in specs],
    }


FUTURES_ORDER_TYPES = ("LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                       "TRAILING_STOP_MARKET")


def _futures_symbol(spec: SymbolSpec, status: str = "TRADING",
                    order_types: Sequence[str] = FUTURES_ORDER_TYPES) -> dict:
    return {
        "symbol": spec.symbol,
        "pair": spec.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": spec.onboard_date,
        "status": status,
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": spec.base_asset,
        "quoteAsset": spec.quote_asset,
        "marginAsset": "USDT",
        "pricePrecision": spec.price_precision,
        "quantityPrecision": spec.quantity_precision,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": ["PoW"] if spec.base_asset == "BTC" else ["Layer-1"],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": spec.futures_min_price,
                "maxPrice": spec.futures_max_price,
                "tickSize": spec.futures_tick,
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": spec.futures_min_qty,
                "maxQty": spec.futures_max_qty,
                "stepSize": spec.futures_step,
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": spec.futures_market_min_qty or spec.futures_min_qty,
                "maxQty": spec.futures_market_max_qty,
                "stepSize": spec.futures_market_step or spec.futures_step,
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": spec.futures_min_notional},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": FUTURES_MULTIPLIER_UP,
                "multiplierDown": FUTURES_MULTIPLIER_DOWN,
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": list(order_types),
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
    }


def futures_exchange_info(
    server_time_ms: int, weight_limit: int, orders_limit_1m: int, orders_limit_10s: int,
    statuses: Mapping[str, str] | None = None, order_types: Mapping[str, Sequence[str]] | None = None,
) -> dict:
    """GET /fapi/v1/exchangeInfo; ``statuses``: symbol -> its status when not TRADING; ``order_types``:
    symbol -> the order types it lists when not ``FUTURES_ORDER_TYPES``."""
    return {
        "timezone": "UTC",
        "serverTime": server_time_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": weight_limit,
            },
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": orders_limit_1m},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": orders_limit_10s},
        ],
        "exchangeFilters": [],
        "assets": [
            {"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"},
            {"asset": "BTC", "marginAvailable": True, "autoAssetExchange": "-0.10000000"},
            {"asset": "BNB", "marginAvailable": True, "autoAssetExchange": "-10"},
        ],
        "symbols": [
            _futures_symbol(spec, (statuses or {}).get(spec.symbol, "TRADING"),
                            (order_types or {}).get(spec.symbol, FUTURES_ORDER_TYPES))
            for spec in SYMBOLS.values()
        ],
    }
