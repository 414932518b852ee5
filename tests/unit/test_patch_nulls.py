"""The PATCH bodies' fields that a null cannot clear: documented without null, validated as before."""

from __future__ import annotations

import pytest
from klineo.models.base import NULL_REFUSED
from klineo.models.connection_settings import ConnectionUpdateRequest
from klineo.models.strategy_requests import StrategyUpdateRequest
from pydantic import ValidationError


def _refusing_null(model: type) -> list[str]:
    """The fields of ``model`` annotated NULL_REFUSED."""
    return [name for name, field in model.model_fields.items() if NULL_REFUSED in field.metadata]


@pytest.mark.parametrize(("model", "bad"), [
    (StrategyUpdateRequest, {"type": "x", "parameters": 5, "size": "abc", "quote_size_usdt": "-1",
                             "size_pct": "0", "mode": "x", "status": "x", "direction": 5,
                             "paper_balance_usdt": "0"}),
    (ConnectionUpdateRequest, {"position_mode": "x", "label": 5, "kill_switch": "x", "max_leverage": 0,
                               "max_notional_usdt": "-1"}),
])
def test_a_bad_value_on_a_field_null_cannot_clear_is_one_error_naming_it(model: type, bad: dict) -> None:
    """A bad value on such a field is ONE error at the field itself: not also "Input should be None", nor a
    location naming a union member (as ``X | SkipJsonSchema[None]`` validates it)."""
    assert set(_refusing_null(model)) <= set(bad)
    for name in _refusing_null(model):
        with pytest.raises(ValidationError) as refused:
            model.model_validate({name: bad[name]})
        errors = refused.value.errors()
        assert [error["loc"] for error in errors] == [(name,)], errors


@pytest.mark.parametrize("model", [StrategyUpdateRequest, ConnectionUpdateRequest])
def test_a_field_null_cannot_clear_still_reads_none_when_left_out_or_sent_null(model: type) -> None:
    """Left out, such a field is None and unsent; sent null it validates (the service refuses it by name)."""
    for name in _refusing_null(model):
        assert getattr(model.model_validate({}), name) is None
        sent = model.model_validate({name: None})
        assert name in sent.model_fields_set and getattr(sent, name) is None
