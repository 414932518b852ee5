"""GET /strategies fits Lambda's response payload however many strategies a user has.

A synchronous Lambda invocation answers at most 6 MB (6 MiB), counted on the whole proxy response, the body
one JSON string in it (docs/binance-facts.md §17). A user may have any number of strategies, each some
1.1 KB of answer at its longest: past some 4,500 of them the listing stops short of that bound and its
next_cursor resumes after the last strategy it holds. Strategies are written straight to the store (moto).
The bound is lowered to a few strategies' worth here: thousands of strategies in moto take minutes (each
listed strategy is also a Query of its latest run), and the rule is the same at any bound
(tests/unit/orders/test_page_size.py checks it at the real one).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode

from klineo.models import paging
from klineo.settings import get_settings
from klineo.store import aws as aws_clients
from klineo.store.dynamo import to_item
from klineo.store.strategies import PendingOrder, Strategy, TradingSettings

from tests.helpers import load_event, with_user
from tests.integration.api.conftest import USER_A, USER_B

LAMBDA_PAYLOAD_MAX = 6 * 1024 * 1024
STRATEGIES = 40  # at their longest, some 1.1 KB each: some 46 KB in all
PAGE_BYTES = 16 * 1024  # the bound lowered to some 14 strategies
# The longest size the API takes (at most 1,000,000, 12 decimals), and a position as long.
LONGEST = Decimal("-999999.999999999999")


def _longest(n: int, user: str = USER_A) -> Strategy:
    """A paused live strategy with every answered field at its longest (a pending order too)."""
    created = f"2026-12-01T10:{n // 60_000 % 60:02d}:{n // 1000 % 60:02d}.{n % 1000:03d}+00:00"
    settings = TradingSettings(direction="short", leverage=125, margin_type="ISOLATED",
                               stop_loss_pct=Decimal("99.99999999"), take_profit_pct=Decimal("99.99999999"),
                               trailing_stop_pct=Decimal("20.0"),
                               paper_balance_usdt=Decimal("999999999.99999999"))
    pending = PendingOrder(close_time=1_800_000_000_000, client_order_id="x" * 36, side="SELL",
                           quantity=-LONGEST, reduce_only=False, position_before=LONGEST, claimed_at_ms=0,
                           lease_until_ms=0)
    return Strategy(
        user_id=user, strategy_id=f"{n:032x}", connection_id="c" * 32, environment="production",
        symbol="1000SHIBUSDC", interval="15m", type="rsi_threshold",
        parameters={"period": 50, "oversold": "29.99999999", "overbought": "70.00000001"}, size=-LONGEST,
        mode="live", status="paused", created_at=created, updated_at=created,
        status_reason="repeated_failures:insufficient_balance", settings=settings, live_position=LONGEST,
        paper_position=LONGEST, last_close=1_800_000_000_000, key_failures=2, failed_runs=4, pending=pending)


def _store(strategies: list[Strategy]) -> None:
    """Write the strategies in batches of 25 (BatchWriteItem's most)."""
    client, table = aws_clients.dynamodb(), get_settings().data_table
    for start in range(0, len(strategies), 25):
        client.batch_write_item(RequestItems={table: [
            {"PutRequest": {"Item": {**s.to_item(), **to_item({"pending": s.pending.as_attr_value()})}}}
            for s in strategies[start:start + 25] if s.pending is not None]})


def _list(invoke: Any, user: str, **query: Any) -> dict[str, Any]:
    """GET /strategies?<query> as ``user``: the proxy response."""
    raw = urlencode(query)
    event = with_user(load_event("strategy_list"), user)
    event["rawQueryString"], event["queryStringParameters"] = raw, dict(parse_qsl(raw)) or None
    return invoke("strategy_list", event)


def _pages(invoke: Any, user: str, bound: int = LAMBDA_PAYLOAD_MAX,
           **query: Any) -> list[list[dict[str, Any]]]:
    """Every page of GET /strategies, each page's Lambda payload asserted under ``bound``."""
    pages, cursor = [], None
    while True:
        response = _list(invoke, user, **query, **({"cursor": cursor} if cursor else {}))
        payload = len(json.dumps(response).encode())
        assert response["statusCode"] == 200, response["body"][:300]
        assert payload < bound, f"page {len(pages) + 1}: a {payload:,}-byte Lambda payload"
        page = json.loads(response["body"])
        pages.append(page["strategies"])
        cursor = page.get("next_cursor")
        if cursor is None:
            return pages


def test_many_strategies_are_listed_in_pages_under_the_payload_bound(aws, invoke, monkeypatch):
    """GIVEN 40 strategies at their longest and the page bound lowered to some 14 of them WHEN GET /strategies
    is followed by its next_cursor THEN every page stays under the bound (with the answer's own frame) and all
    are listed once each, oldest first (before: one answer of all of them, whatever its size: past some
    5,400 strategies at the real bound, a payload over Lambda's 6 MiB and a 5xx instead of the list)."""
    monkeypatch.setattr(paging, "PAGE_BYTES_MAX", PAGE_BYTES)
    strategies = [_longest(n) for n in range(STRATEGIES)]
    _store(strategies)

    pages = _pages(invoke, USER_A, bound=PAGE_BYTES + 2048)

    assert len(pages) == 3
    assert [s["id"] for page in pages for s in page] == [s.strategy_id for s in strategies]


def test_a_limit_pages_the_strategies_and_no_limit_lists_them_all(aws, invoke):
    """GIVEN 5 strategies WHEN listed with limit=2 THEN pages of 2, 2 and 1 in creation order; without a limit
    THEN all 5 in one answer whose next_cursor is null, as before paging existed."""
    strategies = [_longest(n, USER_B) for n in range(5)]
    _store(strategies)

    pages = _pages(invoke, USER_B, limit=2)
    whole = json.loads(_list(invoke, USER_B)["body"])

    assert [[s["id"] for s in page] for page in pages] == [[s.strategy_id for s in strategies[i:i + 2]]
                                                          for i in (0, 2, 4)]
    assert [s["id"] for s in whole["strategies"]] == [s.strategy_id for s in strategies]
    assert whole["next_cursor"] is None


def test_a_cursor_of_another_listing_is_refused_naming_it(aws, invoke):
    """GIVEN a cursor that is no next_cursor of GET /strategies WHEN sent THEN 400 naming cursor."""
    response = _list(invoke, USER_B, cursor="bm90LWEtY3Vyc29y")
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["field"] == "cursor"
