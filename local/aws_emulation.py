"""AWS for the local stack: a moto server on 127.0.0.1 holding what template.yaml declares.

Every DynamoDB table (with its TTL setting), every SQS queue (dead-letter queues first, redrive
policies resolved) and every ScheduleV2 schedule is created from the parsed template, never from a
hand-kept copy. The resolver that comes back knows the physical ids (table names, queue URLs and
ARNs, function names), so ``functions_environment`` can give the functions what Lambda would.

With ``KLINEO_LOCAL_AWS=real`` the stack skips moto and uses the account of the ordinary AWS
credential chain (``AWS_PROFILE``, ``AWS_REGION``): ``discover_deployed`` fills the same ids from the
deployed stack's names, which template.yaml fixes (``klineo-<stage>-…``).
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from local.moto_shortcuts import (
    actions_listed_once,
    attribute_values_serialized_directly,
    backends_found_once,
    conditions_lexed_once,
    conditions_parsed_once,
    failed_condition,
    items_sized_once,
    plain_updates_without_parsing,
    update_names_parsed_once,
)
from local.template import (
    FunctionSpec,
    Resolver,
    function_environment,
    function_specs,
    queue_definitions,
    table_definitions,
)

__all__ = [
    "FAKE_CREDENTIALS",
    "LOCAL_COGNITO_CLIENT",
    "LOCAL_COGNITO_POOL",
    "REQUIRED_SETTINGS",
    "MotoServer",
    "ScheduleSpec",
    "discover_deployed",
    "functions_environment",
    "provision",
    "required_settings",
    "schedule_specs",
    "serialize_dynamodb",
]

# Fake credentials: boto3 signs requests with them, moto accepts anything, no real account is reachable.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
}
# The local stack creates no Cognito user pool; these stand in for its ids in the JWT issuer/audience.
LOCAL_COGNITO_POOL = "ap-northeast-1_KlineoLocal"
LOCAL_COGNITO_CLIENT = "klineo-local-client"


_DYNAMODB_LOCK = threading.RLock()


def serialize_dynamodb() -> None:
    """Make moto's DynamoDB handle one request at a time, as one linearizable table service would.

    moto's TransactWriteItems deep-copies the whole table to roll back on a cancellation, and
    another thread's write changing the table during that copy fails the transaction with
    "dictionary changed size during iteration" (a 500 real DynamoDB never gives). The runner's
    thread pool writes its runs and transactions concurrently, so every place that runs moto
    (the local stack's server, the tests' and the benchmarks' in-process mock) calls this once.
    Under the same lock, transactions and plain updates skip moto's most expensive steps
    (``_transactions_without_table_copies``, ``local.moto_shortcuts``).

    Each piece is put in place unless it is there (its own mark): a test fixture that patched moto's backend
    before the first call and undid it after puts back moto's own method, which the next call replaces again.
    """
    from moto.dynamodb.responses import DynamoHandler

    if not getattr(DynamoHandler.call_action, "_klineo_serialized", False):
        unlocked = DynamoHandler.call_action

        def call_action(self: Any) -> Any:
            with _DYNAMODB_LOCK:
                return unlocked(self)

        call_action._klineo_serialized = True  # type: ignore[attr-defined]
        DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    _transactions_without_table_copies()
    plain_updates_without_parsing()
    items_sized_once()
    conditions_lexed_once()
    backends_found_once()  # moto's server, for every service: installed with the rest
    actions_listed_once()  # every service's handlers, in process and in moto's server
    update_names_parsed_once()
    attribute_values_serialized_directly()
    conditions_parsed_once()


def _transactions_without_table_copies() -> None:
    """moto's TransactWriteItems, without deep-copying the whole table once per action.

    moto snapshots every table a transaction names (once per action) so that it can roll back: a
    runner test of 200 orders spent minutes copying its table. Under ``serialize_dynamodb``'s lock
    nothing changes between reading and writing, so this checks every action's condition first
    (nothing written yet: a refusal needs no rollback and gives moto's own cancellation reasons),
    then applies the writes, keeping copies of only the items it touches to put back should a write
    fail anyway (a malformed update). Anything unusual goes to moto's own implementation.
    """
    from moto.dynamodb.exceptions import MultipleTransactionsException, TransactionCanceledException
    from moto.dynamodb.models import DynamoDBBackend

    original = DynamoDBBackend.transact_write_items
    if getattr(original, "_klineo_no_table_copies", False):
        return

    def target(self: Any, op_type: str, op: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        table = self.get_table(op["TableName"])
        if op_type != "Put":
            return op["TableName"], op["Key"]
        names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
        return op["TableName"], {name: op["Item"][name] for name in names}

    def reason(self: Any, op: dict[str, Any], table_name: str, key: dict[str, Any]) -> tuple[Any, Any, Any]:
        failed, old = failed_condition(
            self.get_item(table_name, key), op.get("ConditionExpression"), op.get("ExpressionAttributeNames"),
            op.get("ExpressionAttributeValues"), op.get("ReturnValuesOnConditionCheckFailure"))
        if not failed:
            return None, None, None
        return "ConditionalCheckFailed", "The conditional request failed", old

    def apply(self: Any, op_type: str, op: dict[str, Any], table_name: str, key: dict[str, Any]) -> None:
        names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        if op_type == "Put":
            self.put_item(table_name, op["Item"])
        elif op_type == "Delete":
            self.delete_item(table_name, key)
        elif op_type == "Update":
            self.update_item(table_name, key, update_expression=op["UpdateExpression"],
                             expression_attribute_names=names, expression_attribute_values=values)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        try:
            actions = [(op_type, op, *target(self, op_type, op))
                       for item in transact_items if len(item) == 1 for op_type, op in item.items()]
        except Exception:  # noqa: BLE001 - unknown table, missing key...: moto says it its own way
            return original(self, transact_items)
        known = {"ConditionCheck", "Put", "Delete", "Update"}
        if len(actions) != len(transact_items) or len(actions) > 100 or any(
            op_type not in known for op_type, *_ in actions
        ):
            return original(self, transact_items)
        keys = [(table_name, str(sorted(key.items()))) for _, _, table_name, key in actions]
        if len(set(keys)) != len(keys):
            raise MultipleTransactionsException()
        reasons = [reason(self, op, table_name, key) for _, op, table_name, key in actions]
        if any(code is not None for code, _, _ in reasons):
            raise TransactionCanceledException(reasons)
        before = [(table_name, key, copy.deepcopy(self.get_item(table_name, key)))
                  for op_type, _, table_name, key in actions if op_type != "ConditionCheck"]
        try:
            for op_type, op, table_name, key in actions:
                apply(self, op_type, op, table_name, key)
        except Exception:
            for table_name, key, item in before:
                if item is None:
                    self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, item.to_json()["Attributes"])
            raise
        return None

    transact_write_items._klineo_no_table_copies = True  # type: ignore[attr-defined]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


class MotoServer:
    """moto's threaded server, bound to 127.0.0.1 (never 0.0.0.0), quiet on the console."""

    def __init__(self, port: int):
        serialize_dynamodb()
        self.port = port
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)

    @property
    def url(self) -> str:
        """The endpoint boto3 uses (``AWS_ENDPOINT_URL``)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Serve in a background thread; returns once the socket listens."""
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]

    def stop(self) -> None:
        """Stop serving and join the thread."""
        self._server.stop()


@dataclass(frozen=True)
class ScheduleSpec:
    """One ScheduleV2 event of a function: which function, how often, under which name."""

    function: FunctionSpec
    event_name: str
    name: str
    expression: str
    description: str = ""
    properties: dict[str, Any] = field(default_factory=dict)


def schedule_specs(resolver: Resolver) -> list[ScheduleSpec]:
    """Every ScheduleV2 (and Schedule) event in the template, names and expressions resolved."""
    found = []
    for spec in function_specs(resolver.template):
        for event_name, event in spec.properties.get("Events", {}).items():
            if event["Type"] not in ("ScheduleV2", "Schedule"):
                continue
            props = resolver.resolve(event["Properties"])
            found.append(
                ScheduleSpec(
                    function=spec,
                    event_name=event_name,
                    name=str(props.get("Name") or f"{spec.logical_id}{event_name}"),
                    expression=str(
                        props["Schedule" if event["Type"] == "Schedule" else "ScheduleExpression"]
                    ),
                    description=str(props.get("Description", "")),
                    properties=props,
                )
            )
    return found


def _function_refs(resolver: Resolver) -> None:
    """Function logical ids -> names and ARNs, as CloudFormation would report them."""
    for spec in function_specs(resolver.template):
        name = resolver.resolve(spec.properties.get("FunctionName", spec.logical_id))
        resolver.refs[spec.logical_id] = name
        resolver.attributes[(spec.logical_id, "Arn")] = (
            f"arn:aws:lambda:{resolver.region}:{resolver.account_id}:function:{name}"
        )


def _common_refs(resolver: Resolver) -> None:
    resolver.refs.setdefault("UserPool", LOCAL_COGNITO_POOL)
    resolver.refs.setdefault("UserPoolClient", LOCAL_COGNITO_CLIENT)
    resolver.refs.setdefault(
        "KlineoLayer", f"arn:aws:lambda:{resolver.region}:{resolver.account_id}:layer:klineo:1"
    )
    _function_refs(resolver)


def provision(resolver: Resolver, endpoint_url: str | None = None) -> Resolver:
    """Create every table, queue and schedule of the template on ``endpoint_url`` (moto server).

    Without ``endpoint_url`` the calls go to whatever boto3 reaches in-process: the tests call it
    inside ``moto.mock_aws()``.

    Fills ``resolver.refs`` / ``resolver.attributes`` with the physical ids and returns the resolver.
    """
    session = boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        region_name=resolver.region,
    )

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint_url)

    dynamodb = client("dynamodb")
    for logical, table in table_definitions(resolver).items():
        name = table["create"]["TableName"]
        dynamodb.create_table(**table["create"])
        ttl = table["ttl"]
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
        resolver.refs[logical] = name
        resolver.attributes[(logical, "Arn")] = (
            f"arn:aws:dynamodb:{resolver.region}:{resolver.account_id}:table/{name}"
        )

    sqs = client("sqs")
    for logical, props in queue_definitions(resolver).items():
        resolved = resolver.resolve({k: v for k, v in props.items() if k != "RedrivePolicy"})
        attributes = {
            key: str(resolved[key]).lower() if isinstance(resolved[key], bool) else str(resolved[key])
            for key in (
                "VisibilityTimeout",
                "MessageRetentionPeriod",
                "DelaySeconds",
                "ReceiveMessageWaitTimeSeconds",
                "SqsManagedSseEnabled",
            )
            if key in resolved
        }
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(resolver.resolve(props["RedrivePolicy"]))
        url = sqs.create_queue(QueueName=resolved["QueueName"], Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        resolver.refs[logical] = url
        resolver.attributes[(logical, "Arn")] = arn
        resolver.attributes[(logical, "QueueName")] = resolved["QueueName"]

    _common_refs(resolver)

    # moto stores schedules but never fires them: local.scheduler does the firing.
    scheduler = client("scheduler")
    for schedule in schedule_specs(resolver):
        target: dict[str, Any] = {
            "Arn": resolver.attributes[(schedule.function.logical_id, "Arn")],
            "RoleArn": f"arn:aws:iam::{resolver.account_id}:role/{schedule.name}-role",
        }
        if "RetryPolicy" in schedule.properties:
            target["RetryPolicy"] = schedule.properties["RetryPolicy"]
        scheduler.create_schedule(
            Name=schedule.name,
            ScheduleExpression=schedule.expression,
            FlexibleTimeWindow={"Mode": "OFF"},
            Target=target,
            Description=schedule.description,
            State=str(schedule.properties.get("State", "ENABLED")),
        )
    return resolver


def discover_deployed(resolver: Resolver) -> Resolver:
    """Fill the resolver's ids from a deployed stack (real AWS; credentials from the usual chain).

    Table and queue names are fixed by the template (``klineo-<stage>-…``), so only the queue URLs
    need a lookup.
    """
    session = boto3.session.Session(region_name=resolver.region)
    for logical, table in table_definitions(resolver).items():
        name = table["create"]["TableName"]
        resolver.refs[logical] = name
        resolver.attributes[(logical, "Arn")] = (
            f"arn:aws:dynamodb:{resolver.region}:{resolver.account_id}:table/{name}"
        )
    sqs = session.client("sqs")
    for logical, props in queue_definitions(resolver).items():
        name = resolver.resolve(props["QueueName"])
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        resolver.refs[logical] = url
        resolver.attributes[(logical, "Arn")] = arn
        resolver.attributes[(logical, "QueueName")] = name
    _common_refs(resolver)
    return resolver


# What every function needs set (template.yaml's Globals); klineo.settings has no fallback for them.
REQUIRED_SETTINGS = ("DATA_TABLE", "SECRET_PREFIX", "CORS_ORIGIN")


def required_settings(resolver: Resolver) -> dict[str, str]:
    """The Globals values of ``REQUIRED_SETTINGS`` before anything is provisioned (names from TableName)."""
    template = resolver.template
    tables = {
        logical: resolver.resolve(resource["Properties"]["TableName"])
        for logical, resource in template["Resources"].items()
        if resource["Type"] == "AWS::DynamoDB::Table"
    }
    names = Resolver(template, parameters=dict(resolver.parameters), region=resolver.region, refs=tables)
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    return {name: str(names.resolve(variables[name])) for name in REQUIRED_SETTINGS}


def functions_environment(resolver: Resolver) -> dict[str, str]:
    """The variables template.yaml gives the functions, merged into one environment.

    The functions share one process locally, so their environments are merged; a name that two
    functions set to different values would make that impossible and raises ValueError.
    """
    merged: dict[str, str] = {}
    owner: dict[str, str] = {}
    for spec in function_specs(resolver.template):
        for name, value in function_environment(resolver, spec).items():
            if name in merged and merged[name] != value:
                raise ValueError(
                    f"{spec.logical_id} and {owner[name]} set {name} to different values; "
                    "the local stack runs every function in one process and cannot give both"
                )
            merged[name] = value
            owner.setdefault(name, spec.logical_id)
    return merged
