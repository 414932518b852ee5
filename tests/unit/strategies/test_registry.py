"""The registry: every type is listed once, valid, and pure (no I/O imports)."""

from __future__ import annotations

import ast
from pathlib import Path

import klineo.strategies
import pytest
from klineo.strategies import REGISTRY, get_strategy_type, parse_parameters

PACKAGE_DIR = Path(klineo.strategies.__file__).parent
FORBIDDEN_IMPORTS = {"boto3", "botocore", "requests", "urllib3", "socket", "http", "klineo.binance",
                     "klineo.store", "klineo.api", "klineo.services", "klineo.runner"}


def test_registry_holds_the_sma_and_rsi_types() -> None:
    """GIVEN the registry WHEN listing THEN both built-in types, keyed by their own names."""
    assert set(REGISTRY) >= {"sma_crossover", "rsi_threshold"}
    for name, strategy_type in REGISTRY.items():
        assert strategy_type.name == name


def test_defaults_are_valid_for_every_type() -> None:
    """GIVEN no parameters WHEN parsing for each type THEN the defaults validate and give a lookback."""
    for name, strategy_type in REGISTRY.items():
        params = parse_parameters(name, None)
        assert strategy_type.lookback(params) >= 2


def test_unknown_type_is_a_key_error() -> None:
    """GIVEN an unregistered name WHEN looking it up THEN KeyError."""
    with pytest.raises(KeyError):
        get_strategy_type("martingale")


def test_strategy_modules_import_nothing_that_does_io() -> None:
    """GIVEN every module of klineo.strategies WHEN reading its imports THEN no AWS, HTTP or runner module."""
    for path in PACKAGE_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_IMPORTS), (
                    f"{path.name} imports {name}"
                )
