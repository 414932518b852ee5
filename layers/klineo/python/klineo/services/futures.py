"""Futures orders of the HTTP API: placing an order, reading its status.

The futures account (test, enable with settings, disable) is klineo.services.futures_account; the
risk gate every order passes is klineo.services.risk.

Placing an order (`place_futures_order`), warm, costs in AWS calls:
- with an Idempotency-Key: the Powertools idempotency record's PutItem (in progress) and
  UpdateItem (completed); ONE strongly consistent BatchGetItem bringing the connection and both
  kill switches; the order record's conditional PutItem before sending and UpdateItem after;
  the secret from the in-memory cache (no call). In all: 1 read + 4 writes.
- without the header: 1 read + 2 writes (no idempotency record).
The order record is kept apart from the idempotency record on purpose: it exists for orders
without the header too, outlives the idempotency record's 24 h expiry (a late retry with the same
key still finds the order), and is what the status route reads (that function has no access to
the idempotency table).

Exactly once, in layers:
1. Powertools idempotency keyed on (user sub, Idempotency-Key): the same request while the first
   is in flight gets 409 "in progress" (retryable); after it completed, the first answer; the
   same key with a different body gets 409 naming the header.
2. The clientOrderId is derived from (user sub, key), and the order record is written with a
   conditional PutItem before sending: a retry that gets past layer 1 (the first attempt failed,
   or the idempotency record expired) finds the record and resumes instead of placing anew.
3. `klineo.services.orders.submit_futures_order`: a lost answer is settled by looking the order up
   by clientOrderId; an order is only sent again once Binance provably cannot execute the
   earlier attempt any more (recvWindow passed) and does not have it.

Conditional types (STOP*, TAKE_PROFIT*, TRAILING_STOP_MARKET) take the same path to the point where
the order is sent, which routes them to Binance's algo service (``klineo.services.algo_orders``);
an entry's ``stop_loss`` / ``take_profit`` are placed after it fills (``klineo.services.protective``),
and ``quote_quantity`` becomes a quantity first (``klineo.services.order_size``).
"""

from __future__ import annotations

import dataclasses
import time
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer

from klineo.binance import (
    BinanceClient,
    Credentials,
    Environment,
    ErrorCategory,
    Market,
    endpoints,
    get_client,
)
from klineo.binance.filters import get_symbol_rules
from klineo.errors import KlineoError
from klineo.models.futures import FuturesOrderRequest, FuturesOrderResponse
from klineo.observability import logger, metrics
from klineo.services.algo_orders import (
    AlgoOrder,
    prepare_algo_order,
    query_algo_order,
    recorded_order,
    submit_order,
)
from klineo.services.futures_account import prepare_symbol
from klineo.services.key_health import note_key_outcome
from klineo.services.order_size import with_quote_quantity
from klineo.services.orders import (
    FuturesOrder,
    OrderResult,
    check_client_order_id,
    idempotent_client_order_id,
    new_client_order_id,
    query_futures_order,
)
from klineo.services.protective import arm_on_read, arm_protective_orders, check_protective_targets
from klineo.services.risk import OrderIntent, check_order
from klineo.store.connections import (
    Connection,
    TradingContext,
    connection_credentials,
    load_trading_context,
    require_connection,
)
from klineo.store.idempotency import order_idempotency_store
from klineo.store.orders import (
    KIND_ALGO,
    KIND_ORDER,
    STATUS_REJECTED,
    STATUS_UNKNOWN,
    OrderRecord,
    claim_resend,
    create_order_record,
    get_order_record,
    record_order_outcome_quietly,
)

__all__ = [
    "IDEMPOTENCY_KEY_MAX_LENGTH",
    "IDEMPOTENCY_TTL_SECONDS",
    "futures_order_response",
    "get_futures_order_status",
    "place_futures_order",
]

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
IDEMPOTENCY_KEY_MAX_LENGTH = 255
IDEMPOTENCY_HEADER = "Idempotency-Key"

# Built at import: plain configuration, no client. The persistence layer (a DynamoDB client) is
# made lazily on the first order, see klineo.store.idempotency.
_IDEMPOTENCY_CONFIG = IdempotencyConfig(
    # The user sub is part of the key: two users sending the same header value never collide.
    event_key_jmespath="[user_id, idempotency_key]",
    # The same key with another body is refused instead of answered with the first order.
    payload_validation_jmespath="order",
    expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
    hash_function="sha256",
    response_hook=lambda response, _record: response.model_copy(update={"source": "existing"}),
)


def _futures_client(connection: Connection) -> BinanceClient:
    return get_client(Market.FUTURES, Environment(connection.environment))


# ---------------------------------------------------------------- orders


def futures_order_response(
    result: OrderResult, connection_id: str, source: str | None = None
) -> FuturesOrderResponse:
    """The API's view of an order Binance reported."""
    return FuturesOrderResponse(
        client_order_id=result.client_order_id,
        connection_id=connection_id,
        order_id=result.order_id,
        symbol=result.symbol,
        side=result.side,
        type=result.type,
        status=result.status,
        quantity=format(result.quantity, "f"),
        executed_quantity=format(result.executed_quantity, "f"),
        price=format(result.price, "f") if result.price is not None else None,
        average_price=format(result.average_price, "f") if result.average_price is not None else None,
        time_in_force=result.time_in_force,
        reduce_only=result.reduce_only,
        position_side=result.position_side,
        update_time=result.update_time,
        kind=result.kind,
        trigger_price=format(result.trigger_price, "f") if result.trigger_price is not None else None,
        close_position=result.close_position,
        source=source or result.source,
    )


def _reference_price(client: BinanceClient, order: FuturesOrderRequest) -> Decimal:
    """The price the notional check uses: the limit price, or the mark price for MARKET (facts §6)."""
    if order.price is not None:
        return order.price
    return endpoints.futures_mark_price(client, order.symbol)


def _resume(
    user_id: str, existing: OrderRecord, order: FuturesOrderRequest, client: BinanceClient, creds: Credentials
) -> OrderResult:
    """An order record exists already: return its order, or place it once it provably is not there.

    The order sent again is the one recorded (same parameters as the first attempt), never a
    fresh rounding of the body.
    """
    if existing.request != order.fingerprint():
        raise KlineoError(
            ErrorCategory.CONFLICT,
            f"This {IDEMPOTENCY_HEADER} was already used for a different order; use a new key.",
            field=IDEMPOTENCY_HEADER,
        )
    if existing.settled and existing.result is not None:
        return OrderResult.from_record(existing.result).with_source("existing")
    recorded = recorded_order(existing)
    attempt_ms = int(time.time() * 1000)

    def claim() -> None:
        if not claim_resend(
            user_id, existing.client_order_id, previous_attempt_ms=existing.attempt_ms, attempt_ms=attempt_ms
        ):
            raise KlineoError(
                ErrorCategory.CONFLICT,
                "Another request is placing this order right now; retry in a moment.",
                field=IDEMPOTENCY_HEADER,
                retryable=True,
            )

    if existing.status == STATUS_REJECTED:
        # Binance refused the earlier attempt: nothing was placed and nothing can still arrive.
        # Send again, after winning the claim against a concurrent retry of the same order.
        claim()
        return submit_order(client, creds, recorded, existing.client_order_id)
    return submit_order(
        client,
        creds,
        recorded,
        existing.client_order_id,
        earlier_attempt_ms=existing.attempt_ms,
        before_resend=claim,
    )


def _intent(order: FuturesOrderRequest) -> OrderIntent:
    # closePosition in one-way mode only ever reduces, like reduceOnly (hedge: the side says it).
    closes_all = order.closePosition and order.positionSide == "BOTH"
    return OrderIntent(symbol=order.symbol, side=order.side, type=order.type,
                       quantity=order.quantity or Decimal(0), price=order.price,
                       reduce_only=order.reduceOnly or closes_all, position_side=order.positionSide)


def _prepared(
    context: TradingContext, order: FuturesOrderRequest
) -> tuple[BinanceClient, Credentials, FuturesOrder | AlgoOrder]:
    """Risk gate, the connection's settings on the symbol, then the order rounded to the symbol's rules."""
    connection = context.connection
    client = _futures_client(connection)
    reference = cache(lambda: _reference_price(client, order))
    if order.quote_quantity is not None:
        check_order(context, _intent(order))  # switches and state refuse before any Binance call
    order = with_quote_quantity(client, order, reference)
    check_order(context, _intent(order), reference)
    check_protective_targets(order, reference)
    creds = connection_credentials(connection)
    if not _intent(order).reduces:
        # A reducing order (a close) needs no settings, and changing margin type under an open
        # position is refused (-4048): the connection's defaults must never block a close.
        try:
            prepare_symbol(client, creds, connection, order.symbol)
        except KlineoError as exc:
            note_key_outcome(connection, exc)
            raise
    rules = get_symbol_rules(client, order.symbol)
    if order.conditional:
        return client, creds, prepare_algo_order(rules, order)
    quantity, price = rules.prepare_order(
        order.side, order.type, order.quantity, order.price, reference(), reduce_only=order.reduceOnly,
    )
    futures_order = FuturesOrder(
        symbol=order.symbol,
        side=order.side,
        type=order.type,
        quantity=quantity,
        price=price,
        time_in_force=order.timeInForce,
        reduce_only=order.reduceOnly,
        position_side=order.positionSide,
    )
    return client, creds, futures_order


def _place(user_id: str, order: FuturesOrderRequest, client_order_id: str) -> FuturesOrderResponse:
    """Checks and rounding (``_prepared``), order record, exactly-once submission, outcome recorded."""
    context = load_trading_context(user_id, order.connection_id)
    connection = context.connection
    client, creds, futures_order = _prepared(context, order)
    record, existing = create_order_record(
        user_id,
        client_order_id,
        connection_id=connection.connection_id,
        symbol=order.symbol,
        request=order.fingerprint(),
        params=futures_order.to_params(client_order_id),
        attempt_ms=int(time.time() * 1000),
        kind=KIND_ALGO if order.conditional else KIND_ORDER,
    )
    try:
        if existing is None:
            result = submit_order(client, creds, futures_order, client_order_id)
        else:
            result = _resume(user_id, existing, order, client, creds)
    except KlineoError as exc:
        note_key_outcome(connection, exc)
        if exc.category == ErrorCategory.UNKNOWN_OUTCOME:
            record_order_outcome_quietly(user_id, client_order_id, status=STATUS_UNKNOWN, error=exc.to_dict())
        elif existing is None:
            # A fresh id: the only call that can fail definitively is the POST itself, so
            # Binance refused the order and nothing was placed. (On the resume path a failure may
            # come from a lookup; the record then keeps its state and the next retry looks again.)
            record_order_outcome_quietly(
                user_id, client_order_id, status=STATUS_REJECTED, error={**exc.to_dict(), "code": exc.code}
            )
        raise
    record_order_outcome_quietly(
        user_id, client_order_id, status=result.status, order_id=result.order_id, result=result.to_record()
    )
    note_key_outcome(connection, None)
    logger.info(
        "futures order done",
        extra={
            "client_order_id": client_order_id,
            "status": result.status,
            "source": result.source,
            "symbol": result.symbol,
        },
    )
    response = futures_order_response(result, connection.connection_id)
    if order.stop_loss is None and order.take_profit is None:
        return response
    entry = dataclasses.replace(existing or record, status=result.status, result=result.to_record())
    protective = arm_protective_orders(user_id, entry, client, creds)
    return response.model_copy(update={"protective_orders": protective})


def _place_idempotent(
    *, request: dict[str, Any], order: FuturesOrderRequest, client_order_id: str
) -> FuturesOrderResponse:
    """The body Powertools idempotency wraps; `request` is what it hashes and validates."""
    return _place(request["user_id"], order, client_order_id)


@lru_cache(maxsize=4)
def _idempotent_placer(persistence: DynamoDBPersistenceLayer) -> Any:
    """`_place_idempotent` wrapped by Powertools idempotency on IDEMPOTENCY_TABLE (made on first use)."""
    return idempotent_function(
        data_keyword_argument="request",
        config=_IDEMPOTENCY_CONFIG,
        persistence_store=persistence,
        output_serializer=PydanticSerializer(FuturesOrderResponse),
        key_prefix="klineo.futures_order",
    )(_place_idempotent)


def _check_idempotency_key(value: str) -> str:
    if not 1 <= len(value) <= IDEMPOTENCY_KEY_MAX_LENGTH or not all("\x21" <= ch <= "\x7e" for ch in value):
        raise KlineoError(
            ErrorCategory.INVALID_REQUEST,
            f"{IDEMPOTENCY_HEADER} must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} visible ASCII characters",
            field=IDEMPOTENCY_HEADER,
        )
    return value


def place_futures_order(
    user_id: str,
    order: FuturesOrderRequest,
    idempotency_key: str | None = None,
    lambda_context: Any = None,
) -> FuturesOrderResponse:
    """Place a USDT-M order for the caller, exactly once per Idempotency-Key (see the module docstring)."""
    if idempotency_key is None:
        return _place(user_id, order, new_client_order_id())
    key = _check_idempotency_key(idempotency_key)
    client_order_id = idempotent_client_order_id(user_id, key)
    if lambda_context is not None:
        # In-progress records then expire with this invocation, so a crashed attempt frees its key.
        _IDEMPOTENCY_CONFIG.register_lambda_context(lambda_context)
    placer = _idempotent_placer(order_idempotency_store())
    request = {"user_id": user_id, "idempotency_key": key, "order": order.fingerprint()}
    try:
        return placer(request=request, order=order, client_order_id=client_order_id)
    except IdempotencyAlreadyInProgressError:
        raise KlineoError(
            ErrorCategory.CONFLICT,
            f"A request with this {IDEMPOTENCY_HEADER} is in progress; retry in a moment for its result.",
            field=IDEMPOTENCY_HEADER,
            retryable=True,
        ) from None
    except IdempotencyPersistenceLayerError:
        # The idempotency store failed before or after the order went out; either way the same
        # key is safe to repeat: the order record and the clientOrderId lookup settle it.
        logger.exception("idempotency store failed", extra={"client_order_id": client_order_id})
        raise KlineoError(
            ErrorCategory.UPSTREAM_UNAVAILABLE,
            f"Storage failed while handling this order; repeat it with the same {IDEMPOTENCY_HEADER} "
            "to get its outcome.",
            retryable=True,
        ) from None
    except IdempotencyValidationError:
        raise KlineoError(
            ErrorCategory.CONFLICT,
            f"This {IDEMPOTENCY_HEADER} was already used for a different order; use a new key.",
            field=IDEMPOTENCY_HEADER,
        ) from None


def get_futures_order_status(
    user_id: str,
    client_order_id: str,
    connection_id: str | None = None,
    symbol: str | None = None,
) -> FuturesOrderResponse:
    """An order's state from Binance, found through the caller's own order record (or connection + symbol)."""
    check_client_order_id(client_order_id, field="clientOrderId")
    record = get_order_record(user_id, client_order_id)
    if record is not None:
        if connection_id is not None and connection_id != record.connection_id:
            raise KlineoError(ErrorCategory.NOT_FOUND, "order not found on this connection")
        if symbol is not None and symbol != record.symbol:
            raise KlineoError(ErrorCategory.ORDER_NOT_FOUND, "order not found for this symbol")
        if record.status == STATUS_REJECTED:
            reason = (record.error or {}).get("message", "")
            raise KlineoError(
                ErrorCategory.ORDER_NOT_FOUND,
                f"Binance refused this order; it was never placed. {reason}".strip(),
            )
        connection_id, symbol = record.connection_id, record.symbol
    elif connection_id is None:
        raise KlineoError(ErrorCategory.NOT_FOUND, "order not found")
    elif symbol is None:
        raise KlineoError(
            ErrorCategory.INVALID_REQUEST,
            "symbol is required for an order that was not placed through this API",
            field="symbol",
        )
    connection = require_connection(user_id, connection_id)
    creds = connection_credentials(connection)
    client = _futures_client(connection)
    if record is not None and record.kind == KIND_ALGO:
        found = query_algo_order(client, creds, client_order_id)
    else:
        found = query_futures_order(client, creds, symbol, client_order_id)
    if found is None:
        raise KlineoError(
            ErrorCategory.ORDER_NOT_FOUND,
            f"Binance has no order with clientOrderId {client_order_id} for {symbol}.",
        )
    if record is not None and (
        record.status != found.status
        or record.order_id != found.order_id
        or (record.result or {}).get("executed_quantity") != found.to_record()["executed_quantity"]
    ):
        record_order_outcome_quietly(
            user_id, client_order_id, status=found.status, order_id=found.order_id, result=found.to_record()
        )
        if record.status == STATUS_UNKNOWN:
            metrics.add_metric(name="OrdersUnknownSettled", unit="Count", value=1)
    response = futures_order_response(found, connection_id)
    protective = arm_on_read(user_id, record, found, client, creds) if record else None
    return response if protective is None else response.model_copy(update={"protective_orders": protective})
