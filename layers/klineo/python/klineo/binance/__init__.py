"""Everything that talks to Binance: environments, credentials, signing, client, endpoints, filters.

Importing this package is cheap (no requests, AWS SDK, cryptography or Powertools at import time);
they load on first use. See ``client`` for the retry policy; ``klineo.errors`` holds the error taxonomy.
"""

from klineo.binance.client import (
    BinanceClient,
    call_deadline,
    call_time_left,
    clear_client_cache,
    default_rate_limiter,
    get_client,
    invocation_ends,
    posts_signed_by,
    share_rate_limits_through,
    weight_meter,
)
from klineo.binance.codes import Classification, classify, classify_detail
from klineo.binance.credentials import Credentials, mask_api_key
from klineo.binance.endpoints import (
    Candle,
    clear_exchange_info_cache,
    exchange_info,
    futures_account,
    futures_account_config,
    futures_balance,
    futures_cancel_order,
    futures_mark_price,
    futures_new_order,
    futures_position_risk,
    futures_query_order,
    futures_ticker_price,
    klines,
    server_time,
    spot_account,
    spot_api_restrictions,
    spot_ticker_price,
)
from klineo.binance.enums import Environment, KeyType, Market
from klineo.binance.environments import base_url, https_proxy
from klineo.binance.filters import (
    SymbolRules,
    clear_symbol_rules_cache,
    current_symbol_rules,
    get_symbol_rules,
    listed_symbol_rules,
)
from klineo.binance.ratelimit import (
    TRADING_RESERVE,
    InMemoryRateLimitStore,
    RateLimiter,
    RateLimitStore,
    SharedState,
    endpoint_weight,
)
from klineo.binance.signing import encode_params, signature
from klineo.errors import ErrorCategory, KlineoError

__all__ = [
    "TRADING_RESERVE",
    "BinanceClient",
    "Candle",
    "Classification",
    "Credentials",
    "Environment",
    "ErrorCategory",
    "InMemoryRateLimitStore",
    "KeyType",
    "KlineoError",
    "Market",
    "RateLimitStore",
    "RateLimiter",
    "SharedState",
    "SymbolRules",
    "base_url",
    "call_deadline",
    "call_time_left",
    "classify",
    "classify_detail",
    "clear_all_caches",
    "clear_client_cache",
    "clear_exchange_info_cache",
    "clear_symbol_rules_cache",
    "current_symbol_rules",
    "default_rate_limiter",
    "encode_params",
    "endpoint_weight",
    "exchange_info",
    "futures_account",
    "futures_account_config",
    "futures_balance",
    "futures_cancel_order",
    "futures_mark_price",
    "futures_new_order",
    "futures_position_risk",
    "futures_query_order",
    "futures_ticker_price",
    "get_client",
    "get_symbol_rules",
    "https_proxy",
    "invocation_ends",
    "klines",
    "listed_symbol_rules",
    "mask_api_key",
    "posts_signed_by",
    "server_time",
    "share_rate_limits_through",
    "signature",
    "spot_account",
    "spot_api_restrictions",
    "spot_ticker_price",
    "weight_meter",
]


def clear_all_caches() -> None:
    """Forget every per-container cache here: clients, sessions, limiter, exchangeInfo, rules (tests)."""
    clear_client_cache()
    clear_exchange_info_cache()
    clear_symbol_rules_cache()
