"""The one risk gate (klineo.services.risk.check_order), decision by decision, on plain values."""

from __future__ import annotations

from decimal import Decimal

import pytest
from klineo.binance import classify_detail
from klineo.errors import ErrorCategory, KlineoError
from klineo.services.risk import OrderIntent, check_order, position_mode_refused
from klineo.store.connections import Connection, TradingContext

BUY = OrderIntent(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=Decimal("0.01"))
CLOSE = OrderIntent(symbol="BTCUSDT", side="SELL", type="MARKET", quantity=Decimal("0.01"), reduce_only=True)


def _context(*, user: bool = False, global_: bool = False, **connection: object) -> TradingContext:
    fields = {
        "user_id": "u",
        "connection_id": "c" * 32,
        "label": "x",
        "environment": "production",
        "key_type": "hmac",
        "api_key_masked": "abcd...",
        "secret_name": "s",
        "futures_enabled": True,
        "created_at": "2026-01-01T00:00:00+00:00",
        **connection,
    }
    return TradingContext(connection=Connection(**fields), user_kill_switch=user, global_kill_switch=global_)


def _refusal(
    context: TradingContext, order: OrderIntent | None, price: str = "65000", **kwargs
) -> KlineoError:
    with pytest.raises(KlineoError) as caught:
        check_order(context, order, lambda: Decimal(price), **kwargs)
    return caught.value


def _never() -> Decimal:
    raise AssertionError("the mark price was read although no gate needed it")


@pytest.mark.parametrize(
    ("context", "gate"),
    [
        (_context(global_=True), "global_kill_switch"),
        (_context(user=True), "user_kill_switch"),
        (_context(kill_switch=True), "connection_kill_switch"),
    ],
)
def test_each_kill_switch_refuses_an_opening_order_with_409_naming_itself(context, gate) -> None:
    """GIVEN one switch on WHEN an opening order is checked THEN 409 naming that switch, no price read."""
    with pytest.raises(KlineoError) as caught:
        check_order(context, BUY, _never)
    assert (caught.value.category, caught.value.field) == (ErrorCategory.CONFLICT, gate)


@pytest.mark.parametrize(
    "order",
    [
        CLOSE,
        OrderIntent(
            symbol="BTCUSDT", side="SELL", type="MARKET", quantity=Decimal("1"), position_side="LONG"
        ),
    ],
)
def test_kill_switches_and_limits_let_reducing_orders_through(order) -> None:
    """GIVEN every switch on and a tiny limit WHEN a reduce-only or hedge close is checked THEN it passes."""
    mode = "hedge" if order.position_side == "LONG" else "one_way"
    context = _context(
        user=True, global_=True, kill_switch=True, max_notional_usdt=Decimal("1"), position_mode=mode
    )
    check_order(context, order, _never)


def test_the_notional_limit_uses_the_mark_price_for_market_and_the_limit_price_for_limit() -> None:
    """GIVEN max 1000 WHEN 650 at the mark (MARKET), 1000.02 at the limit (LIMIT) THEN the 2nd is refused."""
    context = _context(max_notional_usdt=Decimal("1000"))
    check_order(context, BUY, lambda: Decimal("65000"))
    limit = OrderIntent(
        symbol="BTCUSDT", side="BUY", type="LIMIT", quantity=Decimal("0.02"), price=Decimal("50001")
    )
    refused = _refusal(context, limit)
    assert (refused.category, refused.field) == (ErrorCategory.ORDER_REJECTED, "max_notional_usdt")


def test_a_sell_limit_is_valued_at_the_higher_of_its_limit_and_the_mark_read_only_when_needed() -> None:
    """GIVEN max 1000 WHEN a SELL LIMIT 0.02 at 45000 meets mark 65000, or is over at its own limit THEN
    refused; the mark is read only for the first (the second is refused before it would matter)."""
    context = _context(max_notional_usdt=Decimal("1000"))
    below = OrderIntent(symbol="BTCUSDT", side="SELL", type="LIMIT", quantity=Decimal("0.02"),
                        price=Decimal("45000"))
    over = OrderIntent(symbol="BTCUSDT", side="SELL", type="LIMIT", quantity=Decimal("0.02"),
                       price=Decimal("50001"))
    refused = _refusal(context, below)
    assert (refused.field, "1300.00" in refused.message) == ("max_notional_usdt", True)
    with pytest.raises(KlineoError) as caught:
        check_order(context, over, _never)
    assert caught.value.field == "max_notional_usdt"
    check_order(context, below, lambda: Decimal("45000"))


@pytest.mark.parametrize(("side", "activation", "rate", "notional"), [
    ("SELL", "67000", "1", "10015.16"), ("BUY", "64000", "3", "10019.84"), ("SELL", None, "4", "10004.80"),
], ids=["sell-activation-over", "buy-rate-over", "no-activation-at-the-mark"])
def test_a_trailing_stop_is_valued_at_its_callback_beyond_its_activation(side, activation, rate, notional):
    """GIVEN max 10000 and the mark at 65000 WHEN a TRAILING_STOP_MARKET under the limit at the mark (0.148:
    9620; 0.152: 9880) comes whose activation raised by its callback rate is over it (the mark standing for
    a missing activation) THEN 422 naming max_notional_usdt with that valuation."""
    quantity = "0.152" if side == "BUY" else "0.148"
    order = OrderIntent(symbol="BTCUSDT", side=side, type="TRAILING_STOP_MARKET", quantity=Decimal(quantity),
                        activation_price=None if activation is None else Decimal(activation),
                        callback_rate=Decimal(rate))

    refused = _refusal(_context(max_notional_usdt=Decimal("10000")), order)

    assert (refused.field, f"notional {notional} USDT" in refused.message) == ("max_notional_usdt", True)


def test_leverage_default_above_max_leverage_is_refused() -> None:
    """GIVEN leverage 20 and max_leverage 10 WHEN an opening order is checked THEN 422 max_leverage."""
    refused = _refusal(_context(leverage=20, max_leverage=10), BUY)
    assert (refused.category, refused.field) == (ErrorCategory.ORDER_REJECTED, "max_leverage")


@pytest.mark.parametrize(
    ("mode", "order", "field"),
    [
        ("hedge", BUY, "positionSide"),
        (
            "hedge",
            OrderIntent(
                symbol="X",
                side="SELL",
                type="MARKET",
                quantity=Decimal(1),
                reduce_only=True,
                position_side="LONG",
            ),
            "reduceOnly",
        ),
        (
            "one_way",
            OrderIntent(symbol="X", side="BUY", type="MARKET", quantity=Decimal(1), position_side="LONG"),
            "positionSide",
        ),
    ],
)
def test_position_side_must_fit_the_accounts_position_mode(mode, order, field) -> None:
    """GIVEN a position mode WHEN positionSide/reduceOnly do not fit THEN refused naming the field."""
    refused = _refusal(_context(position_mode=mode), order)
    assert (refused.category, refused.field) == (ErrorCategory.INVALID_REQUEST, field)


def test_a_disabled_connection_refuses_every_order_even_a_close() -> None:
    """GIVEN a disabled connection (its key keeps failing) WHEN a close is checked THEN refused naming it."""
    assert _refusal(_context(disabled_at="2026-01-01T00:00:00+00:00"), CLOSE).field == "connection_disabled"


def test_futures_off_refuses_new_exposure_but_lets_a_close_through() -> None:
    """GIVEN futures switched off WHEN a close and a new entry are checked THEN the close passes (a position
    opened before must stay closable) and the entry is refused naming futures_disabled."""
    check_order(_context(futures_enabled=False), CLOSE)
    assert _refusal(_context(futures_enabled=False), None).field == "futures_disabled"


def test_a_connection_being_deleted_refuses_every_order_for_good_even_a_close() -> None:
    """GIVEN a connection whose delete began WHEN a close, an entry or a paper turn is checked THEN each
    is refused 409 naming connection_deleting, not retryable (the connection never opens again)."""
    deleting = _context(deleting_since="2026-01-01T00:00:00+00:00")
    refusals = [_refusal(deleting, CLOSE), _refusal(deleting, BUY), _refusal(deleting, None, live=False)]
    assert {(r.category, r.field, r.retryable) for r in refusals} == {
        (ErrorCategory.CONFLICT, "connection_deleting", False)}


def test_paper_strategies_need_no_futures_but_obey_the_switches() -> None:
    """GIVEN futures off WHEN a paper turn is checked THEN it passes; with a switch on it is refused."""
    check_order(_context(futures_enabled=False), live=False)
    assert _refusal(_context(futures_enabled=False, kill_switch=True), None, live=False).field == (
        "connection_kill_switch"
    )


@pytest.mark.parametrize(("code", "msg", "mode"), [
    (-4061, "Order's position side does not match user's setting.", True),
    (-1106, "Parameter 'reduceonly' sent when not required.", True),
    (-1106, "Parameter 'closePosition' sent when not required.", False),
    (-2022, "ReduceOnly Order is rejected.", False),
])
def test_position_mode_refused_reads_binances_refusal_as_the_client_raises_it(code, msg, mode):
    """Guard (unchanged outcomes): Binance's refusal, raised as the client raises it (classified category,
    field and code), is a position-mode refusal for -4061 and -1106 naming reduceOnly only."""
    classified = classify_detail(400, code, msg)
    exc = KlineoError(classified.category, classified.message, field=classified.field, code=code, status=400)

    assert position_mode_refused(exc) is mode
