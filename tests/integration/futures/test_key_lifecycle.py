"""Key lifecycle against moto and the simulator: new keys, disabling after key failures, enable, delete."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest
from klineo.binance import Credentials, KeyType
from klineo.services.key_health import pause_connection_strategies
from klineo.settings import get_settings
from klineo.store import aws as aws_clients
from klineo.store import strategies as strategy_store
from klineo.store.connections import (
    add_key_failure,
    connection_credentials,
    connection_sk,
    disable_connection,
    get_connection,
    replace_key,
)
from klineo.store.events import list_events
from klineo.store.order_history import UNSETTLED_INDEX
from klineo.store.secrets import clear_cache, put_new_version

from local.binance_sim.accounts import Permissions
from tests.helpers import load_event, with_body, with_user
from tests.integration.api.conftest import (
    USER_A,
    LambdaContext,
    at_path,
    aws_refusing,
    connection_event,
    credentials_body,
    dynamodb_requests,
)
from tests.integration.futures.helpers import (
    body_of,
    forget_uid,
    fresh_handler,
    new_key,
    order_body,
    order_event,
    order_posts,
    put_credentials,
    second_key,
)


def _live_strategy(connection_id: str, mode: str = "live") -> str:
    """An active live (or ``mode``) strategy of USER_A on the connection (as the strategies API stores it)."""
    now = strategy_store.now_iso()
    strategy = strategy_store.Strategy(
        user_id=USER_A,
        strategy_id=strategy_store.new_strategy_id(),
        connection_id=connection_id,
        environment="production",
        symbol="BTCUSDT",
        interval="1m",
        type="sma_crossover",
        parameters={"fast": 2, "slow": 3},
        size=Decimal("0.002"),
        mode=mode,
        status="active",
        created_at=now,
        updated_at=now,
    )
    strategy_store.put_new_strategy(strategy)
    return strategy.strategy_id


def _strategy(strategy_id: str) -> strategy_store.Strategy:
    found = strategy_store.get_strategy(USER_A, strategy_id, consistent=True)
    assert found is not None
    return found


def _break_key(connection_id: str, account) -> None:
    """GIVEN the stored secret no longer matching the key on Binance (a secret rotated there)."""
    connection = get_connection(USER_A, connection_id)
    version = str(uuid.uuid4())
    put_new_version(connection.secret_name, Credentials(account.api_key, "0" * 64, KeyType.HMAC), version)
    replace_key(
        USER_A,
        connection_id,
        key_type="hmac",
        api_key_masked=connection.api_key_masked,
        credentials_version=version,
        last_test=connection.last_test or {},
    )


def test_new_credentials_sign_every_later_request_and_strategies_keep_running(
    sim_env, invoke, futures_connection
):
    """GIVEN a live strategy WHEN PUT credentials with another key of the account THEN it signs; strategy
    still active."""
    strategy_id = _live_strategy(futures_connection.id)
    new_account = sim_env.add_key("futures-full", "K2" + "a1" * 31, "b2" * 32)

    response = put_credentials(invoke, futures_connection.id, new_account)
    sim_env.clear_journal()
    placed = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))

    assert response["statusCode"] == 200, response["body"]
    body = body_of(response)
    shown = (body["id"], body["api_key_masked"], body["futures_enabled"])
    assert shown == (futures_connection.id, "K2a1…a1a1", True)
    assert placed["statusCode"] == 200, placed["body"]
    signed = [r for r in sim_env.journal if r.api_key]
    assert signed and {r.api_key for r in signed} == {new_account.api_key}
    assert (
        _strategy(strategy_id).status == "active"
        and _strategy(strategy_id).connection_id == futures_connection.id
    )


def test_a_new_key_gets_the_connections_leverage_and_margin_type_applied_again(sim_env, invoke,
                                                                               futures_connection):
    """GIVEN 5x isolated applied on BTCUSDT with the first key, on a connection stored before uids were
    recorded WHEN that key is deleted on Binance and replaced by one of another account (nothing to compare
    its uid with) and an order is placed THEN the order goes out at 5x isolated on the new account too (the
    old key's applied settings are forgotten), not at that account's own 20x cross."""
    first = second_key(sim_env)
    assert put_credentials(invoke, futures_connection.id, first)["statusCode"] == 200
    forget_uid(futures_connection.id)
    patch = with_body(connection_event("connection_update", futures_connection.id, USER_A),
                      {"leverage": 5, "margin_type": "isolated"})
    assert invoke("connection_update", patch)["statusCode"] == 200
    small = order_body(futures_connection.id, type="MARKET", price=None, timeInForce=None, quantity="0.002")
    assert invoke("futures_order", order_event(small, key=new_key()))["statusCode"] == 200
    applied = sim_env.state.futures.settings(futures_connection.account, "BTCUSDT")
    assert (applied["leverage"], applied["margin_type"]) == (5, "ISOLATED")
    sim_env.revoke_key(first.api_key)
    new_account = sim_env.account("ed25519-futures")
    assert put_credentials(invoke, futures_connection.id, new_account)["statusCode"] == 200

    second = invoke("futures_order", order_event(small, key=new_key()))

    assert second["statusCode"] == 200, second["body"]
    now = sim_env.state.futures.settings(new_account, "BTCUSDT")
    assert (now["leverage"], now["margin_type"]) == (5, "ISOLATED")


def test_credentials_that_fail_the_futures_test_leave_the_old_key(sim_env, invoke, futures_connection):
    """GIVEN futures enabled WHEN PUT credentials with a key of the same account without futures permission
    THEN refused, the old key signs."""
    before = get_connection(USER_A, futures_connection.id)
    spot_only = dataclasses.replace(futures_connection.account.permissions, futures=False)

    response = put_credentials(invoke, futures_connection.id, second_key(sim_env, permissions=spot_only))
    sim_env.clear_journal()
    placed = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))

    assert response["statusCode"] == 403, response["body"]
    assert "futures test failed" in body_of(response)["error"]["message"]
    after = get_connection(USER_A, futures_connection.id)
    assert (after.api_key_masked, after.credentials_version) == (
        before.api_key_masked,
        before.credentials_version,
    )
    assert placed["statusCode"] == 200
    assert {r.api_key for r in sim_env.journal if r.api_key} == {futures_connection.account.api_key}


def test_a_new_key_of_the_other_environment_is_refused_with_advice_the_route_can_follow(
        sim_env, invoke, futures_connection):
    """GIVEN a production connection WHEN PUT credentials (environment left out) with a testnet key THEN
    refused saying to add it as a new testnet connection, never "choose the environment 'testnet'",
    which this route refuses (a connection keeps its environment); suggested_environment says where the key
    belongs, as the create and the test route say it, and api_key is the field at fault."""
    body = credentials_body(sim_env.account("testnet-futures"))
    del body["environment"]
    event = connection_event("connection_credentials", futures_connection.id, USER_A, "/credentials")

    response = invoke("connection_credentials", with_body(event, body))

    assert response["statusCode"] == 403, response["body"]
    error = body_of(response)["error"]
    message = error["message"]
    assert "testnet" in message and "new connection" in message, message
    assert (error["suggested_environment"], error["field"]) == ("testnet", "api_key")
    assert "choose the environment" not in message, message


def test_three_key_failures_disable_the_connection_and_enable_restores_it(
    sim_env, invoke, futures_connection
):
    """GIVEN a live strategy, a broken key WHEN 3 orders fail THEN disabled, paused; enable restores."""
    strategy_id = _live_strategy(futures_connection.id)
    _break_key(futures_connection.id, futures_connection.account)

    failures = [
        invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))
        for _ in range(3)
    ]

    assert [r["statusCode"] for r in failures] == [403, 403, 403]
    disabled = get_connection(USER_A, futures_connection.id)
    assert disabled.disabled_at is not None and disabled.disabled_reason == "connection_disabled:signature"
    assert (_strategy(strategy_id).status, _strategy(strategy_id).status_reason) == (
        "paused",
        "connection_disabled:signature",
    )
    sim_env.clear_journal()
    refused = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))
    assert refused["statusCode"] == 409 and body_of(refused)["error"]["field"] == "connection_disabled"
    assert order_posts(sim_env) == []
    listed = body_of(invoke("connection_list", with_user(load_event("connection_list"), USER_A)))
    shown = next(c for c in listed["connections"] if c["id"] == futures_connection.id)
    assert (shown["consecutive_failures"], shown["disabled_reason"]) == (3, "connection_disabled:signature")

    assert put_credentials(invoke, futures_connection.id, futures_connection.account)["statusCode"] == 200
    enabled = invoke(
        "connection_enable", connection_event("connection_enable", futures_connection.id, USER_A, "/enable")
    )

    assert enabled["statusCode"] == 200, enabled["body"]
    body = body_of(enabled)
    assert (body["disabled_at"], body["consecutive_failures"], body["resumed_strategies"]) == (
        None,
        0,
        [strategy_id],
    )
    assert _strategy(strategy_id).status == "active"
    again = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))
    assert again["statusCode"] == 200, again["body"]


def test_enable_with_a_still_broken_key_keeps_the_connection_disabled(sim_env, invoke, futures_connection):
    """GIVEN a connection disabled by key failures WHEN enabled, key still broken THEN refused, still off."""
    strategy_id = _live_strategy(futures_connection.id)
    _break_key(futures_connection.id, futures_connection.account)
    for _ in range(3):
        invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))

    response = invoke(
        "connection_enable", connection_event("connection_enable", futures_connection.id, USER_A, "/enable")
    )

    assert response["statusCode"] == 403, response["body"]
    assert "stays disabled" in body_of(response)["error"]["message"]
    assert get_connection(USER_A, futures_connection.id).disabled_at is not None
    assert _strategy(strategy_id).status == "paused"


def test_delete_pauses_the_connections_strategies_and_says_so(sim_env, invoke, futures_connection):
    """GIVEN an active strategy on the connection WHEN it is deleted THEN paused in the same step."""
    strategy_id = _live_strategy(futures_connection.id)

    response = invoke(
        "connection_delete", connection_event("connection_delete", futures_connection.id, USER_A)
    )

    assert response["statusCode"] == 200, response["body"]
    assert body_of(response) == {
        "id": futures_connection.id,
        "deleted": True,
        "paused_strategies": [strategy_id],
        "orders_cancelled": [],
        "orders_left_open": [],
        "orders_cancelled_count": 0,
        "orders_left_open_count": 0,
        "orders_shortened": False,
        "orders_checked": True,
        "earlier_attempt_since": None,
    }
    stored = _strategy(strategy_id)
    assert (stored.status, stored.status_reason) == ("paused", "connection_deleted")


def _resume(invoke, strategy_id: str, status: str = "active") -> dict:
    """PATCH /strategies/{id} {"status": "active"} (or ``status``) as USER_A."""
    event = at_path(load_event("strategy_update"), f"/strategies/{strategy_id}", id=strategy_id)
    return invoke("strategy_update", with_user(with_body(event, {"status": status}), USER_A))


def _delete(invoke, connection_id: str) -> dict:
    return invoke("connection_delete", connection_event("connection_delete", connection_id, USER_A))


def test_a_strategy_resumed_right_after_the_delete_paused_it_is_refused(sim_env, invoke, futures_connection):
    """GIVEN a delete that has just paused the connection's strategies WHEN the user resumes one at that
    moment (run from a hook on the delete's next AWS call, its wind-down's read of unsettled orders) THEN
    409 naming connection_id (the connection is already marked as being deleted): the strategy stays
    paused, and the delete finishes."""
    strategy_id = _live_strategy(futures_connection.id)
    client, answers = aws_clients.dynamodb(), []

    def resume_first(params, **_: object) -> None:
        if params.get("IndexName") != UNSETTLED_INDEX:
            return
        client.meta.events.unregister("before-parameter-build.dynamodb.Query", resume_first)
        assert _strategy(strategy_id).status == "paused"
        answers.append(_resume(invoke, strategy_id))

    client.meta.events.register("before-parameter-build.dynamodb.Query", resume_first)
    try:
        response = _delete(invoke, futures_connection.id)
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb.Query", resume_first)

    assert response["statusCode"] == 200, response["body"]
    (resumed,) = answers
    assert resumed["statusCode"] == 409, resumed["body"]
    assert body_of(resumed)["error"]["field"] == "connection_id"
    stored = _strategy(strategy_id)
    assert (stored.status, stored.status_reason) == ("paused", "connection_deleted")
    assert get_connection(USER_A, futures_connection.id) is None


def _strategy_update(params: dict) -> dict:
    """The strategy's Update in a TransactWriteItems (a pause or resume with its event: the first item),
    or the parameters themselves (an UpdateItem)."""
    return params.get("TransactItems", [{}])[0].get("Update", params)


def _pausing(params: dict) -> bool:
    """True for the TransactWriteItems that pauses a strategy with its event (``pause_strategy``)."""
    return "status_reason" in _strategy_update(params).get("UpdateExpression", "")


def test_a_delete_that_failed_while_pausing_is_marked_and_a_second_delete_finishes_it(
    sim_env, invoke, futures_connection
):
    """GIVEN a delete whose pause of the strategies fails (AWS throttling the pause's TransactWriteItems)
    WHEN it answers a retryable 503 THEN the connection is already marked as being deleted (no strategy may be
    resumed on it), and a second DELETE pauses the strategy and deletes the connection."""
    strategy_id = _live_strategy(futures_connection.id)

    with aws_refusing("TransactWriteItems", "dynamodb", when=_pausing):
        assert _delete(invoke, futures_connection.id)["statusCode"] == 503

    assert get_connection(USER_A, futures_connection.id).deleting_since is not None
    assert _strategy(strategy_id).status == "active"
    second = _delete(invoke, futures_connection.id)
    assert second["statusCode"] == 200, second["body"]
    assert body_of(second)["paused_strategies"] == [strategy_id]
    assert get_connection(USER_A, futures_connection.id) is None
    assert _strategy(strategy_id).status == "paused"


def _switching_key(params: dict) -> bool:
    """True for the UpdateItem that points the connection at its new key (``replace_key``)."""
    return "api_key_masked" in params.get("UpdateExpression", "")


def _counting_a_key_failure(params: dict) -> bool:
    """True for the UpdateItem that counts a key failure on the connection (``add_key_failure``)."""
    return "ADD" in params.get("UpdateExpression", "")


def test_a_failed_switch_leaves_an_older_unversioned_connection_on_its_old_key(sim_env, invoke,
                                                                                futures_connection):
    """GIVEN a connection stored before versions WHEN PUT credentials fails at the item's switch to the new
    key (AWS throttling replace_key's UpdateItem, after the new secret version was stored) THEN a retryable
    503 and the connection still signs with its old key."""
    aws_clients.dynamodb().update_item(
        TableName=get_settings().data_table,
        Key={"pk": {"S": f"USER#{USER_A}"}, "sk": {"S": connection_sk(futures_connection.id)}},
        UpdateExpression="REMOVE credentials_version, binance_uid",  # stored before versions, and uids
    )

    with aws_refusing("UpdateItem", "dynamodb", when=_switching_key):
        response = put_credentials(invoke, futures_connection.id, second_key(sim_env))

    assert response["statusCode"] == 503
    stored = get_connection(USER_A, futures_connection.id)
    assert stored.credentials_version is not None
    assert connection_credentials(stored).api_key == futures_connection.account.api_key


# ---------------------------------------------------------------- what counts, what resets


def _listed(invoke, connection_id: str) -> dict:
    """The connection as GET /exchange-connections shows it."""
    listed = body_of(invoke("connection_list", with_user(load_event("connection_list"), USER_A)))
    return next(c for c in listed["connections"] if c["id"] == connection_id)


def test_testing_futures_on_a_key_without_futures_never_disables_the_connection(sim_env, invoke,
                                                                                 create_connection):
    """GIVEN a spot-only key with a paper strategy WHEN its futures are tested 3 times THEN each answers
    ok=false permission saying the key lacks Futures, and the connection stays on, its strategy active."""
    connection = create_connection(USER_A, "withdrawals-enabled")
    strategy_id = _live_strategy(connection.id, mode="paper")
    event = connection_event("futures_test", connection.id, USER_A, "/futures/test")

    answers = [invoke("futures_test", event) for _ in range(3)]

    assert [r["statusCode"] for r in answers] == [200, 200, 200]
    for answer in answers:
        body = body_of(answer)
        assert (body["ok"], body["category"]) == (False, "permission")
        assert "lacks the Futures permission" in body["message"]
    shown = _listed(invoke, connection.id)
    assert (shown["disabled_reason"], shown["consecutive_failures"]) == (None, 0)
    assert (_strategy(strategy_id).status, _strategy(strategy_id).status_reason) == ("active", None)


def test_enabling_futures_on_a_key_without_futures_is_refused_and_never_disables(sim_env, invoke,
                                                                                 create_connection):
    """GIVEN a read-only key with a paper strategy WHEN futures enable is tried 3 times THEN 403 each,
    saying the key lacks the Futures permission, and the connection stays on, its strategy active."""
    connection = create_connection(USER_A, "read-only")
    strategy_id = _live_strategy(connection.id, mode="paper")
    event = connection_event("futures_enable", connection.id, USER_A, "/futures/enable")

    answers = [invoke("futures_enable", event) for _ in range(3)]

    assert [r["statusCode"] for r in answers] == [403, 403, 403]
    error = body_of(answers[-1])["error"]
    assert error["category"] == "permission" and "lacks the Futures permission" in error["message"]
    shown = _listed(invoke, connection.id)
    assert (shown["disabled_reason"], shown["consecutive_failures"]) == (None, 0)
    assert shown["futures_enabled"] is False
    assert _strategy(strategy_id).status == "active"


def test_reading_positions_of_a_connection_without_futures_never_disables_it(sim_env, invoke,
                                                                             create_connection):
    """GIVEN a spot-only key, futures not enabled WHEN its positions are read 3 times THEN 403 each and
    the connection stays on (the key need not trade futures until futures are enabled)."""
    connection = create_connection(USER_A, "spot-only")
    event = connection_event("futures_positions", connection.id, USER_A, "/futures/positions")

    answers = [invoke("futures_positions", event) for _ in range(3)]

    assert [r["statusCode"] for r in answers] == [403, 403, 403]
    shown = _listed(invoke, connection.id)
    assert (shown["disabled_reason"], shown["consecutive_failures"]) == (None, 0)


def test_a_passing_spot_test_resets_the_key_failure_count(sim_env, invoke, futures_connection):
    """GIVEN two key failures counted WHEN the stored keys pass the spot test THEN the count is 0 again."""
    for _ in range(2):
        add_key_failure(USER_A, futures_connection.id)

    tested = invoke("connection_test_stored",
                    connection_event("connection_test_stored", futures_connection.id, USER_A, "/test"))

    assert tested["statusCode"] == 200 and body_of(tested)["ok"] is True, tested["body"]
    assert _listed(invoke, futures_connection.id)["consecutive_failures"] == 0


def test_a_balance_read_resets_the_key_failure_count(sim_env, invoke, futures_connection):
    """GIVEN two key failures counted WHEN the spot balance is read THEN the count is 0 again."""
    for _ in range(2):
        add_key_failure(USER_A, futures_connection.id)

    read = invoke("balance", connection_event("balance", futures_connection.id, USER_A, "/balance"))

    assert read["statusCode"] == 200, read["body"]
    assert _listed(invoke, futures_connection.id)["consecutive_failures"] == 0


def test_balance_reads_refused_three_times_disable_the_connection(sim_env, invoke, futures_connection):
    """GIVEN a live strategy, a broken key WHEN the balance is read 3 times THEN 403 each, the connection
    disabled with its reason and the strategy paused (every key can read spot: a refusal is the key's)."""
    strategy_id = _live_strategy(futures_connection.id)
    _break_key(futures_connection.id, futures_connection.account)
    event = connection_event("balance", futures_connection.id, USER_A, "/balance")

    answers = [invoke("balance", event) for _ in range(3)]

    assert [r["statusCode"] for r in answers] == [403, 403, 403]
    assert _listed(invoke, futures_connection.id)["disabled_reason"] == "connection_disabled:signature"
    assert _strategy(strategy_id).status_reason == "connection_disabled:signature"


def test_the_read_that_disables_the_connection_answers_its_refusal_when_pausing_fails(
    sim_env, invoke, futures_connection
):
    """GIVEN a live strategy, a broken key and DynamoDB throttling the pause of the connection's strategies
    WHEN the balance is read 3 times THEN 403 each (the read's own answer, never a 500 for the pause), the
    connection disabled with its reason and the strategy left active (the runner's next turn pauses it)."""
    strategy_id = _live_strategy(futures_connection.id)
    _break_key(futures_connection.id, futures_connection.account)
    event = connection_event("balance", futures_connection.id, USER_A, "/balance")

    with aws_refusing("TransactWriteItems", "dynamodb", when=_pausing):
        answers = [invoke("balance", event) for _ in range(3)]

    assert [r["statusCode"] for r in answers] == [403, 403, 403]
    assert body_of(answers[-1])["error"]["category"] == "signature"
    assert _listed(invoke, futures_connection.id)["disabled_reason"] == "connection_disabled:signature"
    assert _strategy(strategy_id).status == "active"


def test_a_strategy_the_user_pauses_while_the_disable_pauses_keeps_its_reason_and_stays_paused(
    sim_env, invoke, futures_connection
):
    """GIVEN a live strategy and a broken key WHEN the user pauses the strategy just as the third refused
    balance read disables the connection and pauses it (from a hook on the pause's TransactWriteItems) THEN
    the pause leaves it alone: "paused by user" kept, and the enable does not resume it (before: its reason
    became connection_disabled:signature and the enable resumed it against the user's pause)."""
    strategy_id = _live_strategy(futures_connection.id)
    _break_key(futures_connection.id, futures_connection.account)
    event = connection_event("balance", futures_connection.id, USER_A, "/balance")
    client, answers = aws_clients.dynamodb(), []

    def user_pauses_first(params, **_: object) -> None:
        if not _pausing(params) or "connection_disabled" not in str(_strategy_update(params)):
            return
        client.meta.events.unregister("before-parameter-build.dynamodb.TransactWriteItems", user_pauses_first)
        answers.append(_resume(invoke, strategy_id, status="paused"))

    for _ in range(2):
        invoke("balance", event)
    client.meta.events.register("before-parameter-build.dynamodb.TransactWriteItems", user_pauses_first)
    try:
        assert invoke("balance", event)["statusCode"] == 403
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb.TransactWriteItems", user_pauses_first)

    assert [a["statusCode"] for a in answers] == [200]
    stored = _strategy(strategy_id)
    assert (stored.status, stored.status_reason) == ("paused", "paused by user")
    assert put_credentials(invoke, futures_connection.id, futures_connection.account)["statusCode"] == 200
    enabled = invoke(
        "connection_enable", connection_event("connection_enable", futures_connection.id, USER_A, "/enable")
    )
    assert enabled["statusCode"] == 200, enabled["body"]
    assert body_of(enabled)["resumed_strategies"] == []
    assert _strategy(strategy_id).status == "paused"


DISABLED = "connection_disabled:signature"
_UPDATE = "before-parameter-build.dynamodb.TransactWriteItems"


# Each pause or resume of a strategy waits for this many to be in flight at once.
WRITES_IN_FLIGHT = 5
# The connection's strategies in the tests of those writes: a multiple of WRITES_IN_FLIGHT, whose barrier
# lets them through in full groups.
MANY_STRATEGIES = 10


def _strategy_read(params: dict) -> str | None:
    """The subject of ``dynamodb_requests``: the id of the strategy a GetItem reads, None for any other."""
    sort_key = params.get("Key", {}).get("sk", {}).get("S", "")
    return sort_key.removeprefix("STRAT#") if sort_key.startswith("STRAT#") else None


def _status_written(status: str):
    """The subject of ``dynamodb_requests``: the id of the strategy a write sets to ``status`` (a pause
    ``pause_strategy``, a resume by the enable, each with its event), None for any other write."""

    def strategy_id(params: dict) -> str | None:
        update = _strategy_update(params)
        if update.get("ExpressionAttributeValues", {}).get(":status") != {"S": status}:
            return None
        return update["Key"]["sk"]["S"].removeprefix("STRAT#")

    return strategy_id


def _disabled_with_two_paused_strategies(connection_id: str) -> set[str]:
    """GIVEN the connection disabled by key failures and its two live strategies paused by the disable."""
    sids = {_live_strategy(connection_id) for _ in range(2)}
    disable_connection(USER_A, connection_id, DISABLED)
    assert set(pause_connection_strategies(USER_A, connection_id, DISABLED)) == sids
    return sids


def _enable_racing(invoke, connection_id: str, race) -> tuple[dict, str]:
    """POST .../enable with ``race(strategy_id)`` run just before the first resume's write (a hook on that
    TransactWriteItems; the resumes are sent from several threads at once, only the first one sent races): the
    enable's answer and the id of the strategy raced."""
    client, raced, first = aws_clients.dynamodb(), [], threading.Lock()

    def race_first(params, **_: object) -> None:
        if _status_written("active")(params) is None:
            return
        with first:
            if raced:
                return
            client.meta.events.unregister(_UPDATE, race_first)
            raced.append(_status_written("active")(params))
        race(raced[0])

    client.meta.events.register(_UPDATE, race_first)
    try:
        answer = invoke("connection_enable", connection_event("connection_enable", connection_id, USER_A,
                                                              "/enable"))
    finally:
        client.meta.events.unregister(_UPDATE, race_first)
    assert len(raced) == 1
    return answer, raced[0]


def test_a_strategy_deleted_while_the_enable_resumes_is_skipped_and_the_enable_answers(
    sim_env, invoke, futures_connection
):
    """GIVEN a disabled connection whose two strategies its disable paused WHEN the user deletes one just
    before the enable resumes it THEN the enable answers 200 listing the other one, resumed, the connection
    enabled (before: a 404 "strategy not found" part way, the connection enabled, the other left paused)."""
    sids = _disabled_with_two_paused_strategies(futures_connection.id)

    def user_deletes(strategy_id: str) -> None:
        event = at_path(load_event("strategy_delete"), f"/strategies/{strategy_id}", id=strategy_id)
        assert invoke("strategy_delete", with_user(event, USER_A))["statusCode"] == 204

    enabled, deleted = _enable_racing(invoke, futures_connection.id, user_deletes)

    assert enabled["statusCode"] == 200, enabled["body"]
    (left,) = sids - {deleted}
    assert (body_of(enabled)["disabled_at"], body_of(enabled)["resumed_strategies"]) == (None, [left])
    assert _strategy(left).status == "active"
    assert strategy_store.get_strategy(USER_A, deleted, consistent=True) is None
    assert get_connection(USER_A, futures_connection.id).disabled_at is None


def test_a_strategy_the_user_pauses_while_the_enable_resumes_keeps_the_users_pause(
    sim_env, invoke, futures_connection
):
    """GIVEN a disabled connection whose two strategies its disable paused WHEN the user pauses one (PATCH
    status paused) just before the enable resumes it THEN it stays "paused by user" and the enable lists the
    other one only (before: resumed over the user's pause)."""
    sids = _disabled_with_two_paused_strategies(futures_connection.id)

    def user_pauses(strategy_id: str) -> None:
        assert _resume(invoke, strategy_id, status="paused")["statusCode"] == 200

    enabled, paused = _enable_racing(invoke, futures_connection.id, user_pauses)

    assert enabled["statusCode"] == 200, enabled["body"]
    (left,) = sids - {paused}
    assert body_of(enabled)["resumed_strategies"] == [left]
    stored = _strategy(paused)
    assert (stored.status, stored.status_reason) == ("paused", "paused by user")
    assert _strategy(left).status == "active"


def test_a_strategy_edited_while_the_enable_resumes_stays_paused_for_the_user_to_resume(
    sim_env, invoke, futures_connection
):
    """GIVEN a disabled connection whose two live strategies its disable paused WHEN the user raises one's
    leverage above the connection's max_leverage (allowed while paused) just before the enable resumes it
    THEN it stays paused, not in the enable's list: the enable checked the leverage it read (before: a live
    strategy resumed above max_leverage, which a resume by the user refuses)."""
    sids = _disabled_with_two_paused_strategies(futures_connection.id)

    def user_raises_leverage(strategy_id: str) -> None:
        event = at_path(load_event("strategy_update"), f"/strategies/{strategy_id}", id=strategy_id)
        edited = invoke("strategy_update", with_user(with_body(event, {"leverage": 50}), USER_A))
        assert edited["statusCode"] == 200, edited["body"]

    enabled, edited = _enable_racing(invoke, futures_connection.id, user_raises_leverage)

    assert enabled["statusCode"] == 200, enabled["body"]
    (left,) = sids - {edited}
    assert body_of(enabled)["resumed_strategies"] == [left]
    stored = _strategy(edited)
    assert (stored.status, stored.status_reason, stored.settings.leverage) == ("paused", DISABLED, 50)
    assert _resume(invoke, edited)["statusCode"] == 422


def _many_live_strategies(connection_id: str) -> list[str]:
    """GIVEN MANY_STRATEGIES active live strategies on the connection: their ids, oldest first."""
    made = {_live_strategy(connection_id) for _ in range(MANY_STRATEGIES)}
    return [s.strategy_id for s in strategy_store.list_strategies(USER_A) if s.strategy_id in made]


def test_the_delete_pauses_the_connections_strategies_at_once(sim_env, invoke, futures_connection):
    """GIVEN MANY_STRATEGIES active strategies on the connection WHEN it is deleted THEN their pauses are in
    flight WRITES_IN_FLIGHT at once, one each, and every one is paused "connection_deleted", listed oldest
    first (before: one UpdateItem after another, ~5-10 ms each on DynamoDB: a few thousand ran the 20 s
    delete out of time half way, a 5xx with some paused; here the first waited alone and broke the barrier,
    a 500)."""
    sids = _many_live_strategies(futures_connection.id)

    with dynamodb_requests("TransactWriteItems", _status_written("paused"), WRITES_IN_FLIGHT) as sent:
        response = _delete(invoke, futures_connection.id)

    assert response["statusCode"] == 200, response["body"][:300]
    assert body_of(response)["paused_strategies"] == sids
    assert sorted(sent) == sorted(sids)
    assert {(s.status, s.status_reason) for s in map(_strategy, sids)} == {("paused", "connection_deleted")}
    assert get_connection(USER_A, futures_connection.id) is None


def test_the_disable_pauses_and_the_enable_resumes_the_connections_strategies_at_once(
    sim_env, invoke, futures_connection
):
    """GIVEN MANY_STRATEGIES active strategies on the connection, one more the user paused, and a broken key
    WHEN the third balance read refused disables the connection, and later the fixed key enables it THEN
    the pauses, then the resumes, are in flight WRITES_IN_FLIGHT at once, one each: the read answers its
    403 with every strategy paused for the disable, and the enable lists them all resumed oldest first (one
    write each, none read back), the user's pause kept (before: one write after another, thousands past the
    20 s timeout; here the first pause waited alone, broke the barrier and the read answered 500)."""
    sids = _many_live_strategies(futures_connection.id)
    users = _live_strategy(futures_connection.id)
    assert _resume(invoke, users, status="paused")["statusCode"] == 200
    _break_key(futures_connection.id, futures_connection.account)
    event = connection_event("balance", futures_connection.id, USER_A, "/balance")
    for _ in range(2):
        invoke("balance", event)

    with dynamodb_requests("TransactWriteItems", _status_written("paused"), WRITES_IN_FLIGHT) as paused:
        refused = invoke("balance", event)

    assert refused["statusCode"] == 403, refused["body"][:300]
    assert sorted(paused) == sorted(sids)
    assert {(s.status, s.status_reason) for s in map(_strategy, sids)} == {("paused", DISABLED)}
    assert put_credentials(invoke, futures_connection.id, futures_connection.account)["statusCode"] == 200
    with (dynamodb_requests("TransactWriteItems", _status_written("active"), WRITES_IN_FLIGHT) as resumed,
          dynamodb_requests("GetItem", _strategy_read) as read_back):
        enabled = invoke("connection_enable",
                         connection_event("connection_enable", futures_connection.id, USER_A, "/enable"))

    assert enabled["statusCode"] == 200, enabled["body"][:300]
    assert body_of(enabled)["resumed_strategies"] == sids
    assert sorted(resumed) == sorted(sids)
    assert read_back == []  # one write per resume: the resumed strategy is not read back
    assert {(s.status, s.status_reason) for s in map(_strategy, sids)} == {("active", None)}
    assert (_strategy(users).status, _strategy(users).status_reason) == ("paused", "paused by user")


def test_an_enable_whose_resumes_failed_part_way_answers_503_and_a_repeat_resumes_the_rest(
    sim_env, invoke, futures_connection
):
    """GIVEN a disabled connection whose MANY_STRATEGIES strategies its disable paused, and DynamoDB
    throttling the resumes of the last 3 past botocore's retries WHEN it is enabled THEN a retryable 503,
    those 3 still paused for the disable; a repeated enable resumes exactly them, all end active."""
    sids = _many_live_strategies(futures_connection.id)
    disable_connection(USER_A, futures_connection.id, DISABLED)
    assert pause_connection_strategies(USER_A, futures_connection.id, DISABLED) == sids
    refused, resuming = set(sids[-3:]), _status_written("active")
    event = connection_event("connection_enable", futures_connection.id, USER_A, "/enable")

    with aws_refusing("TransactWriteItems", "dynamodb", when=lambda params: resuming(params) in refused):
        failed = invoke("connection_enable", event)

    assert failed["statusCode"] == 503, failed["body"][:300]
    assert body_of(failed)["error"]["retryable"] is True
    assert {(s.status, s.status_reason) for s in map(_strategy, refused)} == {("paused", DISABLED)}
    again = invoke("connection_enable", event)
    assert again["statusCode"] == 200, again["body"][:300]
    assert body_of(again)["resumed_strategies"] == sids[-3:]
    assert {(s.status, s.status_reason) for s in map(_strategy, sids)} == {("active", None)}


def test_a_connection_whose_delete_stopped_half_way_switches_no_position_mode_on_binance(
    sim_env, invoke, futures_connection
):
    """GIVEN a futures connection whose DELETE failed at the secret (marked, orders wound down) WHEN PATCH
    asks for hedge mode THEN 409 naming connection_id, and the Binance account is left in one-way mode
    (before: 200, the user's account switched by a connection being deleted)."""
    with aws_refusing("DeleteSecret", "secrets-manager"):
        assert _delete(invoke, futures_connection.id)["statusCode"] == 503
    patch = with_body(connection_event("connection_update", futures_connection.id, USER_A),
                      {"position_mode": "hedge"})

    response = invoke("connection_update", patch)

    assert response["statusCode"] == 409, response["body"]
    assert body_of(response)["error"]["field"] == "connection_id"
    assert sim_env.state.futures.state_for(futures_connection.account, time.time() * 1000).dual_side is False
    assert get_connection(USER_A, futures_connection.id).position_mode == "one_way"


def test_an_order_refused_for_its_key_while_the_connection_is_deleted_answers_the_refusal(
    sim_env, invoke, futures_connection
):
    """GIVEN a key Binance refuses, and a DELETE that runs to its end just as an order's refusal comes back
    WHEN the order's key failure is counted on the connection, gone by then THEN the order answers Binance's
    refusal (403 signature) and its record says REJECTED (before: 404 "connection not found", the record
    left PENDING: the failure count's write raised before the order's outcome was recorded)."""
    _break_key(futures_connection.id, futures_connection.account)
    client = aws_clients.dynamodb()

    def delete_first(params, **_: object) -> None:
        if "ADD" not in params.get("UpdateExpression", ""):
            return
        client.meta.events.unregister("before-parameter-build.dynamodb.UpdateItem", delete_first)
        assert _delete(invoke, futures_connection.id)["statusCode"] == 200

    key = new_key()
    client.meta.events.register("before-parameter-build.dynamodb.UpdateItem", delete_first)
    try:
        response = invoke("futures_order", order_event(order_body(futures_connection.id), key=key))
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb.UpdateItem", delete_first)

    assert get_connection(USER_A, futures_connection.id) is None
    assert response["statusCode"] == 403, response["body"]
    assert body_of(response)["error"]["category"] == "signature"
    (record,) = [item for item in client.scan(TableName=get_settings().data_table)["Items"]
                 if "client_order_id" in item]
    assert record["status"]["S"] == "REJECTED"


def test_an_order_refused_for_its_key_is_recorded_when_counting_the_failure_fails(
    sim_env, invoke, futures_connection
):
    """GIVEN a key Binance refuses and DynamoDB failing the key-failure count's UpdateItem (throttled)
    WHEN an order is sent THEN it answers Binance's refusal (403 signature) and its record says REJECTED
    (before: a 500 for the throttling, the record left PENDING for good: the count raised before the
    order's outcome was recorded)."""
    _break_key(futures_connection.id, futures_connection.account)
    client = aws_clients.dynamodb()

    with aws_refusing("UpdateItem", "dynamodb", when=_counting_a_key_failure):
        response = invoke("futures_order", order_event(order_body(futures_connection.id), key=new_key()))

    assert response["statusCode"] == 403, response["body"]
    assert body_of(response)["error"]["category"] == "signature"
    (record,) = [item for item in client.scan(TableName=get_settings().data_table)["Items"]
                 if "client_order_id" in item]
    assert record["status"]["S"] == "REJECTED"
    assert get_connection(USER_A, futures_connection.id).consecutive_failures == 0


def test_futures_are_not_enabled_on_a_connection_whose_delete_stopped_half_way(
    sim_env, invoke, create_connection
):
    """GIVEN a connection (futures off) whose DELETE failed at the secret WHEN futures are enabled on it in
    hedge mode THEN 409 naming connection_id: futures stay off and the Binance account stays one-way
    (before: 200, futures switched on and the account's position mode switched for a dying connection)."""
    connection = create_connection(USER_A, "futures-full")
    with aws_refusing("DeleteSecret", "secrets-manager"):
        assert _delete(invoke, connection.id)["statusCode"] == 503
    event = with_body(connection_event("futures_enable", connection.id, USER_A, "/futures/enable"),
                      {"position_mode": "hedge"})
    event["headers"]["content-type"] = "application/json"

    response = invoke("futures_enable", event)

    assert response["statusCode"] == 409, response["body"]
    assert body_of(response)["error"]["field"] == "connection_id"
    assert sim_env.state.futures.state_for(connection.account, time.time() * 1000).dual_side is False
    assert get_connection(USER_A, connection.id).futures_enabled is False


def _kinds(strategy_id: str) -> list[tuple[str, dict]]:
    """The strategy's events, newest first, as (kind, details)."""
    return [(e.kind, e.details) for e in list_events(strategy_id, 20).events]


def test_the_enable_writes_a_resumed_event_for_each_strategy_it_resumes(sim_env, invoke, futures_connection):
    """GIVEN a disabled connection whose two strategies its disable paused, and one the user paused WHEN the
    connection is enabled THEN each strategy the enable resumed has its resumed event saying the enable
    resumed it, as the user's resume (PATCH) writes one, so GET /strategies/{id}/events tells why it runs
    again; the user's paused strategy has only the user's event (before: the enable wrote none)."""
    users = _live_strategy(futures_connection.id)
    assert _resume(invoke, users, status="paused")["statusCode"] == 200
    sids = _disabled_with_two_paused_strategies(futures_connection.id)

    enabled = invoke("connection_enable",
                     connection_event("connection_enable", futures_connection.id, USER_A, "/enable"))

    assert enabled["statusCode"] == 200, enabled["body"][:300]
    assert sorted(body_of(enabled)["resumed_strategies"]) == sorted(sids)
    for sid in sids:
        (kind, details), = _kinds(sid)
        assert (kind, details["by"]) == ("resumed", "connection_enable")
        assert details["message"] == (f"Resumed: its connection was enabled again "
                                      f"(POST /exchange-connections/{futures_connection.id}/enable).")
    assert _kinds(users) == [("paused", {"by": "user"})]


def test_the_delete_writes_each_paused_strategys_paused_event(sim_env, invoke, futures_connection):
    """GIVEN two active strategies on the connection WHEN it is deleted THEN each has its paused event
    (reason connection_deleted) saying why it stopped (before: none was written)."""
    sids = [_live_strategy(futures_connection.id) for _ in range(2)]

    assert _delete(invoke, futures_connection.id)["statusCode"] == 200

    for sid in sids:
        (kind, details), = _kinds(sid)
        assert (kind, details["reason"]) == ("paused", "connection_deleted")
        assert "deleted" in details["message"]



def _order_cancel(invoke, connection_id: str):
    """DELETE /futures/order/{id} of a LIMIT placed while the key still worked."""
    placed = invoke("futures_order", order_event(order_body(connection_id), key=new_key()))
    assert placed["statusCode"] == 200, placed["body"]
    coid = body_of(placed)["client_order_id"]
    path = f"/futures/order/{coid}"
    event = with_user(at_path(load_event("futures_order_cancel"), path, clientOrderId=coid), USER_A)
    return lambda: event


def _route(package: str, suffix: str):
    """The connection route's event; a position close with a new Idempotency-Key each time."""
    def calls(invoke, connection_id: str):
        def event() -> dict:
            made = connection_event(package, connection_id, USER_A, suffix)
            if package == "futures_position_close":
                made["pathParameters"]["symbol"] = "BTCUSDT"
                made["headers"]["idempotency-key"] = new_key()
            return made
        return event
    return calls


# Each function whose calls count the key's failures (``note_key_outcome``, ``note_futures_outcome``), the
# strategy worker's aside (tests/integration/runner): (invoke, connection id) -> the event of its next
# call, prepared while the key works.
KEY_COUNTING_CALLS = {
    "balance": _route("balance", "/balance"),
    "futures_enable": _route("futures_enable", "/futures/enable"),
    "futures_positions": _route("futures_positions", "/futures/positions"),
    "futures_open_orders": _route("futures_open_orders", "/futures/open-orders"),
    "futures_open_orders_cancel": _route("futures_open_orders_cancel", "/futures/open-orders"),
    "futures_position_close": _route("futures_position_close", "/futures/positions/BTCUSDT/close"),
    "futures_order": lambda invoke, cid: lambda: order_event(order_body(cid), key=new_key()),
    "futures_order_cancel": _order_cancel,
}


@pytest.mark.parametrize("package", sorted(KEY_COUNTING_CALLS))
def test_the_disable_writes_each_paused_strategys_paused_event(sim_env, invoke, iam, futures_connection,
                                                               package):
    """GIVEN two live strategies and a key Binance refuses WHEN a call of ``package`` fails three times
    THEN the connection is disabled and each strategy has its paused event (reason connection_disabled:
    signature, what to do), written under that function's own policy (before: none was written, and most
    of these functions might not put items), so GET /strategies/{id}/events tells why it stopped."""
    sids = [_live_strategy(futures_connection.id) for _ in range(2)]
    next_event = KEY_COUNTING_CALLS[package](invoke, futures_connection.id)
    _break_key(futures_connection.id, futures_connection.account)

    answers = [invoke(package, next_event())["statusCode"] for _ in range(3)]

    assert answers == [403, 403, 403]
    assert get_connection(USER_A, futures_connection.id).disabled_reason == DISABLED
    for sid in sids:
        (kind, details), = _kinds(sid)
        assert (kind, details["reason"]) == ("paused", DISABLED)
        assert details["message"] == (
            "Paused: its connection was disabled after 3 key failures in a row (signature); fix the key, "
            f"then enable the connection (POST /exchange-connections/{futures_connection.id}/enable).")
    assert iam.denied == [], iam.report()


def _puts_an_event(params: dict) -> bool:
    """True for a DynamoDB write that puts an event item (a PutItem, or a TransactWriteItems with one)."""
    puts = [params.get("Item")] + [w.get("Put", {}).get("Item") for w in params.get("TransactItems", [])]
    return any(item and item["sk"]["S"].startswith("EVT#") for item in puts)


@contextmanager
def _event_writes_refused() -> Iterator[None]:
    """DynamoDB refusing (throttled) every write that carries an event, as a crash or a timeout between a
    state write and its event would leave it."""
    with aws_refusing("PutItem", "dynamodb", when=_puts_an_event), \
            aws_refusing("TransactWriteItems", "dynamodb", when=_puts_an_event):
        yield


def _state_and_event_together(sid: str, status: str, kind: str) -> None:
    """THEN the strategy is ``status`` with its ``kind`` event, or as it was with no such event: never one
    without the other."""
    changed = _strategy(sid).status == status
    assert changed == (kind in [k for k, _ in _kinds(sid)]), (_strategy(sid).status, _kinds(sid))


def test_a_patch_whose_event_cannot_be_written_changes_nothing(sim_env, invoke, futures_connection):
    """GIVEN an active strategy WHEN the user pauses it (PATCH) and its paused event cannot be written THEN a
    retryable 5xx and the strategy still active with no event; the repeat pauses it with its event (before:
    paused with no event saying why, the event write coming after the state write)."""
    sid = _live_strategy(futures_connection.id)

    with _event_writes_refused():
        refused = _resume(invoke, sid, status="paused")

    assert refused["statusCode"] >= 500, refused["body"]
    assert (_strategy(sid).status, _kinds(sid)) == ("active", [])
    assert _resume(invoke, sid, status="paused")["statusCode"] == 200
    assert (_strategy(sid).status, _kinds(sid)) == ("paused", [("paused", {"by": "user"})])


def test_the_disable_pauses_no_strategy_whose_paused_event_cannot_be_written(sim_env, invoke,
                                                                             futures_connection):
    """GIVEN two live strategies and a key Binance refuses WHEN the third refused balance read disables the
    connection while the paused events cannot be written THEN the read answers its 403, the connection is
    disabled, and each strategy is paused with its event or left active without one for its next runner
    turn to pause (before: both paused with no event saying why)."""
    sids = [_live_strategy(futures_connection.id) for _ in range(2)]
    _break_key(futures_connection.id, futures_connection.account)
    event = connection_event("balance", futures_connection.id, USER_A, "/balance")
    for _ in range(2):
        invoke("balance", event)

    with _event_writes_refused():
        refused = invoke("balance", event)

    assert refused["statusCode"] == 403, refused["body"][:300]
    assert get_connection(USER_A, futures_connection.id).disabled_reason == DISABLED
    for sid in sids:
        _state_and_event_together(sid, "paused", "paused")


def test_the_enable_resumes_no_strategy_whose_resumed_event_cannot_be_written(sim_env, invoke,
                                                                              futures_connection):
    """GIVEN a disabled connection whose two strategies its disable paused WHEN it is enabled while the
    resumed events cannot be written THEN each strategy is resumed with its event or left paused without
    one, and a repeated enable resumes them with their events (before: resumed with no event, the event
    write coming after the resume)."""
    sids = _disabled_with_two_paused_strategies(futures_connection.id)
    event = connection_event("connection_enable", futures_connection.id, USER_A, "/enable")

    with _event_writes_refused():
        invoke("connection_enable", event)

    for sid in sids:
        _state_and_event_together(sid, "active", "resumed")
    assert invoke("connection_enable", event)["statusCode"] == 200
    for sid in sids:
        assert (_strategy(sid).status, [k for k, _ in _kinds(sid)]) == ("active", ["resumed"])


def _racing_a_new_key(sim_env, invoke, connection_id: str, calls: list[Callable[[], dict]]) -> list[dict]:
    """``calls`` each begun (its connection read, key version named) before the connection's key is replaced
    and the key they sign with revoked on Binance, as an owner replacing a leaked key does: each later call
    starts inside the previous one's fetch of that key (another container), and the last one's fetch
    replaces the key first. Their answers, the first call's first."""
    old = second_key(sim_env)
    assert put_credentials(invoke, connection_id, old)["statusCode"] == 200
    old_version = get_connection(USER_A, connection_id).credentials_version
    clear_cache()  # each call fetches the key version its connection read names
    client, hook_event = aws_clients.secretsmanager(), "before-parameter-build.secrets-manager.GetSecretValue"
    answers: list[dict] = []
    fetches: list[None] = []

    def hook(params, **_: object) -> None:
        if params.get("VersionId") != old_version:
            return
        fetches.append(None)
        if len(fetches) < len(calls):
            answers.append(calls[len(fetches)]())
            return
        client.meta.events.unregister(hook_event, hook)
        assert put_credentials(invoke, connection_id, second_key(sim_env))["statusCode"] == 200
        sim_env.revoke_key(old.api_key)

    client.meta.events.register(hook_event, hook)
    try:
        first = calls[0]()
    finally:
        client.meta.events.unregister(hook_event, hook)
    return [first, *reversed(answers)]


def test_refusals_of_a_replaced_key_in_flight_never_disable_the_connection(sim_env, invoke,
                                                                          futures_connection):
    """Three balance reads signed with the key just replaced (and revoked on Binance) are refused, 403 each,
    but count nothing against the connection's new key: not disabled, count 0, its strategy still active
    (before: the third refusal of the old key disabled the connection and paused the strategy, the new key
    working)."""
    strategy_id = _live_strategy(futures_connection.id)
    event = connection_event("balance", futures_connection.id, USER_A, "/balance")

    def in_another_container() -> dict:
        return fresh_handler("balance")(event, LambdaContext(function_name="balance"))

    calls = [lambda: invoke("balance", event), in_another_container, in_another_container]

    answers = _racing_a_new_key(sim_env, invoke, futures_connection.id, calls)

    assert [answer["statusCode"] for answer in answers] == [403, 403, 403]
    after = get_connection(USER_A, futures_connection.id)
    assert (after.disabled_at, after.consecutive_failures) == (None, 0)
    assert _strategy(strategy_id).status == "active"
    read = invoke("balance", connection_event("balance", futures_connection.id, USER_A, "/balance"))
    assert read["statusCode"] == 200, read["body"]


def _says_test_again(answer: dict, again: str = "test again") -> None:
    """The answer is the 409 of a test (or ``again``'s route) whose key was replaced while it ran: retryable,
    naming connection_id, saying to ``again``."""
    assert answer["statusCode"] == 409, answer["body"]
    error = body_of(answer)["error"]
    assert (error["field"], error["retryable"]) == ("connection_id", True), error
    assert again in error["message"]


def _passes(answer: dict) -> None:
    """The answer is a test that passed."""
    assert answer["statusCode"] == 200 and body_of(answer)["ok"] is True, answer["body"]


def test_a_test_of_a_key_replaced_meanwhile_is_not_recorded_as_the_new_keys(sim_env, invoke,
                                                                            futures_connection):
    """POST .../test whose stored key is replaced (and revoked on Binance) while it runs: a retryable 409
    naming connection_id saying to test again, the new key's passing test kept as the connection's last_test
    (before: 200 with the old key's failure, recorded as the connection's: a working connection shown
    failing)."""
    event = connection_event("connection_test_stored", futures_connection.id, USER_A, "/test")

    [answer] = _racing_a_new_key(sim_env, invoke, futures_connection.id,
                                 [lambda: invoke("connection_test_stored", event)])

    _says_test_again(answer)
    assert get_connection(USER_A, futures_connection.id).last_test["ok"] is True
    _passes(invoke("connection_test_stored", event))


def _disabling(params: dict) -> bool:
    """True for the UpdateItem that disables the connection (``disable_connection``)."""
    return ":disabled_reason" in params.get("ExpressionAttributeValues", {})


def _replacing_the_key_before(invoke, connection_id: str, new, write: Callable[[dict], bool],
                              call: Callable[[], dict]) -> dict:
    """``call``'s answer, the connection's key replaced by ``new``'s (PUT .../credentials) just before the
    first UpdateItem ``write`` accepts (a hook on that request)."""
    client, hook_event = aws_clients.dynamodb(), "before-parameter-build.dynamodb.UpdateItem"

    def replace_first(params, **_: object) -> None:
        if write(params):
            client.meta.events.unregister(hook_event, replace_first)
            assert put_credentials(invoke, connection_id, new)["statusCode"] == 200

    client.meta.events.register(hook_event, replace_first)
    try:
        return call()
    finally:
        client.meta.events.unregister(hook_event, replace_first)


def _route_racing_a_new_key(invoke, function: str, suffix: str, connection_id: str, new,
                            write: Callable[[dict], bool]) -> tuple[dict, dict]:
    """The event of ``function``'s route on the connection (``suffix`` after its path), and its answer, the
    key replaced by ``new``'s just before the first UpdateItem ``write`` accepts."""
    event = connection_event(function, connection_id, USER_A, suffix)
    answer = _replacing_the_key_before(invoke, connection_id, new, write, lambda: invoke(function, event))
    return event, answer


def test_a_key_replaced_between_the_third_refusal_and_the_disable_keeps_the_connection_on(
        sim_env, invoke, futures_connection):
    """A third refusal of a revoked key, counted, whose key is replaced just before its disable is written:
    403, but the connection stays on with its new, working key and its strategy active (before: disabled
    and the strategy paused, the new key working)."""
    strategy_id = _live_strategy(futures_connection.id)
    old = second_key(sim_env)
    assert put_credentials(invoke, futures_connection.id, old)["statusCode"] == 200
    sim_env.revoke_key(old.api_key)
    event = connection_event("balance", futures_connection.id, USER_A, "/balance")
    assert [invoke("balance", event)["statusCode"] for _ in range(2)] == [403, 403]

    third = _replacing_the_key_before(invoke, futures_connection.id, second_key(sim_env), _disabling,
                                      lambda: invoke("balance", event))

    assert third["statusCode"] == 403, third["body"]
    after = get_connection(USER_A, futures_connection.id)
    assert (after.disabled_at, after.consecutive_failures) == (None, 0)
    assert _strategy(strategy_id).status == "active"
    read = invoke("balance", event)
    assert read["statusCode"] == 200, read["body"]


def test_a_success_of_a_replaced_key_in_flight_never_resets_the_new_keys_count(sim_env, invoke,
                                                                                futures_connection):
    """A balance read signed with the old key (one failure counted), answered 200 after the key was
    replaced and the new key refused twice: the new key's count stays 2, and its third refusal disables
    the connection (before: the old key's success reset the new key's count to 0)."""
    old = second_key(sim_env)
    assert put_credentials(invoke, futures_connection.id, old)["statusCode"] == 200
    old_version = get_connection(USER_A, futures_connection.id).credentials_version
    add_key_failure(USER_A, futures_connection.id)
    clear_cache()  # the read fetches the key version its connection read names
    event = connection_event("balance", futures_connection.id, USER_A, "/balance")
    client, hook_event = aws_clients.secretsmanager(), "before-parameter-build.secrets-manager.GetSecretValue"
    refused: list[int] = []

    def replace_and_refuse(params, **_: object) -> None:
        if params.get("VersionId") != old_version:
            return
        client.meta.events.unregister(hook_event, replace_and_refuse)
        new = second_key(sim_env)
        assert put_credentials(invoke, futures_connection.id, new)["statusCode"] == 200
        sim_env.revoke_key(new.api_key)
        for _ in range(2):  # in another container, signed with the new key
            answer = fresh_handler("balance")(event, LambdaContext(function_name="balance"))
            refused.append(answer["statusCode"])

    client.meta.events.register(hook_event, replace_and_refuse)
    try:
        stale = invoke("balance", event)
    finally:
        client.meta.events.unregister(hook_event, replace_and_refuse)

    assert (stale["statusCode"], refused) == (200, [403, 403]), stale["body"]
    assert get_connection(USER_A, futures_connection.id).consecutive_failures == 2
    assert invoke("balance", event)["statusCode"] == 403
    assert get_connection(USER_A, futures_connection.id).disabled_at is not None


def test_a_futures_test_of_a_key_replaced_meanwhile_is_not_recorded_as_the_new_keys(sim_env, invoke,
                                                                                    futures_connection):
    """POST .../futures/test whose stored key is replaced (and revoked on Binance) while it runs: a retryable
    409 naming connection_id saying to test again, the new key's passing futures test (its replacement's)
    kept as the connection's futures_last_test (before: 200 with the old key's failure, recorded as the
    connection's futures_last_test)."""
    event = connection_event("futures_test", futures_connection.id, USER_A, "/futures/test")

    [answer] = _racing_a_new_key(sim_env, invoke, futures_connection.id,
                                 [lambda: invoke("futures_test", event)])

    _says_test_again(answer)
    assert get_connection(USER_A, futures_connection.id).futures_last_test["ok"] is True
    _passes(invoke("futures_test", event))


def _enabling_futures(params: dict) -> bool:
    """True for the UpdateItem that switches futures on (``set_futures_enabled``)."""
    return ":futures_enabled" in params.get("ExpressionAttributeValues", {})


def test_futures_enabled_by_a_key_replaced_meanwhile_are_not_the_new_keys(sim_env, invoke, stored_connection):
    """POST .../futures/enable whose key is replaced, by one without the Futures permission, after its signed
    calls and before its write: a retryable 409 naming connection_id saying to enable futures again, futures
    still off and untested, and the enable sent again is refused for the new key (before: 200, futures on
    and the old key's passing futures test shown as the new key's, which Binance refuses on futures)."""
    no_futures = second_key(sim_env, permissions=Permissions(spot_trading=True))

    event, answer = _route_racing_a_new_key(invoke, "futures_enable", "/futures/enable", stored_connection.id,
                                            no_futures, _enabling_futures)

    _says_test_again(answer, "enable futures again")
    after = get_connection(USER_A, stored_connection.id)
    assert (after.futures_enabled, after.futures_last_test) == (False, None)
    again = invoke("futures_enable", event)
    assert again["statusCode"] == 403 and "lacks the Futures permission" in again["body"], again["body"]


def test_a_futures_enable_refused_for_a_key_replaced_meanwhile_records_nothing_on_the_new_key(
        sim_env, invoke, stored_connection):
    """POST .../futures/enable whose stored key is replaced (and revoked on Binance) while it runs: a
    retryable 409 naming connection_id saying to enable futures again, no futures test recorded, and the
    enable sent again passes with the new key (before: 403 saying the key lacks the Futures permission, and
    the old key's refusal recorded as the new key's futures_last_test)."""
    event = connection_event("futures_enable", stored_connection.id, USER_A, "/futures/enable")

    [answer] = _racing_a_new_key(sim_env, invoke, stored_connection.id,
                                 [lambda: invoke("futures_enable", event)])

    _says_test_again(answer, "enable futures again")
    assert get_connection(USER_A, stored_connection.id).futures_last_test is None
    again = invoke("futures_enable", event)
    assert again["statusCode"] == 200 and body_of(again)["futures_enabled"] is True, again["body"]


def test_a_new_key_reads_as_untested_on_futures_until_it_is_tested(sim_env, invoke, stored_connection):
    """A connection whose key passed the futures test, futures not enabled, given a new key without the
    Futures permission (PUT .../credentials tests it on spot only): the list shows no futures test and the
    new key's spot test, until a futures test says the new key lacks Futures (before: the old key's passing
    futures test, shown as the new key's)."""
    futures_test = connection_event("futures_test", stored_connection.id, USER_A, "/futures/test")
    _passes(invoke("futures_test", futures_test))
    no_futures = second_key(sim_env, permissions=Permissions(spot_trading=True))

    assert put_credentials(invoke, stored_connection.id, no_futures)["statusCode"] == 200

    shown = _listed(invoke, stored_connection.id)
    assert (shown["futures_last_test"], shown["last_test"]["ok"]) == (None, True), shown
    tested = body_of(invoke("futures_test", futures_test))
    assert (tested["ok"], tested["category"]) == (False, "permission")
    assert _listed(invoke, stored_connection.id)["futures_last_test"]["ok"] is False


def test_a_new_key_of_a_futures_connection_shows_its_own_futures_test(sim_env, invoke, futures_connection):
    """A futures connection whose futures test failed for its key (revoked on Binance), given a new key
    (PUT .../credentials tests it on futures too): the list shows the new key's passing futures test, taken
    by that PUT (before: the old key's failing one, as if the new key failed on futures)."""
    old = second_key(sim_env)
    assert put_credentials(invoke, futures_connection.id, old)["statusCode"] == 200
    sim_env.revoke_key(old.api_key)
    futures_test = connection_event("futures_test", futures_connection.id, USER_A, "/futures/test")
    assert body_of(invoke("futures_test", futures_test))["ok"] is False
    failed = get_connection(USER_A, futures_connection.id).futures_last_test

    assert put_credentials(invoke, futures_connection.id, second_key(sim_env))["statusCode"] == 200

    shown = _listed(invoke, futures_connection.id)["futures_last_test"]
    assert shown["ok"] is True and shown["can_trade"] is True and shown != failed, shown


def _clearing_the_disable(params: dict) -> bool:
    """True for the UpdateItem that switches a disabled connection on again (``clear_disabled``): it removes
    the disabled state, which a disable (``disable_connection``) sets."""
    removed = "disabled_reason" in params.get("ExpressionAttributeNames", {}).values()
    return removed and ":disabled_reason" not in params.get("ExpressionAttributeValues", {})


def test_an_enable_whose_key_is_replaced_meanwhile_leaves_the_new_key_disabled(sim_env, invoke,
                                                                               futures_connection):
    """POST .../enable whose tests of the stored key passed, the key replaced (by one without spot trading)
    just before its write: a retryable 409 naming connection_id saying to enable again, the connection still
    disabled with the new key's spot test and its strategies paused, and the enable sent again, testing the
    new key, switches it on and resumes them (before: 200, the connection switched on by the old key's test,
    its can_trade shown as the new key's)."""
    sids = _disabled_with_two_paused_strategies(futures_connection.id)
    no_spot_trading = second_key(sim_env, permissions=Permissions(futures=True))

    event, answer = _route_racing_a_new_key(invoke, "connection_enable", "/enable", futures_connection.id,
                                            no_spot_trading, _clearing_the_disable)

    _says_test_again(answer, "enable again")
    after = get_connection(USER_A, futures_connection.id)
    assert (after.disabled_reason, after.last_test["can_trade"]) == (DISABLED, False)
    assert {_strategy(sid).status for sid in sids} == {"paused"}
    again = invoke("connection_enable", event)
    assert again["statusCode"] == 200 and set(body_of(again)["resumed_strategies"]) == sids, again["body"]
    assert get_connection(USER_A, futures_connection.id).last_test["can_trade"] is False


def test_the_enable_records_its_passing_futures_test_as_the_connections_futures_last_test(
        sim_env, invoke, futures_connection):
    """POST .../enable on a futures-enabled connection records the futures test it ran and passed as
    futures_last_test, with the spot one, in its write (before: the spot test alone was recorded, the
    connection still shown with its last failed futures test after the enable had passed one)."""
    from klineo.store.connections import record_test_result

    failed = {"ok": False, "category": "permission", "message": "refused",
              "tested_at": "2026-01-01T00:00:00Z"}
    record_test_result(USER_A, futures_connection.id, failed, futures=True)
    disable_connection(USER_A, futures_connection.id, "connection_disabled:permission")

    enabled = invoke(
        "connection_enable", connection_event("connection_enable", futures_connection.id, USER_A, "/enable")
    )

    assert enabled["statusCode"] == 200, enabled["body"]
    recorded = get_connection(USER_A, futures_connection.id).futures_last_test
    assert recorded is not None and recorded["ok"] is True and recorded["tested_at"] != failed["tested_at"]
