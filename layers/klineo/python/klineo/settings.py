"""Runtime settings read from the environment that template.yaml gives every function.

Table names, the secret prefix and the CORS origin are required: code that ships has no fallback
that could point a function at another stage's data. (``klineo.binance`` reads its own few
variables in ``klineo.binance.environments``, to keep pydantic out of its import.)

Why this import once cost 27 ms: ``Settings`` was the first pydantic model built in a function, and
pydantic's first model build scans every installed package's entry points for plugins (template
Globals set ``PYDANTIC_DISABLE_PLUGINS``). The model is also built on first use, as the request and
response models are (``klineo.models.base``), so no validator is built at import.
"""


import os
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["Settings", "get_settings"]


class Settings(BaseModel):
    """The environment variables a function reads, validated once per container."""

    model_config = ConfigDict(defer_build=True)

    data_table: str = Field(min_length=1)
    secret_prefix: str = Field(min_length=1)
    cors_origin: str = Field(min_length=1)
    rate_limit_table: str = ""  # empty: rate-limit state stays in each container
    egress_ip: str = ""  # empty: no static egress IP (nothing to tell users to allow-list)
    strategy_queue_url: str = ""  # only the dispatcher and the reconciler are given the queue
    klines_cache_table: str = ""  # only the backtest functions are given the klines cache
    backtest_queue_url: str = ""  # only POST /strategies/backtest queues backtest jobs
    event_retention_days: int = Field(default=90, ge=1, le=3650)  # strategy events and runs (ttl)

    @classmethod
    def from_env(cls) -> "Settings":
        """Build settings from os.environ (names upper-cased); a missing required one is named."""
        values = {
            name: os.environ[name.upper()]
            for name in cls.model_fields
            if os.environ.get(name.upper()) not in (None, "")
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            missing = sorted(str(error["loc"][0]).upper() for error in exc.errors())
            raise RuntimeError(f"environment variables not set: {', '.join(missing)}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings for this container; tests call ``get_settings.cache_clear()`` after monkeypatching."""
    return Settings.from_env()
