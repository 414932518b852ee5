"""Notional and leverage brackets of USDT-M futures symbols (GET /fapi/v1/leverageBracket).

One bracket table shaped like Binance's BTCUSDT table, with each bracket's initial leverage
capped at the symbol's maximum leverage. The bracket a leverage falls in gives the largest
position notional allowed at that leverage (`maxNotionalValue` of POST /fapi/v1/leverage,
symbolConfig and positionRisk v2). See docs/binance-facts.md §2.
"""

from __future__ import annotations

from decimal import Decimal

from .market import SYMBOLS, SymbolSpec

__all__ = ["bracket_rows", "max_notional"]

# (initialLeverage, notionalFloor, notionalCap, maintMarginRatio); cum is derived.
_TABLE = (
    (125, 0, 50_000, "0.004"),
    (100, 50_000, 250_000, "0.005"),
    (50, 250_000, 1_000_000, "0.01"),
    (20, 1_000_000, 10_000_000, "0.025"),
    (10, 10_000_000, 20_000_000, "0.05"),
    (5, 20_000_000, 80_000_000, "0.1"),
)


def _brackets(spec: SymbolSpec) -> list[dict]:
    rows, cum, previous_ratio = [], Decimal(0), Decimal(0)
    for number, (leverage, floor, cap, ratio_text) in enumerate(_TABLE, start=1):
        ratio = Decimal(ratio_text)
        cum += floor * (ratio - previous_ratio)
        previous_ratio = ratio
        rows.append(
            {
                "bracket": number,
                "initialLeverage": min(leverage, spec.max_leverage),
                "notionalCap": cap,
                "notionalFloor": floor,
                "maintMarginRatio": float(ratio),
                "cum": float(cum),
            }
        )
    return rows


def max_notional(spec: SymbolSpec, leverage: int) -> str:
    """The notional cap at `leverage`: the cap of the last bracket allowing that leverage."""
    allowed = [row["notionalCap"] for row in _brackets(spec) if row["initialLeverage"] >= leverage]
    return str(allowed[-1] if allowed else _TABLE[0][2])


def bracket_rows(symbol: str | None) -> list[dict] | dict:
    """The leverageBracket answer: every symbol as a list, or one bare object when `symbol` is sent."""
    if symbol:
        return {"symbol": symbol, "brackets": _brackets(SYMBOLS[symbol])}
    return [{"symbol": name, "brackets": _brackets(spec)} for name, spec in SYMBOLS.items()]
