"""botocore's data trimmed at build time: the same endpoints and operations, clients that work on moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.loaders import Loader
from botocore.regions import EndpointResolver
from klineo.store import aws as aws_clients
from klineo.store import botocore_data

from local.template import Resolver


@pytest.fixture(scope="module")
def layer_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A layer folder with the trimmed data written as ``make build`` writes it."""
    root = tmp_path_factory.mktemp("layer")
    botocore_data.write(root)
    return root


@pytest.fixture(scope="module")
def trimmed(layer_root: Path) -> Loader:
    """A loader that reads only the trimmed files."""
    folder = botocore_data.data_path(layer_root / "klineo" / "store")
    return Loader(extra_search_paths=[str(folder)], include_default_search_paths=False)


@pytest.fixture
def trimmed_clients(layer_root: Path, monkeypatch: pytest.MonkeyPatch, aws: Resolver) -> Iterator[Resolver]:
    """The layer's clients made on moto from a Session that reads the trimmed data first."""
    folder = botocore_data.data_path(layer_root / "klineo" / "store")
    monkeypatch.setattr(aws_clients, "data_path", lambda: folder)
    aws_clients.clear_clients()
    yield aws
    aws_clients.clear_clients()


def test_the_data_is_written_under_the_running_botocore_version(layer_root: Path) -> None:
    """GIVEN a build WHEN the data is written THEN it sits in a folder named for this botocore, which
    the layer's Session reads only when that is the botocore it runs."""
    import botocore

    folder = layer_root / "klineo" / "store" / "_botocore" / botocore.__version__
    assert (folder / "endpoints.json").is_file()
    services = sorted(p.parent.parent.name for p in folder.glob("*/*/service-2.json"))
    assert services == sorted(aws_clients.SERVICES)


def test_every_region_resolves_to_the_same_endpoint_as_botocore_s_own_file(trimmed: Loader) -> None:
    """GIVEN the trimmed endpoints.json WHEN each layer service is resolved in every region of every
    partition THEN the endpoint, signing data and partition are exactly botocore's."""
    full = EndpointResolver(Loader().load_data("endpoints"))
    cut = EndpointResolver(trimmed.load_data("endpoints"))
    assert cut.get_available_partitions() == full.get_available_partitions()
    checked = 0
    for partition in full.get_available_partitions():
        for service in aws_clients.SERVICES:
            regions = full.get_available_endpoints(service, partition, allow_non_regional=True)
            assert cut.get_available_endpoints(service, partition, allow_non_regional=True) == regions
            for region in [*regions, "ap-northeast-1", "not-a-region-1"]:
                for fips in (False, True):
                    assert cut.construct_endpoint(service, region, partition, use_fips_endpoint=fips) == \
                        full.construct_endpoint(service, region, partition, use_fips_endpoint=fips)
                    checked += 1
    assert checked > 100


@pytest.mark.parametrize("service", aws_clients.SERVICES)
def test_a_model_keeps_every_operation_and_shape_without_documentation(trimmed: Loader, service: str) -> None:
    """GIVEN a trimmed service model WHEN compared with botocore's THEN only documentation is gone."""
    full = Loader().load_service_model(service, "service-2")
    cut = trimmed.load_service_model(service, "service-2")
    assert cut == botocore_data._without_docs(full)
    assert cut["operations"].keys() == full["operations"].keys()
    assert cut["shapes"].keys() == full["shapes"].keys()
    assert "documentation" not in json.dumps(cut)
    assert len(json.dumps(cut)) < len(json.dumps(full)) / 2


def test_the_layer_session_reads_the_trimmed_files_first(trimmed_clients: Resolver) -> None:
    """GIVEN the trimmed data in the layer WHEN the Session loads endpoints and a model THEN they come
    from the trimmed folder; without it (the repo) they come from botocore."""
    loader = aws_clients._session().get_component("data_loader")
    _, path = loader.load_data_with_path("endpoints")
    assert "_botocore" in path
    _, model_path = loader.load_data_with_path("dynamodb/2012-08-10/service-2")
    assert "_botocore" in model_path


def test_the_repo_session_reads_botocore_s_own_files(aws_credentials: None) -> None:
    """GIVEN no trimmed data (tests, local runs) WHEN the Session loads endpoints THEN botocore's own."""
    aws_clients.clear_clients()
    _, path = aws_clients._session().get_component("data_loader").load_data_with_path("endpoints")
    aws_clients.clear_clients()
    assert "_botocore" not in path


def test_every_dynamodb_operation_the_layer_calls_round_trips_on_moto(trimmed_clients: Resolver) -> None:
    """GIVEN a DynamoDB client made from the trimmed model WHEN the layer's operations run on moto
    (put, get, update, query, batch get, transaction, delete, paginated query) THEN each answers
    as it does with botocore's own model."""
    db = aws_clients.dynamodb()
    table = trimmed_clients.refs["DataTable"]
    key = {"pk": {"S": "USER#u1"}, "sk": {"S": "X#1"}}
    db.put_item(TableName=table, Item={**key, "n": {"N": "1"}},
                ConditionExpression="attribute_not_exists(pk)")
    db.update_item(TableName=table, Key=key, UpdateExpression="SET n = n + :one",
                   ExpressionAttributeValues={":one": {"N": "1"}})
    assert db.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]["n"] == {"N": "2"}
    db.transact_write_items(TransactItems=[
        {"ConditionCheck": {"TableName": table, "Key": key, "ConditionExpression": "n = :two",
                            "ExpressionAttributeValues": {":two": {"N": "2"}}}},
        {"Put": {"TableName": table, "Item": {"pk": {"S": "USER#u1"}, "sk": {"S": "X#2"}}}},
    ])
    second = {"pk": {"S": "USER#u1"}, "sk": {"S": "X#2"}}
    got = db.batch_get_item(RequestItems={table: {"Keys": [key, second]}})
    assert len(got["Responses"][table]) == 2
    query = {"TableName": table, "KeyConditionExpression": "pk = :pk",
             "ExpressionAttributeValues": {":pk": {"S": "USER#u1"}}}
    assert db.query(**query)["Count"] == 2
    pages = db.get_paginator("query").paginate(**query, PaginationConfig={"PageSize": 1})
    assert sum(page["Count"] for page in pages) == 2
    db.delete_item(TableName=table, Key=key)
    assert "Item" not in db.get_item(TableName=table, Key=key)


def test_secrets_manager_and_sqs_operations_round_trip_on_moto(trimmed_clients: Resolver) -> None:
    """GIVEN Secrets Manager and SQS clients made from the trimmed models WHEN the layer's operations
    run on moto (create, put staged, make current, get, delete a secret; send a message and a batch) THEN
    each answers."""
    secrets = aws_clients.secretsmanager()
    first = secrets.create_secret(Name="klineo/test/k1", SecretString="one")["VersionId"]
    second = secrets.put_secret_value(SecretId="klineo/test/k1", SecretString="two",
                                      VersionStages=["AWSPENDING"])["VersionId"]
    secrets.update_secret_version_stage(SecretId="klineo/test/k1", VersionStage="AWSCURRENT",
                                        MoveToVersionId=second, RemoveFromVersionId=first)
    current = secrets.get_secret_value(SecretId="klineo/test/k1", VersionStage="AWSCURRENT")
    assert current["SecretString"] == "two"
    secrets.delete_secret(SecretId="klineo/test/k1", ForceDeleteWithoutRecovery=True)
    queue = aws_clients.sqs()
    url = queue.create_queue(QueueName="trimmed-test")["QueueUrl"]
    assert queue.send_message(QueueUrl=url, MessageBody="{}")["MessageId"]
    sent = queue.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "{}"}])
    assert [entry["Id"] for entry in sent["Successful"]] == ["a"]


def test_make_build_writes_the_trimmed_data_into_the_built_layer() -> None:
    """GIVEN the Makefile WHEN its build target runs THEN, after sam build and before the bytecode is
    compiled, it writes the trimmed data into the built layer with the layer's own botocore."""
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    build = makefile.split("\nbuild:", 1)[1].split("\n\n", 1)[0]
    steps = [line.strip() for line in build.splitlines()]
    trim = next(i for i, line in enumerate(steps) if "klineo.store.botocore_data" in line)
    assert steps[trim].startswith("PYTHONPATH=.aws-sam/build/KlineoLayer/python ")
    assert "sam build" in " ".join(steps[:trim])
    assert "compileall" in " ".join(steps[trim:])
