"""The order claim transaction on moto (tables from template.yaml): which check failed, what comes back."""

from __future__ import annotations

import boto3
import pytest
from klineo.settings import get_settings
from klineo.store.order_claim import (
    GateChecks,
    cached_connection_item,
    claim_new_order,
    claim_resume,
    release_claim,
)
from klineo.store.orders import STATUS_UNKNOWN, get_order_record, pending_record

USER = "user-1"
CONNECTION_ID = "c" * 32
CLIENT_ORDER_ID = "kabcdefghijklmnopqrstuvwxyz234567abc"
CONN_KEY = {"pk": {"S": f"USER#{USER}"}, "sk": {"S": f"CONN#{CONNECTION_ID}"}}
ORDER_KEY = {"pk": {"S": f"USER#{USER}"}, "sk": {"S": f"ORDER#{CLIENT_ORDER_ID}"}}
REQUEST = {"connection_id": CONNECTION_ID, "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
           "quantity": "0.01", "price": "20000"}


def _put(item: dict) -> None:
    boto3.client("dynamodb").put_item(TableName=get_settings().data_table, Item=item)


@pytest.fixture
def connection(aws) -> dict:
    """USER's connection item, futures enabled, as the store writes it; returned as cached."""
    _put({**CONN_KEY, "connection_id": {"S": CONNECTION_ID}, "futures_enabled": {"BOOL": True},
          "max_notional_usdt": {"S": "10000"}})
    return cached_connection_item(USER, CONNECTION_ID)


def _record(lease_until_ms: int = 2_000_000_000_000):
    return pending_record(USER, CLIENT_ORDER_ID, connection_id=CONNECTION_ID, symbol="BTCUSDT",
                          request=REQUEST, params={}, attempt_ms=1_000, lease_until_ms=lease_until_ms)


def _switch(pk: str, on: bool) -> None:
    _put({"pk": {"S": pk}, "sk": {"S": "FLAGS"}, "kill_switch": {"BOOL": on}})


def _set(name: str, value: dict) -> None:
    boto3.client("dynamodb").update_item(
        TableName=get_settings().data_table, Key=CONN_KEY, UpdateExpression="SET #n = :v",
        ExpressionAttributeNames={"#n": name}, ExpressionAttributeValues={":v": value})


def test_free_key_and_open_gates_commit_the_pending_record_with_its_lease(connection):
    """GIVEN no record and every gate open WHEN claimed THEN committed: the PENDING record holds its lease."""
    _switch("GLOBAL", False)  # an existing FLAGS item with the switch off passes too

    assert claim_new_order(_record(), GateChecks(USER, connection, switches=True)) is None

    stored = get_order_record(USER, CLIENT_ORDER_ID)
    assert stored.status == "PENDING" and stored.lease_until_ms == 2_000_000_000_000


def test_taken_key_hands_back_the_existing_record_and_writes_nothing(connection):
    """GIVEN the key's record exists WHEN claimed again THEN the refusal carries that record, unchanged."""
    claim_new_order(_record(), GateChecks(USER, connection, switches=True))

    refusal = claim_new_order(_record(lease_until_ms=5), GateChecks(USER, connection, switches=True))

    assert refusal.existing is not None and refusal.existing.lease_until_ms == 2_000_000_000_000
    assert refusal.failed == {}
    assert get_order_record(USER, CLIENT_ORDER_ID).lease_until_ms == 2_000_000_000_000


@pytest.mark.parametrize(("pk", "name"), [("GLOBAL", "global_flags"), (f"USER#{USER}", "user_flags")])
def test_switch_on_is_named_by_its_cancellation_reason(connection, pk, name):
    """GIVEN one kill switch on WHEN claimed THEN cancelled: that FLAGS item is handed back, no record."""
    _switch(pk, True)

    refusal = claim_new_order(_record(), GateChecks(USER, connection, switches=True))

    assert set(refusal.failed) == {name} and refusal.failed[name]["kill_switch"] == {"BOOL": True}
    assert refusal.existing is None and get_order_record(USER, CLIENT_ORDER_ID) is None


def test_reducing_order_is_not_stopped_by_a_switch(connection):
    """GIVEN both switches on WHEN an order that only reduces is claimed (switches=False) THEN committed."""
    _switch("GLOBAL", True)
    _switch(f"USER#{USER}", True)

    assert claim_new_order(_record(), GateChecks(USER, connection, switches=False)) is None


@pytest.mark.parametrize(
    ("name", "value"),
    [("disabled_at", {"S": "2026-01-01T00:00:00"}), ("futures_enabled", {"BOOL": False}),
     ("kill_switch", {"BOOL": True}), ("max_notional_usdt", {"S": "10"}), ("position_mode", {"S": "hedge"})],
)
def test_connection_changed_since_cached_hands_back_its_current_item(connection, name, value):
    """GIVEN the connection changed after it was cached (a gate or a checked setting) WHEN claimed
    THEN cancelled on the connection's check, with its current item; nothing written."""
    _set(name, value)

    refusal = claim_new_order(_record(), GateChecks(USER, connection, switches=True))

    assert set(refusal.failed) == {"connection"} and refusal.failed["connection"][name] == value
    assert get_order_record(USER, CLIENT_ORDER_ID) is None


def test_deleted_connection_fails_its_check_without_an_item(connection):
    """GIVEN the connection deleted after caching WHEN claimed THEN the connection check failed, no item."""
    boto3.client("dynamodb").delete_item(
        TableName=get_settings().data_table, Key=CONN_KEY)

    refusal = claim_new_order(_record(), GateChecks(USER, connection, switches=True))

    assert refusal.failed == {"connection": None}


def test_resume_takes_an_expired_lease_once(connection):
    """GIVEN an UNKNOWN record whose lease ran out WHEN two resumes claim it THEN only the first gets it."""
    gates = GateChecks(USER, connection, switches=True)
    claim_new_order(_record(lease_until_ms=10), gates)
    boto3.client("dynamodb").update_item(
        TableName=get_settings().data_table, Key=ORDER_KEY,
        UpdateExpression="SET #s = :u", ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":u": {"S": STATUS_UNKNOWN}})
    existing = get_order_record(USER, CLIENT_ORDER_ID)

    first = claim_resume(existing, lease_until_ms=9_000, now_ms=100, gates=gates)
    second = claim_resume(existing, lease_until_ms=9_500, now_ms=200, gates=gates)

    assert first is None
    assert second is not None and second.existing.lease_until_ms == 9_000
    assert get_order_record(USER, CLIENT_ORDER_ID).lease_until_ms == 9_000


def test_release_deletes_only_this_attempts_claim(connection):
    """GIVEN a claim WHEN released by another lease, then by its own THEN only the own release deletes it."""
    record = _record()
    claim_new_order(record, GateChecks(USER, connection, switches=True))

    release_claim(_record(lease_until_ms=1))
    assert get_order_record(USER, CLIENT_ORDER_ID) is not None
    release_claim(record)
    assert get_order_record(USER, CLIENT_ORDER_ID) is None


def test_committed_claim_keeps_the_cached_connection_past_its_ttl(connection, monkeypatch):
    """GIVEN the connection cached at t=0 WHEN a claim commits at t=50 s THEN at t=100 s (past the 60 s TTL
    counted from the read) the cache still answers without a read: the claim proved it current."""
    from klineo.store import order_claim

    now = {"t": 1_000.0}
    monkeypatch.setattr(order_claim.time, "monotonic", lambda: now["t"])
    order_claim.forget_connection()
    item = cached_connection_item(USER, CONNECTION_ID, clock=lambda: now["t"])
    now["t"] += 50
    assert claim_new_order(_record(), GateChecks(USER, item, switches=False)) is None
    _set("label", {"S": "changed since"})

    now["t"] += 50
    clock = lambda: now["t"]  # noqa: E731
    assert cached_connection_item(USER, CONNECTION_ID, clock) == item  # no read: the label change is unseen
    now["t"] += order_claim.CONNECTION_CACHE_TTL_S + 1
    assert cached_connection_item(USER, CONNECTION_ID, clock)["label"] == {"S": "changed since"}
