"""PATCH /strategies/{id} writes only while the strategy is as the PATCH read it.

Between the PATCH's read and its write another writer may change the strategy: the runner pausing it
(``untradable_size``, ``no_market_orders``, repeated failures), the connection's disable pausing it, a
user's other PATCH. Its write is conditional on the ``updated_at`` it read (every write of a strategy moves
it), so such a change is never overwritten: the PATCH answers a retryable 409 and writes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from klineo.services import strategy_updates
from klineo.store import strategies as strategy_store

from tests.helpers import response_json
from tests.integration.runner.test_strategies_api import ALICE, Api, create_body, error_of

RUNNER_PAUSE = "untradable_size"


@pytest.fixture
def api(runner) -> Api:
    """The strategy routes on moto and the simulator."""
    return Api(runner.invoke)


@pytest.fixture
def paused_after_the_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner pauses the strategy (``RUNNER_PAUSE``) just after the PATCH read it."""
    real = strategy_updates.owned_strategy

    def read_then_runner_pauses(user_id: str, strategy_id: str) -> Any:
        current = real(user_id, strategy_id)
        assert strategy_store.pause_strategy(user_id, strategy_id, RUNNER_PAUSE)
        return current

    monkeypatch.setattr(strategy_updates, "owned_strategy", read_then_runner_pauses)


@pytest.mark.parametrize("body", [
    {"status": "active", "leverage": 2},  # a form saved whole: status active as it was read
    {"leverage": 2},
    {"paper_balance_usdt": "5000"},
], ids=["status_active", "leverage", "paper_balance"])
def test_a_patch_racing_the_runners_pause_answers_409_and_keeps_the_pause(runner, api, body,
                                                                          paused_after_the_read) -> None:
    """GIVEN an active strategy WHEN the runner pauses it between the PATCH's read and its write THEN a
    retryable 409 and nothing written: still paused with the runner's reason and its old settings (before:
    200, the runner's pause undone by a status active read before it, or the paused strategy put back on
    the active index by a leverage change)."""
    created = response_json(api.create(ALICE, create_body(runner.connection(ALICE))))

    response = api.update(ALICE, created["id"], body)

    assert response["statusCode"] == 409, response["body"]
    error = error_of(response)
    assert (error["category"], error["retryable"], error["message"]) == (
        "conflict", True, strategy_store.CHANGED_MEANWHILE)  # a PATCH's own advice, never a DELETE's
    stored = strategy_store.get_strategy(ALICE, created["id"], consistent=True)
    assert (stored.status, stored.status_reason, stored.settings.leverage) == ("paused", RUNNER_PAUSE, None)
    assert str(stored.settings.paper_balance_usdt) == created["paper_balance_usdt"]
    assert stored.strategy_id not in {s.strategy_id for s in strategy_store.query_active("1m")}


def test_a_patch_after_the_pause_is_read_applies(runner, api) -> None:
    """GUARD: a PATCH that reads the strategy as the runner left it (paused) applies (200): only a change
    between its read and its write is refused."""
    created = response_json(api.create(ALICE, create_body(runner.connection(ALICE))))
    assert strategy_store.pause_strategy(ALICE, created["id"], RUNNER_PAUSE)

    response = api.update(ALICE, created["id"], {"leverage": 2})

    assert response["statusCode"] == 200, response["body"]
    assert (response_json(response)["status"], response_json(response)["leverage"]) == ("paused", 2)
