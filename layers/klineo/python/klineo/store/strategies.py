"""Strategies in the data table (pk=USER#<sub>, sk=STRAT#<id>), and the sparse index of active ones.

An ACTIVE strategy carries ``gsi1pk = ACTIVE#<interval>`` and ``gsi1sk = <environment>#<symbol>#<id>``;
a paused one has neither; a resume also writes ``active_since`` (epoch ms), so that the dispatcher
leaves out a candle that closed before the strategy became active (created or resumed:
``ActiveStrategy.active_from``). The dispatcher queries one index partition per interval whose candle
just closed (never a scan) and gets the strategies already sorted by (environment, symbol), the
unit that shares one klines request.

Two kinds of writers touch a strategy item, on separate attributes:
- the API (``put_new_strategy``, ``update_settings``, ``delete_strategy``): what the user chose;
- the runner (``klineo.store.runs``): ``live_position``, ``paper_position``, ``last_close``,
  ``pending`` (a live order between claim and settlement), ``key_failures``, ``failed_runs``
  (``klineo.runner.failures``), ``reentry_block``, ``protective``, ``last_fill_ms``, ``forced_booked``,
  ``unknown_close``, and ``status``
  when it pauses a strategy whose keys or runs keep failing (with ``leverage_refused`` for a leverage its
  symbol refuses).
Every write is an UpdateItem of its own attributes (or a conditional put of a new item), so
neither side overwrites the other's fields.

Migration of strategies stored before the trading settings existed (issue 13): none is rewritten.
``from_item`` reads a missing attribute as its documented default (direction "both", no
leverage/margin type of its own = the connection's, sizing ``size`` as stored, no stop-loss or
take-profit, paper balance 10000 USDT, realised PnL 0), which is exactly how they traded before.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from klineo.binance import ErrorCategory
from klineo.errors import KlineoError
from klineo.settings import get_settings
from klineo.store import aws
from klineo.store.dynamo import (
    Update,
    conditional_write,
    from_attr,
    get_data_item,
    query_items,
    query_prefix,
    to_attr,
    to_item,
    transact,
)
from klineo.store.flags import batch_get_consistent, user_pk
from klineo.timestamps import iso_epoch_ms, utc_now_iso

__all__ = [
    "ACTIVE",
    "INDEX_NAME",
    "MODES",
    "PAPER_POSITION_OPEN",
    "PAUSED",
    "STRATEGY_SK_PREFIX",
    "ActiveStrategy",
    "CreateKey",
    "CreateKeyHolder",
    "PendingOrder",
    "Strategy",
    "TradingSettings",
    "active_index_keys",
    "delete_strategy",
    "from_item",
    "from_snapshot",
    "get_create_key",
    "get_strategies_consistent",
    "get_strategy",
    "list_strategies",
    "new_strategy_id",
    "now_iso",
    "pause_strategies",
    "pause_strategy",
    "put_new_strategy",
    "query_active",
    "query_active_snapshots",
    "resume_strategies_unchanged",
    "snapshot_of",
    "strategy_key",
    "update_settings",
]

INDEX_NAME = "gsi1"
STRATEGY_SK_PREFIX = "STRAT#"
# A POST /strategies Idempotency-Key's record (pk=USER#<sub>): sk=STRATKEY#<sha256 of the key>, with a ttl.
CREATE_KEY_SK_PREFIX = "STRATKEY#"
ACTIVE = "active"
PAUSED = "paused"
MODES = ("paper", "live")
_ACTIVE_PREFIX = "ACTIVE#"
_BATCH_GET_MAX = 100
DEFAULT_PAPER_BALANCE = Decimal(10_000)
# Why a new paper balance is refused while the paper position is open (the balance is the paper account's
# starting capital: changing it restarts the ledger, which an open position would leave half-counted).
PAPER_POSITION_OPEN = ("paper_balance_usdt is the paper account's starting capital and restarts its ledger: "
                       "change it once the strategy's paper position is closed")
CHANGED_MEANWHILE = ("the strategy changed after this request read it (the runner, the connection or another "
                     "request wrote it): nothing was changed; read it again and send the change again")
DELETED_NOTHING = ("the strategy changed while it was being deleted (a runner turn or another request wrote "
                   "it, e.g. re-priced its stops); nothing was deleted: send the DELETE again")
SETTING_NAMES = ("direction", "leverage", "margin_type", "quote_size_usdt", "size_pct", "stop_loss_pct",
                 "take_profit_pct", "trailing_stop_pct", "paper_balance_usdt")



def now_iso() -> str:
    """The current UTC time as an ISO-8601 string (milliseconds: a strategy's ``updated_at`` is the
    version the runner's writes are conditional on, so two writes in one second must differ)."""
    return utc_now_iso()


def new_strategy_id() -> str:
    """A fresh random strategy id (32 hex characters)."""
    return uuid.uuid4().hex


def strategy_key(user_id: str, strategy_id: str) -> dict[str, Any]:
    """The primary key of a strategy item."""
    return {"pk": {"S": user_pk(user_id)}, "sk": {"S": f"{STRATEGY_SK_PREFIX}{strategy_id}"}}


def active_index_keys(interval: str, environment: str, symbol: str, strategy_id: str) -> tuple[str, str]:
    """(gsi1pk, gsi1sk) of an active strategy: one index partition per interval, sorted by market."""
    return f"{_ACTIVE_PREFIX}{interval}", f"{environment}#{symbol}#{strategy_id}"


def _integral(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal: whole ones become int again (parameters, counters)."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


@dataclass(frozen=True)
class PendingOrder:
    """A live order claimed for one candle and not yet settled (sent, or about to be)."""

    close_time: int
    client_order_id: str
    side: str
    quantity: Decimal
    reduce_only: bool
    position_before: Decimal
    claimed_at_ms: int
    lease_until_ms: int
    # The decision behind the order (signal, reason, indicators, target_position): the run is
    # written once, when the order settles, possibly by a later attempt that never saw the decision;
    # and, when the claim made more events than its signal and order_submit, their counts
    # (``events_made``: that attempt's settle numbers its own events on from them).
    facts: dict[str, Any] = field(default_factory=dict)
    # BOTH (one-way mode), or LONG / SHORT on a hedge-mode account (klineo.runner.planning.order_legs).
    position_side: str = "BOTH"

    def as_attr_value(self) -> dict[str, Any]:
        """The plain dict stored under ``pending`` (``position_side`` only when not BOTH)."""
        hedge = {"position_side": self.position_side} if self.position_side != "BOTH" else {}
        return {
            **hedge,
            "facts": self.facts,
            "close_time": self.close_time,
            "client_order_id": self.client_order_id,
            "side": self.side,
            "quantity": self.quantity,
            "reduce_only": self.reduce_only,
            "position_before": self.position_before,
            "claimed_at_ms": self.claimed_at_ms,
            "lease_until_ms": self.lease_until_ms,
        }

    @classmethod
    def from_value(cls, value: Mapping[str, Any]) -> PendingOrder:
        """Inverse of ``as_attr_value`` (numbers arrive as Decimal)."""
        return cls(
            close_time=int(value["close_time"]),
            client_order_id=str(value["client_order_id"]),
            side=str(value["side"]),
            quantity=Decimal(value["quantity"]),
            reduce_only=bool(value.get("reduce_only", False)),
            position_before=Decimal(value["position_before"]),
            claimed_at_ms=int(value["claimed_at_ms"]),
            lease_until_ms=int(value["lease_until_ms"]),
            facts=dict(value.get("facts") or {}),
            position_side=str(value.get("position_side") or "BOTH"),
        )


@dataclass(frozen=True)
class TradingSettings:
    """A strategy's trading settings besides ``size`` (``klineo.models.strategies``); defaults = legacy."""

    direction: str = "both"
    leverage: int | None = None
    margin_type: str | None = None  # "ISOLATED" | "CROSSED"
    quote_size_usdt: Decimal | None = None
    size_pct: Decimal | None = None
    stop_loss_pct: Decimal | None = None
    take_profit_pct: Decimal | None = None
    trailing_stop_pct: Decimal | None = None
    paper_balance_usdt: Decimal = DEFAULT_PAPER_BALANCE

    def as_attrs(self) -> dict[str, Any]:
        """The item attributes (None ones left out by ``to_item``)."""
        return {name: getattr(self, name) for name in SETTING_NAMES}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> TradingSettings:
        """Read from an item's plain values; a missing attribute is its default (the migration)."""
        def number(name: str) -> Decimal | None:
            return Decimal(data[name]) if data.get(name) is not None else None

        return cls(
            direction=str(data.get("direction") or "both"),
            leverage=int(data["leverage"]) if data.get("leverage") is not None else None,
            margin_type=data.get("margin_type"),
            quote_size_usdt=number("quote_size_usdt"), size_pct=number("size_pct"),
            stop_loss_pct=number("stop_loss_pct"), take_profit_pct=number("take_profit_pct"),
            trailing_stop_pct=number("trailing_stop_pct"),
            paper_balance_usdt=number("paper_balance_usdt") or DEFAULT_PAPER_BALANCE,
        )


@dataclass(frozen=True)
class Strategy:
    """One user's strategy: what to run (user settings) and where the runner stands (runner state)."""

    user_id: str
    strategy_id: str
    connection_id: str
    environment: str
    symbol: str
    interval: str
    type: str
    parameters: dict[str, Any]
    size: Decimal | None
    mode: str
    status: str
    created_at: str
    updated_at: str
    status_reason: str | None = None
    settings: TradingSettings = field(default_factory=TradingSettings)
    live_position: Decimal = Decimal(0)
    paper_position: Decimal = Decimal(0)
    last_close: int | None = None
    key_failures: int = 0
    # Consecutive failed runs that count towards a pause (klineo.runner.failures); absent = 0.
    failed_runs: int = 0
    pending: PendingOrder | None = None
    # Runner state of issue 13: the signal that may not re-open a position closed outside the
    # strategy, the protective orders wanted/armed for the live position, and the last own fill.
    reentry_block: str | None = None
    # The mode whose position that close was of (None: stored before it was recorded, both modes).
    reentry_block_mode: str | None = None
    protective: dict[str, Any] | None = None
    last_fill_ms: int | None = None
    # The liquidation / ADL orders a correction of the live position counted last (klineo.runner.positions:
    # {"time": ms, "order_ids": [...]}), never counted again.
    forced_booked: dict[str, Any] | None = None
    # A close of the live position whose cause could not be read (klineo.runner.positions: {"at": the
    # position_closed event's time, "stops": the clientAlgoIds to read, "reads": turns that read them since}).
    unknown_close: dict[str, Any] | None = None
    paper_book: dict[str, Any] | None = None  # klineo.runner.paper: entry_price, gross_pnl, fees
    live_book: dict[str, Any] | None = None  # klineo.runner.pnl: entry_price, realised_pnl, fees
    # The leverage its symbol refused when the runner paused it for that (leverage_above_symbol_max):
    # {"leverage": N, "maximum": M or None (Binance's -4028: not known)}, written with the pause and removed
    # by the resume, which it refuses while the leverage is not lowered (klineo.services.strategy_updates).
    leverage_refused: dict[str, Any] | None = None

    @property
    def active(self) -> bool:
        """True when the runner should run it."""
        return self.status == ACTIVE

    @property
    def has_turn(self) -> bool:
        """True when the runner has work on it: active, or paused with a live order in flight (claimed, maybe
        sent, before the pause), which is still looked up and settled as Binance did it, never sent again."""
        return self.active or self.pending is not None

    @property
    def mode_reentry_block(self) -> str | None:
        """The side the current mode's position may not re-open (``reentry_block``): a close of the other
        mode's position never keeps this one out (paper and live positions are tracked apart)."""
        return self.reentry_block if self.reentry_block_mode in (None, self.mode) else None

    @property
    def position(self) -> Decimal:
        """The position the strategy manages in its current mode (live: real, paper: simulated)."""
        return self.live_position if self.mode == "live" else self.paper_position

    def to_item(self) -> dict[str, Any]:
        """The full DynamoDB item (used only when creating)."""
        item = {**strategy_key(self.user_id, self.strategy_id), **to_item({
            "entity": "strategy", "strategy_id": self.strategy_id, "user_id": self.user_id,
            "connection_id": self.connection_id, "environment": self.environment, "symbol": self.symbol,
            "interval": self.interval, "type": self.type, "parameters": self.parameters, "size": self.size,
            "mode": self.mode, "status": self.status, "created_at": self.created_at,
            "updated_at": self.updated_at, "live_position": self.live_position,
            "paper_position": self.paper_position, "key_failures": self.key_failures,
            "failed_runs": self.failed_runs or None,
            "status_reason": self.status_reason or None, "last_close": self.last_close,
            **self.settings.as_attrs(),
        })}
        if self.active:
            pk, sk = active_index_keys(self.interval, self.environment, self.symbol, self.strategy_id)
            item["gsi1pk"], item["gsi1sk"] = {"S": pk}, {"S": sk}
        return item


def from_item(item: Mapping[str, Any]) -> Strategy:
    """A strategy from its raw DynamoDB item."""
    data = {k: from_attr(v) for k, v in item.items()}
    pending = data.get("pending")
    return Strategy(
        user_id=str(data["user_id"]),
        strategy_id=str(data["strategy_id"]),
        connection_id=str(data["connection_id"]),
        environment=str(data["environment"]),
        symbol=str(data["symbol"]),
        interval=str(data["interval"]),
        type=str(data["type"]),
        parameters=_integral(dict(data.get("parameters") or {})),
        size=Decimal(data["size"]) if data.get("size") is not None else None,
        mode=str(data["mode"]),
        status=str(data["status"]),
        created_at=str(data["created_at"]),
        updated_at=str(data["updated_at"]),
        status_reason=data.get("status_reason"),
        settings=TradingSettings.from_data(data),
        live_position=Decimal(data.get("live_position", 0)),
        paper_position=Decimal(data.get("paper_position", 0)),
        last_close=int(data["last_close"]) if data.get("last_close") is not None else None,
        key_failures=int(data.get("key_failures", 0)),
        failed_runs=int(data.get("failed_runs", 0)),
        pending=PendingOrder.from_value(pending) if pending else None,
        reentry_block=data.get("reentry_block"),
        reentry_block_mode=data.get("reentry_block_mode"),
        protective=_integral(dict(data["protective"])) if data.get("protective") else None,
        paper_book=dict(data["paper_book"]) if data.get("paper_book") else None,
        live_book=dict(data["live_book"]) if data.get("live_book") else None,
        last_fill_ms=int(data["last_fill_ms"]) if data.get("last_fill_ms") is not None else None,
        forced_booked=dict(data["forced_booked"]) if data.get("forced_booked") else None,
        unknown_close=_integral(dict(data["unknown_close"])) if data.get("unknown_close") else None,
        leverage_refused=dict(data["leverage_refused"]) if data.get("leverage_refused") else None,
    )


@dataclass(frozen=True)
class CreateKey:
    """The Idempotency-Key of a POST /strategies, as stored: digests of the key and of the body it came with
    (the key itself is never stored; the user scopes it: its record lives in the user's partition)."""

    key_digest: str
    body_digest: str


@dataclass(frozen=True)
class CreateKeyHolder:
    """What a key's record holds: the strategy its first create made, and that create's body digest."""

    strategy_id: str
    body_digest: str


def _create_key_key(user_id: str, key: CreateKey) -> dict[str, Any]:
    return {"pk": {"S": user_pk(user_id)}, "sk": {"S": f"{CREATE_KEY_SK_PREFIX}{key.key_digest}"}}


def _holder(item: Mapping[str, Any] | None) -> CreateKeyHolder | None:
    if not item:
        return None
    return CreateKeyHolder(strategy_id=item["strategy_id"]["S"], body_digest=item["body_digest"]["S"])


def get_create_key(user_id: str, key: CreateKey) -> CreateKeyHolder | None:
    """The record of the user's create key (consistent read); None when unused or expired (its ``ttl`` past,
    not yet swept by DynamoDB)."""
    item = get_data_item(_create_key_key(user_id, key), consistent=True)
    if item is None or int(item.get("ttl", {}).get("N", "0")) < time.time():
        return None
    return _holder(item)


def _create_key_put(strategy: Strategy, key: CreateKey) -> dict[str, Any]:
    """The Put of a create key's record: only while the key is free (never used, or expired)."""
    from klineo.store.events import retention_ttl  # events imports this module

    item = {**_create_key_key(strategy.user_id, key), "entity": {"S": "strategy_create_key"},
            "strategy_id": {"S": strategy.strategy_id}, "body_digest": {"S": key.body_digest},
            "created_at": {"S": strategy.created_at}, "ttl": {"N": str(retention_ttl())}}
    return {"Put": {"TableName": get_settings().data_table, "Item": item,
                    "ConditionExpression": "attribute_not_exists(pk) OR #ttl < :now",
                    "ExpressionAttributeNames": {"#ttl": "ttl"},
                    "ExpressionAttributeValues": {":now": {"N": str(int(time.time()))}},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}


def put_new_strategy(strategy: Strategy, key: CreateKey | None = None) -> CreateKeyHolder | None:
    """Write a NEW strategy item (never overwrites); None when written.

    With ``key`` (a create's Idempotency-Key), the strategy and the key's record are ONE TransactWriteItems:
    never a strategy without its key's record nor the other way round. When the key is taken (another create
    with it committed first), nothing is written and its record is answered.
    """
    put = {"TableName": get_settings().data_table, "Item": strategy.to_item(),
           "ConditionExpression": "attribute_not_exists(pk)"}
    if key is None:
        aws.dynamodb().put_item(**put)
        return None
    failed = transact([("strategy", {"Put": put}), ("key", _create_key_put(strategy, key))])
    if "key" in failed:
        return _holder(failed["key"])
    if failed:  # a random 128-bit id that exists already
        raise KlineoError(ErrorCategory.CONFLICT, "a strategy with this id exists; send the request again",
                          retryable=True)
    return None


def get_strategy(user_id: str, strategy_id: str, *, consistent: bool = False) -> Strategy | None:
    """One of the user's strategies, or None (also when it belongs to someone else)."""
    item = get_data_item(strategy_key(user_id, strategy_id), consistent=consistent)
    return from_item(item) if item else None


def list_strategies(user_id: str) -> list[Strategy]:
    """All the user's strategies, oldest first."""
    found = [from_item(item) for item in query_prefix(user_pk(user_id), STRATEGY_SK_PREFIX)]
    return sorted(found, key=lambda s: (s.created_at, s.strategy_id))


def update_settings(
    user_id: str,
    strategy_id: str,
    current: Strategy,
    *,
    changes: Mapping[str, Any],
    paper_reset: dict[str, Any] | None = None,
    events: Sequence[dict[str, Any]] = (),
    if_unchanged: bool = False,
) -> Strategy:
    """Apply the user's choices (type, parameters, sizing, mode, status, trading settings) in ONE write, and
    answer the strategy as written.

    Keeps the active index in step with ``status``; NOT_FOUND when the item vanished meanwhile.
    ``paper_reset``: the Put of the ``paper_reset`` event of a new ``paper_balance_usdt``.
    ``events``: the Puts of the events the change makes (``klineo.store.events.event_put``: paused, resumed).
    With either, the write is ONE TransactWriteItems (``_write_with_events``: both land or neither does),
    then the strategy is read back (a transaction answers no item); else ONE UpdateItem answers it.
    ``if_unchanged``: only while the strategy is as ``current`` (its ``updated_at``, which every write of it
    moves), a retryable CONFLICT (``CHANGED_MEANWHILE``) when it changed meanwhile, nothing written.
    """
    update = _settings_update(strategy_id, current, changes)
    seen = _seen(current) if if_unchanged else {}
    condition = "attribute_exists(pk) AND #updated_at = :seen" if seen else "attribute_exists(pk)"
    if paper_reset is not None or events:
        key = strategy_key(user_id, strategy_id)
        puts = [*([paper_reset] if paper_reset is not None else []), *events]
        _write_with_events(key, update, puts, seen, paper_reset=paper_reset is not None)
        item = get_data_item(key, consistent=True)
        if item is None:  # deleted right after the write
            raise KlineoError(ErrorCategory.NOT_FOUND, "strategy not found")
        return from_item(item)
    request: dict[str, Any] = {
        "TableName": get_settings().data_table,
        "Key": strategy_key(user_id, strategy_id),
        "ConditionExpression": condition,
        "ReturnValues": "ALL_NEW",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        **update.request(**seen),
    }
    try:
        answer = aws.dynamodb().update_item(**request)
    except ClientError as exc:
        if aws.error_code(exc) != aws.CONDITION_FAILED:
            raise
        if exc.response.get("Item"):
            raise _changed_meanwhile() from None
        raise KlineoError(ErrorCategory.NOT_FOUND, "strategy not found") from None
    return from_item(answer["Attributes"])


def _settings_update(strategy_id: str, current: Strategy, changes: Mapping[str, Any]) -> Update:
    """The update of ``update_settings``: the changes, ``updated_at``, the active index kept in step with the
    status, and a resume's fresh counts of consecutive key failures and failed runs."""
    allowed = {"type", "parameters", "size", "mode", "status", "status_reason", *SETTING_NAMES}
    update = Update.of_changes(changes, allowed, {"updated_at": now_iso()})
    status = changes.get("status", current.status)
    if status == ACTIVE:
        pk, sk = active_index_keys(current.interval, current.environment, current.symbol, strategy_id)
        update.sets.update(gsi1pk=pk, gsi1sk=sk)
    else:
        update.removes.extend(["gsi1pk", "gsi1sk"])
    if changes.get("status") == ACTIVE and current.status != ACTIVE:
        update.sets["active_since"] = int(time.time() * 1000)  # not run on a candle closed before
        update.sets["key_failures"] = 0  # resuming starts a fresh count of consecutive key failures
        update.removes.append("failed_runs")  # and of consecutive failed runs (absent = 0)
        update.removes.append("leverage_refused")  # allowed to resume: its leverage is one the symbol takes
    return update


def _seen(current: Strategy) -> dict[str, Any]:
    """The value of a write's ``#updated_at = :seen`` condition: only while the strategy is as ``current``."""
    return {":seen": {"S": current.updated_at}}


def _changed_meanwhile(message: str = CHANGED_MEANWHILE) -> KlineoError:
    """The retryable CONFLICT of a write made only while the strategy is as read, when it was not."""
    return KlineoError(ErrorCategory.CONFLICT, message, retryable=True)


def _write_with_events(key: dict[str, Any], update: Update, puts: list[dict[str, Any]],
                       seen: dict[str, Any], *, paper_reset: bool) -> None:
    """``update`` of the strategy at ``key`` and the event ``puts`` in ONE TransactWriteItems (at most a few:
    far below its 100 items). The update's condition: the item exists (and, with ``seen``, ``updated_at`` is
    still as read). ``paper_reset``: ``update`` sets a new paper balance, so the paper ledger restarts from
    it: the paper book (realised PnL, fees, entry) removed, only while the paper position is still flat.
    NOT_FOUND when the item vanished, CONFLICT naming ``paper_balance_usdt`` when the runner opened a paper
    position meanwhile, ``update_settings``'s retryable one when it changed else; nothing written then."""
    condition, values = "attribute_exists(pk)", dict(seen)
    if paper_reset:
        update.removes.append("paper_book")
        condition += " AND (attribute_not_exists(paper_position) OR paper_position = :flat)"
        values[":flat"] = to_attr(0)
    write = {"Update": {
        "TableName": get_settings().data_table, "Key": key,
        "ConditionExpression": condition + (" AND #updated_at = :seen" if seen else ""),
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        **update.request(**values),
    }}
    failed = transact([("strategy", write), *(("event", put) for put in puts)])
    if not failed:
        return
    item = failed.get("strategy")
    if item is None:
        raise KlineoError(ErrorCategory.NOT_FOUND, "strategy not found")
    if paper_reset and from_item(item).paper_position != 0:
        raise KlineoError(ErrorCategory.CONFLICT, PAPER_POSITION_OPEN, field="paper_balance_usdt")
    raise _changed_meanwhile()


def delete_strategy(user_id: str, strategy_id: str, now_ms: int | None = None, *,
                    unsettled_ok: bool = False, seen: str | None = None) -> None:
    """Remove a strategy; NOT_FOUND when absent, CONFLICT while a worker is sending one of its live orders
    (its lease held) and, unless ``unsettled_ok`` (its connection going away, whose wind-down handles its
    orders), while it holds a live order whose outcome is not settled yet (``pending``): deleted, a fill of
    it would reach no books and an entry would never get its stops. ``seen``: its ``updated_at`` as read, the
    delete written only while it still is; a retryable CONFLICT when a write came between (a runner turn that
    re-priced its stops may have left one to cancel that the read did not show)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    condition = "attribute_exists(pk) AND attribute_not_exists(pending)"
    values: dict[str, Any] = {}
    if unsettled_ok:
        condition = ("attribute_exists(pk) AND "
                     "(attribute_not_exists(pending) OR pending.lease_until_ms < :now)")
        values[":now"] = to_attr(now_ms)
    names: dict[str, Any] = {}
    if seen is not None:
        condition += " AND #updated_at = :seen"
        values[":seen"] = {"S": seen}
        names = {"ExpressionAttributeNames": {"#updated_at": "updated_at"}}
    try:
        aws.dynamodb().delete_item(
            TableName=get_settings().data_table, Key=strategy_key(user_id, strategy_id),
            ConditionExpression=condition, ReturnValuesOnConditionCheckFailure="ALL_OLD", **names,
            **({"ExpressionAttributeValues": values} if values else {}),
        )
    except ClientError as exc:
        if aws.error_code(exc) != aws.CONDITION_FAILED:
            raise
        item = exc.response.get("Item")
        if not item:
            raise KlineoError(ErrorCategory.NOT_FOUND, "strategy not found") from None
        pending = from_item(item).pending
        if pending is not None and (not unsettled_ok or pending.lease_until_ms >= now_ms):
            raise _in_flight(pending, now_ms) from None
        raise _changed_meanwhile(DELETED_NOTHING) from None  # only ``seen`` is left to have refused it



def _in_flight(pending: PendingOrder | None, now_ms: int) -> KlineoError:
    """The CONFLICT of a delete refused for the strategy's live order in flight."""
    if pending is None or pending.lease_until_ms >= now_ms:
        return KlineoError(ErrorCategory.CONFLICT,
                           "a live order of this strategy is being sent right now; try again in a minute")
    return KlineoError(
        ErrorCategory.CONFLICT,
        f"the strategy's live order {pending.client_order_id} is in flight and could not be settled now "
        "(Binance not answering its lookup, or the connection disabled); the runner settles it within "
        "minutes once it can (its fill booked, an entry's stops placed): send the DELETE again then",
    )


def pause_strategy(user_id: str, strategy_id: str, reason: str, event: dict[str, Any] | None = None) -> bool:
    """Pause an active strategy for a runner reason (off the active index); False when it is no longer
    active (paused meanwhile: its reason, the user's say, is kept) or no longer exists. ``event``: the Put
    of its ``paused`` event (``klineo.store.events.event_put``), written with the pause in ONE
    TransactWriteItems: never a pause without its event, nor an event without its pause."""
    update = Update(sets={"status": PAUSED, "status_reason": reason, "updated_at": now_iso()},
                    removes=["gsi1pk", "gsi1sk"])
    request = {"TableName": get_settings().data_table, "Key": strategy_key(user_id, strategy_id),
               "ConditionExpression": "attribute_exists(pk) AND #status = :active",
               **update.request(**{":active": {"S": ACTIVE}})}
    if event is None:
        return conditional_write(aws.dynamodb().update_item, **request)
    return not transact([("strategy", {"Update": request}), ("event", event)])


def pause_strategies(user_id: str, strategy_ids: Sequence[str], reason: str,
                     events: Sequence[dict[str, Any]] | None = None) -> list[bool]:
    """``pause_strategy`` of each (with ``events[i]``, its event's Put, when given), answered in the order
    given: one conditional write each, up to ``aws.IN_FLIGHT`` in flight at once (a connection's thousands
    of strategies, one after another at ~5-10 ms each, ran its 20 s delete or disabling call out of time).
    A failed write is raised as it is, those done stay done, and those not yet started are not sent."""
    pairs = list(zip(strategy_ids, events if events is not None else [None] * len(strategy_ids), strict=True))
    return aws.concurrently(lambda pair: pause_strategy(user_id, pair[0], reason, pair[1]), pairs)


def resume_strategies_unchanged(user_id: str, strategies: Sequence[Strategy],
                                events: Sequence[dict[str, Any]]) -> list[bool]:
    """Make each active again (its ``status_reason`` cleared) only while it is as given (``update_settings``'s
    ``if_unchanged`` condition), with ``events[i]``, the Put of its ``resumed`` event, in the same
    TransactWriteItems; answered in the order given as ``pause_strategies`` is: False for one deleted
    (NOT_FOUND) or changed (CONFLICT) meanwhile, left as it is."""
    pairs = list(zip(strategies, events, strict=True))
    return aws.concurrently(lambda pair: _resume_unchanged(user_id, *pair), pairs)


def _resume_unchanged(user_id: str, strategy: Strategy, event: dict[str, Any]) -> bool:
    """One resume of ``resume_strategies_unchanged``, no read back (the answer is only whether it resumed);
    False when gone or changed since read: the user's say since then stands."""
    update = _settings_update(strategy.strategy_id, strategy, {"status": ACTIVE, "status_reason": None})
    try:
        _write_with_events(strategy_key(user_id, strategy.strategy_id), update, [event], _seen(strategy),
                           paper_reset=False)
    except KlineoError as exc:
        if exc.category not in (ErrorCategory.NOT_FOUND, ErrorCategory.CONFLICT):
            raise
        return False
    return True


def _active_items(interval: str) -> Iterator[dict[str, Any]]:
    """The raw items of every active strategy on ``interval`` (paged Query of the sparse index)."""
    return query_items(
        TableName=get_settings().data_table,
        IndexName=INDEX_NAME,
        KeyConditionExpression="gsi1pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"{_ACTIVE_PREFIX}{interval}"}},
    )


def query_active(interval: str) -> Iterator[Strategy]:
    """Every active strategy on ``interval``, from the sparse index (paged Query, never a Scan)."""
    for item in _active_items(interval):
        yield from_item(item)


# ---------------------------------------------------------------------- snapshots (the runner's messages)
# Left out of a snapshot: the keys, the index attributes and what the work message already says.
_SNAPSHOT_OMITS = frozenset({"pk", "sk", "gsi1pk", "gsi1sk", "entity", "user_id", "strategy_id",
                             "environment", "symbol", "interval"})


@dataclass(frozen=True)
class ActiveStrategy:
    """An active strategy as the dispatcher needs it: its key, market, last candle and snapshot."""

    user_id: str
    strategy_id: str
    environment: str
    symbol: str
    last_close: int | None
    # The item's own attributes (``snapshot_of``); None while a live order is pending (the worker
    # must read such a strategy strongly consistent anyway).
    snapshot: dict[str, Any] | None
    created_at: str | None = None
    # When it was last resumed (epoch ms); None when it never was.
    active_since: int | None = None

    def active_from(self) -> int | None:
        """Epoch ms since which it is active: its last resume, else its creation (None: not known)."""
        if self.active_since is not None:
            return self.active_since
        try:
            return iso_epoch_ms(self.created_at) if self.created_at else None
        except ValueError:  # not ours to judge here: the strategy is dispatched as it was before
            return None


def snapshot_of(item: Mapping[str, Any]) -> dict[str, Any]:
    """A strategy item's attributes as DynamoDB wrote them, less what a work message says already.

    Lossless (numbers stay decimal text) and decoded by ``from_item`` itself (``from_snapshot``).
    It holds no secret: a strategy item names its connection, never a key.
    """
    return {name: value for name, value in item.items() if name not in _SNAPSHOT_OMITS}


def from_snapshot(
    snapshot: Mapping[str, Any], *, user_id: str, strategy_id: str, environment: str, symbol: str,
    interval: str,
) -> Strategy:
    """The strategy a snapshot describes, with the key and market its work message names."""
    known = {"user_id": user_id, "strategy_id": strategy_id, "environment": environment, "symbol": symbol,
             "interval": interval}
    return from_item({**snapshot, **{name: {"S": value} for name, value in known.items()}})


def query_active_snapshots(interval: str) -> Iterator[ActiveStrategy]:
    """Every active strategy on ``interval`` with its snapshot, from ONE paged Query of the sparse index."""
    for item in _active_items(interval):
        last_close, since = item.get("last_close"), item.get("active_since")
        yield ActiveStrategy(
            user_id=item["user_id"]["S"], strategy_id=item["strategy_id"]["S"],
            environment=item["environment"]["S"], symbol=item["symbol"]["S"],
            last_close=int(last_close["N"]) if last_close else None,
            snapshot=None if "pending" in item else snapshot_of(item),
            created_at=item.get("created_at", {}).get("S"), active_since=int(since["N"]) if since else None,
        )


def get_strategies_consistent(
    refs: list[tuple[str, str]], *, unreadable: set[tuple[str, str]] | None = None,
) -> dict[tuple[str, str], Strategy]:
    """Strategies by (user_id, strategy_id), strongly consistent, 100 keys per BatchGetItem.

    An item ``from_item`` cannot read raises, unless ``unreadable`` is given: its key is added there
    instead, and the other strategies are still returned.
    """
    found: dict[tuple[str, str], Strategy] = {}
    unique = list(dict.fromkeys(refs))
    for start in range(0, len(unique), _BATCH_GET_MAX):
        chunk = unique[start:start + _BATCH_GET_MAX]
        keys = [(user_pk(user), f"{STRATEGY_SK_PREFIX}{sid}") for user, sid in chunk]
        items = batch_get_consistent(keys)
        for (user, sid), key in zip(chunk, keys, strict=True):
            if key not in items:
                continue
            try:
                found[(user, sid)] = from_item(items[key])
            except (KeyError, TypeError, ValueError, ArithmeticError):
                if unreadable is None:
                    raise
                unreadable.add((user, sid))
    return found
