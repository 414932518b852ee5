"""The runner's fan-out model (bench/fanout.py) on hand-computed cases."""

from __future__ import annotations

import dataclasses

import pytest

from bench.fanout import FanoutInputs, LambdaPrice, fanout, lambda_dollars

HOLDS = FanoutInputs(cpu_ms=1.0, turn_dynamo_calls=1.0, index_bytes=1000.0)


def test_ten_thousand_holds_over_a_hundred_markets_match_the_hand_computation() -> None:
    """100 messages in 10 batches of 1,000 run in 3 waves of 4 workers; the parts add up as computed."""
    result = fanout(HOLDS)
    assert (result.messages, result.batches, result.waves, result.strategies_per_batch) == (100, 10, 3, 1000)
    # dispatcher: 10 Query pages of 1 MB (10 ms each) + 50 SendMessageBatch calls (two 100 KB messages
    # each under the 256 KiB batch limit) on 4 threads (13 x 10 ms)
    assert result.dispatch_s == pytest.approx(0.23)
    # batch: 2 rounds of klines (20 ms) + 100 turns per thread (10 ms) + 1,000 ms CPU on 512/1769 of a vCPU
    assert result.batch_s == pytest.approx((40 + 1000 + 1000 / (512 / 1769)) / 1000)
    assert result.total_s == pytest.approx(1.0 + 0.23 + 3 * result.batch_s)


def test_small_messages_go_ten_to_a_send_and_full_ones_one_each() -> None:
    """Messages of 10 x 1 KB go 10 per SendMessageBatch; of 100 x 2.6 KB (260 KB) one per call."""
    small = fanout(dataclasses.replace(HOLDS, per_message=10))
    full = fanout(dataclasses.replace(HOLDS, index_bytes=2600.0))
    # 1,000 messages / 10 per call = 100 calls on 4 threads: 25 rounds; 10 and 25 Query pages
    assert small.dispatch_s == pytest.approx((10 + 25) * 10 / 1000)
    # 100 messages, one per call: 25 rounds
    assert full.dispatch_s == pytest.approx((25 + 25) * 10 / 1000)


def test_more_worker_concurrency_means_fewer_waves_and_an_earlier_finish() -> None:
    """With 10 workers the 10 batches run in one wave."""
    wide = fanout(dataclasses.replace(HOLDS, concurrency=10))
    assert wide.waves == 1 and wide.total_s < fanout(HOLDS).total_s


def test_an_order_per_turn_adds_its_binance_and_dynamodb_waits() -> None:
    """Every turn placing an order (1 Binance call, 2 more DynamoDB calls) adds 100 x 40 ms per batch."""
    orders = fanout(dataclasses.replace(HOLDS, turn_dynamo_calls=3.0, turn_binance_calls=1.0))
    assert orders.batch_s - fanout(HOLDS).batch_s == pytest.approx(100 * 40 / 1000)


def test_lambda_dollars_bill_every_batch_and_the_dispatcher_at_their_memory() -> None:
    """10 batches of 2 s at 1,024 MB and a 1 s dispatch at 2,048 MB: 22 GB-s and 11 requests a tick."""
    inputs = dataclasses.replace(HOLDS, memory_mb=1024, dispatcher_memory_mb=2048)
    result = dataclasses.replace(fanout(inputs), batches=10, batch_s=2.0, dispatch_s=1.0)
    price = LambdaPrice("here", "arm64", per_gb_second=0.5, per_million_requests=1_000_000.0, source="test")
    # per tick: 22 GB-s x $0.5 + 11 requests x $1 = $22, shared by 10,000 strategies, 100 ticks a month
    dollars = lambda_dollars(inputs, result, price, ticks_per_month=100)
    assert dollars == pytest.approx(22 * 100 * 1000 / 10_000)

