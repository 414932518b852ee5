"""KLINEO's shared Lambda layer: Binance access, AWS state, API glue and strategies.

Subpackages:
- ``klineo.binance``: everything that talks to Binance (environments, signing, client, codes, filters).
- ``klineo.errors``: the one error taxonomy; ``klineo.models``: request/response models; ``klineo.settings``.
- ``klineo.store``: AWS state (Secrets Manager, DynamoDB, SQS), AWS clients made lazily.
- ``klineo.services``: the use cases the HTTP functions call (connections, futures, orders, candles).
- ``klineo.runner``: the strategy dispatcher and worker.
- ``klineo.strategies``: pure signal functions over closed candles.
- ``klineo.api``: the only module that knows API Gateway event shapes.

Garbage collection during a function's init (issue 16 item 3, cold start). Importing a function
creates some 60,000 objects that live as long as the process (modules, classes, functions, models)
and almost no garbage; CPython's default thresholds still run about 40 collections over them,
7-10% of the cold start. In a Lambda runtime (``AWS_EXECUTION_ENV`` is ``AWS_Lambda_...``) importing
this package turns automatic collection off, and each function's ``lambda_handler`` has
``klineo.observability.finish_init`` as its outermost decorator, applied as the module's last
statement (``end_init_pause`` here): everything made so far is moved to the permanent generation
(``gc.freeze()``: never scanned again, so warm invocations' full collections stay short too) and
collection is on again, with the default thresholds, before the first event. Elsewhere (tests,
the local stack, tools) collection is never touched. tests/unit/test_route_imports.py checks both.
"""

import gc as _gc
import os as _os

__all__ = ["end_init_pause"]


def _drop_empty_powertools_settings() -> None:
    """Empty means not set: remove empty ``POWERTOOLS_*`` variables before Powertools reads them.

    The template declares some as empty so that ``sam local invoke --env-vars`` can set them, and
    Powertools rejects an empty boolean (``POWERTOOLS_TRACE_DISABLED=""``) at import.
    """
    settings = [name for name in _os.environ if name.startswith("POWERTOOLS_")]
    for name in [name for name in settings if not _os.environ[name].strip()]:
        del _os.environ[name]


_drop_empty_powertools_settings()


def _in_lambda_runtime() -> bool:
    return _os.environ.get("AWS_EXECUTION_ENV", "").startswith("AWS_Lambda_")


_collection_paused = _in_lambda_runtime()


def end_init_pause() -> None:
    """End of a function's init: freeze what the imports made, and collect garbage again from here on."""
    global _collection_paused
    if _collection_paused:
        _collection_paused = False
        _gc.freeze()
        _gc.enable()


if _collection_paused:
    _gc.disable()
