"""The strategies use cases behind GET/DELETE /strategies[/{id}], its runs, events and run-now.

Creating and changing a strategy (POST, PATCH) live in ``klineo.services.strategy_changes`` and
``klineo.services.strategy_updates``: only those two functions load the connections store and the
request models. A strategy's answer and the ownership check are ``klineo.services.strategy_view``.

Ownership: every read and write is keyed by the caller's user id (the JWT sub), so another user's
strategy or connection is simply absent: 404, never 403. Rules beyond the request models:
- the connection must be one of the caller's; its environment is copied onto the strategy;
- the symbol must be trading on USDT-M futures in that environment (exchangeInfo, as /candles), and take
  MARKET orders, the only ones a strategy sends (``klineo.runner.planning.require_market_orders``: 422
  naming ``symbol``), checked on create and on resuming: a strategy whose symbol stopped taking them
  may still be paused and edited;
- the sizing must be one the symbol's MARKET orders can pass at some price
  (``klineo.runner.planning.sizing_refusal``: 422 naming ``size`` or ``quote_size_usdt`` with the bound),
  checked on create, on a PATCH of the sizing and on resuming (a margin that does not fit today's price
  is not refused: it may fit tomorrow's);
- no strategy is created on a connection being deleted (409 naming ``connection_id``);
- a strategy may become ACTIVE (created active, resumed, or switched to live while active) only when
  it could run on its connection (``klineo.services.strategy_connection``: the connection exists and
  is neither being deleted nor disabled, 409 naming ``connection_id``; live: futures enabled (either
  position mode), 409 naming ``mode``, and its leverage within max_leverage, 422 naming ``leverage``,
  checked again when a live active strategy's leverage changes); a paused one is checked on resume,
  and the runner re-checks before every order anyway;
- ``paper_balance_usdt`` is the paper account's starting capital: a new value restarts the paper ledger
  from it (with a ``paper_reset`` event, in the PATCH's one write), only while the paper position is
  flat (409 naming it while open);
- type, parameters, sizing, mode, status and the trading settings may change; connection, symbol
  and interval may not
  (they define the market the strategy's tracked position lives in: create another strategy);
- a live order it sent whose outcome is not settled yet is settled before it is deleted (a fill of it
  would otherwise reach no books and an entry never get its stops); deleting is refused (409) while a
  worker is sending one right now, and while one cannot be settled now, unless its connection is gone or
  being deleted; its protective orders that a re-pricing replaced but could not cancel, or claimed and never
  recorded, are cancelled first (409 naming one Binance still fails to cancel), the current ones stay. That
  Binance work ends ``DEADLINE_MARGIN_S`` before the invocation does (a 409 then, never the function's
  timeout).
GET /strategies answers every strategy (or ``limit``) after its cursor that fits Lambda's answer
(``klineo.models.paging.fit_page``): a user may have any number of them, some 1.1 KB each at their longest.
Positions are tracked per mode: switching live -> paper leaves the live position open at the
exchange, untouched, until the strategy is switched back to live.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from klineo.binance import Environment, ErrorCategory, Market, call_deadline, get_client
from klineo.binance.endpoints import futures_mark_price
from klineo.errors import KlineoError
from klineo.models.paging import cursor_refused, fit_page
from klineo.models.strategies import PageQuery, StrategyListQuery, StrategyListResponse, StrategyResponse
from klineo.models.strategy_runs import (
    RUNS_SHOWN,
    EventPageResponse,
    EventResponse,
    PnlResponse,
    RunNowResponse,
    RunPageResponse,
    RunResponse,
    StrategyDetailResponse,
)
from klineo.observability import logger
from klineo.services.history_cursor import decode_cursor, encode_cursor
from klineo.services.strategy_view import not_found, owned_strategy, response_fields, valid_id
from klineo.store import events as event_store
from klineo.store import runs as run_store
from klineo.store import strategies as strategy_store
from klineo.store.strategies import Strategy
from klineo.validation import STRATEGY_ID_PATTERN, plain_text, plain_text_or_none

if TYPE_CHECKING:  # the other strategy routes never load the connections store
    from klineo.store.connections import Connection

__all__ = [
    "RUN_NOW_TIMEOUT_MS",
    "delete_user_strategy",
    "get_user_strategy",
    "list_strategy_events",
    "list_strategy_runs",
    "list_user_strategies",
    "owned_strategy",
    "run_strategy_now",
    "strategy_response",
]

_PLACES = Decimal("0.00000001")  # PnL and prices shown to 8 decimals
# A strategy's place in GET /strategies, the order ``list_strategies`` sorts by: ``<created_at>#<id>``.
_LISTED_KEY = re.compile(r"[0-9TZ:.+-]{10,40}#" + STRATEGY_ID_PATTERN.strip("^$"))
# How many strategies' newest runs GET /strategies reads together (``run_store.latest_run_close_times``, a few
# rounds of its RUN_READERS at once): a page its size bound cuts short has read at most this many more.
_RUNS_READ_TOGETHER = 4 * run_store.RUN_READERS


def strategy_response(strategy: Strategy) -> StrategyResponse:
    """The strategy as answered; its newest run costs one Query of one key (a new strategy:
    ``klineo.services.strategy_view.new_strategy_response``)."""
    newest_run = run_store.latest_run_close_time(strategy.strategy_id)
    return StrategyResponse(**response_fields(strategy, newest_run))


def _with_newest_runs(strategies: Sequence[Strategy]) -> Iterator[tuple[Strategy, int | None]]:
    """Each strategy with its newest run's close time, read ``_RUNS_READ_TOGETHER`` at a time as the page
    takes them: once ``fit_page`` stops at its size bound, the strategies after that chunk are never read."""
    for start in range(0, len(strategies), _RUNS_READ_TOGETHER):
        chunk = strategies[start:start + _RUNS_READ_TOGETHER]
        newest = run_store.latest_run_close_times([s.strategy_id for s in chunk])
        yield from ((strategy, newest[strategy.strategy_id]) for strategy in chunk)


def _listed_response(listed: tuple[Strategy, int | None]) -> StrategyResponse:
    """A strategy as GET /strategies answers it, given its newest run's close time (``strategy_response``)."""
    strategy, newest_run = listed
    return StrategyResponse(**response_fields(strategy, newest_run))


def _run_response(run: run_store.Run) -> RunResponse:
    return RunResponse(
        close_time=run.close_time,
        status=run.status,
        mode=run.mode,
        signal=run.signal,
        reason=run.reason,
        indicators=run.indicators,
        position_before=plain_text_or_none(run.position_before),
        target_position=plain_text_or_none(run.target_position),
        order=run.order,
        close_order=run.close_order,
        error=run.error,
        skip_reason=run.skip_reason,
        recorded_at=run.created_at,
        updated_at=run.updated_at,
    )


def list_user_strategies(user_id: str, query: StrategyListQuery | None = None) -> StrategyListResponse:
    """A page of the caller's strategies, oldest first: all of them (at most ``query.limit``) after the
    cursor that the answer's size bound holds (``fit_page``; a user may have any number of strategies).
    No query: the first page without a limit."""
    query = query or StrategyListQuery()
    strategies = strategy_store.list_strategies(user_id)
    if query.cursor is not None:
        after = tuple(decode_cursor(query.cursor, _LISTED_KEY).rsplit("#", 1))
        strategies = [s for s in strategies if (s.created_at, s.strategy_id) > after]
    wanted = strategies[:query.limit] if query.limit is not None else strategies
    # The first always fits: shown == 0 only when empty.
    items, shown = fit_page(_with_newest_runs(wanted), _listed_response)
    if shown == len(strategies):
        return StrategyListResponse(strategies=items)
    last = wanted[shown - 1]
    return StrategyListResponse(strategies=items,
                                next_cursor=encode_cursor(f"{last.created_at}#{last.strategy_id}"))


def _pnl(strategy: Strategy) -> PnlResponse:
    """The strategy's PnL; the mark price (public, weight 1) is read only while a position is open."""
    mark = None
    if strategy.position != 0:
        client = get_client(Market.FUTURES, Environment(strategy.environment))
        try:
            mark = futures_mark_price(client, strategy.symbol)
        except KlineoError:
            mark = None  # the PnL without its open part beats no answer
    # Imported here: only GET /strategies/{id} shows a PnL, and the paper ledger and simulation it
    # loads were about 13 ms of the cold start of the seven other strategy functions.
    from klineo.runner.pnl import strategy_pnl

    values = strategy_pnl(strategy, mark)
    return PnlResponse(**{k: v if v is None or isinstance(v, int) else plain_text(v.quantize(_PLACES))
                          for k, v in values.items()})


def get_user_strategy(user_id: str, strategy_id: str) -> StrategyDetailResponse:
    """One of the caller's strategies with its PnL and latest runs (newest candle first)."""
    strategy = owned_strategy(user_id, strategy_id)
    runs = run_store.list_runs(strategy.strategy_id, limit=RUNS_SHOWN)
    newest_run = runs[0].close_time if runs else None
    return StrategyDetailResponse(**response_fields(strategy, newest_run), pnl=_pnl(strategy),
                                  runs=[_run_response(r) for r in runs])


# The run-now function's Timeout (template.yaml): its invocation's time when no Lambda context is given.
RUN_NOW_TIMEOUT_MS = 28_000
# The delete function's Timeout (template.yaml's Globals, below API Gateway's 29 s): its invocation's time
# when no Lambda context is given.
DELETE_TIMEOUT_MS = 20_000


def run_strategy_now(user_id: str, strategy_id: str, lambda_context: Any = None) -> RunNowResponse:
    """Evaluate one of the caller's active strategies on its latest closed candle, once per candle."""
    strategy = owned_strategy(user_id, strategy_id)
    if not strategy.active:
        raise KlineoError(ErrorCategory.CONFLICT, "the strategy is paused; resume it first", field="status")
    # The runner's execution engine (worker, paper and live execution, candles) loads here, in the
    # run-now function only: the other strategy routes import this module and never run a strategy.
    from klineo.runner.on_demand import run_now
    from klineo.runner.worker import invocation_end_ms

    done = run_now(strategy, invocation_end_ms(lambda_context, time.time(), RUN_NOW_TIMEOUT_MS))
    run = _run_response(done.run) if done.run is not None else None
    outcome = run.status if run is not None else done.result.outcome
    return RunNowResponse(close_time=done.close_time, outcome=outcome, run=run)


def list_strategy_events(user_id: str, strategy_id: str, query: PageQuery) -> EventPageResponse:
    """A page of one of the caller's strategies' events, newest first."""
    strategy = owned_strategy(user_id, strategy_id)
    try:
        page = event_store.list_events(strategy.strategy_id, query.limit, query.cursor)
    except ValueError:
        raise cursor_refused() from None
    events = [EventResponse(kind=e.kind, at=e.at_ms, details=e.details, recorded_at=e.created_at)
              for e in page.events]
    return EventPageResponse(events=events, next_cursor=page.next_cursor)


def list_strategy_runs(user_id: str, strategy_id: str, query: PageQuery) -> RunPageResponse:
    """A page of one of the caller's strategies' runs, newest candle first."""
    strategy = owned_strategy(user_id, strategy_id)
    try:
        runs, next_cursor = run_store.list_runs_page(strategy.strategy_id, query.limit, query.cursor)
    except ValueError:
        raise cursor_refused() from None
    return RunPageResponse(runs=[_run_response(r) for r in runs], next_cursor=next_cursor)


def delete_user_strategy(user_id: str, strategy_id: str, lambda_context: Any = None) -> None:
    """Delete one of the caller's strategies (its runs expire by TTL; positions stay at the exchange).

    A live order it sent whose outcome is not settled yet is settled first (``_settle_first``): deleted
    unsettled, a fill of it would reach no books and an entry would never get its stops. One that cannot be
    settled now leaves the delete refused (409 naming the order). Not when its connection is gone or being
    deleted: nothing can settle it then, and the connection's delete winds its orders down
    (``klineo.services.connection_delete``).
    Protective orders a re-pricing replaced but could not cancel, or claimed and never recorded, are cancelled
    first (``_cancel_superseded``: one still armed leaves the delete refused).
    That Binance work ends by ``_work_deadline``, before the invocation does: a settle Binance answers too
    slowly is a 409 naming the order, never the function's timeout (API Gateway's error in its place)."""
    if not valid_id(strategy_id):
        raise not_found()
    strategy = strategy_store.get_strategy(user_id, strategy_id, consistent=True)
    if strategy is None:
        raise not_found()
    # The connection is read once, only for a strategy with something left to settle or cancel.
    connection = _open_connection(user_id, strategy.connection_id) if _holds_work(strategy) else None
    going = strategy.pending is not None and connection is None
    if connection is not None:
        strategy = _wind_down(strategy, connection, lambda_context)
    # Only while it is as last read: a turn's write between (a stop re-priced, one replaced left to cancel)
    # refuses it (409, send it again), never a delete that leaves that order armed.
    strategy_store.delete_strategy(user_id, strategy_id, unsettled_ok=going, seen=strategy.updated_at)


def _work_deadline(lambda_context: Any) -> float:
    """The instant (epoch s) the delete's Binance calls end by (``call_deadline``): the order routes' own
    deadline (``Deadline.of_invocation``: the invocation's end less ``DEADLINE_MARGIN_S``, which leaves the
    records of a settle, the read after it and the delete's own write, then the answer, time to be made), and
    without a Lambda context the function's Timeout less that margin."""
    from klineo.services.orders import DEADLINE_MARGIN_S, Deadline

    without_context = time.time() + DELETE_TIMEOUT_MS / 1000 - DEADLINE_MARGIN_S
    return min(Deadline.of_invocation(lambda_context).at, without_context)


def _wind_down(strategy: Strategy, connection: Connection, lambda_context: Any) -> Strategy:
    """Settle the strategy's order in flight, then cancel the protective orders a re-pricing replaced, every
    Binance call of both within ``_work_deadline``; the strategy as read after the settle."""
    deadline = _work_deadline(lambda_context)
    with call_deadline(deadline):
        if strategy.pending is not None:
            _settle_first(strategy, int(deadline * 1000))
            strategy = strategy_store.get_strategy(strategy.user_id, strategy.strategy_id,
                                                   consistent=True) or strategy
        _cancel_superseded(strategy, connection)
    return strategy


def _holds_work(strategy: Strategy) -> bool:
    """A live order in flight to settle, or protective orders to cancel (replaced, or claimed by an unfinished
    re-pricing), before a delete."""
    record = strategy.protective or {}
    return strategy.pending is not None or bool(record.get("superseded")) or bool(record.get("repricing"))


def _cancel_superseded(strategy: Strategy, connection: Connection) -> None:
    """Cancel the live position's protective orders a re-pricing (or a flip) replaced but could not cancel
    (its record's ``superseded``, cancelled on the strategy's next turns: none once it is deleted, and the
    reconciler cancels stops only of a side that reads flat), and those an unfinished re-pricing claimed
    (``repricing``: placed, or being placed, never recorded; ``klineo.runner.reprice.unrecorded_ids``): left
    armed, an old or unrecorded stop-loss / take-profit would fire beside the current ones. Each is sent once
    (``protective_orders_left`` skips one its record says is final, or Binance no longer knows or never took;
    a re-pricing still placing one cancels it itself, finding the strategy gone); the current ones stay. One
    still open (Binance failing the cancel, a key that cannot cancel) refuses the delete (409 naming it):
    deleted, nobody would ever cancel it; the refusal lasts only while Binance fails (or until the connection
    is deleted). Not when the connection is gone or being deleted: its keys go with it, nothing can cancel it
    then."""
    record = strategy.protective or {}
    if not record.get("superseded") and not record.get("repricing"):
        return
    # Loaded here only, for a strategy that holds such orders.
    from klineo.runner.reprice import named_ids, unrecorded_ids
    from klineo.services.strategy_protection import protective_orders_left

    current = set(named_ids(record).values())
    ids = [str(i) for i in [*(record.get("superseded") or []), *unrecorded_ids(record)]]
    ids = list(dict.fromkeys(i for i in ids if i not in current))
    if not ids:
        return
    left = protective_orders_left(connection, ids)
    if left:
        raise KlineoError(
            ErrorCategory.CONFLICT,
            f"the strategy's replaced or unrecorded protective order {', '.join(left)} is still armed on "
            "Binance and could not be cancelled now (Binance not answering, or the connection's key "
            "refused); it would fire beside the current stops: send the DELETE again")


def _settle_first(strategy: Strategy, deadline_ms: int) -> None:
    """Settle the strategy's live order in flight now, as a paused strategy's is (looked up by clientOrderId,
    settled as Binance did it, an entry's stops placed, never sent again: ``klineo.runner.on_demand``'s
    ``settle_now``, its lease and its calls ending at ``deadline_ms``); a worker sending it right now, Binance
    not answering by then or the connection disabled leave it pending, and the delete refused naming it.
    Binance refusing the connection's key on its lookup refuses the delete at once, saying so
    (``_key_refused``), the strategy left as it was: a refused delete pauses nothing (its next turn meets the
    same refusal)."""
    # The runner's execution engine loads here only, for a strategy holding an order in flight.
    from klineo.runner.on_demand import settle_now
    from klineo.services.key_health import KEY_FAILURE_CATEGORIES

    try:
        done = settle_now(strategy, deadline_ms)
    except KlineoError as exc:
        logger.warning("order in flight not settled before a delete", extra={
            "strategy_id": strategy.strategy_id, "error_category": str(exc.category)})
        if exc.category in KEY_FAILURE_CATEGORIES or exc.category is ErrorCategory.NOT_FOUND:
            raise _key_refused(strategy, exc) from None
        return
    logger.info("order in flight settled before a delete", extra={
        "strategy_id": strategy.strategy_id, "outcome": done.outcome, "detail": done.detail})


def _key_refused(strategy: Strategy, exc: KlineoError) -> KlineoError:
    """The CONFLICT of a delete whose order in flight could not be looked up with the connection's key:
    Binance refused it (``exc``: permission, signature, ip_whitelist), or it could not be read."""
    pending = strategy.pending
    assert pending is not None
    why = ("the connection's API key could not be read" if exc.category is ErrorCategory.NOT_FOUND
           else f"Binance refused the connection's API key ({exc.category})")
    return KlineoError(
        ErrorCategory.CONFLICT,
        f"the strategy's live order {pending.client_order_id} is in flight and could not be looked up: "
        f"{why}; nothing was changed. Fix the key (PUT /exchange-connections/{{id}}/credentials) and send "
        "the DELETE again, or delete the connection, whose wind-down handles its orders")


def _open_connection(user_id: str, connection_id: str) -> Connection | None:
    """The connection, None when it is gone or being deleted (``deleting_since``): its keys go with it, so
    nothing can settle or cancel with them then."""
    # Loaded here only: the other strategy routes never read a connection.
    from klineo.store.connections import get_connection

    connection = get_connection(user_id, connection_id, consistent=True)
    return None if connection is None or connection.deleting_since is not None else connection
