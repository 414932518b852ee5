"""What a strategy's events and runs tell the trader of a failure: its reason, never an API caller's advice
(``KlineoError.trader_message``), on the simulator and moto.

A strategy's turn has no request to repeat nor an order to look up by hand: its runner does both by itself,
so advice such as "look the order up by its client order id before sending it again" (said to an API caller)
is wrong there. The trader reads these texts in the UI (GET /strategies/{id}/events and /runs).
"""

from __future__ import annotations

from tests.integration.runner.test_failed_runs_pause import ALWAYS_LONG, USER, minute_start
from tests.integration.runner.test_hedge_mode import events

# Binance's 503 with an unknown outcome, as the runner tells it: the reason alone.
UNKNOWN_OUTCOME = "Binance did not confirm the outcome: the order may or may not have been placed."


def test_a_failed_run_and_its_error_event_carry_the_reason_without_an_api_callers_advice(runner) -> None:
    """GIVEN a live strategy whose symbol leverage Binance answers 503 with an unknown outcome WHEN its turn
    runs THEN the failed run's error and the ``error`` event say what happened only: before, both ended with
    "Look the order up by its client order id before sending it again.", an API caller's advice."""
    sid = runner.strategy(USER, runner.connection(USER), leverage=5, **ALWAYS_LONG)
    runner.sim.faults.add("http_503_unknown", method="POST", path="/fapi/v1/leverage", count=1,
                          execute=False)

    runner.run_tick(minute_start())

    [run] = runner.runs(sid)
    assert (run.status, run.error) == ("failed", {"category": "unknown_outcome", "message": UNKNOWN_OUTCOME})
    [error] = events(sid, "error")
    assert error.details == {"category": "unknown_outcome", "message": UNKNOWN_OUTCOME}
