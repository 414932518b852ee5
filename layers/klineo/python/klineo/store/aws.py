"""AWS clients made lazily, once per container, so cold starts stay short and moto can intercept them.

They are botocore's low-level clients, the same objects ``boto3.client`` returns, made from a
botocore Session: importing boto3 itself (s3transfer, multiprocessing, its resource layer) cost
about 100 ms of every cold start and the layer uses none of it (attribute values:
``klineo.store.attribute_values``). botocore honours ``AWS_ENDPOINT_URL`` (the local stack points it
at the moto server). Tests call ``clear_clients()`` after starting a mock so fresh clients are made
inside it.

The Session's botocore data loader is told which services this layer uses (``SERVICES``): to check
a service name, botocore's own loader lists every service folder it ships (about 450) and looks
inside each, once for the API model and once for the endpoint rules of the first client, which
was 20-40 ms of every cold start. Finding and loading the models is still botocore's.

A Session registers botocore's own event handlers (about 130), two thirds of them for services the
layer never calls (S3, EC2, Glacier, RDS...; also their documentation hooks); registering them, and
copying them into each client, was about 6 ms of every cold start. The layer's Session registers
those that can fire for ``SERVICES``: every handler without a service in its event name, or with
``*``, or one of ours. ``tests/unit/test_aws_clients.py`` checks every client event of every
operation of ours finds the same handlers as under botocore's own Session.

Where the layer ships botocore's data files cut down to its services (``klineo.store.botocore_data``,
written by ``make build`` for the botocore it ships), the loader reads those first: the same files
without other services' endpoints and without documentation, parsed in a fraction of the time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, TypeVar

import botocore.session
from botocore import handlers
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, DataNotFoundError
from botocore.loaders import Loader, instance_cache
from botocore.retries.standard import RetryContext, TransientRetryableChecker

from klineo.store.botocore_data import SERVICES, data_path

__all__ = [
    "CONDITION_FAILED", "IN_FLIGHT", "SERVICES", "STORAGE_BUSY", "STORAGE_ERRORS", "TRANSACTION_CANCELED",
    "clear_clients", "concurrently", "dynamodb", "error_code", "is_transient", "secretsmanager", "sqs",
]

# SERVICES: every AWS service the layer makes a client for (the getters below).

_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "max_attempts": 3},
)


class _LayerServicesLoader(Loader):
    """botocore's data loader, whose list of available services is the layer's ``SERVICES``."""

    @instance_cache
    def list_available_services(self, type_name: str) -> list[str]:
        """The layer's services that ship a ``type_name`` file (botocore lists every service folder)."""
        available = []
        for service in SERVICES:
            try:
                self.list_api_versions(service, type_name)
            except DataNotFoundError:
                continue
            available.append(service)
        return available


# How SERVICES are spelled in botocore's event names: the service id, hyphenated (its handlers use
# that, or the service name).
_EVENT_SERVICE_NAMES = {"dynamodb": ("dynamodb",), "secretsmanager": ("secretsmanager", "secrets-manager"),
                        "sqs": ("sqs",)}


def _may_fire_for_services(event_name: str, services: frozenset[str]) -> bool:
    """True unless ``event_name`` names a service (``before-call.s3.PutObject``, ``docs.*.ec2...``)
    that is not one of ``services``."""
    parts = event_name.split(".")
    position = 2 if parts[0] == "docs" else 1
    return len(parts) <= position or parts[position] in services or parts[position] == "*"


class _LayerServicesSession(botocore.session.Session):
    """botocore's Session, with only the built-in handlers that can fire for the layer's services."""

    def _register_builtin_handlers(self, events: Any) -> None:
        services = frozenset(name for service in SERVICES for name in _EVENT_SERVICE_NAMES[service])
        for event_name, handler, *register_type in handlers.BUILTIN_HANDLERS:
            if not _may_fire_for_services(event_name, services):
                continue
            if not register_type:
                self.register(event_name, handler)
            elif register_type[0] is handlers.REGISTER_FIRST:
                self._events.register_first(event_name, handler)
            elif register_type[0] is handlers.REGISTER_LAST:
                self._events.register_last(event_name, handler)


@cache
def _loader() -> Loader:
    # botocore's data files, read and parsed once. The loader holds data only (no credentials, no
    # connection), so a SnapStart restore keeps it (``clear_clients(keep_data=True)``): the Session
    # and clients it makes again do not parse the same files again.
    trimmed = data_path()
    extra = [str(trimmed)] if trimmed.is_dir() else []
    return _LayerServicesLoader(extra_search_paths=extra)


@cache
def _session() -> Any:
    # One Session per container: its loaders and endpoint data are built once and shared by every
    # client (a Session per client pays that again, ~50 ms of cold start for the second client).
    # X-Ray traces the clients' calls from here on. Imported on first use, as the Binance client
    # does with requests: importing this module alone (local tools, tests) does not load Powertools.
    from klineo.observability import trace_botocore

    trace_botocore()
    session = _LayerServicesSession()
    session.register_component("data_loader", _loader())
    return session


_CLIENT_LOCK = threading.Lock()


def _client(service: str) -> Any:
    # The lock is taken before the cache is read: making clients from one Session is not thread-safe
    # (the runner uses a thread pool), and two threads missing the cache at once would each make one.
    with _CLIENT_LOCK:
        return _made_client(service)


@cache
def _made_client(service: str) -> Any:
    return _session().create_client(service, config=_CONFIG)


def dynamodb() -> Any:
    """The container's DynamoDB client."""
    return _client("dynamodb")


def secretsmanager() -> Any:
    """The container's Secrets Manager client."""
    return _client("secretsmanager")


def sqs() -> Any:
    """The container's SQS client."""
    return _client("sqs")


# The most calls ``concurrently`` has in flight at once: a client's connection pool holds 10 (botocore's
# default, which ``_CONFIG`` keeps); more threads would only queue on it.
IN_FLIGHT = 10
_Item = TypeVar("_Item")
_Answer = TypeVar("_Answer")


def concurrently(call: Callable[[_Item], _Answer], items: Sequence[_Item],
                 workers: int = IN_FLIGHT) -> list[_Answer]:
    """``call`` of each item (one AWS request each, say), answered in the order given, up to ``workers`` in
    flight at once on a thread pool; the calls share the container's clients (made under a lock, then
    thread-safe). The first failure in that order is raised as it is, and the calls not yet started are not
    sent. One item or none: called in this thread."""
    if len(items) <= 1:
        return [call(item) for item in items]
    # Imported here: the thread pool module is some 0.5 ms of every function's cold start otherwise, and
    # only GET /strategies, DELETE /exchange-connections/{id}, its enable and a call that disables it use it.
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=min(workers, len(items)))
    try:
        return list(pool.map(call, items))
    finally:
        pool.shutdown(cancel_futures=True)


# What a store call raises when AWS failed it (for a caller that logs it and goes on).
STORAGE_ERRORS: tuple[type[Exception], ...] = (BotoCoreError, ClientError)
# DynamoDB's answer to a write whose ConditionExpression did not hold.
CONDITION_FAILED = "ConditionalCheckFailedException"
# DynamoDB's answer to a TransactWriteItems it did not commit (``CancellationReasons`` say why).
TRANSACTION_CANCELED = "TransactionCanceledException"
# What a caller is told when AWS is busy or unreachable (``is_transient``): a retryable 503.
STORAGE_BUSY = "storage is busy; try again in a moment"
# The throttling answers of the layer's services (DynamoDB, Secrets Manager, SQS). Not botocore's whole
# throttling list: its LimitExceededException is a hard quota in Secrets Manager, which no retry gets past.
_THROTTLED = frozenset({"ThrottlingException", "ProvisionedThroughputExceededException",
                        "RequestLimitExceeded", "RequestThrottled", "TransactionInProgressException"})
_TRANSIENT = TransientRetryableChecker()


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a failed call (``ConditionalCheckFailedException``, ...); None for an error
    AWS did not answer (a BotoCoreError: a timeout, no connection).

    The layer tells AWS errors apart by this code, never by the classes of ``client.exceptions``:
    botocore builds those on a client's first error, unguarded, so two threads meeting one client's
    first errors at once can each build a set, and one of them then raises a class the other's
    ``except`` clause does not name (the runner's thread pool did, on a redelivered message).
    """
    return (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")


def is_transient(exc: BaseException) -> bool:
    """Whether a failed AWS call is one a later retry may get past, once botocore's own retries gave up:
    throttled (``_THROTTLED``), an AWS-side 5xx, or no answer (a timeout, a lost connection: botocore's
    transient rules). Anything else (a missing table, a refused parameter, a quota) is a fault of ours."""
    response = getattr(exc, "response", None)
    status = ((response or {}).get("ResponseMetadata") or {}).get("HTTPStatusCode")
    if error_code(exc) in _THROTTLED or (isinstance(status, int) and status >= 500):
        return True
    context = RetryContext(attempt_number=1, parsed_response=response,
                           caught_exception=None if response else exc)
    return bool(_TRANSIENT.is_retryable(context))


def clear_clients(*, keep_data: bool = False) -> None:
    """Forget cached clients and their Session, with its credentials (tests, after a mock starts or an
    endpoint changes; a SnapStart restore, which keeps botocore's parsed data files: ``keep_data``)."""
    _made_client.cache_clear()
    _session.cache_clear()
    if not keep_data:
        _loader.cache_clear()
