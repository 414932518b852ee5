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
