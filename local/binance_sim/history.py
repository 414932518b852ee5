"""Futures history: userTrades, allOrders and forceOrders, trades injected by tests, and retention.

Tests inject what Binance does without us (docs/binance-facts.md §8):
- a liquidation: a LIMIT IOC order with clientOrderId `autoclose-<digits>`;
- an ADL: the same with clientOrderId `adl_autoclose`;
- a "manual" trade: a MARKET order as if placed in Binance's own app (clientOrderId `web_...`).
A liquidation or ADL injected with `"listed": false` fills at once (its position closed, forceOrders and the
order say FILLED) but userTrades does not list its trades yet, as when Binance's trade history lags behind
its engine; `list_trades()` lists them from then on.
Retention (§9): an order CANCELED or EXPIRED with nothing filled is forgotten 3 days after it was
created, every order after 90 days. `age(ms)` makes every record older by `ms` and purges; that is
the simulator's test clock for retention (the server clock itself stays, so signatures still work).
"""

from __future__ import annotations

import secrets
from decimal import Decimal

from . import errors
from .accounts import DemoAccount
from .errors import ApiError
from .futures import ZERO, FuturesAccount, FuturesExchange, FuturesOrder, plain
from .market import get_symbol

__all__ = ["HistoryService"]

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
UNFILLED_KEPT_MS = 3 * DAY_MS
ORDER_KEPT_MS = 90 * DAY_MS
# userTrades answers "the past 3 months" (change log 2026-08-26): read as 90 days, like orders (§14).
TRADES_KEPT_MS = 90 * DAY_MS
FORCED_KINDS = {"liquidation": "LIQUIDATION", "adl": "ADL"}


def _window(params: dict, now_ms: float) -> tuple[int, int]:
    """startTime/endTime; by default the 7 days before endTime (or now)."""
    end = int(params.get("endTime") or now_ms)
    start = int(params.get("startTime") or end - WEEK_MS)
    return start, end


def _trades_window(params: dict, now_ms: float) -> tuple[int, int]:
    """userTrades' window: `fromId` is refused with a time (-1128), a span over 7 days too (-1127); the
    codes are the error code page's generic ones, which of them Binance sends here is unverified (§14)."""
    timed = params.get("startTime") or params.get("endTime")
    if timed and params.get("fromId"):
        raise errors.bad_combination()
    start, end = _window(params, now_ms)
    if params.get("startTime") and params.get("endTime") and end - start > WEEK_MS:
        raise errors.interval_too_long(WEEK_MS // 3_600_000)
    if params.get("startTime") and not params.get("endTime"):  # its 7 days at most (unverified, §14)
        end = min(end, start + WEEK_MS)
    return start, end


def _limit(params: dict, default: int, maximum: int) -> int:
    try:
        return max(1, min(int(params.get("limit") or default), maximum))
    except ValueError:
        raise errors.mandatory("limit") from None


def _symbol(params: dict) -> str:
    symbol = params.get("symbol")
    if not symbol:
        raise errors.mandatory("symbol")
    return get_symbol(symbol).symbol


def forced_kind(order: FuturesOrder) -> str | None:
    """LIQUIDATION or ADL for Binance's own closing orders, else None."""
    if order.client_order_id.startswith("autoclose-"):
        return "LIQUIDATION"
    if order.client_order_id == "adl_autoclose":
        return "ADL"
    return None


class HistoryService:
    """Read-only history endpoints plus the test hooks that add to or age that history."""

    def __init__(self, exchange: FuturesExchange):
        self._exchange = exchange
        # Forced orders whose trades userTrades does not list yet (injected with "listed": false).
        self._unlisted: set[int] = set()

    # ----- Binance endpoints -------------------------------------------------------------------
    def user_trades(self, account: DemoAccount, params: dict, now_ms: float) -> list[dict]:
        """GET /fapi/v1/userTrades: `symbol`; `orderId`, `fromId`, time window, `limit` ≤ 1000."""
        symbol = _symbol(params)
        limit = _limit(params, 500, 1000)
        with self._exchange.lock:
            trades = [t for t in self._exchange.state_for(account, now_ms).trades
                      if t.order.symbol == symbol and t.order.order_id not in self._unlisted]
        if params.get("orderId"):
            trades = [t for t in trades if str(t.order.order_id) == params["orderId"]]
        if params.get("fromId"):
            trades = [t for t in trades if t.trade_id >= int(params["fromId"])]
        # Binance's page: "If startTime and endTime are both not sent, then the last 7 days' data will be
        # returned", with no exception for orderId or fromId (docs/binance-facts.md §14).
        start, end = _trades_window(params, now_ms)
        trades = [t for t in trades if max(start, now_ms - TRADES_KEPT_MS) <= t.time <= end]
        return [t.as_dict() for t in trades[:limit]]

    def all_orders(self, account: DemoAccount, params: dict, now_ms: float) -> list[dict]:
        """GET /fapi/v1/allOrders: `symbol` (optional since 2026-08-25), `orderId` (≥), window, `limit`."""
        symbol = _symbol(params) if params.get("symbol") or params.get("orderId") else None
        limit = _limit(params, 500, 1000)
        from_id = int(params.get("orderId") or 0)
        with self._exchange.lock:
            orders = self._exchange.state_for(account, now_ms).orders.values()
            rows = [o for o in orders if symbol in (None, o.symbol) and o.order_id >= from_id]
            if not from_id:
                start, end = _window(params, now_ms)
                rows = [o for o in rows if start <= o.time <= end]
            return [o.as_dict() for o in rows[-limit:]]

    def force_orders(self, account: DemoAccount, params: dict, now_ms: float) -> list[dict]:
        """GET /fapi/v1/forceOrders: liquidation and ADL orders (`autoCloseType`, window, `limit` ≤ 100)."""
        symbol = params.get("symbol")
        if symbol:
            get_symbol(symbol)
        wanted = params.get("autoCloseType")
        limit = _limit(params, 50, 100)
        start, end = _window(params, now_ms)
        with self._exchange.lock:
            orders = self._exchange.state_for(account, now_ms).orders.values()
            rows = [
                o
                for o in orders
                if forced_kind(o)
                and symbol in (None, "", o.symbol)
                and wanted in (None, "", forced_kind(o))
                and start <= o.time <= end
            ]
            return [o.as_dict() for o in rows[-limit:]]

    # ----- test hooks --------------------------------------------------------------------------
    def inject(self, account: DemoAccount, document: dict, now_ms: float) -> dict:
        """Add a trade Binance made without the client: liquidation, adl or manual (see module doc)."""
        kind = document.get("kind")
        symbol = get_symbol(document.get("symbol")).symbol
        with self._exchange.lock:
            state = self._exchange.state_for(account, now_ms)
            if kind == "manual":
                return self._manual(state, symbol, document, now_ms)
            if kind not in FORCED_KINDS:
                raise ValueError("kind must be liquidation, adl or manual")
            return self._forced(state, symbol, kind, document, now_ms)

    def _manual(self, state: FuturesAccount, symbol: str, document: dict, now_ms: float) -> dict:
        params = {
            "symbol": symbol,
            "side": document["side"],
            "type": "MARKET",
            "quantity": str(document["quantity"]),
            "newClientOrderId": "web_" + secrets.token_hex(10),
        }
        if document.get("positionSide"):
            params["positionSide"] = document["positionSide"]
        try:
            order = self._exchange.place_internal(state, params, now_ms)
        except ApiError as refusal:
            raise ValueError(f"Binance would refuse this order: {refusal.code} {refusal.msg}") from None
        return order.as_dict()

    def _forced(self, state: FuturesAccount, symbol: str, kind: str, document: dict, now_ms: float) -> dict:
        """Close (part of) a position as Binance's liquidation or ADL engine does."""
        side_name = document.get("positionSide") or ("BOTH" if not state.dual_side else None)
        held = [(s, p) for (name, s), p in state.positions.items() if name == symbol and p.amount]
        held = [(s, p) for s, p in held if side_name in (None, s)]
        if not held:
            raise ValueError(f"no position in {symbol} to {kind}")
        position_side, position = held[0]
        quantity = Decimal(str(document.get("quantity") or abs(position.amount)))
        if not ZERO < quantity <= abs(position.amount):
            raise ValueError("quantity must be positive and at most the position")
        price = Decimal(str(document.get("price") or self._exchange.mark(symbol, now_ms)))
        now = int(now_ms)
        liquidation = kind == "liquidation"
        order_id = self._exchange.next_order_id()
        order = FuturesOrder(
            order_id=order_id,
            client_order_id=f"autoclose-{now}{order_id % 1_000_000:06d}" if liquidation else "adl_autoclose",
            symbol=symbol,
            side="SELL" if position.amount > 0 else "BUY",
            type="LIMIT",
            time_in_force="IOC" if liquidation else "GTC",
            orig_qty=quantity,
            price=Decimal(plain(price)),
            reduce_only=False,  # as in the docs' forceOrders example
            position_side=position_side,
            time=now,
            update_time=now,
            self_trade_prevention_mode="NONE",
            good_till_date=0,
        )
        self._exchange.record_filled(state, order, price, now)
        if document.get("listed") is False:
            self._unlisted.add(order_id)
        return order.as_dict()

    def list_trades(self) -> int:
        """userTrades lists from now on the trades of every forced order injected unlisted; how many."""
        with self._exchange.lock:
            count, self._unlisted = len(self._unlisted), set()
        return count

    def age(self, ms: int, now_ms: float) -> dict:
        """Make every order, algo order and trade `ms` older, then purge what Binance would forget."""
        if ms < 0:
            raise ValueError("ms must be zero or more")
        with self._exchange.lock:
            purged = 0
            for state in self._exchange.accounts():
                for record in [*state.orders.values(), *state.trades]:
                    record.time -= ms
                for order in state.orders.values():
                    order.update_time -= ms
                for algo in state.algo_orders.values():
                    algo.create_time -= ms
                    algo.update_time -= ms if algo.update_time else 0
                    algo.trigger_time -= ms if algo.trigger_time else 0
                purged += self._purge(state, int(now_ms))
        return {"aged_ms": ms, "purged": purged}

    @staticmethod
    def _purge(state: FuturesAccount, now: int) -> int:
        """Forget unfilled CANCELED/EXPIRED orders over 3 days old and any order over 90 days old."""

        def forgotten(created: int, unfilled_final: bool) -> bool:
            age = now - created
            return age > ORDER_KEPT_MS or (unfilled_final and age > UNFILLED_KEPT_MS)

        gone = [
            o
            for o in state.orders.values()
            if forgotten(o.time, o.status in ("CANCELED", "EXPIRED") and not o.executed_qty)
        ]
        for order in gone:
            del state.orders[order.order_id]
            state.orders_by_client_id.pop((order.symbol, order.client_order_id), None)
        stale = [
            a.algo_id
            for a in state.algo_orders.values()
            if forgotten(a.create_time, a.status in ("CANCELED", "EXPIRED", "REJECTED"))
        ]
        for algo_id in stale:
            del state.algo_orders[algo_id]
        return len(gone) + len(stale)
