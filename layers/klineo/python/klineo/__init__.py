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
collection is on again before the first event, with a young-generation threshold of
``WARM_GEN0_THRESHOLD`` (``lambda_collection_regime``). Elsewhere (tests, the local stack, tools)
collection is never touched. tests/unit/test_route_imports.py checks both. In a Lambda runtime the
same import also defers modules the functions pull in but never use (``klineo.deferred_imports``).

Why that threshold (issue 16 item 2, the runner's CPU per tick). A strategy turn allocates
thousands of short-lived containers (botocore's requests and answers, requests', ours) that live
across the turn's network waits, 10 turns at a time in the worker's threads. At CPython's default
(a young pass every 700 allocations on 3.11-3.12, 2,000 on 3.13), the survivors of those passes
piled up in generation 1, whose passes took 10-15 ms on this project's 2-core machine (loaded by
other work), landing in whichever turn's code was allocating then: 38 passes inside the 400 turns of
``bench.runner_kinds``' four phases, 71 ms. At 20,000 the same phases' turns ran 3 passes, 29 ms (one
run each): most of what a turn makes is freed by its reference count before a pass ever sees it.
The cost is cyclic garbage kept up to 20,000 allocations longer, a few MB at most in a 1,769 MB
worker.
"""

import gc as _gc
import os as _os

__all__ = ["WARM_GEN0_THRESHOLD", "end_init_pause", "lambda_collection_regime"]

# Allocations between two young-generation passes of a warm container (module docstring).
WARM_GEN0_THRESHOLD = 20_000


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


def lambda_collection_regime() -> None:
    """How a warm container collects garbage: what exists now frozen (the init), young passes every
    ``WARM_GEN0_THRESHOLD`` allocations. ``bench.runner_kinds`` runs its worker process under it too."""
    _gc.freeze()
    _gc.set_threshold(WARM_GEN0_THRESHOLD, *_gc.get_threshold()[1:])


def end_init_pause() -> None:
    """End of a function's init: the warm regime (``lambda_collection_regime``), collection on again."""
    global _collection_paused
    if _collection_paused:
        _collection_paused = False
        lambda_collection_regime()
        _gc.enable()


if _collection_paused:
    _gc.disable()

if _in_lambda_runtime():
    from klineo.deferred_imports import defer_unused_imports

    defer_unused_imports()
