"""Runs that keep failing: the strategy's count of consecutive failed runs, and the pause at its limit.

A live strategy whose order (or symbol setting, or filter) Binance refuses every minute would write a
failed run every minute forever. So the strategy item counts its consecutive failed runs
(``failed_runs``), in the same write that records each run (``klineo.store.runs``: no request of its
own), and the run that reaches ``FAILED_RUN_LIMIT`` also pauses it (reason
``repeated_failures:<category>``, a ``paused`` event saying how many runs failed and why).

Which runs count (``counts``): those whose failure comes again by itself, i.e. not transient
(``KlineoError.transient``, the one rule in ``klineo.errors``): Binance refused the order or the
symbol's margin type or leverage, a filter or our own validation refused it; a refusal Binance lifts by
itself (-2023 a liquidation, -4400 the quantitative rules: retryable by its code's rule) counts too, as
Binance refused the order all the same (``KlineoError.refused_by_binance``). Not counted: what a
retry can mend or what is still being settled (5xx, 429/418, timeouts, an unknown outcome, AWS
throttling), so an outage of Binance pauses nobody; and key refusals, which have a count of their own
(``key_failures``, ``klineo.services.key_health``) and pause sooner: a run is never counted twice.

What resets the count: a run that is not failed and not skipped (a hold, a paper fill, a settled
order). A skipped run (a gate, a stale candle, an order never placed) changes nothing: it says
nothing about whether the strategy's orders would go through. A paper entry whose margin does not fit
the paper equity is such a skipped run, not a failure: the backtest asks again on every candle, and
paper mode must trade as it does (``klineo.runner.execution``). The reset is written only when the
count is not 0 (with it a hold becomes one transaction instead of one put, once). Resuming the
strategy (PATCH status active) clears it too (``klineo.store.strategies.update_settings``), and a live
order in flight meanwhile never writes the old count back (``klineo.store.runs.settle_live_order``).
"""

from __future__ import annotations

from klineo.errors import KlineoError
from klineo.services.key_health import is_key_failure

__all__ = ["FAILED_RUN_LIMIT", "PAUSE_PREFIX", "after_failure", "after_success", "counts", "paused_message"]

# Consecutive failed runs (that count) after which the strategy pauses itself.
FAILED_RUN_LIMIT = 5
PAUSE_PREFIX = "repeated_failures"


def counts(error: KlineoError) -> bool:
    """True when a run ``error`` failed counts towards the pause: a refusal that repeats, not of the key."""
    return not error.transient and not is_key_failure(error)


def after_failure(failed_runs: int, error: KlineoError) -> tuple[int | None, str | None]:
    """(the new count, the pause reason at the limit) after a run ``error`` failed; (None, None) when the
    run does not count (the count is left as it is)."""
    if not counts(error):
        return None, None
    count = failed_runs + 1
    return count, f"{PAUSE_PREFIX}:{error.category}" if count >= FAILED_RUN_LIMIT else None


def after_success(failed_runs: int) -> int | None:
    """The count after a run neither failed nor skipped: 0, or None when it is 0 already (no write)."""
    return 0 if failed_runs else None


def paused_message(count: int, error: KlineoError) -> str:
    """What the ``paused`` event tells the trader: how many runs failed, and the last one's safe reason."""
    return f"Paused after {count} consecutive failed runs. Last error: {error.trader_message}"
