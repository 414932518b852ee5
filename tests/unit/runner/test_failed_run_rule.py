"""Which failed runs count towards a strategy's pause (klineo.runner.failures), by error category."""

from __future__ import annotations

import pytest
from klineo.binance import ErrorCategory, KlineoError
from klineo.binance.codes import classify_detail
from klineo.runner.failures import FAILED_RUN_LIMIT, after_failure, after_success, counts, paused_message

C = ErrorCategory
# Binance (or AWS) busy, down, slow or unreachable, or an outcome still to be looked up: an outage.
TRANSIENT = {C.TIMESTAMP, C.RATE_LIMIT, C.IP_BANNED, C.UPSTREAM_UNAVAILABLE, C.NETWORK, C.UNKNOWN_OUTCOME}
# The key itself refused: counted on key_failures, never twice.
KEY = {C.PERMISSION, C.SIGNATURE, C.IP_WHITELIST}


@pytest.mark.parametrize("category", list(ErrorCategory))
def test_only_refusals_that_repeat_and_are_not_the_keys_count(category: ErrorCategory) -> None:
    """A refusal counts (order, setting, filter, our own); an outage or a key refusal never does."""
    assert counts(KlineoError(category)) is (category not in TRANSIENT | KEY)


def test_a_refusal_raised_as_retryable_does_not_count() -> None:
    """An error raised retryable (storage busy, a conflict to retry) is transient whatever its category."""
    assert not counts(KlineoError(C.CONFLICT, "busy", retryable=True))


@pytest.mark.parametrize(("status", "code", "msg", "counted"), [
    (400, -2023, "User in liquidation mode now.", True),
    (400, -4400, "Futures Trading Quantitative Rules violated, only reduceOnly order is allowed.", True),
    (400, -2019, "Margin is insufficient.", True),
    (429, -1003, "Too many requests.", False),
    (400, -1015, "Too many new orders.", False),
    (418, -1003, "Way too many requests; IP banned.", False),
    (503, None, "Service Unavailable.", False),
    (408, -1007, "Timeout waiting for response from backend server.", False),
], ids=["liquidation", "quantitative_rules", "margin", "429", "-1015", "418", "503", "-1007"])
def test_a_binance_refusal_counts_even_when_it_lifts_by_itself(status, code, msg, counted) -> None:
    """A refusal Binance answered with a code counts (and is no transient failure) even when its rule marks it
    retryable because it lifts by itself; rate limits, bans, outages and unknown outcomes never count."""
    found = classify_detail(status, code, msg)
    error = KlineoError(found.category, found.message, status=status, code=code, retryable=found.retryable)

    assert (counts(error), error.transient, error.refused_by_binance) == (counted, not counted, counted)


def test_the_limit_pauses_with_the_category_and_a_message_without_the_input() -> None:
    """The run reaching FAILED_RUN_LIMIT pauses, the one before does not; the message is the safe one."""
    refused = KlineoError(C.INSUFFICIENT_BALANCE, "Margin is insufficient for this order.", code=-2019)
    assert after_failure(FAILED_RUN_LIMIT - 2, refused) == (FAILED_RUN_LIMIT - 1, None)
    assert after_failure(FAILED_RUN_LIMIT - 1, refused) == (5, "repeated_failures:insufficient_balance")
    assert after_failure(3, KlineoError(C.NETWORK)) == (None, None)
    assert paused_message(5, refused) == (
        "Paused after 5 consecutive failed runs. Last error: Margin is insufficient for this order.")
    assert (after_success(3), after_success(0)) == (0, None)


def test_the_pause_tells_the_last_errors_reason_not_an_api_callers_advice() -> None:
    """The ``paused`` event's text names the last error by its reason alone (``trader_message``): a refusal
    that came with advice for an API caller ("repeat the request with the same Idempotency-Key") does not
    tell the trader to repeat a request a strategy never sent."""
    refused = KlineoError(C.ORDER_REJECTED, "Binance rejected the order.",
                          advice="Repeat the request with the same Idempotency-Key.")
    assert paused_message(5, refused) == (
        "Paused after 5 consecutive failed runs. Last error: Binance rejected the order.")


def test_the_strategy_answer_states_the_pause_limits_the_runner_applies() -> None:
    """The API's descriptions of failed_runs and key_failures name the limits at which the runner pauses (the
    models cannot import them: the strategy routes load neither module), so they cannot drift apart."""
    from klineo.models.strategies import StrategyResponse
    from klineo.services.key_health import KEY_FAILURE_LIMIT

    fields = StrategyResponse.model_fields
    assert f"at {FAILED_RUN_LIMIT} the runner pauses" in fields["failed_runs"].description
    assert f"at {KEY_FAILURE_LIMIT} the runner pauses" in fields["key_failures"].description
