"""``paper_balance_usdt`` is the paper account's starting capital: a PATCH of it restarts the flat paper
ledger from the new value (one write, with a ``paper_reset`` event) and is refused while a paper position
is open.

The paper ledgers come from real runner turns on hand-made candles (``test_paper_margin``'s), the PATCH
through its handler under its IAM policy, DynamoDB under moto.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from klineo.errors import KlineoError
from klineo.runner.paper import ledger_of
from klineo.store import strategies as strategy_store
from klineo.store.events import StrategyEvent, event_put, list_events, write_time

from tests.helpers import response_json
from tests.integration.runner.test_paper_margin import (
    CRASH,
    FLIP,
    USER,
    _candles,
    _patch,
    _stored,
    _strategy,
    _tick,
)
from tests.integration.runner.test_runner_writes import _Writes

D = Decimal


def _flat_after_a_loss() -> str:
    """A paper strategy (balance 101.05, size 1) that went long at 101 and closed it lower: flat, with a
    realised loss."""
    candles = _candles(FLIP)
    sid = _strategy(size="1", paper_balance_usdt="101.05")
    assert [_tick(candles, index, sid).outcome for index in (3, 4)] == ["simulated", "simulated"]
    stored = _stored(sid)
    assert stored.paper_position == 0 and ledger_of(stored).realised_pnl < 0
    return sid


def _with_open_long() -> str:
    """A paper strategy holding a long of 1 (entered at 101)."""
    candles = _candles(FLIP)
    sid = _strategy(size="1", paper_balance_usdt="101.05")
    assert _tick(candles, 3, sid).outcome == "simulated"
    assert _stored(sid).paper_position == 1
    return sid


def _resets(sid: str) -> list[StrategyEvent]:
    return [e for e in list_events(sid, 50).events if e.kind == "paper_reset"]


def test_a_new_paper_balance_on_a_flat_strategy_restarts_its_ledger_in_one_write(runner) -> None:
    """GIVEN an active flat paper strategy with a realised loss WHEN its paper_balance_usdt is lowered THEN
    200, ONE TransactWriteItems: the paper equity IS the new balance (realised PnL and fees 0) and a
    paper_reset event says what it was."""
    sid = _flat_after_a_loss()
    before = ledger_of(_stored(sid)).equity()
    writes = _Writes()

    response = _patch(runner, sid, {"paper_balance_usdt": "50"})

    assert response["statusCode"] == 200, response["body"]
    assert writes.counts["TransactWriteItems"] == 1 and writes.counts["UpdateItem"] == 0
    stored = _stored(sid)
    ledger = ledger_of(stored)
    assert (stored.settings.paper_balance_usdt, ledger.equity(), ledger.realised_pnl, ledger.fees) == (
        D(50), D(50), 0, 0)
    assert (stored.status, response_json(response)["paper_balance_usdt"]) == ("active", "50")
    reset, = _resets(sid)
    assert reset.details == {"by": "user", "paper_balance_usdt": "50",
                             "previous_paper_balance_usdt": "101.05", "previous_equity": str(before)}


def test_a_new_paper_balance_while_a_paper_position_is_open_is_refused(runner) -> None:
    """GIVEN a paper long WHEN paper_balance_usdt is lowered THEN 409 naming it, the balance, position and
    book unchanged, no event (lowering the capital under an open position would move its equity, and its
    liquidation price, by a sum it never lost)."""
    sid = _with_open_long()
    before = _stored(sid)

    response = _patch(runner, sid, {"paper_balance_usdt": "50"})

    assert response["statusCode"] == 409, response["body"]
    error = response_json(response)["error"]
    assert (error["category"], error["field"]) == ("conflict", "paper_balance_usdt")
    after = _stored(sid)
    assert (after.settings.paper_balance_usdt, after.paper_position, after.paper_book) == (
        D("101.05"), 1, before.paper_book)
    assert _resets(sid) == []


def test_the_stored_paper_balance_sent_again_changes_nothing(runner) -> None:
    """GUARD (unchanged behaviour): the stored paper_balance_usdt sent again with another change (a form saved
    whole) is accepted while a position is open, and resets nothing."""
    sid = _with_open_long()
    before = _stored(sid)

    response = _patch(runner, sid, {"paper_balance_usdt": "101.05", "stop_loss_pct": "5"})

    assert response["statusCode"] == 200, response["body"]
    after = _stored(sid)
    assert (after.paper_position, after.paper_book["gross_pnl"], after.paper_book["fees"]) == (
        1, before.paper_book["gross_pnl"], before.paper_book["fees"])
    assert _resets(sid) == []


def test_a_paper_position_opened_meanwhile_refuses_the_reset_with_nothing_written(sim_env) -> None:
    """GIVEN a PATCH that read the strategy flat WHEN the runner opened a paper position before its write THEN
    CONFLICT naming paper_balance_usdt: neither the balance, the book nor the event is written."""
    candles = _candles(FLIP)
    sid = _strategy(size="1", paper_balance_usdt="101.05")
    read_flat = _stored(sid)
    assert _tick(candles, 3, sid).outcome == "simulated"  # the runner's entry, after the PATCH's read
    event = StrategyEvent(sid, USER, "paper_reset", 1, {"by": "user"})

    with pytest.raises(KlineoError) as refused:
        strategy_store.update_settings(USER, sid, read_flat, changes={"paper_balance_usdt": D(50)},
                                       paper_reset=event_put(event, write_time()))

    assert (refused.value.category, refused.value.field) == ("conflict", "paper_balance_usdt")
    after = _stored(sid)
    assert (after.settings.paper_balance_usdt, after.paper_position) == (D("101.05"), 1)
    assert after.paper_book and D(after.paper_book["fees"]) > 0
    assert _resets(sid) == []


def test_a_liquidated_strategy_resumes_with_its_old_balance_sent_again(runner) -> None:
    """GIVEN a paper strategy liquidated to 0 equity WHEN it is resumed with the same paper_balance_usdt THEN
    200, active, the ledger started again from it (equity 1000) with a paper_reset event."""
    candles = _candles(CRASH)
    sid = _strategy(size=None, size_pct="100", leverage=10, paper_balance_usdt="1000")
    assert [_tick(candles, index, sid).detail for index in (3, 4, 5)][-1] == "paper_liquidated"

    response = _patch(runner, sid, {"status": "active", "paper_balance_usdt": "1000"})

    assert response["statusCode"] == 200, response["body"]
    stored = _stored(sid)
    assert (stored.status, ledger_of(stored).equity()) == ("active", D(1000))
    reset, = _resets(sid)
    assert (reset.details["previous_equity"], reset.details["paper_balance_usdt"]) == ("0", "1000")
