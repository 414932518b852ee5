"""The request weight a reconciler run counts against its budget is what Binance counts for what it sent,
against moto and the simulator over loopback (the simulator's journal holds each request's weight)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from klineo.services.reconcile import RUN_WEIGHT

from tests.integration.futures.helpers import body_of, new_key, order_body, order_event

MARKET = {"type": "MARKET", "price": None, "timeInForce": None}


def _entry(invoke: Any, connection_id: str, **extra: Any) -> dict[str, Any]:
    """A BUY 0.010 with a 2 % stop-loss and take-profit (MARKET unless ``extra`` says otherwise)."""
    body = order_body(connection_id, quantity="0.010", stop_loss={"percent": "2"},
                      take_profit={"percent": "2"}, **{**MARKET, **extra})
    response = invoke("futures_order", order_event(body, key=new_key()))
    assert response["statusCode"] == 200, response["body"]
    return body_of(response)


def _counted(sim: Any, reconcile: Any) -> tuple[int, int]:
    """(the weight one run counted, the weight Binance counted for what it sent)."""
    sent = len(sim.journal)
    summary = reconcile()
    return RUN_WEIGHT - summary["weight_left"], sum(r.weight for r in sim.journal[sent:])


def test_a_run_that_re_fits_stops_after_a_manual_reduction_counts_the_weight_it_spent(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a LONG whose SL and TP are for more than is left after a manual sale WHEN a run re-fits them
    (open algo orders read, two placed, two cancelled) THEN it counts the weight Binance counted (before:
    the cancels were not counted)."""
    _entry(invoke, futures_connection.id)
    sim_env.inject_trade(futures_connection.account.id, "manual", "BTCUSDT", side="SELL", quantity="0.004")

    counted, spent = _counted(sim_env, reconcile)

    assert [r.method for r in sim_env.journal if r.path == "/fapi/v1/algoOrder"].count("DELETE") == 2
    assert counted == spent


def test_a_run_that_re_fits_stops_after_a_reduce_only_fill_counts_the_weight_it_spent(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a LONG with SL and TP and a resting reduce-only LIMIT SELL that filled while nobody read it WHEN
    a run settles it and re-fits the stops THEN it counts the weight Binance counted (before: only the
    position read was counted, not the open algo orders read nor the cancels)."""
    _entry(invoke, futures_connection.id)
    limit = (Decimal(str(sim_env.mark_price("BTCUSDT"))) * Decimal("1.005")).quantize(Decimal("0.1"))
    body = order_body(futures_connection.id, side="SELL", quantity="0.004", price=format(limit, "f"),
                      reduceOnly=True)
    assert invoke("futures_order", order_event(body, key=new_key()))["statusCode"] == 200
    sim_env.set_mark_price("BTCUSDT", float(limit + 5))

    counted, spent = _counted(sim_env, reconcile)

    assert counted == spent


def test_a_run_that_arms_a_filled_entrys_stops_counts_the_weight_it_spent(
    sim_env, invoke, futures_connection, reconcile
):
    """GIVEN a resting LIMIT entry with SL and TP that filled while nobody read it WHEN a run settles it and
    places its stops THEN it counts the weight Binance counted."""
    limit = (Decimal(str(sim_env.mark_price("BTCUSDT"))) * Decimal("0.995")).quantize(Decimal("0.1"))
    _entry(invoke, futures_connection.id, type="LIMIT", price=format(limit, "f"), timeInForce="GTC")
    sim_env.set_mark_price("BTCUSDT", float(limit - 5))

    counted, spent = _counted(sim_env, reconcile)

    assert [r.method for r in sim_env.journal if r.path == "/fapi/v1/algoOrder"].count("POST") == 2
    assert counted == spent
