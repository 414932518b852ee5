"""The local HTTP API routes like API Gateway, builds its payload-2.0 event and reads the proxy answer."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from local.api_router import (
    ApiServer,
    CorsConfig,
    HttpRequest,
    HttpResponse,
    RouteTable,
    build_http_event,
    cors_config,
    is_text_content_type,
    proxy_response,
)
from local.auth import DevJwtAuthority, authorizer_config
from local.aws_emulation import LOCAL_COGNITO_CLIENT, LOCAL_COGNITO_POOL
from local.lambda_runtime import FunctionError
from local.template import Resolver, function_specs
from tests.helpers import load_event


def _resolver(template: dict) -> Resolver:
    return Resolver(
        template,
        parameters={"Stage": "dev"},
        refs={
            "UserPool": LOCAL_COGNITO_POOL,
            "UserPoolClient": LOCAL_COGNITO_CLIENT,
        },
    )


def _request(
    method: str = "GET", path: str = "/", query: str = "", headers=(), body: bytes = b""
) -> HttpRequest:
    return HttpRequest(method, path, query, tuple(headers), body, "127.0.0.1", "127.0.0.1:3000")


# ------------------------------------------------------------------------------------------ routes
def test_every_template_route_is_served(template: dict) -> None:
    """The route table holds exactly the HttpApi routes of template.yaml."""
    # GIVEN the template's routes
    expected = {(r.method, r.path) for s in function_specs(template) for r in s.routes}
    # WHEN the table is built
    table = RouteTable(function_specs(template))
    # THEN it has them all, no more
    assert {(m, p) for m, p, _ in table.routes} == expected


def test_route_match_gives_the_templates_function_and_decoded_path_parameters(template: dict) -> None:
    """/exchange-connections/{id}/balance goes to BalanceFunction with id URL-decoded."""
    # GIVEN the template's route table
    table = RouteTable(function_specs(template))
    # WHEN a balance path is matched
    match = table.match("GET", "/exchange-connections/abc%2Fdef/balance")
    # THEN the function, route key and parameter are API Gateway's
    assert match is not None
    assert match.spec.logical_id == "BalanceFunction"
    assert match.route_key == "GET /exchange-connections/{id}/balance"
    assert match.path_parameters == {"id": "abc/def"}


def test_static_route_wins_over_a_parameter_route(template: dict) -> None:
    """POST /exchange-connections/test is the test route, not a connection called "test"."""
    # GIVEN the template's route table
    table = RouteTable(function_specs(template))
    # WHEN / THEN
    assert table.match("POST", "/exchange-connections/test").spec.logical_id == "ConnectionTestFunction"
    assert table.match("DELETE", "/exchange-connections/test").spec.logical_id == "ConnectionDeleteFunction"


def test_unknown_path_or_method_has_no_route(template: dict) -> None:
    """Unknown paths and methods do not match (API Gateway answers 404)."""
    # GIVEN the template's route table
    table = RouteTable(function_specs(template))
    # WHEN / THEN
    assert table.match("GET", "/nowhere") is None
    assert table.match("PUT", "/exchange-connections") is None
    assert table.match("GET", "/exchange-connections/a/b/c/balance") is None


# ------------------------------------------------------------------------------------------ events
def _balance_match(template: dict):
    return RouteTable(function_specs(template)).match("GET", "/exchange-connections/c1/balance")


def test_event_has_api_gateways_payload_2_shape(template: dict) -> None:
    """Headers lower-cased and joined, cookies split out, query joined, context and claims: API Gateway's."""
    # GIVEN a request like the one in AWS's payload-2.0 example
    request = HttpRequest(
        "GET",
        "/exchange-connections/c1/balance",
        "parameter1=value1&parameter1=value2&parameter2=value",
        (
            ("Header1", "value1"),
            ("Header2", "value1"),
            ("Header2", "value2"),
            ("Cookie", "cookie1; cookie2"),
            ("User-Agent", "agent"),
        ),
        b"",
        "192.0.2.1",
        "127.0.0.1:3000",
    )
    # WHEN the event is built
    event = build_http_event(
        request,
        _balance_match(template),
        {"sub": "alice", "exp": 17},
        ["s1"],
        now=1583348638.390,
        request_id="id",
    )
    # THEN it is what API Gateway would send
    assert event == {
        "version": "2.0",
        "routeKey": "GET /exchange-connections/{id}/balance",
        "rawPath": "/exchange-connections/c1/balance",
        "rawQueryString": "parameter1=value1&parameter1=value2&parameter2=value",
        "cookies": ["cookie1", "cookie2"],
        "headers": {"header1": "value1", "header2": "value1,value2", "user-agent": "agent"},
        "queryStringParameters": {"parameter1": "value1,value2", "parameter2": "value"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "authorizer": {"jwt": {"claims": {"sub": "alice", "exp": "17"}, "scopes": ["s1"]}},
            "domainName": "127.0.0.1:3000",
            "domainPrefix": "127",
            "http": {
                "method": "GET",
                "path": "/exchange-connections/c1/balance",
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "agent",
            },
            "requestId": "id",
            "routeKey": "GET /exchange-connections/{id}/balance",
            "stage": "$default",
            "time": "04/Mar/2020:19:03:58 +0000",
            "timeEpoch": 1583348638390,
        },
        "pathParameters": {"id": "c1"},
        "isBase64Encoded": False,
    }


def test_json_body_is_passed_as_text_and_binary_body_as_base64(template: dict) -> None:
    """application/json stays text; a body with another or no content type is base64 with isBase64Encoded."""
    # GIVEN the same bytes sent as JSON, as a form and without a content type
    match = _balance_match(template)
    raw = b'{"label":"main"}'
    as_json = build_http_event(
        _request(body=raw, headers=[("Content-Type", "application/json; charset=utf-8")]), match, None, None
    )
    as_form = build_http_event(
        _request(body=raw, headers=[("Content-Type", "application/x-www-form-urlencoded")]), match, None, None
    )
    untyped = build_http_event(_request(body=raw), match, None, None)
    # THEN JSON is text and the others are base64 of the same bytes
    assert (as_json["body"], as_json["isBase64Encoded"]) == ('{"label":"main"}', False)
    for event in (as_form, untyped):
        assert event["isBase64Encoded"] is True
        assert base64.b64decode(event["body"]) == raw


def test_text_content_types() -> None:
    """Text types are the ones API Gateway passes as text."""
    # GIVEN / WHEN / THEN
    assert is_text_content_type("application/json")
    assert is_text_content_type("application/problem+json")
    assert is_text_content_type("text/plain; charset=utf-8")
    assert not is_text_content_type("application/octet-stream")
    assert not is_text_content_type(None)


def test_powertools_http_resolver_reads_the_event_and_its_answer_converts(template: dict) -> None:
    """A real APIGatewayHttpResolver routes our event (path, claims, body) and its answer becomes HTTP."""
    # GIVEN a Powertools resolver shaped like a KLINEO function
    app = APIGatewayHttpResolver()

    @app.post("/exchange-connections/<connection_id>/test")
    def tested(connection_id: str) -> dict:
        claims = app.current_event.request_context.authorizer.jwt_claim
        return {"connection": connection_id, "user": claims["sub"], "body": app.current_event.json_body}

    match = RouteTable(function_specs(template)).match("POST", "/exchange-connections/c9/test")
    event = build_http_event(
        _request(
            "POST",
            "/exchange-connections/c9/test",
            body=b'{"a": 1}',
            headers=[("content-type", "application/octet-stream")],
        ),
        match,
        {"sub": "alice"},
        None,
    )
    # WHEN the resolver handles the event
    response = proxy_response(app.resolve(event, {}))
    parsed = APIGatewayProxyEventV2(event)
    # THEN it saw the path, the claims and the (base64) body
    assert parsed.path == "/exchange-connections/c9/test"
    assert response.status == 200
    assert json.loads(response.body) == {"connection": "c9", "user": "alice", "body": {"a": 1}}


# ------------------------------------------------------------------------------------------ answers
def test_proxy_response_reads_headers_multi_value_headers_cookies_and_base64() -> None:
    """statusCode, headers, multiValueHeaders, cookies and a base64 body all reach HTTP."""
    # GIVEN a full payload-2.0 proxy answer
    result = {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "X-One": "1"},
        "multiValueHeaders": {"X-Many": ["a", "b"], "x-one": ["ignored"]},
        "cookies": ["session=1; HttpOnly"],
        "body": base64.b64encode(b'{"ok":true}').decode(),
        "isBase64Encoded": True,
    }
    # WHEN converted
    response = proxy_response(result)
    # THEN nothing is lost and single headers win over multi-value ones of the same name
    assert response.status == 201
    assert response.body == b'{"ok":true}'
    assert ("X-Many", "a") in response.headers and ("X-Many", "b") in response.headers
    assert ("set-cookie", "session=1; HttpOnly") in response.headers
    assert [v for k, v in response.headers if k.lower() == "x-one"] == ["1"]


def test_answer_without_status_code_is_a_json_200() -> None:
    """API Gateway treats a bare return value as a 200 JSON body."""
    # GIVEN / WHEN
    response = proxy_response({"hello": "world"})
    # THEN
    assert response.status == 200
    assert json.loads(response.body) == {"hello": "world"}


# ------------------------------------------------------------------------------------------ CORS
def test_cors_configuration_comes_from_the_template(template: dict) -> None:
    """Origins, headers, methods, exposed headers and max age are the template's."""
    # GIVEN / WHEN
    cors = cors_config(_resolver(template))
    # THEN
    assert cors == CorsConfig(
        allow_origins=("http://localhost:5173",),
        allow_headers=("authorization", "content-type", "idempotency-key"),
        allow_methods=("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"),
        expose_headers=("retry-after", "x-request-id"),
        max_age=600,
        allow_credentials=False,
    )


def test_preflight_from_the_allowed_origin_gets_cors_headers(template: dict) -> None:
    """An allowed origin's preflight is 204 with the allowed methods, headers and max age."""
    # GIVEN the template's CORS configuration
    cors = cors_config(_resolver(template))
    # WHEN the frontend's origin asks to POST with an Idempotency-Key
    response = cors.preflight("http://localhost:5173", "POST", "content-type, idempotency-key")
    headers = dict(response.headers)
    # THEN it is allowed
    assert response.status == 204
    assert headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "POST" in headers["access-control-allow-methods"]
    assert "idempotency-key" in headers["access-control-allow-headers"]
    assert headers["access-control-max-age"] == "600"


def test_preflight_from_another_origin_gets_no_cors_headers(template: dict) -> None:
    """Another origin's preflight is answered without any Access-Control-Allow-* header."""
    # GIVEN / WHEN
    response = cors_config(_resolver(template)).preflight("https://evil.example", "POST", None)
    # THEN
    assert response.status == 204
    assert not [k for k, _ in response.headers if k.startswith("access-control-")]


def test_backend_cors_headers_are_replaced_by_the_apis(template: dict) -> None:
    """Like API Gateway, the function's own CORS headers are dropped and the API's are set."""
    # GIVEN a function answer carrying a wildcard CORS header
    answer = HttpResponse(
        200, [("Access-Control-Allow-Origin", "*"), ("content-type", "application/json")], b"{}"
    )
    # WHEN the API decorates it for the frontend's origin
    headers = cors_config(_resolver(template)).decorate("http://localhost:5173", answer).headers
    # THEN only the API's CORS headers remain
    assert ("access-control-allow-origin", "http://localhost:5173") in headers
    assert ("Access-Control-Allow-Origin", "*") not in headers
    assert ("access-control-expose-headers", "retry-after,x-request-id") in headers


# ------------------------------------------------------------------------------------------ server
class RecordingRuntime:
    """Stands in for the functions: records each event and answers from a script."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []
        self.answer: Any = {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": "{}"}

    def invoke(self, logical_id: str, event: dict, *, caller_timeout_s: float | None = None) -> Any:
        self.events.append((logical_id, event))
        if isinstance(self.answer, Exception):
            raise FunctionError(logical_id, self.answer)
        return self.answer


@pytest.fixture
def server(template: dict, tmp_path: Path) -> Iterator[tuple[ApiServer, RecordingRuntime, DevJwtAuthority]]:
    """The API server on a free port with a recording runtime."""
    resolver = _resolver(template)
    authority = DevJwtAuthority.load_or_create(tmp_path, authorizer_config(resolver))
    runtime = RecordingRuntime()
    api = ApiServer(
        resolver,
        runtime,
        authority,
        0,
        extra_routes={("GET", "/__local__/ping"): lambda r: HttpResponse.json(200, {"pong": True})},
    )
    api.start()
    yield api, runtime, authority
    api.stop()


@pytest.mark.parametrize("authorization", [None, "Basic x", "Bearer nonsense"])
def test_request_without_a_valid_token_is_401_before_any_handler_runs(server, authorization) -> None:
    """No/invalid token: 401 {"message":"Unauthorized"} and the function is never invoked."""
    # GIVEN the server and a request with a bad Authorization header
    api, runtime, _ = server
    headers = {"Authorization": authorization} if authorization else {}
    # WHEN it is sent
    response = requests.get(f"{api.url}/exchange-connections", headers=headers, timeout=5)
    # THEN API Gateway's 401 comes back and no function ran
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}
    assert runtime.events == []


def test_expired_token_is_401_before_any_handler_runs(server) -> None:
    """An expired dev token is refused by the authorizer."""
    # GIVEN an expired token
    api, runtime, authority = server
    token = authority.issue("alice", ttl_s=-5)
    # WHEN it is used
    response = requests.get(
        f"{api.url}/exchange-connections", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    # THEN 401, no invocation
    assert response.status_code == 401
    assert runtime.events == []


def test_authorized_request_reaches_the_templates_function_with_claims(server) -> None:
    """A valid token reaches the routed function; its event carries the path parameter and the sub claim."""
    # GIVEN a valid token for alice
    api, runtime, authority = server
    token = authority.issue("alice")
    # WHEN she asks for a balance
    response = requests.get(
        f"{api.url}/exchange-connections/c1/balance?x=1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    # THEN BalanceFunction got the event API Gateway would send
    assert response.status_code == 200
    ((logical_id, event),) = runtime.events
    assert logical_id == "BalanceFunction"
    assert event["pathParameters"] == {"id": "c1"}
    assert event["queryStringParameters"] == {"x": "1"}
    assert event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] == "alice"
    assert event["headers"]["authorization"] == f"Bearer {token}"


def test_function_crash_is_500_internal_server_error(server) -> None:
    """A function that raises gives API Gateway's 500 body, not a trace."""
    # GIVEN a function that raises
    api, runtime, authority = server
    runtime.answer = RuntimeError("boom with a secret inside")
    # WHEN it is called
    response = requests.post(
        f"{api.url}/exchange-connections",
        json={},
        headers={"Authorization": f"Bearer {authority.issue('alice')}"},
        timeout=5,
    )
    # THEN 500 with the generic message only
    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}


def test_unknown_route_is_404_not_found(server) -> None:
    """A path no route declares is API Gateway's 404, even without a token."""
    # GIVEN / WHEN
    api, runtime, _ = server
    response = requests.get(f"{api.url}/nowhere", timeout=5)
    # THEN
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}
    assert runtime.events == []


def test_preflight_is_answered_without_a_token_or_a_function(server) -> None:
    """OPTIONS preflight from the frontend origin: 204 with CORS headers, no auth, no invocation."""
    # GIVEN / WHEN
    api, runtime, _ = server
    response = requests.options(
        f"{api.url}/futures/order",
        headers={
            "Origin": "http://localhost:5173",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,idempotency-key",
        },
        timeout=5,
    )
    # THEN
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert runtime.events == []


def test_local_control_routes_are_served_beside_the_api(server) -> None:
    """Extra (local-only) routes answer without a token."""
    # GIVEN / WHEN
    api, _, _ = server
    response = requests.get(f"{api.url}/__local__/ping", timeout=5)
    # THEN
    assert response.json() == {"pong": True}


def test_server_binds_loopback_only(server) -> None:
    """The API listens on 127.0.0.1, never on every interface."""
    # GIVEN / WHEN / THEN
    api, _, _ = server
    assert api._server.server_address[0] == "127.0.0.1"


def test_event_has_the_same_fields_as_the_projects_sam_local_events(template: dict) -> None:
    """Our event and events/balance.json (API Gateway's shape) carry the same top-level and context keys."""
    # GIVEN the canonical event and a request for the same route
    canonical = load_event("balance")
    request = _request("GET", "/exchange-connections/c1/balance", headers=[("user-agent", "agent")])
    # WHEN our event is built
    event = build_http_event(request, _balance_match(template), {"sub": "alice"}, None)
    # THEN the fields match
    assert set(event) == set(canonical)
    assert set(event["requestContext"]) == set(canonical["requestContext"])
    assert set(event["requestContext"]["http"]) == set(canonical["requestContext"]["http"])
    assert (
        event["requestContext"]["authorizer"]["jwt"]["scopes"]
        == canonical["requestContext"]["authorizer"]["jwt"]["scopes"]
    )


def _request_line(caplog: pytest.LogCaptureFixture, status: int) -> str:
    """The console's request line for an answer with `status` (logged right after the answer is sent)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        messages = [r.getMessage() for r in caplog.records if r.name == "local"]
        lines = [m for m in messages if f"-> {status} " in m]
        if lines:
            return lines[-1]
        threading.Event().wait(0.01)
    raise AssertionError(f"no request line for {status}: {[r.getMessage() for r in caplog.records]}")


def test_request_line_of_a_4xx_says_the_category_and_field_but_not_the_message(server, caplog) -> None:
    """`POST ... -> 422 (n ms): invalid_request (body.api_key)`: why, without echoing the message."""
    # GIVEN a function answering 422 for one field
    api, runtime, authority = server
    caplog.set_level(logging.INFO, logger="local")
    runtime.answer = {
        "statusCode": 422,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(
            {"error": {"category": "invalid_request", "message": "api_key AKIA-echo", "retryable": False,
                       "field": "body.api_key"}}
        ),
    }
    # WHEN it is called
    auth = {"Authorization": f"Bearer {authority.issue('a')}"}
    requests.post(f"{api.url}/exchange-connections", json={}, headers=auth, timeout=5)
    # THEN the console line names the category and the field, and nothing of the message
    line = _request_line(caplog, 422)
    assert line.startswith("POST /exchange-connections -> 422 (")
    assert line.endswith("): invalid_request (body.api_key)")
    assert "AKIA-echo" not in line


def test_request_line_of_a_gateway_401_says_unauthorized_and_a_200_says_nothing_more(server, caplog) -> None:
    """API Gateway's own 4xx shows its message; a success line stays as it was."""
    # GIVEN the server
    api, _, authority = server
    caplog.set_level(logging.INFO, logger="local")
    # WHEN a request has no token, and another one has
    requests.get(f"{api.url}/exchange-connections", timeout=5)
    auth = {"Authorization": f"Bearer {authority.issue('a')}"}
    requests.get(f"{api.url}/exchange-connections", headers=auth, timeout=5)
    # THEN
    assert _request_line(caplog, 401).endswith("): Unauthorized")
    assert _request_line(caplog, 200).endswith(" ms)")


def _raw_exchange(api: ApiServer, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes: (status, headers, body)."""
    import socket

    with socket.create_connection(("127.0.0.1", api.port), timeout=5) as conn:
        conn.sendall(request)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("method", ["TRACE", "PROPFIND", "CONNECT"])
def test_unknown_method_is_a_json_405_not_an_html_501(server, method) -> None:
    """GIVEN TRACE (or another method no route has) WHEN sent THEN JSON 405, like API Gateway."""
    api, runtime, _ = server
    status, headers, body = _raw_exchange(api, f"{method} /strategies HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status == 405
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"message": "Method Not Allowed"}
    assert runtime.events == []


@pytest.mark.parametrize("length", ["abc", "-1", "1e3", "\u0661\u0662"])
def test_bad_content_length_is_a_json_400_not_a_dropped_connection(server, length) -> None:
    """GIVEN Content-Length: abc (or negative) WHEN sent THEN JSON 400 and the connection closes."""
    api, runtime, authority = server
    request = (f"POST /strategies HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {authority.issue('a')}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{}}")
    status, headers, body = _raw_exchange(api, request.encode())
    assert status == 400
    assert json.loads(body) == {"message": "Bad Request"}
    assert headers["connection"] == "close"
    assert runtime.events == []


def test_oversized_url_is_answered_in_json(server) -> None:
    """GIVEN a 70,000-character URL WHEN sent THEN a JSON 414, not an HTML page."""
    api, _, _ = server
    status, headers, body = _raw_exchange(api, f"GET /{'a' * 70_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status == 414
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"message": "Request-URI Too Long"}


@pytest.mark.parametrize("extra", ["X-Big: " + "a" * 70_000 + "\r\n",
                                   "".join(f"X-H{i}: v\r\n" for i in range(150))])
def test_oversized_header_is_answered_in_json(server, extra) -> None:
    """GIVEN a 70 KB header line, or 150 headers WHEN sent THEN a JSON 431/400, not an HTML page."""
    api, _, _ = server
    status, headers, body = _raw_exchange(api, f"GET /strategies HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
    assert status in (400, 431)
    assert headers["content-type"] == "application/json"
    assert set(json.loads(body)) == {"message"}


def test_request_line_and_header_values_over_api_gateways_10240_bytes_are_refused(server) -> None:
    """GIVEN header values that take the request past 10,240 bytes WHEN sent THEN JSON 431 and no
    function runs; one byte under the cap, the request reaches the authorizer (401)."""
    api, runtime, _ = server
    line = "GET /strategies HTTP/1.1"

    def exchange(value_bytes: int) -> int:
        filler = "a" * (value_bytes - len(line) - len("x") - len("close"))
        request = f"{line}\r\nHost: x\r\nConnection: close\r\nX-Pad: {filler}\r\n\r\n"
        status, _, _ = _raw_exchange(api, request.encode())
        return status

    assert exchange(10_240) == 401
    assert exchange(10_241) == 431
    assert runtime.events == []


def test_apigw_request_id_header_is_the_events_request_id(server) -> None:
    """GIVEN an authorized request WHEN answered THEN apigw-requestid is the requestId the function saw."""
    api, runtime, authority = server
    token = authority.issue("a")
    response = requests.get(f"{api.url}/kill-switch", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    ((_, event),) = runtime.events
    assert response.headers["apigw-requestid"] == event["requestContext"]["requestId"]
