"""POST /strategies/backtest and GET /strategies/backtest/{jobId} against the simulator and moto.

The simulator serves deterministic klines for any past period (a function of symbol and time),
so a backtest over fixed past dates gives the same candles on every run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from klineo.binance import Candle
from klineo.services import backtest as backtest_service
from klineo.services import kline_history
from klineo.settings import get_settings
from klineo.store import aws as aws_clients
from klineo.store import backtest_jobs as job_store
from klineo.store import klines_cache

from tests.helpers import load_event, response_json, with_body, with_user
from tests.integration.api.conftest import USER_A, USER_B, at_path
from tests.integration.api.conftest import iam as iam  # fixture
from tests.integration.api.conftest import invoke as invoke  # fixture
from tests.integration.api.conftest import sim_env as sim_env  # fixture

KLINES = "/fapi/v1/klines"
BODY: dict[str, Any] = {
    "symbol": "BTCUSDT", "interval": "1h", "type": "sma_crossover",
    "parameters": {"fast": 3, "slow": 8}, "quote_size_usdt": 1000,
    "stop_loss_pct": 1.5, "take_profit_pct": 3,
    "start": "2025-01-01T00:00:00Z", "end": "2025-01-21T00:00:00Z",
}


def _post(invoke, body: dict[str, Any], user: str = USER_A) -> dict[str, Any]:
    return invoke("strategy_backtest", with_user(with_body(load_event("strategy_backtest"), body), user))


def _klines_requests(sim) -> list[Any]:
    return [record for record in sim.journal if record.path == KLINES]


def test_backtest_answers_trades_curve_and_summary(sim_env, invoke) -> None:
    """GIVEN 20 days of 1h candles WHEN backtesting THEN 200 with trades, a curve and consistent numbers."""
    response = _post(invoke, BODY)
    assert response["statusCode"] == 200, response["body"]
    answer = response_json(response)
    assert answer["status"] == "done" and answer["job_id"] is None
    result = answer["result"]
    assert result["candles"] == 20 * 24
    assert result["number_of_trades"] == len(result["trades"]) > 0
    assert len(result["equity_curve"]) == 20 * 24  # under 500 points: every candle
    assert result["equity_curve"][-1]["equity"] == result["final_equity"]
    total = sum(float(trade["fees"]) for trade in result["trades"])
    assert float(result["fees_paid"]) == pytest.approx(total, abs=1e-6)
    reasons = {trade["exit_reason"] for trade in result["trades"]}
    assert reasons <= {"signal", "stop_loss", "take_profit", None}
    assert float(result["max_drawdown_pct"]) >= 0


def test_same_backtest_twice_gives_the_same_result(sim_env, invoke) -> None:
    """GIVEN one request WHEN sent twice THEN both answers are identical (deterministic)."""
    first = response_json(_post(invoke, BODY))
    second = response_json(_post(invoke, BODY))
    assert first == second


def test_second_backtest_over_the_same_days_asks_binance_for_no_klines(sim_env, invoke) -> None:
    """GIVEN a backtest that filled the day cache WHEN the same days run again THEN no klines call."""
    assert _post(invoke, BODY)["statusCode"] == 200
    cold = _klines_requests(sim_env)
    assert cold and all(record.weight == kline_history.PAGE_WEIGHT for record in cold)
    sim_env.clear_journal()
    again = {**BODY, "parameters": {"fast": 5, "slow": 12}, "start": "2025-01-03T00:00:00Z"}
    assert _post(invoke, again)["statusCode"] == 200
    assert _klines_requests(sim_env) == []


def test_cache_stores_only_fully_closed_days(sim_env, invoke, aws, monkeypatch) -> None:
    """GIVEN a period ending now WHEN backtested THEN today's (open) day is not cached, yesterday's is.

    "Now" is yesterday's 12:07:30 UTC, for the backtest and the simulator alike: on the wall clock, in the
    first minute of a UTC day yesterday's last candle is not final yet (FINAL_AFTER_MS) and is rightly not
    cached, so the test failed from 00:00 to 00:01 UTC."""
    day_ms = 86_400_000
    now_ms = int(time.time() * 1000) // day_ms * day_ms - day_ms // 2 + 450_000
    monkeypatch.setattr(backtest_service, "_now_ms", lambda: now_ms)
    sim_env.set_clock_skew_ms(now_ms - int(time.time() * 1000))
    now = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC)
    body = {**BODY, "interval": "15m", "start": (now - dt.timedelta(days=2)).isoformat(),
            "end": now.isoformat()}
    assert _post(invoke, body)["statusCode"] == 200
    table = boto3.client("dynamodb", region_name=aws.region)
    items = table.scan(TableName=aws.refs["KlinesCacheTable"])["Items"]
    days = {item["sk"]["S"] for item in items}
    today = now.strftime("%Y-%m-%d")
    yesterday = (now - dt.timedelta(days=1)).strftime("%Y-%m-%d")
    assert yesterday in days and today not in days
    cached = klines_cache.decode_day(int(items[0]["day_start"]["N"]), 900_000, items[0]["candles"]["B"])
    assert len(cached) == int(items[0]["count"]["N"])


def test_a_day_whose_last_candle_just_closed_is_not_cached_as_final(aws, monkeypatch) -> None:
    """GIVEN a fetch 300 ms after midnight, while Binance still shows the 23:00 1h candle open (close
    104.5) WHEN a later backtest reads the same day (Binance's final close is 101) THEN it gets 101: a day
    is cached only once its last candle closed a while ago (FINAL_AFTER_MS), never on our clock alone."""
    hour, day, day_start = 3_600_000, 86_400_000, 1_735_689_600_000  # 2025-01-01T00:00:00Z

    def candle(index: int, close: str) -> Candle:
        open_time = day_start + index * hour
        return Candle(open_time, Decimal("100"), Decimal("110"), Decimal("90"), Decimal(close), Decimal("5"),
                      open_time + hour - 1)

    final = [candle(i, "101") for i in range(24)]
    binance = {"answer": [*final[:23], candle(23, "104.5")]}

    def klines(client, symbol, interval, *, limit, start_time, end_time):
        return [c for c in binance["answer"] if start_time <= c.open_time <= end_time]

    monkeypatch.setattr(kline_history.endpoints, "klines", klines)
    client = SimpleNamespace(environment=SimpleNamespace(value="production"),
                             leave_trading_reserve=lambda weight, refusal, wait_until=None: None)
    kline_history.closed_candles(client, "BTCUSDT", "1h", day_start, day_start + day, day_start + day + 300)
    binance["answer"] = final

    later = kline_history.closed_candles(client, "BTCUSDT", "1h", day_start, day_start + day,
                                         day_start + 10 * day)

    assert later.candles[-1].close == Decimal("101")


def test_backtest_refuses_two_sizings_naming_the_fields(sim_env, invoke) -> None:
    """GIVEN size and size_pct together WHEN posting THEN 422 saying to send exactly one, nothing fetched."""
    response = _post(invoke, {**BODY, "size": "0.01"})
    assert response["statusCode"] == 422
    assert "exactly one of size" in response["body"]
    assert _klines_requests(sim_env) == []


def test_backtest_refuses_bad_parameters_like_a_create(sim_env, invoke) -> None:
    """GIVEN fast >= slow WHEN posting THEN 422 naming parameters, as POST /strategies does."""
    response = _post(invoke, {**BODY, "parameters": {"fast": 9, "slow": 3}})
    assert response["statusCode"] == 422
    assert "parameters" in response["body"]


def test_backtest_refuses_a_short_only_strategy_whose_type_never_shorts(sim_env, invoke) -> None:
    """GIVEN direction short and allow_short false (every signal flat) WHEN posting THEN 422 naming direction,
    as POST /strategies does, nothing fetched."""
    response = _post(invoke, {**BODY, "direction": "short",
                              "parameters": {"fast": 3, "slow": 8, "allow_short": False}})
    assert response["statusCode"] == 422, response["body"]
    assert response_json(response)["error"]["field"] == "direction"
    assert _klines_requests(sim_env) == []


def test_backtest_with_another_users_connection_is_not_found(sim_env, invoke) -> None:
    """GIVEN a connection id that is not the caller's WHEN posting THEN 404 naming connection_id."""
    response = _post(invoke, {**BODY, "connection_id": "0" * 32})
    assert response["statusCode"] == 404
    assert "connection_id" in response["body"]


def test_long_backtest_is_a_job_polled_until_done(sim_env, invoke, aws, monkeypatch) -> None:
    """GIVEN a period over the sync limit WHEN posting THEN 202 + job id; the worker runs it; GET shows it."""
    monkeypatch.setattr(backtest_service, "SYNC_MAX_CANDLES", 100)
    response = _post(invoke, BODY)
    assert response["statusCode"] == 202, response["body"]
    job_id = response_json(response)["job_id"]
    get_event = with_user(at_path(load_event("strategy_backtest_get"), f"/strategies/backtest/{job_id}",
                                  jobId=job_id), USER_A)
    assert response_json(invoke("strategy_backtest_get", get_event))["status"] == "queued"
    sqs = boto3.client("sqs", region_name=aws.region)
    messages = sqs.receive_message(QueueUrl=aws.refs["BacktestQueue"], MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    event = load_event("backtest_worker")
    event["Records"][0].update(messageId=messages[0]["MessageId"], body=messages[0]["Body"])
    assert invoke("backtest_worker", event) == {"batchItemFailures": []}
    polled = response_json(invoke("strategy_backtest_get", get_event))
    assert polled["status"] == "done"
    monkeypatch.setattr(backtest_service, "SYNC_MAX_CANDLES", 10_000)
    assert polled["result"] == response_json(_post(invoke, BODY))["result"]
    other = with_user(get_event, USER_B)
    assert invoke("strategy_backtest_get", other)["statusCode"] == 404


def test_a_period_of_exactly_the_sync_limit_from_an_unaligned_start_is_answered_at_once(sim_env, invoke,
                                                                                       monkeypatch) -> None:
    """GIVEN a start at 00:30 and an end at 05:00 100 hourly opens later (01:00 Jan 1 to 04:00 Jan 5) WHEN the
    sync limit is 100 candles THEN 200 with those 100 candles, not a job: the count is of candles opening in
    the period, as the backtest reads them, not of its length in intervals rounded up (100.5 -> 101)."""
    monkeypatch.setattr(backtest_service, "SYNC_MAX_CANDLES", 100)
    body = {**BODY, "start": "2025-01-01T00:30:00Z", "end": "2025-01-05T05:00:00Z"}
    response = _post(invoke, body)
    assert response["statusCode"] == 200, response["body"]
    assert response_json(response)["result"]["candles"] == 100


def test_a_job_failing_every_delivery_is_marked_failed_on_the_last(sim_env, invoke, aws, monkeypatch) -> None:
    """GIVEN klines down WHEN a job's message fails THEN it is redelivered; at the last delivery, failed."""
    monkeypatch.setattr(backtest_service, "SYNC_MAX_CANDLES", 100)
    job_id = response_json(_post(invoke, BODY))["job_id"]
    sqs = boto3.client("sqs", region_name=aws.region)
    body = sqs.receive_message(QueueUrl=aws.refs["BacktestQueue"])["Messages"][0]["Body"]
    sim_env.faults.add("http_503_unavailable", 100, path=KLINES)
    event = load_event("backtest_worker")
    event["Records"][0]["body"] = body
    get_event = with_user(at_path(load_event("strategy_backtest_get"), f"/strategies/backtest/{job_id}",
                                  jobId=job_id), USER_A)
    answer = invoke("backtest_worker", event)
    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == [event["Records"][0]["messageId"]]
    assert response_json(invoke("strategy_backtest_get", get_event))["status"] == "running"
    after_visibility_timeout(USER_A, job_id)
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(backtest_service.JOB_ATTEMPTS)
    assert invoke("backtest_worker", event) == {"batchItemFailures": []}
    polled = response_json(invoke("strategy_backtest_get", get_event))
    assert polled["status"] == "failed" and "could not be completed" in polled["error"]


def after_visibility_timeout(user: str, job_id: str, seconds: int = job_store.ATTEMPT_SECONDS + 1) -> None:
    """Move the job's claim ``seconds`` back, past the worker's timeout by default, as SQS's redelivery of a
    message handed back comes only after the queue's visibility timeout (longer than the worker may run)."""
    aws_clients.dynamodb().update_item(
        TableName=get_settings().data_table,
        Key={"pk": {"S": f"USER#{user}"}, "sk": {"S": f"BACKTEST#{job_id}"}},
        UpdateExpression="SET started_s = started_s - :timeout",
        ExpressionAttributeValues={":timeout": {"N": str(seconds)}})


def _poll(invoke, job_id: str) -> dict[str, Any]:
    event = with_user(at_path(load_event("strategy_backtest_get"), f"/strategies/backtest/{job_id}",
                              jobId=job_id), USER_A)
    return response_json(invoke("strategy_backtest_get", event))


def test_a_job_whose_last_delivery_died_uncaught_reads_failed_once_it_cannot_be_running(sim_env, invoke,
                                                                                         monkeypatch) -> None:
    """GIVEN a queued job WHEN its last delivery started and the worker died where nothing could record
    it (timeout, memory) THEN polling says running while that delivery may still run, and failed once
    the worker's timeout has passed; an earlier delivery's death leaves it running (SQS delivers again)."""
    monkeypatch.setattr(backtest_service, "SYNC_MAX_CANDLES", 100)
    job_id = response_json(_post(invoke, BODY))["job_id"]
    long_ago = time.time() - job_store.ATTEMPT_SECONDS - 300

    assert job_store.start_job(USER_A, job_id, job_store.JOB_ATTEMPTS - 1, now_s=long_ago)
    assert _poll(invoke, job_id)["status"] == "running"
    assert job_store.start_job(USER_A, job_id, job_store.JOB_ATTEMPTS)
    assert _poll(invoke, job_id)["status"] == "running"
    after_visibility_timeout(USER_A, job_id, job_store.ATTEMPT_SECONDS + 300)
    polled = _poll(invoke, job_id)
    assert polled["status"] == "failed" and "could not be completed" in polled["error"]


def test_a_job_older_than_the_queue_keeps_its_message_reads_failed(sim_env, invoke) -> None:
    """GIVEN a job still queued after the queue's retention (its message expired or dead-lettered
    without running) WHEN polled THEN failed, never queued for good; a fresh one stays queued."""
    fresh, stale = "f" * 32, "e" * 32
    job_store.put_job(USER_A, fresh, {"symbol": "BTCUSDT"})
    job_store.put_job(USER_A, stale, {"symbol": "BTCUSDT"},
                      now_s=time.time() - job_store.QUEUE_RETENTION_SECONDS - 300)

    assert _poll(invoke, fresh)["status"] == "queued"
    assert _poll(invoke, stale)["status"] == "failed"


def _stored_job_ids(aws, user: str) -> list[str]:
    items = aws_clients.dynamodb().scan(TableName=aws.refs["DataTable"])["Items"]
    return [item["sk"]["S"].removeprefix("BACKTEST#") for item in items
            if item["pk"]["S"] == f"USER#{user}" and item["sk"]["S"].startswith("BACKTEST#")]


@contextlib.contextmanager
def _sqs_refusing() -> Iterator[None]:
    """SQS answers every SendMessage 503 ServiceUnavailable while in the block."""
    def refuse(**_: object) -> None:
        raise aws_clients.sqs().exceptions.ClientError(
            {"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "SendMessage")

    events = aws_clients.sqs().meta.events
    events.register("before-call.sqs.SendMessage", refuse)
    try:
        yield
    finally:
        events.unregister("before-call.sqs.SendMessage", refuse)


def test_a_job_whose_message_could_not_be_sent_reads_failed_not_queued(sim_env, invoke, aws,
                                                                       monkeypatch) -> None:
    """GIVEN SQS refusing the job's message WHEN a long backtest is posted THEN a retryable 503 saying it
    could not be queued, and the job written before the send reads failed with that reason (not queued
    for a day); a retry once SQS is back is a new job, queued."""
    monkeypatch.setattr(backtest_service, "SYNC_MAX_CANDLES", 100)
    with _sqs_refusing():
        refused = _post(invoke, BODY)
    assert refused["statusCode"] == 503
    error = response_json(refused)["error"]
    assert "could not be queued" in error["message"] and error["retryable"] is True
    [stranded] = _stored_job_ids(aws, USER_A)
    polled = _poll(invoke, stranded)
    assert polled["status"] == "failed" and "could not be queued" in polled["error"]

    retried = _post(invoke, BODY)
    assert retried["statusCode"] == 202, retried["body"]
    assert _poll(invoke, response_json(retried)["job_id"])["status"] == "queued"


def _refused_as_validation(response: dict[str, Any], field: str) -> None:
    """``response`` is request validation's answer: 422 invalid_request naming ``field`` (in errors too)."""
    assert response["statusCode"] == 422, response["body"]
    error = response_json(response)["error"]
    named = (error["category"], error["field"], error["errors"][0]["field"])
    assert named == ("invalid_request", field, field)


def test_a_period_in_the_future_is_refused_and_one_ending_later_is_cut_at_now(sim_env, invoke) -> None:
    """GIVEN a start after now THEN 422 naming start, as a start before 2017 or an end before the start is;
    GIVEN an end years ahead THEN answered up to now."""
    future = {**BODY, "start": "2999-01-01T00:00:00Z", "end": "2999-02-01T00:00:00Z"}
    _refused_as_validation(_post(invoke, future), "start")
    _refused_as_validation(_post(invoke, {**BODY, "start": "2016-12-31T00:00:00Z"}), "start")
    assert _klines_requests(sim_env) == []
    now = dt.datetime.now(dt.UTC)
    recent = {**BODY, "start": (now - dt.timedelta(hours=30)).isoformat(), "end": "2999-01-01T00:00:00Z"}
    answer = _post(invoke, recent)
    assert answer["statusCode"] == 200, answer["body"]
    assert response_json(answer)["result"]["candles"] in (29, 30)  # the open hour is never simulated


def test_a_period_of_more_candles_than_a_backtest_takes_is_refused_as_validation(sim_env, invoke) -> None:
    """GIVEN a period of more 1m candles than MAX_CANDLES WHEN posting THEN 422 naming end, as any period out
    of bounds is (an end before the start: 422 naming end too), before any job or klines."""
    too_long = {**BODY, "interval": "1m", "start": "2020-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"}
    _refused_as_validation(_post(invoke, too_long), "end")
    backwards = {**BODY, "start": "2025-01-02T00:00:00Z", "end": "2025-01-01T00:00:00Z"}
    _refused_as_validation(_post(invoke, backwards), "end")
    assert _klines_requests(sim_env) == []


def test_the_drawdown_counts_the_fall_from_the_starting_equity(sim_env, invoke) -> None:
    """GIVEN one candle whose close the strategy enters at (fee and slippage take the equity below the start)
    WHEN backtested THEN max_drawdown_pct is that fall from the starting equity (the first peak), not 0."""
    body = {**BODY, "quote_size_usdt": 50_000, "leverage": 10, "end": "2025-01-01T01:00:00Z"}
    response = _post(invoke, body)
    assert response["statusCode"] == 200, response["body"]
    result = response_json(response)["result"]
    assert result["candles"] == 1 and result["number_of_trades"] == 1
    start, final = Decimal(result["starting_equity"]), Decimal(result["final_equity"])
    assert final < start
    assert result["max_drawdown_pct"] == str(((start - final) / start * 100).quantize(Decimal("0.01")))


LISTED_MS = 1569398400000  # BTCUSDT's onboardDate in the simulator's exchangeInfo: 2019-09-25T08:00:00Z


def test_a_period_ending_before_the_symbols_listing_is_refused_naming_start(sim_env, invoke) -> None:
    """GIVEN a period that ends before BTCUSDT's onboardDate WHEN posting THEN 422 naming start and saying
    when the symbol was listed, before any klines call (not 200 with 0 candles)."""
    body = {**BODY, "start": "2018-01-01T00:00:00Z", "end": "2018-03-01T00:00:00Z"}
    response = _post(invoke, body)
    _refused_as_validation(response, "start")
    assert "2019-09-25T08:00:00Z" in response_json(response)["error"]["message"]
    assert _klines_requests(sim_env) == []


def test_a_period_starting_before_the_listing_starts_at_it_without_empty_pages(sim_env, invoke,
                                                                               monkeypatch) -> None:
    """GIVEN 1m candles from 24 days before BTCUSDT's listing to a day after it WHEN backtesting THEN the
    result starts at the listing (its start says so) with the day of candles after it, fetched in 3 pages
    (the rest of the listing day and the whole next one: 2,400 candles), not a page per empty day before
    it."""
    monkeypatch.setattr(backtest_service, "SYNC_MAX_CANDLES", 40_000)
    body = {**BODY, "interval": "1m", "start": "2019-09-01T00:00:00Z", "end": "2019-09-26T08:00:00Z"}
    response = _post(invoke, body)
    assert response["statusCode"] == 200, response["body"]
    result = response_json(response)["result"]
    assert (result["start"], result["candles"]) == (LISTED_MS, 1440)
    assert len(_klines_requests(sim_env)) == 3


def _post_keyed(invoke, body: dict[str, Any], key: str) -> dict[str, Any]:
    """POST /strategies/backtest with ``key`` as its Idempotency-Key header."""
    event = with_user(with_body(load_event("strategy_backtest"), body), USER_A)
    event["headers"].pop("content-length", None)
    event["headers"]["idempotency-key"] = key
    return invoke("strategy_backtest", event)


def _queued_messages(aws) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=aws.region)
    return sqs.receive_message(QueueUrl=aws.refs["BacktestQueue"], MaxNumberOfMessages=10).get("Messages", [])


def test_a_long_backtest_sent_twice_with_one_key_makes_one_job(sim_env, invoke, aws, monkeypatch) -> None:
    """GIVEN a queued backtest posted with an Idempotency-Key WHEN the same body is posted again with that key
    (a double click, a retry after a lost answer) THEN the same job answers: one stored job, one message."""
    monkeypatch.setattr(backtest_service, "SYNC_MAX_CANDLES", 100)
    first = _post_keyed(invoke, BODY, "backtest-1")
    assert first["statusCode"] == 202, first["body"]
    again = _post_keyed(invoke, BODY, "backtest-1")
    assert again["statusCode"] == 202, again["body"]
    assert response_json(again) == response_json(first)
    assert _stored_job_ids(aws, USER_A) == [response_json(first)["job_id"]]
    assert len(_queued_messages(aws)) == 1


def test_a_backtest_key_reused_with_another_body_is_409_naming_the_key(sim_env, invoke, aws,
                                                                      monkeypatch) -> None:
    """GIVEN a queued backtest posted with a key WHEN another body is posted with that key THEN 409 naming
    Idempotency-Key, not retryable, and no second job."""
    monkeypatch.setattr(backtest_service, "SYNC_MAX_CANDLES", 100)
    assert _post_keyed(invoke, BODY, "backtest-2")["statusCode"] == 202
    other = _post_keyed(invoke, {**BODY, "symbol": "ETHUSDT"}, "backtest-2")
    assert other["statusCode"] == 409, other["body"]
    error = response_json(other)["error"]
    assert (error["field"], error["retryable"]) == ("Idempotency-Key", False)
    assert len(_stored_job_ids(aws, USER_A)) == 1


def test_a_keyed_job_whose_message_could_not_be_sent_frees_its_key(sim_env, invoke, aws, monkeypatch) -> None:
    """GIVEN SQS refusing a keyed job's message WHEN the same request is retried with its key once SQS is back
    THEN a new job is queued (202, queued), not the failed one answered again."""
    monkeypatch.setattr(backtest_service, "SYNC_MAX_CANDLES", 100)
    with _sqs_refusing():
        assert _post_keyed(invoke, BODY, "backtest-3")["statusCode"] == 503
    [stranded] = _stored_job_ids(aws, USER_A)
    retried = _post_keyed(invoke, BODY, "backtest-3")
    assert retried["statusCode"] == 202, retried["body"]
    answer = response_json(retried)
    assert answer["status"] == "queued" and answer["job_id"] != stranded
