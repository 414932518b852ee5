"""The API adapter: one error body, the category->status table, JWT subject, bodies, CORS, 404/405."""

from __future__ import annotations

import io
import json
import logging
from typing import Annotated

import pytest
from aws_lambda_powertools.event_handler.openapi.params import Query
from klineo.api import CATEGORY_STATUS, MAX_BODY_BYTES, build_resolver, current_user_id
from klineo.errors import ErrorCategory, KlineoError
from klineo.models.candles import CandlesQuery
from klineo.models.kill_switch import KillSwitchSetRequest
from klineo.observability import logger
from klineo.settings import get_settings

from tests.helpers import load_event, response_json, with_body, with_user

ORIGIN = "https://app.klineo.example"


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch):
    """A resolver built like every function's, with routes that raise what a test needs."""
    monkeypatch.setenv("CORS_ORIGIN", ORIGIN)
    get_settings.cache_clear()
    app = build_resolver()
    raised: dict[str, Exception] = {}

    @app.put("/kill-switch")
    def put_switch(body: KillSwitchSetRequest) -> dict:
        return {"user": current_user_id(app), "enabled": body.enabled}

    @app.get("/kill-switch")
    def get_switch() -> dict:
        if "error" in raised:
            raise raised["error"]
        return {"user": current_user_id(app)}

    @app.get("/candles")
    def candles(query: Annotated[CandlesQuery, Query()]) -> dict:
        return query.model_dump()

    app.raised = raised
    yield app
    get_settings.cache_clear()


def _put(body, **kwargs) -> dict:
    return with_body(load_event("kill_switch_set"), body, **kwargs)


def _error(response: dict) -> dict:
    return response_json(response)["error"]


def test_every_error_category_has_exactly_one_status():
    """GIVEN the taxonomy WHEN the table is read THEN every category maps to one 4xx/5xx status."""
    assert set(CATEGORY_STATUS) == {c.value for c in ErrorCategory}
    assert all(400 <= status <= 599 for status in CATEGORY_STATUS.values())
    assert CATEGORY_STATUS["restricted"] == 451
    assert CATEGORY_STATUS["not_found"] == 404


def test_body_is_accepted_plain_and_base64(app):
    """GIVEN the same JSON body plain and base64-encoded WHEN resolved THEN both reach the route."""
    for encoded in (False, True):
        response = app.resolve(_put({"enabled": True}, base64_encoded=encoded), {})
        assert response["statusCode"] == 200
        assert response_json(response)["enabled"] is True


def test_user_comes_from_the_jwt_sub_claim_only(app):
    """GIVEN a body and path that name another user WHEN resolved THEN the route sees the JWT sub."""
    event = with_user(_put({"enabled": True}), "the-real-user")
    event["queryStringParameters"] = {"user_id": "someone-else"}
    assert response_json(app.resolve(event, {}))["user"] == "the-real-user"


def test_missing_sub_claim_is_401_before_any_validation(app):
    """GIVEN no sub claim and an invalid body WHEN resolved THEN 401, not a validation error."""
    event = _put({"enabled": "maybe"})
    del event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
    response = app.resolve(event, {})
    assert response["statusCode"] == 401
    assert _error(response)["category"] == "permission"


def test_validation_error_is_422_naming_the_field(app):
    """GIVEN a non-boolean 'enabled' WHEN resolved THEN 422 invalid_request naming enabled."""
    response = app.resolve(_put({"enabled": "yes"}), {})
    assert response["statusCode"] == 422
    error = _error(response)
    assert error["category"] == "invalid_request"
    assert error["field"] == "enabled"
    assert error["message"].startswith("enabled: ")
    assert error["retryable"] is False


def test_unknown_field_is_refused(app):
    """GIVEN an extra body field WHEN resolved THEN 422 naming it."""
    response = app.resolve(_put({"enabled": True, "user_id": "x"}), {})
    assert response["statusCode"] == 422
    assert _error(response)["field"] == "user_id"


@pytest.mark.parametrize("raw", ["{not json", "", "[1,", "NaN"])
def test_malformed_json_is_400(app, raw):
    """GIVEN a body that is not JSON WHEN resolved THEN 400 invalid_request on 'body' (or 422 if empty)."""
    response = app.resolve(_put(raw), {})
    assert response["statusCode"] in (400, 422)
    assert _error(response)["field"] == "body"


def test_oversized_body_is_413(app):
    """GIVEN a body over 16 KiB WHEN resolved THEN 413 before parsing."""
    body = json.dumps({"enabled": True, "pad": "x" * MAX_BODY_BYTES})
    response = app.resolve(_put(body), {})
    assert response["statusCode"] == 413
    assert _error(response)["category"] == "invalid_request"


def test_oversized_body_is_413_on_a_route_without_a_body_model(app):
    """GIVEN a GET with a huge body WHEN resolved THEN 413 too."""
    event = with_body(load_event("kill_switch_get"), "x" * (MAX_BODY_BYTES + 1))
    assert app.resolve(event, {})["statusCode"] == 413


def test_non_json_content_type_is_415(app):
    """GIVEN a text/plain body WHEN resolved THEN 415 in the API's error shape."""
    event = _put("enabled=true")
    event["headers"]["content-type"] = "text/plain"
    response = app.resolve(event, {})
    assert response["statusCode"] == 415
    assert _error(response)["category"] == "invalid_request"


def test_unknown_route_is_404_and_wrong_method_is_405(app):
    """GIVEN an unknown path, then a known path with another method THEN 404, then 405 with Allow."""
    event = load_event("kill_switch_get")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/dev/nowhere"
    response = app.resolve(event, {})
    assert response["statusCode"] == 404
    assert _error(response)["category"] == "not_found"
    event = load_event("kill_switch_get")
    event["requestContext"]["http"]["method"] = "DELETE"
    response = app.resolve(event, {})
    assert response["statusCode"] == 405
    assert response["headers"]["Allow"] == "GET, PUT"


@pytest.mark.parametrize(("category", "status", "header"), [
    ("rate_limit", 429, "7"),
    ("ip_banned", 503, "120"),
    ("restricted", 451, None),
    ("not_found", 404, None),
    ("unknown_outcome", 504, None),
    ("permission", 403, None),
])
def test_klineo_error_maps_through_the_one_table(app, category, status, header):
    """GIVEN a route raising KlineoError WHEN resolved THEN the table's status, Retry-After for limits."""
    retry_after = 6.2 if category == "rate_limit" else 120
    app.raised["error"] = KlineoError(category, "a user-safe message", retry_after=retry_after)
    response = app.resolve(load_event("kill_switch_get"), {})
    assert response["statusCode"] == status
    assert _error(response) == {"category": category, "message": "a user-safe message",
                                "retryable": ErrorCategory(category).retryable, "request_id": "id"}
    assert response["headers"].get("Retry-After") == header


def test_field_of_a_klineo_error_is_passed_on(app):
    """GIVEN an invalid_request KlineoError with a field WHEN resolved THEN 400 naming it."""
    app.raised["error"] = KlineoError(ErrorCategory.INVALID_REQUEST, "unknown symbol", field="symbol")
    response = app.resolve(load_event("kill_switch_get"), {})
    assert response["statusCode"] == 400
    assert _error(response)["field"] == "symbol"


def test_unexpected_exception_is_500_other_without_a_trace(app):
    """GIVEN a route raising RuntimeError WHEN resolved THEN 500 'other', no exception text in the body."""
    app.raised["error"] = RuntimeError("internal detail /var/task/app.py line 3")
    response = app.resolve(load_event("kill_switch_get"), {})
    assert response["statusCode"] == 500
    assert _error(response) == {"category": "other", "message": "internal error", "retryable": False,
                                "request_id": "id"}
    assert "internal detail" not in response["body"]


def test_cors_headers_name_the_frontend_origin(app):
    """GIVEN the frontend origin WHEN resolved THEN CORS allows it and exposes Retry-After."""
    event = load_event("kill_switch_get")
    event["headers"]["origin"] = ORIGIN
    headers = app.resolve(event, {})["headers"]
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "retry-after" in headers["Access-Control-Expose-Headers"]


def test_preflight_is_answered_without_credentials(app):
    """GIVEN an OPTIONS preflight without a JWT (browsers send none) WHEN resolved THEN 204 and methods."""
    event = load_event("kill_switch_get")
    event["requestContext"]["http"]["method"] = "OPTIONS"
    event["requestContext"]["authorizer"] = {}
    event["headers"]["origin"] = ORIGIN
    response = app.resolve(event, {})
    assert response["statusCode"] == 204
    assert "PUT" in response["headers"]["Access-Control-Allow-Methods"]


def test_query_model_errors_name_the_query_field(app):
    """GIVEN limit 1001 for spot WHEN resolved THEN 422 naming limit, as sent."""
    event = load_event("candles")
    event["queryStringParameters"] = {"symbol": "BTCUSDT", "interval": "1m", "limit": "1001"}
    response = app.resolve(event, {})
    assert response["statusCode"] == 422
    assert _error(response)["field"] == "limit"


def test_every_failing_field_is_listed_beside_the_first(app):
    """GIVEN a body with two bad fields WHEN resolved THEN "errors" lists both, "field" is the first."""
    response = app.resolve(_put({"enabled": "yes", "user_id": "x"}), {})
    error = _error(response)
    assert response["statusCode"] == 422
    assert [e["field"] for e in error["errors"]] == ["enabled", "user_id"]
    assert error["field"] == "enabled"
    assert all(e["message"] for e in error["errors"])


def test_validation_and_exchange_errors_name_fields_the_same_way(app):
    """GIVEN a validation error and a KlineoError on a field WHEN resolved THEN both say the bare name."""
    validation = _error(app.resolve(_put({"enabled": "yes"}), {}))
    app.raised["error"] = KlineoError(ErrorCategory.INVALID_REQUEST, "unknown symbol", field="symbol")
    exchange = _error(app.resolve(load_event("kill_switch_get"), {}))
    assert (validation["field"], exchange["field"]) == ("enabled", "symbol")


def test_answers_carry_the_api_gateway_request_id(app):
    """GIVEN a requestId WHEN a request succeeds or fails THEN X-Request-Id and request_id are it."""
    ok_event, bad_event = load_event("kill_switch_get"), _put({"enabled": "yes"})
    for event in (ok_event, bad_event):
        event["requestContext"]["requestId"] = "Jf2k1h0dNjMEJ3Q="
    ok, failed = app.resolve(ok_event, {}), app.resolve(bad_event, {})
    assert (ok["statusCode"], failed["statusCode"]) == (200, 422)
    assert ok["headers"]["X-Request-Id"] == failed["headers"]["X-Request-Id"] == "Jf2k1h0dNjMEJ3Q="
    assert _error(failed)["request_id"] == "Jf2k1h0dNjMEJ3Q="


def test_request_id_falls_back_to_the_lambda_request_id(app):
    """GIVEN an event without requestId WHEN resolved with a Lambda context THEN its aws_request_id."""
    event = load_event("kill_switch_get")
    del event["requestContext"]["requestId"]

    class Context:
        aws_request_id = "6f1c2d3e-0000-4000-8000-000000000001"

    response = app.resolve(event, Context())
    assert response["headers"]["X-Request-Id"] == Context.aws_request_id


def test_request_id_is_the_correlation_id_of_the_requests_log_lines(app):
    """GIVEN a request that logs WHEN resolved THEN its log line's correlation_id is the X-Request-Id."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logging.getLogger(logger.name).addHandler(handler)
    try:
        app.raised["error"] = KlineoError(ErrorCategory.NOT_FOUND, "no such thing")
        response = app.resolve(load_event("kill_switch_get"), {})
    finally:
        logging.getLogger(logger.name).removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["correlation_id"] for line in lines if line["message"] == "request failed"] == [
        response["headers"]["X-Request-Id"]]
