"""The HTTP front end: raw-bytes request handling, security checks, limits, faults, journal.

Environments share one port. Paths under `/testnet` are the testnet (`/testnet/api/...`,
`/testnet/fapi/...`); plain `/api`, `/sapi`, `/fapi` are production. A key used on the other
environment is unknown there: -2015. `/sapi` does not exist on the testnet (404).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

from . import auth, errors
from .accounts import PRODUCTION, TESTNET, DemoAccount
from .control import handle_control
from .endpoints import NONE, ROUTES, SIGNED, Call, Endpoint, family_of
from .errors import FUTURES, SAPI, ApiError
from .faults import Fault, fault_response
from .journal import JournalRecord
from .state import SimulatorState

__all__ = ["CONTROL_PREFIX", "TESTNET_PREFIX", "SimulatorHTTPServer"]

TESTNET_PREFIX = "/testnet"
CONTROL_PREFIX = "/__sim__/"
_JSON = "application/json;charset=UTF-8"
_REASONS = {status.value: status.phrase for status in HTTPStatus}
_REASONS[418] = "I'm a teapot"


class _Answer:
    """A response ready to send, with what the journal needs."""

    __slots__ = ("body", "code", "content_type", "headers", "status", "weight")

    def __init__(
        self,
        status: int,
        body: bytes,
        content_type: str = _JSON,
        headers: dict | None = None,
        code: int | None = None,
        weight: int = 0,
    ):
        self.status, self.body, self.content_type = status, body, content_type
        self.headers = headers or {}
        self.code, self.weight = code, weight


def _error_answer(error: ApiError, weight: int = 0) -> _Answer:
    return _Answer(
        error.status,
        json.dumps(error.body()).encode(),
        headers=dict(error.headers),
        code=error.code,
        weight=weight,
    )


def _parse_params(raw_query: str, body: bytes) -> dict[str, str]:
    """Parameters from form body and query string; the query string wins."""
    params: dict[str, str] = {}
    if body:
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if raw_query:
        params.update(parse_qsl(raw_query, keep_blank_values=True))
    return params


class SimulatorHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows the simulator state and its connections.

    It binds 127.0.0.1; only ``local.sam_local.emulators``, inside its own container, passes another
    host, so that functions in Lambda containers on the same docker network can reach it.
    """

    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, state: SimulatorState, port: int, host: str = "127.0.0.1"):
        self.state = state
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__((host, port), _Handler)

    def close_connections(self) -> None:
        """Shut every open keep-alive connection (used at stop)."""
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "binance-sim/1.0"
    sys_version = ""

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)

    def log_message(self, format, *args):
        return

    # ----- I/O ---------------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, answer: _Answer) -> None:
        lines = [
            f"HTTP/1.1 {answer.status} {_REASONS.get(answer.status, '')}",
            f"Content-Type: {answer.content_type}",
            f"Content-Length: {len(answer.body)}",
            f"Date: {self.date_time_string()}",
            f"Server: {self.server_version}",
        ]
        lines.extend(f"{name}: {value}" for name, value in answer.headers.items())
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            self.wfile.write(head + answer.body)
        except OSError:
            self.close_connection = True

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def do_GET(self):
        self._handle()

    do_POST = do_DELETE = do_PUT = do_HEAD = do_OPTIONS = do_PATCH = do_GET

    # ----- dispatch ----------------------------------------------------------------------------
    def _handle(self) -> None:
        state: SimulatorState = self.server.state
        raw_path, _, raw_query = self.path.partition("?")
        body = self._read_body()
        method = self.command
        if raw_path.startswith(CONTROL_PREFIX):
            status, document = handle_control(state, method, raw_path, body)
            self._send(_Answer(status, json.dumps(document).encode()))
            return
        env, path = PRODUCTION, raw_path
        if raw_path.startswith(TESTNET_PREFIX + "/"):
            env, path = TESTNET, raw_path[len(TESTNET_PREFIX) :]
        api_key = self.headers.get("X-MBX-APIKEY")
        client_ip = self.client_address[0]
        family = family_of(path) or errors.SPOT
        if state.config.latency_ms > 0:
            time.sleep(state.config.latency_ms / 1000.0)
        fault = state.faults.take(method, path, env, api_key)
        answer = self._run_with_fault(
            state, fault, method, path, env, raw_query, body, api_key, client_ip, family
        )
        # Journal first, so a test reading the journal right after its answer sees the record.
        state.journal.append(
            JournalRecord(
                ts=int(state.server_time_ms()),
                method=method,
                path=path,
                env=env,
                api_key=api_key,
                status=answer.status if answer else 0,
                code=answer.code if answer else None,
                weight=answer.weight if answer else 0,
                fault=fault.kind if fault else None,
            )
        )
        if answer is not None:
            used = state.rate_limiter.used(client_ip, family)
            answer.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
            if family != FUTURES:
                answer.headers["X-MBX-USED-WEIGHT"] = str(used)
            if family == SAPI:
                answer.headers["X-SAPI-USED-IP-WEIGHT-1M"] = str(used)
            if fault is not None and fault.kind == "delay_after":
                time.sleep(fault.delay_ms / 1000.0)
            self._send(answer)

    def _run_with_fault(
        self, state, fault: Fault | None, method, path, env, raw_query, body, api_key, client_ip, family
    ) -> _Answer | None:
        execute = lambda: self._execute(state, method, path, env, raw_query, body, api_key, client_ip)  # noqa: E731
        if fault is None:
            return execute()
        if fault.kind == "drop_connection":
            if fault.executes:
                execute()
            self._drop()
            return None
        if fault.kind == "delay_before":
            time.sleep(fault.delay_ms / 1000.0)
            return execute()
        if fault.kind == "delay_after":
            return execute()  # the delay comes after journaling, just before sending
        if fault.kind == "weight_spent":
            state.rate_limiter.charge(client_ip, family, fault.weight)
            return execute()
        weight = execute().weight if fault.executes else 0
        limit = state.config.futures_weight_limit if family == FUTURES else state.config.spot_weight_limit
        status, headers, payload, content_type = fault_response(
            fault, family, int(state.server_time_ms()), limit, client_ip
        )
        code = json.loads(payload)["code"] if content_type == "application/json" else None
        return _Answer(
            status,
            payload,
            _JSON if content_type == "application/json" else content_type,
            headers,
            code,
            weight,
        )

    def _execute(
        self,
        state: SimulatorState,
        method: str,
        path: str,
        env: str,
        raw_query: str,
        body: bytes,
        api_key: str | None,
        client_ip: str,
    ) -> _Answer:
        family = family_of(path)
        endpoint = ROUTES.get((method, path))
        if family is None or endpoint is None or (endpoint.production_only and env != PRODUCTION):
            return _error_answer(errors.endpoint_not_found(method, path))
        params = _parse_params(raw_query, body)
        weight = 0
        order_headers: dict[str, str] = {}
        try:
            weight = endpoint.weight_for(params)
            state.rate_limiter.charge(client_ip, family, weight)
            now_ms = state.server_time_ms()
            account = None
            if endpoint.security == SIGNED:
                account = self._authenticate(
                    state, endpoint, env, family, raw_query, body, params, api_key, client_ip, now_ms
                )
                if endpoint.counts_order:
                    ten_seconds, minute = state.rate_limiter.count_order(account.api_key)
                    order_headers = {
                        "X-MBX-ORDER-COUNT-10S": str(ten_seconds),
                        "X-MBX-ORDER-COUNT-1M": str(minute),
                    }
            elif endpoint.security != NONE and api_key:
                account = state.accounts_by_key.get(api_key)
            call = Call(method, path, env, family, params, account, now_ms, state)
            result = endpoint.handler(call)
        except ApiError as error:
            answer = _error_answer(error, weight)
            answer.headers.update(order_headers)
            return answer
        return _Answer(
            200, json.dumps(result, separators=(",", ":")).encode(), headers=order_headers, weight=weight
        )

    @staticmethod
    def _authenticate(
        state: SimulatorState,
        endpoint: Endpoint,
        env: str,
        family: str,
        raw_query: str,
        body: bytes,
        params: dict,
        api_key: str | None,
        client_ip: str,
        now_ms: float,
    ) -> DemoAccount:
        """Key, signature, timing, IP and permission checks of a signed call (facts §2)."""
        if not api_key:
            raise errors.api_key_format_invalid()
        account = state.accounts_by_key.get(api_key)
        if account is None or account.environment != env:
            raise errors.invalid_api_key(family, client_ip)
        payload, signature = auth.signed_payload(raw_query.encode("latin-1", "replace"), body)
        if not params.get("timestamp"):
            raise errors.mandatory("timestamp")
        if not signature:
            raise errors.mandatory("signature")
        allow_spot_precision = family != FUTURES
        timestamp = auth.parse_timestamp_ms(params["timestamp"], allow_microseconds=allow_spot_precision)
        recv_window = auth.parse_recv_window(params.get("recvWindow"), allow_decimals=allow_spot_precision)
        if not account.verify(payload, signature):
            raise errors.invalid_signature()
        auth.check_timing(timestamp, recv_window, now_ms)
        permissions = account.permissions
        if not permissions.allows_ip(client_ip) or not permissions.reading:
            raise errors.invalid_api_key(family, client_ip)
        if endpoint.needs_futures and not permissions.futures:
            raise errors.invalid_api_key(family, client_ip)
        return account
