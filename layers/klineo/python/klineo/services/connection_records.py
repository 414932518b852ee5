"""Stored exchange connections: create (test, then store), list, and the answer every connection route
shares (``connection_response``).

Apart from the spot test (``klineo.services.connections``) so that testing a stored connection
loads neither these models nor the secret writes (issue 16 item 3, cold start).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from klineo.models.common import ConnectionListResponse, ConnectionResponse
from klineo.models.connection_test import ConnectionTestResponse
from klineo.observability import logger, metrics
from klineo.services.connections import credentials_of, failed_test_error, now_iso, run_spot_test
from klineo.store import connections as connection_store
from klineo.store import secrets as secret_store
from klineo.store.connections import Connection

if TYPE_CHECKING:
    from klineo.models.common import ConnectionCreateRequest

__all__ = ["connection_response", "create_connection", "list_user_connections"]


def connection_response(connection: Connection) -> ConnectionResponse:
    """A stored connection as the API shows it: every setting, the key masked, never the secret."""
    return ConnectionResponse(
        id=connection.connection_id, label=connection.label, environment=connection.environment,
        key_type=connection.key_type, api_key_masked=connection.api_key_masked,
        futures_enabled=connection.futures_enabled, created_at=connection.created_at,
        last_test=ConnectionTestResponse.model_validate(connection.last_test) if connection.last_test
        else None,
        futures_last_test=connection.futures_last_test,
        **connection.model_dump(include={
            "kill_switch", "max_leverage", "position_mode", "margin_type", "leverage",
            "consecutive_failures", "disabled_at", "disabled_reason", "deleting_since"}),
        max_notional_usdt=format(connection.max_notional_usdt, "f"),
    )


def create_connection(user_id: str, request: ConnectionCreateRequest) -> ConnectionResponse:
    """Test the keys, then store the connection item (with the account's uid the test read) and its keys
    (one secret); a failure removes both."""
    creds = credentials_of(request)
    tested = run_spot_test(creds, request.environment)
    result = tested.result
    if not result.ok:  # answered as the test route answers it (a key of the other environment: where it is)
        raise failed_test_error(result)
    connection_id = connection_store.new_connection_id()
    name = secret_store.secret_name(user_id, connection_id)
    connection = Connection(
        user_id=user_id, connection_id=connection_id, label=request.label, environment=request.environment,
        key_type=request.key_type, api_key_masked=creds.api_key_masked, secret_name=name,
        futures_enabled=False, created_at=now_iso(), last_test=result.model_dump(mode="json"),
        credentials_version=str(uuid.uuid4()), binance_uid=tested.uid,
    )
    # The item first: it is the only reference to the secret, so however this request ends (even by
    # the function's timeout between the two writes) no stored key is left that nobody can see. The
    # worst left behind is a listed connection whose keys are missing, which says so when used.
    connection_store.put_connection(connection)
    try:
        secret_store.put_credentials(user_id, connection_id, creds, connection.credentials_version)
    except Exception:
        logger.exception("connection's keys not stored; removing the connection")
        _undo(connection)
        raise
    metrics.add_metric(name="ConnectionCreated", unit="Count", value=1)
    logger.info("connection created", extra={"connection_id": connection_id,
                                             "environment": request.environment})
    return connection_response(connection)


def _undo(connection: Connection) -> None:
    """Remove a connection whose secret could not be stored: the secret first (the name holds a fresh
    random id, so a secret under it can only be this request's, even when CreateSecret failed after a
    retried, in fact successful, first attempt), then the item unless the secret stayed."""
    if secret_store.discard_credentials(connection.secret_name):
        connection_store.delete_connection(connection.user_id, connection.connection_id)


def list_user_connections(user_id: str) -> ConnectionListResponse:
    """The caller's connections, API keys masked."""
    connections = connection_store.list_connections(user_id)
    return ConnectionListResponse(connections=[connection_response(c) for c in connections])
