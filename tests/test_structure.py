"""The code's shape, measured (issue 14): small functions, one home per shared service,
production code that never loads the test package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "devslice"
MAX_COMPLEXITY = 20
SERVICE_SETTINGS = {"event_hubs", "storage", "data_explorer", "signal_r"}  # Environment fields


def production_modules() -> list[Path]:
    """Every module of devslice but the test helpers and fakes it ships (devslice.testing)."""
    return sorted(p for p in SRC.rglob("*.py") if "testing" not in p.relative_to(SRC).parts)


def test_no_production_function_is_too_complex() -> None:
    radon = pytest.importorskip("radon.complexity")
    found = []
    for path in production_modules():
        for block in radon.cc_visit(path.read_text()):
            items = [block, *getattr(block, "closures", [])]
            found += [f"{path.relative_to(SRC)}:{b.lineno} {b.fullname} ({b.complexity})"
                      for b in items if b.complexity > MAX_COMPLEXITY]
    assert not found, f"cyclomatic complexity above {MAX_COMPLEXITY}: {found}"


def _imports(tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):  # imports inside functions too
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


def test_production_never_imports_the_test_package() -> None:
    found = [f"{path.relative_to(SRC)}: {name}" for path in production_modules()
             for name in _imports(ast.parse(path.read_text()))
             if name == "devslice.testing" or name.startswith(("devslice.testing.", "tests"))]
    assert not found


def test_only_the_services_branch_on_a_services_mode() -> None:
    """``env.storage.mode == "emulator"`` and the like belong in devslice/services/ (and the
    config's own validation); everyone else asks the services."""
    found = []
    for path in production_modules():
        parts = path.relative_to(SRC).parts
        if parts[0] in ("services", "config"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            for side in (node.left, *node.comparators):
                if (isinstance(side, ast.Attribute) and side.attr == "mode"
                        and isinstance(side.value, ast.Attribute)
                        and side.value.attr in SERVICE_SETTINGS):
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not found, f"a service's mode decided outside devslice/services: {found}"


def test_the_testing_package_loads_nothing_heavy_on_import() -> None:
    code = ("import sys, devslice.testing as t\n"
            "heavy = [m for m in ('devslice.embedded', 'azure.eventhub',\n"
            "                     'devslice.testing.azurite') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "assert t.find_azurite is t.__getattr__('find_azurite')\n"
            "from devslice.testing import EmbeddedHub, embedded_slice\n"
            "assert 'devslice.embedded' in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
