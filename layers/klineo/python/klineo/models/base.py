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
from pydantic import ConfigDict

__all__ = ["BaseModel"]


class BaseModel(_PydanticModel):
    """pydantic's BaseModel with ``defer_build``; subclasses' own model_config merges with it."""

    model_config = ConfigDict(defer_build=True)
