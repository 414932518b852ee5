"""Positions of a connection, read from Binance (closing one: ``klineo.services.position_close``).

The view (``list_positions``) is what Binance says now, never our records: /fapi/v3/positionRisk
(weight 5) for the positions, /fapi/v1/symbolConfig (weight 5, every symbol in one call) for
leverage and margin type (v3 has neither, facts §11), and /fapi/v1/openAlgoOrders per held symbol
(weight 1 each) for the protective orders, each labelled with its ``role`` when it is one of our
stop-loss / take-profit orders (one BatchGetItem). A liquidation, an ADL or a trade made in Binance's app
shows here at once because nothing is cached.
"""

from __future__ import annotations

from typing import Any

from klineo.binance import endpoints
from klineo.models.positions import ForeignTrade, FuturesPosition, FuturesPositionsResponse, ProtectiveOrder
from klineo.services.key_health import READ, note_futures_outcome
from klineo.services.order_view import executed_of
from klineo.services.position_rows import open_position_rows, position_number
from klineo.services.symbol_settings import futures_client
from klineo.store.connections import connection_credentials, require_connection
from klineo.store.order_history import recent_foreign_fills
from klineo.store.orders import OrderRecord, get_order_records
from klineo.validation import MARGIN_TYPES_OURS, plain_text, plain_text_or_none, positive_or_none

__all__ = ["list_positions"]


def _protective(row: dict[str, Any], record: OrderRecord | None) -> ProtectiveOrder:
    algo_id = row.get("algoId")
    # Binance's 0 where a number does not apply (a trailing stop's trigger, a closePosition quantity) is
    # None, as the open-orders route says it.
    trigger, quantity = positive_or_none(row.get("triggerPrice")), positive_or_none(row.get("quantity"))
    return ProtectiveOrder(
        client_algo_id=str(row.get("clientAlgoId", "")),
        algo_id=int(algo_id) if isinstance(algo_id, int | str) and str(algo_id).isdigit() else None,
        type=str(row.get("orderType") or row.get("type") or ""),
        side=str(row.get("side", "")),
        position_side=str(row.get("positionSide") or "BOTH"),
        trigger_price=plain_text_or_none(trigger),
        quantity=plain_text_or_none(quantity),
        close_position=row.get("closePosition") is True,
        reduce_only=row.get("reduceOnly") is True,
        status=str(row.get("algoStatus", "")),
        role=record.role if record is not None else None,
    )


def _guards(position_side: str, side: str, algo: ProtectiveOrder) -> bool:
    """True when the algo order acts on this position: same positionSide, and on its closing side."""
    closing_side = "SELL" if side == "LONG" else "BUY"
    return algo.position_side == position_side and algo.side == closing_side


def _position(row: dict[str, Any], config: dict[str, Any], algos: list[ProtectiveOrder]) -> FuturesPosition:
    amount = position_number(row, "positionAmt")
    position_side = str(row.get("positionSide") or "BOTH")
    side = position_side if position_side in ("LONG", "SHORT") else ("LONG" if amount > 0 else "SHORT")
    liquidation = position_number(row, "liquidationPrice")
    leverage = config.get("leverage")
    return FuturesPosition(
        symbol=str(row.get("symbol", "")),
        side=side,
        position_side=position_side if position_side in ("LONG", "SHORT") else "BOTH",
        amount=plain_text(abs(amount)),
        entry_price=plain_text(position_number(row, "entryPrice")),
        mark_price=plain_text(position_number(row, "markPrice")),
        unrealized_pnl=plain_text(position_number(row, "unRealizedProfit")),
        leverage=int(leverage) if str(leverage).isdigit() else None,
        margin_type=MARGIN_TYPES_OURS.get(str(config.get("marginType", "")).upper()),
        liquidation_price=plain_text(liquidation) if liquidation > 0 else None,
        notional=plain_text(abs(position_number(row, "notional"))),
        update_time=int(row["updateTime"]) if isinstance(row.get("updateTime"), int) else None,
        protective_orders=[a for a in algos if _guards(position_side, side, a)],
    )


def list_positions(user_id: str, connection_id: str) -> FuturesPositionsResponse:
    """The connection's open positions with leverage, margin type and protective orders (module docstring)."""
    connection = require_connection(user_id, connection_id)
    rows = open_position_rows(connection)
    positions: list[FuturesPosition] = []
    if rows:
        client, creds = futures_client(connection), connection_credentials(connection)
        configs = {str(c.get("symbol")): c for c in endpoints.futures_symbol_configs(client, creds)}
        listed = {symbol: endpoints.futures_open_algo_orders(client, creds, symbol)
                  for symbol in sorted({str(r.get("symbol")) for r in rows})}
        ids = [str(algo.get("clientAlgoId")) for algos_ in listed.values() for algo in algos_]
        ours = get_order_records(user_id, ids)
        algos = {symbol: [_protective(algo, ours.get(str(algo.get("clientAlgoId", "")))) for algo in algos_]
                 for symbol, algos_ in listed.items()}
        positions = [_position(r, configs.get(str(r.get("symbol")), {}), algos[str(r.get("symbol"))])
                     for r in rows]
    note_futures_outcome(connection, None, READ)
    positions.sort(key=lambda p: (p.symbol, p.position_side))
    foreign = [_foreign_trade(r) for r in recent_foreign_fills(user_id, connection.connection_id)]
    return FuturesPositionsResponse(connection_id=connection.connection_id, positions=positions,
                                    recent_trades_not_ours=foreign)


def _foreign_trade(record: OrderRecord) -> ForeignTrade:
    """A fill we did not place, with its label (the reconciler recorded it from userTrades); what it executed
    as the order history says it (``executed_of``: its fills' when Binance no longer answers for it)."""
    result = record.result or {}
    executed, average = executed_of(record)
    return ForeignTrade(
        client_order_id=record.client_order_id, symbol=record.symbol, origin=record.origin,
        side=result.get("side") or record.params.get("side"), status=record.status,
        executed_quantity=executed, average_price=average, created_at=record.created_at,
    )
