"""An order's fills as its record keeps them: at most ``FILLS_KEPT`` of them, with exact totals of all.

A DynamoDB item holds at most 400 KB, attribute names included, and a stored fill takes up to some 180
bytes: the fills of an order matched against a few thousand resting orders would not fit in its one record,
whose write DynamoDB then refuses (ValidationException), so it could never be settled. Such a record
keeps its first ``FILLS_KEPT`` fills (oldest first) and ``fills_summary``: how many fills there were, their
quantity and value (price x qty), realised PnL and commission (with its number of fills) per asset, all
exact, and the last trade id counted. An order with fewer fills keeps them all and no summary.

Whatever is shown or booked from an order's fills (its executed quantity and average price, the totals the
order history gives, a strategy's PnL) comes from ``fill_totals``: the summary, else the sum of the list.

Each trade counts once, by trade id. Fills merged into a record that keeps them all are their union; into a
shortened one, a trade newer than its last trade id is added to the summary, an older one was counted: an
order's trades are read oldest first (by orderId all of them, on a watched symbol from its watermark on).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, NamedTuple

__all__ = ["FEE_ASSET", "FILLS_KEPT", "FillTotals", "fill_totals", "merged_fills", "stored_fill",
           "stored_fills"]

# The most fills one order record lists (under 180 KB of its 400 KB, each field at its longest).
FILLS_KEPT = 1000
# The asset a fill that names none paid its commission in: USDⓈ-M futures' own.
FEE_ASSET = "USDT"
_ZERO = Decimal(0)


class FillTotals(NamedTuple):
    """Exact totals over every fill of an order; per asset: commission paid, and in how many fills."""

    count: int
    quantity: Decimal
    value: Decimal
    realized_pnl: Decimal
    commission: Mapping[str, Decimal]
    commission_fills: Mapping[str, int]
    last_trade_id: int

    def plus(self, other: FillTotals) -> FillTotals:
        """These totals and ``other``'s (fills not counted in these)."""
        assets = sorted({*self.commission, *other.commission})
        return FillTotals(
            self.count + other.count, self.quantity + other.quantity, self.value + other.value,
            self.realized_pnl + other.realized_pnl,
            {a: self.commission.get(a, _ZERO) + other.commission.get(a, _ZERO) for a in assets},
            {a: self.commission_fills.get(a, 0) + other.commission_fills.get(a, 0) for a in assets},
            max(self.last_trade_id, other.last_trade_id))

    def as_summary(self) -> dict[str, Any]:
        """The record's ``fills_summary`` (decimals as text)."""
        return {"count": self.count, "quantity": str(self.quantity), "value": str(self.value),
                "realized_pnl": str(self.realized_pnl),
                "commission": {a: str(amount) for a, amount in self.commission.items()},
                "commission_fills": dict(self.commission_fills), "last_trade_id": self.last_trade_id}

    @classmethod
    def of_summary(cls, summary: Mapping[str, Any]) -> FillTotals:
        """A record's ``fills_summary`` read back."""
        return cls(int(summary["count"]), Decimal(str(summary["quantity"])), Decimal(str(summary["value"])),
                   Decimal(str(summary["realized_pnl"])),
                   {a: Decimal(str(amount)) for a, amount in summary["commission"].items()},
                   {a: int(n) for a, n in summary["commission_fills"].items()}, int(summary["last_trade_id"]))


def stored_fill(row: Mapping[str, Any]) -> dict[str, Any]:
    """One userTrades row as a record stores it (decimals kept as Binance's text)."""
    return {
        "trade_id": int(row["id"]), "order_id": int(row["orderId"]), "price": str(row["price"]),
        "qty": str(row["qty"]), "commission": str(row.get("commission", "0")),
        "commission_asset": str(row.get("commissionAsset", "")),
        "realized_pnl": str(row.get("realizedPnl", "0")), "side": str(row.get("side", "")),
        "time": int(row.get("time") or 0),
    }


def stored_fills(rows: Iterable[Mapping[str, Any]], fills: list[dict[str, Any]] | None = None,
                 summary: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A record's ``fills`` and ``fills_summary`` once the userTrades ``rows`` of its order are in, beside the
    ``fills`` (and ``summary``) it kept, if any (``merged_fills``)."""
    fills, summary = merged_fills(fills, summary, (stored_fill(row) for row in rows))
    return {"fills": fills, "fills_summary": summary}


def _totals_of(fills: Iterable[Mapping[str, Any]]) -> FillTotals:
    count, quantity, value, pnl, last = 0, _ZERO, _ZERO, _ZERO, 0
    commission: dict[str, Decimal] = {}
    paid_in: dict[str, int] = {}
    for fill in fills:
        qty, asset = Decimal(str(fill["qty"])), str(fill.get("commission_asset") or FEE_ASSET)
        count, quantity, value = count + 1, quantity + qty, value + Decimal(str(fill["price"])) * qty
        pnl += Decimal(str(fill.get("realized_pnl") or 0))
        commission[asset] = commission.get(asset, _ZERO) + Decimal(str(fill.get("commission") or 0))
        paid_in[asset] = paid_in.get(asset, 0) + 1
        last = max(last, int(fill["trade_id"]))
    return FillTotals(count, quantity, value, pnl, commission, paid_in, last)


def fill_totals(fills: list[dict[str, Any]], summary: Mapping[str, Any] | None) -> FillTotals:
    """The exact totals of a record's fills: its ``fills_summary`` when it has one, else the sum of its
    ``fills``."""
    return FillTotals.of_summary(summary) if summary is not None else _totals_of(fills)


def merged_fills(fills: list[dict[str, Any]] | None, summary: Mapping[str, Any] | None,
                 new: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(fills, fills_summary) of a record that kept ``fills`` (and ``summary``, when shortened) once the
    stored fills ``new`` are in: each trade once, by trade id, at most ``FILLS_KEPT`` listed."""
    if summary is not None:
        counted = FillTotals.of_summary(summary)
        later = {int(f["trade_id"]): f for f in new if int(f["trade_id"]) > counted.last_trade_id}
        if not later:
            return list(fills or []), dict(summary)
        return list(fills or []), counted.plus(_totals_of(later.values())).as_summary()
    by_id = {int(f["trade_id"]): f for f in fills or []}
    by_id.update({int(f["trade_id"]): f for f in new})
    merged = [by_id[trade_id] for trade_id in sorted(by_id)]
    if len(merged) <= FILLS_KEPT:
        return merged, None
    return merged[:FILLS_KEPT], _totals_of(merged).as_summary()
