"""A connection's margin type and leverage on one symbol, applied before its first order there.

Margin type and leverage are per symbol on Binance. They are stored as the connection's defaults
(``klineo.services.futures_account``, POST .../futures/enable and PATCH) and applied by
``prepare_symbol`` the first time the connection trades a symbol with an order that adds exposure
(API order or strategy; never for a close):
/fapi/v1/symbolConfig is read, and only what differs is changed. What was applied is remembered per
(connection, symbol) on the connection item, so a warm order costs nothing more; a change of the
defaults makes the next order apply them again. -4046 is success; -4047/-4048 are a 409 naming
``margin_type``; a leverage above the symbol's top bracket (read from /fapi/v1/leverageBracket
before asking), or one Binance refuses as not valid (-4028, which says the same past a bracket read that
allowed it), is a 422 naming ``leverage`` (``LeverageAboveSymbolMax``: no order of the symbol passes while
that leverage stays set, so the runner pauses the strategy at once on it).

Without a leverage (neither the connection's default nor the strategy's own) an order would trade at
the leverage the account already holds on the symbol: 20x on a fresh Binance account. ``max_leverage``
caps the leverage an order trades at, so that leverage is read from the same /fapi/v1/symbolConfig and,
when above ``max_leverage``, lowered to it (never raised) before the first order adding exposure. The
check is remembered like applied settings (``leverage_at_most``: made again when ``max_leverage`` or the
defaults change); like them, a leverage changed later in Binance's own app is not seen.

Turns of one runner batch that first trade the same (connection, symbol) together apply the settings
once: one applies them while the others wait for it, then find them applied on the batch's shared
connection (``_applying``). Before, each turn read symbolConfig (weight 5) and changed the settings again,
spending the IP's weight budget, which every user of this server shares, for nothing.

Apart from the futures account routes so that the order paths (orders, the strategy worker) and
the routes that only need ``futures_client`` load neither those routes' models nor their code
(issue 16 item 3, cold start).
"""

from __future__ import annotations

import threading
from typing import Any

from klineo.binance import (
    BinanceClient,
    Credentials,
    Environment,
    ErrorCategory,
    Market,
    endpoints,
    get_client,
)
from klineo.errors import KlineoError, LeverageAboveSymbolMax
from klineo.store import connections as connection_store
from klineo.store.connections import Connection
from klineo.validation import MARGIN_TYPES

__all__ = ["NO_NEED_TO_CHANGE", "SETTING_FIELDS", "binance_code", "futures_client", "prepare_symbol"]

# Binance's "nothing to change" answers (position mode -4059, margin type -4046): success.
NO_NEED_TO_CHANGE = frozenset({-4059, -4046})
# The fields a refusal of the settings themselves names (not of the key, the network or Binance's state).
SETTING_FIELDS = frozenset({"margin_type", "leverage"})
_MARGIN_TYPE_BLOCKED = frozenset({-4047, -4048, -4168})
# -4028 "Leverage %s is not valid": above the symbol's maximum (facts), refused again while it stays set;
# -4161: lowering an isolated leverage while a position is open (lifted once it is closed).
_LEVERAGE_NOT_VALID = -4028
_LEVERAGE_REDUCTION_REFUSED = -4161
# One lock per (connection, symbol) whose settings a turn of this container applied (module doc): a few
# per connection, kept for the container's life.
_APPLYING: dict[tuple[str, str], threading.Lock] = {}
_APPLYING_GUARD = threading.Lock()


def futures_client(connection: Connection) -> BinanceClient:
    """The USDT-M futures client of the connection's environment."""
    return get_client(Market.FUTURES, Environment(connection.environment))


def binance_code(exc: KlineoError) -> int | None:
    """The Binance error code of ``exc``, when it has one."""
    return exc.code if isinstance(exc.code, int) else None


def _check_bracket(client: BinanceClient, creds: Credentials, symbol: str, leverage: int) -> None:
    brackets = endpoints.futures_leverage_brackets(client, creds, symbol)
    top = max((int(b.get("initialLeverage", 0)) for b in brackets if isinstance(b, dict)), default=0)
    if top and leverage > top:
        raise LeverageAboveSymbolMax(symbol, leverage, top)


def _apply_margin_type(client: BinanceClient, creds: Credentials, symbol: str, margin_type: str) -> None:
    try:
        endpoints.futures_change_margin_type(client, creds, symbol, MARGIN_TYPES[margin_type])
    except KlineoError as exc:
        code = binance_code(exc)
        if code in _MARGIN_TYPE_BLOCKED:
            raise KlineoError(
                ErrorCategory.CONFLICT,
                f"The margin type of {symbol} cannot be changed while it has an open position or open orders "
                "(or in Multi-Assets mode, for isolated).",
                field="margin_type",
                code=code,
            ) from None
        if code not in NO_NEED_TO_CHANGE:
            raise


def _apply_leverage(client: BinanceClient, creds: Credentials, symbol: str, leverage: int) -> None:
    _check_bracket(client, creds, symbol, leverage)
    try:
        endpoints.futures_change_leverage(client, creds, symbol, leverage)
    except KlineoError as exc:
        code = binance_code(exc)
        if code == _LEVERAGE_NOT_VALID:  # past a bracket read that allowed it (or listed none)
            raise LeverageAboveSymbolMax(symbol, leverage, None, code=code) from None
        if code == _LEVERAGE_REDUCTION_REFUSED:
            raise KlineoError(
                ErrorCategory.ORDER_REJECTED,
                f"Binance refused leverage {leverage}x for {symbol}: {exc.message}",
                field="leverage",
                code=exc.code,
            ) from None
        raise


def _wanted(connection: Connection) -> dict[str, Any]:
    """What the symbol must hold before an order adds exposure: the margin type and leverage to apply, or
    without a leverage the cap the account's own one is kept under (``leverage_at_most``)."""
    wanted: dict[str, Any] = {}
    if connection.margin_type is not None:
        wanted["margin_type"] = connection.margin_type
    if connection.leverage is not None:
        wanted["leverage"] = connection.leverage
    else:
        wanted["leverage_at_most"] = connection.max_leverage
    return wanted


def _leverage_to_apply(wanted: dict[str, Any], config: dict[str, Any]) -> int | None:
    """The leverage to set on the symbol: the one wanted when it differs from what the account holds, or
    the cap when the account's own one (no leverage wanted) is above it; None: none to set."""
    held = str(config.get("leverage"))
    leverage = wanted.get("leverage")
    if leverage is not None:
        return leverage if held != str(leverage) else None
    cap = wanted["leverage_at_most"]
    return cap if held.isdigit() and int(held) > cap else None


def prepare_symbol(
    client: BinanceClient, creds: Credentials, connection: Connection, symbol: str, *, reduces: bool,
) -> dict[str, Any] | None:
    """Apply the connection's margin type and leverage to ``symbol`` unless already done (see module doc).

    ``reduces``: the order(s) about to go out only make a position smaller. Then nothing is applied: a
    close needs neither setting, and Binance refuses a margin type change while the position is open
    (-4048), so applying the defaults first would trap the position. Returns the connection item as now
    stored when it applied them (its symbol_settings hold ``symbol``; ``connection``'s own are brought in
    step too, so the later turns of a runner batch that share it ask no more), None when nothing changed.
    """
    wanted = _wanted(connection)
    if reduces or connection.symbol_settings.get(symbol) == wanted:
        return None
    with _applying(connection.connection_id, symbol):
        if connection.symbol_settings.get(symbol) == wanted:  # another turn of the batch applied them
            return None
        return _apply(client, creds, connection, symbol, wanted)


def _applying(connection_id: str, symbol: str) -> threading.Lock:
    """The lock of (connection, symbol): one turn at a time applies its settings (module doc)."""
    with _APPLYING_GUARD:
        return _APPLYING.setdefault((connection_id, symbol), threading.Lock())


def _apply(client: BinanceClient, creds: Credentials, connection: Connection, symbol: str,
           wanted: dict[str, Any]) -> dict[str, Any]:
    """Read the symbol's settings on Binance, change what differs from ``wanted``, record them applied."""
    config = endpoints.futures_symbol_config(client, creds, symbol)
    margin_type = wanted.get("margin_type")
    if margin_type is not None and str(config.get("marginType", "")).upper() != MARGIN_TYPES[margin_type]:
        _apply_margin_type(client, creds, symbol, margin_type)
    leverage = _leverage_to_apply(wanted, config)
    if leverage is not None:
        _apply_leverage(client, creds, symbol, leverage)
    item = connection_store.record_symbol_settings(connection.user_id, connection.connection_id, symbol,
                                                   wanted, recorded=connection.symbol_settings)
    connection.symbol_settings[symbol] = wanted
    return item
