"""The gates of one worker batch: each (user, connection) trading context read once, before the turns.

A turn used to read its connection and both kill switches itself (a consistent BatchGetItem of 3
items per strategy per tick). The worker now reads every distinct pair of the batch together
(``klineo.store.connections.load_trading_contexts``: strongly consistent, 100 keys a call) and
the turns take theirs from this book. That is the read the DECISION uses (skip with the gate's
name, pause on a missing connection); a switch turned on after this read is still caught where
money moves, because an order's claim re-checks the gates in its own write. The connection items
read here also fill the order claim's connection cache (``klineo.store.order_claim``), so a
claim in this batch does not read its connection again.

A pair the book was not loaded with (run-now, or a strategy that moved to another connection
since the batch read) is read on first use, once, and then shared like the others.

The book also keeps the keys each connection signs with (``credentials``), looked up once per batch:
every live turn on a connection signs with them, and the keys of one version never change.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from klineo.binance import Credentials
from klineo.store.connections import (
    Connection,
    TradingContext,
    connection_credentials,
    load_trading_contexts,
    require_trading_context,
)
from klineo.store.order_claim import remember_connection

__all__ = ["GateBook"]

_UNREAD = object()  # a pair not read yet (None is a pair read and found absent)


class GateBook:
    """Trading contexts by (user_id, connection_id), shared by every strategy turn of one batch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._contexts: dict[tuple[str, str], TradingContext | None] = {}
        self._credentials: dict[tuple[str, str | None], Credentials] = {}
        self.reads = 0  # BatchGetItem rounds made for this book (for the batch's log line)

    @classmethod
    def load(cls, pairs: Iterable[tuple[str, str]]) -> GateBook:
        """A book holding every pair's context, read together now."""
        book = cls()
        book._read(list(pairs))
        return book

    def _read(self, pairs: list[tuple[str, str]]) -> None:
        if not pairs:
            return
        contexts = load_trading_contexts(pairs, on_connection_item=remember_connection)
        with self._lock:
            self._contexts.update(contexts)
            self.reads += 1

    def trading(self, user_id: str, connection_id: str) -> TradingContext:
        """The pair's context (read now if not loaded yet); NOT_FOUND when its connection does not exist."""
        pair = (user_id, connection_id)
        found = self._contexts.get(pair, _UNREAD)  # one dict read: atomic, entries are never removed
        if found is _UNREAD:
            self._read([pair])
            with self._lock:
                found = self._contexts.get(pair)
        return require_trading_context(found)

    def credentials(self, connection: Connection) -> Credentials:
        """The keys ``connection`` signs with (``connection_credentials``), by its secret and the version its
        item names: looked up on the batch's first use, then shared (a dict read: atomic)."""
        version = (connection.secret_name, connection.credentials_version)
        found = self._credentials.get(version)
        if found is None:
            found = self._credentials[version] = connection_credentials(connection)
        return found
