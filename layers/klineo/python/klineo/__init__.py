"""KLINEO's shared Lambda layer: Binance access, AWS state, API glue and strategies.

Subpackages:
- ``klineo.binance``: everything that talks to Binance (environments, signing, client, codes, filters).
- ``klineo.errors``: the one error taxonomy; ``klineo.models``: request/response models; ``klineo.settings``.
- ``klineo.store``: AWS state (Secrets Manager, DynamoDB, SQS), AWS clients made lazily.
- ``klineo.services``: the use cases the HTTP functions call (connections, futures, orders, candles).
- ``klineo.runner``: the strategy dispatcher and worker.
- ``klineo.strategies``: pure signal functions over closed candles.
- ``klineo.api``: the only module that knows API Gateway event shapes.
"""

import os as _os


def _drop_empty_powertools_settings() -> None:
    """Empty means not set: remove empty ``POWERTOOLS_*`` variables before Powertools reads them.

    The template declares some as empty so that ``sam local invoke --env-vars`` can set them, and
    Powertools rejects an empty boolean (``POWERTOOLS_TRACE_DISABLED=""``) at import.
    """
    settings = [name for name in _os.environ if name.startswith("POWERTOOLS_")]
    for name in [name for name in settings if not _os.environ[name].strip()]:
        del _os.environ[name]


_drop_empty_powertools_settings()
