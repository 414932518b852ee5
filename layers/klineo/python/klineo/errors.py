"""KLINEO's one error taxonomy: the categories, their safe messages, and the one exception class.

Every failure a caller can see is a ``KlineoError`` carrying an ``ErrorCategory``; ``store``,
``services``, ``runner`` and ``binance`` all raise it, and ``klineo.api`` alone turns a category
into an HTTP status. How Binance's answers map onto these categories (the code table and
``classify``) lives with the rest of Binance in ``klineo.binance.codes``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum

__all__ = ["RETRY", "RETRY_LATER", "RETRY_SHORTLY", "ErrorCategory", "InvalidField", "InvalidFields",
           "KeyOfOtherEnvironment", "KlineoError", "LeverageAboveSymbolMax", "refuse_together"]


class ErrorCategory(StrEnum):
    """What went wrong, in terms a caller can act on; ``.retryable`` says whether retrying is safe."""

    PERMISSION = "permission"
    TIMESTAMP = "timestamp"
    SIGNATURE = "signature"
    IP_WHITELIST = "ip_whitelist"
    RATE_LIMIT = "rate_limit"
    IP_BANNED = "ip_banned"
    RESTRICTED = "restricted"
    INVALID_REQUEST = "invalid_request"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    ORDER_REJECTED = "order_rejected"
    DUPLICATE_ORDER = "duplicate_order"
    ORDER_NOT_FOUND = "order_not_found"
    UNKNOWN_OUTCOME = "unknown_outcome"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    NETWORK = "network"
    OTHER = "other"
    # App-level categories raised by the services, never by classify().
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    PRECONDITION_REQUIRED = "precondition_required"

    @property
    def retryable(self) -> bool:
        """True when sending the same request again later is safe and may succeed.

        UNKNOWN_OUTCOME is deliberately False: the order may exist, so it must be looked up, not re-sent.
        RATE_LIMIT and IP_BANNED are True but only after ``KlineoError.retry_after`` seconds.
        """
        return self in _RETRYABLE

    @property
    def transient(self) -> bool:
        """True when the failure says nothing about the request itself: Binance (or AWS) was busy, down,
        slow or unreachable (the retryable categories), or the outcome is not known yet (UNKNOWN_OUTCOME,
        settled by a lookup). Any other failure is a refusal that comes again when the same request is
        made again (Binance refused the order or a setting, a filter, our own validation, the key).
        """
        return self in _RETRYABLE or self is ErrorCategory.UNKNOWN_OUTCOME

    @property
    def metric_name(self) -> str:
        """The CloudWatch metric counting this category, e.g. ``BinanceIpBanned`` for ip_banned."""
        return _METRIC_NAMES[self]

    @property
    def default_message(self) -> str:
        """A user-safe message for this category when nothing more specific is known: its reason, then the
        advice to the one who sent the request, if any."""
        return _joined(self.default_reason, self.default_advice)

    @property
    def default_reason(self) -> str:
        """What went wrong, for this category when nothing more specific is known (no advice)."""
        return _DEFAULT_MESSAGES[self]

    @property
    def default_advice(self) -> str | None:
        """What the one who sent the request may do about this category's failure (None: nothing to add)."""
        return _DEFAULT_ADVICE.get(self)


_RETRYABLE = frozenset(
    {
        ErrorCategory.TIMESTAMP,
        ErrorCategory.RATE_LIMIT,
        ErrorCategory.IP_BANNED,
        ErrorCategory.UPSTREAM_UNAVAILABLE,
        ErrorCategory.NETWORK,
    }
)

_METRIC_NAMES = {c: "Binance" + "".join(p.capitalize() for p in c.value.split("_")) for c in ErrorCategory}

_DEFAULT_MESSAGES: dict[ErrorCategory, str] = {
    ErrorCategory.PERMISSION: (
        "Binance rejected the API key: it is invalid, lacks the permission this action needs, "
        "or this server's IP is not on the key's allow-list."
    ),
    ErrorCategory.TIMESTAMP: (
        "Binance rejected the request time (clock out of sync). The backend resyncs with Binance "
        "server time automatically."
    ),
    ErrorCategory.SIGNATURE: (
        "Binance rejected the request signature: check that the secret or private key matches the API key."
    ),
    ErrorCategory.IP_WHITELIST: "This server's IP address is not on the API key's allow-list on Binance.",
    ErrorCategory.RATE_LIMIT: "Binance request limit reached.",
    ErrorCategory.IP_BANNED: "Binance has temporarily banned this server's IP for too many requests.",
    ErrorCategory.RESTRICTED: "Binance is not available from this server's location (HTTP 451).",
    ErrorCategory.INVALID_REQUEST: "Binance rejected the request as invalid.",
    ErrorCategory.INSUFFICIENT_BALANCE: "Insufficient balance or margin for this order.",
    ErrorCategory.ORDER_REJECTED: "Binance rejected the order.",
    ErrorCategory.DUPLICATE_ORDER: "An order with this client order id already exists.",
    ErrorCategory.ORDER_NOT_FOUND: "Binance does not know this order.",
    ErrorCategory.UNKNOWN_OUTCOME: (
        "Binance did not confirm the outcome: the order may or may not have been placed."
    ),
    ErrorCategory.UPSTREAM_UNAVAILABLE: "Binance is temporarily unavailable.",
    ErrorCategory.NETWORK: "Could not reach Binance.",
    ErrorCategory.OTHER: "Binance returned an unexpected error.",
    ErrorCategory.PRECONDITION_REQUIRED: "This request needs a header it was sent without.",
    ErrorCategory.NOT_FOUND: "Not found.",
    ErrorCategory.CONFLICT: "The request conflicts with the current state.",
}

# Advice, apart from the reason: it speaks to the one who sent the request (an API caller). Who acts on the
# failure otherwise (a strategy's runner, which tries again by itself) says what it does instead, from the
# reason alone (``KlineoError.reason``; a strategy's events: ``KlineoError.trader_message``), never by cutting
# the advice out of the message's text.
RETRY = "Please retry."
RETRY_SHORTLY = "Please retry shortly."
RETRY_LATER = "Please retry later."
_DEFAULT_ADVICE: dict[ErrorCategory, str] = {
    ErrorCategory.TIMESTAMP: RETRY,
    ErrorCategory.RATE_LIMIT: RETRY_SHORTLY,
    ErrorCategory.IP_BANNED: RETRY_LATER,
    ErrorCategory.UNKNOWN_OUTCOME: "Look the order up by its client order id before sending it again.",
    ErrorCategory.UPSTREAM_UNAVAILABLE: RETRY_SHORTLY,
    ErrorCategory.NETWORK: RETRY,
}


def _joined(reason: str, advice: str | None) -> str:
    """The message a caller reads: the reason (one or more sentences), then the advice, if any."""
    return f"{reason} {advice}" if advice else reason


class KlineoError(Exception):
    """The one exception KLINEO raises for every expected failure; its message is always user-safe.

    ``message`` is what an API caller reads: ``reason`` (what happened) then ``advice`` (what the one who sent
    the request may do: retry, look the order up; None when there is nothing to add). Without a message, the
    category's reason and advice; with one, only the advice given with it.
    """

    __slots__ = ("advice", "category", "code", "field", "message", "reason", "retry_after", "retryable",
                 "status")

    def __init__(
        self,
        category: ErrorCategory | str,
        message: str | None = None,
        *,
        status: int | None = None,
        code: int | None = None,
        retry_after: float | None = None,
        field: str | None = None,
        retryable: bool | None = None,
        advice: str | None = None,
    ) -> None:
        category = ErrorCategory(category)
        self.category = category
        self.reason = message or category.default_reason
        self.advice = advice if message or advice else category.default_advice
        self.message = _joined(self.reason, self.advice)
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.field = field
        self.retryable = category.retryable if retryable is None else retryable
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"KlineoError(category={self.category.value!r}, message={self.message!r}, "
            f"status={self.status!r}, "
            f"code={self.code!r}, field={self.field!r}, retry_after={self.retry_after!r})"
        )

    def __reduce__(self):  # keep pickling (e.g. across processes) working with keyword-only arguments
        return (
            _rebuild,
            (
                self.category,
                self.reason,
                self.status,
                self.code,
                self.retry_after,
                self.field,
                self.retryable,
                self.advice,
            ),
        )

    @property
    def trader_message(self) -> str:
        """What a strategy's events and runs tell the trader of this failure (the one rule for them): its
        reason alone. The advice speaks to an API caller (retry, repeat with the same Idempotency-Key, look
        the order up), and a strategy's turn has none: its runner acts by itself (a later run decides again,
        an order in flight is looked up, a stop is placed on the next run). What it does next is told in the
        reason of an error made for a strategy (``klineo.services.protective._not_placed``), or in the text
        of the place that tells it (a ``paused`` event saying how to resume)."""
        return self.reason

    @property
    def refused_by_binance(self) -> bool:
        """True when Binance refused the request, answering with an error code of a category that is no
        outage: nothing was done, a known outcome, even when the refusal lifts by itself and ``retryable``
        says so (its code's rule: -2023 the account being liquidated, -4400 the quantitative rules, -4192 the
        cooling-off period). Such
        a request is settled as refused (recorded, counted, shown), never kept to be sent again at once: the
        next one is the caller's to make (a later candle, the reconciler).

        False for a failure that says nothing about the request: a transient category (rate limits and
        bans: 429/418, -1003, -1015, the WAF's 403; 5xx, -1001, -1008, timeouts, network, clock), an
        outcome still unknown (-1000, -1006, -1007, a lost answer: looked up, never re-sent blindly), and
        every failure without a Binance code (our own checks, storage: ``transient`` judges those).
        """
        return self.code is not None and not self.category.transient

    @property
    def transient(self) -> bool:
        """True when this failure may not come again by itself, so a retry soon is the answer: retryable,
        or of a transient category; never ``refused_by_binance``, even retryable (settled as refused)."""
        return not self.refused_by_binance and (self.retryable or self.category.transient)

    def to_dict(self) -> dict:
        """The error as a JSON-safe dict: category, message, retryable and, when known, field."""
        body = {"category": self.category.value, "message": self.message, "retryable": self.retryable}
        if self.field:
            body["field"] = self.field
        return body


class InvalidField(KlineoError):
    """invalid_request on one field that the request's validation cannot judge alone, because the rule
    needs stored state (a leverage above the connection's max_leverage). It is the same kind of refusal
    as request validation, so the API answers it the same way: 422 with ``field`` and ``errors``."""

    __slots__ = ()

    def __init__(self, field: str, message: str) -> None:
        super().__init__(ErrorCategory.INVALID_REQUEST, message, field=field)

    def __reduce__(self):
        return (InvalidField, (self.field, self.message))


class InvalidFields(InvalidField):
    """Several ``InvalidField`` refusals of one request, answered together (422, each in ``errors``), so that
    its sender fixes every field at once; ``field`` and ``message`` lead with the first."""

    __slots__ = ("refusals",)

    def __init__(self, refusals: Sequence[InvalidField]) -> None:
        super().__init__(str(refusals[0].field),
                         "; ".join(f"{refusal.field}: {refusal.message}" for refusal in refusals))
        self.refusals = tuple(refusals)

    def __reduce__(self):
        return (InvalidFields, (self.refusals,))


class KeyOfOtherEnvironment(KlineoError):
    """permission: Binance refuses the key on the environment it was sent for, and takes it on the other one
    (``suggested_environment``, "production" or "testnet"), as POST /exchange-connections/test tells it. The
    API answers ``suggested_environment`` beside the message (``details``)."""

    __slots__ = ("suggested_environment",)

    def __init__(self, message: str, suggested_environment: str, *, field: str | None = None) -> None:
        super().__init__(ErrorCategory.PERMISSION, message, field=field)
        self.suggested_environment = suggested_environment

    @property
    def details(self) -> dict[str, str]:
        """The error body's fields beyond the common ones."""
        return {"suggested_environment": self.suggested_environment}

    def to_dict(self) -> dict:
        """``KlineoError.to_dict`` with ``suggested_environment``."""
        return {**super().to_dict(), **self.details}

    def __reduce__(self):
        return (_rebuild_other_environment, (self.reason, self.suggested_environment, self.field))


def _rebuild_other_environment(message: str, suggested_environment: str,
                               field: str | None) -> KeyOfOtherEnvironment:
    """A pickled ``KeyOfOtherEnvironment`` again (its field is keyword-only)."""
    return KeyOfOtherEnvironment(message, suggested_environment, field=field)


class LeverageAboveSymbolMax(KlineoError):
    """A leverage above the symbol's top bracket (``maximum``): refused before Binance is asked, and again
    for every order adding exposure while the leverage stays as set. ``maximum`` None: Binance itself refused
    the leverage as not valid (-4028, ``code``), past a bracket read that allowed it."""

    __slots__ = ("leverage", "maximum", "symbol")

    def __init__(self, symbol: str, leverage: int, maximum: int | None, *, code: int | None = None) -> None:
        message = (f"leverage {leverage}x is above {symbol}'s maximum of {maximum}x" if maximum is not None
                   else f"Binance refused leverage {leverage}x for {symbol} as not valid (above its maximum)")
        super().__init__(ErrorCategory.ORDER_REJECTED, message, field="leverage", code=code)
        self.symbol, self.leverage, self.maximum = symbol, leverage, maximum

    def __reduce__(self):
        return (_rebuild_leverage, (self.symbol, self.leverage, self.maximum, self.code))


def _rebuild_leverage(symbol: str, leverage: int, maximum: int | None,
                      code: int | None) -> LeverageAboveSymbolMax:
    """A pickled ``LeverageAboveSymbolMax`` again (its code is keyword-only)."""
    return LeverageAboveSymbolMax(symbol, leverage, maximum, code=code)


def refuse_together(*checks: Callable[[], object]) -> None:
    """Run every check of one request and raise the ``InvalidField`` refusals they make in one error (the
    first alone when it is the only one). Any other refusal (a 404, a 409) is raised as soon as it comes."""
    refusals: list[InvalidField] = []
    for check in checks:
        try:
            check()
        except InvalidField as refusal:
            refusals.extend(getattr(refusal, "refusals", (refusal,)))
    if len(refusals) == 1:
        raise refusals[0]
    if refusals:
        raise InvalidFields(refusals)


def _rebuild(category, reason, status, code, retry_after, field, retryable, advice=None) -> KlineoError:
    return KlineoError(
        category, reason, status=status, code=code, retry_after=retry_after, field=field, retryable=retryable,
        advice=advice,
    )
