"""Runtime settings read from the environment that template.yaml gives every function."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, Field

__all__ = ["Settings", "get_settings"]


class Settings(BaseModel):
    """The environment variables a function reads, validated once per container."""

    stage: str = "dev"
    data_table: str = "klineo-dev-data"
    idempotency_table: str = "klineo-dev-idempotency"
    rate_limit_table: str = ""
    secret_prefix: str = "klineo/dev/"  # noqa: S105 - a name prefix, not a secret
    cors_origin: str = "http://localhost:5173"
    egress_ip: str = ""
    strategy_queue_url: str = ""
    binance_recv_window_ms: float = Field(default=10000, gt=0, le=60000)

    @classmethod
    def from_env(cls) -> Settings:
        """Build settings from os.environ (names upper-cased)."""
        values = {
            name: os.environ[name.upper()]
            for name in cls.model_fields
            if os.environ.get(name.upper()) not in (None, "")
        }
        return cls.model_validate(values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings for this container; tests call ``get_settings.cache_clear()`` after monkeypatching."""
    return Settings.from_env()
