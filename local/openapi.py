"""The OpenAPI document of the whole HTTP API, generated from the functions' own resolvers.

Every function behind the HttpApi builds a Powertools ``APIGatewayHttpResolver`` with validation on,
so each knows its route, parameters, request and response models. This module imports each one as
its own package (``functions.<folder>.app``), takes its schema, names its path the way template.yaml
does (the template's ``{id}`` where a handler says ``<connection_id>``), and merges them with
Powertools' ``OpenAPIMerge``, adding the JWT bearer scheme the HttpApi's authorizer requires.

``python -m local.openapi`` (``make openapi``) writes the result to ``openapi.json`` at the repo
root; ``python -m local.openapi --check`` exits 1 when that file is stale.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from typing import Any

from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, OpenAPI, Server, ServerVariable
from klineo.api.params import REQUIRED_BY_SERVICE
from klineo.models.errors import ErrorResponse

from local.aws_emulation import required_settings
from local.template import REPO_ROOT, FunctionSpec, Resolver, Route, function_specs, load_template

__all__ = ["OPENAPI_PATH", "build_document", "main", "render", "template_operations"]

OPENAPI_PATH = REPO_ROOT / "openapi.json"
TITLE = "KLINEO Binance API"
VERSION = "1.0.0"
SECURITY_SCHEME = "klineoJwt"
DESCRIPTION = (
    "Links KLINEO users' Binance API keys, tests them, reads spot balances, switches USDT-M futures "
    "on and off, places exactly-once futures orders and manages the strategies the runner executes.\n\n"
    "Every route needs `Authorization: Bearer <JWT>` (the HttpApi's JWT authorizer; the user is the "
    'token\'s `sub`). A missing or invalid token gets 401 `{"message":"Unauthorized"}` from API '
    "Gateway before any function runs. Errors from the functions have one shape: "
    '`{"error": {"category", "message", "retryable", "request_id", "field"?, "errors"?}}`; '
    "every answer carries `X-Request-Id` (the same id as `request_id`). Request bodies are JSON "
    "sent with `Content-Type: application/json` (anything else is 415).\n\n"
    "Locally (`make run`) the API is at http://127.0.0.1:3000 and a dev token is printed at start."
)
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def template_operations(template: dict[str, Any] | None = None) -> set[tuple[str, str]]:
    """(METHOD, path) of every HttpApi route template.yaml declares."""
    return {(r.method, r.path) for s in function_specs(template or load_template()) for r in s.routes}


def _query_model_fields(app: Any) -> dict[str, dict[str, tuple[dict[str, Any], bool]]]:
    """Per HTTP method, each query parameter a route's query model declares: its JSON schema (bounds,
    pattern, enum, default, description) and whether it is required. Powertools lists a query
    model's fields as bare "string"/"integer" parameters; the document gives them their rules.
    Reads the routes Powertools keeps on the resolver (``_static_routes``/``_dynamic_routes``); a test
    of the document fails if an upgrade stops doing so."""
    fields: dict[str, dict[str, tuple[dict[str, Any], bool]]] = {}
    for route in [*app._static_routes, *app._dynamic_routes]:
        for param in route.dependant.query_params:
            model = getattr(param.field_info, "annotation", None)
            if not hasattr(model, "model_json_schema"):
                continue
            schema = model.model_json_schema(by_alias=True)
            required = set(schema.get("required", []))
            declared = fields.setdefault(route.method.lower(), {})
            for name, prop in schema.get("properties", {}).items():
                declared[name] = (prop, name in required)
    return fields


def _plain_query_schema(prop: dict[str, Any]) -> dict[str, Any]:
    """A model property's schema as a query parameter's: no title, and no null branch (a query
    parameter is absent, never null)."""
    schema = {key: value for key, value in prop.items() if key not in ("title", "description")}
    if schema.get("default", "") is None:
        del schema["default"]
    branches = [b for b in schema.pop("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        schema = {**branches[0], **schema}
    elif branches:
        schema["anyOf"] = branches
    return schema


def _describe_query_parameters(app: Any, schema: dict[str, Any]) -> None:
    """Give every query parameter of the function's schema its rules (its query model field's, or
    its own declaration's), and ``required`` where the service requires it (``ServiceQuery``), in place."""
    fields = _query_model_fields(app)
    for item in schema.get("paths", {}).values():
        for method, operation in item.items():
            declared = fields.get(method, {})
            for parameter in operation.get("parameters", []):
                if parameter.get("in") != "query":
                    continue
                prop, required = declared.get(parameter.get("name"), (parameter.get("schema", {}), None))
                if "$ref" in json.dumps(prop):
                    continue
                parameter["schema"] = _plain_query_schema(prop)
                if required is not None:
                    parameter["required"] = required
                if parameter["schema"].pop(REQUIRED_BY_SERVICE, False):  # klineo.api.params.ServiceQuery
                    parameter["required"] = True
                if "description" in prop:
                    parameter.setdefault("description", prop["description"])


def _rename_to_template(spec: FunctionSpec, schema: dict[str, Any]) -> dict[str, Any]:
    """The function's schema with each path (and its path parameters) named as the template names it."""
    by_shape: dict[tuple[str, str], Route] = {(r.method.lower(), _shape(r.path)): r for r in spec.routes}
    paths: dict[str, Any] = {}
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            route = by_shape.get((method, _shape(path)))
            if route is None:
                declared = ", ".join(f"{r.method} {r.path}" for r in spec.routes)
                raise ValueError(
                    f"{spec.module} serves {method.upper()} {path}, which template.yaml does not route to "
                    f"{spec.logical_id} (its routes: {declared})"
                )
            ours = re.findall(r"\{([^}]+)\}", path)
            theirs = re.findall(r"\{([^}]+)\}", route.path)
            renamed = dict(zip(ours, theirs, strict=True))
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter.get("name") in renamed:
                    parameter["name"] = renamed[parameter["name"]]
            # Powertools' default summary repeats "METHOD /path"; the template's Description says more.
            if operation.get("summary", "").upper() == f"{method} {path}".upper():
                operation["summary"] = spec.properties.get("Description", f"{method.upper()} {route.path}")
            operation.setdefault("tags", [route.path.strip("/").split("/", 1)[0]])
            paths.setdefault(route.path, {})[method] = operation
    return {**schema, "paths": paths}


_GATEWAY_MESSAGE = {
    "title": "GatewayMessage",
    "type": "object",
    "description": "An answer API Gateway gives itself, before or instead of a function.",
    "properties": {"message": {"type": "string", "examples": ["Unauthorized"]}},
    "required": ["message"],
}


def _prune_unused_schemas(paths: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Drop component schemas no operation reaches (e.g. Powertools' own validation-error models)."""
    reachable: set[str] = set()
    pending = re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(paths))
    while pending:
        name = pending.pop()
        if name in reachable or name not in schemas:
            continue
        reachable.add(name)
        pending += re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(schemas[name]))
    for name in set(schemas) - reachable:
        del schemas[name]


# Every error status an operation can answer, and when. API Gateway answers some itself (its
# authorizer's 401, throttling's 429, a body over 10 MB, a timed-out or crashed function) with
# GatewayMessage; those statuses document both shapes.
ERROR_STATUSES: dict[str, tuple[str, bool]] = {
    "400": ("Invalid request: malformed JSON, a repeated query parameter, a value Binance refuses", False),
    "401": ("Missing, invalid or expired JWT", True),
    "403": ("Binance refused the connection's API key (permissions, signature, IP whitelist)", False),
    "404": ("No such route, or no such resource for the caller (never 403: ids do not leak)", True),
    "409": ("The resource's state forbids the request (e.g. an Idempotency-Key reused)", False),
    "413": ("Request body over 16 KiB", True),
    "415": ("A request body not sent as Content-Type: application/json", False),
    "422": ("Invalid input: error.field names the (first) field, error.errors lists them all", False),
    "429": ("Rate limited (Binance or API Gateway); see Retry-After", True),
    "451": ("Binance refuses the deployment's location", False),
    "500": ("Internal error (never a stack trace)", True),
    "502": ("Binance could not be reached, or refused our clock", True),
    "503": ("Binance unavailable, or the egress IP banned (Retry-After)", True),
    "504": ("A write's outcome is unknown (timeout): look the order up", True),
}
REQUEST_ID_HEADER = {
    "X-Request-Id": {
        "description": "The request's id (also error.request_id and the log lines' correlation_id).",
        "schema": {"type": "string"},
    }
}


# klineo.api passes Binance's wait on to the caller: rate_limit (429) and ip_banned (503) carry it;
# API Gateway's own 429 and a 503 of a briefly unavailable Binance or AWS do not.
RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Whole seconds to wait before retrying (error.category rate_limit or ip_banned); "
                       "absent on API Gateway's own 429 and on upstream_unavailable.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
RETRY_AFTER_STATUSES = frozenset({"429", "503"})


def _error_response(status: str, error_ref: str, gateway_ref: str) -> dict[str, Any]:
    description, gateway_too = ERROR_STATUSES[status]
    schema = {"anyOf": [{"$ref": error_ref}, {"$ref": gateway_ref}]} if gateway_too else {"$ref": error_ref}
    headers = REQUEST_ID_HEADER
    if status in RETRY_AFTER_STATUSES:
        headers = {**REQUEST_ID_HEADER, **RETRY_AFTER_HEADER}
    return {"description": description, "headers": headers,
            "content": {"application/json": {"schema": schema}}}


# The one error status only some routes answer: a header they require is missing (the Idempotency-Key
# of an order, ``klineo.api.params``). A route lists it (with why) among its own responses.
PRECONDITION_REQUIRED = "428"


def _require_headers(operation: dict[str, Any], responses: dict[str, Any], error_ref: str) -> None:
    """An operation that answers 428 requires its headers: say so, and give the 428 the error body.

    The function takes such a header as optional only so that its absence is the service's 428 (with
    why), not Powertools' 422; to a caller the header is required.
    """
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "header":
            parameter["required"] = True
    responses[PRECONDITION_REQUIRED] = {
        "description": responses[PRECONDITION_REQUIRED].get("description", "A required header is missing"),
        "headers": REQUEST_ID_HEADER,
        "content": {"application/json": {"schema": {"$ref": error_ref}}},
    }


def _document_errors(document: dict[str, Any]) -> dict[str, Any]:
    """Describe every answer the API really gives, on every operation.

    Powertools documents its own validation body (HTTPValidationError) for 422 and nothing else;
    klineo.api answers every error with ErrorResponse, and API Gateway some with GatewayMessage.
    """
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in error_schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas.setdefault("ErrorResponse", error_schema)
    schemas.setdefault("GatewayMessage", _GATEWAY_MESSAGE)
    error_ref, gateway_ref = "#/components/schemas/ErrorResponse", "#/components/schemas/GatewayMessage"
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            # 204 has no body, whatever Powertools infers from the handler's return type.
            responses.get("204", {}).pop("content", None)
            for answer in responses.values():
                answer.setdefault("headers", REQUEST_ID_HEADER)
            for status in ERROR_STATUSES:
                responses[status] = _error_response(status, error_ref, gateway_ref)
            if PRECONDITION_REQUIRED in responses:
                _require_headers(operation, responses, error_ref)
            responses["default"] = {"description": "Any other error: see error.category",
                                    "headers": REQUEST_ID_HEADER,
                                    "content": {"application/json": {"schema": {"$ref": error_ref}}}}
            operation["responses"] = dict(sorted(responses.items()))
    _prune_unused_schemas(document["paths"], schemas)
    return document


def build_document() -> dict[str, Any]:
    """The merged OpenAPI document (a plain JSON-ready dict)."""
    merge = OpenAPIMerge(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        servers=[
            Server(url="/", description="The server of this page (make run: http://127.0.0.1:3000)"),
            Server(
                url="https://{apiId}.execute-api.{region}.amazonaws.com/{stage}",
                description="A deployed stack (sam deploy output ApiUrl)",
                variables={
                    "apiId": ServerVariable(default="abcdef1234", description="the HttpApi id"),
                    "region": ServerVariable(default="ap-northeast-1"),
                    "stage": ServerVariable(default="dev", enum=["dev", "prod"]),
                },
            ),
        ],
        security_schemes={
            SECURITY_SCHEME: HTTPBearer(
                bearerFormat="JWT",
                description="A JWT from the KLINEO user pool (locally: the dev token `make run` prints).",
            )
        },
        security=[{SECURITY_SCHEME: []}],
        on_conflict="error",
    )
    for name, value in required_settings(Resolver(load_template())).items():
        os.environ.setdefault(name, value)  # importing a function builds its resolver from settings
    for spec in function_specs():
        if not spec.routes:
            continue
        app = importlib.import_module(spec.module).app
        schema = app.get_openapi_schema().model_dump(mode="json", by_alias=True, exclude_none=True)
        _describe_query_parameters(app, schema)
        merge.add_schema(_rename_to_template(spec, schema))
    document = _document_errors(merge.get_openapi_schema())
    return OpenAPI(**document).model_dump(mode="json", by_alias=True, exclude_none=True)


def render(document: dict[str, Any]) -> str:
    """The document as committed: two-space JSON, a final newline."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write openapi.json (or, with --check, report whether it is current)."""
    parser = argparse.ArgumentParser(prog="python -m local.openapi", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if openapi.json is not current")
    args = parser.parse_args(argv)
    text = render(build_document())
    if args.check:
        current = OPENAPI_PATH.read_text(encoding="utf-8") if OPENAPI_PATH.is_file() else ""
        if current != text:
            print(f"{OPENAPI_PATH.name} is stale: run `make openapi`", file=sys.stderr)
            return 1
        print(f"{OPENAPI_PATH.name} is current")
        return 0
    OPENAPI_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {OPENAPI_PATH.relative_to(REPO_ROOT)} ({len(json.loads(text)['paths'])} paths)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
