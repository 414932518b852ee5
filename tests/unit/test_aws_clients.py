"""The layer's botocore Session: one per container, whose data loader knows only the layer's services."""

from __future__ import annotations

import threading
from typing import Any

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


class _NotingLock:
    """A lock that sets ``contended`` when a thread has to wait for it."""

    def __init__(self) -> None:
        self._lock, self.contended = threading.Lock(), threading.Event()

    def __enter__(self) -> None:
        if not self._lock.acquire(blocking=False):
            self.contended.set()
            self._lock.acquire()

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()


def test_threads_asking_for_a_client_first_at_once_share_one(fresh_clients, monkeypatch) -> None:
    """GIVEN no DynamoDB client yet WHEN a second thread asks for it while the first is still making it
    (the runner's pool on a cold container) THEN it waits and both get the same client, made once."""
    session, made, lock = aws._session(), [], _NotingLock()
    entered, release, real = threading.Event(), threading.Event(), session.create_client

    def slow_create(service: str, **kwargs: Any) -> Any:
        made.append(service)
        entered.set()
        release.wait(timeout=10)
        return real(service, **kwargs)

    monkeypatch.setattr(session, "create_client", slow_create)
    monkeypatch.setattr(aws, "_CLIENT_LOCK", lock)
    clients: list[Any] = []
    threads = [threading.Thread(target=lambda: clients.append(aws.dynamodb())) for _ in range(2)]
    threads[0].start()
    assert entered.wait(timeout=10)
    threads[1].start()
    assert lock.contended.wait(timeout=10)
    release.set()
    for thread in threads:
        thread.join(timeout=10)

    assert made == ["dynamodb"] and len(clients) == 2 and clients[0] is clients[1]


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


def _client_events(client) -> list[str]:
    """Every event name botocore's built-in handlers listen on, as this client emits them (all its
    operations, under its service id and name; documentation sections included)."""
    from botocore import handlers

    service_id = client.meta.service_model.service_id.hyphenize()
    names = (service_id, client.meta.service_model.service_name)
    kinds = {spec[0].split(".")[0] for spec in handlers.BUILTIN_HANDLERS} - {"docs"}
    sections = {spec[0].split(".")[1] for spec in handlers.BUILTIN_HANDLERS if spec[0].startswith("docs.")}
    events = []
    for operation in client.meta.service_model.operation_names:
        for name in names:
            events += [f"{kind}.{name}" for kind in kinds] + [f"{kind}.{name}.{operation}" for kind in kinds]
            events += [f"docs.{section.replace('*', 'method-signature')}.{name}.{operation}.complete-section"
                       for section in sections]
    return events


def _handlers(client, event: str) -> list:
    """The handlers ``event`` reaches on ``client``, by name (a method of a per-client object, a
    closure made per Session: the same code)."""
    events = client.meta.events
    found = events._emitter._handlers.prefix_search(events._alias_event_name(event))
    return [(getattr(h, "__module__", None), getattr(h, "__qualname__", type(h).__qualname__)) for h in found]


def test_each_client_finds_the_same_event_handlers_as_under_botocores_own_session(fresh_clients) -> None:
    """GIVEN a client of every layer service from the layer's Session and one from botocore's own
    WHEN any event of any of its operations is looked up THEN both find the same handlers, in order."""
    import botocore.session

    own = botocore.session.Session()
    own.register_component("data_loader", aws._loader())
    for service in aws.SERVICES:
        ours, theirs = aws._client(service), own.create_client(service, config=aws._CONFIG)
        for event in _client_events(ours):
            assert _handlers(ours, event) == _handlers(theirs, event), (service, event)


def test_the_session_leaves_out_the_handlers_of_services_the_layer_never_calls(fresh_clients) -> None:
    """GIVEN the layer's Session WHEN an S3 or EC2 event is looked up THEN botocore's handlers for those
    services are not registered (registering them was about 6 ms of every cold start)."""
    import botocore.session

    emitters = {"ours": aws._session()._events, "botocore's": botocore.session.Session()._events}
    counts = {name: len(emitter._emitter._handlers.prefix_search("before-parameter-build.s3.PutObject"))
              for name, emitter in emitters.items()}
    assert counts["ours"] < counts["botocore's"], counts
