"""A fan-out model of one runner tick on Lambda, built from figures the runner benchmark measured.

Question (issue 16): do 10,000 strategies over 100 markets finish within 20 s of the candle's
close? The benchmark cannot run that on this machine (moto and the simulator would be the
bottleneck), so it measures what ONE strategy tick costs (CPU, DynamoDB and Binance requests)
and this model scales it with the deployment's shape, read from template.yaml and the code:

- dispatcher: the gsi1 Query in pages of 1 MB (one after the other), then SendMessageBatch of up to
  10 messages whose bodies add up to at most ``SQS_BATCH_BYTES`` (a message taken at
  ``index_bytes`` per strategy, about what a strategy's snapshot weighs in its message),
  ``send_threads`` calls at a time, plus its CPU per strategy (on its vCPU share); one message per
  (environment, symbol, interval) group and up to ``per_message`` strategies;
- the SQS event source waits up to ``batching_window_s`` and hands ``batch_size`` messages to a
  worker; at most ``concurrency`` workers run (ReservedConcurrentExecutions), so the batches run
  in waves;
- a worker batch: its shared requests (the strategies' BatchGetItems, gates...) one after the
  other, the klines requests ``candle_threads`` at a time, then the strategy turns on
  ``strategy_threads`` threads, each turn waiting for its requests one after the other. CPU is
  added on top (no overlap with waiting: pessimistic), scaled by the container's vCPU share
  (Lambda gives a full vCPU at 1,769 MB).

Latencies are the issue's: 10 ms per DynamoDB call, 20 ms per Binance call; SQS calls are taken
at the DynamoDB figure. Cold starts and retries are not modelled.

What that load costs in Lambda (``lambda_dollars``): every worker batch is billed for its duration
at the worker's memory, the dispatcher for its own once a tick, and each invocation as a request,
at Lambda's published on-demand prices (``LAMBDA_PRICES``: US East, first tier; the 1 ms rounding
and the free tier are left out). SQS requests are not priced.
"""

from __future__ import annotations

import dataclasses
import math

from klineo.store.queue import SQS_BATCH_BYTES

__all__ = ["LAMBDA_PRICES", "FanoutInputs", "FanoutResult", "LambdaPrice", "fanout", "lambda_dollars"]

FULL_VCPU_MB = 1769
QUERY_PAGE_BYTES = 1024 * 1024
LAMBDA_PRICING_URL = "https://aws.amazon.com/lambda/pricing/"


@dataclasses.dataclass(frozen=True)
class LambdaPrice:
    """Lambda's on-demand price for one architecture in one region."""

    region: str
    architecture: str
    per_gb_second: float
    per_million_requests: float
    source: str


_US_EAST = f"{LAMBDA_PRICING_URL} (US East, first tier)"
LAMBDA_PRICES = {
    "arm64": LambdaPrice("us-east-1", "arm64", 0.0000133334, 0.20, _US_EAST),
    "x86_64": LambdaPrice("us-east-1", "x86_64", 0.0000166667, 0.20, _US_EAST),
}


@dataclasses.dataclass(frozen=True)
class FanoutInputs:
    """What the model needs: the load, the deployment's shape, latencies and the measured per-tick costs."""

    strategies: int = 10_000
    markets: int = 100
    # deployment (template.yaml and klineo.runner)
    per_message: int = 100
    batch_size: int = 10
    batching_window_s: float = 1.0
    concurrency: int = 4
    strategy_threads: int = 10
    candle_threads: int = 8
    send_threads: int = 4
    memory_mb: int = 512
    dispatcher_memory_mb: int = 512
    # latencies
    dynamo_ms: float = 10.0
    binance_ms: float = 20.0
    sqs_ms: float = 10.0
    # measured, per strategy tick
    cpu_ms: float = 1.0
    turn_dynamo_calls: float = 1.0
    turn_binance_calls: float = 0.0
    shared_dynamo_calls: float = 0.0
    dispatcher_cpu_ms: float = 0.0
    index_bytes: float = 1000.0


@dataclasses.dataclass(frozen=True)
class FanoutResult:
    """The model's answer: seconds from the candle's close until the last strategy is done, and its parts."""

    total_s: float
    dispatch_s: float
    batch_s: float
    waves: int
    batches: int
    messages: int
    strategies_per_batch: int


def fanout(inputs: FanoutInputs) -> FanoutResult:
    """Seconds from the candle's close to the last strategy's end, by the model in the module docstring."""
    per_market = math.ceil(inputs.strategies / inputs.markets)
    messages = inputs.markets * math.ceil(per_market / inputs.per_message)
    pages = max(1, math.ceil(inputs.strategies * inputs.index_bytes / QUERY_PAGE_BYTES))
    message_bytes = min(per_market, inputs.per_message) * inputs.index_bytes
    per_send = max(1, min(10, int(SQS_BATCH_BYTES // message_bytes)))
    sends = math.ceil(math.ceil(messages / per_send) / inputs.send_threads)
    dispatcher_vcpu = min(1.0, inputs.dispatcher_memory_mb / FULL_VCPU_MB)
    dispatch_s = (
        pages * inputs.dynamo_ms + sends * inputs.sqs_ms
        + inputs.strategies * inputs.dispatcher_cpu_ms / dispatcher_vcpu
    ) / 1000
    batches = math.ceil(messages / inputs.batch_size)
    waves = math.ceil(batches / inputs.concurrency)
    in_batch = math.ceil(inputs.strategies / batches)
    groups = min(inputs.batch_size, messages)
    vcpu = min(1.0, inputs.memory_mb / FULL_VCPU_MB)
    turn_ms = inputs.turn_dynamo_calls * inputs.dynamo_ms + inputs.turn_binance_calls * inputs.binance_ms
    batch_ms = (
        in_batch * inputs.shared_dynamo_calls * inputs.dynamo_ms
        + math.ceil(groups / inputs.candle_threads) * inputs.binance_ms
        + math.ceil(in_batch / inputs.strategy_threads) * turn_ms
        + in_batch * inputs.cpu_ms / vcpu
    )
    total_s = inputs.batching_window_s + dispatch_s + waves * batch_ms / 1000
    return FanoutResult(
        total_s=total_s, dispatch_s=dispatch_s, batch_s=batch_ms / 1000, waves=waves,
        batches=batches, messages=messages, strategies_per_batch=in_batch,
    )


def lambda_dollars(
    inputs: FanoutInputs, result: FanoutResult, price: LambdaPrice, ticks_per_month: int,
) -> float:
    """Lambda dollars per 1,000 strategy-months at the model's load: the batches' and the dispatcher's
    GB-seconds and their invocations, every tick, shared by ``inputs.strategies``."""
    gb_seconds = (result.batches * result.batch_s * inputs.memory_mb
                  + result.dispatch_s * inputs.dispatcher_memory_mb) / 1024
    requests = result.batches + 1
    per_tick = gb_seconds * price.per_gb_second + requests * price.per_million_requests / 1_000_000
    return per_tick * ticks_per_month * 1000 / inputs.strategies
