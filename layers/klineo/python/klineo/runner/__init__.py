"""The strategy runner: a dispatcher fans active strategies out onto SQS, workers run them.

- ``klineo.runner.schedule``: which candles a tick targets, and the client order id of a candle.
- ``klineo.runner.messages``: the SQS message the dispatcher sends and the worker reads.
- ``klineo.runner.dispatcher``: the every-minute entry point (query the index, batch, send).
- ``klineo.runner.candles``: closed klines fetched once per (environment, symbol, interval, candle).
- ``klineo.runner.execution``: one strategy on one candle (gates, decision, order, run record).
- ``klineo.runner.failures``: consecutive failed runs counted, and the pause at their limit.
- ``klineo.runner.worker``: the SQS batch entry point (partial batch failures).

Import from the submodules; this package re-exports nothing.
"""

__all__: list[str] = []
