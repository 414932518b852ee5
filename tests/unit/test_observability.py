"""The operator's alarms and dashboard watch metrics the layer really emits, and the README names them all."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import pytest
from klineo.errors import ErrorCategory

from local.template import REPO_ROOT

LAYER = REPO_ROOT / "layers" / "klineo" / "python" / "klineo"
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
NAMESPACE = "Klineo"
# The alarms issue 15 asks for, by the AlarmName suffix after klineo-<stage>-.
REQUIRED_ALARMS = {
    "order-outcome-unknown",
    "runner-tick-missed",
    "binance-weight-high",
    "key-failures-spike",
    "api-5xx",
}


def _metric_name_node(call: ast.Call) -> ast.expr | None:
    """The `name` of `metrics.add_metric(name=...)`, `tally.count(name)` / `tally.gauge(name, ...)` or of
    the Binance client's `_metric(name, ...)`."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr == "add_metric":
        return next((k.value for k in call.keywords if k.arg == "name"), call.args[0] if call.args else None)
    tallied = isinstance(func, ast.Attribute) and func.attr in ("count", "gauge")
    if tallied and isinstance(func.value, ast.Name) and func.value.id == "tally" and call.args:
        return call.args[0]
    if isinstance(func, ast.Name) and func.id == "_metric" and call.args:
        return call.args[0]
    return None


def _pattern(node: ast.expr) -> str | None:
    """A regex for a literal or f-string metric name; None for a name computed some other way."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        parts = [re.escape(v.value) if isinstance(v, ast.Constant) else "[a-z_]+" for v in node.values]
        return "".join(parts)
    return None


def _metric_tables(tree: ast.Module) -> set[str]:
    """Values of module-level `*_METRICS = {...}` dicts: names a helper emits by looking them up."""
    names: set[str] = set()
    for node in tree.body:
        if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.Dict):
            continue
        target = node.targets[0]
        if isinstance(target, ast.Name) and target.id.endswith("_METRICS"):
            names |= {re.escape(v.value) for v in node.value.values if isinstance(v, ast.Constant)}
    return names


def emitted_metric_patterns() -> set[str]:
    """Every metric name the layer can emit, as regexes (f-strings such as StrategyRuns_<outcome>)."""
    patterns = {re.escape(category.metric_name) for category in ErrorCategory}
    for path in LAYER.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        patterns |= _metric_tables(tree)
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            node = _metric_name_node(call)
            pattern = _pattern(node) if node is not None else None
            if pattern is not None:
                patterns.add(pattern)
    return patterns


def is_emitted(name: str, patterns: set[str]) -> bool:
    """True when some emitting call of the layer can produce `name`."""
    return any(re.fullmatch(pattern, name) for pattern in patterns)


def _alarms(template: dict) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource["Properties"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


def _alarm_metrics(properties: dict[str, Any]) -> list[tuple[str, str]]:
    """(namespace, metric name) of an alarm: its own metric, or every metric of its metric math."""
    if "MetricName" in properties:
        return [(properties["Namespace"], properties["MetricName"])]
    stats = [m["MetricStat"]["Metric"] for m in properties["Metrics"] if "MetricStat" in m]
    return [(stat["Namespace"], stat["MetricName"]) for stat in stats]


def _dashboard_body(template: dict) -> dict[str, Any]:
    sub = template["Resources"]["OperatorDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    # ${X} / ${X.Attr} are filled in by CloudFormation; any placeholder keeps the JSON valid here.
    return json.loads(re.sub(r"\$\{[A-Za-z0-9:.]+\}", "placeholder", sub))


def _dashboard_metrics(body: dict[str, Any]) -> list[str]:
    """Names of the Klineo metrics the dashboard's metric widgets show."""
    names = []
    for widget in body["widgets"]:
        for row in widget["properties"].get("metrics", []):
            if row and row[0] == NAMESPACE:
                names.append(row[1])
    return names


@pytest.fixture(scope="module")
def patterns() -> set[str]:
    """What the layer emits, scanned once."""
    return emitted_metric_patterns()


def test_every_alarm_on_a_klineo_metric_watches_one_the_code_emits(template: dict, patterns: set) -> None:
    """Each alarm in namespace Klineo (plain or metric math) names a metric some layer call emits."""
    # GIVEN the template's alarms and the layer's metric-emitting calls
    watched = [
        (logical_id, name)
        for logical_id, properties in _alarms(template).items()
        for namespace, name in _alarm_metrics(properties)
        if namespace == NAMESPACE
    ]
    # WHEN each watched metric is looked up / THEN the code emits it
    assert len(watched) >= 7, watched
    missing = [(logical_id, name) for logical_id, name in watched if not is_emitted(name, patterns)]
    assert not missing, f"alarms watch metrics nothing emits: {missing}"


def test_the_checker_refuses_a_metric_nothing_emits(patterns: set[str]) -> None:
    """The scan is not vacuous: made-up names fail, real ones (literal, f-string, category) pass."""
    # GIVEN / WHEN / THEN
    assert not is_emitted("OrdersTeleported", patterns)
    assert not is_emitted("StrategyRuns_", patterns)
    assert is_emitted("RunnerTicks", patterns)
    assert is_emitted("StrategyRuns_skipped", patterns)
    assert is_emitted("BinanceIpBanned", patterns)
    assert is_emitted("OrdersUnknownOutcome", patterns)


def test_the_alarms_the_issue_asks_for_exist_and_the_readme_has_a_runbook_for_each(template: dict) -> None:
    """Unknown outcome, missed tick, weight, key failure and 5xx alarms exist; the README explains each."""
    # GIVEN the alarm names, with the stage left as <stage>
    names = {p["AlarmName"]["Fn::Sub"].replace("${Stage}", "<stage>") for p in _alarms(template).values()}
    # WHEN compared with the required set and the README / THEN nothing is missing
    assert {f"klineo-<stage>-{suffix}" for suffix in REQUIRED_ALARMS} <= names
    assert [name for name in sorted(names) if f"`{name}`" not in README] == []


def test_the_dashboard_is_valid_json_and_shows_only_emitted_metrics(template: dict, patterns: set) -> None:
    """The dashboard body parses, shows every alarm, and each Klineo metric on it is emitted by the code."""
    # GIVEN the dashboard body with CloudFormation's placeholders filled
    body = _dashboard_body(template)
    # WHEN its metrics and its alarm widget are read
    shown = _dashboard_metrics(body)
    alarm_widget = next(w for w in body["widgets"] if w["type"] == "alarm")
    # THEN every metric is real and every alarm is on it
    assert not [name for name in shown if not is_emitted(name, patterns)]
    assert {"OrdersPlaced", "RunnerTickLag", "BinanceWeightUsedPercent", "BinanceIpBanned"} <= set(shown)
    assert len(alarm_widget["properties"]["alarms"]) == len(_alarms(template))


def test_the_readme_lists_every_metric_the_code_emits(patterns: set[str]) -> None:
    """Each literal metric name of the layer appears in the README's metrics table."""
    # GIVEN the literal names (f-string families and error categories are listed as one row each)
    literal = {p.replace("\\", "") for p in patterns if re.fullmatch(r"[A-Za-z0-9_\\]+", p)}
    categories = {category.metric_name for category in ErrorCategory}
    # WHEN each is looked for in the README / THEN it is there
    assert [name for name in sorted(literal - categories) if f"`{name}`" not in README] == []
    assert "`StrategyRuns_<outcome>`" in README and "`Binance<Category>`" in README
