"""Metrics: calls count BinanceCalls and BinanceWeightUsed; errors BinanceErrors and their category."""

from __future__ import annotations

import pytest
from klineo.binance import ErrorCategory, KlineoError

from tests.unit.binance.conftest import SPOT, START, add_time


@pytest.fixture
def metric_set(monkeypatch: pytest.MonkeyPatch) -> dict:
    """The shared Powertools metric set, emptied, with the Klineo namespace template.yaml sets."""
    from klineo.observability import metrics

    monkeypatch.setattr(metrics.provider, "namespace", "Klineo")
    metrics.clear_metrics()
    yield metrics.metric_set
    metrics.clear_metrics()


def _pending_folded_in() -> None:
    """What the invocation's flush does first: the client's tallied counts join the metric set."""
    from klineo.observability import tally

    tally.drain()


def test_calls_and_weight_are_counted(rsps, make_client, metric_set):
    """GIVEN a call with a weight header WHEN made THEN BinanceCalls and BinanceWeightUsed record it."""
    rsps.get(SPOT + "/api/v3/klines", json=[], headers={"X-MBX-USED-WEIGHT-1M": "42"})
    make_client().public("GET", "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"})
    _pending_folded_in()
    assert metric_set["BinanceCalls"]["Value"] == [1.0]
    assert metric_set["BinanceWeightUsed"]["Value"] == [42.0]


def test_ip_ban_emits_the_metric_the_template_alarm_watches(rsps, make_client, creds, metric_set):
    """GIVEN a 418 WHEN raised THEN BinanceErrors and BinanceIpBanned (the alarm's metric) are counted."""
    add_time(rsps, SPOT, int(START * 1000))
    rsps.get(SPOT + "/api/v3/account", status=418, json={"code": -1003, "msg": "IP banned until 1."})
    with pytest.raises(KlineoError) as caught:
        make_client().signed("GET", "/api/v3/account", None, creds)
    assert caught.value.category is ErrorCategory.IP_BANNED
    _pending_folded_in()
    assert metric_set["BinanceErrors"]["Value"] == [1.0]
    assert metric_set["BinanceIpBanned"]["Value"] == [1.0]


def test_calls_are_summed_and_weight_keeps_its_maximum_until_the_flush(rsps, make_client, metric_set, capsys):
    """GIVEN three calls with weights 5, 42, 7 WHEN the invocation flushes THEN one EMF line carries
    BinanceCalls [3] (the Sum the dashboard reads) and BinanceWeightUsed [42] (the alarm's Maximum)."""
    import json

    from klineo.observability import metrics

    # GIVEN three answers with different weight headers
    for weight in ("5", "42", "7"):
        rsps.get(SPOT + "/api/v3/klines", json=[], headers={"X-MBX-USED-WEIGHT-1M": weight})
    client = make_client()
    # WHEN three calls are made, then the metrics are flushed as @metrics.log_metrics does
    for _ in range(3):
        client.public("GET", "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"})
    assert "BinanceCalls" not in metric_set  # nothing reaches Powertools per call
    metrics.flush_metrics()
    # THEN one line carries the sum and the maximum
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert len(lines) == 1
    assert lines[0]["BinanceCalls"] == [3.0]
    assert lines[0]["BinanceWeightUsed"] == [42.0]
    assert lines[0]["BinanceWeightUsedPercent"] == [pytest.approx(100 * 42 / 6000)]


def _failure_lines(caplog: pytest.LogCaptureFixture) -> list[dict]:
    """The "binance call failed" lines logged since the last call, as the JSON formatter writes them."""
    import json

    from klineo.observability import logger

    formatter = logger.registered_formatter
    records = [r for r in caplog.records if r.getMessage() == "binance call failed"]
    lines = [json.loads(formatter.format(record)) for record in records]
    caplog.clear()
    return lines


def test_failed_calls_write_no_line_until_the_flush_then_one_line_per_kind(
    rsps, make_client, creds, metric_set, capsys, caplog
):
    """GIVEN three refused calls of one kind and one of another WHEN they fail THEN nothing is logged per
    call; WHEN the invocation flushes THEN one warning line per kind carries its fields, count and times."""
    from klineo.observability import metrics

    # GIVEN three -1102 refusals of /api/v3/account and one 401 -2015 of the same path
    add_time(rsps, SPOT, int(START * 1000))
    refusal = {"code": -1102, "msg": "Mandatory parameter 'x' was not sent."}
    for _ in range(3):
        rsps.get(SPOT + "/api/v3/account", status=400, json=refusal, headers={"X-MBX-USED-WEIGHT-1M": "17"})
    rsps.get(SPOT + "/api/v3/account", status=401, json={"code": -2015, "msg": "Invalid API-key."})
    client = make_client()
    # WHEN the four calls fail
    for _ in range(4):
        with pytest.raises(KlineoError):
            client.signed("GET", "/api/v3/account", None, creds)
    # THEN no line was written yet
    assert _failure_lines(caplog) == []
    # WHEN the invocation ends
    metrics.flush_metrics()
    # THEN one line per kind, with the fields of the old per-call line and the tally
    out = capsys.readouterr().out
    lines = sorted(_failure_lines(caplog), key=lambda line: line["count"], reverse=True)
    assert [(line["binance_code"], line["error_category"], line["count"]) for line in lines] == [
        (-1102, "invalid_request", 3), (-2015, "permission", 1),
    ]
    first = lines[0]
    assert first["level"] == "WARNING"
    assert (first["binance_method"], first["binance_path"]) == ("GET", "/api/v3/account")
    assert first["binance_status"] == 400
    assert first["binance_used_weight"] == 17 and first["binance_weight"] > 0
    assert first["first_at"] <= first["last_at"] and first["last_at"].endswith("Z")
    assert '"BinanceErrors":[4.0]' in out  # the metrics of the same flush
    # AND a second flush writes nothing again: the tally started afresh
    metrics.flush_metrics()
    assert _failure_lines(caplog) == []


def test_a_handler_that_raises_still_logs_its_failed_calls(rsps, make_client, creds, metric_set, caplog):
    """GIVEN a handler decorated as every function is WHEN a Binance failure escapes it THEN the failure
    line is in that invocation's output (the flush runs in log_metrics' finally)."""
    from klineo.observability import metrics

    add_time(rsps, SPOT, int(START * 1000))
    rsps.get(SPOT + "/api/v3/account", status=400, json={"code": -1102, "msg": "Mandatory parameter."})
    client = make_client()

    @metrics.log_metrics
    def handler(event, context):
        return client.signed("GET", "/api/v3/account", None, creds)

    with pytest.raises(KlineoError):
        handler({}, None)
    assert [line["binance_code"] for line in _failure_lines(caplog)] == [-1102]


@pytest.fixture
def powertools_lines():
    """What the service's Powertools logger writes, through its own JSON formatter (level set by the test)."""
    import io
    import json
    import logging

    from klineo.observability import logger

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    previous = logger.log_level
    yield logger, lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.setLevel(previous)
    logger.removeHandler(handler)


def test_the_clients_call_lines_are_written_by_the_service_logger_at_its_level(
    rsps, make_client, powertools_lines
):
    """GIVEN the service logger at DEBUG WHEN a call succeeds THEN its "binance call" line is written by
    that logger's JSON formatter (the client logs through a child logger); at INFO nothing is written."""
    import logging

    logger, lines = powertools_lines
    rsps.get(SPOT + "/api/v3/klines", json=[], headers={"X-MBX-USED-WEIGHT-1M": "3"})
    rsps.get(SPOT + "/api/v3/klines", json=[], headers={"X-MBX-USED-WEIGHT-1M": "4"})
    client = make_client()
    logger.setLevel(logging.INFO)
    client.public("GET", "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"})
    assert lines() == []
    logger.setLevel(logging.DEBUG)
    client.public("GET", "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"})
    [line] = [line for line in lines() if line["message"] == "binance call"]
    assert (line["level"], line["service"]) == ("DEBUG", logger.service)
    assert (line["binance_method"], line["binance_path"]) == ("GET", "/api/v3/klines")
    assert line["binance_status"] == 200
    assert line["binance_used_weight"] == 4


def test_a_call_our_budget_holds_back_is_not_counted_as_binance_refusing_it(rsps, make_client, limiter,
                                                                              clock, metric_set):
    """GIVEN the minute's weight used up to our 90 % ceiling WHEN a call would pass it THEN it is never sent
    and counted as BinanceCallsHeldBack, not as a Binance error or a Binance 429 (only Binance's own are)."""
    client = make_client()
    limiter.observe(client.host, client.market, 5990, clock() * 1000)  # spot limit 6000: past 90 %
    with pytest.raises(KlineoError) as caught:
        client.public("GET", "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"})
    assert caught.value.category is ErrorCategory.RATE_LIMIT
    assert len(rsps.calls) == 0
    _pending_folded_in()
    assert metric_set["BinanceCallsHeldBack"]["Value"] == [1.0]
    assert "BinanceErrors" not in metric_set and "BinanceRateLimit" not in metric_set


def test_binances_own_429_still_counts_as_a_binance_rate_limit(rsps, make_client, metric_set):
    """GIVEN Binance answering 429 WHEN raised THEN BinanceErrors and BinanceRateLimit count it, and nothing
    is counted as held back by our budget."""
    refusal = {"code": -1003, "msg": "Too much request weight used."}
    rsps.get(SPOT + "/api/v3/klines", status=429, json=refusal, headers={"Retry-After": "30"})
    with pytest.raises(KlineoError) as caught:
        make_client().public("GET", "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"})
    assert caught.value.category is ErrorCategory.RATE_LIMIT
    _pending_folded_in()
    assert metric_set["BinanceErrors"]["Value"] == [1.0]
    assert metric_set["BinanceRateLimit"]["Value"] == [1.0]
    assert "BinanceCallsHeldBack" not in metric_set
