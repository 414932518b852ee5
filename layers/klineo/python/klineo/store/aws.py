"""boto3 clients made lazily, once per container, so cold starts stay short and moto can intercept them.

boto3 itself honours ``AWS_ENDPOINT_URL`` (the local stack points it at the moto server).
Tests call ``clear_clients()`` after starting a mock so fresh clients are made inside it.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

__all__ = ["clear_clients", "dynamodb", "secretsmanager", "sqs"]

_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "max_attempts": 3},
)


@cache
def _session() -> Any:
    # One Session per container: its loaders and endpoint data are built once and shared by every
    # client (a Session per client pays that again, ~50 ms of cold start for the second client).
    return boto3.session.Session()


_CLIENT_LOCK = threading.Lock()


@cache
def _client(service: str) -> Any:
    # Making clients from one Session is not thread-safe (the runner uses a thread pool).
    with _CLIENT_LOCK:
        return _session().client(service, config=_CONFIG)


def dynamodb() -> Any:
    """The container's DynamoDB client."""
    return _client("dynamodb")


def secretsmanager() -> Any:
    """The container's Secrets Manager client."""
    return _client("secretsmanager")


def sqs() -> Any:
    """The container's SQS client."""
    return _client("sqs")


def clear_clients() -> None:
    """Forget cached clients (tests, after a mock starts or an endpoint changes)."""
    _client.cache_clear()
    _session.cache_clear()
