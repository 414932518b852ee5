"""The TypeScript client in clients/typescript: its generated types are current and it type-checks."""

from __future__ import annotations

from tests.helpers import TS_CLIENT_DIR, run_npm


def test_generated_types_match_openapi_json() -> None:
    """src/generated/schema.ts is exactly what `make ts-client` makes of the committed openapi.json."""
    # GIVEN the committed openapi.json and generated types / WHEN they are generated again
    output = run_npm("check-generated")
    # THEN nothing differs
    assert "generated types match openapi.json" in output


def test_client_and_its_walkthrough_type_check() -> None:
    """`tsc --noEmit` (strict) passes over the wrapper, the generated types and the walkthrough test."""
    # GIVEN the client's sources / WHEN tsc checks them / THEN no error
    run_npm("typecheck")
    assert (TS_CLIENT_DIR / "src" / "generated" / "schema.ts").is_file()


def test_client_types_gateway_answers_and_error_bodies_offline() -> None:
    """`npm run unit`: test/errors.test.ts, the client's error mapping against a fake fetch, passes."""
    # GIVEN the client / WHEN its offline tests run / THEN none fails
    output = run_npm("unit")
    assert "# fail 0" in output, output
