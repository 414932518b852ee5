"""A page of the order listings (GET /futures/orders, /futures/order-attempts) fits Lambda's response payload.

A synchronous Lambda invocation answers at most 6 MB (6 MiB: Lambda's "MB" is 1,024 KB), counted on the
whole proxy response, the body one JSON string in it (docs/binance-facts.md §17). An order lists up to
FILLS_KEPT fills (klineo.store.order_fills): a page of such orders is stopped short of the page bound
(``klineo.models.paging.PAGE_BYTES_MAX``, under that limit) and its next_cursor resumes after the last order
it holds. Records are written straight to the store (moto). The bound is lowered here to some two orders:
writing the 25 orders it takes to pass the real one cost moto some 90 s; tests/unit/orders/test_page_size.py
proves each item is measured as the Lambda answer carries it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

from klineo.models import paging
from klineo.store.order_fills import FILLS_KEPT

from tests.helpers import load_event, with_user
from tests.integration.api.conftest import USER_A
from tests.integration.futures.helpers import body_of, many_fill_orders

ORDERS = 3  # of FILLS_KEPT fills each, at their longest: some 270 KB of Lambda payload each
PAGE_BYTES = 600 * 1024  # the page bound lowered to two such orders


def _filled_orders(connection_id: str) -> list[str]:
    """ORDERS settled orders of USER_A, each listing FILLS_KEPT fills: their ids, newest first."""
    return many_fill_orders(connection_id, ORDERS, status="FILLED",
                            params={"side": "SELL", "type": "MARKET", "quantity": "1"})[::-1]


def _pages(invoke: Any, function: str, items: str, **query: Any) -> list[list[dict[str, Any]]]:
    """Every page of the listing ``function`` (``items``: its list field), each page's Lambda payload
    asserted under the lowered page bound (with the answer's own frame) and its status 200."""
    pages, cursor = [], None
    while True:
        raw = urlencode({**query, **({"cursor": cursor} if cursor else {})})
        event = with_user(load_event(function), USER_A)
        event["rawQueryString"], event["queryStringParameters"] = raw, dict(parse_qsl(raw))
        response = invoke(function, event)
        payload = len(json.dumps(response).encode())
        assert response["statusCode"] == 200, response["body"][:300]
        assert payload < PAGE_BYTES + 2048, f"page {len(pages) + 1}: a {payload:,}-byte Lambda payload"
        page = body_of(response)
        pages.append(page[items])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


def test_pages_of_orders_with_many_fills_stay_under_the_page_bound(aws, invoke, monkeypatch):
    """GIVEN 3 settled orders listing FILLS_KEPT fills each and the page bound lowered to two of them WHEN the
    history and the order attempts are read with limit=3 THEN every page's Lambda payload is under the bound,
    a page holds fewer than 3, and following next_cursor lists all 3, newest first, once each with all their
    fills (before: one page of all of them, whatever its size: 25 such orders made a payload over Lambda's
    6 MiB, a 5xx instead of an answer). One set of orders for both listings: writing them is most of the
    test's time."""
    monkeypatch.setattr(paging, "PAGE_BYTES_MAX", PAGE_BYTES)
    ids = _filled_orders("c" * 32)

    history = _pages(invoke, "futures_orders", "orders", limit=ORDERS)
    attempts = _pages(invoke, "futures_order_attempts", "attempts", limit=ORDERS)

    assert len(history) > 1 and all(len(page) < ORDERS for page in history)
    orders = [order for page in history for order in page]
    assert [order["client_order_id"] for order in orders] == ids
    assert all(len(order["fills"]) == order["fills_count"] == FILLS_KEPT for order in orders)
    assert len(attempts) > 1 and all(len(page) < ORDERS for page in attempts)
    placed = [attempt for page in attempts for attempt in page]
    assert [attempt["client_order_id"] for attempt in placed] == ids
    assert all(a["outcome"] == "placed" and len(a["order"]["fills"]) == FILLS_KEPT for a in placed)
