"""The one risk gate: every path that can send an order asks ``check_order`` first.

Callers: API orders (``klineo.services.futures``: new orders, closes and protective orders are all
orders there, told apart by reduceOnly / positionSide) and strategy orders
(``klineo.runner.execution``). The runner reads its ``TradingContext`` with ONE strongly consistent
BatchGetItem (connection + user and global kill switches); API orders ask on their cached
connection and re-check the gates atomically in their claim transaction (``klineo.store.order_claim``),
asking again here with the items whose checks failed, so the refusal is named the same way.

Gates, in the order they are checked, and what a refusal is:

    global_kill_switch, user_kill_switch, connection_kill_switch   409 conflict  (new exposure only)
    connection_deleting (a delete began: nothing is sent any more) 409 conflict  (reducing orders too)
    futures_disabled                                               409 conflict  (new exposure only)
    connection_disabled                                            409 conflict
    positionSide / reduceOnly (the connection's position mode)     400 invalid_request
    max_leverage, max_notional_usdt                                422 order_rejected (new exposure only)

The same max_leverage rule refuses a setting before any order (``check_leverage_setting``): a
connection's leverage default (futures enable, PATCH) and a live strategy's own leverage (POST and
PATCH /strategies) above the connection's max_leverage are 422 invalid_request naming ``leverage``.
The gate still checks every order, because max_leverage can be lowered afterwards.

The notional is the most the order can be worth, its quantity times the highest price it can fill at
(``order_notional``): the mark price (MARKET and the other unpriced types; STOP_MARKET /
TAKE_PROFIT_MARKET: the higher of the mark and the trigger, where it fills once it fires;
TRAILING_STOP_MARKET: the higher of the mark and its activation price raised by its callback rate,
activation x (1 + callbackRate %), the mark standing for the activation when there is none, as Binance
then activates at once: it fires on a turn of callbackRate from the best price after activation, so a
BUY fills at most that, and a SELL, from activation x (1 - rate) up as far as the market runs first, is
valued at the same top of the band the callback spans around its activation); a BUY's own
price (LIMIT, STOP, TAKE_PROFIT: it fills at or below it); for a SELL, which fills at or above its
price, the higher of its price and where the market is when it can fill: the mark price now (SELL LIMIT:
valuing a marketable sell at a limit below the market would let a sell far over the limit through), the
trigger price (SELL STOP / TAKE_PROFIT: its limit order exists only once the market reached the trigger;
Binance refuses one that would trigger at once, -2021, so the mark now is not where it fills, and no
mark is read for it).

A kill switch blocks new exposure only: an order that can only reduce a position (reduceOnly in
one-way mode; SELL LONG or BUY SHORT in hedge mode) still goes through, because closing is what a
trader needs when something goes wrong. The limits do not apply to such orders either: lowering a
limit must never trap a position. Nor does switching futures off (``futures_disabled``): it stops new
futures exposure, and a position opened before must still be closable and keep its stops. Only a
disabled connection (its key keeps failing) refuses every order. The refusal's ``field`` names the
gate, and nothing reaches Binance after a refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Context, Decimal

from klineo.binance.codes import position_mode_refusal
from klineo.errors import ErrorCategory, InvalidField, KlineoError
from klineo.store.connections import Connection, TradingContext
from klineo.validation import check_reduce_only

__all__ = ["CONNECTION_DELETING", "CONNECTION_DISABLED", "EXPOSURE_ONLY_GATES", "HEDGE", "LIMIT_GATES",
           "MODE_NAMES", "ONE_WAY", "STATE_GATES", "STRATEGY_MODE_CHANGED",
           "OrderIntent", "check_leverage_setting", "check_order", "closed_for_every_order",
           "deleting_refusal", "leverage_allowed", "mode_mismatch_message", "order_notional",
           "params_reduce", "position_mode_refused", "realign_mode_advice", "reduces_position"]

ONE_WAY = "one_way"
HEDGE = "hedge"
MODE_NAMES = {ONE_WAY: "one-way", HEDGE: "hedge"}  # as a message writes them
# A strategy order's positionSide no longer matches the connection's position mode (the connection was
# switched between the order's planning and its claim or its second send): its risk_block message.
STRATEGY_MODE_CHANGED = (
    "The connection's position mode changed while this order was being placed: nothing was sent. The next "
    "run trades in the connection's new mode."
)
# The gate of a connection its key failures switched off (``klineo.services.key_health``).
CONNECTION_DISABLED = "connection_disabled"
# The gates of the connection's state: closed until a person opens them again (enable futures, or
# enable the connection once its key works), unlike a refusal of the order itself.
STATE_GATES = frozenset({CONNECTION_DISABLED, "futures_disabled"})
# The gates that stop new exposure only (the kill switches, futures off): what was already sent is still
# settled past them, and a fill's stops (which only reduce) still placed.
EXPOSURE_ONLY_GATES = frozenset({"global_kill_switch", "user_kill_switch", "connection_kill_switch",
                                 "futures_disabled"})
# The gate of a connection being deleted (``klineo.store.connections.mark_deleting``): closed for good,
# for every order, reducing ones included, so that nothing is placed after the delete's wind-down listed
# what it left on Binance. A protective order's record write re-checks it atomically
# (``klineo.store.order_claim.ConnectionGuard``) and refuses with the same field.
CONNECTION_DELETING = "connection_deleting"
# The gates that limit new exposure only (never a close): what a refused strategy flip still closes past.
LIMIT_GATES = frozenset({"max_leverage", "max_notional_usdt"})
_CLOSING_IN_HEDGE = frozenset({("SELL", "LONG"), ("BUY", "SHORT")})


@dataclass(frozen=True)
class OrderIntent:
    """What the gate needs to know of an order (before rounding is fine: limits are not exact edges)."""

    symbol: str
    side: str
    type: str
    quantity: Decimal
    price: Decimal | None = None
    reduce_only: bool = False
    position_side: str = "BOTH"
    trigger_price: Decimal | None = None
    activation_price: Decimal | None = None  # TRAILING_STOP_MARKET, with its callback_rate (1 = 1 %)
    callback_rate: Decimal | None = None

    @property
    def reduces(self) -> bool:
        """True when the order can only make a position smaller."""
        return reduces_position(self.side, self.position_side, self.reduce_only)


def reduces_position(side: str, position_side: str, reduce_only: bool) -> bool:
    """True when an order can only make a position smaller: reduce-only (one-way mode), or SELL LONG /
    BUY SHORT (hedge mode, where Binance refuses reduceOnly and the side says it)."""
    return reduce_only or (side, position_side) in _CLOSING_IN_HEDGE


def params_reduce(params: dict[str, str]) -> bool:
    """``reduces_position`` of an order sent with these Binance parameters (closePosition reduces too)."""
    flagged = params.get("reduceOnly") == "true" or params.get("closePosition") == "true"
    return reduces_position(params.get("side", ""), params.get("positionSide") or "BOTH", flagged)


def position_mode_refused(exc: KlineoError) -> bool:
    """True when Binance refused an order for the account's position mode (which codes, and the field each
    names: ``klineo.binance.codes.position_mode_refusal``): the account is not in the mode it was sent for."""
    return position_mode_refusal(exc.code, exc.field)


def mode_mismatch_message(position_side: str) -> str:
    """What a trader is told when Binance refused a strategy's order sent with ``position_side`` for the
    account's position mode: the account was switched outside KLINEO, and how to line the two up again."""
    mode, other = (HEDGE, ONE_WAY) if position_side in ("LONG", "SHORT") else (ONE_WAY, HEDGE)
    sent = MODE_NAMES[mode]
    return (
        f"Binance refused the order: this futures account is no longer in {sent} mode, the connection's "
        "position mode (it was switched outside KLINEO). Nothing was placed. Switch the account back to "
        f"{sent} mode on Binance, or {realign_mode_advice(other)}; the strategy's next run trades in it."
    )


def realign_mode_advice(account_mode: str) -> str:
    """How a trader lines a connection's stored position mode up with its account's real ``account_mode``."""
    return ("set the connection to the account's mode (PATCH /exchange-connections/{id} with position_mode "
            f"{account_mode})")


def _refuse(category: ErrorCategory, gate: str, message: str) -> KlineoError:
    return KlineoError(category, message, field=gate)


def deleting_refusal() -> KlineoError:
    """The refusal of any order on a connection being deleted (final: not retryable)."""
    return _refuse(ErrorCategory.CONFLICT, CONNECTION_DELETING,
                   "This connection is being deleted: no order is placed on it any more. If its delete "
                   "did not finish, send the DELETE again.")


def closed_for_every_order(connection: Connection) -> bool:
    """True when the gate refuses every order on ``connection``, reducing ones included: being deleted, or
    disabled (``_check_state``). Nothing is read from Binance for an order it would refuse anyway."""
    return connection.deleting_since is not None or connection.disabled


def _check_switches(context: TradingContext) -> None:
    if context.global_kill_switch:
        raise _refuse(
            ErrorCategory.CONFLICT,
            "global_kill_switch",
            "Trading is halted: the global kill switch is on (closing positions still works).",
        )
    if context.user_kill_switch:
        raise _refuse(
            ErrorCategory.CONFLICT,
            "user_kill_switch",
            "Your kill switch is on; turn it off to open positions (closing still works).",
        )
    if context.connection.kill_switch:
        raise _refuse(
            ErrorCategory.CONFLICT,
            "connection_kill_switch",
            "This connection's kill switch is on; turn it off to open positions (closing still works).",
        )


def _check_state(context: TradingContext, live: bool, reduces: bool) -> None:
    connection = context.connection
    if connection.deleting_since is not None:
        raise deleting_refusal()
    if connection.disabled:
        raise _refuse(
            ErrorCategory.CONFLICT,
            CONNECTION_DISABLED,
            "This connection was disabled after repeated key failures; fix the key, then enable it.",
        )
    if live and not connection.futures_enabled and not reduces:
        raise _refuse(
            ErrorCategory.CONFLICT,
            "futures_disabled",
            "Futures are not enabled on this connection; enable them first.",
        )


def _position_side_refusal(mode: str, must: str) -> KlineoError:
    """The refusal of a positionSide the connection's ``mode`` does not take. The mode is the account's as
    KLINEO last read or set it, not as Binance holds it now, so it also says how to follow an account
    switched outside KLINEO (where the positionSide sent may well be right)."""
    other = ONE_WAY if mode == HEDGE else HEDGE
    return _refuse(
        ErrorCategory.INVALID_REQUEST,
        "positionSide",
        f"This connection is in {MODE_NAMES[mode]} mode: positionSide must be {must}. If its Binance account "
        f"was switched to {MODE_NAMES[other]} mode outside KLINEO, {realign_mode_advice(other)}.",
    )


def _check_position_side(mode: str | None, order: OrderIntent) -> None:
    if mode == HEDGE and order.position_side not in ("LONG", "SHORT"):
        raise _position_side_refusal(mode, "LONG or SHORT")
    if mode == ONE_WAY and order.position_side != "BOTH":
        raise _position_side_refusal(mode, "BOTH (or left out)")
    try:  # LONG/SHORT (hedge mode) with reduceOnly, whatever mode the account was last read in
        check_reduce_only(order.reduce_only, order.position_side)
    except ValueError as refusal:
        raise _refuse(ErrorCategory.INVALID_REQUEST, "reduceOnly", str(refusal)) from None


def leverage_allowed(leverage: int | None, max_leverage: int) -> bool:
    """The max_leverage rule: no leverage (the account's own) or one at most ``max_leverage``."""
    return leverage is None or leverage <= max_leverage


def check_leverage_setting(leverage: int | None, max_leverage: int) -> None:
    """A leverage setting above max_leverage is refused before it is stored (422 naming leverage)."""
    if not leverage_allowed(leverage, max_leverage):
        raise InvalidField(
            "leverage",
            "leverage is above the connection's max_leverage: lower it, or raise max_leverage with "
            "PATCH /exchange-connections/{id}",
        )


def order_notional(order: OrderIntent, mark_price: Callable[[], Decimal], enough: Decimal | None = None
                   ) -> Decimal:
    """The most ``order`` can be worth now (the module docstring's valuation), as max_notional_usdt
    counts it. The mark is read for an unpriced order, and for a SELL LIMIT whose own price leaves it
    within ``enough`` (past it, its value could only grow)."""
    if order.price is None:
        mark = mark_price()
        return order.quantity * max(mark, _fires_at(order, mark))
    if order.side != "SELL":
        return order.quantity * order.price  # a BUY fills at or below its price
    if order.trigger_price is not None:  # a stop-limit's order is placed once the market reached the trigger
        return order.quantity * max(order.price, order.trigger_price)
    notional = order.quantity * order.price
    if enough is None or notional <= enough:  # a marketable SELL fills at or above its limit, at the market
        notional = max(notional, order.quantity * mark_price())
    return notional


def _fires_at(order: OrderIntent, mark: Decimal) -> Decimal:
    """Where an unpriced order fills once it fires: a stop / take-profit market order at about its
    trigger; a trailing stop at most its callback rate beyond its activation (the mark without one)."""
    if order.callback_rate is not None:
        start = mark if order.activation_price is None else order.activation_price
        return start * (1 + order.callback_rate / 100)
    return mark if order.trigger_price is None else order.trigger_price


# The refusal quotes a notional to the cent: a context wide enough for any the request models allow (a
# product of two 30-digit values passes the default 28 digits, where quantize would raise).
_CENT, _WIDE = Decimal("0.01"), Context(prec=64)


def _check_limits(context: TradingContext, order: OrderIntent, mark_price: Callable[[], Decimal]) -> None:
    connection = context.connection
    if not leverage_allowed(connection.leverage, connection.max_leverage):
        raise _refuse(
            ErrorCategory.ORDER_REJECTED,
            "max_leverage",
            f"The connection's leverage {connection.leverage}x is above its max_leverage "
            f"{connection.max_leverage}x.",
        )
    notional = order_notional(order, mark_price, connection.max_notional_usdt)
    if notional > connection.max_notional_usdt:
        raise _refuse(
            ErrorCategory.ORDER_REJECTED,
            "max_notional_usdt",
            f"This order's notional {notional.quantize(_CENT, context=_WIDE)} USDT is above the connection's "
            f"max_notional_usdt {connection.max_notional_usdt}.",
        )


def check_order(
    context: TradingContext,
    order: OrderIntent | None = None,
    mark_price: Callable[[], Decimal] | None = None,
    *,
    live: bool = True,
) -> None:
    """Raise KlineoError naming the gate when ``order`` may not be sent (see the module docstring).

    Without ``order`` (a strategy's turn, before it knows its order) the switches and the state are
    checked as for new exposure. ``mark_price`` (the mark price, never a limit price) is called only
    when the notional needs it, after every other gate passed: an order without a price that adds
    exposure, or a SELL LIMIT within the limit at its own price (a marketable sell fills at or above
    its limit, so it is valued at the higher of the two; a BUY fills at or below its price and is
    valued at it; a SELL stop-limit at the higher of its price and its trigger). A refusal by a switch
    costs no Binance call at all. ``live=False`` (a paper strategy:
    nothing is sent) skips futures_enabled.
    """
    reduces = order is not None and order.reduces
    if not reduces:
        _check_switches(context)
    _check_state(context, live, reduces)
    if order is None:
        return
    _check_position_side(context.connection.position_mode, order)
    if mark_price is not None and not order.reduces:
        _check_limits(context, order, mark_price)
