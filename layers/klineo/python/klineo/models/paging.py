"""Paging of every list route (order history, strategy events, strategy runs): one rule for ?limit=&cursor=.

A list route's query model is ``PageQuery`` or extends it (adding its filters), so ``limit`` and
``cursor`` are declared and bounded once; a cursor of the right alphabet that the listing did not
hand out is refused by ``cursor_refused`` (400 naming ``cursor``, never echoing it).
"""


from typing import Annotated

from pydantic import Field

from klineo.errors import ErrorCategory, KlineoError
from klineo.models.fields import ApiModel

__all__ = ["CURSOR_PATTERN", "PAGE_MAX_LIMIT", "PageQuery", "cursor_refused"]

PAGE_MAX_LIMIT = 100
# URL-safe base64 without padding, as every listing's next_cursor is written.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,400}$"


class PageQuery(ApiModel):
    """?limit=&cursor= of a paginated listing, newest first."""

    limit: Annotated[int, Field(ge=1, le=PAGE_MAX_LIMIT)] = 50
    cursor: Annotated[str | None, Field(pattern=CURSOR_PATTERN,
                                        description="next_cursor of the previous page")] = None


def cursor_refused() -> KlineoError:
    """The refusal of a cursor this listing did not hand out (its value is not repeated)."""
    return KlineoError(ErrorCategory.INVALID_REQUEST, "cursor is not a next_cursor of this listing",
                       field="cursor")
