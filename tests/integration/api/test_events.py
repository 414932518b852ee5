"""Every route's events/<function>.json matches template.yaml and runs through its real handler."""

from __future__ import annotations

import ast
import base64
from pathlib import Path

import pytest

from local.template import function_specs
from tests.helpers import load_event, response_json
from tests.integration.api.conftest import at_path

REPO = Path(__file__).resolve().parents[3]
FUNCTIONS = ["connection_test", "connection_create", "connection_list", "connection_delete",
             "connection_test_stored", "balance", "candles", "kill_switch_get", "kill_switch_set"]


def _route(template: dict, folder: str) -> tuple[str, str]:
    (spec,) = [s for s in function_specs(template) if s.package == folder]
    (route,) = spec.routes
    return route.method, route.path


@pytest.mark.parametrize("function", FUNCTIONS)
def test_event_is_an_http_api_v2_event_for_the_templates_route(template, function):
    """GIVEN events/<function>.json WHEN read THEN a payload-2.0 event with JWT claims for its route."""
    event = load_event(function)
    method, path = _route(template, function)
    assert event["version"] == "2.0"
    assert event["routeKey"] == f"{method} {path}" == event["requestContext"]["routeKey"]
    assert event["requestContext"]["http"]["method"] == method
    assert event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
    if "body" in event:
        assert event["isBase64Encoded"] is True
        base64.b64decode(event["body"], validate=True)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_handler_file_stays_thin(function):
    """GIVEN functions/<function>/app.py WHEN read THEN <= 30 lines, no boto3/requests, a lambda_handler."""
    source = (REPO / "functions" / function / "app.py").read_text()
    assert len(source.splitlines()) <= 30
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(source))
                if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
    assert not imported & {"boto3", "botocore", "requests"}
    assert "def lambda_handler(event, context):" in source


def _for_connection(event: dict, connection_id: str) -> dict:
    old = event["pathParameters"]["id"]
    path = event["requestContext"]["http"]["path"].removeprefix("/" + event["requestContext"]["stage"])
    return at_path(event, path.replace(old, connection_id), id=connection_id)


@pytest.mark.parametrize(("function", "status"), [
    ("connection_test", 200), ("connection_list", 200), ("kill_switch_get", 200),
])
def test_event_without_a_connection_runs_through_its_handler(sim_env, invoke, function, status):
    """GIVEN the event file as generated WHEN its handler is invoked THEN it answers successfully."""
    response = invoke(function, load_event(function))
    assert response["statusCode"] == status, response["body"]


@pytest.mark.parametrize(("function", "status"), [
    ("connection_test_stored", 200), ("balance", 200), ("connection_delete", 200),
])
def test_event_on_a_connection_runs_through_its_handler(sim_env, invoke, function, status):
    """GIVEN the event's user owning a connection (from events/connection_create.json) THEN success."""
    created = invoke("connection_create", load_event("connection_create"))
    assert created["statusCode"] == 201
    connection_id = response_json(created)["id"]
    placeholder = invoke(function, load_event(function))
    assert placeholder["statusCode"] == 404
    response = invoke(function, _for_connection(load_event(function), connection_id))
    assert response["statusCode"] == status, response["body"]
