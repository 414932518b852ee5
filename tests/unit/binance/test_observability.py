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
