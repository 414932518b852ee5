"""The local stack runs requests at once and enforces Lambda's and API Gateway's timeouts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from local.api_router import ApiServer
from local.auth import DevJwtAuthority, authorizer_config
from local.lambda_runtime import FunctionTimeout, LambdaRuntime
from local.template import Resolver
from tests.helpers import load_event, wait_until, with_user

ROUTE = "/kill-switch"
FUNCTION = "KillSwitchGetFunction"


class Backend:
    """Stands in for the kill-switch service inside the real function: each call runs `behaviour`."""

    def __init__(self, original: Any) -> None:
        self.original = original
        self.behaviour: Any = None
        self.finished = threading.Event()
        self.stopped_by: list[str] = []

    def __call__(self, user_id: str) -> Any:
        try:
            self.behaviour()
            answer = self.original(user_id)
        except BaseException as raised:
            self.stopped_by.append(type(raised).__name__)
            raise
        self.finished.set()
        return answer


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> Backend:
    """The kill-switch function, its service call replaced by a Backend that can wait or overrun."""
    import functions.kill_switch_get.app as app

    stand_in = Backend(app.get_kill_switch)
    monkeypatch.setattr(app, "get_kill_switch", stand_in)
    return stand_in


def _serve(aws: Resolver, tmp_path: Path, **options: Any) -> tuple[ApiServer, str]:
    runtime = LambdaRuntime(aws, show_metrics=False, timeouts_s=options.pop("timeouts_s", None))
    authority = DevJwtAuthority.load_or_create(tmp_path, authorizer_config(aws))
    api = ApiServer(aws, runtime, authority, 0, **options)
    api.start()
    return api, authority.issue("alice")


@pytest.fixture
def serve(aws: Resolver, tmp_path: Path) -> Iterator[Any]:
    """Starts the HTTP API over the real runtime with the given options; stops it afterwards."""
    servers: list[ApiServer] = []

    def start(**options: Any) -> tuple[str, dict[str, str]]:
        api, token = _serve(aws, tmp_path, **options)
        servers.append(api)
        return api.url, {"Authorization": f"Bearer {token}"}

    yield start
    for api in servers:
        api.stop()


def test_two_requests_run_inside_the_backend_at_the_same_time(serve, backend: Backend) -> None:
    """Each call waits at a 2-party barrier: both answer 200 only if the two invocations overlap."""
    # GIVEN a backend call that waits until a second one is inside too
    barrier = threading.Barrier(2, timeout=10)
    backend.behaviour = barrier.wait
    url, headers = serve()
    answers: list[int] = []

    def call() -> None:
        answers.append(requests.get(url + ROUTE, headers=headers, timeout=30).status_code)

    # WHEN two requests are sent at once
    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # THEN both met inside the backend and answered
    assert answers == [200, 200]
    assert backend.stopped_by == []
    assert not barrier.broken


def test_function_past_its_timeout_is_stopped_and_the_api_answers_500(serve, backend: Backend) -> None:
    """A function still running at its Timeout is stopped inside (LambdaTimeout), and API Gateway
    answers what it answers for a failed invocation: 500 {"message":"Internal Server Error"}."""
    # GIVEN a backend call that never ends by itself, and a function timeout of 0.3 s
    release = threading.Event()

    def overrun() -> None:
        while not release.wait(0.01):  # short waits, so the stop can land between two of them
            pass

    backend.behaviour = overrun
    url, headers = serve(timeouts_s={FUNCTION: 0.3})
    try:
        # WHEN it is called
        response = requests.get(url + ROUTE, headers=headers, timeout=30)
        # THEN the gateway's 500, and the function itself was stopped, never finished
        assert response.status_code == 500
        assert response.json() == {"message": "Internal Server Error"}
        assert wait_until(lambda: backend.stopped_by == ["LambdaTimeout"])
        assert not backend.finished.is_set()
    finally:
        release.set()


def test_function_past_the_integration_timeout_gets_503_and_goes_on(serve, backend: Backend) -> None:
    """When API Gateway stops waiting first, the caller gets 503 {"message":"Service Unavailable"}
    while the function runs on to its end, as on AWS (where it would still write what it writes)."""
    # GIVEN a backend call held until released, an integration timeout of 0.3 s, the template's 20 s
    release = threading.Event()
    backend.behaviour = lambda: release.wait(30)
    url, headers = serve(integration_timeout_s=0.3)
    # WHEN it is called
    response = requests.get(url + ROUTE, headers=headers, timeout=30)
    # THEN 503, and the function is still running; released, it finishes normally
    assert response.status_code == 503
    assert response.json() == {"message": "Service Unavailable"}
    assert not backend.finished.is_set()
    release.set()
    assert backend.finished.wait(10)
    assert backend.stopped_by == []


def test_runtime_raises_function_timeout_for_a_direct_invocation(aws: Resolver, backend: Backend) -> None:
    """Invoked directly (the scheduler, the queue poller), an overrun is FunctionTimeout naming it."""
    # GIVEN a backend call that never ends by itself and a 0.3 s timeout
    release = threading.Event()

    def overrun() -> None:
        while not release.wait(0.01):
            pass

    backend.behaviour = overrun
    runtime = LambdaRuntime(aws, show_metrics=False, timeouts_s={FUNCTION: 0.3})

    try:
        # WHEN / THEN
        with pytest.raises(FunctionTimeout) as raised:
            runtime.invoke(FUNCTION, with_user(load_event("kill_switch_get"), "alice"))
        assert raised.value.logical_id == FUNCTION
        assert raised.value.timeout_s == 0.3
        assert wait_until(lambda: backend.stopped_by == ["LambdaTimeout"])
    finally:
        release.set()
