"""Order records in the indexes (moto, tables from template.yaml): history pages, unsettled set, labels."""

from __future__ import annotations

from typing import Any

import pytest
from klineo.errors import KlineoError
from klineo.models import paging
from klineo.models.order_history import OrderHistoryQuery
from klineo.services.order_history import decode_cursor, encode_cursor, list_orders
from klineo.services.order_view import order_item
from klineo.services.reconcile import foreign_label
from klineo.store import aws as aws_clients
from klineo.store.order_history import HistoryFilter, list_order_page, list_unsettled
from klineo.store.orders import (
    OrderRecord,
    get_order_record,
    put_new_record,
    record_order_outcome,
    strategy_order_record,
)

USER = "user-1"
CONNECTION = "c" * 32


def _record(client_order_id: str, created_at: str, **changes) -> OrderRecord:
    values = dict(user_id=USER, client_order_id=client_order_id, connection_id=CONNECTION, symbol="BTCUSDT",
                  request={}, params={}, status="NEW", attempt_ms=1, created_at=created_at,
                  updated_at=created_at)
    return OrderRecord(**{**values, **changes})


def _unsettled_ids() -> list[str]:
    return sorted(r.client_order_id for r in list_unsettled())


def test_record_leaves_the_unsettled_index_only_once_final_with_fills(aws):
    """GIVEN a NEW record WHEN FILLED without fills THEN still unsettled; WHEN fills are stored THEN gone."""
    put_new_record(_record("o-1", "2026-01-01T00:00:00.000Z"))
    assert _unsettled_ids() == ["o-1"]

    record_order_outcome(USER, "o-1", status="FILLED")
    assert _unsettled_ids() == ["o-1"]

    record_order_outcome(USER, "o-1", status="FILLED", fills=[])
    assert _unsettled_ids() == [] and get_order_record(USER, "o-1").fills == []


def test_rejected_record_is_settled_at_once(aws):
    """GIVEN a PENDING record WHEN Binance rejects it THEN it leaves the unsettled index (no fills)."""
    put_new_record(_record("o-2", "2026-01-01T00:00:00.000Z", status="PENDING"))

    record_order_outcome(USER, "o-2", status="REJECTED", error={"code": -2019})

    assert _unsettled_ids() == []


def test_history_pages_newest_first_and_resume_after_the_cursor(aws):
    """GIVEN five records WHEN read two at a time THEN newest first, no repeats, and no cursor at the end."""
    for minute in range(5):
        put_new_record(_record(f"o-{minute}", f"2026-01-01T00:0{minute}:00.000Z"))
    seen, after = [], None
    for _ in range(3):
        page, after = list_order_page(USER, HistoryFilter(), 2, after)
        seen += [r.client_order_id for r in page]
        if after is None:
            break

    assert seen == ["o-4", "o-3", "o-2", "o-1", "o-0"] and after is None


def _settled_records(count: int, changes: dict[int, dict[str, Any]] | None = None) -> list[str]:
    """``count`` settled records a minute apart (the reads settle none; ``changes`` by minute), their ids
    newest first."""
    for minute in range(count):
        put_new_record(_record(f"o-{minute:02d}", f"2026-01-01T00:{minute:02d}:00.000Z", status="FILLED",
                               fills=[], **(changes or {}).get(minute, {})))
    return [f"o-{minute:02d}" for minute in reversed(range(count))]


def _query_reads() -> list[tuple[int, int]]:
    """(Limit, ScannedCount) of every Query the layer's DynamoDB client makes from now on: the items each
    read (DynamoDB charges for each item read, kept by the filters or not)."""
    reads: list[tuple[int, int]] = []
    client = aws_clients.dynamodb()
    limits: list[int] = []
    client.meta.events.register("before-parameter-build.dynamodb.Query",
                                lambda params, **_: limits.append(params.get("Limit", 0)))
    client.meta.events.register("after-call.dynamodb.Query",
                                lambda parsed, **_: reads.append((limits[-1], parsed["ScannedCount"])))
    return reads


def _every_page(limit: int, reads: list[tuple[int, int]], **filters: Any
                ) -> tuple[list[list[str]], list[int]]:
    """The order ids of each page of GET /futures/orders (``list_orders``) following next_cursor, and the
    items each page's Queries read."""
    pages, read, cursor = [], [], None
    while True:
        reads.clear()
        page = list_orders(USER, OrderHistoryQuery(limit=limit, cursor=cursor, **filters))
        pages.append([order.client_order_id for order in page.orders])
        read.append(sum(scanned for _, scanned in reads))
        cursor = page.next_cursor
        if cursor is None:
            return pages, read


def test_a_history_page_reads_its_orders_not_the_partition_and_resumes_exactly(aws, monkeypatch):
    """GIVEN 7 settled orders and the page bound lowered to two of them WHEN read with limit=3 following
    next_cursor THEN each order once, newest first, pages stopped short by the bound, and each page's
    Query reads at most limit + 2 items: its orders, the one after (is there a next page?) and the
    cursor's own (before: no Limit, a page read the partition from its cursor on, up to 1 MB)."""
    ids = _settled_records(7)
    one = paging.item_bytes(order_item(get_order_record(USER, ids[0])))
    monkeypatch.setattr(paging, "PAGE_BYTES_MAX", 2 * one + one // 2)
    reads = _query_reads()

    pages, read = _every_page(3, reads)

    assert [order for page in pages for order in page] == ids
    assert all(len(page) == 2 for page in pages[:-1]), pages
    assert max(read) <= 3 + 2, read


def test_a_filtered_history_page_reads_in_growing_queries(aws):
    """GIVEN 15 settled orders of which only the oldest is ETHUSDT WHEN read filtered on ETHUSDT with
    limit=1 THEN the one order, in at most 4 Queries each reading twice the last's Limit, each order read
    once (a Limit kept at the page's would take 8 round trips; none, one read of up to 1 MB)."""
    ids = _settled_records(15, {0: {"symbol": "ETHUSDT"}})
    reads = _query_reads()

    pages, read = _every_page(1, reads, symbol="ETHUSDT")

    assert pages == [ids[-1:]] and read == [15]
    assert [limit for limit, _ in reads] == [2, 4, 8, 16], reads


def test_history_time_range_and_filters_are_applied(aws):
    """GIVEN records at three times and two symbols WHEN filtered THEN only the matching ones."""
    put_new_record(_record("a", "2026-01-01T00:00:00.000Z"))
    put_new_record(_record("b", "2026-01-02T00:00:00.000Z", symbol="ETHUSDT"))
    put_new_record(_record("c", "2026-01-03T00:00:00.000Z", status="FILLED", fills=[]))
    day2 = 1767312000000  # 2026-01-02T00:00:00Z

    ranged, _ = list_order_page(USER, HistoryFilter(from_ms=day2, to_ms=day2), 10)
    by_symbol, _ = list_order_page(USER, HistoryFilter(symbol="BTCUSDT", status="FILLED"), 10)

    assert [r.client_order_id for r in ranged] == ["b"]
    assert [r.client_order_id for r in by_symbol] == ["c"]


def test_strategy_order_is_recorded_once_with_the_strategy_as_origin(aws):
    """GIVEN a strategy's order WHEN recorded twice THEN one record, origin = the strategy id, unsettled."""
    first = put_new_record(strategy_order_record(USER, "s-1", strategy_id="f" * 32, connection_id=CONNECTION,
                                                 symbol="BTCUSDT", params={"side": "BUY"}, attempt_ms=5))
    second = put_new_record(strategy_order_record(USER, "s-1", strategy_id="f" * 32, connection_id=CONNECTION,
                                                  symbol="BTCUSDT", params={"side": "SELL"}, attempt_ms=6))

    assert (first, second) == (True, False)
    record = get_order_record(USER, "s-1")
    assert record.origin == "f" * 32 and record.params == {"side": "BUY"} and _unsettled_ids() == ["s-1"]


def test_cursor_round_trips_and_a_forged_one_names_the_field():
    """GIVEN a sort key WHEN encoded and decoded THEN the same; another shape is a 400 on cursor."""
    key = "1767225600000#klneo_1"
    assert decode_cursor(encode_cursor(key)) == key
    with pytest.raises(KlineoError) as raised:
        decode_cursor(encode_cursor("USER#someone-else"))
    assert raised.value.field == "cursor" and "someone" not in str(raised.value)


@pytest.mark.parametrize(
    ("client_order_id", "label"),
    [("autoclose-1700000000000123456", "liquidation"), ("adl_autoclose", "adl"),
     ("settlement_autoclose-1700000000000", "settlement"), ("web_0a1b2c3d4e5f60718293", "manual"),
     ("ios_x", "manual")],
)
def test_orders_we_did_not_place_are_labelled_by_binance_client_id(client_order_id, label):
    """autoclose- is a liquidation, adl_autoclose an ADL, settlement_autoclose- a settlement; else manual."""
    assert foreign_label(client_order_id) == label
