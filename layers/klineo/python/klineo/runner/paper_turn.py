"""A paper strategy's turn: its exits since the last check, its entry's margin, and its simulated fill.

The turn (``klineo.runner.execution``) gates, decides and plans for both modes; what only a paper turn runs
lives here, as functions taking the turn (``klineo.runner.execution._Turn``), as ``klineo.runner.flip``'s
do. Loaded only by a paper turn (``_Turn.play``, ``plan``, ``balance`` and ``decide_and_trade`` import it
where they leave the live path): a worker that plays only live strategies never imports it. The paper
book's rules (ledger, levels, liquidation) are ``klineo.runner.paper``'s; this module writes what they give.

- Before the decision (``paper_candles``, ``paper_reprice``, ``paper_protective_exit``): the candles since
  the position's last check, its levels moved to changed percents, and a stop-loss/take-profit reached by
  one of them closing the simulated position first; a liquidation ends the turn, the strategy paused
  (``paper_liquidated``).
- Sizing (``paper_margin``, ``paper_equity``): an entry whose initial margin the paper equity at the close
  cannot back is not taken (``margin_refusal`` on the turn; a flip then only closes its old side).
- The fill (``paper_fill``, ``paper_margin_refused``): a simulated MARKET fill at the candle's close, the
  run, the paper position and book and the events in ONE write; a refused entry from flat is a skipped
  run with its ``risk_block`` event. Nothing is sent to Binance.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from klineo.binance import Candle
from klineo.observability import logger
from klineo.runner.failures import after_success
from klineo.runner.paper import (
    LIQUIDATED_MESSAGE,
    MARGIN_GATE,
    MARGIN_MESSAGE,
    PAPER_LIQUIDATED,
    PaperExit,
    book_of,
    exit_levels,
    ledger_of,
    legacy_paper_levels,
    paper_exit,
    paper_protective,
    protective_record,
    unchecked_since,
)
from klineo.runner.planning import OrderPlan
from klineo.runner.pnl import is_entry
from klineo.runner.reprice import repriced_paper_levels
from klineo.runner.trading import sizing_of
from klineo.store.runs import (
    StrategyAdvance,
    correct_position,
    record_skip,
    reentry_block_sets,
    set_paper_book,
)
from klineo.strategies.simulation import entry_fits, initial_margin, leverage_of, market_fill
from klineo.validation import plain_text

if TYPE_CHECKING:
    from klineo.runner.execution import StrategyResult
    from klineo.runner.execution import _Turn as Turn

__all__ = [
    "paper_candles",
    "paper_equity",
    "paper_fill",
    "paper_liquidated",
    "paper_margin",
    "paper_margin_refused",
    "paper_protective_exit",
    "paper_reprice",
]


def paper_candles(turn: Turn) -> tuple[Candle, ...]:
    """The candles the open paper position's exits are checked on: the turn's, preceded by those since
    its last check that they do not reach back to (``klineo.runner.paper.unchecked_since``: a pause, a
    kill switch, lost ticks; of a long one, only its first candle that closes the position, found
    coarse to fine: ``klineo.runner.candles.first_closing``). A failed read ends the turn for a retry."""
    assert turn.ctx.group is not None
    since = unchecked_since(turn.strategy, turn.ctx.group.candles)
    if since is None:
        return turn.ctx.group.candles
    return turn.ctx.group.since(since, exit_levels(turn.strategy))  # a long gap: coarse to fine


def paper_reprice(turn: Turn, candles: Sequence[Candle]) -> None:
    """Changed percents move the open paper position's levels (``klineo.runner.reprice``)."""
    strategy = turn.strategy
    moved = repriced_paper_levels(strategy, candles)
    if moved is None:
        return
    record, details = moved
    book = {k: v for k, v in (strategy.paper_book or {}).items() if k != "protective"}
    if record is not None:
        book["protective"] = record
    legacy = {"protective": {}} if legacy_paper_levels(strategy) is not None else None
    turn.event("protective_repriced", mode="paper", **details)
    set_paper_book(strategy.user_id, strategy.strategy_id, book, held=strategy.paper_position,
                   events=turn.take_events(), sets=legacy)
    turn.reload()


def paper_protective_exit(turn: Turn, candles: Sequence[Candle]) -> StrategyResult | None:
    """A paper stop-loss/take-profit reached by a candle since the last check (``candles``) closes the
    simulated position first; a liquidation ends the turn (``paper_liquidated``). Candles read before
    the turn's window that reach nothing are recorded as checked (``checked_close_time``)."""
    strategy = turn.strategy
    hit = paper_exit(strategy, candles, turn.close_time)
    if hit is None:
        assert turn.ctx.group is not None
        if unchecked_since(strategy, turn.ctx.group.candles) is not None:  # read before the window
            book = {**(strategy.paper_book or {}), "checked_close_time": turn.close_time}
            set_paper_book(strategy.user_id, strategy.strategy_id, book, held=strategy.paper_position)
            turn.reload()
        return None
    if hit.reason == "liquidation":
        return paper_liquidated(turn, hit)
    details = {"reason": hit.reason, "price": hit.price, "quantity": abs(hit.position_before),
               "candle_close_time": hit.candle_close_time}
    turn.event("protective_triggered", **details)
    turn.event("position_closed", cause=hit.reason, position_before=hit.position_before, position_after=0,
               price=hit.price, realised_pnl=hit.ledger.realised_pnl,
               candle_close_time=hit.candle_close_time)
    block = "long" if hit.position_before > 0 else "short"
    moved = (hit.position_before, Decimal(0))
    legacy = legacy_paper_levels(strategy) is not None
    correct_position(strategy.user_id, strategy.strategy_id, "paper_position", moved, reentry_block=block,
                     sets={"paper_book": book_of(hit.ledger)}, events=turn.take_events(),
                     forget_protective=legacy)  # the live position's stops stay recorded
    turn.reload()
    return None


def paper_liquidated(turn: Turn, hit: PaperExit) -> StrategyResult:
    """The paper position was liquidated (``klineo.runner.paper``): closed at its liquidation price, the
    paper equity 0, and the strategy paused, all in the candle's run write (a skipped run: the candle
    is not traded, as the backtest trades nothing after a liquidation)."""
    strategy, before = turn.strategy, hit.position_before
    turn.event("position_closed", cause="liquidation", position_before=before, position_after=0,
               price=hit.price, realised_pnl=hit.ledger.realised_pnl,
               candle_close_time=hit.candle_close_time)
    turn.event("paused", reason=PAPER_LIQUIDATED, message=LIQUIDATED_MESSAGE)
    block = "long" if before > 0 else "short"
    extra: dict[str, Any] = {"paper_book": book_of(hit.ledger),
                             **reentry_block_sets("paper_position", block)}
    if legacy_paper_levels(strategy) is not None:
        extra["protective"] = {}  # an older item's paper levels (the position they protected is gone)
    advance = StrategyAdvance(position_attribute="paper_position", position_from=before,
                              position_to=Decimal(0), pause_reason=PAPER_LIQUIDATED, extra=extra)
    logger.info("paper strategy liquidated and paused", extra={"strategy_id": strategy.strategy_id})
    return turn.record(turn.run("skipped", skip_reason=PAPER_LIQUIDATED, position_before=before,
                                target_position=Decimal(0)), advance, PAPER_LIQUIDATED)


def paper_margin(turn: Turn, size: Decimal, price: Decimal) -> Decimal:
    """``size`` when the paper entry's initial margin fits the paper equity at the close
    (``simulation.entry_fits``, the backtest's rule), else 0 (a flip then only closes its old side),
    the refusal kept in ``margin_refusal``."""
    sizing = sizing_of(turn.strategy)
    equity = paper_equity(turn, price)
    if size <= 0 or entry_fits(size, price, sizing, equity):
        return size
    leverage = leverage_of(sizing)
    turn.margin_refusal = {"initial_margin": initial_margin(size, price, leverage), "equity": equity,
                           "leverage": leverage}
    return Decimal(0)


def paper_equity(turn: Turn, price: Decimal) -> Decimal:
    """The paper ledger's equity at ``price``, built once per turn and price (percent sizing and the
    margin check both ask for it)."""
    if turn.paper_equity_at is None or turn.paper_equity_at[0] != price:
        turn.paper_equity_at = (price, ledger_of(turn.strategy).equity(price))
    return turn.paper_equity_at[1]


def paper_margin_refused(turn: Turn, plan: OrderPlan,
                         facts: dict[str, Any]) -> StrategyResult | None:
    """An entry the paper equity cannot back (``paper_margin``): its ``risk_block`` event and, from flat,
    a skipped run with the decision; None when a flip's old side is still to close (``paper_fill``).

    Not a failed run, so not counted towards the pause of ``klineo.runner.failures``: the backtest
    asks again on every candle, and an entry refused now can fit later (a price move changes a fixed
    size's margin and a quote size's rounded quantity); a pause would end the parity."""
    if turn.margin_refusal is None:
        return None
    turn.event("risk_block", gate=MARGIN_GATE, message=MARGIN_MESSAGE, **turn.margin_refusal)
    if plan.side is not None:
        return None
    written = record_skip(turn.run("skipped", skip_reason=MARGIN_GATE, **facts), None, turn.take_events())
    return turn.result("skipped" if written else "not_run", MARGIN_GATE)


def paper_fill(turn: Turn, plan: OrderPlan, cid: str, price: Decimal,
               facts: dict[str, Any]) -> StrategyResult:
    """A simulated taker fill at the close moved by the slippage model, paying the taker fee."""
    refused = paper_margin_refused(turn, plan, facts)
    if refused is not None:
        return refused
    assert plan.side is not None and plan.quantity is not None
    strategy = turn.strategy
    position = strategy.paper_position
    fill_price = market_fill(plan.side, price)
    ledger = ledger_of(strategy)
    paid = ledger.fill(plan.side, plan.quantity, fill_price, turn.close_time).fee  # the taker fee
    quantity = plain_text(plan.quantity)
    order = {
        "client_order_id": cid, "order_id": None, "side": plan.side, "type": "MARKET", "status": "FILLED",
        "quantity": quantity, "executed_quantity": quantity,
        "average_price": plain_text(fill_price), "fee": plain_text(paid),
        "reduce_only": plan.reduce_only, "source": "paper", "simulated": True,
    }
    entered = is_entry(position, ledger.position)
    kept = paper_protective(strategy) if ledger.position != 0 else None
    protective = protective_record(strategy, plan.side, fill_price, "paper") if entered else kept
    if entered and protective:
        protective["entry_close_time"] = turn.close_time  # later candles are checked against it
    extra: dict[str, Any] = {"paper_book": book_of(ledger, protective)}
    if legacy_paper_levels(strategy) is not None:
        extra["protective"] = {}  # an older item's paper levels: now in paper_book
    # ``protective`` itself is the LIVE position's record (its armed stops): never touched here.
    advance = StrategyAdvance(
        position_attribute="paper_position", position_from=position, position_to=ledger.position,
        failed_runs=after_success(strategy.failed_runs), extra=extra,
    )
    what = {"client_order_id": cid, "side": plan.side, "quantity": plan.quantity, "simulated": True}
    turn.event("order_submit", **what)
    turn.event("order_fill", **what, price=fill_price, fee=order["fee"], realised_pnl=ledger.realised_pnl)
    return turn.record(turn.run("simulated", order=order, **facts), advance)
