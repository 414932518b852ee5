"""template.yaml's IAM policies against the AWS calls the functions really make (moto enforces none).

Every ``invoke`` in the integration tests runs under its function's policy (``tests.iam_policy``);
these tests walk the paths that found the gaps: each function on its events/ file, the shared
rate-limit state read by a new container, and a key's third failure on the read routes.
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest
from klineo.binance import Credentials, KeyType, clear_all_caches
from klineo.settings import get_settings
from klineo.store import strategies as strategy_store
from klineo.store.connections import get_connection, replace_key
from klineo.store.rate_limit import DynamoDBRateLimitStore
from klineo.store.secrets import put_new_version

from local.sam_local.demo_data import seed
from tests.helpers import load_event, with_user
from tests.integration.api.conftest import USER_A, at_path, connection_event
from tests.integration.api.test_cold_start_clients import PACKAGES


def test_every_function_on_its_event_makes_only_calls_its_policy_allows(sim_env, invoke, iam) -> None:
    """GIVEN the events' data seeded WHEN each of the 37 functions handles its events/ file THEN none
    made an AWS call its policy denies (a denial the code catches and logs counts too)."""
    seed()
    for package in PACKAGES:
        clear_all_caches()
        invoke(package, load_event(package))

    assert iam.denied == [], iam.report()


def test_a_ban_recorded_by_another_container_keeps_a_new_one_off_binance(sim_env, invoke) -> None:
    """GIVEN a 418 ban saved in the rate-limit table by another container WHEN a fresh container serves
    GET /candles THEN it reads the ban (BatchGetItem, allowed by its policy) and calls no Binance host."""
    store = DynamoDBRateLimitStore(get_settings().rate_limit_table)
    until_ms = int(time.time() * 1000) + 120_000
    for url in (sim_env.url, sim_env.testnet_url):
        store.save_block(url.split("://", 1)[-1].split("/", 1)[0], until_ms, 418)
    clear_all_caches()
    sim_env.clear_journal()

    response = invoke("candles", load_event("candles"))

    assert list(sim_env.journal) == []
    assert response["statusCode"] != 200, response["body"]


def _live_strategy(connection_id: str, **fields) -> str:
    now = strategy_store.now_iso()
    strategy = strategy_store.Strategy(
        user_id=USER_A, strategy_id=strategy_store.new_strategy_id(), connection_id=connection_id,
        environment="production", symbol="BTCUSDT", interval="1m", type="sma_crossover",
        parameters={"fast": 2, "slow": 3}, size=Decimal("0.002"), mode="live", status="active",
        created_at=now, updated_at=now, **fields)
    strategy_store.put_new_strategy(strategy)
    return strategy.strategy_id


def test_a_strategy_holding_a_position_reads_its_mark_under_the_shared_limiter(sim_env, invoke, iam,
                                                                               stored_connection) -> None:
    """GIVEN a live strategy holding a position WHEN a fresh container serves GET /strategies/{id} THEN
    its PnL's mark-price read goes through the shared rate-limit table, which its policy allows (a
    denied read would be logged and swallowed: a ban other containers recorded would go unseen)."""
    strategy_id = _live_strategy(stored_connection.id, live_position=Decimal("0.002"),
                                 live_book={"entry_price": "50000", "realised_pnl": "0", "fees": "0"})
    clear_all_caches()
    sim_env.clear_journal()
    path = f"/strategies/{strategy_id}"
    event = with_user(at_path(load_event("strategy_get"), path, id=strategy_id), USER_A)

    response = invoke("strategy_get", event)

    assert response["statusCode"] == 200, response["body"]
    assert [r.path for r in sim_env.journal] == ["/fapi/v1/premiumIndex"]
    assert iam.denied == [], iam.report()


def _break_key(connection_id: str, account) -> None:
    """The stored secret no longer matches the key at Binance: every signed call fails its signature."""
    connection = get_connection(USER_A, connection_id)
    version = str(uuid.uuid4())
    put_new_version(connection.secret_name, Credentials(account.api_key, "0" * 64, KeyType.HMAC), version)
    replace_key(USER_A, connection_id, key_type="hmac", api_key_masked=connection.api_key_masked,
                credentials_version=version, last_test=connection.last_test or {})


@pytest.mark.parametrize(("package", "suffix"), [
    ("futures_positions", "/futures/positions"),
    ("futures_open_orders", "/futures/open-orders"),
    ("futures_open_orders_cancel", "/futures/open-orders"),
])
def test_a_keys_third_failure_on_a_read_route_disables_and_pauses(sim_env, invoke, stored_connection,
                                                                  package, suffix) -> None:
    """GIVEN a live strategy and a key Binance refuses WHEN a read or cancel route fails three times
    THEN each answer is the key's 403, the connection is disabled and its strategy paused (a Query its
    policy must allow; denied, the third answer was a 500 and the strategy stayed active)."""
    strategy_id = _live_strategy(stored_connection.id)
    _break_key(stored_connection.id, stored_connection.account)
    event = connection_event(package, stored_connection.id, USER_A, suffix)
    statuses = []
    for _ in range(3):
        clear_all_caches()
        statuses.append(invoke(package, event)["statusCode"])

    stored = strategy_store.get_strategy(USER_A, strategy_id, consistent=True)
    assert (statuses, stored.status) == ([403, 403, 403], "paused")
    assert get_connection(USER_A, stored_connection.id).disabled_at is not None
