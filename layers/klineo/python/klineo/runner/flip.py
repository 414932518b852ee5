"""Hedge-mode flips: the old side's close, then the new side's entry, one strategy turn's two orders.

In hedge mode (``klineo.runner.planning.order_legs``) a flip is two orders, the old side's close then the
new side's entry (one order would open the new side beside the old one), each exactly once. The turn
(``klineo.runner.execution``) gates both, claims and sends the close as any order; this module takes over
when the close settles (``hand_over``). Loaded only then: a worker that never settles a hedge flip's close
never imports it.

- Each has its own clientOrderId derived from (strategy, candle, leg) (``client_order_id``): the close
  the candle's own, the entry ``kf...``. Both pass the risk gate before the close is claimed (the close as
  closing, the entry as new exposure: a limit refusing the entry sends the close alone, as a one-way
  flip does); the close is claimed as any order, carrying the entry's side, size and id (``NEXT_LEG``).
  An entry the gate refuses (a limit, or at the hand-over) is a refused order attempt under its own id, put
  in the write that claims or settles its close, or in the candle's run when the close is not claimed (a
  gate or a failure before the claim: ``entry_refusal``, ``take_attempts``); never by a turn that answers
  nothing (another one holds or ran the candle), and once: every such write is the candle's only one.
- The close's settle is the entry's claim: ONE transaction (``hand_over_live_order``) puts the close's
  fill on the position, moves ``pending`` to the entry and writes the entry's PENDING record, with the
  gates' ConditionChecks; the entry is sent after it commits. No run is written yet: the entry's settle
  writes the candle's one run (from the position before the close, ``close_order`` = the close, ``order``
  = the entry), so a crash anywhere leaves one pending order, resumed by the turn's pending-order
  settlement (looked up by its own clientOrderId, sent only when proven never to have reached Binance, and
  never on a stale candle). A redelivered message finds the candle held, or done.
- The entry is not opened (the run is then the close's alone, its ``error`` and an event saying why) when
  the close did not fill completely, when the close settles after the next candle closed, when the gate
  refuses the entry at the hand-over (a kill switch turned on meanwhile, a connection being deleted:
  ``risk_block``), when the connection or the strategy's active status is gone meanwhile, or when Binance
  refuses the entry or it was never placed before its candle passed. The run ends flat and the old side's
  stops are cancelled, as after any close; a close that filled only in part (EXPIRED, thin liquidity) ends
  on what is left of the old side, whose stops are re-placed for that rest (still open), as after any
  reduction. A refused entry does not count as a failed run (its close went through): refused again from
  flat on the next candles, it does; refused for the account's cooling-off period (-4192), it pauses the
  strategy at once (``cooling_off_period``), as from flat. The entry's events carry their own tag (read apart
  from the close's).

The turn's clock (``is_superseded``) is looked up on ``klineo.runner.execution`` at call time, as the
turn's own is: one name a stale-candle check goes through. The hand-over's write is this module's own.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from klineo.errors import KlineoError
from klineo.observability import logger
from klineo.runner import execution
from klineo.runner.failures import after_success
from klineo.runner.trading import strategy_trading_context
from klineo.services.key_health import TRADE
from klineo.services.orders import OrderResult
from klineo.services.risk import OrderIntent, check_order
from klineo.store.connections import connection_credentials
from klineo.store.order_claim import GateChecks, cached_connection_item, gate_condition_checks
from klineo.store.runs import hand_over_live_order
from klineo.store.strategies import PendingOrder
from klineo.validation import plain_text

if TYPE_CHECKING:
    from klineo.runner.execution import _Turn as Turn

__all__ = ["hand_over"]


def hand_over(turn: Turn, pending: PendingOrder, result: OrderResult, position_to: Decimal,
              book: dict[str, Any] | None, outcome: dict[str, Any]) -> execution.StrategyResult | None:
    """A hedge flip's close (``pending``) filled: settle it and claim the new side's entry in ONE write
    (``hand_over_live_order``), then send the entry and settle it (the candle's run). None when the new
    side is not opened (``not_opened`` says why, its event is added): the caller writes the close's run.
    """
    following = second_leg(turn, pending, result, position_to)
    if following is None:
        return None
    strategy = turn.strategy
    nxt = pending.facts[execution.NEXT_LEG]
    intent = turn.pending_intent(following)
    price = Decimal(str(nxt["price"]))
    record = turn.order_record(following).to_item()
    submit = turn.submit_event(following)
    for _ in range(execution.CLAIM_ATTEMPTS):
        item = cached_connection_item(strategy.user_id, strategy.connection_id)
        if item is None:
            return new_side_not_opened(turn, pending, "connection_not_found",
                                       "The connection no longer exists.")
        claim = hand_over_live_order(
            strategy.user_id, strategy.strategy_id, pending, following, position_to=position_to,
            key_failures=0, failed_runs=after_success(strategy.failed_runs), live_book=book,
            outcome=outcome, record=record, events=[*turn.events, submit],
            gates=gate_condition_checks(GateChecks(strategy.user_id, item, switches=True)),
        )
        if claim:
            turn.events = []
            turn.note_key_outcome(None, TRADE)
            turn.reload()  # the close's fills are in the live book the entry's fills add to
            assert turn.trading is not None
            creds = turn.creds or connection_credentials(turn.trading.connection)
            return turn.send_and_settle(following, creds, earlier_attempt_ms=None)
        refused = hand_over_refused(turn, pending, claim.failed, item, intent, price)
        if refused is not False:
            return refused
    return new_side_not_opened(turn, pending, "connection_changed",
                               "The connection kept changing while the new side was claimed.")


def second_leg(turn: Turn, pending: PendingOrder, result: OrderResult,
               position_to: Decimal) -> PendingOrder | None:
    """The new side's entry of a hedge flip whose close ``result`` settles; None (with ``not_opened``)
    when it may not be opened: the close did not close the old side completely, the candle is no longer
    the latest (never a stale signal's entry), or the risk gate refuses the entry now."""
    nxt = pending.facts[execution.NEXT_LEG]
    assert turn.trading is not None
    if result.status != "FILLED" or position_to != 0:
        return new_side_not_opened(turn, pending, "close_incomplete", (
            f"The order closing the old side filled {plain_text(result.executed_quantity)} of "
            f"{plain_text(pending.quantity)} ({result.status}): the new side is not opened beside it."))
    if execution.is_superseded(pending.close_time, turn.strategy.interval, turn.ctx.now_ms()):
        return new_side_not_opened(turn, pending, "stale_candle", (
            "The old side's close settled after the next candle closed: the new side is not opened on a "
            "stale signal."))
    following = PendingOrder(
        close_time=pending.close_time, client_order_id=str(nxt["client_order_id"]), side=str(nxt["side"]),
        quantity=Decimal(str(nxt["quantity"])), reduce_only=False,
        position_side=str(nxt["position_side"]), position_before=position_to,
        claimed_at_ms=turn.ctx.now_ms(), lease_until_ms=turn.ctx.deadline_ms,
        facts={**{k: v for k, v in pending.facts.items() if k != execution.NEXT_LEG},
               execution.FIRST_LEG: {"position_before": plain_text(pending.position_before),
                                     "order": execution.run_order_of(result)}},
    )
    trading = strategy_trading_context(turn.strategy, turn.trading)
    intent = turn.pending_intent(following)
    try:
        check_order(trading, live=True)
        check_order(trading, intent, lambda: Decimal(str(nxt["price"])))
    except KlineoError as exc:
        return new_side_blocked(turn, pending, exc, intent)
    return following


def hand_over_refused(
    turn: Turn, pending: PendingOrder, failed: dict[str, dict[str, Any] | None], item: dict[str, Any],
    intent: OrderIntent, price: Decimal,
) -> execution.StrategyResult | bool | None:
    """What a refused hand-over means: the result when another attempt settled the close; None when the
    new side is not to be opened (the close's run follows); False when only a cached connection setting
    was stale (hand over again)."""
    if "strategy" in failed:
        current = failed["strategy"] or {}
        held = (current.get("pending") or {}).get("M", {}).get("client_order_id", {}).get("S")
        if held != pending.client_order_id:
            return turn.result("not_run", "another attempt settled this order")
        return new_side_not_opened(turn, pending, "strategy_inactive", (
            "The strategy was paused or switched to paper before its new side was opened."))
    if "record" in failed:
        logger.error("flip's second client order id already recorded; not sent",
                     extra={"strategy_id": turn.strategy.strategy_id, "close_time": pending.close_time})
        return new_side_not_opened(turn, pending, "order_recorded",
                                   "The order opening the new side was already recorded.")
    refusal = turn.gate_refusal(failed, item, intent, price)
    if refusal is None:
        return False
    if refusal.field == "connection_not_found":
        return new_side_not_opened(turn, pending, "connection_not_found", refusal.trader_message)
    return new_side_blocked(turn, pending, refusal, intent)


def new_side_blocked(turn: Turn, pending: PendingOrder, exc: KlineoError, intent: OrderIntent) -> None:
    """The risk gate refuses a flip's entry (``intent``) once its close filled: a ``risk_block`` event
    naming the gate and a refused order attempt under the entry's id; the close's run follows (flat)."""
    gate, message = exc.field or str(exc.category), execution.gate_message(exc)
    turn.event("risk_block", pending.close_time, second=True, gate=gate, message=message)
    turn.not_opened = {"category": gate, "message": message}
    entry_id = str(pending.facts[execution.NEXT_LEG]["client_order_id"])
    turn.entry_refusal = turn.refused_attempt(intent, exc, message, entry_id)


def new_side_not_opened(turn: Turn, pending: PendingOrder, category: str, message: str) -> None:
    """A flip's entry that is not opened for ``category``: an ``error`` event saying why; the close's run
    follows (flat)."""
    turn.event("error", pending.close_time, second=True, what="new_side_not_opened",
               category=category, message=message)
    turn.not_opened = {"category": category, "message": message}
