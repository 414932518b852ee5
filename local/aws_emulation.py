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

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

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
    """
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "_klineo_serialized", False):
        return
    unlocked = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with _DYNAMODB_LOCK:
            return unlocked(self)

    call_action._klineo_serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


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
