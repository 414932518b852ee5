"""A list page's size bound (klineo.models.paging): each item measured as its Lambda answer will carry it."""

from __future__ import annotations

import json

from klineo.models.order_history import OrderFill, OrderHistoryItem, OrderHistoryResponse
from klineo.models.paging import PAGE_BYTES_MAX, fit_page, item_bytes

_FILL = {"trade_id": 1, "order_id": 2, "price": "1.5", "qty": "2", "commission": "0.1",
         "commission_asset": "USDT", "realized_pnl": "0", "side": "BUY", "time": 3}


def _order(n: int, fills: int = 0, reason: str | None = None) -> OrderHistoryItem:
    moment = "2026-12-01T10:00:00.000Z"
    return OrderHistoryItem(client_order_id=f"o-{n}", connection_id="c" * 32, symbol="BTCUSDT", kind="order",
                            origin="api", status="FILLED", settled=True, created_at=moment, updated_at=moment,
                            fills=[OrderFill(**_FILL)] * fills, unmanaged_reason=reason)


def _in_lambda_answer(page: OrderHistoryResponse) -> int:
    """The page's bytes in a Lambda proxy answer: its compact JSON (as the resolver writes it) as one JSON
    string, quotes excluded."""
    body = json.dumps(page.model_dump(mode="json", by_alias=True), separators=(",", ":"))
    return len(json.dumps(body)) - 2


def test_the_items_bytes_are_what_they_add_to_the_lambda_answer() -> None:
    """GIVEN orders with 0 to 4 fills, one with a quote and a backslash in its text WHEN measured THEN the
    page's body, escaped as Lambda carries it, is the empty page's plus their bytes (less one comma)."""
    orders = [*(_order(n, fills=n) for n in range(5)), _order(5, reason='say "no" \\ here')]

    measured = sum(item_bytes(order) for order in orders) - 1

    empty = _in_lambda_answer(OrderHistoryResponse(orders=[]))
    assert _in_lambda_answer(OrderHistoryResponse(orders=orders)) == empty + measured


def test_a_page_stops_before_the_bound_and_always_keeps_its_first_item() -> None:
    """GIVEN orders of 1000 fills (each some 150 KB) WHEN fitted THEN the page stops before PAGE_BYTES_MAX
    and says how many it holds; a lone item over the bound would still be kept (a page always moves on)."""
    big = _order(0, fills=1000)
    count = PAGE_BYTES_MAX // item_bytes(big) + 5

    items, shown = fit_page(range(count), lambda n: big)

    assert shown == len(items) == PAGE_BYTES_MAX // item_bytes(big) < count
    assert fit_page([0, 1], lambda n: _order(n))[1] == 2
    assert len(fit_page([0], lambda n: _order(n, fills=PAGE_BYTES_MAX // 100))[0]) == 1
