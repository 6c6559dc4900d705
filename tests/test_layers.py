"""The package's layers: imports go one way, down, and no module imports itself round a circle.

Layer order, bottom up: core < spec < run < analysis < report < kernelparity < the top (cli,
the package's public face). `model` is the test oracle and imports nothing of the package.
Function-local imports count like module-level ones: a circle closed inside a function is
still a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "iommubench"
LAYERS = ["model", "core", "spec", "run", "analysis", "report", "kernelparity"]
TOP = {"cli", "__init__", "_version", "__main__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """The rank of a module's layer (the top is above every layer)."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] in TOP:
        return len(LAYERS) + (0 if len(parts) > 1 and parts[1] == "_version" else 1)
    return LAYERS.index(parts[1])


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package modules `path` imports, anywhere in the file."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("iommubench"):
                continue
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in modules:
                    out.add(full)
                elif node.module != "iommubench":  # the package itself: only the compiled _core
                    out.add(node.module)
    return {m for m in out if m in modules}


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py") if "native" not in p.parts}
    files = {m: p for m, p in files.items() if not m.endswith("_core")}
    modules = set(files)
    return {m: imports_of(p, modules) - {m} for m, p in files.items()}


def test_every_module_sits_in_a_layer() -> None:
    for module in graph():
        assert layer_of(module) >= 0, module


def test_imports_go_down_only() -> None:
    """A module imports its own layer or a lower one (the _version module is for everyone)."""
    upward = [
        f"{m} -> {d}"
        for m, deps in graph().items()
        for d in deps
        if d != "iommubench._version" and layer_of(d) > layer_of(m)
    ]
    assert not upward, upward


def test_no_import_circle() -> None:
    deps = graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for d in sorted(deps[m]):
            if state.get(d) == 1:
                pytest.fail("import circle: " + " -> ".join([*path[path.index(d) :], d]))
            if d not in state:
                visit(d)
        path.pop()
        state[m] = 2

    for m in sorted(deps):
        if m not in state:
            visit(m)


def test_the_public_face_resolves() -> None:
    import iommubench

    for name in iommubench.__all__:
        assert callable(getattr(iommubench, name)) or name == "__version__", name


def test_the_benchmarks_import_what_exists() -> None:
    """bench/*.py import names from the package that exist (they run outside the tests)."""
    import importlib

    bench = PACKAGE.parents[1] / "bench"
    for path in bench.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("iommubench"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name) or importlib.util.find_spec(
                        f"{node.module}.{alias.name}"
                    ), f"{path.name}: {node.module}.{alias.name}"
