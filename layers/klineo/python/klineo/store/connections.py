"""Exchange connections in the data table (pk=USER#<sub>, sk=CONN#<id>); never the secret itself.

Every read is keyed by the caller's user id, so another user's connection is simply absent.

Deleting a connection first marks it (``mark_deleting``: ``deleting_since``, and ``wind_down_id``, a
fresh token only the deleting request knows). From then on every order write of the connection is
conditional on the mark being absent (``klineo.store.order_claim``: the claims' connection check, and
the guard of protective orders' records), so no process that read the connection earlier (a reconciler
run, a strategy turn, an API request) can record, and so send, an order after the delete's wind-down
answered with the list of what it left on Binance. Only the wind-down itself, by presenting the token,
still records the stops it places while it settles the connection's orders.
"""

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel

from klineo.binance import Credentials
from klineo.errors import ErrorCategory, KlineoError
from klineo.settings import get_settings
from klineo.store import aws
from klineo.store.dynamo import Update, from_attr, get_data_item, query_prefix, to_item
from klineo.store.flags import FLAGS_SK, GLOBAL_PK, batch_get_consistent, kill_switch_of, user_pk
from klineo.store.secrets import get_credentials
from klineo.validation import CONNECTION_ID_PATTERN

__all__ = [
    "DEFAULT_MAX_LEVERAGE",
    "DEFAULT_MAX_NOTIONAL_USDT",
    "DELETING_SINCE",
    "ENABLE_REFUSED",
    "FUTURES_REFUSED",
    "FUTURES_TESTED_BY_OLD_KEY",
    "NEW_KEY_NOT_STORED",
    "NEW_KEY_REFUSED",
    "SETTINGS_REFUSED",
    "STRATEGY_REFUSED",
    "TESTED_BY_OLD_KEY",
    "TEST_REFUSED",
    "WIND_DOWN_ID",
    "Connection",
    "TradingContext",
    "add_key_failure",
    "another_account",
    "being_deleted",
    "clear_disabled",
    "connection_credentials",
    "connection_from_item",
    "connection_sk",
    "delete_connection",
    "disable_connection",
    "get_connection",
    "is_connection_id",
    "keep_binance_uid",
    "list_connections",
    "load_trading_context",
    "load_trading_contexts",
    "mark_deleting",
    "new_connection_id",
    "pin_credentials_version",
    "put_connection",
    "record_symbol_settings",
    "record_test_result",
    "refuse_deleting",
    "replace_key",
    "require_connection",
    "require_trading_context",
    "reset_key_failures",
    "set_futures_enabled",
    "update_settings",
]

# The connection item's deletion mark (module docstring): since when, and the deleting request's token.
DELETING_SINCE = "deleting_since"
WIND_DOWN_ID = "wind_down_id"
# What a connection being deleted refuses (``being_deleted``): no strategy, no new key, no switching it on
# again, no test of its keys.
STRATEGY_REFUSED = "no strategy can run on it"
NEW_KEY_REFUSED = "it takes no new key"
NEW_KEY_NOT_STORED = "The new key was not stored"
ENABLE_REFUSED = "it cannot be enabled again"
SETTINGS_REFUSED = "its settings cannot change"
FUTURES_REFUSED = "futures cannot be enabled on it"
TEST_REFUSED = "its keys are not tested"
# What a write tied to the key version tested says when another key replaced it meanwhile (``_key_replaced``):
# what ran with the old key, and what to send again.
TESTED_BY_OLD_KEY = "while this test ran, so its result is not the connection's: test again"
FUTURES_TESTED_BY_OLD_KEY = ("while futures were being enabled, so the old key's futures test is not the new "
                             "key's: enable futures again")
ENABLED_BY_OLD_KEY = "while this enable ran, so the old key's test is not the new key's: enable again"
_CONN_PREFIX = "CONN#"
_BATCH_GET_MAX = 100  # keys per BatchGetItem (DynamoDB's limit)
# Ids are made by new_connection_id(); anything else cannot exist (and an over-long key would be a
# DynamoDB ValidationException), so it is simply not found.
_CONNECTION_ID = re.compile(CONNECTION_ID_PATTERN)
# The per-connection risk limits a connection starts with (README "Risk limits and kill switches").
DEFAULT_MAX_LEVERAGE = 10
DEFAULT_MAX_NOTIONAL_USDT = Decimal("10000")
# Settings a user may change with PATCH /exchange-connections/{id}, and the futures defaults.
SETTING_NAMES = ("label", "kill_switch", "max_leverage", "max_notional_usdt", "position_mode",
                 "margin_type", "leverage")


class Connection(BaseModel):
    """One user's link to one Binance API key (the key itself lives in Secrets Manager)."""

    user_id: str
    connection_id: str
    label: str
    environment: str
    key_type: str
    api_key_masked: str
    secret_name: str
    futures_enabled: bool = False
    created_at: str
    last_test: dict[str, Any] | None = None
    futures_last_test: dict[str, Any] | None = None
    kill_switch: bool = False
    max_leverage: int = DEFAULT_MAX_LEVERAGE
    max_notional_usdt: Decimal = DEFAULT_MAX_NOTIONAL_USDT
    # Futures defaults: position_mode is the account's mode as last read or set on Binance;
    # margin_type and leverage are applied per symbol the first time the connection trades it.
    position_mode: str | None = None
    margin_type: str | None = None
    leverage: int | None = None
    # What was applied per symbol: {"BTCUSDT": {"margin_type": "isolated", "leverage": 5}}.
    symbol_settings: dict[str, dict[str, Any]] = {}
    # Key refusals in a row (``klineo.services.key_health``), and of them the permission refusals of calls
    # that trade, which only a call that traded disproves (absent on older items: 0).
    consecutive_failures: int = 0
    trading_refusals: int = 0
    disabled_at: str | None = None
    disabled_reason: str | None = None
    # The Secrets Manager version the connection signs with (None: the secret's current version).
    credentials_version: str | None = None
    # The Binance account's user id (GET /api/v3/account ``uid``) its keys belong to; None for a connection
    # made before uids were kept, until a test, an enable or a new key reads it, or when Binance said none.
    binance_uid: int | None = None
    # Set when a delete began (``mark_deleting``): no order of the connection is placed any more.
    deleting_since: str | None = None

    @property
    def disabled(self) -> bool:
        """True when repeated key failures switched the connection off."""
        return self.disabled_at is not None


@dataclass(frozen=True)
class TradingContext:
    """What an order needs to know, read in one consistent round trip."""

    connection: Connection
    user_kill_switch: bool
    global_kill_switch: bool

    @property
    def kill_switch(self) -> bool:
        """True when either switch is on."""
        return self.user_kill_switch or self.global_kill_switch


def new_connection_id() -> str:
    """A fresh random connection id (32 hex characters)."""
    return uuid.uuid4().hex


def connection_sk(connection_id: str) -> str:
    """The sort key of a connection item."""
    return f"{_CONN_PREFIX}{connection_id}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, set, tuple)):
        return [_plain(v) for v in value]
    return value


def _from_item(item: dict[str, Any]) -> Connection:
    data = {k: _plain(from_attr(v)) for k, v in item.items()}
    return Connection(
        user_id=data["pk"].removeprefix("USER#"),
        connection_id=data["connection_id"],
        label=data["label"],
        environment=data["environment"],
        key_type=data["key_type"],
        api_key_masked=data["api_key_masked"],
        secret_name=data["secret_name"],
        futures_enabled=bool(data.get("futures_enabled", False)),
        created_at=data["created_at"],
        last_test=data.get("last_test"),
        futures_last_test=data.get("futures_last_test"),
        **_optional_fields(data),
    )


def connection_from_item(item: dict[str, Any]) -> Connection:
    """A connection from its raw DynamoDB item (e.g. one a transaction handed back)."""
    return _from_item(item)


def _optional_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Settings and key-health attributes, present only once set (older items have none)."""
    names = ("kill_switch", "max_leverage", "position_mode", "margin_type", "leverage", "symbol_settings",
             "consecutive_failures", "trading_refusals", "disabled_at", "disabled_reason",
             "credentials_version", "binance_uid", DELETING_SINCE)
    fields = {name: data[name] for name in names if data.get(name) is not None}
    if data.get("max_notional_usdt") is not None:
        fields["max_notional_usdt"] = Decimal(str(data["max_notional_usdt"]))
    return fields


def _key(user_id: str, connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": user_pk(user_id)}, "sk": {"S": connection_sk(connection_id)}}


def is_connection_id(value: str) -> bool:
    """True when ``value`` has the shape of a connection id."""
    return isinstance(value, str) and _CONNECTION_ID.fullmatch(value) is not None


def get_connection(user_id: str, connection_id: str, consistent: bool = False) -> Connection | None:
    """One of the user's connections, or None (also when it belongs to someone else)."""
    if not is_connection_id(connection_id):
        return None
    item = get_data_item(_key(user_id, connection_id), consistent=consistent)
    return _from_item(item) if item else None


def _not_found(field: str | None = None) -> KlineoError:
    return KlineoError(ErrorCategory.NOT_FOUND, "connection not found", field=field)


def require_connection(user_id: str, connection_id: str, consistent: bool = False,
                       field: str | None = None) -> Connection:
    """One of the user's connections; NOT_FOUND (naming ``field``) when absent or someone else's."""
    connection = get_connection(user_id, connection_id, consistent=consistent)
    if connection is None:
        raise _not_found(field)
    return connection


def connection_credentials(connection: Connection) -> Credentials:
    """The keys the connection signs with: its secret at the version its item names."""
    return get_credentials(connection.secret_name, connection.credentials_version)


def list_connections(user_id: str) -> list[Connection]:
    """All the user's connections, oldest first."""
    connections = [_from_item(item) for item in query_prefix(user_pk(user_id), _CONN_PREFIX)]
    return sorted(connections, key=lambda c: (c.created_at, c.connection_id))


def put_connection(connection: Connection) -> None:
    """Write a NEW connection item (never overwrites an existing one)."""
    item = {**_key(connection.user_id, connection.connection_id), **to_item({
        "entity": "connection",
        **connection.model_dump(include={
            "connection_id", "label", "environment", "key_type", "api_key_masked", "secret_name",
            "futures_enabled", "created_at", "last_test", "futures_last_test", "credentials_version"}),
        **({"binance_uid": connection.binance_uid} if connection.binance_uid is not None else {}),
    })}
    aws.dynamodb().put_item(
        TableName=get_settings().data_table, Item=item, ConditionExpression="attribute_not_exists(pk)",
    )


def delete_connection(user_id: str, connection_id: str) -> bool:
    """Remove the connection item; False when there was none."""
    if not is_connection_id(connection_id):
        return False
    old = aws.dynamodb().delete_item(
        TableName=get_settings().data_table, Key=_key(user_id, connection_id), ReturnValues="ALL_OLD",
    ).get("Attributes")
    return bool(old)


def being_deleted(refused: str) -> KlineoError:
    """409 naming connection_id: the connection is being deleted (``mark_deleting``), so ``refused``."""
    return KlineoError(ErrorCategory.CONFLICT, f"The connection is being deleted: {refused}. If its delete "
                       "did not finish, send the DELETE again.", field="connection_id")


def refuse_deleting(connection: Connection, refused: str) -> None:
    """``being_deleted`` when the connection read is being deleted: ``refused`` (409 naming connection_id)."""
    if connection.deleting_since is not None:
        raise being_deleted(refused)


def another_account(what: str) -> KlineoError:
    """409 naming api_key: the key belongs to another Binance account than the connection's; ``what`` was
    refused (e.g. "The new key was not stored")."""
    return KlineoError(
        ErrorCategory.CONFLICT,
        f"{what}: this key belongs to another Binance account than the one this connection is linked to, "
        "and a connection keeps its account (its strategies and orders follow that account's positions). "
        "To trade on the other account, add the key as a new connection (POST /exchange-connections).",
        field="api_key",
    )


class _KeyReplaced(Exception):
    """The connection no longer names the key version a write was conditional on (``signed_with``)."""


# ``_update_existing``'s ``signed_with`` when the write holds whatever key version the item names.
_ANY_VERSION = object()


def _version_condition(signed_with: object) -> tuple[dict[str, str], dict[str, Any]]:
    """The attribute name and value of a condition on the item's ``credentials_version`` being
    ``signed_with`` (None: absent); none for ``_ANY_VERSION``."""
    if signed_with is _ANY_VERSION:
        return {}, {}
    values = {} if signed_with is None else {":signed_with": {"S": str(signed_with)}}
    return {"#signed_with": "credentials_version"}, values


def _update_existing(user_id: str, connection_id: str, update: Update,
                     refused: str | None = None, *, same_account: str | None = None,
                     signed_with: object = _ANY_VERSION) -> Connection:
    """One UpdateItem of an existing connection; with ``refused``, only while it is not being deleted; with
    ``same_account`` (what is refused), only while its ``binance_uid`` is absent or the one the update sets,
    else ``another_account`` (another write stored another account's uid since the caller checked it); with
    ``signed_with`` (a key version, None: unversioned), only while the item names that version, else
    ``_KeyReplaced``."""
    if not is_connection_id(connection_id):
        raise _not_found()
    condition = "attribute_exists(pk)" + (f" AND attribute_not_exists({DELETING_SINCE})" if refused else "")
    if same_account:
        condition += " AND (attribute_not_exists(#binance_uid) OR #binance_uid = :binance_uid)"
    names, values = _version_condition(signed_with)
    if names:
        condition += " AND " + ("#signed_with = :signed_with" if values
                                else "attribute_not_exists(#signed_with)")
    try:
        answer = aws.dynamodb().update_item(
            TableName=get_settings().data_table, Key=_key(user_id, connection_id),
            ConditionExpression=condition, ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD", **update.request(names, **values),
        )
    except ClientError as exc:
        if aws.error_code(exc) != aws.CONDITION_FAILED:
            raise
        old = exc.response.get("Item")
        if same_account and old and DELETING_SINCE not in old:
            raise another_account(same_account) from None
        if names and old and not (refused and DELETING_SINCE in old):
            raise _KeyReplaced from None
        if refused and old:
            raise being_deleted(refused) from None
        raise _not_found() from None
    return _from_item(answer["Attributes"])


def _key_replaced(what_ran: str) -> KlineoError:
    """Retryable 409 naming connection_id: the connection's key was replaced ``what_ran`` (e.g.
    ``TESTED_BY_OLD_KEY``), so what the old key met is not the connection's (its new key's own test was
    recorded by its replacement)."""
    return KlineoError(ErrorCategory.CONFLICT, f"The connection's key was replaced {what_ran}.",
                       retryable=True, field="connection_id")


def _switched_mode_kept(user_id: str, connection_id: str, switched_mode: str | None,
                        account_uid: int | None) -> str:
    """What a futures enable refused for a key replaced meanwhile says of the position mode its old key
    switched the account to on Binance (``switched_mode``; None: none switched, nothing said): that is the
    account's mode now, whichever key signs, so it is stored as the connection's while the item names the
    account the old key belongs to (``account_uid``, known); else the caller is told how to keep it."""
    if switched_mode is None:
        return ""
    said = f". The account is in {switched_mode} mode on Binance now (this enable set it with the old key)"
    if account_uid is not None:
        update = Update(sets={"position_mode": switched_mode, "binance_uid": account_uid})
        try:
            _update_existing(user_id, connection_id, update, same_account=FUTURES_REFUSED)
            return f"{said}, which the connection's position_mode says now"
        except KlineoError:  # another account's key, or the connection gone: not this account's mode
            pass
    return (f"{said}; the connection's position_mode was not changed (the new key's account is not known "
            f"to be the same): to keep that mode, send position_mode {switched_mode}")


def set_futures_enabled(user_id: str, connection_id: str, enabled: bool,
                        futures_last_test: dict[str, Any] | None = None,
                        settings: dict[str, Any] | None = None,
                        tested_version: object = _ANY_VERSION, *, switched_mode: str | None = None,
                        account_uid: int | None = None) -> Connection:
    """Switch futures on or off, with the futures test and settings when given, in ONE UpdateItem; on
    only while the connection is not being deleted (409); with ``tested_version`` (the key version whose
    futures test passed, None: an unversioned connection's), only while the item names it, else
    ``_key_replaced`` (FUTURES_TESTED_BY_OLD_KEY), nothing of it written: the new key was never tested on
    futures. The position mode the enable switched on Binance with the old key (``switched_mode``) is what
    Binance did, though: ``_switched_mode_kept`` stores it and says so in that 409."""
    update = _settings_update(settings or {})
    update.sets.update(futures_enabled=bool(enabled), futures_updated_at=update.sets["settings_updated_at"])
    if futures_last_test is not None:
        update.sets["futures_last_test"] = futures_last_test
    try:
        return _update_existing(user_id, connection_id, update, refused=FUTURES_REFUSED if enabled else None,
                                signed_with=tested_version)
    except _KeyReplaced:
        kept = _switched_mode_kept(user_id, connection_id, switched_mode, account_uid)
        raise _key_replaced(FUTURES_TESTED_BY_OLD_KEY + kept) from None


def _uid_if_absent(binance_uid: int | None) -> dict[str, Any]:
    """An Update's ``defaults``: the account's uid, written only where the item has none."""
    return {} if binance_uid is None else {"binance_uid": binance_uid}


def record_test_result(user_id: str, connection_id: str, result: dict[str, Any], *, futures: bool = False,
                       refused: str | None = None, binance_uid: int | None = None,
                       tested_version: object = _ANY_VERSION,
                       what_ran: str = TESTED_BY_OLD_KEY, position_mode: str | None = None) -> Connection:
    """Store a test result on the item (last_test, or futures_last_test), the account's ``position_mode`` as
    a futures test read it (when it said), and ``binance_uid`` when the item has none; NOT_FOUND when absent;
    with ``refused``, 409 when it is being deleted; with ``tested_version``
    (the key version tested, None: an unversioned connection's), only while the item names it, else
    ``_key_replaced`` saying ``what_ran``: the key was replaced while it was tested, and the old key's result
    is not the new key's (whose own test its replacement recorded)."""
    attribute = "futures_last_test" if futures else "last_test"
    mode = {} if position_mode is None else {"position_mode": position_mode}
    update = Update(sets={attribute: result, **mode}, defaults=_uid_if_absent(binance_uid))
    try:
        return _update_existing(user_id, connection_id, update, refused=refused, signed_with=tested_version)
    except _KeyReplaced:
        raise _key_replaced(what_ran) from None


def keep_binance_uid(user_id: str, connection_id: str, binance_uid: int, refused: str) -> Connection:
    """Store the account's ``binance_uid`` where the item has none (one it has is kept): the connection as
    now stored; 409 (``refused``) while it is being deleted, NOT_FOUND when absent."""
    return _update_existing(user_id, connection_id, Update(defaults=_uid_if_absent(binance_uid)),
                            refused=refused)


def load_trading_context(user_id: str, connection_id: str) -> TradingContext:
    """Connection and both kill switches in ONE consistent BatchGetItem; NOT_FOUND when no connection."""
    pair = (user_id, connection_id)
    return require_trading_context(load_trading_contexts([pair])[pair])


def require_trading_context(context: TradingContext | None) -> TradingContext:
    """``context`` itself; NOT_FOUND when there is none (the connection does not exist)."""
    if context is None:
        raise _not_found()
    return context


def load_trading_contexts(
    pairs: Iterable[tuple[str, str]],
    on_connection_item: Callable[[str, str, dict[str, Any]], None] | None = None,
) -> dict[tuple[str, str], TradingContext | None]:
    """The trading context of every (user, connection) pair, read strongly consistent together.

    Each connection, each user's flags and the global flags are read once, 100 keys per
    BatchGetItem (one call for up to 49 pairs of distinct users). None for a pair whose connection
    does not exist (or whose id cannot be one): ``load_trading_context`` answers NOT_FOUND for it.
    ``on_connection_item`` gets each connection item as read (the runner hands it to the order
    claim's connection cache, so a claim in the same batch needs no read of its own).
    """
    contexts: dict[tuple[str, str], TradingContext | None] = dict.fromkeys(pairs)
    wanted = [pair for pair in contexts if is_connection_id(pair[1])]
    if not wanted:
        return contexts
    global_flags = (GLOBAL_PK, FLAGS_SK)
    keys = list(dict.fromkeys(
        key for user_id, connection_id in wanted
        for key in ((user_pk(user_id), connection_sk(connection_id)), (user_pk(user_id), FLAGS_SK))
    ))
    keys.append(global_flags)
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for start in range(0, len(keys), _BATCH_GET_MAX):
        items.update(batch_get_consistent(keys[start:start + _BATCH_GET_MAX]))
    global_switch = kill_switch_of(items.get(global_flags))
    for user_id, connection_id in wanted:
        item = items.get((user_pk(user_id), connection_sk(connection_id)))
        if item is not None:
            if on_connection_item is not None:
                on_connection_item(user_id, connection_id, item)
            contexts[(user_id, connection_id)] = TradingContext(
                connection=_from_item(item),
                user_kill_switch=kill_switch_of(items.get((user_pk(user_id), FLAGS_SK))),
                global_kill_switch=global_switch,
            )
    return contexts


def _settings_update(changes: dict[str, Any]) -> Update:
    """The update of user settings (None removes a futures default; amounts are kept as decimal text)."""
    changes = {name: str(value) if isinstance(value, Decimal) else value for name, value in changes.items()}
    return Update.of_changes(changes, SETTING_NAMES, {"settings_updated_at": _now()})


def update_settings(user_id: str, connection_id: str, changes: dict[str, Any]) -> Connection:
    """Set user settings (``SETTING_NAMES``; None removes a futures default) in ONE UpdateItem; 409 while
    the connection is being deleted."""
    return _update_existing(user_id, connection_id, _settings_update(changes), refused=SETTINGS_REFUSED)


def record_symbol_settings(user_id: str, connection_id: str, symbol: str, applied: dict[str, Any],
                           recorded: dict[str, Any] | None = None) -> dict[str, Any]:
    """Remember the margin type and leverage applied on Binance for one symbol of the connection; returns
    the connection item as now stored (DynamoDB's attribute values), for the container's cache.

    ONE UpdateItem (conditional on the connection existing): ``recorded`` is the connection's
    symbol_settings as the caller read them. With some, the map exists and only this symbol's entry
    is set in it; without, the map is created holding it (on condition it is still absent: DynamoDB
    cannot create a map and set a path inside it in one update). A condition the item contradicts
    (the caller's read was stale) is answered with the old item, and the other shape is written.
    NOT_FOUND when the connection is gone.
    """
    if not is_connection_id(connection_id):
        raise _not_found()
    in_map = bool(recorded)
    for _ in range(2):  # the map is never removed: after one contradiction the other shape holds
        sets = {f"symbol_settings.{symbol}": applied} if in_map else {"symbol_settings": {symbol: applied}}
        update = Update(sets=sets)
        map_condition = f"{'attribute_exists' if in_map else 'attribute_not_exists'}(symbol_settings)"
        try:
            answer = aws.dynamodb().update_item(
                TableName=get_settings().data_table, Key=_key(user_id, connection_id),
                ConditionExpression=f"attribute_exists(pk) AND {map_condition}", ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD", **update.request(),
            )
            return answer["Attributes"]
        except ClientError as exc:
            if aws.error_code(exc) != aws.CONDITION_FAILED:
                raise
            old = exc.response.get("Item")
            if not old:
                raise _not_found() from None
            in_map = "symbol_settings" in old
    raise KlineoError(ErrorCategory.CONFLICT, "The connection's symbol settings changed while recording "
                      "them; try again.", retryable=True)


def _unless_key_replaced(user_id: str, connection_id: str, update: Update,
                         signed_with: object) -> Connection | None:
    """``update`` of the connection's key health, only while the item names the key version ``signed_with``
    (the one the call signed with; None: an unversioned connection's; ``_ANY_VERSION``: whichever it names):
    the item after it, or None when another key replaced that one meanwhile. What a replaced key's call met
    (a refusal, a success, a third refusal) says nothing of the new key, whose count its replacement cleared.
    NOT_FOUND when the connection is gone."""
    try:
        return _update_existing(user_id, connection_id, update, signed_with=signed_with)
    except _KeyReplaced:
        return None


# The key health counts (``klineo.services.key_health``): all refusals in a row, and the trading ones of them.
_KEY_COUNTS = {"consecutive_failures": 0, "trading_refusals": 0}


def add_key_failure(user_id: str, connection_id: str,
                    credentials_version: object = _ANY_VERSION, *, trading: bool = False) -> int | None:
    """Count one more consecutive key failure of the key version ``credentials_version`` (the one the refused
    call signed with; not given: whichever the item names) in one conditional ADD (``trading``: a permission
    refusal of a call that trades, counted in ``trading_refusals`` too): the new count, or None
    when the connection names another version now. A key replaced while the call was in flight (the old one
    revoked on Binance, as a leaked key is) failed, not the connection's new key: counting it would disable a
    connection whose key works and pause its strategies. NOT_FOUND when the connection is gone."""
    adds = {"consecutive_failures": 1, **({"trading_refusals": 1} if trading else {})}
    updated = _unless_key_replaced(user_id, connection_id, Update(adds=adds), credentials_version)
    return None if updated is None else updated.consecutive_failures


def reset_key_failures(user_id: str, connection_id: str, credentials_version: object = _ANY_VERSION, *,
                       traded: bool = True) -> None:
    """The key version ``credentials_version`` worked (not given: whichever the item names): the count of
    consecutive key failures starts again from zero (``traded``: a call that trades worked), or from its
    trading refusals, which a read does not disprove (not ``traded``: one atomic SET from the item's own
    ``trading_refusals``, 0 when it has none), only while the connection still names that version. A
    success of a key replaced while its call was in flight proves nothing of the new key: resetting would
    wipe the new key's refusals and put off the disable of a key that keeps failing."""
    update = (Update(sets=dict(_KEY_COUNTS)) if traded
              else Update(copies={"consecutive_failures": ("trading_refusals", 0)}))
    _unless_key_replaced(user_id, connection_id, update, credentials_version)


def disable_connection(user_id: str, connection_id: str, reason: str,
                       credentials_version: object = _ANY_VERSION) -> Connection | None:
    """Switch the connection off with its reason and time (kept when it is off already), only while it still
    names the key version ``credentials_version`` whose failures reached the limit (not given: whichever it
    names); None when another key replaced that one since its third failure was counted: the new key works
    as far as anyone knows, and its strategies must go on running."""
    update = Update(defaults={"disabled_at": _now(), "disabled_reason": reason})
    return _unless_key_replaced(user_id, connection_id, update, credentials_version)


def clear_disabled(user_id: str, connection_id: str, last_test: dict[str, Any],
                   binance_uid: int | None = None, tested_version: object = _ANY_VERSION,
                   futures_last_test: dict[str, Any] | None = None,
                   position_mode: str | None = None) -> Connection:
    """Switch the connection on again after a passing test: no disabled state, no failure count, the
    test's result (``last_test``, and ``futures_last_test`` when futures were tested too), the account's
    ``position_mode`` as that futures test read it (when it said), the
    account's ``binance_uid`` when the item has none; 409 while it is being deleted; with ``tested_version``
    (the key version that passed, None: an unversioned connection's), only while the item names it, else
    ``_key_replaced`` (ENABLED_BY_OLD_KEY), nothing written: the new key stays as its replacement left it
    (disabled, its own test and count), as the enable tested the old one."""
    tests = {"last_test": last_test, **({} if futures_last_test is None else
                                        {"futures_last_test": futures_last_test}),
             **({} if position_mode is None else {"position_mode": position_mode})}
    update = Update(sets={**_KEY_COUNTS, **tests},
                    removes=["disabled_at", "disabled_reason"], defaults=_uid_if_absent(binance_uid))
    try:
        return _update_existing(user_id, connection_id, update, refused=ENABLE_REFUSED,
                                signed_with=tested_version)
    except _KeyReplaced:
        raise _key_replaced(ENABLED_BY_OLD_KEY) from None


def mark_deleting(user_id: str, connection_id: str) -> str:
    """Mark the connection as being deleted (one UpdateItem; the first ``deleting_since`` is kept, a
    repeated delete gets a new token); the token that lets this delete's wind-down alone record orders.
    NOT_FOUND when the connection is gone."""
    token = uuid.uuid4().hex
    update = Update(sets={WIND_DOWN_ID: token}, defaults={DELETING_SINCE: _now()})
    _update_existing(user_id, connection_id, update)
    return token


def pin_credentials_version(user_id: str, connection_id: str, version: str) -> None:
    """Make an unversioned connection sign with ``version`` (a version already set is kept)."""
    _update_existing(user_id, connection_id, Update(defaults={"credentials_version": version}))


def replace_key(user_id: str, connection_id: str, *, key_type: str, api_key_masked: str,
                credentials_version: str, last_test: dict[str, Any],
                futures_last_test: dict[str, Any] | None = None,
                position_mode: str | None = None, binance_uid: int | None = None) -> Connection:
    """Point the connection at a new secret version (new key): one UpdateItem, failure count cleared, and
    the new key's tests as the connection's: ``last_test`` (spot) and ``futures_last_test`` (when futures are
    enabled; None removes the old key's, so the new key reads as untested on futures until it is tested).

    What was applied on Binance with the old key (per-symbol margin type and leverage) is forgotten, so
    the next order on a symbol applies them again: where no uid could be compared (a connection or an
    answer without one) the new key may belong to another account.
    ``position_mode``: the new key's account mode as its futures test read it (futures enabled).
    ``binance_uid``: the new key's account (the caller refused another account's key); None keeps the item's.
    It is written only while the item has no uid or this one: another replacement may have stored another
    account's uid since the caller read the item (two replacements of a connection without one, each
    checked against nothing), and the later one is then ``another_account`` (409 naming api_key), the
    item unchanged, so it keeps signing with the key the first stored.
    A disabled connection stays disabled: POST .../enable switches it on and resumes its strategies.
    409 while the connection is being deleted (its delete may already have deleted the secret).
    """
    sets: dict[str, Any] = {"key_type": key_type, "api_key_masked": api_key_masked,
                            "credentials_version": credentials_version, "last_test": last_test,
                            **_KEY_COUNTS}
    if position_mode is not None:
        sets["position_mode"] = position_mode
    if binance_uid is not None:
        sets["binance_uid"] = binance_uid
    removes = ["symbol_settings"]
    if futures_last_test is None:
        removes.append("futures_last_test")
    else:
        sets["futures_last_test"] = futures_last_test
    update = Update(sets=sets, removes=removes)
    return _update_existing(user_id, connection_id, update, refused=NEW_KEY_REFUSED,
                            same_account=NEW_KEY_NOT_STORED if binance_uid is not None else None)
