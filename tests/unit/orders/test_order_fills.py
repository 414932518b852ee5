"""An order record's fills: at most FILLS_KEPT listed, exact totals of all (klineo.store.order_fills)."""

from __future__ import annotations

from decimal import Decimal

from klineo.store.order_fills import FILLS_KEPT, fill_totals, merged_fills


def _fill(trade_id: int, asset: str = "USDT") -> dict:
    return {"trade_id": trade_id, "order_id": 7, "price": "2.5", "qty": "0.1", "commission": "0.001",
            "commission_asset": asset, "realized_pnl": "-0.5", "side": "SELL", "time": 1}


def test_a_list_within_the_bound_is_the_union_by_trade_id_without_summary() -> None:
    """GIVEN fills 1-2 kept WHEN fills 2-3 come THEN 1, 2, 3 once each, no summary."""
    fills, summary = merged_fills([_fill(1), _fill(2)], None, [_fill(2), _fill(3)])

    assert [f["trade_id"] for f in fills] == [1, 2, 3] and summary is None


def test_a_longer_list_keeps_its_first_fills_and_the_exact_totals_of_all() -> None:
    """GIVEN FILLS_KEPT + 5 fills, 5 of them paid in BNB WHEN merged THEN the first FILLS_KEPT are listed and
    the totals count every one: quantity, value, PnL, commission and its fills per asset."""
    new = [_fill(i, "BNB" if i > FILLS_KEPT else "USDT") for i in range(1, FILLS_KEPT + 6)]

    fills, summary = merged_fills(None, None, reversed(new))

    totals = fill_totals(fills, summary)
    count = FILLS_KEPT + 5
    assert [f["trade_id"] for f in fills] == list(range(1, FILLS_KEPT + 1))
    assert (totals.count, totals.quantity, totals.value, totals.realized_pnl) == (
        count, Decimal("0.1") * count, Decimal("0.25") * count, Decimal("-0.5") * count)
    assert totals.commission == {"BNB": Decimal("0.005"), "USDT": Decimal("0.001") * FILLS_KEPT}
    assert totals.commission_fills == {"BNB": 5, "USDT": FILLS_KEPT} and totals.last_trade_id == count


def test_a_shortened_record_adds_only_trades_newer_than_those_it_counted() -> None:
    """GIVEN a shortened record WHEN a read brings trades it counted (all of them again, by orderId) and 2
    newer THEN only the 2 newer are added, once; the list is unchanged; the same read again adds nothing."""
    every = [_fill(i) for i in range(1, FILLS_KEPT + 3)]
    fills, summary = merged_fills(None, None, every)

    again = [*every, _fill(FILLS_KEPT + 3), _fill(FILLS_KEPT + 4)]
    fills_after, summary_after = merged_fills(fills, summary, again)
    repeated = merged_fills(fills_after, summary_after, again)

    totals = fill_totals(fills_after, summary_after)
    assert fills_after == fills and (totals.count, totals.last_trade_id) == (FILLS_KEPT + 4, FILLS_KEPT + 4)
    assert totals.quantity == Decimal("0.1") * (FILLS_KEPT + 4) and repeated == (fills_after, summary_after)


def _dynamodb_size(value: object) -> int:
    """An attribute value's size by DynamoDB's documented rules ("Item sizes" in the guide): text its UTF-8
    bytes; a number 1 byte per 2 significant digits + 1; a map or list 3 bytes + 1 a member + each member
    (a map's names too)."""
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, int):
        return (len(str(abs(value)).strip("0") or "0") + 1) // 2 + 1
    if isinstance(value, dict):
        return 3 + sum(1 + len(k.encode()) + _dynamodb_size(v) for k, v in value.items())
    assert isinstance(value, list)
    return 3 + sum(1 + _dynamodb_size(v) for v in value)


def test_the_fills_a_record_lists_take_well_under_the_400_kb_item_limit() -> None:
    """GIVEN more than FILLS_KEPT fills, each field at its longest (19-digit ids, 8-decimal amounts) WHEN
    merged THEN the list and summary a record keeps take under half of DynamoDB's 400 KB item limit."""
    longest = {"order_id": 9_223_372_036_854_775_807, "price": "123456.12345678", "qty": "123456789.123",
               "commission": "-1234.12345678", "commission_asset": "USDT", "realized_pnl": "-123456.12345678",
               "side": "SELL", "time": 9_999_999_999_999}
    new = [{**longest, "trade_id": 9_000_000_000_000_000_000 + i} for i in range(FILLS_KEPT + 10)]

    fills, summary = merged_fills(None, None, new)

    assert len(fills) == FILLS_KEPT
    assert _dynamodb_size(fills) + _dynamodb_size(summary) < 200 * 1024
