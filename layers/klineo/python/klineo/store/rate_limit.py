"""Binance weight and ban state in the RateLimitTable, shared by every container behind one egress IP.

Two items per Binance host (key ``pk``, TTL attribute ``ttl``):
- ``binance#weight#<host>``: ``window`` (minute index) and ``used`` (highest used weight seen in it);
  expires two minutes after its window.
- ``binance#block#<host>``: ``until_ms`` and ``status`` (418 ban or 429 back-off); expires a minute
  after the block ends.
Writes are conditional so a container never lowers what another recorded (a later window, a higher
weight, a later block end). One BatchGetItem reads both. The limiter calls this rarely (see
``klineo.binance.ratelimit``); a DynamoDB failure is logged and treated as "nothing shared", never
raised into a Binance call. boto3 is reached through ``klineo.store.aws`` on first use only.
"""

from __future__ import annotations

from typing import Any

from klineo.binance.ratelimit import SharedState

__all__ = ["DynamoDBRateLimitStore", "shared_rate_limit_store"]

_WINDOW_MS = 60_000


def _aws() -> Any:
    from klineo.store import aws

    return aws


def _dynamo() -> Any:
    from klineo.store import dynamo

    return dynamo


def _warn(message: str, host: str, error: BaseException) -> None:
    from klineo.observability import logger

    code = _aws().error_code(error)
    logger.warning(message, extra={"binance_host": host, "aws_error": code or type(error).__name__})


class DynamoDBRateLimitStore:
    """``RateLimitStore`` over the RateLimitTable (env RATE_LIMIT_TABLE)."""

    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> Any:
        """The injected DynamoDB client, else the container's lazily made one."""
        return self._client if self._client is not None else _aws().dynamodb()

    @staticmethod
    def _weight_key(host: str) -> dict[str, Any]:
        return {"pk": {"S": f"binance#weight#{host}"}}

    @staticmethod
    def _block_key(host: str) -> dict[str, Any]:
        return {"pk": {"S": f"binance#block#{host}"}}

    def load(self, host: str) -> SharedState | None:
        """Both items for ``host`` in one BatchGetItem; None when nothing is recorded or DynamoDB fails."""
        try:
            answer = self.client.batch_get_item(
                RequestItems={self.table_name: {"Keys": [self._weight_key(host), self._block_key(host)]}}
            )
        except _aws().STORAGE_ERRORS as error:
            _warn("rate-limit state unreadable; using local state", host, error)
            return None
        items = answer.get("Responses", {}).get(self.table_name, [])
        if not items:
            return None
        state = SharedState()
        for item in items:
            pk = item["pk"]["S"]
            if pk.startswith("binance#weight#"):
                state.window = int(item.get("window", {}).get("N", -1))
                state.used = int(item.get("used", {}).get("N", 0))
            elif pk.startswith("binance#block#"):
                state.blocked_until_ms = int(item.get("until_ms", {}).get("N", 0))
                state.blocked_status = int(item.get("status", {}).get("N", 0))
        return state

    def save_usage(self, host: str, window: int, used: int) -> None:
        """Record the used weight of a window unless a later window or a higher weight is already there."""
        self._save(
            host, self._weight_key(host),
            {"window": window, "used": used, "ttl": (window + 3) * _WINDOW_MS // 1000},
            "attribute_not_exists(pk) OR #window < :window OR (#window = :window AND #used < :used)",
            "rate-limit usage not shared",
        )

    def save_block(self, host: str, until_ms: int, status: int) -> None:
        """Record a block ending at ``until_ms`` unless a later one is already recorded."""
        self._save(
            host, self._block_key(host),
            {"until_ms": int(until_ms), "status": int(status), "ttl": int(until_ms // 1000 + 60)},
            "attribute_not_exists(pk) OR #until_ms < :until_ms",
            "rate-limit block not shared",
        )

    def _save(
        self, host: str, key: dict[str, Any], sets: dict[str, int], condition: str, failure: str,
    ) -> None:
        """One conditional UpdateItem; a lost condition is fine, any other failure is logged, never raised."""
        try:
            self.client.update_item(
                TableName=self.table_name, Key=key, ConditionExpression=condition,
                **_dynamo().Update(sets).request(),
            )
        except _aws().STORAGE_ERRORS as error:
            if _aws().error_code(error) == _aws().CONDITION_FAILED:
                return
            _warn(failure, host, error)


def shared_rate_limit_store() -> DynamoDBRateLimitStore | None:
    """The RateLimitTable's store when RATE_LIMIT_TABLE is set (as template.yaml does), else None."""
    # Imported here: klineo.services imports this module, and the settings bring pydantic. The
    # workers import Powertools' batch utility first, which loads its pydantic parser models (about
    # 25 ms of a cold start, unused here) only when pydantic is already imported.
    from klineo.settings import get_settings

    table = get_settings().rate_limit_table.strip()
    return DynamoDBRateLimitStore(table) if table else None
