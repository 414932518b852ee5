"""Refused order attempts in the data table (moto, tables from template.yaml), and the listing's query."""

from __future__ import annotations

import logging
import time

import pytest
from botocore.exceptions import ClientError
from klineo.errors import ErrorCategory, KlineoError
from klineo.models.order_attempts import OrderAttemptsQuery
from klineo.settings import get_settings
from klineo.store import aws as aws_clients
from klineo.store.order_attempts import (
    RefusedAttempt,
    list_attempt_page,
    record_refused_attempt,
    refusal_of,
)
from klineo.store.order_history import HistoryFilter, list_order_page
from klineo.store.orders import OrderRecord, put_new_record
from pydantic import ValidationError

USER = "user-1"
CONNECTION = "c" * 32
DAY_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _attempt(client_order_id: str, attempt_ms: int, **changes) -> RefusedAttempt:
    values = dict(user_id=USER, client_order_id=client_order_id, connection_id=CONNECTION, symbol="BTCUSDT",
                  origin="api", attempt_ms=attempt_ms, side="BUY", type="LIMIT", quantity="0.01",
                  price="20000",
                  refusal={"category": "conflict", "field": "user_kill_switch", "message": "off"})
    return RefusedAttempt(**{**values, **changes})


def _record(client_order_id: str, created_at: str, **changes) -> OrderRecord:
    values = dict(user_id=USER, client_order_id=client_order_id, connection_id=CONNECTION, symbol="BTCUSDT",
                  request={}, params={}, status="NEW", attempt_ms=1, created_at=created_at,
                  updated_at=created_at)
    return OrderRecord(**{**values, **changes})


def _ids(items) -> list[str]:
    return [item.client_order_id for item in items]


def test_an_attempt_item_holds_its_fields_its_index_keys_and_a_ttl_and_reads_back(aws):
    """GIVEN a refused attempt WHEN written and read THEN the same attempt; its item carries the history's
    gsi1 keys, the attempt marker and a ttl of the events' retention, and nothing else."""
    attempt = _attempt("k-1", DAY_MS, quote_quantity=None, reduce_only=True, role="position_close")
    record_refused_attempt(attempt)

    item = aws_clients.dynamodb().get_item(TableName=get_settings().data_table, Key={
        "pk": {"S": f"USER#{USER}"}, "sk": {"S": f"ATTEMPT#{DAY_MS}#k-1"}})["Item"]

    assert (item["gsi1pk"]["S"], item["gsi1sk"]["S"], item["entity"]["S"]) == (
        f"ORDERS#{USER}", f"{DAY_MS}#k-1", "order_attempt")
    retention_s = get_settings().event_retention_days * 86_400
    assert abs(int(item["ttl"]["N"]) - (time.time() + retention_s)) < 60
    assert set(item) == {"pk", "sk", "gsi1pk", "gsi1sk", "entity", "ttl", "user_id", "client_order_id",
                         "connection_id", "symbol", "origin", "attempt_ms", "side", "type", "refusal",
                         "quantity", "price", "reduce_only", "role"}
    [read], _ = list_attempt_page(USER, HistoryFilter(), None, 10)
    assert read == attempt and read.created_at == "2026-01-01T00:00:00.000Z"


def test_the_order_history_never_reads_an_attempt_and_the_listing_reads_both_newest_first(aws):
    """GIVEN orders and attempts interleaved in time (and a manual fill) WHEN read THEN the history has the
    orders alone; the attempts listing both, newest first, without the fill; each outcome its own."""
    put_new_record(_record("o-1", "2026-01-01T00:01:00.000Z"))
    record_refused_attempt(_attempt("k-2", DAY_MS + 120_000))
    put_new_record(_record("o-3", "2026-01-01T00:03:00.000Z"))
    put_new_record(_record("manual-9", "2026-01-01T00:04:00.000Z", origin="manual"))
    record_refused_attempt(_attempt("k-5", DAY_MS + 300_000, origin="f" * 32))

    history, _ = list_order_page(USER, HistoryFilter(), 10)
    both, _ = list_attempt_page(USER, HistoryFilter(), None, 10)
    placed, _ = list_attempt_page(USER, HistoryFilter(), "placed", 10)
    refused, _ = list_attempt_page(USER, HistoryFilter(), "refused", 10)

    assert _ids(history) == ["manual-9", "o-3", "o-1"]
    assert _ids(both) == ["k-5", "o-3", "k-2", "o-1"]
    assert (_ids(placed), _ids(refused)) == (["o-3", "o-1"], ["k-5", "k-2"])


def test_attempt_pages_resume_after_the_cursor_and_filter_on_connection_and_time(aws):
    """GIVEN attempts on two connections over time WHEN paged two at a time, or filtered THEN no repeats,
    newest first, and only the matching ones."""
    for minute in range(5):
        record_refused_attempt(_attempt(f"k-{minute}", DAY_MS + minute * 60_000,
                                        connection_id=CONNECTION if minute % 2 else "d" * 32))
    seen, after = [], None
    for _ in range(3):
        page, after = list_attempt_page(USER, HistoryFilter(), None, 2, after)
        seen += _ids(page)
        if after is None:
            break
    on_connection, _ = list_attempt_page(USER, HistoryFilter(connection_id=CONNECTION), None, 10)
    ranged, _ = list_attempt_page(USER, HistoryFilter(from_ms=DAY_MS + 60_000, to_ms=DAY_MS + 120_000),
                                  None, 10)

    assert seen == ["k-4", "k-3", "k-2", "k-1", "k-0"] and after is None
    assert (_ids(on_connection), _ids(ranged)) == (["k-3", "k-1"], ["k-2", "k-1"])


def test_a_storage_failure_is_logged_and_never_raised(aws, monkeypatch, caplog):
    """GIVEN the PutItem failing WHEN an attempt is recorded THEN nothing is raised and the failure is logged
    with the attempt's id and the refusal's field only."""
    def failing(**_request):
        raise ClientError({"Error": {"Code": "InternalServerError"}}, "PutItem")

    monkeypatch.setattr(aws_clients.dynamodb(), "put_item", failing)
    with caplog.at_level(logging.ERROR):
        record_refused_attempt(_attempt("k-1", DAY_MS))

    [logged] = [r for r in caplog.records if r.getMessage() == "refused order attempt not recorded"]
    assert (logged.client_order_id, logged.field) == ("k-1", "user_kill_switch")


def test_a_refusal_keeps_category_field_and_the_message_the_caller_was_told():
    """GIVEN refusals with and without a field WHEN kept THEN category, field when named, and the message
    (or the one told instead)."""
    named = KlineoError(ErrorCategory.ORDER_REJECTED, "too big", field="max_notional_usdt")
    unnamed = KlineoError(ErrorCategory.CONFLICT, "no")

    assert refusal_of(named) == {
        "category": "order_rejected", "field": "max_notional_usdt", "message": "too big"}
    assert refusal_of(unnamed, "told instead") == {"category": "conflict", "message": "told instead"}


@pytest.mark.parametrize(("query", "field"), [
    ({"outcome": "failed"}, "outcome"), ({"status": "NEW"}, "status"), ({"from": 5, "to": 4}, "to")])
def test_the_listing_query_names_what_it_refuses(query, field):
    """GIVEN an unknown outcome, a parameter the listing does not take, `to` before `from` WHEN validated
    THEN refused naming it."""
    with pytest.raises(ValidationError) as refused:
        OrderAttemptsQuery.model_validate(query)
    assert refused.value.errors()[0]["loc"][0] == field
