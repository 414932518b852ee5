"""A paper position's stop stands while its strategy is paused, as a live one's stays armed on Binance: the
turn after a resume checks every candle since the last one checked, even those older than its window.

The real dispatcher and worker on moto and the Binance simulator over loopback (its candles are a
deterministic price path, any past minute of which can be read). The strategy is an RSI one that is always
long (``ALWAYS_LONG``): it enters at a past candle; its stop-loss is put where a candle of the pause reached
it but no candle of the resumed turn's window (``fetch_limit``: the klines the worker reads) does. Whether a
past entry has such a stop depends on the path's last days at the minute the test runs, so the simulator runs
on the first price seed, from the runner tests' own, whose path has one now (``binance_sim`` below).
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from klineo.binance import Candle, Market, get_client, klines
from klineo.runner.candles import closed_between, fetch_limit
from klineo.runner.paper import paper_protective
from klineo.runner.schedule import MINUTE_MS
from klineo.runner.worker import strategy_lookback
from klineo.store import strategies as strategy_store
from klineo.store.events import list_events
from klineo.strategies import get_strategy_type, parse_parameters
from klineo.strategies.simulation import market_fill, protective_exit
from klineo.timestamps import utc_iso

from local.binance_sim import market as sim_market
from tests.integration.runner.conftest import KLINES_PATH, untied_price_seed
from tests.integration.runner.test_failed_runs_pause import ALWAYS_LONG, minute_start

USER = "user-paper-stop-gap"
D = Decimal


# How far back the long gap's test looks for an entry, and how long its gap is (1m candles).
_LONG_GAP_BACKS = range(3 * 1440, 4600, 37)
_LONG_GAP_MINUTES = 3 * 1560


@pytest.fixture
def binance_sim(binance_sim_factory, extra_symbols) -> object:
    """A fresh simulator on the first price seed (from the runner tests' ``untied_price_seed``) under which
    both searches below find an entry at this minute and the next: the simulator's path is deterministic per
    seed, and for some hours of a day the default seed's BTCUSDT has no dip before the window (every test
    here then failed with "no past entry has a stop reached in the pause only")."""
    now_ms = int(time.time() * 1000)
    seed = untied_price_seed(now_ms / 1000)
    while not all(_has_a_gap_stop(seed, minute_start_of(now_ms + ahead)) for ahead in (0, MINUTE_MS)):
        seed += 1
    return binance_sim_factory(price_seed=seed)


def minute_start_of(now_ms: int) -> int:
    """``minute_start`` of the minute holding ``now_ms``."""
    return now_ms // MINUTE_MS * MINUTE_MS + 1000


def _has_a_gap_stop(seed: int, now: int) -> bool:
    """True when, under ``seed``, both tests' searches find an entry for a turn at ``now``."""
    series = sim_market.PriceSeries(sim_market.SYMBOLS["BTCUSDT"], seed)
    end_close = now // MINUTE_MS * MINUTE_MS - 1
    rows = series.klines("1m", now, 1500, end_close + 1 - _LONG_GAP_MINUTES * MINUTE_MS, end_close)
    while len(rows) < _LONG_GAP_MINUTES:  # pages of at most 1500, as Binance's
        rows += series.klines("1m", now, 1500, rows[-1][6] + 1, end_close)
    candles = [Candle(int(r[0]), D(r[1]), D(r[2]), D(r[3]), D(r[4]), D(r[5]), int(r[6])) for r in rows]
    window = _window()
    try:
        _stop_reached_before_the_window(candles[-900:], window, range(window + 60, 880, 7))
        _stop_reached_before_the_window(candles, window, _LONG_GAP_BACKS)
    except AssertionError:
        return False
    return True


def _window() -> int:
    """The candles the always-long strategy's turn reads (``fetch_limit`` of its lookback), less the next."""
    kind = get_strategy_type(ALWAYS_LONG["type"])
    return fetch_limit(kind.lookback(parse_parameters(ALWAYS_LONG["type"], ALWAYS_LONG["parameters"]))) - 1


def _closed_1m(start_open: int, end_close: int) -> list[Candle]:
    """The simulator's closed BTCUSDT 1m candles from the one opening at ``start_open`` to the one closing
    at ``end_close`` (one public klines request)."""
    count = (end_close + 1 - start_open) // MINUTE_MS
    rows = klines(get_client(Market.FUTURES, "production"), "BTCUSDT", "1m", limit=count,
                  start_time=start_open, end_time=end_close)
    assert len(rows) == count
    return rows


def _pause_with_a_stop_reached_before_the_window(window: int, now: int) -> tuple[int, D]:
    """(the entry tick, a stop-loss percent): the always-long entry at that tick fills at its close (plus
    slippage); some candle of the pause reaches that stop, none of the ``window`` candles the turn at
    ``now`` reads does."""
    end_close = now // MINUTE_MS * MINUTE_MS - 1
    candles = _closed_1m(end_close + 1 - 900 * MINUTE_MS, end_close)
    return _stop_reached_before_the_window(candles, window, range(window + 60, 880, 7))


def _stop_reached_before_the_window(candles: list[Candle], window: int, backs: range) -> tuple[int, D]:
    """(the entry tick, a stop-loss percent) for an entry at one of the candles ``backs`` before the end of
    ``candles`` (1m, oldest first, ending with the candle before the turn's): some candle after the entry
    reaches that stop, none of the ``window`` last does."""
    window_low = min(c.low for c in candles[-window:])
    for back in backs:
        entry_candle = candles[-back]
        entry = market_fill("BUY", entry_candle.close)
        pause_low = min(c.low for c in candles[-back + 1:-window])
        above = min(window_low, entry) * D("0.999")
        if pause_low < above * D("0.998"):
            pct = ((1 - (pause_low + above) / 2 / entry) * 100).quantize(D("0.01"))
            return entry_candle.close_time + 1 + 1000, pct
    raise AssertionError("no past entry has a stop reached in the pause only")


def _paper_always_long(runner, now: int, days: int = 2) -> str:
    """A stored active paper strategy, always long, created ``days`` days before ``now``."""
    created = utc_iso(now - days * 86_400_000)
    return runner.strategy(USER, runner.connection(USER), mode="paper", created_at=created, **ALWAYS_LONG)


@pytest.mark.parametrize("paused", [True, False], ids=["paused", "ticks_lost"])
def test_a_paper_stop_reached_in_a_gap_closes_the_position_at_that_candle(runner, paused: bool) -> None:
    """GIVEN a paper long with a stop-loss, its strategy paused (or its ticks lost) longer than the klines
    its turn reads, a candle of that gap reaching the stop WHEN it runs again THEN the position is closed at
    that candle's stop price (the backtest's fill), not kept open (before: only the turn's window was
    checked, the position stayed open below its stop), and its events name that candle's close time."""
    now = minute_start()
    sid = _paper_always_long(runner, now)
    window = fetch_limit(strategy_lookback(runner.stored(USER, sid))) - 1
    entry_tick, pct = _pause_with_a_stop_reached_before_the_window(window, now)
    stored = runner.stored(USER, sid)
    strategy_store.update_settings(USER, sid, stored, changes={"stop_loss_pct": pct})

    runner.run_tick(entry_tick)
    held = runner.stored(USER, sid)
    assert held.paper_position == D("0.002")
    stop = D(paper_protective(held)["stop_loss"])
    if paused:
        strategy_store.update_settings(USER, sid, held, changes={"status": "paused"})
    entry_close = entry_tick - 1000 - 1
    gap = _closed_1m(entry_close + 1, now // MINUTE_MS * MINUTE_MS - 1)
    first = next(c for c in gap if c.low <= stop)
    assert all(c.low > stop for c in gap[-window:]), "the window itself reaches the stop"
    _, expected = protective_exit("LONG", stop, None, first)

    if paused:
        strategy_store.update_settings(USER, sid, runner.stored(USER, sid), changes={"status": "active"})
        runner.active_before(USER, sid)  # resumed before the candle the tick plays
    runner.run_tick(now)

    after = runner.stored(USER, sid)
    events = {e.kind: e.details for e in list_events(sid, 50).events}
    assert after.paper_position == 0, "the paper long outlived the stop a candle of its pause reached"
    assert events["protective_triggered"]["reason"] == "stop_loss"
    assert D(events["protective_triggered"]["price"]) == expected
    triggered, closed = events["protective_triggered"], events["position_closed"]
    assert triggered.get("candle_close_time") == first.close_time, "the event does not say which candle"
    assert closed.get("candle_close_time") == first.close_time
    assert D(after.paper_book["gross_pnl"]) == (expected - D(held.paper_book["entry_price"])) * D("0.002")
    assert time.time() * 1000 - now < 60_000, "the test ran past its minute (the ticks would be stale)"


@pytest.mark.parametrize(("minutes", "requests"), [(200, 2), (1300, 3), (3 * 1440, 2)],
                         ids=["one_page", "two_pages", "coarse_to_fine"])
def test_candles_read_before_the_window_are_read_once(runner, minutes: int, requests: int) -> None:
    """GIVEN a paper long whose stop no candle reaches, its ticks lost longer than the klines its turn reads
    WHEN the next two turns run THEN the first reads the candles before its window (in pages of at most
    1000; 3 days of them as their hours, one request of weight 1) and keeps its candle as checked, and the
    second reads its window alone."""
    runner.sim.configure(aggregated_candles=True)
    now = minute_start()
    sid = _paper_always_long(runner, now, days=2 + minutes // 1440)
    strategy_store.update_settings(USER, sid, runner.stored(USER, sid), changes={"stop_loss_pct": D(50)})
    runner.run_tick(now - minutes * MINUTE_MS)
    assert runner.stored(USER, sid).paper_position == D("0.002")

    runner.sim.clear_journal()
    runner.run_tick(now - MINUTE_MS)
    gap_read = runner.journal("GET", KLINES_PATH)
    book = runner.stored(USER, sid).paper_book
    runner.sim.clear_journal()
    runner.run_tick(now)

    assert len(gap_read) == requests, "the window and the pages of the candles before it"
    assert minutes < 2000 or sum(r.weight for r in gap_read) == requests, "a coarse read of weight above 1"
    assert book["checked_close_time"] == now - MINUTE_MS - 1000 - 1
    assert len(runner.journal("GET", KLINES_PATH)) == 1, "the candles before the window were read again"
    assert runner.stored(USER, sid).paper_position == D("0.002")


def test_a_long_gap_is_scanned_coarse_to_fine(runner) -> None:
    """GIVEN a paper long whose ticks were lost for 3 days of 1m candles (about 4,300), a candle of that gap
    reaching its stop, the simulator's coarse candles made from its 1m ones (as Binance's are) WHEN it runs
    again THEN it closes at the candle and price a read of every candle of the gap finds, in 3 klines
    requests of weight 1 (the window, the gap's hours, the reaching hour's minutes; before: the gap read
    whole, 5 pages of up to 1000 candles, weight 22)."""
    runner.sim.configure(aggregated_candles=True)
    now = minute_start()
    sid = _paper_always_long(runner, now, days=5)
    window = fetch_limit(strategy_lookback(runner.stored(USER, sid))) - 1
    end_close = now // MINUTE_MS * MINUTE_MS - 1
    start = end_close - _LONG_GAP_MINUTES * MINUTE_MS
    everything = closed_between("production", "BTCUSDT", "1m", start, end_close + 1)
    entry_tick, pct = _stop_reached_before_the_window(list(everything), window, _LONG_GAP_BACKS)
    strategy_store.update_settings(USER, sid, runner.stored(USER, sid), changes={"stop_loss_pct": pct})
    runner.run_tick(entry_tick)
    held = runner.stored(USER, sid)
    assert held.paper_position == D("0.002")
    stop = D(paper_protective(held)["stop_loss"])
    gap = [c for c in everything if c.close_time > entry_tick - 1000 - 1]  # the direct fine read
    first = next(c for c in gap if c.low <= stop)
    assert all(c.low > stop for c in gap[-window:]), "the window itself reaches the stop"
    _, expected = protective_exit("LONG", stop, None, first)

    runner.sim.clear_journal()
    runner.run_tick(now)

    reads = runner.journal("GET", KLINES_PATH)
    events = {e.kind: e.details for e in list_events(sid, 50).events}
    assert runner.stored(USER, sid).paper_position == 0, "the paper long outlived the stop its gap reached"
    assert D(events["protective_triggered"]["price"]) == expected
    assert events["protective_triggered"].get("candle_close_time") == first.close_time
    assert len(gap) > 4000 and first.close_time < gap[-window].open_time
    weights = [r.weight for r in reads]
    assert len(weights) <= 3 and sum(weights) <= 3, f"the gap read whole: klines weights {weights}"
    assert time.time() * 1000 - now < 60_000, "the test ran past its minute (the ticks would be stale)"
