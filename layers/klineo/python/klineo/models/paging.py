"""Paging of every list route (orders, strategies, their events and runs): one rule for ?limit=&cursor=.

A list route's query model is ``PageQuery`` or extends it (adding its filters), so ``limit`` and
``cursor`` are declared and bounded once; a cursor of the right alphabet that the listing did not
hand out is refused by ``cursor_refused`` (400 naming ``cursor``, never echoing it).

``limit`` is a maximum. A page whose items can be large (an order lists up to 1000 fills, some 180 KB of
JSON: ``klineo.store.order_fills``) is also bounded in size: ``fit_page`` stops adding items before the
answer would pass ``PAGE_BYTES_MAX``, and the listing's next_cursor resumes after the last item it holds.
A Lambda function's synchronous answer is at most 6 MB (Lambda's MB: 6 MiB), counted on the whole proxy
response, in which the body is one JSON string; a larger one fails, a 5xx instead of a page
(docs/binance-facts.md §17).
"""


from collections.abc import Callable, Iterable
from typing import Annotated, TypeVar

from pydantic import BaseModel, Field

from klineo.errors import ErrorCategory, KlineoError
from klineo.models.fields import ApiModel

__all__ = ["CURSOR_PATTERN", "PAGE_BYTES_MAX", "PAGE_MAX_LIMIT", "PageQuery", "cursor_refused", "fit_page"]

PAGE_MAX_LIMIT = 100
# The most a page's items may add to its Lambda answer (``item_bytes``): well under Lambda's 6 MiB, leaving
# room for the status, headers and the page's own fields (its next_cursor), a few hundred bytes.
PAGE_BYTES_MAX = 5 * 1024 * 1024
# URL-safe base64 without padding, as every listing's next_cursor is written.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,400}$"


class PageQuery(ApiModel):
    """?limit=&cursor= of a paginated listing, newest first."""

    limit: Annotated[int, Field(
        ge=1, le=PAGE_MAX_LIMIT,
        description="The most items a page holds, a maximum: a page may hold fewer, even none, and still "
                    "have a `next_cursor`, when a filter left items out or when the next item would take "
                    "the answer past its size bound (about 5 MB)")] = 50
    cursor: Annotated[str | None, Field(pattern=CURSOR_PATTERN,
                                        description="next_cursor of the previous page")] = None


def cursor_refused() -> KlineoError:
    """The refusal of a cursor this listing did not hand out (its value is not repeated)."""
    return KlineoError(ErrorCategory.INVALID_REQUEST, "cursor is not a next_cursor of this listing",
                       field="cursor")


Source = TypeVar("Source")
Item = TypeVar("Item", bound=BaseModel)


def item_bytes(item: BaseModel) -> int:
    """What ``item`` adds to a Lambda proxy answer: its JSON and a comma, each quote and backslash in it
    counted twice (escaped again in the body string)."""
    text = item.model_dump_json(by_alias=True)
    return len(text.encode()) + text.count('"') + text.count("\\") + 1


def fit_page(sources: Iterable[Source], build: Callable[[Source], Item]) -> tuple[list[Item], int]:
    """The items ``build`` makes of ``sources``, in order, until the next would take them past
    ``PAGE_BYTES_MAX``; and how many sources they stand for (all of them: ``len(sources)``). Sources are
    taken one at a time: a lazy iterable is read no further than the source that did not fit.

    Each item is measured as it is built, once; the page is not serialized to be measured. The first item
    is always kept, so a page always moves on: no single item comes near the bound (an order with its
    1000 fills at their longest is some 270 KB).
    """
    items: list[Item] = []
    size = 0
    for index, source in enumerate(sources):
        item = build(source)
        size += item_bytes(item)
        if items and size > PAGE_BYTES_MAX:
            return items, index
        items.append(item)
    return items, len(items)
