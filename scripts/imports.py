"""Which distributions devslice's code imports directly, and which the SDK needs.

    python scripts/imports.py            # every third-party top-level module, by devslice module
    python scripts/imports.py --closure devslice.sdk devslice.contract
                                         # third-party modules reachable from those packages

Reads the source with ``ast`` (nothing is imported), following devslice's own imports
(including those inside functions) for ``--closure``. tests/test_packaging.py uses it to check
that each distribution (pyproject.toml, sdk/pyproject.toml) declares what its files import and
that devslice-sdk's files are the closure of what a service imports.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def modules(src: Path = SRC) -> dict[str, Path]:
    out = {}
    for path in sorted((src / "devslice").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, typing_too: bool = False) -> set[str]:
    """Absolute names imported by one module (relative imports resolved); imports under
    ``if TYPE_CHECKING:`` are left out unless ``typing_too``."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and not typing_too and "TYPE_CHECKING" in ast.unparse(
                node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def third_party(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names
            if n.split(".")[0] not in sys.stdlib_module_names and not n.startswith("devslice")
            and n.split(".")[0] != "__future__"}


def closure(roots: list[str], src: Path = SRC) -> tuple[set[str], set[str]]:
    """(devslice modules reachable from ``roots``' modules, third-party top-level modules)."""
    mods = modules(src)
    todo = [m for m in mods if any(m == r or m.startswith(r + ".") for r in roots)]
    seen: set[str] = set()
    outside: set[str] = set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        names = imports_of(m, mods[m])
        outside |= third_party(names)
        for n in names:
            # the module itself and every package above it (importing runs their __init__)
            parts = n.split(".")
            for i in range(1, len(parts) + 1):
                candidate = ".".join(parts[:i])
                if candidate in mods and candidate not in seen:
                    todo.append(candidate)
    return seen, outside


def main(argv: list[str]) -> int:
    if argv[:1] == ["--closure"]:
        seen, outside = closure(argv[1:])
        print("devslice modules:", " ".join(sorted(seen)))
        print("third-party:", " ".join(sorted(outside)))
        return 0
    for name, path in modules().items():
        names = third_party(imports_of(name, path))
        if names:
            print(f"{name}: {' '.join(sorted(names))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
