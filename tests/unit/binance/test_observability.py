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
    metrics.metric_set.clear()
    yield metrics.metric_set
    metrics.metric_set.clear()


def test_calls_and_weight_are_counted(rsps, make_client, metric_set):
    """GIVEN a call with a weight header WHEN made THEN BinanceCalls and BinanceWeightUsed record it."""
    rsps.get(SPOT + "/api/v3/klines", json=[], headers={"X-MBX-USED-WEIGHT-1M": "42"})
    make_client().public("GET", "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"})
    assert metric_set["BinanceCalls"]["Value"] == [1.0]
    assert metric_set["BinanceWeightUsed"]["Value"] == [42.0]


def test_ip_ban_emits_the_metric_the_template_alarm_watches(rsps, make_client, creds, metric_set):
    """GIVEN a 418 WHEN raised THEN BinanceErrors and BinanceIpBanned (the alarm's metric) are counted."""
    add_time(rsps, SPOT, int(START * 1000))
    rsps.get(SPOT + "/api/v3/account", status=418, json={"code": -1003, "msg": "IP banned until 1."})
    with pytest.raises(KlineoError) as caught:
        make_client().signed("GET", "/api/v3/account", None, creds)
    assert caught.value.category is ErrorCategory.IP_BANNED
    assert metric_set["BinanceErrors"]["Value"] == [1.0]
    assert metric_set["BinanceIpBanned"]["Value"] == [1.0]
