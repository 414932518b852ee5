"""The error body every route answers with, as models for the OpenAPI document.

``klineo.api`` writes the body itself (``error_response``); ``local.openapi`` documents it from
these models. A module of its own so no function creates these classes at import.
"""


from typing import Literal

from pydantic import Field

from klineo.errors import ErrorCategory
from klineo.models.base import BaseModel

__all__ = ["ErrorBody", "ErrorResponse", "FieldError"]


class FieldError(BaseModel):
    """One request field that failed validation, named as the caller sent it."""

    field: str = Field(examples=["quantity"])
    message: str


class ErrorBody(BaseModel):
    """The inside of every error answer."""

    category: ErrorCategory
    message: str
    retryable: bool
    request_id: str = Field(description="The X-Request-Id of the answer: quote it to support.")
    field: str | None = Field(default=None, description="The (first) request field at fault, when known.")
    errors: list[FieldError] | None = Field(
        default=None, description="Every field that failed validation (the first is `field`).")
    suggested_environment: Literal["production", "testnet"] | None = Field(
        default=None, description="Keys refused on the environment they were sent for that Binance takes on "
        "this one (as POST /exchange-connections/test answers it).")


class ErrorResponse(BaseModel):
    """Every error answer of the API: {"error": {...}}."""

    error: ErrorBody
