"""One strategy on one closed candle: gates, decision, target position, order, and the run record.

Order of work for a strategy S and the candle C its message names:

1. Nothing to do when S is gone, paused, already past C (``last_close``), or another worker
   holds C right now (a pending order whose lease has not run out). A paused S still holding a live order
   in flight (claimed before the pause, its answer lost) only has that order looked up and settled as
   Binance did it, an entry's stops placed (``settle_paused``): never sent again, nothing else traded.
2. Gates, read strongly consistent once per (user, connection) for the whole worker batch
   (``klineo.runner.gates``: one BatchGetItem for every pair) and checked by
   the one risk gate (``klineo.services.risk.check_order``): the global, user and connection kill
   switches, a disabled connection and, for live strategies, ``futures_enabled``. A closed gate
   records a ``skipped`` run whose reason names the gate, and sends nothing; an order already pending
   is still looked up and settled first past a kill switch, futures off or the connection's delete
   (``connection_deleting``), never sent again. A live order is put
   to the same gate again once it is known (position side, max_leverage, max_notional_usdt at the
   candle's close), and, before an order that adds exposure, the connection's margin type and leverage
   are applied to the symbol (``klineo.services.symbol_settings.prepare_symbol``; a close needs neither,
   and Binance refuses a margin type change while the position is open). Its refusal (there or at the
   claim) is also a refused order attempt (``klineo.store.order_attempts``), one more Put in the skipped
   run's write; a gate closed before any order is decided is no order attempt and records only the run.
   A one-way flip whose new exposure a limit (or Binance, refusing the symbol's settings) refuses sends
   its close alone (as a hedge flip does) and records the whole flip's order as refused, under the
   flip's second id (``kf...``: the candle's own goes out with the close); so does one a limit lowered
   between the gates' read and the claim refuses there (``_FlipLimited``).
3. A pending live order left by an earlier attempt is settled first: looked up by its
   clientOrderId (and, for C itself while C is still the latest candle, placed once it is proven
   never to have reached Binance: ``submit_futures_order(earlier_attempt_ms=...)``). Right before
   such a second send the gates are read again (``recheck_gates``): a kill switch turned on since
   the batch's read, or a max_leverage / max_notional_usdt lowered since the claim (an order adding
   exposure, valued at its candle's close as its first send was), stops it, ``risk_block`` naming the
   gate and the run ``skipped`` (a mark price read that valuation needs and Binance failed for a moment is
   no refusal: the order stays pending, looked up and valued again later); a one-way flip a limit stops so
   hands over to its close alone, claimed as its own order (the flip's second id) and sent in that turn,
   whose settle writes the run. Only a strategy
   still live and active sends it again: one switched to paper (or paused) before the second send only
   looks it up, and settles it as found or as never placed (``order_not_placed``); one claimed longer ago
   than Binance's retention that it no longer knows may have filled and been forgotten: UNKNOWN_PURGED, the
   position Binance's (``settle_purged``).
4. A candle superseded by a newer closed one is recorded ``skipped`` (stale_candle), never traded; one
   Binance never made (a halt) is recorded ``skipped`` (no_candle), and so is a candle that came while
   its symbol is halted now (``klineo.runner.candles.trading_rules``: only an ended contract pauses).
5. The type's ``decide`` reads exactly its ``lookback`` newest closed candles: the group's, read for the
   lookbacks of the strategies as the dispatcher's snapshots describe them; a turn played on parameters
   that look back further (raised by a PATCH since) reads its own first (``CandleGroup.for_lookback``).
   Signal -> target position: long +size, short -size, flat 0, hold = keep. Size and the difference to the
   current position are rounded down to the symbol's step (``SymbolRules.prepare_order``).
6. A hold (the target equals the position) is ONE conditional PutItem of its run: no strategy
   write, no event (``klineo.store.runs``); a repeat is refused and answers ``not_run``.
7. Paper: a simulated MARKET fill at the candle's close (moved against the taker by the slippage
   of ``klineo.strategies.simulation``, with its taker fee) is recorded in ONE TransactWriteItems:
   the run, the new paper position and book, and the signal/order_submit/order_fill events.
   Nothing is sent to Binance (exchangeInfo, a public read, is the only call, for the rounding rules).
   Paper trades within its paper equity, as the backtest does (``klineo.strategies.simulation``): an
   entry whose initial margin does not fit is not taken (a ``risk_block`` event, gate
   ``insufficient_margin``; from flat a skipped run, one transaction with its events; a flip still
   closes its old side), and a position a candle since its entry liquidated is closed at its
   liquidation price, the strategy paused, in the candle's one run write (``klineo.runner.paper``). These
   steps are ``klineo.runner.paper_turn``'s, loaded by a paper turn only.
8. Live: the order is claimed in ONE TransactWriteItems (``claim``): the strategy's ``pending``
   order (carrying the decision), a check that the candle has no run, the gates as ConditionChecks
   (a kill switch turned on since the gates were read still stops it: ``risk_block`` naming the
   gate), the order history's PENDING record, and the signal/order_submit events. The order goes
   out with ``newClientOrderId = client_order_id(S, C)``, then ONE TransactWriteItems settles it:
   the run, the filled quantity onto the position as ``pending`` is cleared, the record's outcome
   and the fill's events. Extra calls on some orders only: the first-time symbol settings
   (``prepare_symbol``), the fills read for the live PnL (userTrades) and, after an entry with
   SL/TP, the protective orders and their ``set_protective`` write; after an order that left less of
   the position on the same side, its protective orders re-placed for what is left
   (``klineo.runner.reprice``, "What is left"). An order that closes, flips or grows the position
   cancels the earlier entry's stops first; those whose cancel failed stay in the new record's
   ``superseded``, cancelled again on later turns (``LiveReprice.retire``) or by the next order.
   The settle lets a newer turn trade before this one has recorded the entry's stops: the record is
   written only while no order is pending and the position, its entry and its record are as this turn
   read them (``set_protective``); otherwise the newer turn's record stays and what this one placed is
   cancelled (``record_protective``).

Every strategy write of a turn is conditional on the strategy as the turn read it (``updated_at``,
position, pending order, candle). When it changed meanwhile (edited, traded, claimed elsewhere) the
write is refused with nothing written or sent, and the turn is played again on the item as it is
now (``run_strategy``, a bounded number of times): never an order twice, never one on stale settings.

Position tracking (the brief's choice): the runner tracks each strategy's own position from its
own fills (``live_position``), not from /fapi/v3/positionRisk. Reading positions would cost
request weight 5 per account and run (1,000 strategies ≈ 5,000 weight a minute, twice Binance's
2,400 limit), and an account's net position mixes every strategy and manual trade on the symbol.
The price: a position closed by hand or by liquidation is not seen, so reductions are sent
``reduceOnly`` (Binance refuses to flip a position that is no longer there).

Position mode: orders follow the connection's ``position_mode`` as the turn's gates read it
(``klineo.runner.planning.order_legs``). One-way: positionSide BOTH, reductions ``reduceOnly``. Hedge:
positionSide LONG for the strategy's long position and SHORT for its short one, never ``reduceOnly``
(Binance refuses it there; SELL LONG and BUY SHORT only close, and a close larger than the side is
refused, so a position closed elsewhere is never reopened the other way); the position check reads the
strategy's side only, and the protective orders carry the entry's side. Each order passes the one risk
gate with its positionSide (SELL LONG / BUY SHORT count as closing there). An account switched to the
other mode outside KLINEO refuses the order (-4061): a failed run, counted towards the pause, whose error
tells the trader to switch the account back or set the connection's ``position_mode`` to match; nothing
is sent again for that candle. A connection switched between a turn's read and its claim (or a second
send) is a ``risk_block`` naming ``positionSide``, nothing sent.

Hedge-mode flips: two orders, the old side's close then the new side's entry, each exactly once: the close
is claimed as any order, carrying its entry (``NEXT_LEG``); its settle hands over to the entry
(``klineo.runner.flip``, which says how and when the entry is not opened).

Runs that keep failing (``klineo.runner.failures``): a failed run whose failure repeats by itself
(not transient, not the key's) counts on the strategy in the write that records it; after
``FAILED_RUN_LIMIT`` in a row the same write pauses it. A hold, a fill or an order resets the count.

Keys that keep failing: permission, ip_whitelist and signature refusals (and vanished secrets)
count as consecutive key failures; any other answer from Binance resets the count. After
``KEY_FAILURE_LIMIT`` in a row the strategy is paused with the reason and leaves the active index.
The same refusals also count on the connection, across the API and every strategy
(``klineo.services.key_health``): at the limit the connection is disabled and all its strategies
paused. A strategy that pause missed (a storage error cut it short) meets the disabled connection at its
next turn's gate: its skipped run pauses it with the connection's reason, only while it is as the turn
read it (``left_on_disabled``). So is one whose connection is gone (``connection_not_found``,
``connection_gone``): a pause the user or the connection's delete wrote meanwhile keeps its reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import partial
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from klineo.binance import (
    BinanceClient,
    Credentials,
    ErrorCategory,
    Market,
    SymbolRules,
    get_client,
)
from klineo.binance.codes import COOLING_OFF_PERIOD
from klineo.binance.endpoints import futures_balance, futures_mark_price
from klineo.errors import KlineoError, LeverageAboveSymbolMax
from klineo.observability import logger
from klineo.runner.candles import CandleGroup, status_refusal, trading_rules, type_refusal
from klineo.runner.failures import after_failure, after_success, paused_message
from klineo.runner.gates import GateBook
from klineo.runner.messages import WorkMessage
from klineo.runner.paper import (
    legacy_paper_levels,
    live_percents,
    protective_details,
    protective_record,
)
from klineo.runner.planning import (
    NO_MARKET_ORDERS,
    UNTRADABLE_SIZE,
    OrderLeg,
    OrderPlan,
    no_market_orders,
    order_legs,
    plan_order,
    position_side_of,
    require_tradable_sizing,
)
from klineo.runner.pnl import (
    Fills,
    estimated_fills,
    forced_estimates,
    forced_fills,
    is_entry,
    live_book_after,
    read_fills,
)
from klineo.runner.positions import (
    UNKNOWN_CLOSE_READS,
    PositionBook,
    closing_cause,
    forced_booked,
    forced_closes,
    forced_order_record,
    position_left,
    purged_order_position,
    standing_stops,
    stops_cause,
)
from klineo.runner.reprice import (
    LiveReprice,
    arm_entry_orders,
    protection_due,
)
from klineo.runner.schedule import client_order_id, is_superseded
from klineo.runner.trading import acted_signal, entry_size, strategy_trading_context
from klineo.services.key_health import (
    DISABLED_PREFIX,
    KEY_FAILURE_CATEGORIES,
    KEY_FAILURE_LIMIT,
    READ,
    TRADE,
    KeyCall,
    is_key_failure,
    note_key_outcome,
)
from klineo.services.orders import (
    FORGOTTEN_AFTER_MS,
    SETTLE_MARGIN_MS,
    FuturesOrder,
    OrderResult,
    query_futures_order,
    submit_futures_order,
)
from klineo.services.risk import (
    CONNECTION_DELETING,
    CONNECTION_DISABLED,
    EXPOSURE_ONLY_GATES,
    HEDGE,
    LIMIT_GATES,
    STRATEGY_MODE_CHANGED,
    OrderIntent,
    check_order,
    mode_mismatch_message,
    position_mode_refused,
    reduces_position,
)
from klineo.services.symbol_settings import SETTING_FIELDS, prepare_symbol
from klineo.store.connections import (
    Connection,
    TradingContext,
    connection_from_item,
    load_trading_context,
)
from klineo.store.events import StrategyEvent
from klineo.store.flags import kill_switch_of
from klineo.store.order_claim import (
    GateChecks,
    cached_connection_item,
    forget_connection,
    gate_condition_checks,
    remember_connection,
)
from klineo.store.order_fills import stored_fills
from klineo.store.orders import (
    STATUS_REJECTED,
    STATUS_UNKNOWN_PURGED,
    OrderRecord,
    estimate_kept_update,
    order_outcome_update,
    put_new_record,
    strategy_order_record,
)
from klineo.store.runs import (
    Run,
    StrategyAdvance,
    StrategyChanged,
    add_superseded,
    claim_live_order,
    clear_reentry_block,
    correct_position,
    extend_lease,
    hand_over_live_order,
    record_run,
    record_skip,
    set_protective,
    settle_live_order,
    settle_unknown_close,
)
from klineo.store.strategies import PAUSED, PendingOrder, Strategy, from_item, get_strategy, pause_strategy
from klineo.strategies import (
    NO_SIDE_LEFT,
    Decision,
    Signal,
    get_strategy_type,
    leaves_no_side,
    parse_parameters,
)
from klineo.validation import decimal_or_none, plain_text, plain_text_or_none

__all__ = [
    "FINAL_ORDER_STATUSES",
    "KEY_FAILURE_CATEGORIES",
    "KEY_FAILURE_LIMIT",
    "OrderPlan",
    "StrategyResult",
    "TickContext",
    "plan_order",
    "run_strategy",
    "settle_in_flight",
]

# Order states after which the filled quantity can no longer change.
FINAL_ORDER_STATUSES = frozenset({"FILLED", "CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "REJECTED"})


@dataclass(frozen=True)
class TickContext:
    """What every strategy of one message shares: the message, its closed candles, the time budget.

    ``group`` is None when Binance refused the klines request for good (``group_error``: an unknown
    symbol or one no longer trading, a candle never made; ``klineo.runner.candles.ends_the_tick``);
    other failures never get this far (the whole message is retried).
    """

    message: WorkMessage
    group: CandleGroup | None
    deadline_ms: int
    group_error: KlineoError | None = None
    clock: Callable[[], float] = time.time
    # The batch's exchange positions, shared by every strategy of the batch (klineo.runner.positions).
    positions: PositionBook = field(default_factory=PositionBook)
    # The batch's gates, read once per (user, connection) before the turns (klineo.runner.gates).
    gates: GateBook = field(default_factory=GateBook)
    # The container's futures client of each environment, once looked up (``futures_client``).
    clients: dict[str, BinanceClient] = field(default_factory=dict, repr=False, compare=False)
    # True for a DELETE's settle (``klineo.runner.on_demand.settle_now``): Binance refusing the key on the
    # lookup of an order in flight is raised to it (it answers so), the strategy not paused for it.
    raises_key_refusals: bool = False

    def futures_client(self, environment: str) -> BinanceClient:
        """The container's futures client of ``environment`` (``get_client``), looked up once for the
        message's strategies: each look-up reads the environment's URL and proxy variables again."""
        client = self.clients.get(environment)
        if client is None:
            client = self.clients[environment] = get_client(Market.FUTURES, environment)
        return client

    def now_ms(self) -> int:
        """Wall-clock now in epoch ms."""
        return int(self.clock() * 1000)

    def trading(self, user_id: str, connection_id: str) -> TradingContext:
        """The connection and kill switches of the batch's read; NOT_FOUND when the connection is gone."""
        return self.gates.trading(user_id, connection_id)


@dataclass(frozen=True)
class StrategyResult:
    """How one strategy's turn ended: a run status or ``not_run``; ``retry`` asks SQS to deliver it again."""

    strategy_id: str
    outcome: str
    detail: str | None = None
    retry: bool = False


def _error(exc: KlineoError) -> dict[str, Any]:
    return {"category": str(exc.category), "message": exc.trader_message}


def run_order_of(result: OrderResult) -> dict[str, Any]:
    return {
        "client_order_id": result.client_order_id,
        "order_id": result.order_id,
        "side": result.side,
        "type": result.type,
        "status": result.status,
        "quantity": plain_text_or_none(result.quantity),
        "executed_quantity": plain_text_or_none(result.executed_quantity),
        "average_price": plain_text_or_none(result.average_price),
        "reduce_only": result.reduce_only,
        "source": result.source,
        "simulated": False,
        # hedge mode only (LONG / SHORT): a one-way run's order reads as it always did
        **({"position_side": result.position_side} if result.position_side in ("LONG", "SHORT") else {}),
    }


def _signed(side: str, quantity: Decimal) -> Decimal:
    return quantity if side == "BUY" else -quantity


class _Turn:
    """One strategy's turn on one candle (a small object so the steps share their inputs)."""

    def __init__(self, strategy: Strategy, ctx: TickContext):
        self.strategy = strategy
        self.ctx = ctx
        self.close_time = ctx.message.close_time
        self.live = strategy.mode == "live"
        self.trading: TradingContext | None = None
        # Events of this turn not written yet: each goes with the next state write of the turn, in
        # its transaction (klineo.store.runs), so it is never lost nor written twice.
        self.events: list[StrategyEvent] = []
        # How many events of each (candle, kind, tag) this turn made: the next one's ``seq`` (make_event).
        self.made: dict[tuple[int, str, str], int] = {}
        self.order: tuple[tuple[str, str, Decimal, bool, str], FuturesOrder] | None = None
        # The connection's keys, once the turn needed them (``credentials``): its order, fills and reads.
        self.creds: Credentials | None = None
        self._client: BinanceClient | None = None
        # Paper: the initial margin, equity and leverage of an entry the paper equity cannot back.
        self.margin_refusal: dict[str, Decimal] | None = None
        self.paper_equity_at: tuple[Decimal, Decimal] | None = None  # (price, equity): ``paper_equity``
        # Why a hedge flip's new side was not opened once its close filled (the close's run's error).
        self.not_opened: dict[str, Any] | None = None
        # The Put of a flip's new side the gate refused (a refused order attempt under the flip's second id,
        # ``kf...``), written by the turn's next write of the candle: the claim or settle of its close, or the
        # run when the close is not claimed (``take_attempts``).
        self.entry_refusal: dict[str, Any] | None = None
        # A refusal of the key met by the turn's fills read (estimated past it): counted by the turn's next
        # ``note_key_outcome`` in place of the success of the order it settles (``live_book``).
        self.fills_key_failure: KlineoError | None = None

    def credentials(self, trading: TradingContext) -> Credentials:
        """The connection's keys (the batch's ``GateBook.credentials``), kept for the rest of the turn."""
        if self.creds is None:
            self.creds = self.ctx.gates.credentials(trading.connection)
        return self.creds

    def client(self) -> BinanceClient:
        """The container's futures client of the strategy's environment (``TickContext.futures_client``),
        kept for the turn: a live order asks for it four times."""
        if self._client is None:
            self._client = self.ctx.futures_client(self.strategy.environment)
        return self._client

    # ------------------------------------------------------------------ results and records
    def result(self, outcome: str, detail: str | None = None, *, retry: bool = False) -> StrategyResult:
        return StrategyResult(self.strategy.strategy_id, outcome, detail, retry)

    def run(self, status: str, **fields: Any) -> Run:
        return Run(
            strategy_id=self.strategy.strategy_id, user_id=self.strategy.user_id, close_time=self.close_time,
            status=status, mode=self.strategy.mode, **fields,
        )

    def failed_run(self, exc: KlineoError, facts: dict[str, Any]) -> Run:
        """The failed run of a turn ``exc`` ended, after the ``error`` event that tells the trader why."""
        self.event("error", category=str(exc.category), message=exc.trader_message)
        return self.run("failed", error=_error(exc), **facts)

    def final_run(self, pending: PendingOrder, status: str, *, why: dict[str, Any] | None = None,
                  **fields: Any) -> Run:
        """The run of ``pending``'s candle, from the decision stored with the order at claim time.

        A hedge flip's second leg (``first_leg`` in its facts) writes the candle's run for both: from the
        position before the close, with the close as ``close_order``. When the new side was not opened
        (refused, blocked, never placed: ``status`` not "ordered"), the run is the close's alone, flat, its
        ``error`` saying why (``why`` for a skip)."""
        facts = pending.facts
        target = decimal_or_none(facts.get("target_position"))
        before = pending.position_before
        first = facts.get(FIRST_LEG)
        if first is not None:
            before = Decimal(str(first["position_before"]))
            if status == "ordered":
                fields["close_order"] = first["order"]
            else:
                fields = {"order": first["order"], "error": fields.get("error") or why}
                status, target = "ordered", Decimal(0)
        return Run(
            strategy_id=self.strategy.strategy_id, user_id=self.strategy.user_id,
            close_time=pending.close_time, status=status, mode="live",
            signal=facts.get("signal"), reason=facts.get("reason"),
            indicators={str(k): str(v) for k, v in (facts.get("indicators") or {}).items()},
            position_before=before, target_position=target, **fields,
        )

    def skip(self, reason: str, pause_reason: str | None = None,
             attempt: dict[str, Any] | None = None, message: str | None = None,
             *, if_unchanged: bool = False) -> StrategyResult:
        """Record a skipped run (ONE put unless it pauses; pausing even while an older order is unsettled),
        with ``attempt``'s Put (a refused order attempt) and the turn's refused entry in the same write;
        ``message``: what the ``paused`` event tells the trader; ``if_unchanged``: the pause only while the
        strategy is as this turn read it (else StrategyChanged: the turn is played again on it as it is)."""
        if pause_reason:
            self.event("paused", reason=pause_reason, message=message)
        run = self.run("skipped", skip_reason=reason)
        pause = _pausing(pause_reason)
        if pause is not None and if_unchanged:
            pause = replace(pause, seen_updated_at=self.strategy.updated_at)
        written = record_skip(run, pause, self.take_events(), self.take_attempts(attempt))
        return self.result("skipped" if written else "not_run", reason)

    def record(self, run: Run, advance: StrategyAdvance | None = None,
               detail: str | None = None) -> StrategyResult:
        """Write a final run with its strategy change and the turn's events (one put without either).

        A change that is not only a pause requires the strategy unchanged since this turn read it.
        """
        seen = self.strategy.updated_at
        if advance is not None and not advance.allow_pending and advance.seen_updated_at != seen:
            advance = replace(advance, seen_updated_at=seen)
        written = record_run(run, advance=advance, events=self.take_events(), attempts=self.take_attempts())
        return self.result(run.status if written else "not_run", detail)

    def make_event(self, kind: str, close_time: int | None = None, *, second: bool = False, tag: str = "",
                   **details: Any) -> StrategyEvent:
        """One event of this candle (or of ``close_time``), details as plain text and numbers; ``second``:
        about a hedge flip's second order, whose events are kept apart from its first's (their own tag);
        ``tag``: another such set (``klineo.runner.reprice``'s). The turn's second event of one candle, kind
        and tag is numbered apart (``seq``): none replaces another; a turn played again keys them alike."""
        plain = {k: plain_text(v) if isinstance(v, Decimal) else v
                 for k, v in details.items() if v is not None}
        strategy = self.strategy
        at = close_time if close_time is not None else self.close_time
        if second:
            tag = _SECOND_LEG_TAG
        key = (at, kind, tag)
        seq = self.made[key] = self.made.get(key, 0) + 1
        return StrategyEvent(strategy.strategy_id, strategy.user_id, kind, at, plain, close_time=at, tag=tag,
                             seq=seq)

    def made_of(self, close_time: int) -> dict[str, int]:
        """How many events of each kind and tag (``<kind>#<tag>``) this turn made on the candle of
        ``close_time`` so far: what a claim leaves for the settle of a later attempt (``EVENTS_MADE``)."""
        return {f"{kind}#{tag}": count for (at, kind, tag), count in self.made.items() if at == close_time}

    def number_on(self, pending: PendingOrder) -> None:
        """Number this turn's events of ``pending``'s candle on from the ones its claim made (an earlier
        attempt's, ``EVENTS_MADE``), so that its settle replaces none of them."""
        for name, count in (pending.facts.get(EVENTS_MADE) or {}).items():
            kind, _, tag = str(name).partition("#")
            key = (pending.close_time, kind, tag)
            self.made[key] = max(self.made.get(key, 0), int(count))

    def event(self, kind: str, close_time: int | None = None, *, second: bool = False,
              **details: Any) -> None:
        """Add one event of this candle to the turn's next write (its key: ``make_event``)."""
        self.events.append(self.make_event(kind, close_time, second=second, **details))

    def take_events(self) -> list[StrategyEvent]:
        """The events not written yet, handed to the write that carries them."""
        events, self.events = self.events, []
        return events

    def take_attempts(self, attempt: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The refused order attempts a run's write carries: ``attempt`` (the order the run skipped) and the
        flip's new side a limit refused (``entry_refusal``), if not written yet. A run written by this turn
        answers the candle, so the refusal is recorded with it, once (the run is only written if absent)."""
        attempts = [put for put in (attempt, self.entry_refusal) if put is not None]
        self.entry_refusal = None
        return attempts

    def risk_block(self, exc: KlineoError, refused: OrderIntent | None = None,
                   cid: str | None = None) -> StrategyResult:
        """The risk gate refused: a risk_block event naming the gate, a skipped run, nothing sent.

        ``refused``: the order it refused (``cid``: its id, when not the candle's), recorded as a refused
        order attempt in the run's write; None when the turn was refused before it decided any order (a
        kill switch: no attempt of an order)."""
        gate = exc.field or str(exc.category)
        message = gate_message(exc)
        self.event("risk_block", gate=gate, message=message)
        attempt = None if refused is None else self.refused_attempt(refused, exc, message, cid)
        return self.skip(gate, attempt=attempt)

    def left_on_disabled(self, exc: KlineoError, trading: TradingContext) -> StrategyResult:
        """An active strategy on a disabled connection: the disable's pause of the connection's strategies
        (``klineo.services.key_health``) missed it, cut short by a storage error. Paused now with the
        disable's own reason (the enable resumes it), in the write of its skipped run, beside the
        risk_block event; only while it is as this turn read it: one the user paused, edited or deleted
        meanwhile is read again and left alone. Costs nothing on an enabled connection's turn."""
        self.event("risk_block", gate=exc.field, message=gate_message(exc))
        reason = trading.connection.disabled_reason or DISABLED_PREFIX
        logger.warning("strategy left active on a disabled connection: pausing it",
                       extra={"strategy_id": self.strategy.strategy_id, "pause": reason})
        return self.skip(CONNECTION_DISABLED, pause_reason=reason, message=gate_message(exc),
                         if_unchanged=True)

    def connection_gone(self) -> StrategyResult:
        """The strategy's connection no longer exists: a skipped run that pauses it (connection_not_found),
        only while it is as this turn read it: one the user (or the connection's delete) paused, edited or
        deleted meanwhile is read again and left alone, its own reason kept."""
        return self.skip("connection_not_found", pause_reason="connection_not_found", if_unchanged=True)

    def refused_attempt(self, intent: OrderIntent, exc: KlineoError, message: str,
                        cid: str | None = None) -> dict[str, Any]:
        """The Put of the strategy's order ``intent`` the gate refused, as a refused order attempt (origin:
        the strategy; its id: the one it would have had, ``cid`` or else the candle's, never sent)."""
        # Imported here: only a refusal records an attempt, not every turn's cold start.
        from klineo.store.order_attempts import RefusedAttempt, attempt_put, refusal_of

        strategy = self.strategy
        return attempt_put(RefusedAttempt(
            user_id=strategy.user_id,
            client_order_id=cid or client_order_id(strategy.strategy_id, self.close_time),
            connection_id=strategy.connection_id, symbol=strategy.symbol, origin=strategy.strategy_id,
            attempt_ms=self.ctx.now_ms(), side=intent.side, type=intent.type,
            refusal=refusal_of(exc, message), quantity=plain_text(intent.quantity),
            position_side=intent.position_side, reduce_only=intent.reduce_only,
        ))

    def count_failure(self, exc: KlineoError, close_time: int | None = None) -> tuple[int | None, str | None]:
        """(the strategy's new count of failed runs, the pause it reaches) after a run ``exc`` failed
        (``klineo.runner.failures``; (None, None): not counted), with the ``paused`` event at the limit."""
        count, pause = after_failure(self.strategy.failed_runs, exc)
        if pause is not None and count is not None:
            self.event("paused", close_time, reason=pause, message=paused_message(count, exc))
        return count, pause

    def log_pause(self, exc: KlineoError, pause: str, stored: bool, held: Decimal = Decimal(0)) -> None:
        """Log the pause a failed run reached (``pause``: its reason) as it was stored: a resume between the
        claim and the settle drops it (``Settled.paused``), the strategy then active with a fresh count.
        ``held``: the live position the strategy holds, named when the pause leaves it to the user."""
        extra = {"strategy_id": self.strategy.strategy_id, "category": str(exc.category), "pause": pause}
        if stored:  # a pause at once says why (nothing kept failing); any other is one by count
            said = _PAUSED_AT_ONCE_LOG.get(pause, "strategy paused: its runs or its keys keep failing")
            if _leaves_position(pause, held):
                said += "; the position it holds stays open, the user's to close"
                extra.update(symbol=self.strategy.symbol, position=plain_text(held))
            logger.warning(said, extra=extra)
        else:
            logger.info("strategy not paused: resumed while its order was in flight, counted from the resume",
                        extra=extra)

    def failure_advance(self, exc: KlineoError, pause: str | None = None) -> StrategyAdvance | None:
        """The strategy change of a run ``exc`` failed: ``pause`` (``invalid_symbol``: the symbol is the
        problem; ``untradable_size``: the sizing) at once with its ``paused`` event, else the count of failed
        runs and the pause it reaches; None: the run alone (ONE put)."""
        if pause is not None:  # paused anyway: the count no longer matters (resuming clears it)
            held = self.strategy.live_position if self.live else Decimal(0)
            self.event("paused", reason=pause, message=_paused_at_once(self.strategy, pause, exc, held))
            self.log_pause(exc, pause, stored=True, held=held)  # stored with the run, as below
            advance = _pausing(pause)
            if isinstance(exc, LeverageAboveSymbolMax) and advance is not None:  # the resume's check reads it
                refused = {"leverage": exc.leverage, "maximum": exc.maximum}
                advance = replace(advance, extra={"leverage_refused": refused})
            return advance
        count, reached = self.count_failure(exc)
        if reached is not None:  # stored with the run (one conditional write: both or neither)
            self.log_pause(exc, reached, stored=True)
        return StrategyAdvance(failed_runs=count, pause_reason=reached) if count is not None else None

    def success_advance(self) -> StrategyAdvance | None:
        """The strategy change of a run that neither failed nor skipped: its failed runs count cleared,
        None when there is none (a hold stays ONE put)."""
        cleared = after_success(self.strategy.failed_runs)
        return StrategyAdvance(failed_runs=cleared) if cleared is not None else None

    # ------------------------------------------------------------------ the turn
    def play(self) -> StrategyResult:
        strategy, now = self.strategy, self.ctx.now_ms()
        if strategy.last_close is not None and strategy.last_close >= self.close_time:
            return self.result("not_run", "already ran on this candle")
        pending = strategy.pending
        if pending is not None and pending.lease_until_ms > now:
            if pending.close_time == self.close_time:
                return self.result("not_run", "another attempt holds this candle")
            # Another attempt is settling an older order right now: run this candle again later.
            return self.result("not_run", "an older order is being settled", retry=True)
        try:
            trading = self.ctx.trading(strategy.user_id, strategy.connection_id)
        except KlineoError as exc:
            if exc.category is not ErrorCategory.NOT_FOUND:
                raise
            return self.connection_gone()
        self.trading = trading
        try:
            check_order(trading, live=self.live)
        except KlineoError as exc:
            if exc.field == CONNECTION_DISABLED:
                return self.left_on_disabled(exc, trading)
            if pending is None or exc.field not in _SETTLED_PAST_GATES:
                return self.risk_block(exc)
            # An order already sent is settled past a switch or a connection's delete (its resend re-checks
            # the gates and stays blocked): a fill is recorded and protected rather than left unknown while
            # the switch is on, or for good once the connection is gone.
            return self.settle_first(pending, trading) or self.risk_block(exc)
        if pending is not None:
            stop = self.settle_first(pending, trading)
            if stop is not None:
                return stop
        # Judged now, not when the turn began: settling an older order (lookups, fills, its stops) can
        # take long enough for the next candle to close meanwhile.
        if is_superseded(self.close_time, strategy.interval, self.ctx.now_ms()):
            return self.skip("stale_candle")
        if self.ctx.group is None:
            return self.refused_market(self.ctx.group_error)
        if not self.live:
            # Loaded here: only a paper turn reaches this line, not every worker's cold start.
            from klineo.runner.paper_turn import paper_candles, paper_protective_exit, paper_reprice

            candles = paper_candles(self)
            paper_reprice(self, candles)
            liquidated = paper_protective_exit(self, candles)
            if liquidated is not None:
                return liquidated
        return self.decide_and_trade(trading)

    def settle_paused(self) -> StrategyResult:
        """A paused strategy's live order in flight (claimed before the pause, its outcome not recorded):
        looked up and settled as Binance did it, past a kill switch or futures off as an active one's (a fill
        on the position and an entry's stops placed, which only reduce), never sent again
        (``settle_pending``); nothing else is decided or traded."""
        strategy = self.strategy
        pending = strategy.pending
        assert pending is not None
        if pending.lease_until_ms > self.ctx.now_ms():
            return self.result("not_run", "another attempt holds its order in flight")
        try:
            trading = self.ctx.trading(strategy.user_id, strategy.connection_id)
        except KlineoError as exc:
            if exc.category is not ErrorCategory.NOT_FOUND:
                raise
            return self.result("not_run", "paused; its connection is gone")
        try:
            check_order(trading, live=self.live)
        except KlineoError as exc:
            if exc.field not in _SETTLED_PAST_GATES:  # a disabled connection: its keys cannot look it up
                return self.result("not_run", f"paused; its order in flight not settled past {exc.field}")
        self.trading = trading
        settled = self.settle_pending(pending, trading)
        return settled or self.result("not_run", "paused; its order in flight settled")

    def settle_first(self, pending: PendingOrder, trading: TradingContext) -> StrategyResult | None:
        """Settle the strategy's order in flight before its turn: the turn's result when that ends it (the
        order was this candle's, or the strategy changed meanwhile), else None with the strategy read again
        (the turn goes on from what the order did)."""
        strategy = self.strategy
        settled = self.settle_pending(pending, trading)
        if settled is not None:
            return settled
        reloaded = get_strategy(strategy.user_id, strategy.strategy_id, consistent=True)
        if reloaded is None or not reloaded.active or reloaded.pending is not None:
            return self.result("not_run", "strategy changed while settling its last order")
        self.strategy = reloaded
        return None

    def live_reprice(self, target: Decimal) -> None:
        """Changed percents move the open live position's protective orders (``klineo.runner.reprice``),
        in a turn whose order (if any) neither enters nor closes: an entry arms its own from the settings."""
        strategy = self.strategy
        if self.trading is None or target == 0 or is_entry(strategy.live_position, target):
            return
        if not protection_due(strategy):
            return
        if LiveReprice(strategy, self.trading.connection, self.make_event).play():
            self.reload()

    def reload(self) -> None:
        """Read the strategy again (strongly consistent) after a write outside the run's own."""
        reloaded = get_strategy(self.strategy.user_id, self.strategy.strategy_id, consistent=True)
        if reloaded is not None:
            self.strategy = reloaded
            self.paper_equity_at = None  # the ledger may have moved

    def refused_market(self, exc: KlineoError | None) -> StrategyResult:
        """No candles for good (``klineo.runner.candles``): a candle Binance never made skips the tick
        (``no_candle``); otherwise a failed run, paused when the symbol is the problem."""
        exc = exc or KlineoError(ErrorCategory.OTHER, "no candles for this market")
        if exc.field == "close_time":
            return self.skip("no_candle")
        pause = INVALID_SYMBOL if exc.field == "symbol" else None
        return self.record(self.run("failed", error=_error(exc)), self.failure_advance(exc, pause),
                           str(exc.category))

    def decide(self) -> Decision | str:
        """The type's decision on the turn's candles; for a type or parameters stored before the routes
        refused them, what is wrong (``_invalid_parameters``: the paused event's message)."""
        strategy = self.strategy
        try:
            strategy_type = get_strategy_type(strategy.type)
            params = parse_parameters(strategy.type, strategy.parameters)
        except KeyError:
            return _invalid_parameters(None)
        except ValidationError as exc:
            return _invalid_parameters(exc, strategy_type.params_model.model_fields)
        lookback = strategy_type.lookback(params)
        assert self.ctx.group is not None
        candles = self.ctx.group.candles
        if len(candles) < lookback:  # the group holds fewer than these parameters read (raised since?)
            candles = self.ctx.group.for_lookback(lookback)  # a failed read ends the turn for a retry
        return strategy_type.decide(params, candles[-lookback:])

    def plan(self, signal: Signal, rules: SymbolRules, price: Decimal, trading: TradingContext) -> OrderPlan:
        """The order from the strategy's position to what its (direction-filtered) signal wants."""
        strategy = self.strategy
        settings = strategy.settings
        blocked = strategy.mode_reentry_block
        acted, block = acted_signal(signal, settings.direction, strategy.position, blocked)
        if blocked is not None and block is None:
            clear_reentry_block(strategy.user_id, strategy.strategy_id)  # the signal changed: entries allowed
        size = None
        if acted in (Signal.LONG, Signal.SHORT):
            if strategy.position == 0:  # a sizing stored before the routes refused it (UNTRADABLE_SIZE)
                require_tradable_sizing(rules, strategy.size, settings.quote_size_usdt)
            size = entry_size(strategy, acted, strategy.position, price, rules,
                              lambda: self.balance(trading, price))
            if size is not None and not self.live:
                from klineo.runner.paper_turn import paper_margin  # a paper turn's (loaded by ``play``)

                size = paper_margin(self, size, price)
        if size is None and acted in (Signal.LONG, Signal.SHORT):
            acted = Signal.HOLD
        if self.margin_refusal is not None and strategy.position == 0:
            return OrderPlan(target=Decimal(0))  # the refused entry was all the signal asked for
        return plan_order(acted, size or Decimal(0), strategy.position, rules, price)

    def balance(self, trading: TradingContext, price: Decimal) -> Decimal:
        """What percent sizing is a percent of: live USDT availableBalance, paper equity at the close
        (the backtest's ``Ledger.equity(close)``: realised plus the open position's unrealised PnL)."""
        if not self.live:
            from klineo.runner.paper_turn import paper_equity  # a paper turn's (loaded by ``play``)

            return paper_equity(self, price)
        client = self.client()
        rows = futures_balance(client, self.credentials(trading))
        usdt = next((row for row in rows if row.get("asset") == "USDT"), {})
        return Decimal(str(usdt.get("availableBalance", "0")))

    def verify_position(self, trading: TradingContext, *, again: bool = True) -> bool:
        """Compare the live belief with the exchange; on a close made elsewhere record it and correct.

        True when the belief was corrected (the caller plans again from the corrected position). A correction
        refused while the strategy did not move on (a forced order's record no longer keeps the estimates
        read: another strategy's turn kept its own there) is made ``again`` once, from the record as it is
        now; one refused because the strategy moved on is not (the position read may be older than its move).
        """
        strategy = self.strategy
        belief = strategy.live_position
        if belief == 0:
            return False  # nothing of the strategy's own to lose (no read, no weight)
        side = position_side_of(belief) if trading.connection.position_mode == HEDGE else "BOTH"
        exchange = self.ctx.positions.amount(trading.connection, strategy.symbol, side)
        left = position_left(belief, exchange)
        if left is None:
            return False
        forced = forced_closes(trading.connection, strategy, side)
        cause, stops = closing_cause(trading.connection, strategy, forced)  # read before they are cancelled
        book, records = self.forced_book(trading, forced, (belief, left))
        sets = {**((_legacy_paper_moved(strategy) if left == 0 else None) or {}), **book}
        if cause == "unknown":  # its stops read again by the next turns (``settle_close_cause``)
            sets["unknown_close"] = {"at": self.close_time, "stops": stops, "reads": 0}
        if forced:  # counted in this write: never again by a later correction (``forced_closes``)
            sets["forced_booked"] = forced_booked(strategy, forced)
        booked = {"realised_pnl": sets["live_book"]["realised_pnl"]} if "live_book" in sets else {}
        self.event("position_closed", cause=cause, position_before=belief,
                   position_after=left, exchange_position=exchange, **booked)
        block = ("long" if belief > 0 else "short") if left == 0 else None
        kept = self.stops_of_closed_position(trading) if left == 0 else None
        if kept is not None:
            sets["protective"] = kept
        written = correct_position(strategy.user_id, strategy.strategy_id, "live_position", (belief, left),
                                   reentry_block=block, events=self.take_events(), sets=sets or None,
                                   forget_protective=kept is None, records=records)
        self.reload()
        moved_on = self.strategy.pending is not None or self.strategy.live_position != belief
        if not written and again and not moved_on:  # refused by a forced order's record alone
            self.verify_position(trading, again=False)
        return True

    def settle_close_cause(self, trading: TradingContext) -> None:
        """Read again the stops of a close whose cause was unknown (``unknown_close``, runner.positions):
        Binance answering for all, one ``close_cause_settled`` event (protective or manual, naming the close)
        in the write that removes it; else the read counted, and removed unsettled after
        ``UNKNOWN_CLOSE_READS`` turns. Once: the write holds the ``unknown_close`` read."""
        strategy, seen = self.strategy, self.strategy.unknown_close
        assert seen is not None
        cause = stops_cause(trading.connection, [str(i) for i in seen.get("stops") or []])
        reads = int(seen.get("reads", 0)) + 1
        after = None if cause is not None or reads >= UNKNOWN_CLOSE_READS else {**seen, "reads": reads}
        events = [self.make_event("close_cause_settled", cause=cause, position_closed_at=int(seen["at"]))
                  ] if cause is not None else []
        settle_unknown_close(strategy.user_id, strategy.strategy_id, seen, after, events)

    def forced_book(self, trading: TradingContext, forced: list[dict[str, Any]],
                    moved: tuple[Decimal, Decimal]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The live book with what Binance's liquidation / ADL orders that closed the strategy's position
        realised and charged (``klineo.runner.pnl.forced_fills``), as {"live_book": ...}, and, when that is an
        estimate, the Updates of their records keeping it for the reconciler to replace
        (``klineo.runner.pnl.forced_estimates``); ({}, []) for a close made by hand or by a stop (a stop's
        fills are booked by the reconciler)."""
        if not forced:
            return {}, []
        strategy = self.strategy
        creds = self.credentials(trading)
        price = Decimal(str(forced[-1].get("avgPrice", 0)))
        fills = forced_fills((self.client(), creds), strategy, forced, moved, price,
                             reserve=FILLS_READ_RESERVE)
        before, after = moved
        estimates = forced_estimates(strategy, forced, moved, fills)
        records = [estimate_kept_update(forced_order_record(trading.connection, order,
                                                            estimates[int(order["orderId"])]))
                   for order in forced if int(order["orderId"]) in estimates]
        return {"live_book": live_book_after(strategy, fills, after - before, price, before)}, records

    def stops_of_closed_position(self, trading: TradingContext) -> dict[str, Any] | None:
        """Cancel the stops still open of a position closed elsewhere (one of them fired, or a close by hand):
        left armed, a sibling would close the strategy's next position at this one's level. None when all are
        gone (the record is forgotten); else the record keeping those whose cancel failed (``superseded``),
        cancelled by the next order (``disarm_previous``)."""
        record = self.strategy.protective or {}
        if record.get("parent_client_order_id") is None:
            return None
        left = _cancel_recorded_stops(trading.connection, record)
        if not left:
            return None
        return {"mode": "live", "parent_client_order_id": record["parent_client_order_id"], "armed": False,
                "superseded": left}

    def decide_and_trade(self, trading: TradingContext) -> StrategyResult:
        strategy = self.strategy
        if leaves_no_side(strategy.settings.direction, strategy.parameters):  # stored before it was refused
            return self.skip(NO_SIDE_TO_TRADE, pause_reason=NO_SIDE_TO_TRADE,
                             message=f"Paused: {NO_SIDE_LEFT}, then resume it.")
        if self.live and strategy.unknown_close:  # a close whose cause was unknown: read its stops again
            self.settle_close_cause(trading)
        decision = self.decide()
        if isinstance(decision, str):
            return self.skip(INVALID_PARAMETERS, pause_reason=INVALID_PARAMETERS, message=decision)
        assert self.ctx.group is not None
        reference_price = self.ctx.group.candles[-1].close
        facts = {
            "signal": str(decision.signal), "reason": decision.reason, "indicators": decision.indicators,
            "position_before": strategy.position,
        }
        client = self.client()
        legs: tuple[OrderLeg, ...] = ()
        try:
            rules = trading_rules(client, strategy.symbol)
            plan = self.plan(decision.signal, rules, reference_price, trading)
            checked = plan.side is not None or protection_due(strategy)  # an order, or stops to keep or place
            if self.live and checked and self.verify_position(trading):
                facts["position_before"] = self.strategy.position
                plan = self.plan(decision.signal, rules, reference_price, trading)
            if self.live:
                legs = self.legs(plan, trading, rules, reference_price)
        except KlineoError as exc:
            if exc.retryable and not exc.refused_by_binance:  # a refusal that lifts later is a failed run
                raise
            if exc.field == "close_time":  # a halt (``trading_rules``): that tick skipped, as with no candle
                return self.refused_market(exc)
            self.note_key_outcome(exc, READ)  # a revoked key reading the position or balance counts
            run = self.failed_run(exc, facts)
            return self.record(run, self.failure_advance(exc, _pause_at_once(exc)), str(exc.category))
        facts["target_position"] = plan.target
        if self.live:
            self.live_reprice(plan.target)
        if (plan.side is None or plan.quantity is None) and self.margin_refusal is None:
            # A hold is ONE conditional put of its run (it carries the signal and indicators): no
            # event, no strategy write (but the reset of a failed runs count, in the same request);
            # the log gets a signal when it acts (klineo.store.runs).
            return self.record(self.run("no_change", **facts), self.success_advance())
        self.event("signal", signal=str(decision.signal), reason=decision.reason,
                   indicators=decision.indicators)
        cid = client_order_id(strategy.strategy_id, self.close_time)
        if not self.live:
            from klineo.runner.paper_turn import paper_fill  # a paper turn's (loaded by ``play``)

            return paper_fill(self, plan, cid, reference_price, facts)
        return self.live_order(plan, legs, cid, trading, facts, reference_price)

    def legs(self, plan: OrderPlan, trading: TradingContext, rules: SymbolRules,
             price: Decimal) -> tuple[OrderLeg, ...]:
        """The live orders of ``plan`` in the connection's position mode (``order_legs``)."""
        hedge = trading.connection.position_mode == HEDGE
        return order_legs(plan, self.strategy.live_position, hedge, rules, price)

    def intent(self, leg: OrderLeg) -> OrderIntent:
        """What the risk gate is asked about one order of the strategy."""
        return OrderIntent(symbol=self.strategy.symbol, side=leg.side, type="MARKET", quantity=leg.quantity,
                           reduce_only=leg.reduce_only, position_side=leg.position_side)

    def pending_intent(self, pending: PendingOrder) -> OrderIntent:
        """What the risk gate is asked about a claimed order (``pending``): the intent of its leg."""
        leg = OrderLeg(pending.side, pending.quantity, pending.position_side, pending.reduce_only)
        return self.intent(leg)

    def live_order(
        self, plan: OrderPlan, legs: tuple[OrderLeg, ...], cid: str, trading: TradingContext,
        facts: dict[str, Any], price: Decimal,
    ) -> StrategyResult:
        assert plan.side is not None and plan.quantity is not None and legs
        strategy = self.strategy
        trading = strategy_trading_context(strategy, trading)  # the strategy's leverage / margin type
        # A hedge flip's entry has its own id (built only for a flip: one leg is every other order).
        ids = (cid, client_order_id(strategy.strategy_id, self.close_time, 2)) if len(legs) > 1 else (cid,)
        at = 0
        try:
            for at in reversed(range(len(legs))):  # a hedge flip's entry first: the leg a limit can refuse
                check_order(trading, self.intent(legs[at]), lambda: price)
        except KlineoError as exc:
            close = _close_only(plan, strategy.live_position)
            if close is None or exc.field not in LIMIT_GATES:
                return self.risk_block(exc, self.intent(legs[at]), ids[at])  # the leg the gate refused
            # A limit refuses the flip's new exposure; closing is never limited ("a limit must never trap a
            # position"): the close alone goes out.
            self.event("risk_block", gate=exc.field, message=exc.trader_message)
            legs, facts = self.close_alone(exc, close, legs, at, ids, facts)
        try:
            creds = self.credentials(trading)
        except KlineoError as exc:
            if exc.category is not ErrorCategory.NOT_FOUND:
                raise
            return self.refused_for_key(exc, facts)
        refusal = self.symbol_refusal(trading, creds, legs)
        if refusal is not None:
            close = _close_only(plan, strategy.live_position)
            if close is None or refusal.field not in SETTING_FIELDS:  # a key refusal fails the close too
                return self.refused_settings(refusal, facts)
            self.event("error", category=str(refusal.category), message=refusal.trader_message,
                       what="new_side_not_opened")
            legs, facts = self.close_alone(refusal, close, legs, len(legs) - 1, ids, facts)
        leg = legs[0]
        intent = self.intent(leg)
        pending = self.pending_of(leg, cid, facts)
        if len(legs) > 1:  # a hedge flip: the new side's entry, claimed once the close settled
            following = legs[1]
            pending.facts[NEXT_LEG] = {
                "client_order_id": ids[1],
                "side": following.side, "quantity": plain_text(following.quantity),
                "position_side": following.position_side, "price": plain_text(price),
            }
        try:
            refused = self.claim(pending, intent, price)
        except _FlipLimited as limited:  # a limit lowered since the gates' read: the close goes out alone
            close = _close_only(plan, strategy.live_position)
            assert close is not None
            self.made[(self.close_time, "order_submit", "")] -= 1  # the flip's, never written
            self.event("risk_block", gate=limited.refusal.field, message=limited.refusal.trader_message)
            legs, facts = self.close_alone(limited.refusal, close, legs, 0, ids, facts)
            pending = self.pending_of(legs[0], cid, facts)
            refused = self.claim(pending, self.intent(legs[0]), price)
        if refused is not None:
            return refused
        return self.send_and_settle(pending, creds, earlier_attempt_ms=None)

    def pending_of(self, leg: OrderLeg, cid: str, facts: dict[str, Any]) -> PendingOrder:
        """The pending order of ``leg`` under ``cid``, claimed now, with the turn's decision (``facts``)."""
        strategy = self.strategy
        return PendingOrder(
            close_time=self.close_time, client_order_id=cid, side=leg.side, quantity=leg.quantity,
            reduce_only=leg.reduce_only, position_side=leg.position_side,
            position_before=strategy.live_position, claimed_at_ms=self.ctx.now_ms(),
            lease_until_ms=self.ctx.deadline_ms,
            facts={
                "signal": facts["signal"], "reason": facts["reason"], "indicators": facts["indicators"],
                "target_position": plain_text(facts["target_position"]),
                "protective": live_percents(strategy),  # the ones wanted for an entry
            },
        )

    def claim(self, pending: PendingOrder, intent: OrderIntent, price: Decimal) -> StrategyResult | None:
        """Claim the order in ONE transaction (klineo.store.runs.claim_live_order); None when claimed.

        With it: the order history's PENDING record and the events so far plus order_submit. A gate
        refusal becomes a risk_block naming the gate (check_order on the items the transaction handed
        back); StrategyChanged when the strategy is not as read (the turn is played again).
        """
        strategy = self.strategy
        submit = self.submit_event(pending)
        if len(self.made) > 2:  # events besides its signal and order_submit: a later settle numbers on
            pending.facts[EVENTS_MADE] = self.made_of(pending.close_time)
        record = self.order_record(pending).to_item()
        for _ in range(CLAIM_ATTEMPTS):
            item = cached_connection_item(strategy.user_id, strategy.connection_id)
            if item is None:
                return self.connection_gone()
            claim = claim_live_order(
                strategy.user_id, strategy.strategy_id, pending, seen_updated_at=strategy.updated_at,
                gates=gate_condition_checks(GateChecks(strategy.user_id, item, switches=True)),
                record=record, events=[*self.events, submit], attempt=self.entry_refusal,
            )
            if claim:
                self.events, self.entry_refusal = [], None
                return None
            refused = self.claim_refused(claim.failed, item, intent, price, pending)
            if refused is not None:
                return refused
        return self.result("not_run", "the connection kept changing while claiming", retry=True)

    def submit_event(self, pending: PendingOrder) -> StrategyEvent:
        """The ``order_submit`` event of ``pending`` (positionSide shown in hedge mode)."""
        return self.make_event("order_submit", pending.close_time, second=_is_second(pending),
                               client_order_id=pending.client_order_id, side=pending.side,
                               quantity=pending.quantity, reduce_only=pending.reduce_only,
                               position_side=_hedge_side(pending))

    def claim_refused(
        self, failed: dict[str, dict[str, Any] | None], item: dict[str, Any], intent: OrderIntent,
        price: Decimal, pending: PendingOrder,
    ) -> StrategyResult | None:
        """What a refused claim means; None when only a cached connection setting was stale (claim again).
        A limit lowered since the gates' read refusing a one-way flip raises _FlipLimited (its close alone
        is claimed instead, ``live_order``), as a limit read lower from the start does."""
        strategy = self.strategy
        if "run" in failed:
            return self.result("not_run", "already ran on this candle")
        if "strategy" in failed:
            raise StrategyChanged(failed["strategy"])
        if "record" in failed:
            logger.error("strategy order's client order id already recorded; nothing sent",
                         extra={"strategy_id": strategy.strategy_id, "close_time": self.close_time})
            return self.result("not_run", "client order id already recorded")
        refusal = self.gate_refusal(failed, item, intent, price)
        if refusal is None:
            return None
        if refusal.field == "connection_not_found":
            return self.connection_gone()
        if refusal.field in LIMIT_GATES and _one_way_flip(pending):
            raise _FlipLimited(refusal)
        return self.risk_block(refusal, intent)

    def gate_refusal(
        self, failed: dict[str, dict[str, Any] | None], item: dict[str, Any], intent: OrderIntent,
        price: Decimal,
    ) -> KlineoError | None:
        """The gate a claim's failed ConditionChecks close for ``intent`` (asked of the items handed back;
        field ``connection_not_found`` when the connection is gone), None when only a cached connection
        setting was stale (the cache now holds the item handed back: claim again). The turn's own connection
        is brought in step with it: what the turn judges after the claim (a hedge flip's entry, at the
        hand-over) is judged by the connection that claim's ConditionCheck holds, never by the batch's
        older read (a limit lowered between the two let that entry out above it)."""
        strategy = self.strategy
        if "connection" in failed:
            item = failed["connection"] or {}
            if not item:
                forget_connection(strategy.user_id, strategy.connection_id)
                return KlineoError(ErrorCategory.NOT_FOUND, "the strategy's connection no longer exists",
                                   field="connection_not_found")
            remember_connection(strategy.user_id, strategy.connection_id, item)
        connection = connection_from_item(item)
        if "connection" in failed and self.trading is not None:
            self.trading = replace(self.trading, connection=connection)
        context = strategy_trading_context(strategy, TradingContext(
            connection, user_kill_switch=kill_switch_of(failed.get("user_flags")),
            global_kill_switch=kill_switch_of(failed.get("global_flags"))))
        try:
            check_order(context, live=True)
            check_order(context, intent, lambda: price)
        except KlineoError as exc:
            return exc
        return None

    def note_key_outcome(self, exc: KlineoError | None, call: KeyCall) -> None:
        """Count a key refusal of a ``call`` (``klineo.services.key_health``: READ or TRADE) on the
        connection, or clear what its success disproves; an order settled whose fills read was then refused
        for the key (``fills_key_failure``) counts that read's refusal, once, in place of the order's
        success."""
        if exc is None and self.fills_key_failure is not None:
            exc, call, self.fills_key_failure = self.fills_key_failure, READ, None
        if self.trading is not None:
            note_key_outcome(self.trading.connection, exc, call)

    def symbol_refusal(
        self, trading: TradingContext, creds: Any, legs: tuple[OrderLeg, ...],
    ) -> KlineoError | None:
        """Binance's refusal of the connection's margin type or leverage on the symbol; None when applied
        (or not needed: ``prepare_symbol`` applies nothing for legs that only close). A flip refused here
        sends its close alone (``close_alone``); its next entry, from flat, applies the settings."""
        reduces = all(reduces_position(leg.side, leg.position_side, leg.reduce_only) for leg in legs)
        try:
            prepare_symbol(self.client(), creds, trading.connection, self.strategy.symbol, reduces=reduces)
        except KlineoError as exc:
            note_key_outcome(trading.connection, exc, TRADE)  # a margin type or leverage change trades
            if exc.retryable and not exc.refused_by_binance:  # a refusal that lifts later is a failed run
                raise
            return exc
        return None

    def close_alone(
        self, exc: KlineoError, close: OrderPlan, legs: tuple[OrderLeg, ...], at: int, ids: tuple[str, ...],
        facts: dict[str, Any],
    ) -> tuple[tuple[OrderLeg, ...], dict[str, Any]]:
        """A flip whose new side ``exc`` refused (``legs[at]``): the legs and facts of its close alone.

        The close goes out (reduce-only; hedge: the old side's) under the candle's id; the refused order is
        a refused attempt under the flip's second id (one-way: the whole flip; hedge: its entry)."""
        strategy = self.strategy
        flip_id = ids[at] if len(legs) > 1 else client_order_id(strategy.strategy_id, self.close_time, 2)
        self.entry_refusal = self.refused_attempt(self.intent(legs[at]), exc, exc.message, flip_id)
        return (_closing_leg(close, legs[0]),), {**facts, "target_position": close.target}

    def refused_settings(self, exc: KlineoError, facts: dict[str, Any]) -> StrategyResult:
        """Binance refused the symbol's margin type or leverage (e.g. an open position of the other margin
        type): a failed run, with the turn's signal and an ``error`` event saying why, as any failed turn.
        Refused for the key itself (permission, signature, IP): a key failure, as an order's would be."""
        if is_key_failure(exc):
            return self.refused_for_key(exc, facts)
        run = self.failed_run(exc, facts)
        advance = self.failure_advance(exc, _pause_at_once(exc, by_field=False)) or StrategyAdvance()
        written = record_run(run, advance=advance, events=self.take_events(), attempts=self.take_attempts())
        return self.result("failed" if written else "not_run", str(exc.category))

    def refused_for_key(self, exc: KlineoError, facts: dict[str, Any]) -> StrategyResult:
        """The keys are gone, or Binance refused them, before anything was sent: a failed run that counts
        as a key failure (the strategy's count; the connection's is ``note_key_outcome``'s)."""
        strategy = self.strategy
        failures = strategy.key_failures + 1
        pause = f"key_failure:{exc.category}" if failures >= KEY_FAILURE_LIMIT else None
        run = self.failed_run(exc, facts)
        if pause:
            self.event("paused", reason=pause)
        written = record_run(run, advance=StrategyAdvance(key_failures=failures, pause_reason=pause),
                             events=self.take_events(), attempts=self.take_attempts())
        return self.result("failed" if written else "not_run", str(exc.category))

    # ------------------------------------------------------------------ live orders
    def order_record(self, pending: PendingOrder) -> OrderRecord:
        """The order history's PENDING record of ``pending`` (origin = this strategy), created now."""
        strategy, cid = self.strategy, pending.client_order_id
        return strategy_order_record(
            strategy.user_id, cid, strategy_id=strategy.strategy_id, connection_id=strategy.connection_id,
            symbol=strategy.symbol, params=self.order_of(pending).to_params(cid),
            attempt_ms=self.ctx.now_ms())

    def order_of(self, pending: PendingOrder) -> FuturesOrder:
        """The MARKET order of ``pending`` (made and checked once per turn: the claim's record and the
        send both need it)."""
        key = (self.strategy.symbol, pending.side, pending.quantity, pending.reduce_only,
               pending.position_side)
        if self.order is None or self.order[0] != key:
            self.order = (key, FuturesOrder(symbol=key[0], side=key[1], type="MARKET", quantity=key[2],
                                            reduce_only=key[3], position_side=key[4]))
        return self.order[1]

    def send_and_settle(
        self, pending: PendingOrder, creds: Any, *, earlier_attempt_ms: int | None,
    ) -> StrategyResult:
        strategy = self.strategy
        client = self.client()
        order = self.order_of(pending)
        if earlier_attempt_ms is not None:
            # Sent again after a lost attempt: its order history record, should the claim of an older
            # version not have written it (a no-op otherwise; the claim puts it).
            put_new_record(self.order_record(pending))
        try:
            result = submit_futures_order(
                client, creds, order, pending.client_order_id,
                earlier_attempt_ms=earlier_attempt_ms, clock=self.ctx.clock,
                before_resend=lambda: self.recheck_gates(pending),
            )
        except _ResendBlocked as blocked:
            return self.settle_blocked(pending, blocked.refusal)
        except _NoLongerLive:
            return self.settle_not_placed(pending, live=False)
        except KlineoError as exc:
            # Not placed for sure only when Binance refused it (even a refusal that lifts by itself):
            # an unknown outcome, a rate limit or an outage is looked up and maybe sent again later.
            if exc.transient:
                logger.warning("strategy order unsettled; will look again", extra={
                    "strategy_id": strategy.strategy_id, "client_order_id": pending.client_order_id,
                    "category": str(exc.category),
                })
                return self.result("pending", str(exc.category), retry=True)
            return self.settle_refused(pending, exc)
        return self.settle_result(pending, result)

    def recheck_gates(self, pending: PendingOrder) -> None:
        """Right before a lost attempt is sent again: the gates read now (one consistent BatchGetItem),
        since the batch's read may be older than a kill switch or a lowered limit (max_leverage,
        max_notional_usdt: an order adding exposure is valued as its first send was, ``resend_price``); a
        closed gate raises _ResendBlocked. The strategy is read again too: switched to paper or paused
        meanwhile, it raises _NoLongerLive. A transient failure of the valuation's mark price read (Binance
        busy or down) is no gate's refusal: it is raised as it is, the order left pending for a later turn
        (``send_and_settle``), never settled refused for an outage.

        A one-way flip is one order (close and open together): the second send is the order claimed under
        this clientOrderId or nothing, so a lowered limit stops it whole. Its close is another order, which
        only a claim of its own may send exactly once: ``settle_blocked`` hands the flip over to it
        (``close_after_blocked``), so the close still goes out in this turn, as at a first send
        (``live_order``, ``close_alone``)."""
        strategy = self.strategy
        current = get_strategy(strategy.user_id, strategy.strategy_id, consistent=True)
        if current is None or not current.active or current.mode != "live":
            raise _NoLongerLive
        trading = strategy_trading_context(strategy, load_trading_context(strategy.user_id,
                                                                          strategy.connection_id))
        try:
            check_order(trading, self.pending_intent(pending), partial(self.resend_price, pending))
        except KlineoError as exc:
            if exc.transient:  # the mark price read failed (no gate refuses with a transient error)
                raise
            raise _ResendBlocked(exc) from None

    def resend_price(self, pending: PendingOrder) -> Decimal:
        """The price a lost attempt's second send is valued at by the limits: its candle's close, as its
        first send was (``live_order``); the mark price when the turn has no candles (asked only then)."""
        close = self.decision_close(pending)
        return close if close is not None else futures_mark_price(self.client(), self.strategy.symbol)

    def settle_blocked(self, pending: PendingOrder, exc: KlineoError) -> StrategyResult:
        """The gate closed before a lost attempt was sent again: never sent, the run skipped naming it; a
        one-way flip a limit stopped sends its close alone instead (``close_after_blocked``)."""
        gate = exc.field or str(exc.category)
        self.event("risk_block", close_time=pending.close_time, second=_is_second(pending), gate=gate,
                   message=gate_message(exc))
        if gate in LIMIT_GATES and _one_way_flip(pending):
            closed = self.close_after_blocked(pending, exc)
            if closed is not None:
                return closed
        why = {"category": gate, "message": gate_message(exc)}
        return self.settle_skipped(pending, gate, exc.to_dict(), why)

    def close_after_blocked(self, pending: PendingOrder, exc: KlineoError) -> StrategyResult | None:
        """A one-way flip (``pending``, proven never placed) whose second send a lowered limit ``exc``
        stopped: its close goes out alone in this turn, as a limit read lower at its first send does
        (``close_alone``), as its own order under the flip's second id (kf...), exactly once: ONE write
        settles the flip REJECTED naming the limit and claims the close (``hand_over_live_order``, with the
        gates' ConditionChecks and this turn's events), then it is sent and its settle writes the candle's
        run. None when that write is refused (the flip's run is then skipped, as before; the close waits
        for the next candle)."""
        strategy = self.strategy
        close = replace(
            pending, client_order_id=client_order_id(strategy.strategy_id, pending.close_time, 2),
            quantity=abs(pending.position_before), reduce_only=True, claimed_at_ms=self.ctx.now_ms(),
            lease_until_ms=self.ctx.deadline_ms, facts={**pending.facts, "target_position": "0"})
        key = (pending.close_time, "order_submit", "")
        self.made[key] = max(self.made.get(key, 0), 1)  # the flip's claim made its order_submit
        submit = self.submit_event(close)
        close.facts[EVENTS_MADE] = self.made_of(close.close_time)
        item = cached_connection_item(strategy.user_id, strategy.connection_id)
        if item is None:
            return None
        outcome = order_outcome_update(strategy.user_id, pending.client_order_id, status=STATUS_REJECTED,
                                       error=exc.to_dict())
        claim = hand_over_live_order(
            strategy.user_id, strategy.strategy_id, pending, close, position_to=pending.position_before,
            key_failures=strategy.key_failures, outcome=outcome, record=self.order_record(close).to_item(),
            events=[*self.events, submit], filled=False,
            gates=gate_condition_checks(GateChecks(strategy.user_id, item, switches=True)))
        if not claim:
            return None
        self.events = []
        assert self.trading is not None
        return self.send_and_settle(close, self.credentials(self.trading), earlier_attempt_ms=None)

    def settle_skipped(self, pending: PendingOrder, reason: str, error: dict[str, Any],
                       why: dict[str, Any]) -> StrategyResult:
        """``pending`` settled unplaced with nothing to count: its record rejected (``error``), its candle's
        run skipped ``reason`` (``why``: what a hedge flip's run says of its unopened entry)."""
        strategy = self.strategy
        outcome = order_outcome_update(strategy.user_id, pending.client_order_id, status=STATUS_REJECTED,
                                       error=error)
        run = self.final_run(pending, "skipped", skip_reason=reason, why=why)
        settled = settle_live_order(
            strategy.user_id, strategy.strategy_id, pending, run,
            position_to=pending.position_before,
            outcome=outcome, events=self.take_events(),
        )
        if settled:
            self.after_second_leg_refused(pending)
        return self.result(run.status if settled else "not_run", reason)

    def settle_refused(self, pending: PendingOrder, exc: KlineoError) -> StrategyResult:
        """Binance refused the order (nothing placed): a failed run; key refusals count towards a pause.

        A refusal of the order's positionSide (-4061) or reduceOnly (-1106) means the account's position
        mode is not the connection's (switched outside KLINEO): the run fails with a message saying what
        to do, and counts towards the pause like any refusal that repeats by itself. A refusal of the symbol
        (its status, facts §15) follows the tick's one rule on the status read again
        (``klineo.runner.candles.status_refusal``): halted, the run is skipped (no_candle), nothing counted;
        ended or unlisted, the strategy pauses at once (invalid_symbol); still TRADING (or not read), the
        refusal counts as any other. A refusal of the order's type (-1116: the container's rules, up to an
        hour old, still listed MARKET) follows the rules read again (``type_refusal``): without MARKET, the
        strategy pauses at once (no_market_orders), as a turn that plans on such rules does; with it, the
        refusal counts as any other. A refusal for the account's cooling-off period (-4192) pauses it at once
        (cooling_off_period): no order passes until the period the user chose at Binance ends. So does one
        of a hedge flip's entry, its run still the close's (flat, nothing counted); any other refusal of the
        entry pauses nothing."""
        strategy, client = self.strategy, self.client()
        if position_mode_refused(exc):
            exc = KlineoError(exc.category, mode_mismatch_message(pending.position_side), code=exc.code,
                              field="positionSide", status=exc.status)
        # Refused for the symbol's status, or for its order type, each by its rules read again.
        judged = type_refusal(client, strategy.symbol, status_refusal(client, strategy.symbol, exc))
        if judged.field == "close_time":  # a halt: that tick skipped, as with no candle (nothing counted)
            refused = {**exc.to_dict(), "code": exc.code}
            return self.settle_skipped(pending, "no_candle", refused, _error(judged))
        failures = strategy.key_failures + 1 if exc.category in KEY_FAILURE_CATEGORIES else 0
        second = _is_second(pending)  # a hedge flip's entry: the run is its close's, not a failed one
        # An ended or unlisted symbol, or one without MARKET orders, by its rules read again, or the
        # account's cooling-off period by Binance's code (else counted); a flip's entry only by the code.
        at_once = _pause_at_once(judged, by_field=judged is not exc and not second)
        pause = f"key_failure:{exc.category}" if failures >= KEY_FAILURE_LIMIT else at_once
        self.event("error", close_time=pending.close_time, second=second, category=str(exc.category),
                   message=exc.trader_message, what="new_side_not_opened" if second else None)
        if pause:
            self.event("paused", close_time=pending.close_time, reason=pause,
                       message=_paused_at_once(strategy, pause, judged, pending.position_before)
                       if pause == at_once else None)
        # Never a key refusal; nor a flip's entry, whose run is its close's (its entry from flat, refused
        # again on the next candles, counts there); nor a pause at once.
        counted, repeated = (None, None) if second or at_once else self.count_failure(exc, pending.close_time)
        outcome = order_outcome_update(strategy.user_id, pending.client_order_id, status=STATUS_REJECTED,
                                       error={**exc.to_dict(), "code": exc.code})
        settled = settle_live_order(
            strategy.user_id, strategy.strategy_id, pending,
            self.final_run(pending, "failed", error=_error(exc)),
            position_to=pending.position_before, key_failures=failures, failed_runs=counted,
            seen={"key_failures": strategy.key_failures, "failed_runs": strategy.failed_runs},
            pause_reason=pause or repeated,
            outcome=outcome, events=self.take_events(),
        )
        if not settled:  # another attempt settled this refusal (and counted it): nothing more
            return self.result("not_run", "another attempt settled this order")
        self.after_second_leg_refused(pending)
        reached = pause or repeated
        if reached:
            self.log_pause(exc, reached, settled.paused, pending.position_before)
        self.note_key_outcome(exc, TRADE)
        return self.result("ordered" if second else "failed", str(exc.category))

    def settle_result(self, pending: PendingOrder, result: OrderResult) -> StrategyResult:
        """Binance has the order: once its fill is final, add it to the position and close the run."""
        strategy = self.strategy
        if result.status not in FINAL_ORDER_STATUSES:
            return self.result("pending", f"order {result.status}", retry=True)
        filled = _signed(pending.side, result.executed_quantity)
        position_to = pending.position_before + filled
        book, fills, price = self.live_book(pending, result, filled) or (None, None, None)
        # An estimated fill is kept on the record, so the reconciler books Binance's own in its place; the
        # fills read from Binance (none when nothing executed) are stored with it, settling the record (the
        # reconciler reads it no more).
        estimate = fills.recorded() if fills is not None and fills.estimated else None
        stored = _fills_stored(result, fills)
        watch = self.due_watch() if stored else None
        outcome = order_outcome_update(strategy.user_id, pending.client_order_id, status=result.status,
                                       order_id=result.order_id, result=result.to_record(),
                                       booked_estimate=estimate, **stored)
        if book is not None:
            self.event("order_fill", close_time=pending.close_time, second=_is_second(pending),
                       client_order_id=pending.client_order_id, side=pending.side,
                       position_side=_hedge_side(pending), quantity=result.executed_quantity,
                       price=price, realised_pnl=book["realised_pnl"], fees=book["fees"])
        run = self.final_run(pending, "ordered", order=run_order_of(result))
        if NEXT_LEG in pending.facts:  # a hedge flip's close: on to the new side, or the close's run alone
            # Loaded here: only a hedge flip's close reaches this line, not every worker's cold start.
            from klineo.runner.flip import hand_over

            handed = hand_over(self, pending, result, position_to, book, outcome)
            if handed is not None:
                return handed
            run = replace(run, target_position=position_to, error=self.not_opened)
        # The entry the gate refused at the hand-over, answered by this settle only (an older candle's
        # settle must not hand it to this candle's run).
        attempt, self.entry_refusal = self.entry_refusal, None
        if not settle_live_order(
            strategy.user_id, strategy.strategy_id, pending, run,
            position_to=position_to, key_failures=0, failed_runs=after_success(strategy.failed_runs),
            live_book=book, outcome=outcome, events=self.take_events(), attempt=attempt, watch=watch,
        ):
            return self.result("not_run", "another attempt settled this order")
        if watch is not None:
            from klineo.store.order_history import watched  # loaded by due_watch

            watched(strategy.user_id, strategy.connection_id, strategy.symbol)
        self.note_key_outcome(None, TRADE)
        self.after_live_fill(pending, price, position_to)
        return self.result("ordered", result.status)

    def due_watch(self) -> dict[str, Any] | None:
        """The symbol's watch (``klineo.store.order_history.watch_update``) for a settle that stores its
        order's fills, when due: such an order never reaches the reconciler, which watches the symbol of each
        order it settles, to follow the trades we did not place there. A hedge flip's close hands over
        without it: its position's entry was settled so, and a symbol with a position open stays watched."""
        # Loaded here: only a turn that read its order's fills reaches this line, not a worker's cold start.
        from klineo.store.order_history import watch_due, watch_update

        user, connection, symbol = self.strategy.user_id, self.strategy.connection_id, self.strategy.symbol
        if not watch_due(user, connection, symbol):
            return None
        return watch_update(user, connection, symbol, int(time.time() * 1000))

    def live_book(self, pending: PendingOrder, result: OrderResult,
                  filled: Decimal) -> tuple[dict[str, Any], Fills, Decimal] | None:
        """The live PnL book with this order's fills (Binance's realizedPnl, commission, else estimated),
        those fills and the fill price; None if unfilled.

        The price is Binance's avgPrice; when its answer lacked it (and the read-back failed), the fills'
        own (userTrades), else the decision candle's close, the fills then estimated (``booked_estimate``:
        the reconciler books Binance's in their place): a fill is never left out of the book, nor an entry
        without its stops and its ``entry_client_order_id``."""
        if filled == 0 or self.trading is None:
            return None
        creds = self.credentials(self.trading)
        before, cid = pending.position_before, pending.client_order_id
        client = self.client()
        fills = None
        # Binance's own fills (userTrades, weight 5 a page) only while the minute's weight leaves room for
        # the orders themselves, weighed before each page: a tick of many orders must never starve them of
        # request weight. A read it stops (None) is estimated, as one that failed or whose trades do not add
        # up to the order's executed quantity yet.
        if result.order_id is not None:
            try:
                fills = read_fills((client, creds), self.strategy.symbol, result.order_id,
                                   result.executed_quantity, reserve=FILLS_READ_RESERVE,
                                   priced=result.average_price is None)
            except KlineoError as exc:
                logger.warning("strategy fills not read; PnL estimated with the taker fee", extra={
                    "strategy_id": self.strategy.strategy_id, "category": str(exc.category)})
                if is_key_failure(exc):  # counted after the order's own outcome, not wiped by it
                    self.fills_key_failure = exc
        price = result.average_price or (fills.price if fills is not None else None)
        if price is None:
            fills, price = None, self.decision_close(pending)
            if price is None:
                return None
            logger.warning("strategy fill price unknown; estimated at the decision candle's close", extra={
                "strategy_id": self.strategy.strategy_id, "client_order_id": cid})
        # Estimated from our own entry price and the taker fee; the reconciler books Binance's exact
        # fills in its place (``booked_estimate`` on the order's record, klineo.runner.pnl).
        if fills is None:  # a price that is the close's is kept with the estimate: Binance's replaces it
            fills = estimated_fills(self.strategy, filled, price, before)._replace(
                price=None if result.average_price else price)
        return live_book_after(self.strategy, fills, filled, price, before, cid), fills, price

    def decision_close(self, pending: PendingOrder) -> Decimal | None:
        """The close of the candle ``pending`` was decided on (in the turn's window), else the window's last
        close; None without candles."""
        candles = self.ctx.group.candles if self.ctx.group is not None else ()
        decided = [c.close for c in candles if c.close_time == pending.close_time]
        return (decided or [c.close for c in candles] or [None])[-1]

    def disarm_previous(self, before: Decimal, position_to: Decimal) -> list[str]:
        """The strategy's own order closed, flipped or grew the position: cancel the earlier entry's stops
        (a new entry arms its own for the whole position; a stale stop must never close a later one). The
        ones whose cancel failed are returned: the new entry's record keeps them (``superseded``)."""
        armed = self.strategy.protective or {}
        parent = armed.get("parent_client_order_id")
        if parent is None or self.trading is None or not (position_to == 0 or is_entry(before, position_to)):
            return []
        return _cancel_recorded_stops(self.trading.connection, armed)

    def after_live_fill(self, pending: PendingOrder, price: Decimal | None, position_to: Decimal) -> None:
        """Protective orders for an entry (the ones wanted at claim time); re-placed for what a reduction
        left; forgotten once flat."""
        strategy, before = self.strategy, pending.position_before
        left = self.disarm_previous(before, position_to)
        entered = is_entry(before, position_to)
        record = self.wanted_protection(pending, price) if entered and price is not None else None
        if record is None:
            if position_to != 0 and not entered:
                self.follow_reduction(pending, position_to)
            elif strategy.protective:
                # Flat, or an entry without stops of its own: disarm_previous just cancelled the earlier
                # entry's stops, so they must not stay recorded as armed (those it could not are kept).
                kept = _unarmed_record(pending, price, position_to, left) if left else None
                self.record_protective(kept, position_to, left)
            return
        # The record names the entry whatever the outcome: what was placed is the entry's (cancelled with
        # it), and what a transient failure kept off is placed on the next turns (``LiveReprice.rearm``).
        record.update(quantity=abs(position_to), parent_client_order_id=pending.client_order_id)
        if left:  # the earlier entry's stops still open: cancelled again next turn (``LiveReprice.retire``)
            record["superseded"] = left
        assert self.trading is not None
        record["armed"] = arm_entry_orders(self.trading.connection, strategy, record)
        if record["armed"]:
            self.event("protective_placed", close_time=pending.close_time, second=_is_second(pending),
                       **protective_details(record))
        else:
            self.event("error", close_time=pending.close_time, second=_is_second(pending),
                       what="protective_not_armed", **protective_details(record))
        # Loaded here: only an entry with stops reaches this line (see arm_entry_orders).
        from klineo.services.protective_siblings import recorded_protective_ids

        self.record_protective(record, position_to, recorded_protective_ids(record),
                               entry=pending.client_order_id)

    def record_protective(self, record: dict[str, Any] | None, held: Decimal, names: list[str],
                          entry: str | None = None) -> None:
        """Record the live position's protective ``record`` after the strategy's own order settled, unless
        another turn moved on since this one read the strategy (``set_protective``'s conditions: an order
        pending, another position, entry or record). The settle let that turn trade, and it disarmed and
        recorded from what it read: the orders ``record`` names (``names``: the entry's own, those an
        earlier cancel left) are then nobody's, and are cancelled; any whose cancel failed go to the
        record written meanwhile (``superseded``), cancelled again on its next turns."""
        strategy = self.strategy
        if set_protective(strategy.user_id, strategy.strategy_id, record, held=held, seen=strategy.protective,
                          entry=entry, events=self.take_events(), sets=_legacy_paper_moved(strategy)):
            return
        extra = {"strategy_id": strategy.strategy_id}
        logger.info("strategy moved on before its protective orders were recorded: cancelled", extra=extra)
        if not names or self.trading is None:
            return
        from klineo.services.strategy_protection import protective_orders_left

        left = protective_orders_left(self.trading.connection, names)
        if left and not add_superseded(strategy.user_id, strategy.strategy_id, left):
            logger.warning("protective orders neither cancelled nor recorded (the reconciler cancels them "
                           "once their position is gone)", extra=extra)

    def follow_reduction(self, pending: PendingOrder, position_to: Decimal) -> None:
        """The strategy's order left less of the position on the same side (a close or a one-way flip that
        filled in part, a smaller size): its stops, for the whole position before, are re-placed at the same
        levels for what is left, exactly once, the old ones cancelled once the new ones are recorded
        (``klineo.runner.reprice``). A failure leaves the old ones (better than none) for the next turn."""
        strategy = self.strategy
        if position_to == pending.position_before or self.trading is None or not strategy.protective:
            return
        # The strategy as the settle just wrote it (its writes are conditional on it): what is left, settled.
        left = replace(strategy, live_position=position_to, pending=None)
        make_event = partial(self.make_event, close_time=pending.close_time)
        LiveReprice(left, self.trading.connection, make_event, after_fill=True).play()

    def wanted_protection(self, pending: PendingOrder, price: Decimal) -> dict[str, Any] | None:
        """The protective record an entry asked for at claim time, priced from its fill; None for none."""
        wanted = pending.facts.get("protective") or {}
        if not wanted:
            return None
        settings = replace(self.strategy.settings, stop_loss_pct=_number(wanted.get("stop_loss_pct")),
                           take_profit_pct=_number(wanted.get("take_profit_pct")),
                           trailing_stop_pct=_number(wanted.get("trailing_stop_pct")))
        strategy = replace(self.strategy, settings=settings)
        return protective_record(strategy, pending.side, price, "live")

    def after_second_leg_refused(self, pending: PendingOrder) -> None:
        """A flip's entry settled unopened (refused, blocked, never placed): the old side's stops go, as after
        any close (its run is the close's, flat)."""
        if _is_second(pending):
            self.after_live_fill(pending, None, Decimal(0))

    def settle_pending(self, pending: PendingOrder, trading: TradingContext) -> StrategyResult | None:
        """Settle a pending order whose lease ran out; None when settled and the turn may go on."""
        strategy, now = self.strategy, self.ctx.now_ms()
        if not extend_lease(strategy.user_id, strategy.strategy_id, pending, self.ctx.deadline_ms):
            return self.result("not_run", "another attempt took the pending order")
        self.number_on(pending)  # its claim's events stay: its settle's events are numbered after them
        # Any earlier attempt began sending before its invocation's deadline, i.e. its lease end.
        earlier = pending.lease_until_ms
        taken = replace(pending, lease_until_ms=self.ctx.deadline_ms)
        try:
            creds = self.credentials(trading)
            same_candle = pending.close_time == self.close_time
            # Sent again only for a strategy still live and active (a switch to paper, or a pause, stops it:
            # looked up).
            resend = self.live and strategy.active
            if same_candle and resend and not is_superseded(pending.close_time, strategy.interval, now):
                return self.send_and_settle(taken, creds, earlier_attempt_ms=earlier)
            client = self.client()
            found = query_futures_order(client, creds, strategy.symbol, pending.client_order_id)
        except KlineoError as exc:
            if exc.category in KEY_FAILURE_CATEGORIES or exc.category is ErrorCategory.NOT_FOUND:
                if self.ctx.raises_key_refusals:
                    raise
                # The order cannot even be looked up: stop trading this strategy until a person looks.
                pause_strategy(strategy.user_id, strategy.strategy_id, f"key_failure:{exc.category}")
                return self.result("not_run", f"pending order unreadable: {exc.category}")
            return self.result("pending", str(exc.category), retry=True)
        if found is not None:
            settled = self.settle_result(taken, found)
            return settled if settled.retry or pending.close_time == self.close_time else None
        window_ms = float(self.client().recv_window) + SETTLE_MARGIN_MS
        if now - earlier < window_ms:
            return self.result("pending", "earlier attempt may still reach Binance", retry=True)
        # Claimed longer ago than Binance keeps an order that executed: an attempt may have filled and been
        # forgotten since (counted from the claim, the earliest any attempt could have been sent). Younger,
        # an order Binance does not know never executed, and settling it as never placed is exact.
        if now - pending.claimed_at_ms >= FORGOTTEN_AFTER_MS:
            settled = self.settle_purged(taken, trading)
        else:
            settled = self.settle_not_placed(taken, live=self.live and strategy.active)
        return settled if settled.retry or pending.close_time == self.close_time else None

    def settle_purged(self, pending: PendingOrder, trading: TradingContext) -> StrategyResult:
        """``pending`` is unknown to Binance and older than its retention (``FORGOTTEN_AFTER_MS``): it may
        have filled and been forgotten (every order is, 90 days after it was placed), so it is neither
        settled as never placed nor ever sent again. Its record is UNKNOWN_PURGED, as the order route and
        the reconciler record such an order; the strategy's position is Binance's on its side, within what
        the order could have done (``purged_order_position``); its run is skipped (``order_purged``), an
        error event says so."""
        strategy, before = self.strategy, pending.position_before
        try:
            exchange = self.ctx.positions.amount(trading.connection, strategy.symbol, pending.position_side)
        except KlineoError as exc:
            return self.result("pending", str(exc.category), retry=True)
        filled = before + _signed(pending.side, pending.quantity)  # had it filled in full
        position_to = purged_order_position(before, filled, exchange)
        why = {"category": ORDER_PURGED, "message": _purged_message(position_to)}
        self.event("error", close_time=pending.close_time, second=_is_second(pending), **why)
        outcome = order_outcome_update(strategy.user_id, pending.client_order_id,
                                       status=STATUS_UNKNOWN_PURGED, error=why)
        run = self.final_run(pending, "skipped", skip_reason=ORDER_PURGED, why=why)
        if not settle_live_order(
            strategy.user_id, strategy.strategy_id, pending, run,
            position_to=position_to, outcome=outcome, events=self.take_events(),
        ):
            return self.result("not_run", "another attempt settled this order")
        logger.warning("strategy order no longer known to Binance: settled from its position", extra={
            "strategy_id": strategy.strategy_id, "client_order_id": pending.client_order_id,
            "position": plain_text(position_to)})
        if position_to == before:
            self.after_second_leg_refused(pending)
        else:  # no fill price: the stops of what is left follow it, an entry's are not placed
            self.after_live_fill(pending, None, position_to)
        return self.result(run.status, ORDER_PURGED)

    def settle_not_placed(self, pending: PendingOrder, *, live: bool) -> StrategyResult:
        """``pending`` never reached Binance and is never sent: its candle passed or (``live`` False) the
        strategy is no longer live and active. A skipped run, its record settled as rejected."""
        strategy = self.strategy
        why = _not_placed_why(pending, live)
        run = self.final_run(pending, "skipped", skip_reason="order_not_placed", why=why)
        # Its record is settled too: no attempt will ever send it (the strategy's pending order was it).
        outcome = order_outcome_update(strategy.user_id, pending.client_order_id, status=STATUS_REJECTED,
                                       error=why)
        if not settle_live_order(
            strategy.user_id, strategy.strategy_id, pending, run,
            position_to=pending.position_before, outcome=outcome,
        ):
            return self.result("not_run", "another attempt settled this order")
        self.after_second_leg_refused(pending)
        return self.result(run.status, "order_not_placed")


# userTrades reads for the live PnL stop once less than this much request weight is left this minute.
FILLS_READ_RESERVE = 1200
# Claims tried while only a cached connection setting turns out stale (each refusal refreshes it).
CLAIM_ATTEMPTS = 2
# The closed gates a pending order is still looked up and settled past (never sent again: ``recheck_gates``).
_SETTLED_PAST_GATES = EXPOSURE_ONLY_GATES | {CONNECTION_DELETING}
# Turns played again after the strategy changed between its read and its write (StrategyChanged).
_REPLAYS = 2


class _NoLongerLive(Exception):
    """The strategy was switched to paper or paused before a lost attempt was sent again."""


class _FlipLimited(Exception):
    """A limit refused a one-way flip's claim (``refusal`` names it): its close alone is claimed instead."""

    def __init__(self, refusal: KlineoError) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


class _ResendBlocked(Exception):
    """The risk gate refused a lost attempt's second send (``refusal`` names the gate)."""

    def __init__(self, refusal: KlineoError) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


# A failed run's field whose refusal no later candle can mend -> the pause it makes at once: the symbol
# Binance does not list, a sizing no order of the symbol can pass whatever the price (``sizing_refusal``),
# and the order type of a symbol that stopped taking MARKET orders (``SymbolRules.prepare_order`` refuses
# it naming ``type``, and so does Binance's own refusal of the type once the rules read again confirm it:
# ``type_refusal``; a strategy's orders are MARKET ones only, so no later candle's order passes either).
INVALID_SYMBOL = "invalid_symbol"
# A strategy stored before the routes refused a direction short with allow_short false (``NO_SIDE_LEFT``):
# every signal flat, it would run every tick doing nothing.
NO_SIDE_TO_TRADE = "no_side_to_trade"
# A strategy stored with a type or parameters its type's checks refuse (``parse_parameters``).
INVALID_PARAMETERS = "invalid_parameters"
# The skipped run of a pending order Binance no longer knows, past its retention (``settle_purged``).
ORDER_PURGED = "order_purged"
_PAUSED_AT_ONCE = {"symbol": INVALID_SYMBOL, "size": UNTRADABLE_SIZE, "quote_size_usdt": UNTRADABLE_SIZE,
                   "type": NO_MARKET_ORDERS}
# Binance's refusal of every futures order for the cooling-off period the user chose at Binance (-4192: a day,
# a week or a month; it cannot be lifted early). Every candle until it ends would be refused again, so the
# strategy pauses at once, by the code (refused_settings, settle_refused), for the user to resume it then.
COOLING_OFF = "cooling_off_period"
_PAUSED_AT_ONCE_BY_CODE = {COOLING_OFF_PERIOD: COOLING_OFF}
# A leverage above the symbol's top bracket (``LeverageAboveSymbolMax``, before the leverage is set, or
# Binance's -4028 setting it, past a bracket read that allowed it): every order adding exposure is refused so
# while the strategy's (or its connection's) leverage stays as set, so the strategy pauses at once, its paused
# event naming the leverage to lower, instead of five failed runs.
LEVERAGE_ABOVE_SYMBOL_MAX = "leverage_above_symbol_max"
# What the log says of each pause at once (``log_pause``), whichever path reached it.
_PAUSED_AT_ONCE_LOG = {
    INVALID_SYMBOL: "strategy paused: Binance no longer lists or trades its symbol",
    UNTRADABLE_SIZE: "strategy paused: no order of its sizing can ever pass its symbol's rules",
    NO_MARKET_ORDERS: "strategy paused: its symbol takes no MARKET orders",
    COOLING_OFF: "strategy paused: the account's cooling-off period at Binance refuses its orders",
    LEVERAGE_ABOVE_SYMBOL_MAX: "strategy paused: its leverage is above its symbol's maximum",
}


def _pause_at_once(exc: KlineoError, *, by_field: bool = True) -> str | None:
    """The pause ``exc`` makes at once (None: the failed run is counted as any other): a leverage above the
    symbol's maximum (``LEVERAGE_ABOVE_SYMBOL_MAX``), by its Binance code
    (``_PAUSED_AT_ONCE_BY_CODE``), else by its field when ``by_field`` (``_PAUSED_AT_ONCE``; a refusal from
    Binance names such a field only once the symbol's rules read again confirm it: ``settle_refused``)."""
    if isinstance(exc, LeverageAboveSymbolMax):
        return LEVERAGE_ABOVE_SYMBOL_MAX
    by_code = _PAUSED_AT_ONCE_BY_CODE.get(exc.code) if exc.code is not None else None
    return by_code or (_PAUSED_AT_ONCE.get(exc.field or "") if by_field else None)


def _paused_at_once(strategy: Strategy, pause: str, exc: KlineoError, held: Decimal = Decimal(0)) -> str:
    """What the ``paused`` event of a pause at once (``invalid_symbol``, ``untradable_size``,
    ``no_market_orders``, ``cooling_off_period``, ``leverage_above_symbol_max``) tells the trader; with the
    live position ``held`` it leaves open, if any (``_position_left``)."""
    said = _why_paused(strategy.symbol, pause, exc)
    if not _leaves_position(pause, held):
        return said
    return f"{said.rstrip('.')}. {_position_left(strategy, pause, held)}"


def _why_paused(symbol: str, pause: str, exc: KlineoError) -> str:
    """Why a pause at once paused the strategy, and what resumes it."""
    if pause == NO_MARKET_ORDERS:
        return (f"Paused: {no_market_orders(symbol)}; resume it once Binance takes them again. "
                f"Last error: {exc.trader_message}")
    if pause == COOLING_OFF:
        return ("Paused: the cooling-off period set for this account at Binance blocks its futures orders "
                "until it ends (Binance cannot lift it early); resume the strategy once the period has "
                f"ended. Last error: {exc.trader_message}")
    if isinstance(exc, LeverageAboveSymbolMax):
        above = (f"is above {symbol}'s maximum of {exc.maximum}x (Binance's leverage bracket)"
                 if exc.maximum is not None else
                 f"was refused by Binance as not valid for {symbol} (-4028: above its maximum)")
        lower = f"to at most {exc.maximum}x" if exc.maximum is not None else "lower"
        return (f"Paused: its leverage {exc.leverage}x {above}, so no order of it can open a position; set "
                f"the strategy's leverage (or, without one, the connection's default) {lower}, then resume "
                "it.")
    if pause == UNTRADABLE_SIZE:
        return (f"Paused: no order of this sizing can ever pass {symbol}'s rules ({exc.trader_message}); "
                f"change the sizing to resume.")
    return (f"Paused: Binance does not list or trade {symbol} on USDT-M futures (an unknown or delisted "
            f"symbol, or one it stopped trading); create a strategy on a listed symbol, or resume this one "
            f"once Binance trades it again. Last error: {exc.trader_message}")


def _leaves_position(pause: str, held: Decimal) -> bool:
    """True when a pause for the symbol or the account leaves the live position ``held`` open: the strategy
    can neither trade nor close it, so no strategy manages it now (``invalid_symbol``, ``no_market_orders``,
    ``cooling_off_period``)."""
    return held != 0 and pause in (INVALID_SYMBOL, NO_MARKET_ORDERS, COOLING_OFF)


_ROLE_NAMES = {"stop_loss": "stop-loss", "take_profit": "take-profit", "trailing_stop": "trailing stop"}


def _position_left(strategy: Strategy, pause: str, held: Decimal) -> str:
    """What the paused event says of the live position ``held`` the pause leaves open: the user's to close,
    and how (without MARKET orders: a reduce-only LIMIT order; the close route's MARKET one is refused; in a
    cooling-off period, once it has ended: Binance takes no futures order until then, a close included);
    and the stops its protective record has standing on Binance (``standing_stops``), which the pause leaves
    in place (by id)."""
    symbol, connection = strategy.symbol, f"/exchange-connections/{strategy.connection_id}/futures"
    how = (f"a reduce-only LIMIT order (POST {connection}/order)" if pause == NO_MARKET_ORDERS
           else f"POST {connection}/positions/{symbol}/close")
    when = ("once the cooling-off period has ended (until then Binance takes no futures order from this "
            "account, a close included), " if pause == COOLING_OFF else "")
    said = (f"Its {'long' if held > 0 else 'short'} position of {plain_text(abs(held))} {symbol} stays open "
            f"and no strategy manages it now: it is yours to close, {when}with {how} or on Binance.")
    stops = [f"{_ROLE_NAMES.get(role, role)} (clientAlgoId {algo_id})"
             for role, algo_id in standing_stops(strategy.user_id, strategy.protective).items()]
    if not stops:
        return said
    listed = stops[0] if len(stops) == 1 else f"{', '.join(stops[:-1])} and {stops[-1]}"
    return f"{said} Its {listed} {_stops_stay(len(stops), still_close=pause != COOLING_OFF)}"


def _stops_stay(count: int, *, still_close: bool) -> str:
    """What the paused event says of the ``count`` stops the pause leaves armed on Binance; ``still_close``:
    that they close the position when triggered (not said in a cooling-off period, whose effect on stops
    placed before it Binance does not document)."""
    one = count == 1
    stay = ("stays armed on Binance: the pause does not cancel it" if one
            else "stay armed on Binance: the pause does not cancel them")
    if not still_close:
        return f"{stay}."
    return f"{stay}, and {'it still closes' if one else 'they still close'} the position when triggered."


def _invalid_parameters(exc: ValidationError | None, fields: Mapping[str, Any] = MappingProxyType({})) -> str:
    """What the ``paused`` event of an ``invalid_parameters`` pause tells the trader: the parameters the
    type's checks refused (``exc``; None: no type of that name), named by the type's own field names or a
    check's own text, never a stored value or a key the type does not take."""
    if exc is None:
        return "Paused: its type is not one KLINEO runs; create a strategy of a listed type."
    named = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc, text = error["loc"], error["msg"].removeprefix("Value error, ")
        if not loc or loc[0] not in fields:
            named.append(f"parameters: {text}" if not loc else "a parameter its type does not take")
        elif error["type"] == "value_error":  # a check of ours (fast below slow names slow): our text
            named.append(f"parameters.{loc[0]}: {text}")
        else:
            named.append(f"parameters.{loc[0]}")
    return (f"Paused: its parameters do not pass its type's checks ({'; '.join(dict.fromkeys(named))}); "
            "send its type with valid parameters, then resume it.")


def _pausing(reason: str | None) -> StrategyAdvance | None:
    """The strategy change of a run that only pauses (None: the run alone, ONE put)."""
    return StrategyAdvance(pause_reason=reason, allow_pending=True) if reason else None


# The facts a hedge flip's close carries of its entry (claimed when the close settles), and the entry of
# its close (written into the candle's run when the entry settles).
NEXT_LEG = "next_leg"
FIRST_LEG = "first_leg"
# The counts of the events a claim made on its candle (``<kind>#<tag>`` -> how many), kept with its pending
# order when it made more than its signal and order_submit (a refused flip's risk_block or error): the settle
# of a later attempt (a crash between the two) numbers its own events on from them (``number_on``).
EVENTS_MADE = "events_made"
# The event tag of a flip's second order: its events read apart from its first's (klineo.store.events).
_SECOND_LEG_TAG = "leg2"


def _is_second(pending: PendingOrder) -> bool:
    """True for a hedge flip's second order (the new side's entry): it carries its first's facts."""
    return FIRST_LEG in pending.facts


def _purged_message(position_to: Decimal) -> str:
    """What the run, its order's record and the error event say of an order Binance no longer knows."""
    return ("Binance no longer knows this order (it forgets every order 90 days after it was placed): what "
            "it did can no longer be read. It was never sent again; the strategy's position is taken from "
            f"Binance's: {plain_text(position_to)}.")


def _not_placed_why(pending: PendingOrder, live: bool) -> dict[str, str]:
    """The run's error, and its order record's, when ``pending`` was never placed (its attempt lost): its
    candle is past (``live``) or the strategy is no longer live. A flip's entry's says what the run did."""
    when = "its candle is past" if live else (
        "the strategy was switched to paper or paused before it was sent again")
    if _is_second(pending):
        what, done = "The order opening the new side", "only the old side was closed."
    else:
        what, done = "The order", "nothing was placed; the next candle decides again." if live else (
            "nothing was placed.")
    return {"category": "order_not_placed", "message": f"{what} never reached Binance and {when}: {done}"}


def gate_message(exc: KlineoError) -> str:
    """What a ``risk_block`` event tells the trader about the gate ``exc`` names."""
    if exc.field == "positionSide":
        # The connection's position mode changed between the order's planning and its claim or second
        # send: the trader needs to hear that, not which order field Binance would refuse.
        return STRATEGY_MODE_CHANGED
    return exc.trader_message


def _fills_stored(result: OrderResult, fills: Fills | None) -> Mapping[str, Any]:
    """The ``fills`` (and ``fills_summary``) a settle stores on the record of its final order ``result``,
    which settles it: Binance's as read, or none for an order that executed nothing (``stored_fills`` of no
    trades, as the reconciler stores such an order once it reads it); nothing for an estimate or a fill
    not read (the reconciler reads those)."""
    if fills is not None:
        return fills.stored or {}
    if result.executed_quantity or result.order_id is None:
        return {}
    return stored_fills(())


def _hedge_side(pending: PendingOrder) -> str | None:
    """The order's positionSide for its events: LONG / SHORT in hedge mode, None (left out) in one-way."""
    return pending.position_side if pending.position_side != "BOTH" else None


def _closing_leg(close: OrderPlan, leg: OrderLeg) -> OrderLeg:
    """The order of ``close`` (``_close_only``) in the position mode of ``leg``, an order of the same plan:
    reduce-only in one-way mode; in hedge mode on the side it closes, without reduceOnly."""
    assert close.side is not None and close.quantity is not None
    if leg.position_side == "BOTH":
        return OrderLeg(close.side, close.quantity, "BOTH", True)
    return OrderLeg(close.side, close.quantity, "LONG" if close.side == "SELL" else "SHORT")


def _one_way_flip(pending: PendingOrder) -> bool:
    """True for a one-way flip: one order (BOTH, not reduce-only) that takes the position past zero."""
    after = pending.position_before + _signed(pending.side, pending.quantity)
    return (pending.position_side == "BOTH" and not pending.reduce_only and pending.position_before != 0
            and after != 0 and (after > 0) != (pending.position_before > 0))


def _close_only(plan: OrderPlan, position: Decimal) -> OrderPlan | None:
    """The reduce-only close inside a flip (None when ``plan`` is no flip of ``position``)."""
    if position == 0 or plan.target == 0 or (plan.target > 0) == (position > 0):
        return None
    return OrderPlan(target=Decimal(0), side="SELL" if position > 0 else "BUY", quantity=abs(position),
                     reduce_only=True)


def _cancel_recorded_stops(connection: Connection, record: Mapping[str, Any]) -> list[str]:
    """Cancel every order a live protective ``record`` may still have open: each role of each generation its
    position had (a re-priced one's earlier orders too), and what an earlier turn could not cancel. Returns
    those whose cancel failed."""
    # Loaded here: only a strategy with stops armed reaches this line (see arm_entry_orders).
    from klineo.services.protective_siblings import recorded_protective_ids
    from klineo.services.strategy_protection import protective_orders_left

    return protective_orders_left(connection, recorded_protective_ids(dict(record)))


def _unarmed_record(pending: PendingOrder, price: Decimal | None, position_to: Decimal,
                    left: list[str]) -> dict[str, Any]:
    """The record of a position (or flat) without stops of its own whose earlier entry's stops could not
    all be cancelled (``left``): kept in ``superseded``, cancelled by its next order (``disarm_previous``)
    or, open with a known entry price, by the next turn (``LiveReprice.remove_all``)."""
    record: dict[str, Any] = {"mode": "live", "parent_client_order_id": pending.client_order_id,
                              "armed": False, "superseded": left}
    if position_to != 0 and price is not None:
        record.update(entry_side=pending.side, entry_price=price, quantity=abs(position_to))
    return record


def _legacy_paper_moved(strategy: Strategy) -> dict[str, Any] | None:
    """An older item's paper levels (``protective`` with mode "paper") moved into ``paper_book``, for a
    live write that replaces ``protective``: the open paper position keeps its stops."""
    legacy = legacy_paper_levels(strategy)
    if legacy is None or strategy.paper_position == 0:
        return None
    book = dict(strategy.paper_book or {})
    book.setdefault("protective", legacy)
    return {"paper_book": book}


def _number(value: Any) -> Decimal | None:
    """A protective percent stored with the pending order; None when not set. A stored value that is
    no finite number raises (the turn crashes, logged and retried): never an entry silently unprotected."""
    number = decimal_or_none(value)
    if number is None and value is not None:
        raise ValueError("a protective percent stored with the pending order is not a number")
    return number


def _runnable(strategy: Strategy | None, ctx: TickContext) -> StrategyResult | None:
    """Why ``strategy`` is not run on the message's candle (None: it is)."""
    message = ctx.message
    if strategy is None or not strategy.has_turn:
        return StrategyResult(strategy.strategy_id if strategy else "", "not_run", "inactive or deleted")
    if (strategy.environment, strategy.symbol, strategy.interval) != (
        message.environment, message.symbol, message.interval,
    ):
        return StrategyResult(strategy.strategy_id, "not_run", "strategy no longer matches the message")
    return None


def run_strategy(strategy: Strategy | None, ctx: TickContext) -> StrategyResult:
    """Run one strategy (as read) on the message's candle; see the module doc.

    The turn's writes require the strategy unchanged since it was read. When it changed (edited,
    traded or claimed by another attempt), it is read again consistently (or taken from the refused
    write's answer) and the turn is played once more, a bounded number of times. Nothing was written
    or sent by the refused write, so a replay can never order twice.
    """
    for _ in range(_REPLAYS + 1):
        refused = _runnable(strategy, ctx)
        if refused is not None:
            return refused
        assert strategy is not None
        try:
            turn = _Turn(strategy, ctx)
            return turn.play() if strategy.active else turn.settle_paused()
        except StrategyChanged as changed:
            logger.info("strategy changed since it was read; playing the turn again",
                        extra={"strategy_id": strategy.strategy_id})
            strategy = from_item(changed.item) if changed.item else get_strategy(
                strategy.user_id, strategy.strategy_id, consistent=True)
    return StrategyResult(strategy.strategy_id if strategy else "", "not_run", "the strategy kept changing",
                          retry=True)


def settle_in_flight(strategy: Strategy, ctx: TickContext) -> StrategyResult:
    """Only ``strategy``'s live order in flight settled, active or paused, as a paused strategy's is
    (``_Turn.settle_paused``): looked up by its clientOrderId and settled as Binance did it, an entry's stops
    placed, never sent again, nothing else decided or traded (a DELETE settles it first,
    ``klineo.runner.on_demand.settle_now``). Changed meanwhile (another attempt settled it): ``not_run``."""
    try:
        return _Turn(replace(strategy, status=PAUSED), ctx).settle_paused()
    except StrategyChanged:
        return StrategyResult(strategy.strategy_id, "not_run", "the strategy changed meanwhile")
