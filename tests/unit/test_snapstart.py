"""SnapStart hooks: after a restore, network clients are made anew and `random` is re-seeded."""

from __future__ import annotations

import importlib.machinery
import random
import sys
import types
from collections.abc import Iterator

import pytest
from klineo import snapstart
from klineo.binance import Environment, Market, get_client
from klineo.store import aws


@pytest.fixture(autouse=True)
def no_clients_left() -> Iterator[None]:
    """The clients a test made (with its own credentials) are not left cached for the next test."""
    yield
    aws.clear_clients()


@pytest.fixture
def runtime_library(monkeypatch: pytest.MonkeyPatch) -> list:
    """A SnapStart init: Lambda's variable set, and a stand-in for its snapshot_restore_py that records
    the callables registered after restore."""
    registered: list = []
    module = types.ModuleType("snapshot_restore_py")
    module.__spec__ = importlib.machinery.ModuleSpec("snapshot_restore_py", None)
    module.register_after_restore = registered.append
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", module)
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    monkeypatch.setattr(snapstart, "_registered", False)
    return registered


def test_after_restore_forgets_boto3_and_binance_clients(aws_credentials) -> None:
    """GIVEN clients built before the snapshot WHEN restored THEN the next use builds new ones,
    with a new HTTP session (no pooled connection from before the snapshot is reused)."""
    # GIVEN
    dynamodb_before = aws.dynamodb()
    binance_before = get_client(Market.SPOT, Environment.PRODUCTION)
    session_before = binance_before._session
    # WHEN
    snapstart.after_restore()
    # THEN
    assert aws.dynamodb() is not dynamodb_before
    binance_after = get_client(Market.SPOT, Environment.PRODUCTION)
    assert binance_after is not binance_before
    assert binance_after._session is not session_before


def test_after_restore_makes_aws_clients_with_the_restored_environment_s_credentials(
    aws_credentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a client made with the snapshot's credentials WHEN restored where Lambda gave other ones
    THEN the next client signs with the restored environment's (its Session is new too)."""
    # GIVEN
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "snapshot-key")
    aws.clear_clients()
    assert aws.dynamodb()._request_signer._credentials.access_key == "snapshot-key"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "restored-key")
    # WHEN
    snapstart.after_restore()
    # THEN
    assert aws.dynamodb()._request_signer._credentials.access_key == "restored-key"


def test_after_restore_keeps_botocore_s_parsed_data_files(aws_credentials) -> None:
    """GIVEN botocore's data files parsed before the snapshot WHEN restored THEN the new Session reads
    them from the same loader (not parsed again); clear_clients() alone (tests) forgets it too."""
    # GIVEN
    aws.clear_clients()
    loader = aws._session().get_component("data_loader")
    # WHEN
    snapstart.after_restore()
    # THEN
    assert aws._session().get_component("data_loader") is loader
    aws.clear_clients()
    assert aws._session().get_component("data_loader") is not loader


def test_after_restore_reseeds_random() -> None:
    """GIVEN the random state a snapshot would hold WHEN restored THEN the next draw differs from
    the one every restored environment would otherwise repeat."""
    # GIVEN
    random.seed(1234)
    repeated = [random.random() for _ in range(4)]
    random.seed(1234)
    # WHEN
    snapstart.after_restore()
    # THEN
    assert [random.random() for _ in range(4)] != repeated


def test_hooks_are_registered_once_in_a_snapstart_init(runtime_library: list) -> None:
    """In a SnapStart init, after_restore is registered with Lambda's library, and only once."""
    # WHEN registered twice
    first, second = snapstart.register_hooks(), snapstart.register_hooks()
    # THEN
    assert (first, second) == (True, True)
    assert runtime_library == [snapstart.after_restore]


@pytest.mark.parametrize("initialization", [None, "on-demand", "provisioned-concurrency"])
def test_nothing_is_registered_outside_a_snapstart_init(
    initialization: str | None, runtime_library: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An on-demand init, or no Lambda at all (tests, local stack), registers nothing."""
    if initialization is None:
        monkeypatch.delenv("AWS_LAMBDA_INITIALIZATION_TYPE")
    else:
        monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", initialization)
    assert snapstart.register_hooks() is False
    assert runtime_library == []
