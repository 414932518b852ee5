"""The side a lost position may not re-open is that position's mode's: paper and live are tracked apart.

Real dispatcher and worker handlers, moto, and the Binance simulator over loopback. Signals are pinned
with RSI levels no price path crosses (oversold 99.99: always long).
"""

from __future__ import annotations

from decimal import Decimal

import boto3
from klineo.settings import get_settings
from klineo.store.dynamo import Update
from klineo.store.runs import set_protective
from klineo.store.strategies import strategy_key
from klineo.store.strategies import update_settings as update_strategy

from tests.integration.runner.conftest import tick_times

USER = "user-runner-reentry-mode"
ALWAYS_LONG = {"period": 14, "oversold": 99.99, "overbought": 99.999}


def _paper_long_with_a_stop_above_any_price(sid: str) -> None:
    """Runner state as a paper entry at 60000 leaves it, its stop-loss above any price (hit next candle)."""
    book = {"entry_price": Decimal(60_000), "gross_pnl": Decimal(0), "fees": Decimal(0)}
    update = Update(sets={"paper_position": Decimal("0.002"), "paper_book": book})
    boto3.client("dynamodb").update_item(TableName=get_settings().data_table, Key=strategy_key(USER, sid),
                                         **update.request())
    protective = {"mode": "paper", "stop_loss": Decimal(10**9), "entry_side": "BUY"}
    set_protective(USER, sid, protective, held=Decimal(0), seen=None)


def test_a_paper_stop_does_not_keep_the_strategy_switched_to_live_from_entering(runner) -> None:
    """A paper long stopped out, then switched to live on the same long signal, enters live at once."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          mode="paper")
    _paper_long_with_a_stop_above_any_price(sid)
    ticks = tick_times(3)
    runner.run_tick(ticks[0])  # the paper stop closes it: no paper re-entry on the same signal
    assert runner.stored(USER, sid).paper_position == 0 and runner.runs(sid)[0].status == "no_change"
    runner.run_tick(ticks[1])
    assert runner.runs(sid)[0].status == "no_change"  # still kept out in paper mode

    update_strategy(USER, sid, runner.stored(USER, sid), changes={"mode": "live"})
    runner.run_tick(ticks[2])

    run = runner.runs(sid)[0]
    assert (run.mode, run.status, run.order["side"]) == ("live", "ordered", "BUY")
    assert runner.stored(USER, sid).live_position == Decimal("0.002")


def test_a_live_liquidation_does_not_keep_the_strategy_switched_to_paper_from_entering(runner) -> None:
    """A live long liquidated, then switched to paper on the same long signal, enters its paper long."""
    sid = runner.strategy(USER, runner.connection(USER), type="rsi_threshold", parameters=ALWAYS_LONG,
                          stop_loss_pct="2")
    ticks = tick_times(3)
    runner.run_tick(ticks[0])
    runner.sim.inject_trade("futures-full", "liquidation", "BTCUSDT")
    runner.run_tick(ticks[1])  # position_closed (liquidation): no live re-entry on the same signal
    assert runner.stored(USER, sid).live_position == 0 and runner.runs(sid)[0].status == "no_change"

    update_strategy(USER, sid, runner.stored(USER, sid), changes={"mode": "paper"})
    runner.run_tick(ticks[2])

    run = runner.runs(sid)[0]
    assert (run.mode, run.status, run.order["side"]) == ("paper", "simulated", "BUY")
    assert runner.stored(USER, sid).paper_position == Decimal("0.002")
