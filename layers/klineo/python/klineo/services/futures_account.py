"""The futures account of a connection: futures test, enable (with settings), disable, and settings.

Settings on Binance, in the order Binance requires them:
1. Position mode (account-wide, ``one_way`` | ``hedge``): read first (``dualSidePosition`` of
   /fapi/v1/accountConfig, which the futures test reads anyway; GET /fapi/v1/positionSide/dual,
   weight 30, only when that field is missing), changed only when it differs. -4059 ("no need to
   change") is success; -4067/-4068 (open orders or positions) are a 409 naming ``position_mode``
   that says the account's mode and how to keep it.
2. Margin type and leverage are per symbol on Binance. They are stored as the connection's
   defaults and applied by ``prepare_symbol`` the first time the connection trades a symbol (API
   order or strategy): /fapi/v1/symbolConfig is read, and only what differs is changed. What was
   applied is remembered per (connection, symbol) on the connection item, so a warm order costs
   nothing more; a change of the defaults makes the next order apply them again
   (``klineo.services.symbol_settings``, which the order paths import without this module).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from klineo.binance import (
    BinanceClient,
    Credentials,
    ErrorCategory,
    endpoints,
)
from klineo.errors import KlineoError
from klineo.models.futures_account import (
    FuturesAsset,
    FuturesStateResponse,
    FuturesTestResponse,
    FuturesTestVerdict,
)
from klineo.services.key_health import READ, note_futures_outcome, note_key_answer
from klineo.services.risk import HEDGE, MODE_NAMES, ONE_WAY, check_leverage_setting
from klineo.services.symbol_settings import NO_NEED_TO_CHANGE, binance_code, futures_client
from klineo.store import connections as connection_store
from klineo.store.connections import (
    FUTURES_REFUSED,
    FUTURES_TESTED_BY_OLD_KEY,
    Connection,
    connection_credentials,
    refuse_deleting,
    require_connection,
)
from klineo.timestamps import utc_now_iso
from klineo.validation import plain_text

if TYPE_CHECKING:
    # Only POST .../futures/enable builds these (imported there): futures test and disable, which
    # import this module too, do not create that route's models.
    from klineo.models.futures_settings import FuturesEnableResponse, FuturesSettingsRequest

__all__ = [
    "apply_position_mode",
    "check_futures",
    "disable_futures",
    "enable_futures",
    "hedge_mode_of",
    "mode_name",
    "run_futures_test",
    "stored_test",
]

_POSITION_MODE_BLOCKED = frozenset({-4067, -4068, -4531})


# ---------------------------------------------------------------- futures test


def _decimal_text(value: Any) -> str:
    return plain_text(Decimal(str(value))) if value not in (None, "") else "0"


def _failed_test(connection: Connection, exc: KlineoError, tested_at: str) -> FuturesTestResponse:
    return FuturesTestResponse(
        connection_id=connection.connection_id,
        environment=connection.environment,
        ok=False,
        category=exc.category.value,
        message=exc.message,
        retryable=exc.retryable,
        tested_at=tested_at,
    )


def _passed_test(
    connection: Connection, account: dict[str, Any], can_trade: bool, tested_at: str
) -> FuturesTestResponse:
    assets = [
        FuturesAsset(
            asset=str(row.get("asset", "")),
            wallet_balance=_decimal_text(row.get("walletBalance")),
            available_balance=_decimal_text(row.get("availableBalance")),
            unrealized_profit=_decimal_text(row.get("unrealizedProfit")),
        )
        for row in account.get("assets", [])
        if Decimal(str(row.get("walletBalance") or 0)) != 0
    ]
    open_positions = sum(
        1 for p in account.get("positions", []) if Decimal(str(p.get("positionAmt") or 0)) != 0
    )
    return FuturesTestResponse(
        connection_id=connection.connection_id,
        environment=connection.environment,
        ok=can_trade,
        can_trade=can_trade,
        tested_at=tested_at,
        total_wallet_balance=_decimal_text(account.get("totalWalletBalance")),
        available_balance=_decimal_text(account.get("availableBalance")),
        assets=assets,
        open_positions=open_positions,
    )


def _futures_refusal(exc: KlineoError) -> KlineoError:
    """A refusal of the key on futures, said as what it almost always is: no Futures right on the key."""
    if exc.category is not ErrorCategory.PERMISSION:
        return exc
    return KlineoError(
        ErrorCategory.PERMISSION,
        "Binance refused this API key on USDT-M futures: it lacks the Futures permission. Enable Futures "
        "for the key in Binance's API management, then try again. (If the spot test fails too, the key "
        "itself or this server's IP is refused.)",
        status=exc.status, code=exc.code, retryable=False,
    )


def run_futures_test(
    connection: Connection,
    creds: Credentials | None = None,
) -> tuple[FuturesTestResponse, KlineoError | None, dict[str, Any]]:
    """Test the key on USDT-M futures: (answer, error or None, accountConfig). Never touches spot.

    ``creds`` tests other keys than the stored ones (a key replacement before it is stored).
    """
    creds = creds or connection_credentials(connection)
    client = futures_client(connection)
    tested_at = utc_now_iso(zulu=True)
    try:
        # /fapi/v3/account, not v2: v2 account/balance/positionRisk were deprecated on 2024-07-24
        # (facts §3, §7). v3 dropped canTrade, which moved to /fapi/v1/accountConfig, so the test
        # reads both: v3 for balances and positions, accountConfig for the trading permission.
        account = endpoints.futures_account(client, creds)
        config = endpoints.futures_account_config(client, creds)
    except KlineoError as exc:
        exc = _futures_refusal(exc)
        return _failed_test(connection, exc, tested_at), exc, {}
    can_trade = bool(config.get("canTrade", False))
    result = _passed_test(connection, account, can_trade, tested_at)
    if can_trade:
        return result, None, config
    error = KlineoError(
        ErrorCategory.PERMISSION,
        "This API key can read the futures account but cannot trade futures: enable Futures on the key "
        "in Binance's API management.",
    )
    update = {"category": error.category.value, "message": error.message, "retryable": False}
    return result.model_copy(update=update), error, config


def stored_test(result: FuturesTestResponse) -> dict[str, Any]:
    """What futures_last_test keeps: the verdict, not the balances (they go stale)."""
    return result.model_dump(include=set(FuturesTestVerdict.model_fields), exclude_none=True)


def check_futures(user_id: str, connection_id: str) -> FuturesTestResponse:
    """Futures account check of one of the caller's connections; records futures_last_test, and the
    account's position mode as its accountConfig said it (switched outside KLINEO, it is the truth the next
    orders' positionSide must follow)."""
    connection = require_connection(user_id, connection_id)
    # As the spot test: nothing sent for a connection being deleted; a delete begun meanwhile wins.
    refuse_deleting(connection, connection_store.TEST_REFUSED)
    result, error, config = run_futures_test(connection)
    # Recorded only while the connection still names the key tested: a key replaced meanwhile is a 409.
    connection_store.record_test_result(user_id, connection_id, stored_test(result), futures=True,
                                        refused=connection_store.TEST_REFUSED,
                                        tested_version=connection.credentials_version,
                                        position_mode=mode_name(hedge_mode_of(config)))
    note_key_answer(connection, error, READ)  # a key without futures is an answer, not a failing key
    return result


# ---------------------------------------------------------------- settings on Binance


def hedge_mode_of(account_config: dict[str, Any]) -> bool | None:
    """An accountConfig's ``dualSidePosition``: True in hedge mode, False in one-way, None when absent."""
    dual = account_config.get("dualSidePosition")
    return dual if isinstance(dual, bool) else None


def mode_name(hedge: bool | None) -> str | None:
    """``hedge_mode_of``'s answer as a connection's position_mode (None: the account did not say)."""
    return None if hedge is None else HEDGE if hedge else ONE_WAY


def apply_position_mode(
    client: BinanceClient, creds: Credentials, current_hedge: bool | None, wanted: str | None
) -> str:
    """Set the account's position mode when it differs; returns the mode the account is now in."""
    if current_hedge is None:
        # accountConfig (weight 5) carries dualSidePosition; GET positionSide/dual weighs 30.
        current_hedge = hedge_mode_of(endpoints.futures_account_config(client, creds))
        if current_hedge is None:
            current_hedge = endpoints.futures_position_mode(client, creds)
    if wanted is None or (wanted == HEDGE) == current_hedge:
        return HEDGE if current_hedge else ONE_WAY
    try:
        endpoints.futures_change_position_mode(client, creds, wanted == HEDGE)
    except KlineoError as exc:
        code = binance_code(exc)
        if code in _POSITION_MODE_BLOCKED:
            raise _mode_change_blocked(HEDGE if current_hedge else ONE_WAY, wanted, code) from None
        if code not in NO_NEED_TO_CHANGE:
            raise
    return wanted


def _mode_change_blocked(account_mode: str, wanted: str, code: int | None) -> KlineoError:
    """409 naming position_mode: Binance keeps the account in ``account_mode`` while it holds positions or
    orders. Said with both modes and how to keep the account's: the switch may not have been the trader's
    wish (an enable without a body asks for the connection's stored mode, which may be stale)."""
    return KlineoError(
        ErrorCategory.CONFLICT,
        f"The account is in {MODE_NAMES[account_mode]} mode on Binance, and cannot be switched to "
        f"{MODE_NAMES[wanted]} mode while it has open positions or open orders (on any USDT-M or COIN-M "
        f"symbol): to keep its mode, send position_mode {account_mode}; to switch, close them first.",
        field="position_mode",
        code=code,
    )


# ---------------------------------------------------------------- enable / disable


def enable_futures(
    user_id: str, connection_id: str, settings: FuturesSettingsRequest | None = None
) -> FuturesEnableResponse:
    """Run the futures test, apply the position mode, store the defaults, then switch futures on."""
    from klineo.models.futures_settings import FuturesEnableResponse, FuturesSettingsRequest

    settings = settings or FuturesSettingsRequest()
    connection = require_connection(user_id, connection_id)
    refuse_deleting(connection, FUTURES_REFUSED)  # nor is the account's position mode switched on Binance
    check_leverage_setting(settings.leverage, connection.max_leverage)
    result, error, config = run_futures_test(connection)
    note_futures_outcome(connection, error, READ)  # a key without the Futures right is refused, not counted
    # Both writes hold only while the connection names the key tested: a key replaced meanwhile is a 409.
    tested_version = connection.credentials_version
    if error is not None:
        connection_store.record_test_result(user_id, connection_id, stored_test(result), futures=True,
                                            tested_version=tested_version, what_ran=FUTURES_TESTED_BY_OLD_KEY)
        raise KlineoError(
            error.category,
            f"Futures were not enabled: {error.message}",
            status=error.status,
            code=error.code,
            retry_after=error.retry_after,
            retryable=error.retryable,
        )
    account_hedge = hedge_mode_of(config)
    mode = apply_position_mode(
        futures_client(connection),
        connection_credentials(connection),
        account_hedge,
        settings.position_mode or connection.position_mode,
    )
    changes = {
        "position_mode": mode,
        **settings.model_dump(include={"margin_type", "leverage"}, exclude_none=True),
    }
    # A key replaced meanwhile refuses this write, but a mode switched on Binance is the account's now.
    switched = None if mode == mode_name(account_hedge) else mode
    updated = connection_store.set_futures_enabled(
        user_id, connection_id, True, futures_last_test=stored_test(result), settings=changes,
        tested_version=tested_version, switched_mode=switched, account_uid=connection.binance_uid,
    )
    return FuturesEnableResponse(
        connection_id=connection_id,
        futures_enabled=updated.futures_enabled,
        test=result,
        **updated.model_dump(include={"position_mode", "margin_type", "leverage"}),
    )


def disable_futures(user_id: str, connection_id: str) -> FuturesStateResponse:
    """Switch futures off (no Binance call), unless live ACTIVE strategies run on the connection: 409
    naming futures_enabled and them (``check_settings_change``), or the runner would skip them every
    minute. Paper and paused strategies do not block; the kill switch stops every order at once."""
    # Imported here: only this route of the module reads the strategies.
    from klineo.services.strategy_connection import check_settings_change

    connection = require_connection(user_id, connection_id, consistent=True)
    check_settings_change(user_id, connection, {"futures_enabled": False})
    updated = connection_store.set_futures_enabled(user_id, connection_id, False)
    return FuturesStateResponse(connection_id=connection_id, futures_enabled=updated.futures_enabled)
