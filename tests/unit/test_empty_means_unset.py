"""Every variable the template declares empty (a local override) means "not set" in the layer: the
deployed functions reach AWS and Binance, and Powertools does not break."""

from __future__ import annotations

import subprocess
import sys

import boto3
import pytest
from klineo.binance.enums import Environment, Market
from klineo.binance.environments import DEFAULT_BASE_URLS, URL_ENV, base_url, https_proxy
from klineo.settings import Settings

from local.aws_emulation import required_settings
from local.template import REPO_ROOT, load_template

DECLARED_EMPTY = sorted(
    name
    for name, value in load_template()["Globals"]["Function"]["Environment"]["Variables"].items()
    if value == ""
)


def test_the_template_declares_the_local_overrides_empty() -> None:
    """AWS_ENDPOINT_URL, every Binance base URL and the proxy are declared, with empty values."""
    # GIVEN / WHEN the template's empty global variables
    # THEN the local overrides are among them
    assert {"AWS_ENDPOINT_URL", "BINANCE_HTTPS_PROXY", *URL_ENV.values()} <= set(DECLARED_EMPTY)


def test_empty_aws_endpoint_url_reaches_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3 ignores an empty AWS_ENDPOINT_URL: the client's endpoint is AWS's own."""
    # GIVEN the variable as the deployed template sets it
    monkeypatch.setenv("AWS_ENDPOINT_URL", "")
    # WHEN a client is made
    client = boto3.session.Session(
        aws_access_key_id="k", aws_secret_access_key="s", region_name="ap-northeast-1"
    ).client("dynamodb")
    # THEN it points at AWS
    assert client.meta.endpoint_url == "https://dynamodb.ap-northeast-1.amazonaws.com"


def test_empty_binance_urls_and_proxy_mean_binance_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty BINANCE_*_URL gives Binance's own hosts; an empty proxy means no proxy."""
    # GIVEN every Binance variable empty
    for name in [*URL_ENV.values(), "BINANCE_HTTPS_PROXY"]:
        monkeypatch.setenv(name, "")
    # WHEN / THEN
    for (market, environment), default in DEFAULT_BASE_URLS.items():
        assert base_url(market, environment) == default
    assert base_url(Market.SPOT, Environment.PRODUCTION) == "https://api.binance.com"
    assert https_proxy() is None


def test_empty_settings_fall_back_to_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty queue URL is read as not set, and an empty table name as missing, never as an empty name."""
    # GIVEN an empty optional variable
    monkeypatch.setenv("STRATEGY_QUEUE_URL", "")
    # WHEN / THEN it takes its default
    assert Settings.from_env().strategy_queue_url == Settings.model_fields["strategy_queue_url"].default
    # GIVEN an empty required one WHEN read THEN it is named as not set
    monkeypatch.setenv("DATA_TABLE", "")
    with pytest.raises(RuntimeError, match="environment variables not set: DATA_TABLE"):
        Settings.from_env()


def test_a_function_loads_and_logs_with_every_powertools_variable_empty(resolver) -> None:
    """Empty POWERTOOLS_* (TRACE_DISABLED, DEV, ...) are dropped before Powertools reads them."""
    # GIVEN a fresh interpreter with every Powertools variable of the template, and the boolean ones, empty
    names = {name for name in DECLARED_EMPTY if name.startswith("POWERTOOLS_")} | {
        "POWERTOOLS_TRACE_DISABLED", "POWERTOOLS_DEV", "POWERTOOLS_METRICS_DISABLED",
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL",
    }
    env = {"PATH": "/usr/bin:/bin", "AWS_REGION": "ap-northeast-1", **dict.fromkeys(names, ""),
           **required_settings(resolver)}
    env["PYTHONPATH"] = f"{REPO_ROOT / 'layers' / 'klineo' / 'python'}:{REPO_ROOT}"
    script = (
        "import functions.kill_switch_get.app\n"
        "from klineo.observability import logger, metrics\n"
        "logger.info('ok'); metrics.add_metric(name='m', unit='Count', value=1); metrics.flush_metrics()\n"
    )
    # WHEN a function module loads and the observability objects are used
    argv = [sys.executable, "-c", script]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    # THEN nothing raises
    assert done.returncode == 0, done.stderr
