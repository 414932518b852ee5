"""The one adapter between API Gateway (HTTP API, payload 2.0) and the layer.

Only this module knows API Gateway shapes: the JWT ``sub`` claim, base64 bodies, CORS, and the
one table that turns an error category into an HTTP status. Every error leaves the API as

    {"error": {"category": "...", "message": "...", "retryable": bool, "request_id": "...",
               "field": "...", "errors": [{"field": "...", "message": "..."}],
               "suggested_environment": "..."}}

("field" only when known: the name of the request field as the caller spelled it, without a
"body."/"query." prefix, e.g. "quantity" or "parameters.fast"; "errors" lists every field that
failed validation, the first one being "field"; "suggested_environment" only on keys Binance takes on
the other environment than the one they were sent for), with ``Retry-After`` passed through for
rate_limit and ip_banned. Every answer carries ``X-Request-Id`` (API Gateway's request id, else
the Lambda request id), the ``request_id`` of an error body, and the correlation id of every log
line the request wrote.

Category -> HTTP status (``CATEGORY_STATUS``), and why:

    invalid_request       400  the caller's input (pydantic validation of the request, and an
                               ``InvalidField``, a field refused by a rule on stored state: 422)
    not_found             404  also another user's connection: never 403, so ids don't leak
    order_not_found       404
    conflict              409  the request is valid but the resource's state forbids it
    precondition_required 428  a header the route requires is missing (Idempotency-Key: order, close)
    duplicate_order       409
    insufficient_balance  422  well-formed, refused by the exchange for the account's state
    order_rejected        422
    permission            403  Binance refused the KEY (not the KLINEO user): 401 is kept for a
    signature             403  missing/invalid KLINEO JWT, because frontends sign the user out
    ip_whitelist          403  on 401 and a bad exchange key must not do that
    restricted            451  Binance refuses the deployment's location
    rate_limit            429  + Retry-After
    ip_banned             503  + Retry-After (the egress IP is banned; the caller did nothing wrong)
    timestamp             502  Binance refused our clock even after a resync: our side, not input
    network               502  Binance could not be reached (nothing was received by it)
    upstream_unavailable  503  Binance answered "unavailable"/5xx on a read; AWS busy or unreachable
    unknown_outcome       504  a write's outcome is unknown (timeout); look the order up
    other                 500  never a stack trace

Protocol-level answers that are not exchange categories: 401 (no JWT sub, category
"permission"), 404/405 (unknown route / method, "not_found" / "invalid_request"), 413 (body over
16 KiB), 415 (a body not sent as application/json, whatever it holds), 400 (a body that is not one
JSON object), all "invalid_request" except where named. No error field or message repeats a submitted value.
"""

from __future__ import annotations

import binascii
import json
import re
import traceback
import uuid
from decimal import Decimal
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from klineo.errors import ErrorCategory, InvalidField, KlineoError
from klineo.observability import logger
from klineo.settings import get_settings
from klineo.store.aws import STORAGE_BUSY, STORAGE_ERRORS, error_code, is_transient

__all__ = [
    "CATEGORY_STATUS",
    "MAX_BODY_BYTES",
    "MAX_BODY_DEPTH",
    "REQUEST_ID_HEADER",
    "ApiError",
    "KlineoResolver",
    "Response",
    "build_resolver",
    "content_types",
    "current_user_id",
    "error_response",
]

MAX_BODY_BYTES = 16 * 1024
# No request model nests deeper than 3; deeper JSON is refused before validation walks it.
MAX_BODY_DEPTH = 8
# At most this many fields are listed in an error's "errors".
MAX_FIELD_ERRORS = 20

CATEGORY_STATUS: dict[str, int] = {
    "invalid_request": 400,
    "not_found": 404,
    "order_not_found": 404,
    "conflict": 409,
    "precondition_required": 428,
    "duplicate_order": 409,
    "insufficient_balance": 422,
    "order_rejected": 422,
    "permission": 403,
    "signature": 403,
    "ip_whitelist": 403,
    "restricted": 451,
    "rate_limit": 429,
    "ip_banned": 503,
    "timestamp": 502,
    "network": 502,
    "upstream_unavailable": 503,
    "unknown_outcome": 504,
    "other": 500,
}

_RETRY_AFTER_CATEGORIES = frozenset({"rate_limit", "ip_banned"})
_CORS_ALLOW_HEADERS = ["authorization", "content-type", "idempotency-key"]
REQUEST_ID_HEADER = "X-Request-Id"
_CORS_EXPOSE_HEADERS = ["retry-after", "x-request-id"]
# API Gateway's request ids are short visible ASCII; anything else is replaced, never echoed.
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")


class ApiError(Exception):
    """An HTTP-level refusal made by the adapter itself (401, 405, 413, 415, malformed body)."""

    def __init__(self, status: int, category: str, message: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.field = field
        self.headers = headers or {}


def error_response(status: int, category: str, message: str, *, retryable: bool = False,
                   field: str | None = None, errors: list[dict[str, str]] | None = None,
                   headers: dict[str, str] | None = None, details: dict[str, Any] | None = None) -> Response:
    """The API's one error body, as a Powertools Response (request_id: the request's correlation id;
    ``details``: the fields an error of its own kind adds, e.g. ``suggested_environment``)."""
    error: dict[str, Any] = {"category": category, "message": message, "retryable": retryable,
                             "request_id": logger.get_correlation_id() or ""}
    if field:
        error["field"] = field
    if errors:
        error["errors"] = errors
    error.update(details or {})
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"error": error}, separators=(",", ":")),
        headers=headers or {},
    )


def _sub(app: APIGatewayHttpResolver) -> str | None:
    claims = app.current_event.request_context.authorizer.jwt_claim
    sub = claims.get("sub") if isinstance(claims, dict) else None
    if not isinstance(sub, str) or not sub.strip() or len(sub) > 256 or not sub.isprintable():
        return None
    return sub


def _unauthenticated() -> ApiError:
    return ApiError(HTTPStatus.UNAUTHORIZED, "permission", "authentication required")


def current_user_id(app: APIGatewayHttpResolver) -> str:
    """The caller: the verified JWT ``sub`` claim API Gateway passes on; never path, query or body."""
    sub = _sub(app)
    if sub is None:
        raise _unauthenticated()
    return sub


def _check_body_size(text: str | None) -> None:
    if text is not None and len(text.encode("utf-8")) > MAX_BODY_BYTES:
        raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "invalid_request",
                       f"request body is larger than {MAX_BODY_BYTES} bytes", field="body")


def _reject_constant(name: str) -> Any:
    raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_request", f"request body is not valid JSON ({name})",
                   field="body")


class _RepeatedKey(Exception):
    """A JSON object gave a key twice (raised while parsing; the refusal is built after)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all distinct: a key given twice contradicts itself
    (``"side": "BUY", ..., "side": "SELL"`` would otherwise sell), so it is refused, as a repeated
    query parameter is."""
    value = dict(pairs)
    if len(value) != len(pairs):
        raise _RepeatedKey
    return value


class _MarkedObject(dict):
    """A JSON object parsed again to find where a key was given twice: ``repeated`` names the key."""

    repeated: str | None = None


def _marking_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    marked = _MarkedObject(pairs)
    if len(marked) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                marked.repeated = key
                break
            seen.add(key)
    return marked


def _repeated_key_path(text: str) -> tuple[str | int, ...]:
    """Where in the body a key was given twice, ending with the key; () when not found."""
    try:
        root = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant,
                          object_pairs_hook=_marking_keys)
    except (ValueError, RecursionError):
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_request", "request body is not valid JSON",
                       field="body") from None
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(root, ())]
    while stack:
        item, where = stack.pop()
        if isinstance(item, _MarkedObject) and item.repeated is not None:
            return (*where, item.repeated)
        if isinstance(item, (dict, list)):
            children = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend((child, (*where, key)) for key, child in children)
    return ()


def _repeated_key_refusal(text: str) -> ApiError:
    """The 400 for a key given twice, naming it by its path ("stop_loss.percent") as a validation
    error names a field; only this error path parses the body a second time to find it."""
    path = _repeated_key_path(text)
    nameable = path and all(isinstance(part, int) or _FIELD_PART.fullmatch(part) for part in path)
    named = ".".join(str(part) for part in path) if nameable else None
    return ApiError(HTTPStatus.BAD_REQUEST, "invalid_request",
                    f"request body gives the key {named or ''} more than once".replace("  ", " "),
                    field=named or "body")


def _nesting_depth(value: Any) -> int:
    """How deep arrays and objects nest in a parsed JSON value (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _json_body(text: str) -> Any:
    """Body deserializer: size cap first, then JSON with exact decimals (never binary floats), shallow, and
    one object (or null)."""
    _check_body_size(text)
    try:
        value = json.loads(text, parse_float=Decimal, parse_constant=_reject_constant,
                           object_pairs_hook=_unique_keys)
    except _RepeatedKey:
        raise _repeated_key_refusal(text) from None
    except (ValueError, RecursionError):
        # ValueError: JSONDecodeError, and an integer of more digits than Python converts (4300).
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_request", "request body is not valid JSON",
                       field="body") from None
    if _nesting_depth(value) > MAX_BODY_DEPTH:
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_request",
                       f"request body nests deeper than {MAX_BODY_DEPTH} levels", field="body")
    # Every route's body is one object (null: none, where a route's body is optional). Powertools'
    # validation reads an array given for an object body as its FIRST item: [order_a, order_b] would
    # place order_a alone and answer 200, and [null] would enable futures with "no settings".
    if value is not None and not isinstance(value, dict):
        raise ApiError(HTTPStatus.BAD_REQUEST, "invalid_request", "request body must be a JSON object",
                       field="body")
    return value


def _declares_json(app: APIGatewayHttpResolver) -> bool:
    """The request's Content-Type is application/json (parameters such as charset allowed)."""
    content_type = app.current_event.headers.get("content-type") or ""
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


def _unsupported_media_type() -> ApiError:
    return ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "invalid_request",
                    "request body must be JSON, sent with Content-Type: application/json", field="body")


def _declared_query_names(app: APIGatewayHttpResolver) -> set[str] | None:
    """The query parameter names the matched route declares (a query model's fields by their aliases).

    Read from the route Powertools' resolver puts in ``app.context["_route"]`` (its OpenAPI
    validation reads the same); a test fails if a Powertools upgrade stops doing so.
    """
    route = app.context.get("_route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return None
    names: set[str] = set()
    for param in dependant.query_params:
        annotation = getattr(param.field_info, "annotation", None)
        fields = getattr(annotation, "model_fields", None)
        if isinstance(fields, dict):
            names.update(info.alias or name for name, info in fields.items())
        else:
            names.add(param.alias)
    return names


def _query_refusal(app: APIGatewayHttpResolver, preflight: bool) -> ApiError | None:
    """A query parameter given twice (it contradicts itself), or one the route does not take (a typo,
    Binance's spelling of ours: ignored, ``?positionSide=SHORT`` on a close would close whatever
    position there is); a CORS preflight is answered whatever its query string names."""
    names = [name for name, _ in parse_qsl(app.current_event.raw_query_string or "", keep_blank_values=True)]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        return _query_error(repeated[0], "is given more than once")
    declared = None if preflight else _declared_query_names(app)
    unknown = sorted(set(names) - declared) if declared is not None else []
    return _query_error(unknown[0], "is not one this route takes") if unknown else None


def _query_error(name: str, what: str) -> ApiError:
    """400 naming the parameter when its name has a field's shape (anything else is not repeated back)."""
    field = name if _FIELD_PART.fullmatch(name) else None
    return ApiError(HTTPStatus.BAD_REQUEST, "invalid_request",
                    f"query parameter {field or ''} {what}".replace("  ", " "), field=field)


def _request_guard(app: APIGatewayHttpResolver, next_middleware: Any) -> Any:
    """Every route: a JWT subject is required, a body is JSON and capped even where it is not parsed,
    and every query parameter is one the route takes, given once."""
    # A CORS preflight carries no credentials (browsers never send them on OPTIONS), and is answered
    # whatever its query string.
    preflight = app.current_event.http_method.upper() == "OPTIONS"
    if not preflight and _sub(app) is None:
        raise _unauthenticated()
    _check_body_size(app.current_event.decoded_body)
    if app.current_event.body and not _declares_json(app):
        raise _unsupported_media_type()
    if (refusal := _query_refusal(app, preflight)) is not None:
        raise refusal
    return next_middleware(app)


# A field name the API itself could have: a submitted key that is not one (it may be a secret
# pasted as a key) ends the name at the part before it.
# (Field names are short: a key over 24 characters is not named, as a pasted secret would be.)
_FIELD_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,23}")
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def _field_name(loc: Any) -> str:
    """A validation error's location as the field the caller sent: "quantity", "parameters.fast"."""
    parts = list(loc) if isinstance(loc, (list, tuple)) else [loc]
    if len(parts) >= 3 and parts[0] == "query":
        # A query model parameter: ("query", <parameter name>, <field>); query strings being
        # flat, the field is what the caller sent.
        del parts[1]
    if len(parts) < 2 or parts[0] not in _LOCATIONS:
        return ".".join(str(part) for part in parts[:1])
    if parts[0] != "body":
        return str(parts[1])  # a declared parameter's name, never a submitted key
    kept: list[str] = []
    for part in parts[1:]:
        if not (isinstance(part, int) or _FIELD_PART.fullmatch(str(part))):
            break
        kept.append(str(part))
    return ".".join(kept) or "body"


# pydantic writes a Decimal bound as Python's repr ("less than or equal to Decimal('100')").
_DECIMAL_REPR = re.compile(r"Decimal\('([^']*)'\)")


def _validation_message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    message = _DECIMAL_REPR.sub(r"\1", message)
    submitted = error.get("input")
    # pydantic's messages name the rule, not the value; should one ever quote it, say less.
    if isinstance(submitted, str) and len(submitted) >= 4 and submitted in message:
        return "invalid value"
    return message


def _handle_validation(exc: RequestValidationError) -> Response:
    # Only loc, type and msg leave this function (msg checked above): pydantic's `input` and the
    # exception's raw body may hold an API secret.
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "invalid_request", "request body is not valid JSON", field="body")
    if not errors:
        return error_response(422, "invalid_request", "request is invalid")
    fields = [{"field": _field_name(e.get("loc", ())), "message": _validation_message(e)}
              for e in errors[:MAX_FIELD_ERRORS]]
    message = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
    return error_response(422, "invalid_request", message, field=fields[0]["field"], errors=fields)


def _validation_handler(app: APIGatewayHttpResolver):
    def handle(exc: RequestValidationError) -> Response:
        # Validation runs before any middleware: an anonymous caller learns nothing from it, and
        # a body that is not declared JSON (a form, say) was parsed as something else: its parts
        # must never come back as field names.
        if _sub(app) is None:
            return _handle_api_error(_unauthenticated())
        about_body = any(tuple(e.get("loc", ()))[:1] == ("body",) for e in exc.errors())
        if (about_body or app.current_event.body) and not _declares_json(app):
            return _handle_api_error(_unsupported_media_type())
        if (refusal := _query_refusal(app, preflight=False)) is not None:
            return _handle_api_error(refusal)
        return _handle_validation(exc)

    return handle


def _handle_klineo_error(exc: KlineoError) -> Response:
    if isinstance(exc, InvalidField):  # answered as request validation is
        logger.info("request refused", extra={"category": "invalid_request", "status": 422})
        refusals = getattr(exc, "refusals", (exc,))
        return error_response(422, "invalid_request", exc.message, field=exc.field,
                              errors=[{"field": str(r.field), "message": r.message} for r in refusals])
    category = str(ErrorCategory(exc.category))
    status = CATEGORY_STATUS.get(category, 500)
    headers: dict[str, str] = {}
    if category in _RETRY_AFTER_CATEGORIES and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, int(-(-float(exc.retry_after) // 1))))
    log = logger.error if status >= 500 else logger.warning
    log("request failed", extra={"category": category, "status": status,
                                  "binance_status": exc.status, "binance_code": exc.code})
    return error_response(status, category, exc.message, retryable=bool(exc.retryable),
                          field=getattr(exc, "field", None), headers=headers,
                          details=getattr(exc, "details", None))


def _handle_api_error(exc: ApiError) -> Response:
    logger.info("request refused", extra={"category": exc.category, "status": int(exc.status)})
    return error_response(int(exc.status), exc.category, exc.message, field=exc.field, headers=exc.headers)


def _handle_unsupported_type(exc: RequestUnsupportedContentType) -> Response:
    return _handle_api_error(_unsupported_media_type())


def _handle_bad_encoding(exc: ValueError) -> Response:
    return error_response(400, "invalid_request", "request body is not valid base64-encoded UTF-8",
                          field="body")


def _handle_service_error(exc: ServiceError) -> Response:
    category = "not_found" if exc.status_code == 404 else "invalid_request"
    return error_response(exc.status_code, category, str(exc.msg))


def _value_error_handler(app: APIGatewayHttpResolver):
    def handle(exc: ValueError) -> Response:
        # Powertools raises a bare ValueError for a multipart body without a boundary; that is
        # the request's media type, which is refused anyway (any other ValueError is a bug).
        content_type = (app.current_event.headers.get("content-type") or "").strip().lower()
        if content_type.startswith("multipart/"):
            return _handle_api_error(_unsupported_media_type())
        return _handle_unexpected(exc)

    return handle


def _handle_storage_error(exc: Exception) -> Response:
    """AWS busy or unreachable past botocore's own retries (``is_transient``): a retryable 503, which a
    repeat of the request gets past; any other AWS failure is a fault of ours (``_handle_unexpected``)."""
    if not is_transient(exc):
        return _handle_unexpected(exc)
    logger.warning("storage unavailable", extra={"aws_error": error_code(exc) or type(exc).__name__})
    return error_response(503, "upstream_unavailable", STORAGE_BUSY, retryable=True)


def _handle_unexpected(exc: Exception) -> Response:
    # Where it failed, never the exception's text: a message (a pydantic error's, say) may quote
    # the submitted value, an API secret included.
    frames = [f"{f.filename}:{f.lineno} {f.name}" for f in traceback.extract_tb(exc.__traceback__)]
    logger.error("unhandled error", extra={"exception_name": type(exc).__name__, "frames": frames[-8:]})
    return error_response(500, "other", "internal error")


def _not_found_handler(app: KlineoResolver):
    def handle(exc: NotFoundError) -> Response:
        event = app.current_event
        method, path = event.http_method.upper(), event.path
        # A path that exists under another method is 405 with Allow, as HTTP asks.
        allowed = sorted({m for m, rule in app.known_routes if m != method and rule.match(path)})
        if allowed:
            return error_response(405, "invalid_request", f"method {method} is not allowed here",
                                  headers={"Allow": ", ".join(allowed)})
        return error_response(404, "not_found", "no such route")

    return handle


def _request_id(event: Any, context: Any) -> str:
    """API Gateway's request id, else the Lambda invocation's, else a fresh one."""
    context_of_request = event.get("requestContext") if isinstance(event, dict) else None
    candidate = context_of_request.get("requestId") if isinstance(context_of_request, dict) else None
    if isinstance(candidate, str) and _REQUEST_ID.fullmatch(candidate):
        return candidate
    invocation = getattr(context, "aws_request_id", None)
    return invocation if isinstance(invocation, str) and invocation else uuid.uuid4().hex


class KlineoResolver(APIGatewayHttpResolver):
    """The HTTP API resolver: each request's id is the log correlation id and the X-Request-Id header.

    It also remembers (method, path pattern) of each route it declares, for the 405 answer.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.known_routes: list[tuple[str, re.Pattern[str]]] = []

    def route(self, rule: str, method: str | list[str] | tuple[str], *args: Any, **kwargs: Any) -> Any:
        """Declare a route (Powertools' own ``route``), remembering it for the 405 answer."""
        pattern = re.compile("^" + re.sub(r"<\w+>", "[^/]+", rule) + "$")
        methods = [method] if isinstance(method, str) else list(method)
        self.known_routes.extend((name.upper(), pattern) for name in methods)
        return super().route(rule, method, *args, **kwargs)

    def resolve(self, event: Any, context: Any) -> dict[str, Any]:
        """Resolve as Powertools does, with the request id set before and answered after."""
        request_id = _request_id(event, context)
        logger.set_correlation_id(request_id)
        response = super().resolve(event, context)
        response["headers"] = {**(response.get("headers") or {}), REQUEST_ID_HEADER: request_id}
        return response


def build_resolver() -> KlineoResolver:
    """The HTTP API resolver every function uses: CORS, validation and every error handler attached."""
    settings = get_settings()
    cors = CORSConfig(
        allow_origin=settings.cors_origin,
        allow_headers=_CORS_ALLOW_HEADERS,
        expose_headers=_CORS_EXPOSE_HEADERS,
        max_age=600,
    )
    # debug=False whatever POWERTOOLS_DEV says: debug mode prints every event (bodies carry API
    # secrets) and answers 500s with a traceback.
    app = KlineoResolver(cors=cors, enable_validation=True, json_body_deserializer=_json_body,
                         debug=False)
    app.use(middlewares=[_request_guard])
    app.exception_handler(KlineoError)(_handle_klineo_error)
    app.exception_handler(ApiError)(_handle_api_error)
    app.exception_handler(RequestValidationError)(_validation_handler(app))
    app.exception_handler(RequestUnsupportedContentType)(_handle_unsupported_type)
    app.exception_handler([binascii.Error, UnicodeDecodeError])(_handle_bad_encoding)
    app.exception_handler(ValueError)(_value_error_handler(app))
    app.exception_handler(NotFoundError)(_not_found_handler(app))
    app.exception_handler(ServiceError)(_handle_service_error)
    app.exception_handler(list(STORAGE_ERRORS))(_handle_storage_error)
    app.exception_handler(Exception)(_handle_unexpected)
    return app
