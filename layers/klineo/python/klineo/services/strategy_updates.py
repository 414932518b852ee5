"""Changing strategies: PATCH /strategies/{id}.

The rules are those of ``klineo.services.strategies`` (its module docstring). Apart from creating
(``klineo.services.strategy_changes``) because a change answers with the strategy's newest run and
records a paused/resumed event, which loads the runs and events stores that POST /strategies never
needs (issue 16 item 3, cold start).

The write is made only while the strategy is as read (its ``updated_at``): a change made between the
read and the write (the runner's pause or run, the connection disable's pause, another PATCH) is never
overwritten with what this PATCH checked against; it answers a retryable 409 and writes nothing.
"""

from __future__ import annotations

import time
from typing import Any

from klineo.errors import ErrorCategory, InvalidField, KlineoError, refuse_together
from klineo.models.strategies import CLEARABLE_FIELDS, SIZING_FIELDS, StrategyResponse
from klineo.models.strategy_requests import StrategyUpdateRequest
from klineo.services.risk import check_leverage_setting
from klineo.services.strategies import owned_strategy, strategy_response
from klineo.services.strategy_connection import require_runnable
from klineo.store import strategies as strategy_store
from klineo.store.connections import Connection, get_connection
from klineo.store.strategies import SETTING_NAMES, Strategy
from klineo.strategies import NO_SIDE_LEFT, leaves_no_side
from klineo.validation import plain_text, refuse_nulls

__all__ = ["require_may_activate", "update_strategy"]


def _type_changes(current: Strategy, body: StrategyUpdateRequest) -> dict[str, Any]:
    """The type and parameters a PATCH sets: the parameters sent (defaults fill the rest); a new type sent
    alone takes its defaults, as a create without parameters does. The strategy's own type sent alone (a
    form that always sends it) changes nothing: its parameters are kept, never reset to the defaults."""
    if body.type is None or (body.parameters is None and body.type == current.type):
        return {}
    from klineo.strategies import parse_parameters

    return {"type": body.type, "parameters": parse_parameters(body.type, body.parameters or {}).model_dump()}


def _settings_changes(body: StrategyUpdateRequest) -> dict[str, Any]:
    """Settings a PATCH sets (a new sizing clears the other two; null clears a clearable setting)."""
    sent = body.model_fields_set
    changes: dict[str, Any] = {
        name: getattr(body, name) for name in (*SIZING_FIELDS, *SETTING_NAMES)
        if getattr(body, name) is not None
    }
    if any(name in changes for name in SIZING_FIELDS):
        changes.update({name: None for name in SIZING_FIELDS if name not in changes})
    changes.update({name: None for name in CLEARABLE_FIELDS if name in sent and getattr(body, name) is None})
    return changes


def _check_direction(current: Strategy, changes: dict[str, Any]) -> None:
    """A PATCH may not leave the strategy no side to trade (``NO_SIDE_LEFT``): a direction short onto stored
    parameters with allow_short false, or such parameters onto a stored direction short (the body alone:
    its model). 422 naming what the PATCH sent."""
    direction = changes.get("direction", current.settings.direction)
    if leaves_no_side(direction, changes.get("parameters", current.parameters)):
        raise InvalidField("direction" if "direction" in changes else "parameters.allow_short", NO_SIDE_LEFT)


def _check_runnable(user_id: str, current: Strategy, changes: dict[str, Any],
                    connection: Connection | None) -> None:
    """A strategy that becomes active, or live while active, needs a connection it can run on
    (``require_runnable``); a live active one's new leverage may not exceed the connection's max_leverage.
    ``connection``: the strategy's, as the caller read it (None: read here)."""
    mode, status = changes.get("mode", current.mode), changes.get("status", current.status)
    if status != strategy_store.ACTIVE:
        return
    becoming = not current.active or (mode == "live" and current.mode != "live")
    if not becoming and not (mode == "live" and "leverage" in changes):
        return
    connection = connection or get_connection(user_id, current.connection_id, consistent=True)
    leverage = changes.get("leverage", current.settings.leverage)
    if becoming:
        connection = require_runnable(connection, mode, leverage)
        if mode == "live" and current.leverage_refused:
            _check_refused_leverage(current, leverage or connection.leverage)
    elif connection is not None:
        check_leverage_setting(leverage, connection.max_leverage)


def _check_refused_leverage(current: Strategy, leverage: int | None) -> None:
    """A strategy the runner paused for a leverage its symbol refuses (``leverage_refused``: above its
    bracket's maximum, or refused by Binance as not valid) resumes live only at a lower one: ``leverage`` (its
    own, else the connection's default; None, the account's own, capped by max_leverage, is never refused so)
    at most that maximum, else below the leverage refused. 422 naming leverage, the strategy left paused:
    resumed as it was, its next run would fail again, no order sent, and pause it again."""
    refused = current.leverage_refused or {}
    maximum = refused.get("maximum")
    highest = int(maximum) if maximum is not None else int(refused["leverage"]) - 1
    if leverage is None or leverage <= highest:
        return
    if maximum is not None:
        said = f"above {current.symbol}'s maximum of {highest}x (Binance's leverage bracket)"
        wanted = f"of at most {highest}x"
    else:
        said = f"not below {refused['leverage']}x, which Binance refused for {current.symbol} as not valid"
        wanted = f"below {refused['leverage']}x"
    raise InvalidField("leverage", (
        f"leverage {leverage}x is {said}, so this strategy cannot resume live with it: send a leverage "
        f"{wanted} (or lower the connection's default) with the resume"))


def _paper_reset(current: Strategy, changes: dict[str, Any]) -> dict[str, Any] | None:
    """The Put of the ``paper_reset`` event when the PATCH restarts the paper ledger, else None.

    ``paper_balance_usdt`` is the paper account's starting capital (equity = it + the paper realised PnL).
    A new value, or any value sent while the paper equity is gone (a liquidation), restarts the ledger
    from it: realised PnL and fees back to 0, so the equity IS the new balance, in the PATCH's one write
    (``strategy_store.update_settings``). Only while the paper position is flat: else CONFLICT naming
    ``paper_balance_usdt`` (the open position's PnL would be counted against a capital it never had).
    The stored value sent again (a form saved whole) changes nothing."""
    balance = changes.get("paper_balance_usdt")
    if balance is None:
        return None
    from klineo.runner.paper import ledger_of  # the simulation ledger: only a new paper balance loads it

    equity = ledger_of(current).equity()  # flat: the balance + realised PnL
    if balance == current.settings.paper_balance_usdt and equity > 0:
        return None
    if current.paper_position != 0:
        raise KlineoError(ErrorCategory.CONFLICT, strategy_store.PAPER_POSITION_OPEN,
                          field="paper_balance_usdt")
    from klineo.store.events import StrategyEvent, event_put, write_time

    details = {"by": "user", "paper_balance_usdt": plain_text(balance),
               "previous_paper_balance_usdt": plain_text(current.settings.paper_balance_usdt),
               "previous_equity": plain_text(equity)}
    now_ms = int(time.time() * 1000)
    event = StrategyEvent(current.strategy_id, current.user_id, "paper_reset", now_ms, details)
    return event_put(event, write_time())


def _check_paper_equity(current: Strategy, changes: dict[str, Any], reset: bool) -> None:
    """A flat paper strategy that becomes active needs paper equity to trade with (CONFLICT naming
    ``paper_balance_usdt`` otherwise): after a liquidation it has none, and every entry would be refused.
    A PATCH that restarts the paper ledger (``reset``) gives it its new balance."""
    mode, status = changes.get("mode", current.mode), changes.get("status", current.status)
    if reset or mode != "paper" or status != strategy_store.ACTIVE or current.paper_position != 0:
        return
    if current.mode == "paper" and current.status == strategy_store.ACTIVE:
        return
    from klineo.runner.paper import ledger_of  # the simulation ledger: only this check loads it

    if ledger_of(current).equity() <= 0:
        raise KlineoError(ErrorCategory.CONFLICT, "this paper strategy has no paper equity left (its "
                          "position was liquidated): send paper_balance_usdt, the capital its paper ledger "
                          "starts again from, to resume it", field="paper_balance_usdt")


def _check_tradable(current: Strategy, changes: dict[str, Any]) -> None:
    """A new sizing, or a strategy that becomes active, must be one the symbol's orders can pass
    (``planning.sizing_refusal``: 422 naming ``size`` or ``quote_size_usdt``, saying the bound); one that
    becomes active needs a symbol that still takes MARKET orders too (``planning.require_market_orders``:
    422 naming ``symbol``). Its other changes are not refused for that: pausing it, or editing it paused
    until Binance takes them again, is what its user can still do. Read from exchangeInfo through the
    cached rules, only when one of them is asked for."""
    new_sizing = any(name in changes for name in SIZING_FIELDS)
    resuming = changes.get("status") == strategy_store.ACTIVE and not current.active
    if not new_sizing and not resuming:
        return
    from klineo.binance import Environment, Market, get_client, get_symbol_rules
    from klineo.runner.planning import require_market_orders, require_tradable_sizing

    size = changes["size"] if new_sizing else current.size
    quote = changes["quote_size_usdt"] if new_sizing else current.settings.quote_size_usdt
    rules = get_symbol_rules(get_client(Market.FUTURES, Environment(current.environment)), current.symbol)
    market_orders = (lambda: require_market_orders(rules)) if resuming else (lambda: None)
    refuse_together(market_orders, lambda: require_tradable_sizing(rules, size, quote))


def require_may_activate(user_id: str, current: Strategy, changes: dict[str, Any], *, reset: bool = False,
                         connection: Connection | None = None) -> None:
    """The one rule of what a strategy may be after ``changes`` (a resume: ``{"status": "active"}``), asked
    by PATCH /strategies/{id} and by POST /exchange-connections/{id}/enable for each strategy it would resume:
    a side to trade, a connection to run on, a sizing and order type its symbol takes, paper equity
    (``reset``: the PATCH restarts the paper ledger). Raises the refusal (4xx naming the field)."""
    refuse_together(lambda: _check_direction(current, changes),
                    lambda: _check_runnable(user_id, current, changes, connection),
                    lambda: _check_tradable(current, changes),
                    lambda: _check_paper_equity(current, changes, reset))


def update_strategy(user_id: str, strategy_id: str, body: StrategyUpdateRequest) -> StrategyResponse:
    """Change type/parameters, sizing, mode, status or trading settings of one of the caller's strategies."""
    refuse_nulls(body, CLEARABLE_FIELDS)
    current = owned_strategy(user_id, strategy_id)
    changes = _type_changes(current, body)
    changes.update(_settings_changes(body))
    if body.mode is not None:
        changes["mode"] = body.mode
    if body.status is not None:
        changes["status"] = body.status
        changes["status_reason"] = "paused by user" if body.status == strategy_store.PAUSED else None
    reset = _paper_reset(current, changes)
    require_may_activate(user_id, current, changes, reset=reset is not None)
    if not changes:
        return strategy_response(current)
    events = _status_events(current, changes)
    updated = strategy_store.update_settings(user_id, strategy_id, current, changes=changes,
                                             paper_reset=reset, events=events, if_unchanged=True)
    return strategy_response(updated)


def _status_events(current: Strategy, changes: dict[str, Any]) -> list[dict[str, Any]]:
    """The Put of the ``paused`` or ``resumed`` event (by the user) when the PATCH changes the status, for the
    PATCH's one write (``strategy_store.update_settings``): the event lands exactly when the change does."""
    status = changes.get("status", current.status)
    if status == current.status:
        return []
    from klineo.store.events import StrategyEvent, event_put, write_time

    kind = "resumed" if status == strategy_store.ACTIVE else "paused"
    event = StrategyEvent(current.strategy_id, current.user_id, kind, int(time.time() * 1000), {"by": "user"})
    return [event_put(event, write_time())]
