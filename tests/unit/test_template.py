"""template.yaml is valid CloudFormation and keeps the project's structural promises."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from local.template import REPO_ROOT, TEMPLATE_PATH, function_specs


def _cfn_lint() -> str:
    configured = os.environ.get("CFN_LINT")
    if configured:
        return configured
    found = shutil.which("cfn-lint")
    if found is None:
        pytest.fail("cfn-lint not found: run the tests through `make test`, which installs it")
    return found


@pytest.mark.slow
def test_cfn_lint_is_clean() -> None:
    """cfn-lint reports nothing on template.yaml."""
    result = subprocess.run(  # noqa: S603 - fixed arguments
        [_cfn_lint(), str(TEMPLATE_PATH)], capture_output=True, text=True, check=False, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_function_uses_python313_and_the_shared_layer(template: dict) -> None:
    """All functions inherit the python3.13 runtime and the one shared layer from Globals."""
    function_globals = template["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Layers"] == [{"Ref": "KlineoLayer"}]
    for spec in function_specs(template):
        assert "Runtime" not in spec.properties, spec.logical_id
        assert "Layers" not in spec.properties, spec.logical_id


def test_no_policy_grants_a_wildcard_resource(template: dict) -> None:
    """Least privilege: no function statement uses Resource '*'."""
    for spec in function_specs(template):
        for policy in spec.properties.get("Policies", []):
            for statement in policy.get("Statement", []):
                assert statement["Resource"] != "*", spec.logical_id


def test_every_function_folder_exists_with_a_thin_handler(template: dict) -> None:
    """Each function's CodeUri holds app.py whose lambda_handler the template names."""
    for spec in function_specs(template):
        app = REPO_ROOT / "functions" / spec.package / "app.py"
        assert app.is_file(), f"{spec.logical_id}: {app} missing"
        source = app.read_text(encoding="utf-8")
        assert f"def {spec.handler_name}(" in source, spec.logical_id
        assert "import boto3" not in source and "import requests" not in source, spec.logical_id
        assert len(source.splitlines()) <= 40, f"{spec.logical_id}: handler is not thin"


def test_every_function_has_an_event_file(template: dict) -> None:
    """events/<package>.json exists for every function, for `sam local invoke -e`."""
    for spec in function_specs(template):
        assert (Path(REPO_ROOT) / "events" / f"{spec.package}.json").is_file(), spec.logical_id


def test_no_handler_logs_its_event(template: dict) -> None:
    """Every handler pins log_event=False: an event carries the caller's bearer token and may carry keys."""
    for spec in function_specs(template):
        source = (REPO_ROOT / "functions" / spec.package / "app.py").read_text(encoding="utf-8")
        assert "@logger.inject_lambda_context(log_event=False)" in source, spec.logical_id


def test_tracer_never_copies_handler_answers_or_errors_into_xray(template: dict) -> None:
    """Globals turn off Powertools' capture of each handler's response and exception into X-Ray metadata."""
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    # Captured by default: every answer body (balances, positions, connections) and an escaping
    # exception's text would sit in X-Ray, outside the logs' retention and access rules.
    assert variables.get("POWERTOOLS_TRACER_CAPTURE_RESPONSE") == "false"
    assert variables.get("POWERTOOLS_TRACER_CAPTURE_ERROR") == "false"


@pytest.mark.parametrize("logical_id", ["FuturesOrderFunction", "FuturesPositionCloseFunction"])
def test_order_functions_timeout_is_the_one_a_resend_counts_from(template: dict, logical_id: str) -> None:
    """GIVEN a function that places orders through ``place_futures_order`` WHEN its Timeout is read THEN it is
    ORDER_FUNCTION_TIMEOUT_MS, the latest an attempt may send after its claim (a resend waits from there)."""
    from klineo.services.futures import ORDER_FUNCTION_TIMEOUT_MS

    assert template["Resources"][logical_id]["Properties"]["Timeout"] * 1000 == ORDER_FUNCTION_TIMEOUT_MS


def test_no_function_that_sends_stops_outlives_the_wait_a_stops_resend_counts_from(template: dict) -> None:
    """GIVEN the functions that may send an entry's stops (all but the backtests') WHEN their Timeouts are
    read THEN none is longer than STOP_SENT_WITHIN_MS (the reconciler's), the latest a stop's POST is signed
    after its stamp when its record does not say (no ``send_by_ms``)."""
    from klineo.services.protective import STOP_SENT_WITHIN_MS

    timeouts = {name: resource["Properties"].get("Timeout", template["Globals"]["Function"]["Timeout"]) * 1000
                for name, resource in template["Resources"].items()
                if resource["Type"] == "AWS::Serverless::Function" and "Backtest" not in name}
    assert max(timeouts.values()) == timeouts["OrderReconcilerFunction"] == STOP_SENT_WITHIN_MS
