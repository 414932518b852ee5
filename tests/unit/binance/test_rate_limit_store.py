"""The DynamoDB rate-limit store under moto: shared bans and weights, conditional writes, TTLs, failures."""

from __future__ import annotations

import importlib
import os

import pytest
from klineo.binance import ErrorCategory, KlineoError, Market, RateLimiter
from klineo.binance.client import default_rate_limiter
from klineo.binance.ratelimit import SharedState
from klineo.store import aws as aws_clients
from klineo.store.rate_limit import DynamoDBRateLimitStore

HOST = "fapi.binance.com"
NOW_MS = 1_700_000_000_000


@pytest.fixture
def table(aws) -> str:
    """The RateLimitTable's physical name under moto."""
    return os.environ["RATE_LIMIT_TABLE"]


def _item(table: str, pk: str) -> dict:
    return aws_clients.dynamodb().get_item(TableName=table, Key={"pk": {"S": pk}}).get("Item")


def test_ban_recorded_by_one_container_is_seen_by_another(table):
    """GIVEN two limiters on the RateLimitTable WHEN one records a 418 ban THEN the other refuses to call."""
    first = RateLimiter(DynamoDBRateLimitStore(table))
    second = RateLimiter(DynamoDBRateLimitStore(table))
    first.block(HOST, Market.FUTURES, NOW_MS + 120_000, 418)
    with pytest.raises(KlineoError) as caught:
        second.acquire(HOST, Market.FUTURES, 1, NOW_MS)
    assert caught.value.category is ErrorCategory.IP_BANNED
    item = _item(table, f"binance#block#{HOST}")
    assert item["status"] == {"N": "418"}
    assert int(item["ttl"]["N"]) == (NOW_MS + 120_000) // 1000 + 60


def test_weight_written_on_threshold_and_read_back_in_one_batch(table):
    """GIVEN usage crossing 50 % WHEN observed THEN the item holds window, used and a TTL after the window."""
    store = DynamoDBRateLimitStore(table)
    RateLimiter(store).observe(HOST, Market.FUTURES, 1300, NOW_MS)
    window = NOW_MS // 60_000
    item = _item(table, f"binance#weight#{HOST}")
    assert (item["window"], item["used"]) == ({"N": str(window)}, {"N": "1300"})
    assert int(item["ttl"]["N"]) == (window + 3) * 60
    assert store.load(HOST) == SharedState(window, 1300, 0, 0)


def test_conditional_writes_never_lower_the_shared_state(table):
    """GIVEN a higher weight and a later ban stored WHEN lower/earlier ones are written
    THEN they are ignored."""
    store = DynamoDBRateLimitStore(table)
    store.save_usage(HOST, 5, 2000)
    store.save_usage(HOST, 5, 1500)
    store.save_usage(HOST, 4, 2300)
    store.save_block(HOST, NOW_MS + 60_000, 418)
    store.save_block(HOST, NOW_MS + 1_000, 429)
    assert store.load(HOST) == SharedState(5, 2000, NOW_MS + 60_000, 418)


def test_nothing_recorded_loads_as_none(table):
    """GIVEN an empty table WHEN loaded THEN None."""
    assert DynamoDBRateLimitStore(table).load(HOST) is None


def test_store_failures_never_break_a_call(aws):
    """GIVEN a table that does not exist WHEN the limiter loads and writes
    THEN it goes on with local state."""
    limiter = RateLimiter(DynamoDBRateLimitStore("no-such-table"))
    limiter.acquire(HOST, Market.FUTURES, 1, NOW_MS)
    limiter.observe(HOST, Market.FUTURES, 2300, NOW_MS)
    limiter.block(HOST, Market.FUTURES, NOW_MS + 5_000, 429)
    with pytest.raises(KlineoError) as caught:
        limiter.acquire(HOST, Market.FUTURES, 1, NOW_MS + 1_000)
    assert caught.value.category is ErrorCategory.RATE_LIMIT


def test_default_limiter_uses_dynamodb_when_the_table_is_configured(table):
    """GIVEN RATE_LIMIT_TABLE set (as template.yaml does) and the services' wiring WHEN the default
    limiter is made THEN it is DynamoDB."""
    importlib.import_module("klineo.services")  # the composition root installs the store factory
    limiter = default_rate_limiter()
    assert isinstance(limiter.store, DynamoDBRateLimitStore) and limiter.store.table_name == table
