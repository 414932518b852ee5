"""Backtests leave the trading reserve of the IP's Binance weight, as charts do, against the simulator.

"Other containers' traffic" is weight spent on the simulator for 127.0.0.1 (``Simulator.use_weight``):
the backtest learns it from the ``X-MBX-USED-WEIGHT-1M`` of its first answer (exchangeInfo, weight 1),
as it would from Binance. The simulator's window is set to span from the epoch to twice now so that no
window edge (a minute's, or a day's at UTC midnight) turning during a test can clear that usage; the
client's own minute is the wall clock's, except for the job that waits, which runs on a clock its wait
moves on.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from typing import Any

import boto3
import pytest
from klineo.binance import TRADING_RESERVE, BinanceClient, Environment, Market, RateLimiter, clear_all_caches
from klineo.services import backtest as backtest_service
from klineo.services import kline_history
from klineo.store import backtest_jobs as job_store

from tests.helpers import load_event, response_json
from tests.integration.api.conftest import USER_A, LambdaContext
from tests.integration.api.conftest import iam as iam  # fixture
from tests.integration.api.conftest import invoke as invoke  # fixture
from tests.integration.api.conftest import sim_env as sim_env  # fixture
from tests.integration.backtest.test_backtest_api import (
    BODY,
    _klines_requests,
    _poll,
    _post,
    after_visibility_timeout,
)

# Where a page (weight 5) no longer fits: the minute's usage may reach 50 % (1,200 of the futures 2,400).
RESERVE_EDGE = int(2400 * (0.9 - TRADING_RESERVE))
# 51 days of 1h candles (50 and the warm-up's): two pages, the first covering 41 whole days.
TWO_PAGES = {**BODY, "end": "2025-02-20T00:00:00Z"}


@pytest.fixture
def busy_ip(sim_env) -> Any:
    """The simulator, its weight window from the epoch to twice now (windows start at multiples of their
    length), so no edge turns mid-test and clears nothing: a day-long one turned at UTC midnight."""
    sim_env.configure(weight_window_s=2 * int(time.time()))
    return sim_env


def _cached_days(aws) -> int:
    return len(boto3.client("dynamodb", region_name=aws.region).scan(
        TableName=aws.refs["KlinesCacheTable"])["Items"])


def test_a_backtest_past_the_trading_reserve_is_a_429_naming_why(busy_ip, invoke) -> None:
    """GIVEN other containers having used half of the IP's minute weight WHEN a backtest is posted THEN
    429 rate_limit with Retry-After at the next minute, saying trading keeps its budget; no klines sent."""
    busy_ip.use_weight(RESERVE_EDGE)

    response = _post(invoke, BODY)

    assert response["statusCode"] == 429, response["body"]
    assert 1 <= int(response["headers"]["Retry-After"]) <= 60
    error = response_json(response)["error"]
    assert (error["category"], error["message"]) == (  # the reason, then the advice once
        "rate_limit", "Backtests are paused for the rest of this minute so that trading keeps its Binance "
        "request budget; the days already fetched are kept. Please retry shortly.")
    assert _klines_requests(busy_ip) == []


def test_a_backtest_below_the_reserve_runs_as_before(busy_ip, invoke) -> None:
    """GIVEN the IP's minute weight well below the reserve's edge WHEN a backtest is posted THEN 200 with
    the whole period, from one klines page."""
    busy_ip.use_weight(RESERVE_EDGE - 200)

    response = _post(invoke, BODY)

    assert response["statusCode"] == 200, response["body"]
    assert response_json(response)["result"]["candles"] == 20 * 24
    assert len(_klines_requests(busy_ip)) == 1


def test_a_backtest_stopped_at_the_reserve_midway_keeps_the_days_it_fetched(busy_ip, invoke, aws) -> None:
    """GIVEN usage where the first of two pages still fits and the second would eat into the reserve
    WHEN backtested THEN 429 after one page, with that page's 41 whole days cached; a later run sends
    only the one page that is left."""
    busy_ip.use_weight(RESERVE_EDGE - 8)  # + exchangeInfo 1 + page 5 = 1,198: the next page's 5 cannot fit

    response = _post(invoke, TWO_PAGES)

    assert response["statusCode"] == 429, response["body"]
    assert len(_klines_requests(busy_ip)) == 1
    assert _cached_days(aws) == 41
    busy_ip.state.rate_limiter.reset()  # the next minute, on a container that has not seen this one
    fresh = BinanceClient(Market.FUTURES, Environment.PRODUCTION, rate_limiter=RateLimiter())
    start, end = 1_735_603_200_000, 1_740_009_600_000  # 2024-12-31 (the warm-up's day), 2025-02-20
    history = kline_history.closed_candles(fresh, "BTCUSDT", "1h", start, end, int(time.time() * 1000))
    assert (history.cached_days, history.requests, len(history.candles)) == (41, 1, 51 * 24)
    assert _cached_days(aws) == 51


class _WaitedClock:
    """Wall time plus the time waited: the job client's clock and sleep. A wait turns the minute at the
    simulator too (its weight counters start again), as Binance's minute turns."""

    def __init__(self, sim) -> None:
        self.sim, self.offset, self.waits = sim, 0.0, []

    def time(self) -> float:
        return time.time() + self.offset

    def sleep(self, seconds: float) -> None:
        self.waits.append((seconds, len(_klines_requests(self.sim))))
        self.offset += seconds
        self.sim.state.rate_limiter.reset()


@dataclasses.dataclass(frozen=True)
class _WholeInvocation(LambdaContext):
    """A worker invocation with all of its 900 s still ahead."""

    def get_remaining_time_in_millis(self) -> int:
        return job_store.ATTEMPT_SECONDS * 1000


def _queued_job(invoke, monkeypatch, body: dict[str, Any] = BODY) -> tuple[str, dict[str, Any]]:
    """A job for ``body`` (the sync limit lowered) and the worker event of its first delivery.

    The POST reads the symbol's rules (exchangeInfo) before queuing; the worker is another function, in
    another container that has read nothing yet, so this process forgets what the POST cached."""
    monkeypatch.setattr(backtest_service, "SYNC_MAX_CANDLES", 100)
    job_id = response_json(_post(invoke, body))["job_id"]
    clear_all_caches()
    event = load_event("backtest_worker")
    event["Records"][0]["body"] = f'{{"user_id": "{USER_A}", "job_id": "{job_id}"}}'
    return job_id, event


def _job_client(clock: _WaitedClock, monkeypatch) -> None:
    """The worker's futures client on ``clock`` (its waits move it on)."""
    client = BinanceClient(Market.FUTURES, Environment.PRODUCTION, clock=clock.time, sleep=clock.sleep,
                           rate_limiter=RateLimiter(clock=clock.time, sleep=clock.sleep))
    monkeypatch.setattr(backtest_service, "get_client", lambda market, environment: client)


def test_a_job_at_the_reserve_waits_for_the_next_minute_and_finishes(busy_ip, invoke, iam,
                                                                     monkeypatch) -> None:
    """GIVEN a queued job and the IP's minute used up to the reserve WHEN the worker runs it with its
    whole timeout ahead THEN it waits (before sending any klines) until the next minute, then runs to
    done in the same delivery: no redelivery, never failed."""
    job_id, event = _queued_job(invoke, monkeypatch)
    busy_ip.use_weight(RESERVE_EDGE)
    clock = _WaitedClock(busy_ip)
    _job_client(clock, monkeypatch)

    worker = importlib.import_module("functions.backtest_worker.app")
    with iam.acting_as("backtest_worker"):
        answer = worker.lambda_handler(event, _WholeInvocation(function_name="backtest_worker"))

    assert answer == {"batchItemFailures": []}
    assert len(clock.waits) == 1
    waited, klines_before = clock.waits[0]
    assert 1 <= waited <= 60 and klines_before == 0
    polled = _poll(invoke, job_id)
    assert polled["status"] == "done" and polled["result"]["candles"] == 20 * 24


def test_a_job_without_time_left_to_wait_is_handed_back_and_done_on_redelivery(busy_ip, invoke,
                                                                                monkeypatch) -> None:
    """GIVEN a queued job and the IP's minute used up to the reserve WHEN the worker has too little time
    left to wait for the next minute (20 s of the test context) THEN the message is handed back for
    redelivery, the job reads running (not failed) and no klines were sent; the next delivery, a minute
    later, runs it to done."""
    job_id, event = _queued_job(invoke, monkeypatch)
    busy_ip.use_weight(RESERVE_EDGE)

    answer = invoke("backtest_worker", event)

    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == [event["Records"][0]["messageId"]]
    assert _poll(invoke, job_id)["status"] == "running"
    assert _klines_requests(busy_ip) == []
    clock = _WaitedClock(busy_ip)
    clock.sleep(60)  # SQS's visibility timeout later: another minute at Binance and on our clock
    after_visibility_timeout(USER_A, job_id)
    _job_client(clock, monkeypatch)
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "2"
    assert invoke("backtest_worker", event) == {"batchItemFailures": []}
    assert _poll(invoke, job_id)["status"] == "done" and len(clock.waits) == 1


def test_a_backtest_past_its_containers_share_is_a_429_not_a_sleep(busy_ip, invoke, monkeypatch) -> None:
    """GIVEN the container's backtest pacer already full this minute WHEN a backtest is posted THEN 429
    rate_limit with Retry-After, without sleeping (a minute's wait would outlast API Gateway's 29 s)."""
    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"a synchronous backtest slept {seconds} s")

    full = kline_history.Pacer(kline_history.PAGE_WEIGHT, sleep=no_sleep)
    full.take(kline_history.PAGE_WEIGHT)
    monkeypatch.setattr(kline_history, "_pacer", full)

    response = _post(invoke, BODY)

    assert response["statusCode"] == 429, response["body"]
    assert 1 <= int(response["headers"]["Retry-After"]) <= 60
    assert response_json(response)["error"]["category"] == "rate_limit"
    assert _klines_requests(busy_ip) == []
