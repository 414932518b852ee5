"""openapi.json is generated from the functions' resolvers, committed current, and matches template.yaml."""

from __future__ import annotations

import json
from typing import Annotated

import pytest
from klineo.api.params import REQUIRED_BY_SERVICE
from klineo.models.backtest_request import BacktestRequest
from klineo.models.connection_settings import CLEARABLE_SETTINGS
from klineo.models.futures import FuturesOrderRequest, ProtectiveTarget
from klineo.models.strategies import CLEARABLE_FIELDS
from klineo.models.strategy_requests import StrategyCreateRequest, StrategyUpdateRequest
from pydantic import TypeAdapter, ValidationError

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


def test_every_operation_documents_every_error_status_with_the_error_schema(generated: dict) -> None:
    """Each operation lists 400..504 with ErrorResponse (and API Gateway's message where it answers too)."""
    statuses = {"400", "401", "403", "404", "409", "413", "415", "422", "429", "451", "500", "502", "503",
                "504"}
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for item in generated["paths"].values():
        for operation in item.values():
            assert statuses <= set(operation["responses"])
            for status in statuses:
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema == error_ref or error_ref in schema["anyOf"]


def test_delete_is_documented_as_204_without_a_body(generated: dict) -> None:
    """A strategy's DELETE answers 204 with no body: the document says 204, no 200, no content."""
    responses = generated["paths"]["/strategies/{id}"]["delete"]["responses"]
    assert "200" not in responses
    assert "content" not in responses["204"]


def test_connection_delete_is_documented_with_the_strategies_it_paused(generated: dict) -> None:
    """A connection's DELETE answers 200 with a body naming the paused strategies (no 204)."""
    responses = generated["paths"]["/exchange-connections/{id}"]["delete"]["responses"]
    assert "204" not in responses
    schema = responses["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "paused_strategies" in generated["components"]["schemas"][schema]["properties"]


def test_both_klines_routes_describe_the_trading_reserves_429(generated: dict) -> None:
    """GET /candles and POST /strategies/backtest each say why they answer 429 with Retry-After."""
    for path, method in (("/candles", "get"), ("/strategies/backtest", "post")):
        description = generated["paths"][path][method].get("description", "")
        assert "trading" in description and "429 rate_limit with Retry-After" in description, path


def test_error_body_documents_request_id_and_every_failing_field(generated: dict) -> None:
    """ErrorBody requires request_id and lists errors[] of {field, message}."""
    body = generated["components"]["schemas"]["ErrorBody"]
    assert "request_id" in body["required"]
    assert generated["components"]["schemas"]["FieldError"]["required"] == ["field", "message"]


KEYED_ROUTES = (("/futures/order", "post"),
                ("/exchange-connections/{id}/futures/positions/{symbol}/close", "post"))


def test_keyed_routes_require_the_idempotency_key_and_document_its_428(generated: dict) -> None:
    """The order and close routes (428 without the key, as the README says) declare the header required and
    list 428 with the error body; no other route lists 428."""
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, method in KEYED_ROUTES:
        operation = generated["paths"][path][method]
        (header,) = [p for p in operation["parameters"] if p["in"] == "header"]
        assert header["name"] == "idempotency-key" and header["required"] is True, path
        assert header["schema"]["type"] == "string" and header["schema"]["maxLength"] == 255, path
        answer = operation["responses"]["428"]
        assert "Idempotency-Key" in answer["description"], path
        assert answer["content"]["application/json"]["schema"] == error_ref, path
    others = {(path, method) for path, item in generated["paths"].items()
              for method, operation in item.items() if "428" in operation["responses"]}
    assert others == set(KEYED_ROUTES)


def _query_parameters(document: dict, path: str, method: str = "get") -> dict[str, dict]:
    operation = document["paths"][path][method]
    return {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}


def test_query_parameters_carry_their_models_rules(generated: dict) -> None:
    """A query model's fields are documented with their type, bounds, enum, default and whether they are
    required (Powertools alone lists them as bare strings), so a typed client knows them."""
    candles = _query_parameters(generated, "/candles")
    assert candles["market"]["schema"] == {"type": "string", "enum": ["spot", "futures"], "default": "spot"}
    assert candles["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 1500, "default": 500}
    assert candles["from"]["schema"]["type"] == "integer" and candles["from"]["required"] is False
    assert candles["symbol"]["required"] is True and candles["symbol"]["schema"]["pattern"]
    history = _query_parameters(generated, "/futures/orders")
    assert history["to"]["schema"]["type"] == "integer"
    assert "not before from" in history["to"]["description"]
    close_path = "/exchange-connections/{id}/futures/positions/{symbol}/close"
    close = _query_parameters(generated, close_path, "post")
    assert close["position_side"]["schema"] == {"type": "string", "enum": ["LONG", "SHORT"]}


def test_a_query_parameter_the_service_requires_is_documented_required(generated: dict) -> None:
    """DELETE .../futures/open-orders refuses a missing symbol itself (400 naming it, README "symbol
    required"), so the document declares it required (a typed client cannot leave it out), without the mark
    that says so; GET on the same path keeps it optional."""
    path = "/exchange-connections/{id}/futures/open-orders"
    assert _query_parameters(generated, path, "delete")["symbol"]["required"] is True
    assert _query_parameters(generated, path, "get")["symbol"]["required"] is False
    assert REQUIRED_BY_SERVICE not in json.dumps(generated)


def test_no_query_parameter_is_documented_as_nullable_or_untyped(generated: dict) -> None:
    """A query parameter is absent or a value, never null: no null branch, and each has a type or enum."""
    for path, item in generated["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] != "query":
                    continue
                text = json.dumps(parameter["schema"])
                where = (path, method, parameter["name"])
                assert '"null"' not in text and '"default": null' not in text, where
                assert "type" in parameter["schema"] or "enum" in parameter["schema"], where


@pytest.mark.parametrize(("model", "clearable"), [("StrategyUpdateRequest", CLEARABLE_FIELDS),
                                                  ("ConnectionUpdateRequest", CLEARABLE_SETTINGS)])
def test_a_patch_documents_null_only_where_it_clears(generated: dict, model: str, clearable: tuple) -> None:
    """PATCH /strategies/{id}'s and PATCH /exchange-connections/{id}'s bodies allow null exactly on the fields
    a null clears: the others refuse it (400), so a client typed from the document never sends a clear that
    does nothing or is refused."""
    properties = generated["components"]["schemas"][model]["properties"]
    nullable = {name for name, schema in properties.items()
                if {"type": "null"} in schema.get("anyOf", []) or schema.get("type") == "null"}
    assert nullable == set(clearable)


def test_typed_order_values_document_the_grid_rule(generated: dict) -> None:
    """POST /futures/order's quantity and prices say: on the symbol's step/tick grid, or refused."""
    schemas = generated["components"]["schemas"]
    order, target = schemas["FuturesOrderRequest"]["properties"], schemas["ProtectiveTarget"]["properties"]
    described = {name: order[name] for name in ("quantity", "price", "triggerPrice", "activationPrice")}
    described["stop_loss.price"] = target["price"]
    for name, field in described.items():
        text = field.get("description", "")
        size = "step size" if name == "quantity" else "tick size"
        assert f"multiple of the symbol's {size}" in text and "refused" in text, name


def _examples(schema: dict) -> list:
    """A property's examples, on itself or on the non-null branch of its anyOf."""
    branches = schema.get("anyOf", [])
    return schema.get("examples") or [found for branch in branches for found in branch.get("examples", [])]


def test_request_examples_are_values_the_api_accepts(generated: dict) -> None:
    """Every example of an order or strategy body's field is a value that field accepts."""
    # GIVEN the request models and their schemas in the document
    refused = []
    for model in (FuturesOrderRequest, ProtectiveTarget, StrategyCreateRequest, StrategyUpdateRequest,
                  BacktestRequest):
        properties = generated["components"]["schemas"][model.__name__]["properties"]
        for name, field in model.model_fields.items():
            examples = _examples(properties[field.alias or name])
            if not examples:
                continue
            # WHEN each example is validated as its field (its type and its Field's constraints)
            adapter = TypeAdapter(Annotated[(field.annotation, *field.metadata)] if field.metadata
                                  else field.annotation)
            for example in examples:
                try:
                    adapter.validate_python(example)
                except ValidationError:
                    refused.append(f"{model.__name__}.{name}={example!r}")
    # THEN none is refused
    assert refused == []


def test_a_connections_futures_last_test_is_documented_with_its_fields(generated: dict) -> None:
    """A connection's futures_last_test (the original's futures test status and last error, in its connection
    view) documents its fields, as last_test does, so a client typed from the document reads ok, message and
    tested_at rather than an untyped object."""
    schemas = generated["components"]["schemas"]
    for model in ("ConnectionResponse", "ConnectionEnableResponse"):
        branches = schemas[model]["properties"]["futures_last_test"]["anyOf"]
        reference = next(branch["$ref"] for branch in branches if "$ref" in branch)
        shown = schemas[reference.rsplit("/", 1)[-1]]
        assert set(shown["properties"]) == {"ok", "category", "message", "can_trade", "tested_at"}, model
        assert set(shown["required"]) == {"ok", "tested_at"}, model
