"""The layer's botocore Session: one per container, whose data loader knows only the layer's services."""

from __future__ import annotations

import pytest
from botocore.exceptions import UnknownServiceError
from botocore.loaders import Loader
from klineo.store import aws


@pytest.fixture
def fresh_clients(aws_credentials):
    """No client or Session cached before or after the test."""
    aws.clear_clients()
    yield
    aws.clear_clients()


def test_every_getter_builds_its_client_from_the_one_session(fresh_clients) -> None:
    """GIVEN the layer's getters WHEN each is called THEN it builds the client of its service, every
    service listed in SERVICES, all from one Session."""
    clients = {"dynamodb": aws.dynamodb(), "secretsmanager": aws.secretsmanager(), "sqs": aws.sqs()}
    assert set(clients) == set(aws.SERVICES)
    for service, client in clients.items():
        assert client.meta.service_model.service_name == service
        assert client.meta.region_name == "ap-northeast-1"
    assert aws.dynamodb() is clients["dynamodb"]


def test_the_loader_lists_the_layer_services_without_walking_botocore_data(fresh_clients) -> None:
    """GIVEN the Session's data loader WHEN asked which services exist THEN it answers the layer's
    services (botocore's own loader lists hundreds), and still finds every model file of theirs."""
    loader = aws._session().get_component("data_loader")
    assert loader.list_available_services("service-2") == list(aws.SERVICES)
    assert loader.list_available_services("endpoint-rule-set-1") == list(aws.SERVICES)
    assert len(Loader().list_available_services("service-2")) > 100  # what the walk was
    assert loader.load_service_model("sqs", "service-2")["metadata"]["endpointPrefix"] == "sqs"


def test_a_service_outside_the_layer_is_refused_by_name(fresh_clients) -> None:
    """GIVEN the layer's Session WHEN a client of a service not in SERVICES is asked for THEN botocore
    refuses it as unknown: a new service is added to SERVICES with its getter."""
    with pytest.raises(UnknownServiceError):
        aws._session().create_client("s3")
