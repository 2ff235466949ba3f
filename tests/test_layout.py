"""The package's shape (README, "Layout"): stages import one way, modules and functions stay short,
and the loops know no head by name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "localizer"
#: Each stage and what it may import from the package besides the bottom helpers (:data:`BOTTOM`):
#: data -> recipe -> model -> engine -> report, with ``cli`` on top.
BOTTOM = {"boxes", "errors", "files", "progress", "network", "metrics"}
STAGES = {"data": set(), "recipe": {"data"}, "model": {"recipe"}, "engine": {"data", "recipe", "model"},
          "report": {"data", "recipe", "model", "engine"}}
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 60


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def imported(path: Path) -> set[str]:
    """The ``localizer.*`` modules ``path`` imports (absolute or relative, at any depth)."""
    tree = ast.parse(path.read_text())
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            names.update(f"{target}.{a.name}" if not node.module else target for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n == "localizer" or n.startswith("localizer.")}


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else None  # localizer.recipe is a stage of its own


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_one_way(path):
    here = stage_of(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
    if path.parent == PACKAGE and path.stem not in BOTTOM | {"recipe"} or path.parent == PACKAGE / "cli":
        return  # cli and __main__ sit on top
    allowed = STAGES[here] | {here} if here else set()
    for name in imported(path):
        stage = stage_of(name)
        if stage is None:
            continue
        assert stage in allowed, f"{path.relative_to(PACKAGE)} ({here or 'bottom'}) imports {name}"


def test_recipe_imports_no_torch_module():
    source = (PACKAGE / "recipe.py").read_text()
    assert "import torch" not in source and "from torch" not in source


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_are_short(path):
    lines = path.read_text().splitlines()
    assert len(lines) <= MAX_MODULE_LINES, f"{len(lines)} lines"
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{node.name} (line {node.lineno}) has {length} lines"


@pytest.mark.parametrize("name", ["training.py", "inference.py", "evaluation.py"])
def test_loops_know_no_head(name):
    source = (PACKAGE / "engine" / name).read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("isinstance", "getattr", "hasattr"):
            assert "head" not in ast.unparse(node).lower(), f"{name}: {ast.unparse(node)}"
        if isinstance(node, ast.Attribute):
            assert not node.attr.endswith("Head"), f"{name}: {ast.unparse(node)}"
