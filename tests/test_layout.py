"""House rules that a test can enforce (DESIGN.md): imports flow one way, folder by folder, with
no cycle (function-level imports count); the package root is lazy; nothing happens at import
time; modules and functions stay small; public items have docstrings."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "levelup"

# Layers, lowest first: a module imports only from a lower rank or from its own folder. Folders of
# equal rank (data and report; qm and model; train, properties and ase.py) must not import each
# other. The ground floor may import errors.py only.
RANK = {
    "errors": 0,
    "units": 1, "elements": 1, "atomicwrite": 1, "_version": 1, "progress": 1, "configload": 1,
    "jsonvalues": 1,
    "data": 2, "report": 2,
    "qm": 3, "model": 3,
    "train": 4, "properties": 4, "ase": 4,
    "transfer": 5, "explore": 5,
    "selection": 6,
    "study": 7,
    "compat": 8,
    "cli": 9,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported(path: Path) -> set[str]:
    """levelup modules that ``path`` imports anywhere (module level or inside functions), except
    under ``if TYPE_CHECKING:``; ``from levelup.a import b`` counts as levelup.a.b when b is a
    module, else as levelup.a."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            if isinstance(child, ast.ImportFrom):
                assert child.level == 0, f"{path}: relative import (the house uses absolute ones)"
                if (child.module or "").split(".")[0] == "levelup":
                    for alias in child.names:
                        name = f"{child.module}.{alias.name}"
                        found.add(name if name in MODULES else child.module)
            elif isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.split(".")[0] == "levelup")
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m in MODULES}


GRAPH = {name: imported(path) - {name} for name, path in MODULES.items()}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "levelup"


def test_every_module_has_a_layer():
    unknown = sorted({layer(m) for m in MODULES} - set(RANK) - {"levelup"})
    assert not unknown, f"new top-level modules or folders need a rank in RANK: {unknown}"


def test_imports_flow_one_way():
    bad = []
    for module, deps in GRAPH.items():
        here = layer(module)
        if here == "levelup":  # the lazy root may name anything
            continue
        for dep in deps:
            there = layer(dep)
            if there != here and (there == "levelup" or RANK[there] >= RANK[here]):
                bad.append(f"{module} -> {dep}")
    assert not bad, "imports against the layers:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    """Depth-first search for a back edge over every levelup import."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(GRAPH):
        if start not in state and (cycle := visit(start)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_the_root_is_lazy_and_every_export_resolves():
    code = ("import sys, levelup; assert 'torch' not in sys.modules, 'import levelup loaded torch'; "
            "assert 'pyscf' not in sys.modules; "
            "missing = [n for n in levelup.__all__ if getattr(levelup, n, None) is None]; "
            "assert not missing, missing")
    subprocess.run([sys.executable, "-c", code], check=True)


MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def test_modules_and_functions_stay_small():
    """No module over 400 lines, no function over 60 (from ``def`` to its last line)."""
    big, long = [], []
    for name, path in MODULES.items():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            big.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert not big and not long, "\n".join(big + long)


def _public(tree: ast.Module) -> list[ast.AST]:
    """The module, its public classes and functions, and their public methods."""
    items: list[ast.AST] = [tree]
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            items.append(node)
            if isinstance(node, ast.ClassDef):
                items += [m for m in node.body if isinstance(m, ast.FunctionDef)
                          and not m.name.startswith("_")]
    return items


def test_public_items_have_docstrings():
    """Every module, and every public class, function and method, says what it is."""
    missing = [f"{name}.{getattr(item, 'name', '<module>')}" for name, path in MODULES.items()
               for item in _public(ast.parse(path.read_text())) if ast.get_docstring(item) is None]
    assert not missing, "no docstring: " + ", ".join(missing)


def test_no_utils_catch_all():
    assert not list(SRC.rglob("utils.py")) and not list(SRC.rglob("helpers.py"))


def test_import_has_no_side_effects():
    code = (
        "import os, torch; before = torch.get_num_threads(); env = dict(os.environ);"
        "import levelup, warnings; [getattr(levelup, n) for n in levelup.__all__];"
        "assert torch.get_num_threads() == before, 'threads changed';"
        "assert dict(os.environ) == env, 'environment changed'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
