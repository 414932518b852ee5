"""The local Lambda runtime imports each function as its own package and calls it as Lambda would."""

from __future__ import annotations

import json
import os

import pytest

from local.lambda_runtime import FunctionError, LambdaRuntime, without_metric_lines
from local.template import Resolver
from tests.helpers import load_event, with_user


def test_functions_are_imported_as_their_own_packages(aws: Resolver) -> None:
    """Every function loads as functions.<folder>.app, so two app.py never collide."""
    # GIVEN the template's functions / WHEN each is loaded
    runtime = LambdaRuntime(aws)
    failures = runtime.preload()
    # THEN all load, each from its own module
    assert failures == {}
    modules = {runtime.handler(name).__module__ for name in runtime.specs}
    assert modules == {spec.module for spec in runtime.specs.values()}
    assert len(modules) == len(runtime.specs)


def test_invocation_gets_a_lambda_context_and_the_runtime_variables(aws: Resolver) -> None:
    """The handler gets a context with its function name, memory and time left; the answer comes back."""
    # GIVEN the kill-switch read function and its sam-local event for user alice
    aws.refs["KillSwitchGetFunction"] = "klineo-test-kill-switch-get"
    runtime = LambdaRuntime(aws)
    context = runtime.context_for("KillSwitchGetFunction")
    # WHEN it is invoked
    answer = runtime.invoke("KillSwitchGetFunction", with_user(load_event("kill_switch_get"), "alice"))
    # THEN it answered 200, and the context looked like Lambda's
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"])["enabled"] is False
    assert context.function_name == "klineo-test-kill-switch-get"
    assert context.memory_limit_in_mb == 512
    assert 0 < context.get_remaining_time_in_millis() <= 20_000
    assert context.invoked_function_arn.endswith(":function:klineo-test-kill-switch-get")
    assert "AWS_LAMBDA_FUNCTION_NAME" not in os.environ  # set for the invocation only


def test_a_function_that_raises_is_a_function_error(aws: Resolver) -> None:
    """An exception escaping the handler becomes FunctionError carrying the original error."""
    # GIVEN the worker, which cannot read a batch that is not an SQS event
    runtime = LambdaRuntime(aws)
    # WHEN / THEN
    with pytest.raises(FunctionError) as raised:
        runtime.invoke("StrategyWorkerFunction", {"Records": "not a list"})
    assert raised.value.logical_id == "StrategyWorkerFunction"


def test_metric_lines_are_dropped_unless_shown_and_other_output_is_kept(
    aws: Resolver, capsys: pytest.CaptureFixture[str]
) -> None:
    """make run's default drops the EMF JSON lines a function prints; --metrics shows them again."""
    # GIVEN the dispatcher, which emits RunnerTicks on every tick, in a quiet and in a showing runtime
    event = load_event("strategy_dispatcher")
    # WHEN the quiet runtime invokes it, with another line printed meanwhile
    quiet = LambdaRuntime(aws, show_metrics=False)
    quiet.invoke("StrategyDispatcherFunction", event)
    quiet_output = capsys.readouterr().out
    LambdaRuntime(aws, show_metrics=True).invoke("StrategyDispatcherFunction", event)
    shown_output = capsys.readouterr().out
    # THEN only the showing runtime let the metric line through
    assert '"RunnerTicks"' not in quiet_output
    assert any(line.startswith('{"_aws":') and '"RunnerTicks"' in line for line in shown_output.splitlines())


def test_without_metric_lines_passes_every_other_printed_line_on(capsys: pytest.CaptureFixture[str]) -> None:
    """Only lines starting with {"_aws": are held back; the rest come out in order, even after an error."""
    # GIVEN / WHEN lines are printed inside the filter, and the block raises
    with pytest.raises(RuntimeError), without_metric_lines():
        print("first")
        print('{"_aws":{"Timestamp":1},"X":1}')
        print('{"level":"INFO","message":"kept"}')
        raise RuntimeError("boom")
    # THEN
    assert capsys.readouterr().out == 'first\n{"level":"INFO","message":"kept"}\n'
