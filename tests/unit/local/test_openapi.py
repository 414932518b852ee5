"""openapi.json is generated from the functions' resolvers, committed current, and matches template.yaml."""

from __future__ import annotations

import json

import pytest

from local.openapi import OPENAPI_PATH, SECURITY_SCHEME, build_document, render, template_operations


@pytest.fixture(scope="module")
def generated() -> dict:
    """A fresh generation from the functions."""
    return build_document()


def _operations(document: dict) -> set[tuple[str, str]]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    return {(m.upper(), path) for path, item in document["paths"].items() for m in item if m in methods}


def test_committed_openapi_json_is_a_fresh_generation(generated: dict) -> None:
    """The committed openapi.json is byte-for-byte what `make openapi` writes now."""
    # GIVEN the committed file / WHEN compared with a fresh generation
    committed = OPENAPI_PATH.read_text(encoding="utf-8")
    # THEN they are equal (otherwise: run `make openapi`)
    assert committed == render(generated), "openapi.json is stale: run `make openapi`"


def test_document_paths_and_methods_are_exactly_the_templates_routes(generated: dict) -> None:
    """Every HttpApi route of template.yaml is documented, under the template's path, and nothing else."""
    # GIVEN / WHEN / THEN
    assert _operations(generated) == template_operations()
    assert _operations(json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))) == template_operations()


def test_every_operation_requires_the_jwt_bearer_scheme(generated: dict) -> None:
    """A global bearer-JWT requirement, and the 401 API Gateway gives, on every operation."""
    # GIVEN / WHEN / THEN
    assert generated["components"]["securitySchemes"][SECURITY_SCHEME] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A JWT from the KLINEO user pool (locally: the dev token `make run` prints).",
    }
    assert generated["security"] == [{SECURITY_SCHEME: []}]
    for item in generated["paths"].values():
        for operation in item.values():
            assert "401" in operation["responses"]
            assert operation["responses"]["default"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorResponse"
            }


def test_every_schema_reference_resolves(generated: dict) -> None:
    """No $ref points at a schema the document lacks."""
    # GIVEN / WHEN
    text = json.dumps(generated)
    references = {part.split('"', 1)[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}
    # THEN
    assert references <= set(generated["components"]["schemas"])
