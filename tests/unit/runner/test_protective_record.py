"""The record of a live entry's stops after its settle: written only for what the turn read (moto).

``klineo.store.runs.set_protective`` writes the strategy's ``protective`` only while no order is pending and
the position, its entry and its record are the ones the writing turn read; ``add_superseded`` hands orders
whose cancel failed to the record as it is now. The race itself, end to end:
tests/integration/runner/test_protective_record_race.py.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from klineo.settings import get_settings
from klineo.store import aws as clients
from klineo.store import strategies as strategy_store
from klineo.store.dynamo import Update
from klineo.store.runs import add_superseded, claim_live_order, set_protective
from klineo.store.strategies import strategy_key

from tests.unit.runner.helpers import make_pending, make_strategy

D = Decimal
C = 1_740_067_379_999  # a 1m candle close time
SHORT = D("-0.002")
NEWER = {"mode": "live", "parent_client_order_id": "ks-newer", "entry_side": "SELL", "armed": True}
LATE = {"mode": "live", "parent_client_order_id": "ks-older", "entry_side": "BUY", "armed": True}


def _held(protective: dict[str, Any] | None, position: Decimal = SHORT, entry: str = "ks-newer") -> str:
    """A stored live strategy holding ``position`` entered by ``entry``, with ``protective`` recorded."""
    strategy = make_strategy()
    sets: dict[str, Any] = {"live_position": position, "live_book": {"entry_client_order_id": entry}}
    if protective is not None:
        sets["protective"] = protective
    clients.dynamodb().update_item(TableName=get_settings().data_table,
                                   Key=strategy_key(strategy.user_id, strategy.strategy_id),
                                   **Update(sets=sets).request())
    return strategy.strategy_id


def _stored(sid: str) -> dict[str, Any] | None:
    stored = strategy_store.get_strategy("user-a", sid, consistent=True)
    assert stored is not None
    return stored.protective


def test_a_late_record_never_overwrites_the_record_a_newer_turn_wrote(aws) -> None:
    """GIVEN a position whose record a newer turn wrote after this turn read none WHEN this turn's record is
    written (for the same position and entry, even) THEN nothing is written and the newer record stays."""
    sid = _held(NEWER)

    written = set_protective("user-a", sid, LATE, held=SHORT, seen=None, entry="ks-newer")

    assert not written and _stored(sid)["parent_client_order_id"] == "ks-newer"


def test_a_record_for_a_position_or_entry_gone_is_not_written(aws) -> None:
    """GIVEN a record read as absent WHEN written for another position, or another entry, than the strategy
    holds now THEN nothing is written; for the position and entry it holds, it is."""
    sid = _held(None)

    assert not set_protective("user-a", sid, LATE, held=D("0.002"), seen=None, entry="ks-newer")
    assert not set_protective("user-a", sid, LATE, held=SHORT, seen=None, entry="ks-older")
    assert _stored(sid) is None
    assert set_protective("user-a", sid, NEWER, held=SHORT, seen=None, entry="ks-newer")
    assert _stored(sid)["parent_client_order_id"] == "ks-newer"


def test_a_record_read_before_a_generation_was_claimed_is_not_written(aws) -> None:
    """GIVEN a record whose re-pricing claimed a generation after this turn read it WHEN this turn forgets it
    THEN nothing is written; read as it is now, it is forgotten."""
    sid = _held({**NEWER, "generations": 2})

    assert not set_protective("user-a", sid, None, held=SHORT, seen=NEWER)
    assert set_protective("user-a", sid, None, held=SHORT, seen={**NEWER, "generations": 2})
    assert _stored(sid) is None


def test_no_record_is_written_while_another_order_is_pending(aws) -> None:
    """GIVEN a newer turn's order claimed (pending) WHEN a record read before it is written THEN nothing is
    written: that turn's settle disarms and records from what it read."""
    strategy = make_strategy()
    claim = claim_live_order(strategy.user_id, strategy.strategy_id,
                             make_pending(C, lease_until_ms=10**13), seen_updated_at=strategy.updated_at)
    assert claim

    assert not set_protective("user-a", strategy.strategy_id, LATE, held=D(0), seen=None)
    assert _stored(strategy.strategy_id) is None


def test_orders_left_uncancelled_are_handed_to_the_record_as_it_is_now(aws) -> None:
    """GIVEN a record with one superseded order WHEN two more are handed to it THEN it keeps all three; GIVEN
    no record with an entry THEN none is made up (False)."""
    sid = _held({**NEWER, "superseded": ["a-sl"]})
    bare = _held(None)

    assert add_superseded("user-a", sid, ["b-sl", "b-tp"])
    assert not add_superseded("user-a", bare, ["b-sl"])
    assert _stored(sid)["superseded"] == ["a-sl", "b-sl", "b-tp"] and _stored(bare) is None
