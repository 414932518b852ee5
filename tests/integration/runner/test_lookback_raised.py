"""A strategy's turn decides on as many closed candles as the parameters it decides with read.

The worker reads each candle group for the lookback of the strategies as the dispatcher's snapshots
describe them. A PATCH between the dispatch and the worker's turn that raises the lookback past what the
group holds (an SMA slow period 3 -> 150: 151 candles, the group's 98) makes the turn, played again on the
strategy as it is now, short of candles: it reads its own (``klineo.runner.execution``, step 5) rather
than holding on too few. The common case (snapshot as stored) still costs one klines request per group.
"""

from __future__ import annotations

from typing import Any

import pytest
from klineo.binance import Market, get_client, klines
from klineo.strategies import parse_parameters
from klineo.strategies.sma_crossover import STRATEGY

from tests.helpers import response_json
from tests.integration.runner.conftest import KLINES_PATH
from tests.integration.runner.test_strategies_api import ALICE, Api

# Past the 98 closed candles a group's cheapest request (limit 99, weight 1) brings.
LONG_LOOKBACK = {"fast": 2, "slow": 150, "allow_short": True}


@pytest.fixture
def api(runner) -> Api:
    """The strategy routes on moto and the simulator."""
    return Api(runner.invoke)


def _expected(parameters: dict[str, Any], close_time: int) -> dict[str, Any]:
    """The decision ``parameters`` make on the simulator's closed 1m BTCUSDT candles up to ``close_time``,
    read here on their own (their indicators and signal)."""
    params = parse_parameters("sma_crossover", parameters)
    client = get_client(Market.FUTURES, "production")
    rows = klines(client, "BTCUSDT", "1m", limit=500, end_time=close_time + 1)
    closed = [row for row in rows if row.close_time <= close_time]
    decision = STRATEGY.decide(params, closed[-STRATEGY.lookback(params):])
    return {"signal": str(decision.signal), "indicators": decision.indicators}


def test_a_lookback_raised_after_dispatch_decides_on_the_new_parameters_candles(runner, api) -> None:
    """GIVEN a paper SMA 2/3 strategy dispatched WHEN the user PATCHes its slow period to 150 before the
    worker runs THEN its turn decides with SMA 2/150 on 151 closed candles (before: a hold "need 151 closed
    candles, got 98"), at the cost of one klines request of its own besides the group's."""
    sid = runner.strategy(ALICE, runner.connection(ALICE), mode="paper")
    event = runner.dispatched_event()
    patched = api.update(ALICE, sid, {"type": "sma_crossover", "parameters": LONG_LOOKBACK})
    assert patched["statusCode"] == 200, patched["body"]
    assert response_json(patched)["parameters"]["slow"] == 150

    runner.sim.clear_journal()
    assert runner.work_event(event)["batchItemFailures"] == []

    klines_requests = len(runner.journal("GET", KLINES_PATH))
    [run] = runner.runs(sid)
    assert "need" not in (run.reason or ""), run.reason
    assert {"signal": run.signal, "indicators": run.indicators} == _expected(LONG_LOOKBACK, runner.tick_close)
    assert klines_requests == 2


def test_guard_a_long_lookback_as_dispatched_costs_one_klines_request(runner) -> None:
    """GUARD: a strategy dispatched with slow 150 (snapshot as stored) decides on its 151 candles from the
    group's one klines request: no extra read in the common case."""
    sid = runner.strategy(ALICE, runner.connection(ALICE), mode="paper", parameters=LONG_LOOKBACK)
    event = runner.dispatched_event()
    runner.sim.clear_journal()

    assert runner.work_event(event)["batchItemFailures"] == []

    klines_requests = len(runner.journal("GET", KLINES_PATH))
    [run] = runner.runs(sid)
    assert {"signal": run.signal, "indicators": run.indicators} == _expected(LONG_LOOKBACK, runner.tick_close)
    assert klines_requests == 1
