"""Powertools' request-parameter annotations (``Query``, ``Header``) for the functions' routes, the
OpenAPI text of the one header a route requires, the Idempotency-Key of an order (and the optional one of a
strategy's creation, ``CreateIdempotencyKey``, and of a backtest, ``BacktestIdempotencyKey``), and
``ServiceQuery`` for a query parameter the service requires.

Imported from here rather than from Powertools so that a function's first import is the layer's:
then its whole init, Powertools' event handler included, runs with garbage collection paused
(``klineo/__init__.py``).

Why the Idempotency-Key is declared optional although it is required: a request without it must be
answered 428 (``precondition_required``) saying why the header matters, by the service, not 422 by
Powertools' validation. The OpenAPI document still says the truth: ``IdempotencyKey`` carries the
header's description and schema, ``idempotent_responses`` lists the 428, and ``local.openapi`` marks
every header of an operation that can answer 428 as required. So with a query parameter the service
requires (``ServiceQuery``): its absence is the service's 400 naming it, with why; its schema carries
``REQUIRED_BY_SERVICE``, which ``local.openapi`` turns into ``required: true``.
"""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Header, Query
from pydantic import WithJsonSchema

__all__ = ["IDEMPOTENCY_KEY_MISSING", "REQUIRED_BY_SERVICE", "BacktestIdempotencyKey", "CreateIdempotencyKey",
           "Header",
           "IdempotencyKey", "Query", "ServiceQuery", "idempotent_responses"]

# The schema mark of a query parameter the service requires (``ServiceQuery``); never in the document.
REQUIRED_BY_SERVICE = "x-klineo-required"

IDEMPOTENCY_KEY_MISSING = (
    "No Idempotency-Key header (category precondition_required): nothing was sent to Binance or stored. "
    "Send the request again with it: a new UUID per order, the same one when retrying that order."
)

# An Idempotency-Key's schema (klineo.validation.check_idempotency_key's rule).
_KEY_SCHEMA = WithJsonSchema({
    "type": "string", "minLength": 1, "maxLength": 255,
    "pattern": "^[\\x21-\\x7e]+$", "examples": ["5f0c1d1e-8d43-4b1a-9a65-2b2f1f5b7c11"],
})

# The header of an exactly-once order (klineo.services.futures checks it: 428 when absent, 400 when
# not 1 to 255 visible ASCII characters).
IdempotencyKey = Annotated[
    str | None,
    _KEY_SCHEMA,
    Header(description=(
        "Required. Any new value per order (e.g. a UUID), 1 to 255 visible ASCII characters; the same "
        "value when retrying it. A retry with the same key and body answers the first order (source "
        "\"existing\") instead of sending a second one; the same key with another body is 409. "
        "Without it the answer is 428.")),
]

# The optional header of POST /strategies (klineo.services.strategy_changes: 400 when not 1 to 255 visible
# ASCII characters); no 428: without it each create makes a strategy, as before the header.
CreateIdempotencyKey = Annotated[
    str | None,
    _KEY_SCHEMA,
    Header(description=(
        "Optional. Any new value per strategy to create (e.g. a UUID), 1 to 255 visible ASCII characters; "
        "the same value when retrying that create (e.g. after its answer was lost). A retry with the same "
        "key and body answers 200 with the strategy the first create made instead of creating a second one; "
        "the same key with another body, or after that strategy was deleted, is 409. Keys are the caller's "
        "own and expire after the events' retention (90 days by default). Without it each request creates "
        "a strategy.")),
]

# The optional header of POST /strategies/backtest (klineo.services.backtest: 400 when malformed); no 428.
BacktestIdempotencyKey = Annotated[
    str | None,
    _KEY_SCHEMA,
    Header(description=(
        "Optional. Any new value per backtest (e.g. a UUID), 1 to 255 visible ASCII characters; the same "
        "value when retrying it. A period long enough to be queued is queued once per key: a retry with the "
        "same key and body answers 202 with the job the first request queued, as GET "
        "/strategies/backtest/{jobId} shows it now; the same key with another body is 409. Keys are the "
        "caller's own and expire with their job (7 days). A period answered at once (200) stores nothing: it "
        "is computed again.")),
]


def idempotent_responses(model: type) -> dict[int, dict[str, Any]]:
    """A keyed route's documented answers: ``model`` on success, and the 428 of a missing key."""
    return {
        200: {"description": "Successful Response", "content": {"application/json": {"model": model}}},
        428: {"description": IDEMPOTENCY_KEY_MISSING},
    }


def ServiceQuery(**rules: Any) -> Any:
    """``Query(**rules)`` of a parameter the function takes as optional but the service requires (see the
    module docstring): documented as required."""
    return Query(json_schema_extra={REQUIRED_BY_SERVICE: True}, **rules)
