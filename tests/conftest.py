"""Fixtures shared by every test: AWS under moto, built from template.yaml, and clean caches."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from klineo.settings import get_settings
from klineo.store import aws as aws_clients
from local.template import (
    Resolver,
    function_environment,
    function_specs,
    load_template,
    queue_definitions,
    table_definitions,
)

pytest_plugins = ["local.binance_sim.pytest_plugin"]

STAGE = "test"
REGION = "ap-northeast-1"


@pytest.fixture(scope="session")
def template() -> dict:
    """template.yaml, parsed once."""
    return load_template()


@pytest.fixture
def resolver(template: dict) -> Resolver:
    """Intrinsics resolved for the test stage; physical ids filled in by the `aws` fixture."""
    return Resolver(template, parameters={"Stage": STAGE}, region=REGION)


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
    with mock_aws():
        import boto3

        dynamodb = boto3.client("dynamodb", region_name=REGION)
        for logical, table in table_definitions(resolver).items():
            dynamodb.create_table(**table["create"])
            resolver.refs[logical] = table["create"]["TableName"]
            resolver.attributes[(logical, "Arn")] = (
                f"arn:aws:dynamodb:{REGION}:123456789012:table/{table['create']['TableName']}"
            )
        sqs = boto3.client("sqs", region_name=REGION)
        for logical, props in queue_definitions(resolver).items():
            resolved = resolver.resolve({k: v for k, v in props.items() if k != "RedrivePolicy"})
            attributes = {"VisibilityTimeout": str(resolved.get("VisibilityTimeout", 30))}
            if "RedrivePolicy" in props:
                import json

                attributes["RedrivePolicy"] = json.dumps(resolver.resolve(props["RedrivePolicy"]))
            url = sqs.create_queue(QueueName=resolved["QueueName"], Attributes=attributes)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            resolver.refs[logical] = url
            resolver.attributes[(logical, "Arn")] = arn
            resolver.attributes[(logical, "QueueName")] = resolved["QueueName"]
        for spec in function_specs(resolver.template):
            for name, value in function_environment(resolver, spec).items():
                monkeypatch.setenv(name, value)
        aws_clients.clear_clients()
        get_settings.cache_clear()
        yield resolver
    aws_clients.clear_clients()
    get_settings.cache_clear()
