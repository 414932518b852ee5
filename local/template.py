"""Reads template.yaml so that tests and the local stack derive their AWS resources from it.

Tables, queues, function handlers, routes and environment variables all come from the template
itself (parsed with CloudFormation's short-form tags), never from a hand-kept copy. The resolver
understands the intrinsics the template uses: Ref, Fn::Sub, Fn::GetAtt, Fn::If, Fn::Equals,
Fn::Select, Fn::GetAZs and Fn::Join.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "REPO_ROOT",
    "TEMPLATE_PATH",
    "FunctionSpec",
    "Resolver",
    "Route",
    "function_environment",
    "function_specs",
    "load_template",
    "queue_definitions",
    "table_definitions",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = REPO_ROOT / "template.yaml"

_SHORT_TAGS = {
    "Ref": "Ref",
    "Condition": "Condition",
    "GetAtt": "Fn::GetAtt",
}


class _CfnLoader(yaml.SafeLoader):
    """A YAML loader that turns `!Sub x` into `{"Fn::Sub": x}` and so on."""


def _construct_tag(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = _SHORT_TAGS.get(tag_suffix, f"Fn::{tag_suffix}")
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if name == "Fn::GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


@cache
def _load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The parsed template (cached; treat it as read-only)."""
    return _load(str(path))


_NO_VALUE = object()


@dataclass
class Resolver:
    """Evaluates intrinsic functions against parameter values and known physical ids."""

    template: Mapping[str, Any]
    parameters: dict[str, str] = field(default_factory=dict)
    refs: dict[str, Any] = field(default_factory=dict)
    attributes: dict[tuple[str, str], Any] = field(default_factory=dict)
    region: str = "ap-northeast-1"
    account_id: str = "123456789012"

    def __post_init__(self) -> None:
        for name, spec in self.template.get("Parameters", {}).items():
            self.parameters.setdefault(name, str(spec.get("Default", "")))

    def condition(self, name: str) -> bool:
        """Whether a named condition holds."""
        return bool(self.resolve(self.template["Conditions"][name]))

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": f"klineo-{self.parameters.get('Stage', 'dev')}",
            "AWS::NoValue": _NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        raise KeyError(f"no value known for Ref {name}")

    def _sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token in variables:
                return str(variables[token])
            if "." in token and not token.startswith("AWS::"):
                logical, attr = token.split(".", 1)
                return str(self.attributes[(logical, attr)])
            return str(self._ref(token))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def resolve(self, value: Any) -> Any:
        """Evaluate every intrinsic inside ``value``; AWS::NoValue entries are dropped."""
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::Sub":
                if isinstance(arg, list):
                    return self._sub(arg[0], {k: self.resolve(v) for k, v in arg[1].items()})
                return self._sub(arg, {})
            if key == "Fn::GetAtt":
                logical, attr = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.attributes[(logical, attr)]
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Fn::Equals":
                left, right = (self.resolve(v) for v in arg)
                return str(left) == str(right)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::GetAZs":
                return [f"{self.region}a", f"{self.region}c"]
            if key == "Fn::Join":
                sep, items = arg
                return sep.join(str(v) for v in self.resolve(items))
            if key == "Condition":
                return self.condition(arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}


def _resources_of(template: Mapping[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical: spec
        for logical, spec in template.get("Resources", {}).items()
        if spec.get("Type") == resource_type
    }


def table_definitions(resolver: Resolver) -> dict[str, dict[str, Any]]:
    """Logical id -> `create_table` keyword arguments for every DynamoDB table in the template."""
    tables = {}
    for logical, spec in _resources_of(resolver.template, "AWS::DynamoDB::Table").items():
        props = resolver.resolve(spec["Properties"])
        kwargs: dict[str, Any] = {
            "TableName": props["TableName"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if props.get("GlobalSecondaryIndexes"):
            kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        tables[logical] = {"create": kwargs, "ttl": props.get("TimeToLiveSpecification")}
    return tables


def queue_definitions(resolver: Resolver) -> dict[str, dict[str, Any]]:
    """Logical id -> resolved properties for every SQS queue (dead-letter queues first)."""
    queues = {
        logical: dict(spec.get("Properties", {}))
        for logical, spec in _resources_of(resolver.template, "AWS::SQS::Queue").items()
    }
    return dict(sorted(queues.items(), key=lambda item: "RedrivePolicy" in item[1]))


@dataclass(frozen=True)
class Route:
    """One HTTP API route: method and path as API Gateway declares them (`/x/{id}`)."""

    method: str
    path: str


@dataclass(frozen=True)
class FunctionSpec:
    """What the template says about one function: where its code is, what triggers it."""

    logical_id: str
    package: str
    handler: str
    routes: tuple[Route, ...]
    event_types: tuple[str, ...]
    properties: dict[str, Any]

    @property
    def module(self) -> str:
        """Import path of the handler module, e.g. ``functions.balance.app``."""
        module_name = self.handler.rsplit(".", 1)[0]
        return f"functions.{self.package}.{module_name}"

    @property
    def handler_name(self) -> str:
        return self.handler.rsplit(".", 1)[1]


def function_specs(template: Mapping[str, Any] | None = None) -> list[FunctionSpec]:
    """Every AWS::Serverless::Function in the template, in template order."""
    template = template or load_template()
    specs = []
    for logical, spec in _resources_of(template, "AWS::Serverless::Function").items():
        props = spec["Properties"]
        events = props.get("Events", {})
        routes = tuple(
            Route(e["Properties"]["Method"].upper(), e["Properties"]["Path"])
            for e in events.values()
            if e["Type"] == "HttpApi"
        )
        specs.append(
            FunctionSpec(
                logical_id=logical,
                package=Path(props["CodeUri"]).name,
                handler=props["Handler"],
                routes=routes,
                event_types=tuple(e["Type"] for e in events.values()),
                properties=props,
            )
        )
    return specs


def function_environment(resolver: Resolver, spec: FunctionSpec) -> dict[str, str]:
    """The environment variables Lambda would give this function (Globals merged with its own).

    A variable the template declares as a literal ``""`` is a local override left unset when
    deployed (empty means not set): it is left out, so it never blanks what the local stack set.
    """
    globals_env = resolver.template.get("Globals", {}).get("Function", {}).get("Environment", {})
    merged = dict(globals_env.get("Variables", {}))
    merged.update(spec.properties.get("Environment", {}).get("Variables", {}))
    return {name: str(resolver.resolve(value)) for name, value in merged.items() if value != ""}

