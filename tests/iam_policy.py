"""What IAM would allow: each AWS call a handler makes in the tests, checked against its template policy.

moto does not enforce IAM, so a call a function's policy denies passes every test and fails in AWS (a
live order's claim needing ``dynamodb:ConditionCheckItem``, a read the code swallows when it is
denied). ``PolicyGuard`` closes that gap: while a handler runs (``acting_as``), each botocore request
is turned into the (action, resource ARN) pairs AWS authorises for it (``required``: one pair per
item of a transaction, one per table of a batch) and checked against the function's inline policy
statements (``allowed``: Allow statements with wildcards; the template has no Deny). A denied call
fails as AWS fails it (AccessDeniedException) and is remembered, so a denial the code catches and
logs is still reported when the test ends.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from local.template import Resolver, function_specs, load_template

__all__ = ["PolicyGuard", "allowed", "required", "stack_resolver"]

REGION = "ap-northeast-1"
ACCOUNT = "123456789012"
# A transaction item's kind -> the IAM action AWS checks for it (AWS: "Using IAM with DynamoDB
# transactions").
_TRANSACT_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                     "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}


def stack_resolver(stage: str = "test") -> Resolver:
    """The template's intrinsics, with every table's and queue's physical name and ARN."""
    template = load_template()
    resolver = Resolver(template, parameters={"Stage": stage}, region=REGION, account_id=ACCOUNT)
    for logical, spec in template["Resources"].items():
        if spec["Type"] == "AWS::DynamoDB::Table":
            name = resolver.resolve(spec["Properties"]["TableName"])
            resolver.refs[logical] = name
            resolver.attributes[(logical, "Arn")] = _table_arn(name)
        elif spec["Type"] == "AWS::SQS::Queue":
            name = resolver.resolve(spec["Properties"]["QueueName"])
            resolver.refs[logical] = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
            resolver.attributes[(logical, "Arn")] = _queue_arn(name)
            resolver.attributes[(logical, "QueueName")] = name
    return resolver


@cache
def _policies() -> dict[str, list[dict[str, Any]]]:
    """Each function's (package name) inline policy statements, resolved."""
    resolver = stack_resolver()
    found: dict[str, list[dict[str, Any]]] = {}
    for spec in function_specs():
        statements = []
        for policy in spec.properties.get("Policies", []):
            statements.extend(resolver.resolve(policy).get("Statement", []))
        found[spec.package] = statements
    return found


def _listed(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


def allowed(statements: list[dict[str, Any]], action: str, resource: str) -> bool:
    """Whether an Allow statement covers (action, resource)."""
    return any(
        statement.get("Effect") == "Allow"
        and any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _listed(statement["Action"]))
        and any(fnmatch.fnmatchcase(resource, r) for r in _listed(statement["Resource"]))
        for statement in statements
    )


def _table_arn(name: str, index: str | None = None) -> str:
    arn = name if name.startswith("arn:") else f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
    return f"{arn}/index/{index}" if index else arn


def _secret_arn(secret_id: str) -> str:
    # A secret's ARN ends in "-" and six random characters after its name.
    return secret_id if secret_id.startswith("arn:") else (
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret_id}-AbCdEf")


def _queue_arn(url_or_name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{url_or_name.rstrip('/').rsplit('/', 1)[-1]}"


def _dynamodb(operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    if operation in ("TransactWriteItems", "TransactGetItems"):
        return [(f"dynamodb:{_TRANSACT_ACTIONS[kind]}", _table_arn(body["TableName"]))
                for item in params["TransactItems"] for kind, body in item.items()]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [(f"dynamodb:{operation}", _table_arn(table)) for table in params["RequestItems"]]
    return [(f"dynamodb:{operation}", _table_arn(params["TableName"], params.get("IndexName")))]


def _secretsmanager(operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    if operation == "CreateSecret":
        arn = _secret_arn(params["Name"])
        tagged = [("secretsmanager:TagResource", arn)] if params.get("Tags") else []
        return [("secretsmanager:CreateSecret", arn), *tagged]
    if operation == "BatchGetSecretValue":
        return [("secretsmanager:BatchGetSecretValue", "*")] + [
            ("secretsmanager:GetSecretValue", _secret_arn(s)) for s in params.get("SecretIdList", [])]
    return [(f"secretsmanager:{operation}", _secret_arn(params["SecretId"]))]


def required(service: str, operation: str, params: dict[str, Any]) -> list[tuple[str, str]]:
    """The IAM (action, resource) pairs AWS authorises for one request."""
    if service == "dynamodb":
        return _dynamodb(operation, params)
    if service == "secretsmanager":
        return _secretsmanager(operation, params)
    if service == "sqs":
        action = "SendMessage" if operation == "SendMessageBatch" else operation
        return [(f"sqs:{action}", _queue_arn(params["QueueUrl"]))]
    return [(f"{service}:{operation}", "*")]


class PolicyGuard:
    """Checks the AWS calls of the handlers running now against their template policies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # The functions whose handler runs now. A call is checked against them all: two handlers run
        # at once only in tests of concurrency, and there a call cannot be told apart by thread
        # (handlers use thread pools).
        self._acting: list[str] = []
        self.denied: list[tuple[str, str, str, str]] = []  # (function, operation, action, resource)

    @contextmanager
    def acting_as(self, function: str) -> Iterator[None]:
        """Calls made until the block ends are ``function``'s (a package name under functions/)."""
        with self._lock:
            self._acting.append(function)
        try:
            yield
        finally:
            with self._lock:
                self._acting.remove(function)

    def check(self, service: str, operation: str, params: dict[str, Any]) -> None:
        """Raise AccessDeniedException, as AWS would, for a call no running handler's policy allows."""
        with self._lock:
            acting = list(dict.fromkeys(self._acting))
        if not acting:
            return
        policies = _policies()
        for action, resource in required(service, operation, params):
            if not any(allowed(policies[function], action, resource) for function in acting):
                with self._lock:
                    self.denied.append((acting[-1], operation, action, resource))
                raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": (
                    f"{acting[-1]} is not authorized to perform: {action} on resource: {resource}")}},
                    operation)

    def install(self, monkeypatch: Any) -> None:
        """Check every botocore request (moto's server or its in-process mock alike) from now on."""
        original = BaseClient._make_api_call
        guard = self

        def checked(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
            guard.check(client.meta.service_model.service_name, operation, params)
            return original(client, operation, params)

        monkeypatch.setattr(BaseClient, "_make_api_call", checked)

    def report(self) -> str:
        """The denied calls, one line each."""
        return "\n".join(f"{function}: {operation} needs {action} on {resource}"
                         for function, operation, action, resource in dict.fromkeys(self.denied))
