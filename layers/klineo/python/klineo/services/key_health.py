"""Keys that keep failing: count them per connection, switch the connection off, switch it on again.

A key failure is Binance refusing the key itself (permission, signature, ip_whitelist) on a call the
key must be able to make: orders and cancels, the runner's calls, the spot balance read, the futures
reads (``note_key_outcome``, ``note_futures_outcome``). A failure counts only while the connection still
names the key version the call signed with (``klineo.store.connections.add_key_failure``): a call in
flight when the key was replaced (the old key revoked on Binance, as a leaked key is) is refused, and
that refusal is the old key's, never counted against the new one. So with the rest of the key's health:
a success of the old key in flight resets nothing of the new key's count (``reset_key_failures``), and
the disable after a third failure is written only while the connection still names the key that failed
(``disable_connection``): a key replaced since that count leaves the connection on, its strategies
running.

Which call disproves which refusal. Every caller says what its call was (``KeyCall``): ``TRADE``, a call
that trades (an order, a cancel, a stop, a margin type or leverage change), or ``READ``, one that only reads
(balances, positions, order status, open orders, fills, a test). The connection counts every key failure
in a row (``consecutive_failures``, what the API shows), and of them the permission refusals of a
``TRADE`` (``trading_refusals``; 0 on an item without it): a key whose trading right was removed on Binance
still reads, and only a call that traded proves it trades again. So:

- a refusal of a ``TRADE`` for permission adds 1 to both; any other key failure (a read's, or a signature
  or IP refusal of any call, which any call of the same key version that Binance answered disproves) adds
  1 to ``consecutive_failures`` alone;
- any other answer from Binance to a ``READ`` (success, or a refusal that is not the key's) proves the
  signature, the IP and the right to read: the count drops back to the trading refusals it holds
  (``reset_key_failures(traded=False)``, one atomic SET from the item's own ``trading_refusals``);
- any other answer from Binance to a ``TRADE`` proves the key trades: both counts are 0 again.

Each clears only when the connection's item as the caller read it holds something that answer clears
(``_left_to_clear``), so the usual path writes nothing: a hold turn whose position read worked stays one
request unless its batch's connection item holds a count a read disproves (``klineo.runner.positions``),
and a reconciler run clears once a run and kind of call (``KeyCount.worked``). A container's cached
copy of the connection item is dropped after each count write (``_counted``), so the next order there
clears what is stored, not a copy from before. A key that reads but cannot trade is therefore disabled on
its third refused trading call however many reads worked in between.

After ``KEY_FAILURE_LIMIT`` in a row the
connection is disabled with its reason and time, and its active strategies are paused (reason
``connection_disabled:<category>``) in the same step. ``POST /exchange-connections/{id}/enable``
(klineo.services.connections) clears that state and resumes exactly those strategies, the ones
a resume by the user would be allowed now (``resume_connection_strategies``), each only while it is as the
enable read it (one the user deleted,
paused or edited meanwhile is left as it is: skipped, never an error of the enable).

Events: the disable writes a ``paused`` event (reason ``connection_disabled:<category>``, what to do) for
each strategy it pauses, the enable a ``resumed`` one (``by`` ``connection_enable``) for each it resumes,
and a connection's delete a ``paused`` one (reason ``connection_deleted``) for each it pauses, each in the
TransactWriteItems of that strategy's pause or resume (``_event_puts``), as the user's PATCH writes its own:
a crash or timeout between the two can no longer leave a strategy paused with no event saying why. The
enable appends a ``still_paused`` one (the refusal's field and message) for each it leaves paused, after
its resumes (``_append_events``: no write of that strategy to join). The disable runs in whichever call
met the third key failure: each function that counts key failures may put items on the data table for it
(template.yaml). The runner writes the ``paused`` event of a strategy the disable missed in its own turn
(``klineo.runner.execution``).

A pause is one conditional write per strategy, of an active one only (one the user paused or deleted
meanwhile keeps its state and reason); pauses and resumes go several at once
(``klineo.store.aws.concurrently``), so a connection with thousands of strategies is done within its
call's 20 s. When storage fails it half way (a throttled UpdateItem), the connection is disabled and
some strategies are left active; later key failures change nothing on a disabled connection, so the
runner completes it: a turn whose gate finds the connection disabled pauses its strategy with the
connection's ``disabled_reason``, in the write of its skipped run (``klineo.runner.execution``), which
costs an enabled connection's turn nothing. Every active strategy has a turn on its next candle, so each
is paused once, with the reason the enable resumes. The call whose key failure disabled the connection
answers its own outcome all the same (below).

What does not count. The tests the user asks for (spot test, futures test) never count a failure
(``note_key_answer``): they are questions, and "this key cannot trade futures" is an expected answer
(spot-only users are welcome, audit section 10); counting it disabled a working spot connection
after three clicks on "test futures". The futures calls of a connection whose futures are not
enabled (futures enable itself, positions and open orders) do not count a permission refusal: it
means the key lacks the Futures right, which nothing needs yet (``note_futures_outcome``); a
signature or IP refusal there is the key's own and counts.

A connection deleted while one of its calls was in flight has no key health left to count: the
call's own outcome is still recorded and answered (e.g. an order Binance refused: 403, its record
REJECTED), never replaced by the count's "connection not found". Nor by a storage error while counting
(a throttled UpdateItem, DynamoDB unreachable): ``note_key_outcome`` and ``note_key_answer`` log it and
the call goes on, whoever calls them. The count is bookkeeping: in the call's place, a cancel Binance
carried out was answered a retryable 503 and its retry met an order no longer open, and an order Binance
refused was left PENDING.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from klineo.errors import ErrorCategory, KlineoError
from klineo.observability import logger
from klineo.store import connections as connection_store
from klineo.store.aws import STORAGE_ERRORS
from klineo.store.connections import Connection

if TYPE_CHECKING:
    from klineo.store.strategies import Strategy

__all__ = [
    "DISABLED_PREFIX",
    "KEY_FAILURE_CATEGORIES",
    "KEY_FAILURE_LIMIT",
    "READ",
    "TRADE",
    "KeyCall",
    "KeyCount",
    "is_key_failure",
    "note_futures_outcome",
    "note_key_answer",
    "note_key_outcome",
    "pause_connection_strategies",
    "resume_connection_strategies",
]

KEY_FAILURE_LIMIT = 3
KEY_FAILURE_CATEGORIES = frozenset(
    {ErrorCategory.PERMISSION, ErrorCategory.IP_WHITELIST, ErrorCategory.SIGNATURE}
)
DISABLED_PREFIX = "connection_disabled"
T = TypeVar("T")
# What a call of the key was (module docstring, "Which call disproves which refusal"): one that trades
# (an order, a cancel, a stop, a margin type or leverage change) or one that only reads.
KeyCall = Literal["read", "trade"]
READ: KeyCall = "read"
TRADE: KeyCall = "trade"
_Note = Callable[[Connection, "KlineoError | None", KeyCall], None]
_Event = tuple[str, str, dict[str, str]]  # (strategy id, kind, details)


def is_key_failure(error: KlineoError | None) -> bool:
    """True when Binance refused the key itself."""
    return error is not None and error.category in KEY_FAILURE_CATEGORIES


def pause_connection_strategies(user_id: str, connection_id: str, reason: str,
                                message: str | None = None) -> list[str]:
    """Pause every active strategy of the connection (off the active index), several writes in flight at
    once (``pause_strategies``); returns the ids of those it paused, oldest first. ``message``: each one's
    ``paused`` event says it, in the pause's own write (``_event_puts``; None: no event)."""
    # Imported here: only a disabled connection reaches the strategies, and every futures and
    # connection route imports this module for note_key_outcome.
    from klineo.store import strategies as strategy_store

    active = [strategy.strategy_id for strategy in strategy_store.list_strategies(user_id)
              if strategy.connection_id == connection_id and strategy.active]
    events = (None if message is None
              else _event_puts(user_id, _each(active, "paused", {"reason": reason, "message": message})))
    paused = strategy_store.pause_strategies(user_id, active, reason, events)
    return [strategy_id for strategy_id, done in zip(active, paused, strict=True) if done]


def resume_connection_strategies(connection: Connection) -> tuple[list[str], list[tuple[str, KlineoError]]]:
    """Resume the strategies a disabled connection paused (not those the user paused) that may be active
    now, by the rule a resume by the user is asked (``klineo.services.strategy_updates.require_may_activate``:
    e.g. not a live one whose leverage is above a max_leverage lowered meanwhile, nor one whose symbol
    stopped taking MARKET orders); returns (the ids resumed, (id, refusal) of those left paused), oldest
    first. One left paused keeps its reason: the next enable, or the user's resume, asks again. Each resumed
    gets its ``resumed`` event, each left paused a ``still_paused`` one with its refusal's field and message.

    Each resume is one write, only while the strategy is as listed (paused for the disable, its settings as
    checked): one the user deleted, paused or edited meanwhile is left as it is, theirs to resume. Several
    writes are in flight at once (``resume_strategies_unchanged``): thousands fit the enable's time. A
    refusal that may pass on a retry (Binance's exchangeInfo unreachable) is raised, not a refusal."""
    from klineo.store import strategies as strategy_store

    runnable: list[Strategy] = []
    refused: list[tuple[Strategy, KlineoError]] = []
    for strategy in strategy_store.list_strategies(connection.user_id):
        if (strategy.connection_id != connection.connection_id or strategy.active
                or not (strategy.status_reason or "").startswith(DISABLED_PREFIX)):
            continue
        refusal = _activation_refusal(connection, strategy)
        if refusal is None:
            runnable.append(strategy)
        else:
            refused.append((strategy, refusal))
    enable = f"POST /exchange-connections/{connection.connection_id}/enable"
    events = _event_puts(connection.user_id, _each([s.strategy_id for s in runnable], "resumed", {
        "by": "connection_enable", "message": f"Resumed: its connection was enabled again ({enable})."}))
    resumed = strategy_store.resume_strategies_unchanged(connection.user_id, runnable, events)
    done = [strategy.strategy_id for strategy, done in zip(runnable, resumed, strict=True) if done]
    _append_events(connection.user_id, [(strategy.strategy_id, "still_paused", _still_paused(strategy, why))
                                        for strategy, why in refused])
    return done, [(strategy.strategy_id, refusal) for strategy, refusal in refused]


def _still_paused(strategy: Strategy, refusal: KlineoError) -> dict[str, str]:
    """The details of the ``still_paused`` event of a strategy the enable left paused: its reason kept, and
    the field and message its resume is refused with (as the enable's ``still_paused`` lists them)."""
    details = {"by": "connection_enable", "reason": strategy.status_reason or DISABLED_PREFIX}
    return {**details, **({"field": refusal.field} if refusal.field else {}), "message": refusal.message}


def _each(strategy_ids: list[str], kind: str, details: dict[str, str]) -> list[_Event]:
    """The same ``kind`` event, ``details``, of each strategy."""
    return [(sid, kind, details) for sid in strategy_ids]


def _event_puts(user_id: str, events: list[_Event]) -> list[dict[str, Any]]:
    """The Put of each (strategy id, kind, details) event, for the TransactWriteItems of the pause or resume
    it tells of (``klineo.store.events.event_put``): the event lands exactly when that write does."""
    from klineo.store import events as event_store

    now_ms, when = int(time.time() * 1000), event_store.write_time()
    return [event_store.event_put(event_store.StrategyEvent(sid, user_id, kind, now_ms, details), when)
            for sid, kind, details in events]


def _append_events(user_id: str, events: list[_Event]) -> None:
    """Each (strategy id, kind, details) event of strategies the enable left paused (no write of theirs to
    join). Bookkeeping: a storage error is logged, never raised, so the enable made stands and answers."""
    from klineo.store import events as event_store

    now_ms = int(time.time() * 1000)
    try:
        event_store.append_events([event_store.StrategyEvent(sid, user_id, kind, now_ms, details)
                                   for sid, kind, details in events])
    except STORAGE_ERRORS:
        logger.exception("strategy events not written",
                         extra={"kinds": sorted({kind for _, kind, _ in events}), "strategies": len(events)})


def _disabled_message(connection_id: str, category: ErrorCategory) -> str:
    """What the ``paused`` event of each strategy the disable paused tells the trader."""
    enable = f"POST /exchange-connections/{connection_id}/enable"
    return (f"Paused: its connection was disabled after {KEY_FAILURE_LIMIT} key failures in a row "
            f"({category}); fix the key, then enable the connection ({enable}).")


def _activation_refusal(connection: Connection, strategy: Strategy) -> KlineoError | None:
    """Why the strategy may not be active on the connection now (None: it may); a retryable failure of
    the check is raised."""
    from klineo.services.strategy_updates import require_may_activate
    from klineo.store.strategies import ACTIVE

    try:
        require_may_activate(connection.user_id, strategy, {"status": ACTIVE}, connection=connection)
    except KlineoError as exc:
        if exc.retryable:
            raise
        return exc
    return None


def _unless_gone(write: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """``write(*args, **kwargs)`` on the connection's item; None when the connection was deleted meanwhile (a
    call that raced its DELETE): its key health no longer matters, and the call's own outcome must still be
    recorded and answered, not a 404 in its place."""
    try:
        return write(*args, **kwargs)
    except KlineoError as exc:
        if exc.category is not ErrorCategory.NOT_FOUND:
            raise
        return None


def _never_failing_the_call(note: _Note) -> _Note:
    """``note`` with a storage error logged instead of raised (module docstring): the call's own outcome
    is recorded and answered whatever the count did."""

    @functools.wraps(note)
    def guarded(connection: Connection, error: KlineoError | None, call: KeyCall) -> None:
        try:
            note(connection, error, call)
        except STORAGE_ERRORS:
            logger.exception("key outcome not counted", extra={"connection_id": connection.connection_id})

    return guarded


def _proves_key_works(error: KlineoError | None) -> bool:
    """True for success, or any answer from Binance that is not a refusal of the key itself."""
    return not is_key_failure(error) and (error is None or error.status is not None)


def _trading_refusal(error: KlineoError, call: KeyCall) -> bool:
    """True for a refusal only a call that trades disproves: a permission refusal of one (module
    docstring)."""
    return call == TRADE and error.category is ErrorCategory.PERMISSION


def _left_to_clear(connection: Connection, call: KeyCall) -> bool:
    """True when a ``call`` that worked disproves some of the count the connection's item holds (as read:
    no write at all when it holds nothing such a call clears, e.g. a hold's read of a healthy key)."""
    if call == TRADE:
        return bool(connection.consecutive_failures or connection.trading_refusals)
    return connection.consecutive_failures > connection.trading_refusals


def _count_cleared(connection: Connection, call: KeyCall) -> None:
    """A ``call`` of the key worked: clear what it disproves, only while the connection names the key that
    worked (a replaced key's success is not the new's)."""
    if _left_to_clear(connection, call):
        _unless_gone(connection_store.reset_key_failures, connection.user_id, connection.connection_id,
                     connection.credentials_version, traded=call == TRADE)
        _counted(connection)


def _counted(connection: Connection) -> None:
    """The connection's counts were just written: this container's cached copy of its item (the order
    routes', ``klineo.store.order_claim.cached_connection_item``) says the old ones, so its next call
    reads the item again and clears (or counts on) what is stored, not a count of before the write."""
    # Loaded here: only a count written reaches this line, and the read routes load no order path.
    from klineo.store.order_claim import forget_connection

    forget_connection(connection.user_id, connection.connection_id)


@_never_failing_the_call
def note_key_answer(connection: Connection, error: KlineoError | None, call: KeyCall) -> None:
    """Clear what an answer proving the key works disproves; a key failure here counts nothing.

    For calls the key need not be able to make, the tests (module docstring): reads. Costs nothing on the
    usual path: a connection with nothing to clear writes nothing.
    """
    if _proves_key_works(error):
        _count_cleared(connection, call)


def note_futures_outcome(connection: Connection, error: KlineoError | None, call: KeyCall) -> None:
    """A futures call: as ``note_key_outcome``, except a permission refusal while the connection's futures
    are not enabled (the key lacks the Futures right, which nothing needs yet), which counts nothing."""
    if error is not None and error.category is ErrorCategory.PERMISSION and not connection.futures_enabled:
        return
    note_key_outcome(connection, error, call)


@_never_failing_the_call
def note_key_outcome(connection: Connection, error: KlineoError | None, call: KeyCall) -> None:
    """Count a key failure (``error``) of a ``call`` (READ or TRADE), or clear what an answer proving the key
    works disproves (module docstring, "Which call disproves which refusal").

    For calls the key must be able to make (module docstring); costs nothing on the usual path.
    """
    if not is_key_failure(error):
        note_key_answer(connection, error, call)
        return
    assert error is not None
    user_id, connection_id = connection.user_id, connection.connection_id
    # Counted only while the connection still signs with the key that failed (a replaced key's does not).
    count = _unless_gone(connection_store.add_key_failure, user_id, connection_id,
                         connection.credentials_version, trading=_trading_refusal(error, call))
    _counted(connection)
    if count is None or count < KEY_FAILURE_LIMIT or connection.disabled:
        return
    reason = f"{DISABLED_PREFIX}:{error.category}"
    # Only while the connection still names the key that failed: one replaced since its count stays on.
    if _unless_gone(connection_store.disable_connection, user_id, connection_id, reason,
                    connection.credentials_version) is None:
        return
    try:
        paused = pause_connection_strategies(user_id, connection_id, reason,
                                             _disabled_message(connection_id, error.category))
    except (*STORAGE_ERRORS, KlineoError):  # a busy transaction too; the runner pauses those left active
        logger.exception("connection disabled; pausing its strategies failed, their next runs pause them",
                         extra={"connection_id": connection_id, "category": str(error.category)})
        return
    logger.warning(
        "connection disabled: its key keeps failing",
        extra={
            "connection_id": connection_id,
            "category": str(error.category),
            "paused_strategies": len(paused),
        },
    )


@dataclasses.dataclass
class KeyCount:
    """What one scope counts on its connection's key health: a reconciler run (its reads, its cancels and the
    stops it arms, ``klineo.services.reconcile``) or one arming of protective orders of a caller with no
    scope of its own (``klineo.services.protective``). Its first refusal of the key is counted (``note``), the
    rest of the scope's are not: however many of its calls Binance refuses for the key, and however many
    armings the scope goes through, the scope counts one key failure. The arming is handed its caller's
    count, never a second one of its own."""

    connection: Connection
    note: _Note = note_key_outcome
    counted: bool = False
    cleared: set[KeyCall] = dataclasses.field(default_factory=set)

    def refused(self, error: KlineoError, call: KeyCall) -> None:
        """Count ``error`` of a ``call`` when it refuses the key, unless this scope counted one already."""
        if is_key_failure(error) and not self.counted:
            self.counted = True
            self.note(self.connection, error, call)

    def worked(self, call: KeyCall) -> None:
        """A ``call`` of the key worked: clear what it disproves, once for the scope and kind of call, and
        not after the scope counted a refusal (its count stands until a later scope's call works)."""
        if not self.counted and call not in self.cleared:
            self.cleared.add(call)
            self.note(self.connection, None, call)
