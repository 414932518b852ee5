"""Futures account settings: position mode, margin type, leverage and the symbol configuration.

Each function takes one account's `FuturesAccount` (the caller holds the exchange lock, see
`FuturesExchange.with_state`) and the request parameters, and returns Binance's answer or raises
its error. Codes and texts: docs/binance-facts.md §1 to §3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import errors
from .brackets import max_notional
from .errors import ApiError
from .market import SYMBOLS, get_symbol

if TYPE_CHECKING:
    from .futures import FuturesAccount

__all__ = [
    "change_leverage",
    "change_margin_type",
    "change_position_mode",
    "position_mode",
    "symbol_config",
]

SUCCESS = {"code": 200, "msg": "success"}
MARGIN_TYPES = ("ISOLATED", "CROSSED")


def _required(params: dict, name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise errors.mandatory(name)
    return value


def position_mode(state: FuturesAccount) -> dict:
    """GET /fapi/v1/positionSide/dual."""
    return {"dualSidePosition": state.dual_side}


def change_position_mode(state: FuturesAccount, params: dict) -> dict:
    """POST /fapi/v1/positionSide/dual: -4059 when unchanged, -4067/-4068 while anything is open."""
    text = _required(params, "dualSidePosition").lower()
    if text not in ("true", "false"):
        raise errors.illegal_characters("dualSidePosition", "true, false")
    dual_side = text == "true"
    if dual_side == state.dual_side:
        raise ApiError(400, -4059, "No need to change position side.")
    if state.open_orders():
        raise ApiError(400, -4067, "Position side cannot be changed if there exists open orders.")
    if state.holds():
        raise ApiError(400, -4068, "Position side cannot be changed if there exists position.")
    state.set_dual_side(dual_side)
    return dict(SUCCESS)


def change_margin_type(state: FuturesAccount, params: dict) -> dict:
    """POST /fapi/v1/marginType: -4046 when unchanged, -4047/-4048 with orders/position in the symbol."""
    spec = get_symbol(_required(params, "symbol"))
    margin_type = _required(params, "marginType")
    if margin_type not in MARGIN_TYPES:
        raise errors.illegal_characters("marginType", "ISOLATED, CROSSED")
    if state.margin_type[spec.symbol] == margin_type:
        raise ApiError(400, -4046, "No need to change margin type.")
    if state.open_orders(spec.symbol):
        raise ApiError(400, -4047, "Margin type cannot be changed if there exists open orders.")
    if state.holds(spec.symbol):
        raise ApiError(400, -4048, "Margin type cannot be changed if there exists position.")
    state.margin_type[spec.symbol] = margin_type
    return dict(SUCCESS)


def change_leverage(state: FuturesAccount, params: dict) -> dict:
    """POST /fapi/v1/leverage: 1..the symbol's max (else -4028); same value succeeds again."""
    spec = get_symbol(_required(params, "symbol"))
    text = _required(params, "leverage")
    try:
        leverage = int(text)
    except ValueError:
        raise ApiError(400, -4028, f"Leverage {text} is not valid") from None
    if not 1 <= leverage <= spec.max_leverage:
        raise ApiError(400, -4028, f"Leverage {leverage} is not valid")
    current = state.leverage[spec.symbol]
    if state.margin_type[spec.symbol] == "ISOLATED" and leverage < current and state.holds(spec.symbol):
        raise ApiError(
            400, -4161, "Leverage reduction is not supported in Isolated Margin Mode with open positions"
        )
    state.leverage[spec.symbol] = leverage
    return {"leverage": leverage, "maxNotionalValue": max_notional(spec, leverage), "symbol": spec.symbol}


def symbol_config(state: FuturesAccount, symbol: str | None) -> list[dict]:
    """GET /fapi/v1/symbolConfig: margin type and leverage per symbol (one symbol or all)."""
    names = [get_symbol(symbol).symbol] if symbol else list(SYMBOLS)
    return [
        {
            "symbol": name,
            "marginType": state.margin_type[name],
            "isAutoAddMargin": "false",
            "leverage": state.leverage[name],
            "maxNotionalValue": max_notional(SYMBOLS[name], state.leverage[name]),
        }
        for name in names
    ]
