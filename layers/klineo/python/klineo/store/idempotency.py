"""The Powertools idempotency records of API orders, in the IdempotencyTable (env IDEMPOTENCY_TABLE).

Only the persistence layer lives here (the AWS part); ``klineo.services`` wraps its use case with
Powertools' ``idempotent_function`` on it. Made on first use, once per table and DynamoDB client.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from klineo.settings import get_settings
from klineo.store import aws

__all__ = ["order_idempotency_store"]


def order_idempotency_store() -> DynamoDBPersistenceLayer:
    """The container's persistence layer on IDEMPOTENCY_TABLE, with the container's DynamoDB client."""
    return _persistence(get_settings().idempotency_table, aws.dynamodb())


@lru_cache(maxsize=4)
def _persistence(table_name: str, dynamodb_client: Any) -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(table_name=table_name, boto3_client=dynamodb_client)
