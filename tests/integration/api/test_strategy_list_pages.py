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

import dataclasses
import json
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode

from klineo.models import paging
from klineo.settings import get_settings
from klineo.store import aws as aws_clients
from klineo.store.dynamo import to_item
from klineo.store.runs import Run, record_run
from klineo.store.strategies import PendingOrder, Strategy, TradingSettings

from tests.helpers import load_event, with_user
from tests.integration.api.conftest import USER_A, USER_B, aws_refusing, dynamodb_requests

LAMBDA_PAYLOAD_MAX = 6 * 1024 * 1024
STRATEGIES = 40  # at their longest, some 1.1 KB each: some 46 KB in all
PAGE_BYTES = 16 * 1024  # the bound lowered to some 14 strategies
# The longest size the API takes (at most 1,000,000, 12 decimals), and a position as long.
LONGEST = Decimal("-999999.999999999999")
LAST_CLOSE = 1_800_000_000_000  # ``last_close`` of ``_longest``


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


def _runs_of(params: dict[str, Any]) -> str | None:
    """The strategy id whose runs a Query's parameters read (None: another Query, a user's strategies)."""
    key = params.get("ExpressionAttributeValues", {}).get(":pk", {}).get("S", "")
    return key.removeprefix("STRAT#") if key.startswith("STRAT#") else None


def _newest_run_queries(parties: int | None = None) -> AbstractContextManager[list[str]]:
    """The strategy ids of the runs' Queries sent while inside (``dynamodb_requests``: with ``parties``,
    each waits until that many are in flight at once)."""
    return dynamodb_requests("Query", _runs_of, parties)


def _hold(strategy: Strategy, close_time: int) -> None:
    """A hold of ``strategy`` on the candle closed at ``close_time``: its run alone (one PutItem)."""
    assert record_run(Run(strategy_id=strategy.strategy_id, user_id=strategy.user_id, close_time=close_time,
                          status="no_change", mode=strategy.mode))


def test_the_newest_runs_are_read_at_once_and_answered_for_each_strategy_in_order(aws, invoke):
    """GIVEN 5 strategies, with and without runs, some run newer than the strategy's last change WHEN
    GET /strategies THEN their 5 newest-run Queries are in flight at once, and each strategy answers its
    own last_run_close_time in creation order (before: one Query after another, ~10 ms each: thousands of
    strategies took the list past API Gateway's 30 s; here the first Query waited alone and broke the
    barrier, a 500)."""
    strategies = [dataclasses.replace(_longest(n), last_close=None) for n in range(2)]
    strategies += [_longest(n) for n in range(2, 5)]
    _store(strategies)
    _hold(strategies[0], 1_700_000_000_000)
    _hold(strategies[0], 1_700_000_060_000)  # the newest of two
    _hold(strategies[3], LAST_CLOSE + 900_000)  # a hold after the last change
    _hold(strategies[4], LAST_CLOSE - 900_000)  # a run older than the last change
    expected = [1_700_000_060_000, None, LAST_CLOSE, LAST_CLOSE + 900_000, LAST_CLOSE]

    with _newest_run_queries(parties=len(strategies)) as sent:
        response = _list(invoke, USER_A)

    assert response["statusCode"] == 200, response["body"][:300]
    answered = json.loads(response["body"])["strategies"]
    assert [(s["id"], s["last_run_close_time"]) for s in answered] == [
        (s.strategy_id, close) for s, close in zip(strategies, expected, strict=True)]
    assert sorted(sent) == sorted(s.strategy_id for s in strategies)


def test_a_page_reads_the_newest_runs_of_its_own_strategies_only(aws, invoke):
    """GIVEN 5 strategies WHEN GET /strategies?limit=2 after the first THEN only the 2 listed strategies'
    runs are read, not those of the strategies before the cursor or after the limit."""
    strategies = [_longest(n) for n in range(5)]
    _store(strategies)
    first = json.loads(_list(invoke, USER_A, limit=1)["body"])

    with _newest_run_queries() as sent:
        page = json.loads(_list(invoke, USER_A, limit=2, cursor=first["next_cursor"])["body"])

    assert [s["id"] for s in page["strategies"]] == [s.strategy_id for s in strategies[1:3]]
    assert sorted(sent) == sorted(s.strategy_id for s in strategies[1:3])


def test_a_throttled_newest_run_read_answers_a_retryable_503_not_a_partial_list(aws, invoke):
    """GIVEN DynamoDB throttling one strategy's newest-run Query past botocore's retries WHEN GET /strategies
    THEN a retryable 503 (a repeat gets past it), never a 500 and never a list without that strategy."""
    strategies = [_longest(n) for n in range(4)]
    _store(strategies)
    throttled = strategies[2].strategy_id

    with aws_refusing("Query", "dynamodb", when=lambda params: _runs_of(params) == throttled):
        response = _list(invoke, USER_A)

    assert response["statusCode"] == 503, response["body"][:300]
    assert json.loads(response["body"])["error"]["retryable"] is True
