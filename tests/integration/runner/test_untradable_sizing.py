"""A sizing no order of the symbol can ever pass (``klineo.runner.planning.sizing_refusal``) is refused where
the trader sets it, and a strategy stored with one before the rule pauses on its first entry.

On the simulator's BTCUSDT (step 0.001, minimum quantity 0.001, MARKET maximum 120, minimum order value
100 USDT): ``size`` 0.0005 is below the minimum quantity, 200 above the MARKET maximum, and
``quote_size_usdt`` 50 below the minimum order value, at any price. A ``size`` of 0.001 (about 65 USDT at
the simulator's price, below the minimum order value) fails at today's price only: accepted.

A symbol whose exchangeInfo ``orderTypes`` lack MARKET (``Simulator.set_order_types``) can never trade
either: a strategy sends only MARKET orders. Creating one there, or resuming one, is refused naming
``symbol``; the other changes of a strategy whose symbol stopped taking them are not.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest
from klineo.binance import Market, get_client
from klineo.binance.filters import get_symbol_rules
from klineo.services.key_health import pause_connection_strategies
from klineo.store import strategies as strategy_store
from klineo.store.connections import disable_connection
from klineo.store.events import list_events
from klineo.store.runs import list_runs

from local.binance_sim.errors import ApiError
from tests.helpers import put_paper_strategy, response_json
from tests.integration.api.conftest import connection_event
from tests.integration.runner.conftest import ORDER_PATH
from tests.integration.runner.test_strategies_api import ALICE, Api, create_body, error_of
from tests.integration.runner.test_strategy_money import CONNECTION, INTERVAL, SYMBOL, USER, _candles, _tick

D = Decimal
UNTRADABLE = [
    ({"size": "0.0005"}, "size", "size is below BTCUSDT's minimum quantity 0.001"),
    ({"size": "200"}, "size", "size is above BTCUSDT's maximum quantity 120"),
    ({"size": None, "quote_size_usdt": "50"}, "quote_size_usdt",
     "quote_size_usdt is below BTCUSDT's minimum order value 100 USDT"),
]
UNTRADABLE_SIZE = "untradable_size"  # the pause reason (klineo.runner.planning.UNTRADABLE_SIZE)
NO_MARKET = "BTCUSDT takes no MARKET orders, the only orders a strategy sends"
EXCHANGE_INFO_PATH = "/fapi/v1/exchangeInfo"
RISING = [("100", "100", "100", "100")] * 3 + [("100", "101", "100", "101"), ("101", "102", "101", "102")]


@pytest.fixture
def api(runner) -> Api:
    """The strategy routes on moto and the simulator."""
    return Api(runner.invoke)


def _refused(response: dict[str, Any], field: str, message: str) -> None:
    """The answer is a 422 naming ``field`` with ``message``."""
    assert response["statusCode"] == 422, response["body"]
    error = error_of(response)
    assert (error["category"], error["field"], error["message"]) == ("invalid_request", field, message)


@pytest.mark.parametrize("status", ["active", "paused"])
@pytest.mark.parametrize(("sizing", "field", "message"), UNTRADABLE)
def test_creating_a_strategy_whose_sizing_can_never_trade_is_refused(runner, api, sizing, field, message,
                                                                     status) -> None:
    """GIVEN a sizing outside BTCUSDT's market lot or below its minimum order value WHEN creating a strategy
    (active or paused) THEN 422 naming the field with the symbol's bound, nothing stored."""
    response = api.create(ALICE, create_body(runner.connection(ALICE), status=status, **sizing))

    _refused(response, field, message)
    assert strategy_store.list_strategies(ALICE) == []


def test_a_size_that_fails_only_at_todays_price_is_accepted(runner, api) -> None:
    """GUARD (unchanged behaviour): a size at the minimum quantity whose value is below the minimum order
    value at today's price is created: at another price it may trade."""
    response = api.create(ALICE, create_body(runner.connection(ALICE), size="0.001"))

    assert response["statusCode"] == 201, response["body"]


@pytest.mark.parametrize(("sizing", "field", "message"), UNTRADABLE)
def test_patching_a_sizing_that_can_never_trade_is_refused(runner, api, sizing, field, message) -> None:
    """GIVEN a tradable strategy WHEN its sizing is patched to one that can never trade THEN 422 naming the
    field, the stored sizing unchanged."""
    created = response_json(api.create(ALICE, create_body(runner.connection(ALICE))))

    response = api.update(ALICE, created["id"], {k: v for k, v in sizing.items() if v is not None})

    _refused(response, field, message)
    stored = strategy_store.get_strategy(ALICE, created["id"], consistent=True)
    assert stored is not None and (stored.size, stored.settings.quote_size_usdt) == (D("0.002"), None)


def test_resuming_a_strategy_stored_with_a_sizing_that_can_never_trade_is_refused(runner, api) -> None:
    """GIVEN a paused strategy stored (before the rule) with a size below the minimum WHEN it is resumed THEN
    422 naming size, still paused; resumed with a tradable size in the same request THEN 200, active."""
    sid = runner.strategy(ALICE, runner.connection(ALICE), size="0.0005", mode="paper")
    stored = strategy_store.get_strategy(ALICE, sid, consistent=True)
    strategy_store.update_settings(ALICE, sid, stored, changes={"status": "paused"})

    refused = api.update(ALICE, sid, {"status": "active"})

    _refused(refused, "size", "size is below BTCUSDT's minimum quantity 0.001")
    assert strategy_store.get_strategy(ALICE, sid, consistent=True).status == "paused"
    resumed = api.update(ALICE, sid, {"status": "active", "size": "0.002"})
    assert resumed["statusCode"] == 200, resumed["body"]
    assert response_json(resumed)["status"] == "active"


@pytest.mark.parametrize(("size", "quote", "message"), [
    ("200", None, "size is above BTCUSDT's maximum quantity 120"),
    (None, "50", "quote_size_usdt is below BTCUSDT's minimum order value 100 USDT"),
])
def test_a_stored_paper_strategy_that_can_never_trade_pauses_on_its_first_entry(sim_env, size, quote,
                                                                              message) -> None:
    """GIVEN a paper strategy stored before the rule with a sizing no order can pass (size 200 was a skipped
    insufficient_margin run on every candle, never paused) WHEN its signal first asks for an entry THEN a
    failed run saying why and the strategy paused (untradable_size) with its paused event, in that run's
    write; the next candle does not run."""
    sid = put_paper_strategy(USER, CONNECTION, symbol=SYMBOL, interval=INTERVAL,
                             parameters={"fast": 1, "slow": 2, "allow_short": False},
                             size=D(size) if size is not None else None)
    if quote is not None:
        stored = strategy_store.get_strategy(USER, sid, consistent=True)
        strategy_store.update_settings(USER, sid, stored, changes={"quote_size_usdt": D(quote)})
    candles = _candles(RISING)

    result = _tick(candles, 3, sid)

    assert result.outcome == "failed"
    run, = list_runs(sid)
    assert (run.status, run.error["message"], run.signal) == ("failed", message, "long")
    stored = strategy_store.get_strategy(USER, sid, consistent=True)
    assert (stored.status, stored.status_reason, stored.paper_position) == ("paused", UNTRADABLE_SIZE, 0)
    paused, = [e for e in list_events(sid, 20).events if e.kind == "paused"]
    assert paused.details["reason"] == UNTRADABLE_SIZE and message in paused.details["message"]
    assert _tick(candles, 4, sid).outcome == "not_run"


def test_a_stored_live_strategy_that_can_never_trade_pauses_at_once_without_an_order(runner) -> None:
    """GIVEN a live strategy stored before the rule with a size above BTCUSDT's MARKET maximum WHEN a tick
    runs it THEN no order reaches Binance, one failed run, and the strategy paused (untradable_size) at once
    instead of after five failed runs."""
    sid = runner.strategy(ALICE, runner.connection(ALICE), size="200")

    runner.run_tick()

    assert runner.journal("POST", ORDER_PATH) == []
    run, = runner.runs(sid)
    assert (run.status, run.error["message"]) == ("failed", "size is above BTCUSDT's maximum quantity 120")
    stored = runner.stored(ALICE, sid)
    assert (stored.status, stored.status_reason, stored.live_position) == ("paused", UNTRADABLE_SIZE, 0)


def test_an_untradable_size_pause_is_logged_as_such(runner, caplog) -> None:
    """GIVEN a live strategy stored with a size above BTCUSDT's MARKET maximum WHEN the tick pauses it at once
    THEN the log says its sizing can never trade, once (not silently, nor as a pause by count)."""
    sid = runner.strategy(ALICE, runner.connection(ALICE), size="200")

    with caplog.at_level(logging.INFO):
        runner.run_tick()

    assert runner.stored(ALICE, sid).status_reason == UNTRADABLE_SIZE
    said = [record.getMessage() for record in caplog.records if "paus" in record.getMessage()]
    assert said == ["strategy paused: no order of its sizing can ever pass its symbol's rules"]


@pytest.mark.parametrize("status", ["active", "paused"])
def test_creating_a_strategy_on_a_symbol_that_takes_no_market_orders_is_refused(runner, api, status) -> None:
    """GIVEN BTCUSDT listed as taking LIMIT orders only WHEN creating a strategy on it (active or paused) THEN
    422 naming symbol and why (every order a strategy sends is a MARKET one), nothing stored."""
    runner.sim.set_order_types("BTCUSDT", ["LIMIT"])

    response = api.create(ALICE, create_body(runner.connection(ALICE), status=status))

    _refused(response, "symbol", NO_MARKET)
    assert strategy_store.list_strategies(ALICE) == []


def test_resuming_a_strategy_whose_symbol_stopped_taking_market_orders_is_refused(runner, api) -> None:
    """GIVEN a paused strategy whose symbol now takes LIMIT orders only WHEN it is resumed THEN 422 naming
    symbol, still paused; with a new sizing in the same request too."""
    sid = runner.strategy(ALICE, runner.connection(ALICE), mode="paper")
    strategy_store.update_settings(ALICE, sid, runner.stored(ALICE, sid), changes={"status": "paused"})
    runner.sim.set_order_types("BTCUSDT", ["LIMIT"])

    for body in ({"status": "active"}, {"status": "active", "size": "0.003"}):
        _refused(api.update(ALICE, sid, body), "symbol", NO_MARKET)

    stored = strategy_store.get_strategy(ALICE, sid, consistent=True)
    assert (stored.status, stored.size) == ("paused", D("0.002"))


@pytest.mark.parametrize("status", ["active", "paused"])
def test_other_changes_of_a_strategy_whose_symbol_stopped_taking_market_orders_are_accepted(
    runner, api, status
) -> None:
    """GUARD: a strategy whose symbol stopped taking MARKET orders after it was made can still have its
    parameters and sizing changed and be paused (200): only making it active is refused."""
    sid = runner.strategy(ALICE, runner.connection(ALICE), mode="paper")
    if status == "paused":
        strategy_store.update_settings(ALICE, sid, runner.stored(ALICE, sid), changes={"status": "paused"})
    runner.sim.set_order_types("BTCUSDT", ["LIMIT"])

    for body in ({"type": "sma_crossover", "parameters": {"fast": 3, "slow": 7}}, {"size": "0.003"},
                 {"status": "paused"}):
        response = api.update(ALICE, sid, body)
        assert response["statusCode"] == 200, response["body"]

    stored = strategy_store.get_strategy(ALICE, sid, consistent=True)
    assert (stored.status, stored.size, stored.parameters["fast"]) == ("paused", D("0.003"), 3)


@pytest.mark.parametrize("mode", ["live", "paper"])
def test_an_active_strategy_whose_symbol_stopped_taking_market_orders_pauses_at_once(runner, mode) -> None:
    """GIVEN an active strategy whose symbol now takes LIMIT orders only WHEN a tick asks it for an entry THEN
    no order reaches Binance, one failed run, and the strategy paused (no_market_orders) with a paused event
    saying why, at once (before: a failed run on every entry turn, paused only after five in a row, as
    repeated_failures:invalid_request, and never when holds came between)."""
    sid = runner.strategy(ALICE, runner.connection(ALICE), mode=mode)
    runner.sim.set_order_types("BTCUSDT", ["LIMIT"])

    runner.run_tick()

    assert runner.journal("POST", ORDER_PATH) == []
    run, = runner.runs(sid)
    assert (run.status, run.error["message"]) == ("failed", "order type MARKET is not allowed on BTCUSDT")
    stored = runner.stored(ALICE, sid)
    assert (stored.status, stored.status_reason) == ("paused", "no_market_orders")
    paused, = [e for e in list_events(sid, 20).events if e.kind == "paused"]
    assert paused.details["reason"] == "no_market_orders" and NO_MARKET in paused.details["message"]


def _disabled_with_two_unfit_strategies(runner) -> tuple[str, tuple[str, str, str]]:
    """GIVEN three paper strategies its disable paused: one on a symbol that now takes LIMIT orders only, one
    stored with a size below the minimum, one that can trade (the connection, and their ids)."""
    connection = runner.connection(ALICE)
    no_market = runner.strategy(ALICE, connection, mode="paper")
    tiny = runner.strategy(ALICE, connection, symbol="ETHUSDT", mode="paper", size="0.0005")
    fine = runner.strategy(ALICE, connection, symbol="ETHUSDT", mode="paper", size="0.1")
    pause_connection_strategies(ALICE, connection, DISABLED)
    disable_connection(ALICE, connection, DISABLED)
    runner.sim.set_order_types("BTCUSDT", ["LIMIT"])
    return connection, (no_market, tiny, fine)


def _enable(runner, connection: str) -> dict[str, Any]:
    event = connection_event("connection_enable", connection, ALICE, "/enable")
    return runner.invoke("connection_enable", event)


DISABLED = "connection_disabled:permission"


def test_enabling_a_connection_leaves_paused_the_strategies_a_resume_would_refuse(runner) -> None:
    """GIVEN three paper strategies its disable paused: one on a symbol that now takes LIMIT orders only, one
    stored with a size below the minimum, one that can trade WHEN the connection is enabled THEN only the
    last is resumed; the other two stay paused for the disable and the answer lists them in still_paused
    with the field and message the user's own resume answers (before: all three resumed, unchecked)."""
    connection, (no_market, tiny, fine) = _disabled_with_two_unfit_strategies(runner)

    enabled = _enable(runner, connection)

    assert enabled["statusCode"] == 200, enabled["body"]
    body = response_json(enabled)
    assert body["resumed_strategies"] == [fine]
    assert body["still_paused"] == [
        {"id": no_market, "field": "symbol", "message": NO_MARKET},
        {"id": tiny, "field": "size", "message": "size is below ETHUSDT's minimum quantity 0.001"},
    ]
    for sid in (no_market, tiny):
        stored = runner.stored(ALICE, sid)
        assert (stored.status, stored.status_reason) == ("paused", DISABLED)
    assert runner.stored(ALICE, fine).status == "active"


def test_a_strategy_the_enable_leaves_paused_gets_a_still_paused_event_saying_why(runner) -> None:
    """GIVEN three strategies its disable paused, two of which a resume would refuse WHEN the connection is
    enabled THEN each of those two has a still_paused event (by connection_enable) with the field and message
    its resume is refused with, so GET /strategies/{id}/events says why it did not trade again; the resumed
    one has its resumed event only (before: nothing in the events of the two left paused)."""
    connection, (no_market, tiny, fine) = _disabled_with_two_unfit_strategies(runner)

    assert _enable(runner, connection)["statusCode"] == 200

    def events(sid: str) -> list[tuple[str, dict]]:
        return [(e.kind, e.details) for e in list_events(sid, 20).events]

    assert events(no_market) == [("still_paused", {"by": "connection_enable", "reason": DISABLED,
                                                   "field": "symbol", "message": NO_MARKET})]
    assert events(tiny) == [("still_paused", {
        "by": "connection_enable", "reason": DISABLED, "field": "size",
        "message": "size is below ETHUSDT's minimum quantity 0.001"})]
    assert [kind for kind, _ in events(fine)] == ["resumed"]


def _cached_rules_list_market(symbol: str = "BTCUSDT") -> None:
    """The container's exchangeInfo (kept up to an hour) read now, while ``symbol`` still takes MARKET."""
    rules = get_symbol_rules(get_client(Market.FUTURES, "production"), symbol)
    assert rules.takes("MARKET")


def test_a_market_order_binance_refuses_for_its_type_pauses_at_once_once_the_rules_confirm(runner) -> None:
    """GIVEN a live strategy whose symbol stopped taking MARKET orders after the container cached its rules
    (still listing MARKET) WHEN its order goes out and Binance refuses the type (-1116) THEN the symbol's
    rules are read once more, show no MARKET, and the strategy is paused (no_market_orders) at once with its
    paused event, as when the cached rules already show it (before: a failed run counted towards the pause
    by five, the strategy left to fail on every entry)."""
    sid = runner.strategy(ALICE, runner.connection(ALICE))
    _cached_rules_list_market()
    runner.sim.set_order_types("BTCUSDT", ["LIMIT"])
    runner.sim.clear_journal()

    runner.run_tick()

    assert len(runner.journal("POST", ORDER_PATH)) == 1
    assert len(runner.journal("GET", EXCHANGE_INFO_PATH)) == 1  # the one fresh read after the refusal
    run, = runner.runs(sid)
    assert (run.status, run.error["category"]) == ("failed", "invalid_request")
    stored = runner.stored(ALICE, sid)
    assert (stored.status, stored.status_reason, stored.failed_runs) == ("paused", "no_market_orders", 0)
    paused, = [e for e in list_events(sid, 20).events if e.kind == "paused"]
    assert paused.details["reason"] == "no_market_orders" and NO_MARKET in paused.details["message"]


def test_a_type_refusal_the_fresh_rules_do_not_confirm_is_counted_not_paused(runner, monkeypatch) -> None:
    """GUARD: GIVEN Binance refusing a strategy's MARKET order's type (-1116) while its exchangeInfo, read
    again, still lists MARKET WHEN the tick runs THEN a failed run counted towards the pause by five
    (failed_runs 1), the strategy still active: only the rules, not the refusal alone, pause it at once."""
    sid = runner.strategy(ALICE, runner.connection(ALICE))
    _cached_rules_list_market()

    def refuse_market(symbol: object, order_type: object) -> None:
        if order_type == "MARKET":
            raise ApiError(400, -1116, "Invalid orderType.")

    monkeypatch.setattr(runner.sim.state, "require_order_type", refuse_market)

    runner.run_tick()

    assert len(runner.journal("POST", ORDER_PATH)) == 1
    run, = runner.runs(sid)
    assert (run.status, run.error["category"]) == ("failed", "invalid_request")
    stored = runner.stored(ALICE, sid)
    assert (stored.status, stored.status_reason, stored.failed_runs) == ("active", None, 1)
    assert [e for e in list_events(sid, 20).events if e.kind == "paused"] == []
