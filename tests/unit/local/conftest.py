"""Fixtures shared by the local stack's unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from local.aws_emulation import serialize_dynamodb


@pytest.fixture
def emulated_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in this process with the local stack's DynamoDB emulation, and fake credentials."""
    for name, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                        "AWS_DEFAULT_REGION": "ap-northeast-1"}.items():
        monkeypatch.setenv(name, value)
    serialize_dynamodb()
    with mock_aws():
        yield
