"""The package-level import graph of devslice (issue 14): no cycle between packages, and an
import inside a function only where laziness is deliberate, with a ``# lazy: reason`` comment
on its line or the line above.

Both are read from the AST, imports at module level and inside functions alike. What is not
done yet is listed here by name, as a ratchet: an entry can only be removed (the test fails
when one is no longer true, so the lists shrink with the code), and anything new fails.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "devslice"

# Edges inside import cycles between packages still to be cut: none since issue 14 (derived
# names live in config, what the SDK and the embedded hub share in ``hubs``, Azure access and
# Key Vault reads in ``access`` below both ``secrets`` and ``cloud``). Never add one.
KNOWN_CYCLE_EDGES: set[tuple[str, str]] = set()


def package(module: str) -> str:
    """``devslice.resources.k3d`` -> ``resources``; a top-level module is its own package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def modules(root: Path = SRC) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        name = ".".join(rel.parts)
        yield name.removesuffix(".__init__"), path


def imported(module: str, path: Path, tree: ast.AST) -> Iterator[tuple[str, int]]:
    """Every devslice module ``tree`` imports (with its line), resolving relative imports."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (path.name == "__init__.py")]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            yield target, node.lineno
            yield from ((f"{target}.{a.name}", node.lineno) for a in node.names)


def graph(root: Path = SRC) -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> where ("module:line")."""
    top = root.name
    known = {package(m) for m, _ in modules(root)}
    out: dict[str, dict[str, list[str]]] = {}
    for module, path in modules(root):
        for target, line in imported(module, path, ast.parse(path.read_text("utf-8"))):
            if not target.startswith(f"{top}.") or package(target) not in known:
                continue
            a, b = package(module), package(target)
            where = out.setdefault(a, {}).setdefault(b, []) if a != b else []
            if a != b and f"{module}:{line}" not in where:
                where.append(f"{module}:{line}")
    return out


def cycles(edges: Mapping[str, Mapping[str, object]]) -> list[set[str]]:
    """Strongly connected components of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def test_no_new_import_cycle_between_packages() -> None:
    edges = graph()
    inside = {(a, b): edges[a][b] for component in cycles(edges)
              for a in component for b in edges.get(a, {}) if b in component}
    new = {edge: where for edge, where in inside.items() if edge not in KNOWN_CYCLE_EDGES}
    assert new == {}, "imports that close a cycle between packages"
    gone = KNOWN_CYCLE_EDGES - set(inside)
    assert gone == set(), "no longer in a cycle: remove from KNOWN_CYCLE_EDGES"


def test_the_packages_cut_free_stay_out_of_cycles() -> None:
    edges = graph()
    tangled = set().union(*cycles(edges))
    assert not tangled & {"adapters", "engine", "errors", "facts", "local", "identity", "cli"}


def test_the_cycle_finder_finds_a_cycle_through_a_lazy_import(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    for rel, text in {"a/__init__.py": "", "a/x.py": "from pkg.b.y import f\n",
                      "b/__init__.py": "", "b/y.py": "def f():\n    from pkg.a import x\n",
                      "c.py": "import pkg.a.x\n"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    edges = graph(root)
    assert edges == {"a": {"b": ["pkg.a.x:1"]}, "b": {"a": ["pkg.b.y:2"]},
                     "c": {"a": ["pkg.c:1"]}}
    assert cycles(edges) == [{"a", "b"}]


# -- imports inside functions ------------------------------------------------------------------

# Modules whose imports inside functions do not say why yet, and how many (issue 14; the
# perf helper owns the SDK's and the start-up's, the services helper the contract's, the local
# runtime's, doctor's and verify's, the azure helper cloud's).
PENDING_LAZY: dict[str, int] = {}


def unexplained(path: Path) -> list[int]:
    """Lines of imports inside functions without ``# lazy:`` on the line or the one above."""
    text = path.read_text("utf-8").splitlines()
    out = set()
    for fn in ast.walk(ast.parse("\n".join(text))):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Import | ast.ImportFrom):
                here, above = text[node.lineno - 1], text[node.lineno - 2]
                if "# lazy:" not in here and not above.strip().startswith("# lazy:"):
                    out.add(node.lineno)
    return sorted(out)


def test_imports_inside_functions_say_why() -> None:
    counts = {}
    for _, path in modules():
        rel = path.relative_to(SRC).as_posix()
        lines = unexplained(path)
        if len(lines) > PENDING_LAZY.get(rel, 0):
            counts[rel] = lines
    assert counts == {}, "add `# lazy: why` (start-up time of a command), or import at the top"


def test_pending_counts_only_shrink() -> None:
    stale = {rel: (n, len(unexplained(SRC / rel))) for rel, n in PENDING_LAZY.items()
             if not (SRC / rel).exists() or len(unexplained(SRC / rel)) < n}
    assert stale == {}, "fewer unexplained lazy imports now: lower PENDING_LAZY"


def test_the_lazy_rule_sees_an_unexplained_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import json\n    # lazy: start-up\n    import csv\n"
                      "    import re  # lazy: start-up\n")
    assert unexplained(module) == [2]
