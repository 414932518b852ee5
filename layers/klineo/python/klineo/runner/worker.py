"""The SQS worker: a batch of work messages in, partial batch failures out.

For one batch (up to 10 messages):
1. every strategy comes from its message's snapshot (``klineo.runner.messages``, version 2: the
   dispatcher's index read, no DynamoDB request here); only those that must be read now are read
   in strongly consistent BatchGetItems (100 keys a call): every strategy of a redelivered message
   (SQS ``ApproximateReceiveCount`` > 1: an earlier attempt may have moved it), of a version 1
   message, and any strategy sent without a snapshot (a pending order, or too big); an item that
   cannot be read is logged and fails its own message only, never the batch;
   the gates of every distinct (user, connection) of the batch are read together, strongly
   consistent (``klineo.runner.gates``), once for all its turns;
2. klines are fetched ONCE per (environment, symbol, interval, candle) of the batch, the groups
   in parallel on a small pool, with as many candles as the group's strategies look back (as read in
   step 1; a turn whose strategy was changed since to look back further reads its own candles);
3. every strategy of the batch runs on one thread pool (``klineo.runner.execution``); then each
   message, one Powertools batch record, fails (is redelivered) when any of its strategies asked
   for a retry: retryable exchange errors, an order whose outcome is not settled yet, a candle
   not closed yet, klines unavailable. Strategies already done are not redone on redelivery
   (run record, ``last_close``). A turn is not started with less than ``TURN_MARGIN_MS`` left before
   the invocation's deadline: its message comes again instead, and the worker answers in time (a
   Lambda timeout would redeliver the whole batch, finished messages included, and count a receive
   towards the dead-letter queue for each).
A message that keeps failing lands in the dead-letter queue after maxReceiveCount (3), which
raises the StrategyDeadLetterAlarm; each failed receive logs the message id and why (the last one
saying it goes to the dead-letter queue), so the operator can tell what a dead letter failed on.

Throughput and the Binance budget: per batch the worker sends one klines request per group (weight
1-2) plus one order per strategy whose target changed (0 IP weight; orders count per account),
exchangeInfo once an hour per container, and at most one position read per connection (weight 5,
only for live strategies about to trade or with protective orders: ``klineo.runner.positions``).
The template's ReservedConcurrentExecutions bounds
the containers, and ``STRATEGY_THREADS`` bounds each one's requests in flight, so at most
(reserved concurrency x STRATEGY_THREADS) calls hit Binance at once from this function.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import ValidationError

from klineo.binance import Market, get_client, get_symbol_rules, invocation_ends
from klineo.errors import KlineoError
from klineo.observability import logger, metrics
from klineo.runner.candles import CandleGroup, closed_candles, ends_the_tick
from klineo.runner.execution import StrategyResult, TickContext, run_strategy
from klineo.runner.gates import GateBook
from klineo.runner.messages import StrategyRef, WorkMessage
from klineo.runner.positions import PositionBook
from klineo.store.strategies import Strategy, from_snapshot, get_strategies_consistent
from klineo.strategies import get_strategy_type, parse_parameters
from klineo.strategies.base import SHARED_DECISIONS

__all__ = [
    "CANDLE_THREADS", "MAX_RECEIVE_COUNT", "STRATEGY_THREADS", "TURN_MARGIN_MS", "RetryLater", "handle_batch",
    "invocation_end_ms", "strategy_lookback",
]

# The AWS SDK's default connection pool holds 10 connections; more threads would only queue on it.
STRATEGY_THREADS = 10
CANDLE_THREADS = 8
# Deadline used when no Lambda context is given (local runs): the template's worker Timeout.
DEFAULT_TIMEOUT_MS = 60_000
# A turn is not started with less than this left before the invocation's deadline: a live order's turn
# (claim, send with a 10 s read timeout, order lookups, settle, protective orders) ends well within it,
# so the worker answers before Lambda's timeout would fail the whole batch, done messages included.
TURN_MARGIN_MS = 15_000
NOT_STARTED = "not started before the worker's deadline"
# The queue's maxReceiveCount (template.yaml): the receive after which a failed message is dead-lettered.
MAX_RECEIVE_COUNT = 3
_DEFAULT_LOOKBACK = 2


class RetryLater(Exception):
    """A message some of whose strategies must run again later (SQS redelivers it)."""


def strategy_lookback(strategy: Strategy) -> int:
    """How many closed candles the strategy's type reads (a default when its parameters are invalid)."""
    try:
        return get_strategy_type(strategy.type).lookback(parse_parameters(strategy.type, strategy.parameters))
    except (KeyError, ValidationError):
        return _DEFAULT_LOOKBACK


def _parse(record: Mapping[str, Any]) -> WorkMessage | None:
    try:
        return WorkMessage.model_validate(json.loads(record.get("body") or ""))
    except (ValueError, ValidationError):
        logger.error("unreadable strategy message", extra={"message_id": record.get("messageId")})
        return None


def _receive_count(record: Mapping[str, Any]) -> int:
    """How many times SQS handed this message out, this time included (0 when it does not say)."""
    try:
        return int((record.get("attributes") or {}).get("ApproximateReceiveCount", 1))
    except (TypeError, ValueError):
        return 0


def _redelivered(record: Mapping[str, Any]) -> bool:
    """True when SQS delivered this message before (an earlier attempt may have moved its strategies)."""
    return _receive_count(record) != 1  # unknown (0): read consistently, the safe side


def _from_snapshot(message: WorkMessage, ref: StrategyRef) -> Strategy | None:
    """The strategy the message's snapshot describes; None when it must be read (no or unusable snapshot)."""
    if ref.snapshot is None or "pending" in ref.snapshot:
        return None
    try:
        return from_snapshot(ref.snapshot, user_id=ref.user_id, strategy_id=ref.strategy_id,
                             environment=message.environment, symbol=message.symbol,
                             interval=message.interval)
    except (KeyError, TypeError, ValueError, ArithmeticError):
        logger.warning("unreadable strategy snapshot; reading the strategy", extra={
            "strategy_id": ref.strategy_id})
        return None


Turns = dict[str, list[Strategy | None]]


def _strategies(
    parsed: Mapping[str, WorkMessage | None], redelivered: set[str],
) -> tuple[Turns, int, Counter[str]]:
    """Per message id, its strategies in order: from the snapshots, or read strongly consistent.

    Also returns how many strategies had to be read, and per message id how many of its strategies'
    items could not be read (``_unreadable``): only their own messages come again, never the batch.
    """
    turns: Turns = {}
    to_read: list[tuple[str, str]] = []
    for message_id, message in parsed.items():
        if message is None:
            continue
        fresh = message.v == 2 and message_id not in redelivered
        found = [_from_snapshot(message, ref) if fresh else None for ref in message.strategies]
        to_read.extend((ref.user_id, ref.strategy_id)
                       for ref, strategy in zip(message.strategies, found, strict=True) if strategy is None)
        turns[message_id] = found
    unreadable: set[tuple[str, str]] = set()
    read = get_strategies_consistent(to_read, unreadable=unreadable) if to_read else {}
    for message_id, found in turns.items():
        refs = parsed[message_id].strategies  # type: ignore[union-attr]
        turns[message_id] = [strategy if strategy is not None else read.get((ref.user_id, ref.strategy_id))
                             for ref, strategy in zip(refs, found, strict=True)]
    return turns, len(set(to_read)), _unreadable(parsed, unreadable)


def _unreadable(parsed: Mapping[str, WorkMessage | None], keys: set[tuple[str, str]]) -> Counter[str]:
    """Per message id, how many of its strategies' items are unreadable (each logged, for the operator)."""
    per_message: Counter[str] = Counter()
    for message_id, message in parsed.items():
        for ref in message.strategies if message is not None else []:
            if (ref.user_id, ref.strategy_id) in keys:
                logger.error("unreadable strategy item; its message will come again", extra={
                    "message_id": message_id, "user_id": ref.user_id, "strategy_id": ref.strategy_id})
                per_message[message_id] += 1
    return per_message


def _gates(turns: Turns) -> GateBook:
    """The gates of every distinct (user, connection) of the batch's strategies with a turn (``has_turn``),
    read together."""
    return GateBook.load(dict.fromkeys(
        (strategy.user_id, strategy.connection_id)
        for found in turns.values() for strategy in found if strategy is not None and strategy.has_turn
    ))


def _fetch_groups(
    messages: Mapping[str, WorkMessage], turns: Turns,
) -> dict[tuple[str, str, str, int], CandleGroup | KlineoError]:
    """One klines request per distinct group of the batch (in parallel); each group's answer or its error."""
    counts: dict[tuple[str, str, str, int], int] = {}
    for message_id, message in messages.items():
        need = counts.get(message.group, _DEFAULT_LOOKBACK)
        for strategy in turns.get(message_id, []):
            if strategy is not None and strategy.has_turn:
                need = max(need, strategy_lookback(strategy))
        counts[message.group] = need

    def fetch(item: tuple[tuple[str, str, str, int], int]) -> CandleGroup | KlineoError:
        (environment, symbol, interval, close_time), count = item
        try:
            return closed_candles(environment, symbol, interval, close_time, count)
        except KlineoError as exc:
            return exc

    if not counts:
        return {}
    with ThreadPoolExecutor(max_workers=min(CANDLE_THREADS, len(counts))) as pool:
        return dict(zip(counts, pool.map(fetch, counts.items()), strict=True))


def _run_safely(strategy: Strategy | None, ctx: TickContext) -> StrategyResult:
    if strategy is not None and strategy.has_turn and ctx.now_ms() >= ctx.deadline_ms - TURN_MARGIN_MS:
        return StrategyResult(strategy.strategy_id, "not_run", NOT_STARTED, retry=True)
    try:
        # No POST of the turn is signed after its invocation ends (Lambda stops it): the stops it sends record
        # that as the latest instant their POST can be signed (``klineo.services.protective``).
        with invocation_ends(ctx.deadline_ms / 1000):
            return run_strategy(strategy, ctx)
    except KlineoError as exc:
        logger.warning("strategy turn failed; will retry", extra={
            "strategy_id": strategy.strategy_id if strategy else None, "category": str(exc.category),
        })
        strategy_id = strategy.strategy_id if strategy else ""
        return StrategyResult(strategy_id, "error", str(exc.category), retry=True)
    except Exception:  # noqa: BLE001 - one strategy's bug must not stop the others; logged, retried by SQS
        logger.exception("strategy turn crashed; will retry", extra={
            "strategy_id": strategy.strategy_id if strategy else None,
        })
        return StrategyResult(strategy.strategy_id if strategy else "", "error", "crash", retry=True)


def _contexts(
    parsed: Mapping[str, WorkMessage | None],
    groups: Mapping[tuple[str, str, str, int], CandleGroup | KlineoError],
    deadline_ms: int,
    clock: Callable[[], float],
    books: tuple[PositionBook, GateBook],
) -> dict[str, TickContext | str]:
    """Per message id: the context its strategies run in, or why the whole message must come again."""
    contexts: dict[str, TickContext | str] = {}
    positions, gates = books
    for message_id, message in parsed.items():
        if message is None:
            contexts[message_id] = "unreadable message"
            continue
        answer = groups[message.group]
        if isinstance(answer, KlineoError):
            if not ends_the_tick(answer):
                contexts[message_id] = f"klines unavailable: {answer.category}"
                continue
            contexts[message_id] = TickContext(message=message, group=None, deadline_ms=deadline_ms,
                                               group_error=answer, clock=clock, positions=positions,
                                               gates=gates)
        else:
            contexts[message_id] = TickContext(message=message, group=answer, deadline_ms=deadline_ms,
                                               clock=clock, positions=positions, gates=gates)
    return contexts


def _warm_symbol_rules(messages: list[WorkMessage]) -> None:
    """Fill the exchangeInfo cache once per environment before the threads start (no stampede)."""
    seen: set[str] = set()
    for message in messages:
        if message.environment in seen:
            continue
        seen.add(message.environment)
        try:
            get_symbol_rules(get_client(Market.FUTURES, message.environment), message.symbol)
        except KlineoError:
            continue  # each strategy meets (and records) the error itself


def _why_again(ctx: TickContext | str, retries: int, not_started: int) -> str | None:
    """Why a message must come again (None: it is done)."""
    if isinstance(ctx, str):
        return ctx
    if not retries:
        return None
    return f"{retries} strategies to run again" + (f", {not_started} {NOT_STARTED}" if not_started else "")


def _retries(results: list[tuple[str, StrategyResult]]) -> tuple[Counter[str], Counter[str]]:
    """Per message id: how many of its turns asked to run again, and how many of those never started."""
    retries: Counter[str] = Counter(message_id for message_id, result in results if result.retry)
    not_started: Counter[str] = Counter(
        message_id for message_id, result in results if result.retry and result.detail == NOT_STARTED)
    return retries, not_started


def _record_handler(
    contexts: Mapping[str, TickContext | str], retries: Counter[str], not_started: Counter[str],
) -> Callable[[SQSRecord], None]:
    """Powertools' handler of one record: raise RetryLater for a message to redeliver, after logging why.

    The log line names the message (its id is kept in the dead-letter queue) and says when this receive
    was its last: SQS then moves it to the dead-letter queue (``MAX_RECEIVE_COUNT``).
    """
    def record_handler(record: SQSRecord) -> None:
        why = _why_again(contexts.get(record.message_id, "unknown message"), retries[record.message_id],
                         not_started[record.message_id])
        if why is None:
            return
        receive_count = _receive_count(record.raw_event)
        said = ("strategy message goes to the dead-letter queue" if receive_count >= MAX_RECEIVE_COUNT
                else "strategy message will come again")
        logger.warning(said, extra={"message_id": record.message_id, "reason": why,
                                    "receive_count": receive_count})
        raise RetryLater(why)

    return record_handler


def invocation_end_ms(context: Any, started_s: float, fallback_ms: int) -> int:
    """Epoch ms at which this invocation ends (Lambda stops it), from ``started_s`` (epoch s): the lease of
    the orders its turns claim. No send of the invocation comes later, and another attempt that finds the
    lease over counts its resend wait (recvWindow + ``SETTLE_MARGIN_MS``) from there; a lease ending sooner
    would spend part of that margin on the invocation's last seconds. ``fallback_ms``: the function's
    Timeout, when there is no Lambda context (tests, the local stack)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return int(started_s * 1000) + int(remaining() if remaining is not None else fallback_ms)


def handle_batch(
    event: Mapping[str, Any], context: Any = None, *, clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Entry point for the SQS event: run every message's strategies; report the messages to redeliver.

    Every strategy of every message runs on one thread pool at once; Powertools' batch processor
    then turns each message's outcome into a success or a reported failure. ``clock`` (epoch
    seconds) is the runner's wall clock: leases, stale candles and recvWindow waits read it.
    """
    started = clock()
    deadline_ms = invocation_end_ms(context, started, DEFAULT_TIMEOUT_MS)
    records = list(event.get("Records") or [])
    parsed = {record.get("messageId"): _parse(record) for record in records}
    redelivered = {record.get("messageId") for record in records if _redelivered(record)}
    messages = {message_id: message for message_id, message in parsed.items() if message is not None}
    turns, strategy_reads, unreadable = _strategies(parsed, redelivered)
    gates = _gates(turns)
    groups = _fetch_groups(messages, turns)
    _warm_symbol_rules(list(messages.values()))
    positions = PositionBook()  # one position read per connection for the whole batch
    contexts = _contexts(parsed, groups, deadline_ms, clock, (positions, gates))

    work = [(message_id, ctx, strategy)
            for message_id, ctx in contexts.items() if isinstance(ctx, TickContext)
            for strategy in turns[message_id]]
    # Strategies of one market, type and parameters share their decision (klineo.strategies.base).
    with SHARED_DECISIONS.batch(), ThreadPoolExecutor(max_workers=STRATEGY_THREADS) as pool:
        results = list(pool.map(lambda item: (item[0], _run_safely(item[2], item[1])), work))
    tally: Counter[str] = Counter(result.outcome for _, result in results)
    retries, not_started = _retries(results)
    retries.update(unreadable)
    if unreadable:
        tally["error"] += unreadable.total()

    response = process_partial_response(
        event=dict(event), record_handler=_record_handler(contexts, retries, not_started),
        processor=BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False),
        context=context,
    )
    for outcome, count in tally.items():
        metrics.add_metric(name=f"StrategyRuns_{outcome}", unit="Count", value=count)
    logger.info("strategy batch done", extra={
        "messages": len(records), "klines_groups": len(groups), "outcomes": dict(tally),
        "failed_messages": len(response.get("batchItemFailures", [])),
        "position_reads": positions.reads, "position_weight": positions.weight, "gate_reads": gates.reads,
        "strategy_reads": strategy_reads,
        "elapsed_ms": int((clock() - started) * 1000),
    })
    return response
