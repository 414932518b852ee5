"""The base of every request and response model: pydantic builds its validator on first use.

A function imports the model modules whole but validates or serialises only its own two or three
models; building every model's schema at import made up a large share of a cold start. With
``defer_build`` a model's core schema is built the first time it is used (validation, a dump, a
JSON schema) and then kept, so unused models cost only their class statement. Named ``BaseModel``
so the model modules read as plain pydantic.

The model modules (and ``klineo.settings``) do not use ``from __future__ import annotations``: with
it every annotation is a string that pydantic compiles and evaluates when the class is made, about
a quarter of their import time. A model that names its own class (a validator's return type)
quotes it.
"""

from pydantic import BaseModel as _PydanticModel
from pydantic import ConfigDict, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = ["BaseModel", "field_refusal", "one_of_refusal"]


class BaseModel(_PydanticModel):
    """pydantic's BaseModel with ``defer_build``; subclasses' own model_config merges with it."""

    model_config = ConfigDict(defer_build=True)


def field_refusal(model: type, field: str, message: str) -> ValidationError:
    """A check across fields (a model validator) refusing, named by the field the caller must change.

    pydantic puts a model validator's ValueError at the model's root, which the API answers as field
    "body"; this error, raised in its place, keeps ``field`` (a nested model's place is put before it:
    ``stop_loss.percent``). ``message`` is ours (it never holds a sent value) and names every field
    of the rule.
    """
    detail = InitErrorDetails(type=PydanticCustomError("value_error", message), loc=(field,), input=None)
    return ValidationError.from_exception_data(model.__name__, [detail])


def one_of_refusal(model: type, names: tuple[str, ...], sent: list[str], message: str) -> ValidationError:
    """``field_refusal`` of an "exactly / at most one of ``names``" rule: it names the last of those ``sent``
    (one too many), or the first of ``names`` when none was sent."""
    return field_refusal(model, sent[-1] if sent else names[0], message)
