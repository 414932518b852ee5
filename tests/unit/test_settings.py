"""Settings: the variables every function needs are required, with no fallback to another stage."""

from __future__ import annotations

import pytest
from klineo.settings import get_settings


def test_settings_come_from_the_templates_environment():
    """GIVEN the environment template.yaml gives every function WHEN settings are read THEN they match it."""
    settings = get_settings()
    assert settings.data_table == "klineo-test-data"
    assert settings.secret_prefix == "klineo/test/"


@pytest.mark.parametrize("name", ["DATA_TABLE", "SECRET_PREFIX", "CORS_ORIGIN"])
def test_a_missing_required_setting_is_named_not_defaulted(monkeypatch, name):
    """GIVEN one required variable unset WHEN settings are read THEN an error names it (no dev fallback)."""
    monkeypatch.delenv(name)
    get_settings.cache_clear()
    with pytest.raises(RuntimeError, match=f"environment variables not set: {name}$"):
        get_settings()
