"""Property-based fuzzing of the whole local stack over HTTP, generated from openapi.json (schemathesis).

Each operation gets a bounded number of generated requests, valid and invalid, sent as a user of
its own. Every answer must be no server error, a status the document lists for the operation,
the content type it lists, and a body its schema accepts.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from local.openapi import OPENAPI_PATH

from .conftest import RunningStack

pytestmark = pytest.mark.e2e

# Enough to reach every field's edge cases once or twice; about a minute for all operations.
EXAMPLES_PER_OPERATION = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

schema = schemathesis.openapi.from_path(OPENAPI_PATH)


@pytest.fixture(scope="module")
def fuzz_token(stack: RunningStack) -> str:
    """A user of the fuzz run's own: whatever it switches (its kill switch) touches no other test."""
    return stack.token_for("fuzz-0000-4000-8000-000000000000")


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_generated_request_gets_an_answer_the_document_describes(case, stack, fuzz_token):
    """GIVEN generated requests per operation WHEN sent THEN no 5xx, and status, type, body as documented."""
    case.call_and_validate(base_url=stack.api, headers={"Authorization": f"Bearer {fuzz_token}"},
                           checks=CHECKS, timeout=60)
