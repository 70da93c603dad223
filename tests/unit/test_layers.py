"""The import layers of DESIGN.md section 2: no module imports from a layer above its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "servicegroup"

# Highest layer first. A module may import from its own layer or any layer below.
LAYERS: list[set[str]] = [
    {"__main__", "cli", "manager", "controller_command", "demo", "render"},
    {"reconcilers", "wrapper", "dns"},
    {"controller", "events", "leaderelection", "probes"},
    {"informers", "workqueue", "ratelimiters"},
    {"kube"},
    {"grid", "api"},
    {"settings", "metrics", "log", "clock", "__init__"},
]
# kubesim stands apart: only `api` (for CRD manifests) from the rest of the package.
KUBESIM_ALLOWED = {"kubesim", "api"}
# Only these may import kubesim (besides tests and hack/).
KUBESIM_IMPORTERS = {"kubesim", "demo", "cli"}


def _top(module_path: Path) -> str:
    rel = module_path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _layer(top: str) -> int:
    for index, layer in enumerate(LAYERS):
        if top in layer:
            return index
    raise AssertionError(f"module servicegroup.{top} is in no layer: add it to DESIGN.md and here")


def _is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").exists() or (PACKAGE / name).is_dir()


def _imported_tops(tree: ast.Module) -> set[str]:
    tops: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "servicegroup" and len(parts) > 1:
                    tops.add(parts[1])
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "servicegroup":
                if len(parts) > 1:
                    tops.add(parts[1])
                else:
                    # `from servicegroup import x`: a submodule, or a name from __init__.
                    tops.update(
                        alias.name if _is_module(alias.name) else "__init__" for alias in node.names
                    )
    return tops


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_lower_layers(path: Path) -> None:
    top = _top(path)
    imported = _imported_tops(ast.parse(path.read_text(), filename=str(path)))
    if top == "kubesim":
        assert imported <= KUBESIM_ALLOWED, f"kubesim imports {imported - KUBESIM_ALLOWED}"
        return
    if "kubesim" in imported:
        assert top in KUBESIM_IMPORTERS, f"servicegroup.{top} must not import kubesim"
        imported = imported - {"kubesim"}
    own = _layer(top)
    for other in imported:
        assert _layer(other) >= own, (
            f"servicegroup.{top} imports servicegroup.{other}, a higher layer"
        )


def test_layer_check_catches_an_upward_import() -> None:
    tree = ast.parse("from servicegroup.controller import Controller\n")
    assert "controller" in _imported_tops(tree)
    assert _layer("controller") < _layer("informers")
