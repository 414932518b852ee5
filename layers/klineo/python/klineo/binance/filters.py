"""Symbol trading rules from exchangeInfo: Decimal rounding to tick/step sizes, limit checks before sending.

Spot and futures differ (facts §6):
- spot: ``price % tickSize == 0`` and ``qty % stepSize == 0``; notional from NOTIONAL
  (``minNotional``/``maxNotional``, each applied to MARKET orders only when ``applyMin/MaxToMarket``)
  or the legacy MIN_NOTIONAL (``minNotional``, ``applyToMarket``).
- futures: ``(price - minPrice) % tickSize == 0`` and ``(qty - minQty) % stepSize == 0`` (offset by the
  minimum); MIN_NOTIONAL's key is ``notional``, MARKET orders are valued at the mark price, and an
  order that only reduces is exempt (-4164 "unless you choose reduce only"): a reduce-only one, and a
  hedge-mode close (SELL LONG, BUY SHORT), which cannot carry reduceOnly but which Binance books as
  reduce-only (docs/binance-facts.md §4). ``min_notional_applies`` is that one rule: a trader's exit is
  never refused by our own check below the minimum.
A value a person typed (``exact``: an API order's quantity, price, trigger price) must lie on the grid:
Binance refuses an off-grid one (-4014, -4023) rather than change it, and so do we, naming the field
and the step or tick size. A value we computed (a quote size, a strategy's size, a trigger from a
percent) is rounded to the grid: down, or up (``round_price(up=True)``) where down would be the wrong
way. Any failure raises ``KlineoError(invalid_request, field=...)`` naming the offending field, before
anything is sent.
PERCENT_PRICE (futures: ``multiplierUp``/``multiplierDown``; absent, no band) is checked by
``check_price_band`` against a reference the caller read fresh for this very order (facts §6): a LIMIT's
price against the mark price (a BUY at most mark x multiplierUp, -4016; a SELL at least
mark x multiplierDown, -4024), a stop-limit's price against its own trigger price, both bounds
whatever the side (-4183/-4184). This module never reads a price: a caller without a fresh mark leaves
the band to Binance. Spot's PERCENT_PRICE (an average price over ``avgPriceMins``) is left to Binance.
"""

from __future__ import annotations

import threading
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any, NamedTuple

from klineo.binance.client import BinanceClient
from klineo.binance.endpoints import EXCHANGE_INFO_TTL_S, exchange_info
from klineo.binance.enums import Market
from klineo.errors import ErrorCategory, KlineoError

__all__ = [
    "STATUS_MAX_AGE_S", "SymbolRules", "clear_symbol_rules_cache", "current_symbol_rules", "get_symbol_rules",
    "listed_symbol_rules", "parse_symbol_rules",
]

_ZERO = Decimal(0)
_ONE = Decimal(1)
_PRICED_TYPES = frozenset(
    {"LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT", "STOP", "TAKE_PROFIT"}
)
_MARKET_TYPES = frozenset({"MARKET", "STOP_LOSS", "TAKE_PROFIT", "STOP_MARKET", "TAKE_PROFIT_MARKET"})
# Hedge mode's closes (side, positionSide): only ever reduce their side, as reduce-only orders do.
_HEDGE_CLOSES = frozenset({("SELL", "LONG"), ("BUY", "SHORT")})


def _dec(value: Any) -> Decimal:
    if value is None or value == "":
        return _ZERO
    return Decimal(str(value))


def _clean(value: Decimal) -> Decimal:
    """Trailing zeros dropped, never exponent notation (10, not 1E+1)."""
    value = value.normalize()
    return value.quantize(_ONE) if value.as_tuple().exponent > 0 else value


def _to_grid(value: Decimal, step: Decimal, offset: Decimal = _ZERO, rounding: str = ROUND_FLOOR) -> Decimal:
    if step <= 0:
        return value
    steps = ((value - offset) / step).to_integral_value(rounding=rounding)
    return offset + steps * step


def _invalid(field: str, message: str) -> KlineoError:
    return KlineoError(ErrorCategory.INVALID_REQUEST, message, field=field)


def _to_decimal(value: Any, field: str) -> Decimal:
    if isinstance(value, bool):
        raise _invalid(field, f"{field} must be a number")
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        raise _invalid(field, f"{field} must be a number") from None
    if not result.is_finite():
        raise _invalid(field, f"{field} must be a finite number")
    return result


class SymbolRules(NamedTuple):
    """The trading rules of one symbol (0 means "no such limit")."""

    symbol: str
    market: Market
    status: str
    base_asset: str
    quote_asset: str
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_step_size: Decimal
    market_min_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    max_notional: Decimal
    apply_min_to_market: bool
    apply_max_to_market: bool
    order_types: tuple[str, ...]
    # PERCENT_PRICE (futures), 0: no band.
    multiplier_up: Decimal = _ZERO
    multiplier_down: Decimal = _ZERO
    # Futures: when Binance listed the contract (exchangeInfo ``onboardDate``, epoch ms; no candle opens
    # before it); 0: not given (spot).
    onboard_ms: int = 0

    def round_price(self, price: Decimal, up: bool = False) -> Decimal:
        """Price rounded down (``up``: up) to the tick grid (futures: offset by minPrice)."""
        offset = self.min_price if self.market is Market.FUTURES else _ZERO
        return _clean(_to_grid(price, self.tick_size, offset, ROUND_CEILING if up else ROUND_FLOOR))

    def round_quantity(self, quantity: Decimal, market_order: bool = False, up: bool = False) -> Decimal:
        """Quantity rounded down (``up``: up) to the step grid of LOT_SIZE (or MARKET_LOT_SIZE for market
        orders)."""
        step, minimum, _ = self.lot_for(market_order)
        offset = minimum if self.market is Market.FUTURES and quantity >= minimum else _ZERO
        return _clean(_to_grid(quantity, step, offset, ROUND_CEILING if up else ROUND_FLOOR))

    def valid_around(self, field: str, value: Decimal, market_order: bool = False
                     ) -> tuple[Decimal | None, Decimal | None]:
        """The grid values nearest to ``value`` of ``field`` (a quantity for ``quantity``, else a price),
        below and above it, each None where the lot's or the price filter's bounds leave none."""
        if field == "quantity":
            _, low, high = self.lot_for(market_order)
            below, above = (self.round_quantity(value, market_order, up=up) for up in (False, True))
        else:
            low, high = self.min_price, self.max_price
            below, above = (self.round_price(value, up=up) for up in (False, True))
        return (below if below > 0 and below >= low else None,
                above if high <= 0 or above <= high else None)

    def exact_price(self, price: Decimal, field: str = "price") -> Decimal:
        """``price`` (as typed) when it lies on the tick grid; else invalid_request naming ``field``."""
        on_grid = self.round_price(price)
        if on_grid != price:
            offset = self.min_price if self.market is Market.FUTURES else _ZERO
            raise self._off_grid(field, "tick size", self.tick_size, offset)
        return on_grid

    def exact_quantity(self, quantity: Decimal, market_order: bool = False) -> Decimal:
        """``quantity`` (as typed, at least the lot's minimum) when it lies on the step grid; else
        invalid_request naming quantity."""
        on_grid = self.round_quantity(quantity, market_order)
        if on_grid != quantity:
            step, minimum, _ = self.lot_for(market_order)
            offset = minimum if self.market is Market.FUTURES else _ZERO
            raise self._off_grid("quantity", "step size", step, offset)
        return on_grid

    def _off_grid(self, field: str, size_name: str, step: Decimal, offset: Decimal) -> KlineoError:
        """``field`` is off the grid: the refusal states the step (never the value sent)."""
        start = "" if offset % step == 0 else f" counted from the minimum {_clean(offset)}"
        return _invalid(field, f"{field} must be a multiple of the {size_name} {_clean(step)}{start} "
                               f"for {self.symbol}")

    def lot_for(self, market_order: bool) -> tuple[Decimal, Decimal, Decimal]:
        """(stepSize, minQty, maxQty) that apply: MARKET_LOT_SIZE for market orders when it sets a step."""
        if market_order and self.market_step_size > 0:
            return self.market_step_size, self.market_min_qty, self.market_max_qty
        return self.step_size, self.min_qty, self.max_qty

    def prepare_order(
        self,
        side: str,
        order_type: str,
        quantity: Decimal,
        price: Decimal | None,
        reference_price: Decimal | None,
        *,
        reduce_only: bool = False,
        exact: bool = False,
        position_side: str = "BOTH",
    ) -> tuple[Decimal, Decimal | None]:
        """(quantity, price) rounded down to the symbol's grid and checked; invalid_request names the field.

        ``price`` is required for limit-type orders and returned as None for market-type orders.
        ``reference_price`` values market orders for the notional check (futures: the mark price).
        ``exact``: the values were typed by a person: off the grid they are refused, never rounded.
        ``reduce_only`` and ``position_side``: as sent (``min_notional_applies`` says what they exempt).
        """
        market_order = self._check_side_and_type(side, order_type)
        qty = self.prepare_quantity(quantity, market_order, exact=exact)
        out_price = None if market_order else self.prepare_price(price, order_type, exact=exact)
        self.check_notional(qty, out_price, reference_price, market_order, reduce_only, side=side,
                            position_side=position_side)
        return qty, out_price

    def takes(self, order_type: str) -> bool:
        """Whether the symbol takes ``order_type`` (exchangeInfo's ``orderTypes``; none listed: any)."""
        return not self.order_types or order_type in self.order_types

    def require_type(self, order_type: str) -> None:
        """Refuse (invalid_request naming ``type``) an order type the symbol does not take (``takes``)."""
        if not self.takes(order_type):
            raise _invalid("type", f"order type {order_type} is not allowed on {self.symbol}")

    def _check_side_and_type(self, side: str, order_type: str) -> bool:
        """Refuse an unknown side or an order type the symbol does not take; True for market-type orders."""
        if str(side).upper() not in ("BUY", "SELL"):
            raise _invalid("side", "side must be BUY or SELL")
        order_type = str(order_type).upper()
        self.require_type(order_type)
        if order_type not in _PRICED_TYPES and order_type not in _MARKET_TYPES:
            raise _invalid("type", f"order type {order_type} is not supported")
        return order_type in _MARKET_TYPES

    def quantity_for_quote(self, quote: Decimal, price: Decimal, market_order: bool) -> Decimal:
        """The quantity ``quote`` (in the quote asset) buys at ``price``, rounded DOWN to the step and
        checked against the lot and notional minimums; refusals name ``quote_quantity``."""
        if price <= 0:
            raise _invalid("quote_quantity", "no price to convert quote_quantity with")
        step, min_qty, _ = self.lot_for(market_order)
        qty = self.round_quantity(quote / price, market_order)
        if qty <= 0 or qty < min_qty:
            raise _invalid(
                "quote_quantity",
                f"quote_quantity buys less than the minimum quantity "
                f"{_clean(min_qty)} (step {_clean(step)}) of {self.symbol} at {_clean(price)}",
            )
        if self.min_notional > 0 and qty * price < self.min_notional:
            raise _invalid(
                "quote_quantity",
                f"quote_quantity rounds down to {_clean(qty)} {self.base_asset}, worth {_clean(qty * price)} "
                f"{self.quote_asset}: below the minimum order value {_clean(self.min_notional)} "
                f"for {self.symbol}",
            )
        return qty

    def prepare_quantity(self, quantity: Decimal, market_order: bool, *, exact: bool = False) -> Decimal:
        """The quantity rounded down to the lot step (``exact``: on it, else refused), within the lot's
        minimum and maximum."""
        qty = _to_decimal(quantity, "quantity")
        if qty <= 0:
            raise _invalid("quantity", "quantity must be greater than zero")
        step, min_qty, max_qty = self.lot_for(market_order)
        if qty < min_qty:
            raise _invalid("quantity", f"quantity is below the minimum {_clean(min_qty)} for {self.symbol}")
        qty = self.exact_quantity(qty, market_order) if exact else self.round_quantity(qty, market_order)
        if qty <= 0 or qty < min_qty:
            raise _invalid(
                "quantity",
                f"quantity rounds down to {qty}, below the minimum {_clean(min_qty)} "
                f"(step {_clean(step)}) for {self.symbol}",
            )
        if max_qty > 0 and qty > max_qty:
            raise _invalid("quantity", f"quantity is above the maximum {_clean(max_qty)} for {self.symbol}")
        return qty

    def prepare_price(
        self, price: Decimal | None, order_type: str, *, exact: bool = False, field: str = "price"
    ) -> Decimal:
        """A limit-type order's price (or another price-like value, named ``field``) rounded down to the
        tick size (``exact``: on it, else refused), within the price filter."""
        if price is None:
            raise _invalid(field, f"{field} is required for {str(order_type).upper()} orders")
        raw_price = _to_decimal(price, field)
        if raw_price <= 0:
            raise _invalid(field, f"{field} must be greater than zero")
        if self.min_price > 0 and raw_price < self.min_price:
            raise _invalid(field, f"{field} is below the minimum {_clean(self.min_price)} for {self.symbol}")
        out_price = self.exact_price(raw_price, field) if exact else self.round_price(raw_price)
        if out_price <= 0 or (self.min_price > 0 and out_price < self.min_price):
            raise _invalid(
                field, f"{field} rounds down below the minimum {_clean(self.min_price)} for {self.symbol}"
            )
        if self.max_price > 0 and out_price > self.max_price:
            raise _invalid(field, f"{field} is above the maximum {_clean(self.max_price)} for {self.symbol}")
        return out_price

    def check_price_band(self, side: str, price: Decimal, reference: Decimal, *, against: str = "mark price",
                         both_bounds: bool = False, typed: bool = False) -> None:
        """PERCENT_PRICE: invalid_request naming price, stating the band, when ``price`` is above
        ``reference`` x multiplierUp (a BUY, or any side with ``both_bounds``) or below
        ``reference`` x multiplierDown (a SELL, or any side with ``both_bounds``); ``against`` names the
        reference in the refusal, which quotes it unless the caller ``typed`` it (no value sent is ever
        repeated). No band (no filter, or no reference): nothing is checked."""
        up, down = self.multiplier_up, self.multiplier_down
        if reference <= 0 or (up <= 0 and down <= 0):
            return
        too_high = up > 0 and (both_bounds or side == "BUY") and price > reference * up
        too_low = down > 0 and (both_bounds or side == "SELL") and price < reference * down
        if not (too_high or too_low):
            return
        high = self.round_price(reference * up) if up > 0 else None  # the band's ends on the tick grid
        low = self.round_price(reference * down, up=True) if down > 0 else None
        bound = f"at most {_clean(high)}" if too_high else f"at least {_clean(low)}"
        whom = "" if both_bounds else f" for a {side}"
        band = " to ".join(f"{_clean(end)}" for end in (low, high) if end is not None)
        multipliers = " to ".join(f"{_clean(m)}" for m in (down, up) if m > 0)
        quoted = "" if typed else f" {_clean(reference)}"
        raise _invalid("price", f"price must be {bound}{whom} on {self.symbol} now: Binance's price band is "
                                f"{band} {self.quote_asset} ({multipliers} times the {against}{quoted})")

    def min_notional_applies(self, market_order: bool, reduce_only: bool, side: str = "",
                             position_side: str = "BOTH") -> bool:
        """True when the minimum order value binds this order (as sent: ``reduce_only``, ``side``,
        ``position_side``). Not for a MARKET-type one where the filter leaves them out, nor on futures for
        one that only reduces: reduce-only, or a hedge-mode close (SELL LONG, BUY SHORT), which Binance
        books as reduce-only (its order answers say ``reduceOnly`` true; one larger than its side is -2022
        "ReduceOnly Order is rejected"), so -4164's "unless you choose reduce only" exempts it too."""
        if self.min_notional <= 0 or (market_order and not self.apply_min_to_market):
            return False
        closes = reduce_only or (str(side).upper(), str(position_side).upper()) in _HEDGE_CLOSES
        return not (self.market is Market.FUTURES and closes)

    def check_notional(
        self,
        qty: Decimal,
        price: Decimal | None,
        reference_price: Decimal | None,
        market_order: bool,
        reduce_only: bool,
        *,
        side: str = "",
        position_side: str = "BOTH",
    ) -> None:
        """Raise invalid_request (field quantity) when the order value is outside the notional limits (the
        minimum where ``min_notional_applies``)."""
        check_min = self.min_notional_applies(market_order, reduce_only, side, position_side)
        check_max = self.max_notional > 0 and (not market_order or self.apply_max_to_market)
        if not (check_min or check_max):
            return
        if price is None:
            if reference_price is None:
                raise _invalid("reference_price", "a reference price is needed to check the order value")
            valued_at = _to_decimal(reference_price, "reference_price")
            if valued_at <= 0:
                raise _invalid("reference_price", "reference price must be greater than zero")
        else:
            valued_at = price
        notional = qty * valued_at
        if check_min and notional < self.min_notional:
            raise _invalid(
                "quantity",
                f"order value {_clean(notional)} {self.quote_asset} is below the minimum "
                f"{_clean(self.min_notional)} for {self.symbol}",
            )
        if check_max and notional > self.max_notional:
            raise _invalid(
                "quantity",
                f"order value {_clean(notional)} {self.quote_asset} is above the maximum "
                f"{_clean(self.max_notional)} for {self.symbol}",
            )


def parse_symbol_rules(entry: dict[str, Any], market: Market) -> SymbolRules:
    """SymbolRules from one ``symbols[]`` entry of exchangeInfo."""
    filters = {f.get("filterType"): f for f in entry.get("filters") or [] if isinstance(f, dict)}
    price = filters.get("PRICE_FILTER", {})
    lot = filters.get("LOT_SIZE", {})
    market_lot = filters.get("MARKET_LOT_SIZE", {})
    min_notional = _ZERO
    max_notional = _ZERO
    apply_min = apply_max = False
    band: dict[str, Any] = {}
    if market is Market.FUTURES:
        legacy = filters.get("MIN_NOTIONAL", {})
        min_notional = _dec(legacy.get("notional"))
        apply_min = True  # futures values MARKET orders at the mark price
        band = filters.get("PERCENT_PRICE", {})
    else:
        notional = filters.get("NOTIONAL")
        if notional is not None:
            min_notional = _dec(notional.get("minNotional"))
            max_notional = _dec(notional.get("maxNotional"))
            apply_min = bool(notional.get("applyMinToMarket", True))
            apply_max = bool(notional.get("applyMaxToMarket", False))
        elif "MIN_NOTIONAL" in filters:
            legacy = filters["MIN_NOTIONAL"]
            min_notional = _dec(legacy.get("minNotional"))
            apply_min = bool(legacy.get("applyToMarket", True))
    return SymbolRules(
        symbol=str(entry.get("symbol", "")),
        market=market,
        status=str(entry.get("status", "")),
        base_asset=str(entry.get("baseAsset", "")),
        quote_asset=str(entry.get("quoteAsset", "")),
        tick_size=_dec(price.get("tickSize")),
        min_price=_dec(price.get("minPrice")),
        max_price=_dec(price.get("maxPrice")),
        step_size=_dec(lot.get("stepSize")),
        min_qty=_dec(lot.get("minQty")),
        max_qty=_dec(lot.get("maxQty")),
        market_step_size=_dec(market_lot.get("stepSize")),
        market_min_qty=_dec(market_lot.get("minQty")),
        market_max_qty=_dec(market_lot.get("maxQty")),
        min_notional=min_notional,
        max_notional=max_notional,
        apply_min_to_market=apply_min,
        apply_max_to_market=apply_max,
        order_types=tuple(str(t) for t in entry.get("orderTypes") or ()),
        multiplier_up=_dec(band.get("multiplierUp")),
        multiplier_down=_dec(band.get("multiplierDown")),
        onboard_ms=int(entry.get("onboardDate") or 0) if market is Market.FUTURES else 0,
    )


# Where a symbol's status decides something, it is at most this old (``current_symbol_rules``): the
# exchangeInfo cache keeps a document an hour, longer than a halt lasts or a delisting waits to be seen.
STATUS_MAX_AGE_S = 60.0

_rules_cache: dict[tuple[str, str], tuple[dict[str, Any], SymbolRules]] = {}
_rules_lock = threading.Lock()


def get_symbol_rules(client: BinanceClient, symbol: str) -> SymbolRules:
    """Trading rules of ``symbol``; invalid_request (field symbol) when unknown or not trading, by a status
    at most ``STATUS_MAX_AGE_S`` old (a halt cached for the exchangeInfo's hour would outlive the halt)."""
    rules = listed_symbol_rules(client, symbol)
    if rules.status != "TRADING":
        rules = current_symbol_rules(client, symbol)
        if rules.status != "TRADING":
            raise _invalid("symbol", f"{rules.symbol} is not trading now (status {rules.status})")
    return rules


def current_symbol_rules(client: BinanceClient, symbol: str) -> SymbolRules:
    """``listed_symbol_rules`` from an exchangeInfo at most ``STATUS_MAX_AGE_S`` old (read again when older,
    the container's cache refreshed for every caller)."""
    return listed_symbol_rules(client, symbol, max_age_s=STATUS_MAX_AGE_S)


def listed_symbol_rules(client: BinanceClient, symbol: str, *,
                        max_age_s: float = EXCHANGE_INFO_TTL_S) -> SymbolRules:
    """Rules of ``symbol`` as Binance lists it, whatever its ``status``, from an exchangeInfo at most
    ``max_age_s`` old; invalid_request (field symbol) when unknown."""
    if not isinstance(symbol, str) or not symbol.strip():
        raise _invalid("symbol", "symbol is required")
    symbol = symbol.strip()
    wanted = symbol.upper() if symbol.isascii() else symbol
    info = exchange_info(client, wanted, ttl_s=max_age_s)
    key = (client.base_url, wanted)
    cached = _rules_cache.get(key)
    if cached is not None and cached[0] is info:
        rules = cached[1]
    else:
        entry = next((s for s in info["symbols"] if isinstance(s, dict) and s.get("symbol") == wanted), None)
        if entry is None:
            raise _invalid("symbol", "symbol is not one Binance lists on this market")
        try:
            rules = parse_symbol_rules(entry, client.market)
        except (InvalidOperation, ValueError, TypeError, AttributeError):
            raise KlineoError(
                ErrorCategory.UPSTREAM_UNAVAILABLE, "Binance returned unreadable trading rules."
            ) from None
        with _rules_lock:
            _rules_cache[key] = (info, rules)
    return rules


def clear_symbol_rules_cache() -> None:
    """Forget parsed symbol rules (tests)."""
    with _rules_lock:
        _rules_cache.clear()
