"""The layer's shape, checked: short functions, and each concern in its one home (issue 10)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LAYER = Path(__file__).resolve().parents[2] / "layers" / "klineo" / "python"
PACKAGE = LAYER / "klineo"
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _name(path: Path, root: Path = LAYER) -> str:
    return path.relative_to(root).as_posix()


def _long_functions(path: Path, root: Path = LAYER) -> list[str]:
    """``file:line name (N lines)`` for each function of ``path`` over the limit."""
    name = _name(path, root)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{name}:{node.lineno} {node.name} ({length} lines)")
    return found


def _imported_roots(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, at module level or inside functions."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module)
    return roots


def test_no_layer_function_is_over_sixty_lines():
    """GIVEN every function in the layer WHEN measured THEN none is over 60 lines (each offender is named)."""
    offenders = [entry for path in _modules() for entry in _long_functions(path)]
    assert offenders == []


def test_the_length_check_names_a_long_function(tmp_path):
    """GIVEN a module with a 61-line and a 60-line function WHEN checked THEN only the first is named."""
    module = tmp_path / "klineo" / "long.py"
    module.parent.mkdir()
    body = "def long():\n" + "    x = 1\n" * 60 + "def fits():\n" + "    x = 1\n" * 59
    module.write_text(body, encoding="utf-8")
    assert _long_functions(module, tmp_path) == ["klineo/long.py:1 long (61 lines)"]


OUTSIDE_STORE = [path for path in _modules() if not path.is_relative_to(PACKAGE / "store")]


@pytest.mark.parametrize("path", OUTSIDE_STORE, ids=_name)
def test_only_the_store_talks_to_aws(path: Path):
    """GIVEN a layer module outside ``klineo.store`` WHEN its imports are read THEN no boto3 or botocore."""
    aws = {name for name in _imported_roots(path) if name.split(".")[0] in ("boto3", "botocore")}
    assert aws == set()


@pytest.mark.parametrize("path", sorted((PACKAGE / "binance").rglob("*.py")), ids=_name)
def test_binance_never_imports_the_store_or_services(path: Path):
    """GIVEN a binance module WHEN its imports are read THEN none is store, services, api or runner."""
    inward = {name for name in _imported_roots(path)
              if name.startswith(("klineo.store", "klineo.services", "klineo.api", "klineo.runner"))}
    assert inward == set()


MODEL_MODULES = [*sorted((PACKAGE / "models").glob("*.py")), PACKAGE / "settings.py"]


@pytest.mark.parametrize("path", MODEL_MODULES, ids=_name)
def test_model_modules_keep_their_annotations_evaluated(path: Path):
    """GIVEN a pydantic model module WHEN its imports are read THEN no ``from __future__ import
    annotations``: pydantic would compile and evaluate every annotation string at class creation,
    about a quarter of the import of the model modules (klineo.models.base)."""
    assert "__future__" not in _imported_roots(path)
