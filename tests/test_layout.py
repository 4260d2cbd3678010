"""House rules that a test can enforce: imports flow one way, nothing happens at import time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "levelup"

# module -> levelup modules it must not import (DESIGN.md: units/errors/elements <- data <- qm;
# aev <- model <- train, transfer; cli and compat use only the public API)
FORBIDDEN = {
    "units.py": {"data", "qm", "model", "train", "cli"},
    "errors.py": {"data", "qm", "model", "train", "cli"},
    "elements.py": {"data", "qm", "model", "train", "cli"},
    "data": {"qm", "model", "train", "transfer", "cli", "compat"},
    "aev.py": {"model", "train", "transfer", "cli", "compat", "qm"},
}


def imported_levelup_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("levelup."):
            names.add(node.module.split(".")[1])
    return names


def test_imports_flow_one_way():
    for target, forbidden in FORBIDDEN.items():
        where = SRC / target
        files = [where] if where.is_file() else sorted(where.rglob("*.py"))
        for f in files:
            if not f.exists():
                continue
            bad = imported_levelup_modules(f) & forbidden
            assert not bad, f"{f.relative_to(SRC)} imports {sorted(bad)}"


def test_no_utils_catch_all():
    assert not list(SRC.rglob("utils.py")) and not list(SRC.rglob("helpers.py"))


def test_import_has_no_side_effects():
    code = (
        "import os, torch; before = torch.get_num_threads(); env = dict(os.environ);"
        "import levelup, warnings;"
        "assert torch.get_num_threads() == before, 'threads changed';"
        "assert dict(os.environ) == env, 'environment changed'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
