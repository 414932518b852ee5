"""Fixtures shared by every test: AWS under moto, built from template.yaml, and clean caches."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import botocore.loaders
import botocore.session
import pytest
from klineo.settings import get_settings
from klineo.store import aws as aws_clients
from klineo.store.order_claim import forget_connection
from klineo.store.order_history import forget_watches
from moto import mock_aws

from local.aws_emulation import functions_environment, provision, required_settings, serialize_dynamodb
from local.template import Resolver, load_template

pytest_plugins = ["local.binance_sim.pytest_plugin"]

STAGE = "test"
REGION = "ap-northeast-1"

SIGNATURE = re.compile(r"signature=[0-9A-Za-z%+/]{24,}")
# moto's HTTP mock logs every request it lets through to the simulator (the signed URL as an extra, at
# INFO): test harness only, never in a Lambda, so never a product log line.
HARNESS_LOGGERS = frozenset({"responses"})


@cache
def known_secrets() -> dict[str, str]:
    """{secret text: what it is} of every demo account (HMAC secret; a private key's body lines)."""
    from local.binance_sim.accounts import load_accounts
    from local.binance_sim.config import DEFAULT_ACCOUNTS_FILE

    secrets = {}
    for account in load_accounts(DEFAULT_ACCOUNTS_FILE).values():
        pem = account.private_key_pem
        for line in (pem.splitlines() if pem else [account.secret]):
            if line and len(line) >= 40 and "-----" not in line:
                secrets[line] = f"demo account {account.id}'s {'private key' if pem else 'secret'}"
    return secrets


def leaked_secrets(record: logging.LogRecord) -> list[str]:
    """What a log record (message, extras, exception text) holds that must never be logged: a demo
    account's secret or private key, or a request signature; named, never quoted."""
    text = f"{record.getMessage()} {record.__dict__} {record.exc_text or ''}"
    if record.exc_info and record.exc_info[1] is not None:
        text += f" {record.exc_info[1]!r}"
    found = [name for secret, name in known_secrets().items() if secret in text]
    return found + (["a request signature"] if SIGNATURE.search(text) else [])


@pytest.fixture(autouse=True)
def no_secret_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test: no log record its setup and call wrote holds a known secret or a signature."""
    yield
    for when in ("setup", "call"):
        for record in caplog.get_records(when):
            leaked = [] if record.name in HARNESS_LOGGERS else leaked_secrets(record)
            assert not leaked, (
                f"{record.name} logged {', '.join(leaked)} ({when}: {record.pathname}:{record.lineno})")


@pytest.fixture(scope="session", autouse=True)
def shared_botocore_loader() -> Iterator[None]:
    """One botocore data loader for every Session the tests make (each test makes fresh clients).

    A new Session otherwise reads and parses the service models' JSON again: most of the CPU time
    of a test on moto. Only the parsed, read-only model files are shared; clients stay per test.
    """
    original = botocore.session.create_loader
    botocore.session.create_loader = cache(botocore.loaders.create_loader)
    yield
    botocore.session.create_loader = original


@pytest.fixture(scope="session")
def template() -> dict:
    """template.yaml, parsed once."""
    return load_template()


@pytest.fixture
def resolver(template: dict) -> Resolver:
    """Intrinsics resolved for the test stage; physical ids filled in by the `aws` fixture."""
    return Resolver(template, parameters={"Stage": STAGE}, region=REGION)


@pytest.fixture(autouse=True)
def settings_environment(resolver: Resolver, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test runs with the settings template.yaml gives every function (test stage), caches fresh."""
    for name, value in required_settings(resolver).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region, so no test can ever reach a real AWS account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "Klineo",
        "POWERTOOLS_SERVICE_NAME": "klineo",
        "POWERTOOLS_DEV": "false",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def aws(aws_credentials: None, resolver: Resolver, monkeypatch: pytest.MonkeyPatch) -> Iterator[Resolver]:
    """moto with every table and queue of template.yaml, and the functions' environment set.

    Yields the resolver, whose `refs` now hold the physical names (table names, queue URLs).
    """
    aws_clients.clear_clients()
    get_settings.cache_clear()
    forget_connection()
    forget_watches()
    serialize_dynamodb()
    with mock_aws():
        provision(resolver)
        for name, value in functions_environment(resolver).items():
            monkeypatch.setenv(name, value)
        aws_clients.clear_clients()
        get_settings.cache_clear()
        yield resolver
    aws_clients.clear_clients()
    get_settings.cache_clear()


@pytest.fixture
def dynamodb_requests(aws: Resolver) -> list[tuple[str, dict[str, Any]]]:
    """(operation, parameters) of every request the layer's DynamoDB client makes from now on, as sent."""
    requests: list[tuple[str, dict[str, Any]]] = []
    aws_clients.dynamodb().meta.events.register(
        "before-parameter-build.dynamodb.*", lambda model, params, **_: requests.append((model.name, params)))
    return requests
