"""The README walkthrough and one error of each kind through the TypeScript client, on the local stack."""

from __future__ import annotations

import os

import pytest

from tests.helpers import run_npm

from .conftest import RunningStack

pytestmark = pytest.mark.e2e


def test_typescript_client_runs_the_walkthrough_and_types_every_error(stack: RunningStack) -> None:
    """`node --test` of clients/typescript/test passes against a running stack, as a frontend would use it."""
    # GIVEN a running stack and tokens for two users of their own
    env = {
        **os.environ,
        "KLINEO_API_URL": stack.api,
        "KLINEO_TOKEN": stack.token_for("ts-client-user"),
        "KLINEO_OTHER_TOKEN": stack.token_for("ts-client-other-user"),
    }
    # WHEN the client's walkthrough test runs / THEN every step and error case passes
    output = run_npm("walkthrough", env=env, timeout_s=600)
    assert "# fail 0" in output, output
