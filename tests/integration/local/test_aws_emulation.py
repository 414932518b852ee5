"""The local stack's moto server holds every table, queue and schedule template.yaml declares."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import boto3
import pytest
import requests

from local.aws_emulation import MotoServer, functions_environment, provision, schedule_specs
from local.template import Resolver, queue_definitions, table_definitions

REGION = "ap-northeast-1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def moto_server(aws_credentials: None) -> Iterator[MotoServer]:
    """A moto server on a free loopback port, reset and stopped afterwards."""
    server = MotoServer(_free_port())
    server.start()
    yield server
    requests.post(f"{server.url}/moto-api/reset", timeout=5)
    server.stop()


@pytest.fixture
def provisioned(moto_server: MotoServer, template: dict) -> Resolver:
    """The template's resources created on the server for stage dev."""
    return provision(Resolver(template, parameters={"Stage": "dev"}, region=REGION), moto_server.url)


def _client(server: MotoServer, service: str):
    return boto3.client(service, region_name=REGION, endpoint_url=server.url)


def test_moto_server_listens_on_loopback_only(moto_server: MotoServer) -> None:
    """ThreadedMotoServer is told 127.0.0.1 (its default would be 0.0.0.0)."""
    # GIVEN / WHEN / THEN
    assert moto_server._server.get_host_and_port()[0] == "127.0.0.1"


def test_every_template_table_exists_with_keys_index_and_ttl(
    moto_server: MotoServer, provisioned: Resolver
) -> None:
    """Tables: names, key schemas and GSIs from the template; TTL enabled on the template's attribute."""
    # GIVEN the template's table definitions
    expected = table_definitions(provisioned)
    dynamodb = _client(moto_server, "dynamodb")
    # WHEN the tables are described
    names = set(dynamodb.list_tables()["TableNames"])
    # THEN each exists as declared
    assert names == {t["create"]["TableName"] for t in expected.values()}
    for table in expected.values():
        described = dynamodb.describe_table(TableName=table["create"]["TableName"])["Table"]
        assert described["KeySchema"] == table["create"]["KeySchema"]
        gsis = [g["IndexName"] for g in described.get("GlobalSecondaryIndexes", [])]
        assert gsis == [g["IndexName"] for g in table["create"].get("GlobalSecondaryIndexes", [])]
        ttl = dynamodb.describe_time_to_live(TableName=table["create"]["TableName"])["TimeToLiveDescription"]
        assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": table["ttl"]["AttributeName"]}


def test_every_template_queue_exists_with_its_redrive_policy(
    moto_server: MotoServer, provisioned: Resolver
) -> None:
    """Queues: the strategy queue redrives to the DLQ after 3 receives, with the template's timeouts."""
    # GIVEN / WHEN
    sqs = _client(moto_server, "sqs")
    attrs = sqs.get_queue_attributes(QueueUrl=provisioned.refs["StrategyQueue"], AttributeNames=["All"])[
        "Attributes"
    ]
    # THEN
    assert len(sqs.list_queues()["QueueUrls"]) == len(queue_definitions(provisioned))
    assert attrs["VisibilityTimeout"] == "360"
    assert attrs["MessageRetentionPeriod"] == "3600"
    assert json.loads(attrs["RedrivePolicy"]) == {
        "deadLetterTargetArn": provisioned.attributes[("StrategyDeadLetterQueue", "Arn")],
        "maxReceiveCount": 3,
    }


def test_the_template_schedule_exists_and_targets_the_dispatcher(
    moto_server: MotoServer, provisioned: Resolver
) -> None:
    """The ScheduleV2 event is a Scheduler schedule in moto: its name, rate and the dispatcher as target."""
    # GIVEN / WHEN
    spec, reconciler = schedule_specs(provisioned)
    schedule = _client(moto_server, "scheduler").get_schedule(Name=spec.name)
    reconcile = _client(moto_server, "scheduler").get_schedule(Name=reconciler.name)
    assert reconcile["Target"]["Arn"].endswith(":function:klineo-dev-order-reconciler")
    # THEN
    assert schedule["ScheduleExpression"] == "cron(* * * * ? *)"
    assert schedule["Target"]["Arn"].endswith(":function:klineo-dev-strategy-dispatcher")
    assert schedule["Target"]["RetryPolicy"]["MaximumRetryAttempts"] == 0


def test_functions_get_the_templates_environment_with_physical_ids(provisioned: Resolver) -> None:
    """Globals plus each function's own variables, with refs resolved to moto's names and queue URL."""
    # GIVEN / WHEN
    environment = functions_environment(provisioned)
    # THEN
    assert environment["DATA_TABLE"] == "klineo-dev-data"
    assert "IDEMPOTENCY_TABLE" not in environment  # orders are their own idempotency records
    assert environment["RATE_LIMIT_TABLE"] == "klineo-dev-rate-limit"
    assert environment["SECRET_PREFIX"] == "klineo/dev/"
    assert environment["STRATEGY_QUEUE_URL"] == provisioned.refs["StrategyQueue"]
    assert environment["BINANCE_RECV_WINDOW_MS"] == "10000"
    assert environment["EGRESS_IP"] == ""
