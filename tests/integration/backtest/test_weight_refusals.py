"""A backtest job's page refused for the minute's weight after the reserve check, against the simulator.

The refusals: Binance's 429 (a simulator fault with its Retry-After) and our limiter's 90 % ceiling
(reached when a 429 reports the IP's minute used up: the client's own retry a second later is refused
until the next minute). A job waits such a refusal out inside its invocation when the wait ends before
its deadline, at most ``PAGE_WAITS`` times a page; a 418 ban, a wait past the deadline and the
synchronous route keep handing the refusal back. Waits go through the job client's injected sleep
(``_WaitedClock``, which also turns the simulator's minute), never a real one.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import time
from typing import Any

import pytest
from klineo.binance import BinanceClient, Environment, Market, RateLimiter, get_symbol_rules
from klineo.services import backtest as backtest_service
from klineo.services import kline_history
from klineo.services.backtest_jobs import SIMULATION_ROOM_S

from tests.helpers import response_json
from tests.integration.api.conftest import LambdaContext
from tests.integration.api.conftest import iam as iam  # fixture
from tests.integration.api.conftest import invoke as invoke  # fixture
from tests.integration.api.conftest import sim_env as sim_env  # fixture
from tests.integration.backtest.test_backtest_api import BODY, KLINES, _klines_requests, _poll, _post
from tests.integration.backtest.test_trading_reserve import (
    TWO_PAGES,
    _cached_days,
    _queued_job,
    _WaitedClock,
    _WholeInvocation,
)
from tests.integration.backtest.test_trading_reserve import busy_ip as busy_ip  # fixture

# A Retry-After longer than the client waits itself (its max_retry_wait_s, 10 s): the job must.
RETRY_AFTER_S = 30


@dataclasses.dataclass(frozen=True)
class _Invocation(LambdaContext):
    """A worker invocation with ``remaining_s`` left."""

    remaining_s: float = 0.0

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining_s * 1000)


@pytest.fixture
def fresh_pacer(monkeypatch) -> None:
    """A container pacer that has sent nothing yet (other tests' pages do not count)."""
    monkeypatch.setattr(kline_history, "_pacer", kline_history.Pacer())


def _job_client(clock: _WaitedClock, monkeypatch) -> BinanceClient:
    """The worker's futures client on ``clock`` (its waits move it on); returned for the test to use."""
    client = BinanceClient(Market.FUTURES, Environment.PRODUCTION, clock=clock.time, sleep=clock.sleep,
                           rate_limiter=RateLimiter(clock=clock.time, sleep=clock.sleep))
    monkeypatch.setattr(backtest_service, "get_client", lambda market, environment: client)
    return client


def _run_worker(iam, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    worker = importlib.import_module("functions.backtest_worker.app")
    with iam.acting_as("backtest_worker"):
        return worker.lambda_handler(event, context)


def _unthrottled_result(invoke, monkeypatch) -> dict[str, Any]:
    """BODY's result from the synchronous route, as an unthrottled run answers it."""
    monkeypatch.setattr(backtest_service, "SYNC_MAX_CANDLES", 10_000)
    response = _post(invoke, BODY)
    assert response["statusCode"] == 200, response["body"]
    return response_json(response)["result"]


def _wait_lines(caplog) -> list[dict[str, Any]]:
    """The fields of the worker's "backtest page waits" log lines."""
    return [record.__dict__ for record in caplog.records
            if record.getMessage() == "backtest page waits for the weight budget"]


def _wait_fields(line: dict[str, Any]) -> tuple[Any, ...]:
    return line["wait_s"], line["error_category"], line["binance_status"]


def _handed_back(answer: dict[str, Any], event: dict[str, Any]) -> bool:
    return [f["itemIdentifier"] for f in answer["batchItemFailures"]] == [event["Records"][0]["messageId"]]


def test_a_job_refused_by_binance_429_waits_its_retry_after_and_finishes(busy_ip, invoke, iam, fresh_pacer,
                                                                          monkeypatch, caplog) -> None:
    """GIVEN a queued job whose first klines page Binance answers 429 with Retry-After 30 s WHEN the worker
    runs it with its whole timeout ahead THEN it waits exactly those 30 s (one log line, no URL), sends the
    page again and is done in the same delivery, with the answer of an unthrottled run."""
    job_id, event = _queued_job(invoke, monkeypatch)
    busy_ip.faults.add("http_429", path=KLINES, retry_after_s=RETRY_AFTER_S)
    clock = _WaitedClock(busy_ip)
    _job_client(clock, monkeypatch)

    answer = _run_worker(iam, event, _WholeInvocation(function_name="backtest_worker"))

    assert answer == {"batchItemFailures": []}
    assert clock.waits == [(RETRY_AFTER_S, 1)]
    assert [r.status for r in _klines_requests(busy_ip)] == [429, 200]
    [line] = _wait_lines(caplog)
    assert _wait_fields(line) == (RETRY_AFTER_S, "rate_limit", 429)
    assert busy_ip.url not in json.dumps(line, default=str)
    polled = _poll(invoke, job_id)
    assert polled["status"] == "done"
    assert polled["result"] == _unthrottled_result(invoke, monkeypatch)


def test_a_job_refused_by_our_limiters_ceiling_waits_for_the_next_minute_and_finishes(
        busy_ip, invoke, iam, fresh_pacer, monkeypatch, caplog) -> None:
    """GIVEN a queued job, at second 10 of a minute, whose page Binance answers 429 Retry-After 1 reporting
    the IP's minute used past 90 % WHEN the worker runs it THEN the client's retry a second later is refused
    by the limiter's 90 % ceiling, the job waits that refusal's retry_after into the next minute and is done
    in the same delivery, with the answer of an unthrottled run."""
    job_id, event = _queued_job(invoke, monkeypatch)
    clock = _WaitedClock(busy_ip)
    minute = math.floor(time.time() / 60) + 1
    clock.offset = minute * 60 + 10 - time.time()
    client = _job_client(clock, monkeypatch)
    get_symbol_rules(client, BODY["symbol"])  # an earlier job's exchangeInfo: no call before the page
    busy_ip.use_weight(2300)  # other containers' burst, of which the page's 429 tells first
    busy_ip.faults.add("http_429", path=KLINES, retry_after_s=1)

    answer = _run_worker(iam, event, _WholeInvocation(function_name="backtest_worker"))

    assert answer == {"batchItemFailures": []}
    (client_retry, _), (ceiling_wait, klines_before) = clock.waits
    assert client_retry == 1 and klines_before == 1
    assert 48 <= ceiling_wait <= 50 and clock.time() // 60 == minute + 1
    [line] = _wait_lines(caplog)  # our limiter refused: no Binance status
    assert _wait_fields(line) == (ceiling_wait, "rate_limit", None)
    assert [r.status for r in _klines_requests(busy_ip)] == [429, 200]
    polled = _poll(invoke, job_id)
    assert polled["status"] == "done"
    assert polled["result"] == _unthrottled_result(invoke, monkeypatch)


def test_a_wait_past_the_deadline_hands_the_job_back_with_the_days_it_fetched(
        busy_ip, invoke, iam, aws, fresh_pacer, monkeypatch) -> None:
    """GIVEN a two-page job whose invocation may wait 45 s, and a 429 Retry-After 30 s on each page WHEN the
    worker runs it THEN the first page's 30 s are waited out (its 41 days cached) and the second page's,
    which would end past the deadline, are not: the job is handed back, reads running, keeps those days."""
    job_id, event = _queued_job(invoke, monkeypatch, TWO_PAGES)
    busy_ip.faults.add("http_429", path=KLINES, retry_after_s=RETRY_AFTER_S)
    busy_ip.faults.add("http_429", path=KLINES, retry_after_s=RETRY_AFTER_S, after=1)
    clock = _WaitedClock(busy_ip)
    _job_client(clock, monkeypatch)
    context = _Invocation(function_name="backtest_worker", remaining_s=SIMULATION_ROOM_S + 45)

    answer = _run_worker(iam, event, context)

    assert _handed_back(answer, event)
    assert clock.waits == [(RETRY_AFTER_S, 1)]
    assert [r.status for r in _klines_requests(busy_ip)] == [429, 200, 429]
    assert _poll(invoke, job_id)["status"] == "running"
    assert _cached_days(aws) == 41


def test_a_418_ban_is_never_waited_out_in_the_invocation(busy_ip, invoke, iam, fresh_pacer,
                                                         monkeypatch) -> None:
    """GIVEN a queued job whose page Binance answers 418 (IP banned) with Retry-After 30 s WHEN the worker
    runs it with its whole timeout ahead THEN no wait and no second klines request: handed back, running."""
    job_id, event = _queued_job(invoke, monkeypatch)
    busy_ip.faults.add("http_418", path=KLINES, retry_after_s=RETRY_AFTER_S)
    clock = _WaitedClock(busy_ip)
    _job_client(clock, monkeypatch)

    answer = _run_worker(iam, event, _WholeInvocation(function_name="backtest_worker"))

    assert _handed_back(answer, event)
    assert clock.waits == []
    assert [r.status for r in _klines_requests(busy_ip)] == [418]
    assert _poll(invoke, job_id)["status"] == "running"


def test_a_page_refused_more_than_page_waits_times_hands_the_job_back(busy_ip, invoke, iam, fresh_pacer,
                                                                      monkeypatch) -> None:
    """GIVEN a queued job whose page Binance refuses (429, Retry-After 30 s) once more than PAGE_WAITS times
    WHEN the worker runs it with its whole timeout ahead THEN it waits PAGE_WAITS times, then hands the
    job back (running) rather than waiting on a saturated IP until its deadline."""
    job_id, event = _queued_job(invoke, monkeypatch)
    refusals = kline_history.PAGE_WAITS + 1
    busy_ip.faults.add("http_429", refusals, path=KLINES, retry_after_s=RETRY_AFTER_S)
    clock = _WaitedClock(busy_ip)
    _job_client(clock, monkeypatch)

    answer = _run_worker(iam, event, _WholeInvocation(function_name="backtest_worker"))

    assert _handed_back(answer, event)
    assert clock.waits == [(RETRY_AFTER_S, n) for n in range(1, refusals)]
    assert [r.status for r in _klines_requests(busy_ip)] == [429] * refusals
    assert _poll(invoke, job_id)["status"] == "running"


def test_a_synchronous_backtest_refused_by_binance_answers_429_without_waiting(busy_ip, invoke, fresh_pacer,
                                                                               monkeypatch) -> None:
    """GIVEN Binance answering the page 429 with Retry-After 30 s WHEN a backtest is posted (synchronous)
    THEN 429 rate_limit with that Retry-After, without any sleep and without a second klines request."""
    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"a synchronous backtest slept {seconds} s")

    client = BinanceClient(Market.FUTURES, Environment.PRODUCTION, sleep=no_sleep,
                           rate_limiter=RateLimiter(sleep=no_sleep))
    monkeypatch.setattr(backtest_service, "get_client", lambda market, environment: client)
    busy_ip.faults.add("http_429", path=KLINES, retry_after_s=RETRY_AFTER_S)

    response = _post(invoke, BODY)

    assert response["statusCode"] == 429, response["body"]
    assert response["headers"]["Retry-After"] == str(RETRY_AFTER_S)
    assert response_json(response)["error"]["category"] == "rate_limit"
    assert [r.status for r in _klines_requests(busy_ip)] == [429]
