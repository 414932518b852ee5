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

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel as _PydanticModel
from pydantic import ConfigDict, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = ["NULL_REFUSED", "BaseModel", "field_refusal", "one_of_refusal", "rule_of_fields_sent"]

# A check across fields: ``check(model class, {field: value})`` raising a ``field_refusal``.
FieldsCheck = Callable[[Any, Mapping[str, Any]], None]


class _DocumentedWithoutNull:
    """The JSON schema of ``X | None`` as X's alone; validation unchanged (one error naming the field for a
    bad value, where ``X | SkipJsonSchema[None]`` validates a union and adds "Input should be None")."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        schema = handler(core_schema)
        members = schema.get("anyOf", [])
        kept = [member for member in members if member != {"type": "null"}]
        if len(kept) == len(members):
            return schema
        rest = {name: value for name, value in schema.items() if name != "anyOf"}
        return {**kept[0], **rest} if len(kept) == 1 else {"anyOf": kept, **rest}


# On a PATCH field that always has a value (``Annotated[X | None, NULL_REFUSED]``): None when not sent (kept),
# documented without null, since a null sent is refused (400 naming it: ``klineo.validation.refuse_nulls``),
# never ignored as if it cleared something.
NULL_REFUSED = _DocumentedWithoutNull()


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


def rule_of_fields_sent(*reads: str) -> Callable[[FieldsCheck], Any]:
    """A model validator of a check across fields that depends on which fields were sent ("exactly one of"):
    judged beside the fields' own errors, in the same ValidationError after them, not only once every
    field is valid (as a ``mode="after"`` validator is), so that one answer lists every problem.

    ``check(cls, sent)`` reads ``sent[name]``, None for a field not sent: the valid model's values, or with
    field errors the body as sent (a field sent with a bad value is still sent). ``reads`` names the
    fields whose value, not only presence, it reads: it is not judged while one of them is invalid.
    """
    def decorate(check: FieldsCheck) -> Any:
        def judged(cls: Any, data: Any, handler: Callable[[Any], Any]) -> Any:
            try:
                model = handler(data)
            except ValidationError as invalid:
                raise _with_refusal(invalid, cls, check, data, reads) from None
            check(cls, {name: getattr(model, name) for name in cls.model_fields})
            return model

        return model_validator(mode="wrap")(judged)

    return decorate


def _with_refusal(invalid: ValidationError, cls: Any, check: FieldsCheck, data: Any,
                  reads: tuple[str, ...]) -> ValidationError:
    """``invalid`` with ``check``'s refusal of the sent ``data`` after its errors, when it can judge it."""
    errors = invalid.errors()
    failed = {error["loc"][0] for error in errors if error["loc"]}
    if not isinstance(data, Mapping) or failed.intersection(reads):
        return invalid
    try:
        check(cls, {name: data.get(info.alias or name) for name, info in cls.model_fields.items()})
    except ValidationError as refused:
        errors += refused.errors()
    else:
        return invalid
    # Every error carried over as it was (type, message, place): pydantic_core rebuilds its own error
    # types only from their context, so each is given as a custom error of the same type and message.
    return ValidationError.from_exception_data(invalid.title, [
        InitErrorDetails(type=PydanticCustomError(error["type"], error["msg"], error.get("ctx")),
                         loc=error["loc"], input=error["input"])
        for error in errors])
