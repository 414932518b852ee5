"""A DELETE /strategies/{id} beside a re-pricing of the position's stops leaves no stop armed unowned.

A re-pricing (``klineo.runner.reprice``) claims a generation in ``protective.repricing`` before it places
anything, places the claimed orders, then records them (the replaced ones in ``superseded``) and cancels the
replaced ones. The delete cancels the orders a re-pricing replaced but could not cancel and keeps the current
ones (the position stays open with its stops). Here the delete meets a re-pricing part-way: one whose turn
was lost after it placed (claimed, never recorded), one still placing when the delete lands, and a turn that
records a replaced order between the delete's read and its write. Real dispatcher, worker and DELETE route
on moto and the simulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from klineo.services.protective_siblings import protective_client_algo_id
from klineo.store import aws as aws_clients

from local.scheduler import sqs_event
from tests.helpers import response_json
from tests.integration.runner.test_protective_reprice import (
    ALGO_PATH,
    USER,
    _algos,
    _crash_on_finish,
    _guarded_long,
    _open,
    _patch,
    _ticks,
)
from tests.integration.runner.test_strategies_api import Api


def _open_ids(runner) -> list[str]:
    return sorted(a.client_algo_id for a in _open(runner))


def test_a_delete_cancels_the_stop_a_lost_repricing_placed_and_never_recorded(runner, monkeypatch) -> None:
    """GIVEN a live long with SL 2 % / TP 3 % whose stop moved to 1 %, the turn lost right after the new
    stop was placed (claimed in ``protective.repricing``, never recorded) WHEN the strategy is deleted THEN
    204, the new stop is cancelled on Binance and the recorded stop-loss and take-profit stay armed on the
    position (before: both stop-losses stayed armed, the claimed one nobody's to cancel)."""
    first, second = _ticks(runner, 2)
    sid, entry, _fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"stop_loss_pct": "1"})
    _crash_on_finish(monkeypatch)
    runner.run_tick(second)
    claimed = protective_client_algo_id(entry, "stop_loss", 1)
    assert runner.stored(USER, sid).protective["repricing"]["roles"] == ["stop_loss"]
    assert _algos(runner)[claimed].status == "NEW"

    deleted = Api(runner.invoke).delete(USER, sid)

    assert deleted["statusCode"] == 204, deleted["body"]
    assert _algos(runner)[claimed].status == "CANCELED"
    assert _open_ids(runner) == sorted(protective_client_algo_id(entry, role)
                                       for role in ("stop_loss", "take_profit"))
    assert runner.stored(USER, sid) is None


def test_a_repricing_that_finds_its_strategy_deleted_cancels_what_it_placed(runner, monkeypatch) -> None:
    """GIVEN a live long with SL 2 % / TP 3 % whose stop moved to 1 % WHEN the strategy is deleted while the
    turn's re-pricing is placing the new stop (claimed, not yet on Binance) THEN 204, and the turn, finding no
    strategy to record it on, cancels the stop it placed: only the entry's stop-loss and take-profit stay
    armed (before: the new stop stayed armed, nobody's)."""
    from klineo.services import strategy_protection

    first, second = _ticks(runner, 2)
    sid, entry, _fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"stop_loss_pct": "1"})
    real_arm = strategy_protection.arm_strategy_protection
    deletes: list[dict[str, Any]] = []

    def arm_after_a_delete(connection: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("generation") and not deletes:
            deletes.append(Api(runner.invoke).delete(USER, sid))
        return real_arm(connection, *args, **kwargs)

    monkeypatch.setattr(strategy_protection, "arm_strategy_protection", arm_after_a_delete)
    runner.run_tick(second)

    assert [d["statusCode"] for d in deletes] == [204], deletes
    assert runner.stored(USER, sid) is None
    assert _algos(runner)[protective_client_algo_id(entry, "stop_loss", 1)].status == "CANCELED"
    assert _open_ids(runner) == sorted(protective_client_algo_id(entry, role)
                                       for role in ("stop_loss", "take_profit"))


@contextmanager
def _turn_before_the_delete_writes(runner, sid: str, tick_ms: int) -> Iterator[list[int]]:
    """While inside, the first DeleteItem of the strategy's item plays the turn at ``tick_ms`` first
    (dispatched now, worked then; Binance failing every cancel of an algo order meanwhile), as a worker turn
    racing the delete between its read and its write; yields the ticks played so far."""
    runner.tick(tick_ms)
    messages = runner.receive()
    for message in messages:
        runner.sqs.delete_message(QueueUrl=runner.queue_url, ReceiptHandle=message["ReceiptHandle"])
    event = sqs_event(messages, runner.queue_arn, runner.aws.region)
    played: list[int] = []

    def turn_first(params: dict[str, Any], **_: object) -> None:
        if played or sid not in str(params.get("Key")):
            return
        played.append(tick_ms)
        runner.sim.faults.add("http_503_unavailable", count=50, method="DELETE", path=ALGO_PATH)
        assert runner.work_event(event)["batchItemFailures"] == []
        runner.sim.faults.clear()

    client, hook = aws_clients.dynamodb(), "before-parameter-build.dynamodb.DeleteItem"
    client.meta.events.register(hook, turn_first)
    try:
        yield played
    finally:
        client.meta.events.unregister(hook, turn_first)


def test_a_turn_that_replaces_a_stop_between_the_deletes_read_and_write_leaves_none_armed(runner) -> None:
    """GIVEN a live long with SL 2 % / TP 3 % whose stop moved to 1 % WHEN a worker turn re-prices it
    between the delete's read and its write, Binance failing the old stop's cancel (kept in ``superseded``)
    THEN the delete is refused (409, send it again) with the strategy kept, and a DELETE sent again cancels
    the old stop and deletes: only the current stop-loss and take-profit stay armed (before: 204 with the old
    stop armed beside the new one, nobody to cancel it)."""
    first, second = _ticks(runner, 2)
    sid, entry, _fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"stop_loss_pct": "1"})
    old = protective_client_algo_id(entry, "stop_loss")
    api = Api(runner.invoke)

    with _turn_before_the_delete_writes(runner, sid, second) as played:
        refused = api.delete(USER, sid)

    assert played == [second]
    assert refused["statusCode"] == 409, refused["body"]
    assert "DELETE again" in response_json(refused)["error"]["message"]
    assert runner.stored(USER, sid).protective["superseded"] == [old]
    assert api.delete(USER, sid)["statusCode"] == 204
    assert _algos(runner)[old].status == "CANCELED"
    assert _open_ids(runner) == sorted([protective_client_algo_id(entry, "stop_loss", 1),
                                        protective_client_algo_id(entry, "take_profit")])


# A re-priced take-profit Binance did not answer for (the stop-loss beside it placed): unavailable (503, not
# taken), or taken with its answer lost and not readable (a timeout, then every read failing).
UNANSWERED_TAKE_PROFIT = {
    "unavailable": [("http_503_unavailable", {"method": "POST", "after": 1, "count": 50})],
    "answer_lost": [("timeout_1007", {"method": "POST", "after": 1, "count": 1, "execute": True}),
                    ("http_503_unavailable", {"method": "GET", "count": 50})],
}


@pytest.mark.parametrize("case", UNANSWERED_TAKE_PROFIT)
def test_a_repricing_failing_after_its_strategy_was_deleted_cancels_what_it_placed(runner, monkeypatch,
                                                                                    case) -> None:
    """GIVEN a live long with SL 2 % / TP 3 % moved to SL 1 % / TP 5 % WHEN the strategy is deleted while the
    turn's re-pricing is placing them, the new stop-loss placed and Binance failing the new take-profit
    (unavailable, or taken with its answer lost) THEN the turn, finding no strategy to keep its claim on,
    cancels what it placed, looking up the one whose outcome it does not know: only the entry's stop-loss and
    take-profit stay armed (before: the new stop-loss stayed armed, nobody's)."""
    from klineo.services import strategy_protection

    first, second = _ticks(runner, 2)
    sid, entry, _fill = _guarded_long(runner, first, stop_loss_pct="2", take_profit_pct="3")
    _patch(runner, sid, {"stop_loss_pct": "1", "take_profit_pct": "5"})
    real_arm = strategy_protection.arm_strategy_protection
    deletes: list[dict[str, Any]] = []

    def arm_after_a_delete(connection: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("generation") and not deletes:
            deletes.append(Api(runner.invoke).delete(USER, sid))
            for kind, where in UNANSWERED_TAKE_PROFIT[case]:
                runner.sim.faults.add(kind, path=ALGO_PATH, **where)
        return real_arm(connection, *args, **kwargs)

    monkeypatch.setattr(strategy_protection, "arm_strategy_protection", arm_after_a_delete)
    runner.run_tick(second)
    runner.sim.faults.clear()

    assert [d["statusCode"] for d in deletes] == [204], deletes
    assert runner.stored(USER, sid) is None
    assert _open_ids(runner) == sorted(protective_client_algo_id(entry, role)
                                       for role in ("stop_loss", "take_profit"))
