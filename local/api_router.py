"""The local HTTP API: template.yaml's HttpApi served on 127.0.0.1, without Docker.

Each request is matched against the HttpApi routes the template declares, its bearer token is
checked as the JWT authorizer would (401 before any handler runs), and the handler the template
names gets the payload-2.0 event API Gateway would build (stage ``$default``). The Lambda proxy
answer becomes the HTTP response; a function that raises, or runs past its own timeout, gives 500
``{"message":"Internal Server Error"}`` with the traceback on the console; a function still running
after the integration timeout (30 s) gives 503 ``{"message":"Service Unavailable"}`` and goes on.
Requests are served concurrently (a thread each), and so are the invocations they make. CORS
preflights are answered from the template's CorsConfiguration, and CORS headers on answers come
from it too (API Gateway ignores a backend's). What never reaches a function is answered in JSON
as API Gateway does: an unknown method is 405, a Content-Length that is not a byte count 400, an
oversized URL or header 414/431 (API Gateway's 10,240-byte cap on the request line and header
values together included).

Besides the API, the server has the API page (``/docs``, Swagger UI from local files) and the
OpenAPI document (``/openapi.json``), and local-only control paths under ``/__local__/`` that are
not part of the deployed API and answer only loopback clients.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote

from local.auth import DevJwtAuthority, Unauthorized, claims_as_strings
from local.lambda_runtime import CallerTimeout, FunctionError, LambdaRuntime, console
from local.template import FunctionSpec, Resolver, function_specs

__all__ = [
    "INTEGRATION_TIMEOUT_S",
    "MAX_BODY_BYTES",
    "ApiServer",
    "CorsConfig",
    "HttpRequest",
    "HttpResponse",
    "RouteMatch",
    "RouteTable",
    "build_http_event",
    "cors_config",
    "is_text_content_type",
    "proxy_response",
]

# API Gateway HTTP APIs refuse request bodies over 10 MB.
MAX_BODY_BYTES = 10 * 1024 * 1024
# ... and requests whose request line and header values together pass 10,240 bytes (an HTTP API
# quota that cannot be raised; https://docs.aws.amazon.com/apigateway/latest/developerguide/
# http-api-quotas.html). AWS does not document the status it answers; this server says 431.
MAX_REQUEST_LINE_AND_HEADER_BYTES = 10_240
# An HTTP API waits at most 30 s for its integration, then answers 503 Service Unavailable while the
# Lambda function goes on (docs/binance-facts.md, local stack section).
INTEGRATION_TIMEOUT_S = 30.0
LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_API_ID = "local"

_TEXT_TYPES = re.compile(
    r"^(text/.*|application/(json|.*\+json|xml|.*\+xml|javascript|ecmascript|graphql|yaml|x-yaml))$"
)


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request as received: raw path and query, header pairs in order, body bytes."""

    method: str
    raw_path: str
    raw_query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    source_ip: str
    host: str

    def header(self, name: str) -> str | None:
        """The header's values comma-joined (case-insensitive name), or None."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ",".join(values) if values else None


@dataclass
class HttpResponse:
    """An HTTP response to send: status, header pairs (repeats allowed), body bytes."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @classmethod
    def json(cls, status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()) -> HttpResponse:
        """A JSON response."""
        body = json.dumps(payload).encode()
        return cls(status, [("content-type", "application/json"), *headers], body)


def is_text_content_type(content_type: str | None) -> bool:
    """Whether API Gateway passes a body of this type as text (else base64, isBase64Encoded true)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return bool(_TEXT_TYPES.match(media))


# ------------------------------------------------------------------------------------------ routes
@dataclass(frozen=True)
class RouteMatch:
    """A route that matched a request, with its path parameters (URL-decoded)."""

    spec: FunctionSpec
    route_key: str
    path_parameters: dict[str, str]


@dataclass(frozen=True)
class _CompiledRoute:
    method: str
    path: str
    spec: FunctionSpec
    pattern: re.Pattern[str]
    rank: tuple[int, ...]


def _compile(path: str) -> tuple[re.Pattern[str], tuple[int, ...]]:
    """A regex for an API Gateway path template, and a rank (static segments beat variables)."""
    parts = []
    rank = []
    for segment in path.strip("/").split("/"):
        greedy = re.fullmatch(r"\{(\w+)\+\}", segment)
        variable = re.fullmatch(r"\{(\w+)\}", segment)
        if greedy:
            parts.append(f"(?P<{greedy.group(1)}>.+)")
            rank.append(2)
        elif variable:
            parts.append(f"(?P<{variable.group(1)}>[^/]+)")
            rank.append(1)
        else:
            parts.append(re.escape(segment))
            rank.append(0)
    return re.compile("^/" + "/".join(parts) + "/?$" if parts != [""] else "^/$"), tuple(rank)


class RouteTable:
    """The HttpApi routes of the template, matched the way API Gateway picks a route."""

    def __init__(self, specs: Iterable[FunctionSpec]):
        routes = []
        for spec in specs:
            for route in spec.routes:
                pattern, rank = _compile(route.path)
                routes.append(_CompiledRoute(route.method, route.path, spec, pattern, rank))
        # Most specific first: a static segment wins over {param}, which wins over {proxy+}.
        self._routes = sorted(routes, key=lambda r: (r.rank, r.method == "ANY"))

    @property
    def routes(self) -> list[tuple[str, str, FunctionSpec]]:
        """(method, path, function) for every route."""
        return [(r.method, r.path, r.spec) for r in self._routes]

    def match(self, method: str, raw_path: str) -> RouteMatch | None:
        """The route for this method and path, or None (API Gateway answers 404)."""
        for route in self._routes:
            if route.method not in (method, "ANY"):
                continue
            found = route.pattern.match(raw_path)
            if found:
                params = {name: unquote(value) for name, value in found.groupdict().items()}
                return RouteMatch(route.spec, f"{route.method} {route.path}", params)
        return None


# ------------------------------------------------------------------------------------------ events
def build_http_event(
    request: HttpRequest,
    match: RouteMatch,
    claims: dict[str, Any] | None,
    scopes: list[str] | None,
    *,
    now: float | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The payload-2.0 event API Gateway's HTTP API would send for this request and route."""
    now = time.time() if now is None else now
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        lower = name.lower()
        if lower == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[lower] = f"{headers[lower]},{value}" if lower in headers else value
    query: dict[str, str] = {}
    for name, value in parse_qsl(request.raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    domain = request.host or "127.0.0.1"
    request_id = request_id or base64.b32encode(uuid.uuid4().bytes)[:16].decode()
    context: dict[str, Any] = {
        "accountId": LOCAL_ACCOUNT_ID,
        "apiId": LOCAL_API_ID,
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0].split(":", 1)[0],
        "http": {
            "method": request.method,
            "path": request.raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": match.route_key,
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if claims is not None:
        context["authorizer"] = {"jwt": {"claims": claims_as_strings(claims), "scopes": scopes}}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": match.route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = context
    if match.path_parameters:
        event["pathParameters"] = match.path_parameters
    if request.body:
        if is_text_content_type(headers.get("content-type")):
            event["body"] = request.body.decode("utf-8", errors="replace")
            event["isBase64Encoded"] = False
        else:
            event["body"] = base64.b64encode(request.body).decode()
            event["isBase64Encoded"] = True
    else:
        event["isBase64Encoded"] = False
    return event


def proxy_response(result: Any) -> HttpResponse:
    """An HTTP response from a function's return value, as API Gateway reads payload format 2.0.

    A dict with ``statusCode`` is a proxy response (headers, multiValueHeaders, cookies, body,
    isBase64Encoded); anything else is treated as a JSON body with status 200.
    """
    if not (isinstance(result, dict) and "statusCode" in result):
        body = result if isinstance(result, str) else json.dumps(result)
        return HttpResponse(200, [("content-type", "application/json")], body.encode())
    status = int(result["statusCode"])
    if not 100 <= status <= 599:
        raise ValueError(f"statusCode {status} is not an HTTP status")
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name), str(value)))
    single = {name.lower() for name, _ in headers}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        if name.lower() in single:
            continue
        headers.extend((str(name), str(v)) for v in values)
    for cookie in result.get("cookies") or []:
        headers.append(("set-cookie", str(cookie)))
    raw = result.get("body")
    if raw is None:
        body = b""
    elif result.get("isBase64Encoded"):
        body = base64.b64decode(raw)
    else:
        body = str(raw).encode()
    return HttpResponse(status, headers, body)


# ------------------------------------------------------------------------------------------ CORS
@dataclass(frozen=True)
class CorsConfig:
    """The HttpApi's CorsConfiguration, resolved."""

    allow_origins: tuple[str, ...]
    allow_headers: tuple[str, ...]
    allow_methods: tuple[str, ...]
    expose_headers: tuple[str, ...]
    max_age: int | None
    allow_credentials: bool

    def origin_allowed(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for this origin, or None when it is not allowed."""
        if not origin:
            return None
        if "*" in self.allow_origins:
            return "*"
        return origin if origin in self.allow_origins else None

    def preflight(self, origin: str | None, method: str | None, headers: str | None) -> HttpResponse:
        """API Gateway's answer to an OPTIONS preflight (204; CORS headers only when allowed)."""
        allowed = self.origin_allowed(origin)
        if allowed is None or not method:
            return HttpResponse(204, [], b"")
        methods = {m.upper() for m in self.allow_methods}
        if "*" not in methods and method.upper() not in methods:
            return HttpResponse(204, [], b"")
        requested = [h.strip().lower() for h in (headers or "").split(",") if h.strip()]
        permitted = {h.lower() for h in self.allow_headers}
        if "*" not in permitted and any(h not in permitted for h in requested):
            return HttpResponse(204, [], b"")
        out = [
            ("access-control-allow-origin", allowed),
            ("access-control-allow-methods", ",".join(self.allow_methods)),
        ]
        if requested:
            out.append(("access-control-allow-headers", ",".join(self.allow_headers)))
        if self.allow_credentials:
            out.append(("access-control-allow-credentials", "true"))
        if self.max_age is not None:
            out.append(("access-control-max-age", str(self.max_age)))
        return HttpResponse(204, out, b"")

    def decorate(self, origin: str | None, response: HttpResponse) -> HttpResponse:
        """Replace any backend CORS headers with the API's own (API Gateway ignores the backend's)."""
        headers = [(k, v) for k, v in response.headers if not k.lower().startswith("access-control-")]
        allowed = self.origin_allowed(origin)
        if allowed is not None:
            headers.append(("access-control-allow-origin", allowed))
            if self.expose_headers:
                headers.append(("access-control-expose-headers", ",".join(self.expose_headers)))
            if self.allow_credentials:
                headers.append(("access-control-allow-credentials", "true"))
        return HttpResponse(response.status, headers, response.body)


def cors_config(resolver: Resolver) -> CorsConfig | None:
    """The template HttpApi's CorsConfiguration, resolved, or None when it has none."""
    for spec in resolver.template["Resources"].values():
        if spec.get("Type") != "AWS::Serverless::HttpApi":
            continue
        raw = spec["Properties"].get("CorsConfiguration")
        if not raw:
            return None
        cors = resolver.resolve(raw)
        return CorsConfig(
            allow_origins=tuple(str(o) for o in cors.get("AllowOrigins", [])),
            allow_headers=tuple(str(h) for h in cors.get("AllowHeaders", [])),
            allow_methods=tuple(str(m) for m in cors.get("AllowMethods", [])),
            expose_headers=tuple(str(h) for h in cors.get("ExposeHeaders", [])),
            max_age=int(cors["MaxAge"]) if "MaxAge" in cors else None,
            allow_credentials=bool(cors.get("AllowCredentials", False)),
        )
    return None


# ------------------------------------------------------------------------------------------ server
LocalRoute = Callable[[HttpRequest], HttpResponse]


class ApiServer:
    """The HTTP API on 127.0.0.1: routes, authorizer, event shape, CORS, docs and local control paths."""

    def __init__(
        self,
        resolver: Resolver,
        runtime: LambdaRuntime,
        authority: DevJwtAuthority,
        port: int,
        *,
        extra_routes: dict[tuple[str, str], LocalRoute] | None = None,
        integration_timeout_s: float = INTEGRATION_TIMEOUT_S,
    ):
        self.runtime = runtime
        self.integration_timeout_s = integration_timeout_s
        self.authority = authority
        self.routes = RouteTable(function_specs(resolver.template))
        self.cors = cors_config(resolver)
        self.extra_routes = dict(extra_routes or {})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_class(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """Base URL of the local API."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="local-api", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, close the socket and join the thread."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # -------------------------------------------------------------------- request handling
    def handle(self, request: HttpRequest) -> HttpResponse:
        """The response to one request (a local route may raise; the request handler answers 500 then)."""
        origin = request.header("origin")
        path_only = request.raw_path
        extra = self.extra_routes.get((request.method, path_only))
        if extra is not None:
            if path_only.startswith("/__local__/") and not _is_loopback(request.source_ip):
                return HttpResponse.json(403, {"message": "Forbidden"})
            return extra(request)
        if (
            request.method == "OPTIONS"
            and self.cors is not None
            and request.header("access-control-request-method")
        ):
            return self.cors.preflight(
                origin,
                request.header("access-control-request-method"),
                request.header("access-control-request-headers"),
            )
        response = self._api(request)
        return self.cors.decorate(origin, response) if self.cors is not None else response

    def _api(self, request: HttpRequest) -> HttpResponse:
        if len(request.body) > MAX_BODY_BYTES:
            return HttpResponse.json(413, {"message": "Request Entity Too Large"})
        match = self.routes.match(request.method, request.raw_path)
        if match is None:
            return HttpResponse.json(404, {"message": "Not Found"})
        try:
            claims = self.authority.verify(request.header(self.authority.config.header))
        except Unauthorized as refusal:
            console.info("401 %s %s: %s", request.method, request.raw_path, refusal)
            return HttpResponse.json(401, {"message": "Unauthorized"}, [("www-authenticate", "Bearer")])
        event = build_http_event(request, match, claims, self.authority.scopes_of(claims))
        response = self._invoke(match, event)
        # API Gateway names its request id in this header; the function's X-Request-Id is the same.
        response.headers.append(("apigw-requestid", event["requestContext"]["requestId"]))
        return response

    def _invoke(self, match: RouteMatch, event: dict[str, Any]) -> HttpResponse:
        try:
            result = self.runtime.invoke(
                match.spec.logical_id, event, caller_timeout_s=self.integration_timeout_s
            )
        except CallerTimeout:
            console.warning("%s gave no answer within the API's %.0f s: 503, the function goes on",
                            match.spec.logical_id, self.integration_timeout_s)
            return HttpResponse.json(503, {"message": "Service Unavailable"})
        except FunctionError:
            return HttpResponse.json(500, {"message": "Internal Server Error"})
        except Exception:  # noqa: BLE001 - an import failure is the function's 500, not the router's
            console.exception("%s could not be loaded", match.spec.logical_id)
            return HttpResponse.json(500, {"message": "Internal Server Error"})
        try:
            return proxy_response(result)
        except (ValueError, TypeError, KeyError) as error:
            console.error("%s returned a malformed response: %s", match.spec.logical_id, error)
            return HttpResponse.json(500, {"message": "Internal Server Error"})


def _client_error_reason(response: HttpResponse) -> str:
    """For a 4xx, why: ": <category> (<field>)" from the error body, or API Gateway's message."""
    if not 400 <= response.status < 500:
        return ""
    try:
        body = json.loads(response.body)
    except ValueError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("category"), str):
        field = error.get("field")
        return f": {error['category']}" + (f" ({field})" if isinstance(field, str) else "")
    message = body.get("message") if isinstance(body, dict) else None
    return f": {message}" if isinstance(message, str) else ""


def _content_length(header: str | None) -> int | None:
    """The Content-Length as a byte count (0 when absent), or None when it is not one."""
    if header is None or header.strip() == "":
        return 0
    text = header.strip()
    return int(text) if text.isascii() and text.isdigit() else None


def _request_head_bytes(request_line: str, header_values: Iterable[str]) -> int:
    """The size API Gateway's quota counts: the request line plus every header value, in bytes (the
    stdlib decodes both as latin-1, a character per byte)."""
    return len(request_line) + sum(len(value) for value in header_values)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _handler_class(api: ApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "klineo-local"
        sys_version = ""

        def _serve(self) -> None:
            started = time.monotonic()
            head_bytes = _request_head_bytes(self.requestline, self.headers.values())
            if head_bytes > MAX_REQUEST_LINE_AND_HEADER_BYTES:
                self._send(HttpResponse.json(431, {"message": "Request Header Fields Too Large"}), close=True)
                return
            raw_path, _, raw_query = self.path.partition("?")
            length = _content_length(self.headers.get("content-length"))
            if length is None:
                # The body's end is unknown: answer, and close rather than read on.
                self._send(HttpResponse.json(400, {"message": "Bad Request"}), close=True)
                return
            if length > MAX_BODY_BYTES:
                self._send(HttpResponse.json(413, {"message": "Request Entity Too Large"}), close=True)
                return
            body = self.rfile.read(length) if length else b""
            request = HttpRequest(
                method=self.command.upper(),
                raw_path=raw_path or "/",
                raw_query=raw_query,
                headers=tuple((k, v) for k, v in self.headers.items()),
                body=body,
                source_ip=self.client_address[0],
                host=self.headers.get("host", ""),
            )
            try:
                response = api.handle(request)
            except Exception:  # noqa: BLE001 - one broken local route must not take the server down
                console.exception("%s %s failed", request.method, request.raw_path)
                response = HttpResponse.json(500, {"message": "Internal Server Error"})
            self._send(response)
            console.info(
                "%s %s -> %d (%.0f ms)%s",
                request.method,
                request.raw_path,
                response.status,
                (time.monotonic() - started) * 1000,
                _client_error_reason(response),
            )

        def _send(self, response: HttpResponse, close: bool = False) -> None:
            self.send_response_only(response.status, _phrase(response.status))
            names = {name.lower() for name, _ in response.headers}
            for name, value in response.headers:
                if name.lower() in ("content-length", "connection", "transfer-encoding"):
                    continue
                self.send_header(name, value)
            if "date" not in names:
                self.send_header("date", formatdate(usegmt=True))
            if "apigw-requestid" not in names:
                self.send_header("apigw-requestid", uuid.uuid4().hex[:16])
            self.send_header("content-length", str(len(response.body)))
            if close:
                self.send_header("connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

        def __getattr__(self, name: str) -> Any:
            # The stdlib looks up do_<METHOD>; a method no route can have (TRACE, PROPFIND...) is
            # API Gateway's JSON 405 instead of the stdlib's HTML 501.
            if name.startswith("do_"):
                return self._method_not_allowed
            raise AttributeError(name)

        def _method_not_allowed(self) -> None:
            self._send(HttpResponse.json(405, {"message": "Method Not Allowed"}), close=True)

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """The stdlib's own refusals (URL or header too long, malformed request line) as JSON."""
            self._send(HttpResponse.json(code, {"message": _phrase(code)}), close=True)

        def log_message(self, format: str, *args: Any) -> None:
            """Access lines are logged by _serve instead."""

    return Handler
