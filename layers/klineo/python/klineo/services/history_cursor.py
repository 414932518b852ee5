"""The cursor of the listings of the order history's index (GET /futures/orders, /futures/order-attempts),
and its encoding for GET /strategies (``decode_cursor``'s ``shape``: the strategy's own sort key).

Opaque to the caller: the base64url text of the last item's gsi1sk (``<created ms>#<clientOrderId>``),
checked on the way back in (a cursor that does not decode to that shape is a 400 naming ``cursor``).
Every other key part comes from the caller's identity, so no cursor reaches another user's partition.
A page whose items would pass the answer's size bound stops short (``klineo.models.paging.fit_page``): its
cursor is then the last item's it holds, so the next page starts with the first it left out.
Apart from ``klineo.services.order_history`` so that the attempts listing does not load the reconciler.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from pydantic import BaseModel

from klineo.models.paging import cursor_refused, fit_page
from klineo.validation import CLIENT_ORDER_ID_PATTERN

__all__ = ["decode_cursor", "encode_cursor", "fitted_page", "resume_after"]

_SORT_KEY = re.compile(r"\d{13}#" + CLIENT_ORDER_ID_PATTERN.strip("^$"))


def encode_cursor(sort_key: str) -> str:
    """The opaque cursor of a page that ends at ``sort_key``."""
    return base64.urlsafe_b64encode(sort_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, shape: re.Pattern[str] = _SORT_KEY) -> str:
    """The sort key a cursor stands for; a 400 naming ``cursor`` when it is not one of ours (of ``shape``)."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not shape.fullmatch(text):
        raise cursor_refused()
    return text


def resume_after(cursor: str | None, from_ms: int | None) -> str | None:
    """The sort key a page resumes after (None: the first page); a cursor before ``from`` is refused."""
    after = decode_cursor(cursor) if cursor else None
    if after is not None and after < f"{from_ms or 0:013d}#":
        raise cursor_refused()  # before `from`: no page of this listing ends there (and DynamoDB
        # refuses a BETWEEN whose bounds are reversed)
    return after


class _Listed(Protocol):
    @property
    def sort_key(self) -> str: ...


Listed = TypeVar("Listed", bound=_Listed)
Item = TypeVar("Item", bound=BaseModel)


def fitted_page(entries: Sequence[Listed], build: Callable[[Listed], Item],
                last_sk: str | None) -> tuple[list[Item], str | None]:
    """The items of a page's ``entries`` (records or attempts, newest first) that fit its answer, and its
    next_cursor: after the last one shown when some did not fit, else after ``last_sk`` (None: the end)."""
    items, shown = fit_page(entries, build)
    resume = entries[shown - 1].sort_key if shown < len(entries) else last_sk
    return items, encode_cursor(resume) if resume else None
