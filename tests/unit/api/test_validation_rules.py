"""Each input rule has one home, klineo/validation.py: no copy of it in the layer or the functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from klineo import validation

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = [*ROOT.joinpath("layers/klineo/python/klineo").rglob("*.py"),
           *ROOT.joinpath("functions").rglob("*.py")]
HOME = "layers/klineo/python/klineo/validation.py"


def _code_strings(path: Path) -> str:
    """Every string literal of a module except docstrings (a rule may be described, not restated)."""
    tree = ast.parse(path.read_text("utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)}
    return "\n".join(node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
                     and isinstance(node.value, str) and id(node) not in docstrings)


def _holders(fragment: str) -> list[str]:
    return [path.relative_to(ROOT).as_posix() for path in SHIPPED if fragment in _code_strings(path)
            or (fragment.isidentifier() and fragment in path.read_text("utf-8"))]


@pytest.mark.parametrize("fragment", [
    "a-z0-9_-]{1,36}",  # clientOrderId
    "[A-Z0-9]{2,20}",  # symbol
    "[a-f0-9]{32}",  # connection and strategy ids
    "load_pem_private_key",  # PEM checks
    "FOK",  # order field rules (time in force)
    "reduceOnly cannot be used with positionSide",  # order field rules (reduceOnly)
    "1M",  # Binance's kline intervals (the last of the list)
])
def test_rule_is_written_only_in_the_validation_module(fragment):
    """GIVEN a rule's text WHEN the layer and functions are read THEN only klineo/validation.py has it."""
    assert _holders(fragment) == [HOME]


def test_the_client_order_id_pattern_is_the_one_binance_documents():
    """GIVEN Binance's clientOrderId rule (facts §3) WHEN compared THEN the module states it exactly."""
    assert validation.CLIENT_ORDER_ID_PATTERN == r"^[\.A-Z\:/a-z0-9_-]{1,36}$"
    assert validation.CLIENT_ORDER_ID_RE.fullmatch("klneo_1767225600000_0123456789abcdef")
    assert not validation.CLIENT_ORDER_ID_RE.fullmatch("x" * 37)
