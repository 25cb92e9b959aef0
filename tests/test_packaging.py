"""pyproject.toml declares what devslice's code imports, where it is used: the runtime SDK's
needs in the base install (a service's requirements), the command's in the `cli` extra,
Kubernetes' client for pod leases in `kube`, the fakes' in `testing` (issue 16)."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from .helpers import REPO, build_wheel

sys.path.insert(0, str(REPO / "scripts"))
import imports  # scripts/imports.py, run by hand too

# Declared without a direct import, each for a reason.
TRANSITIVE_ON_PURPOSE = {"aiohttp": "the async transport azure.*.aio clients need"}
# devslice modules a service runs, which the base install must carry all imports of.
LIGHT = ("devslice.sdk", "devslice.embedded", "devslice.errors", "devslice.slices.names")
NOT_LIGHT = {"devslice.sdk.kubelease": "kube", "devslice.adapters.kube": "kube"}
# What each install has: an extra brings the base and the extras it names.
GROUPS = {"base": ("base",), "kube": ("base", "kube"), "cli": ("base", "kube", "cli"),
          "testing": ("base", "kube", "cli", "testing")}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> dict[str, set[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    groups = {"base": project["dependencies"], **project["optional-dependencies"]}
    return {g: {_norm(re.split(r"[<>=!~\[; ]", d, maxsplit=1)[0]) for d in deps
                if not d.startswith("devslice[")}
            for g, deps in groups.items()}


def _module_index() -> dict[str, str]:
    """Dotted module name -> the installed distribution that ships it."""
    out: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        for f in dist.files or ():
            parts = Path(str(f)).with_suffix("").parts
            if str(f).endswith(".py") and ".." not in parts[:1]:
                dotted = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
                out.setdefault(dotted, _norm(dist.metadata["Name"]))
    return out


def _distribution(name: str, index: dict[str, str]) -> str:
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in index:
            return index[".".join(parts[:i])]
    raise AssertionError(f"no installed distribution ships {name}")


def _imports_by_module() -> dict[str, set[str]]:
    out = {}
    for name, path in imports.modules().items():
        found = imports.imports_of(name, path)
        out[name] = {n for n in found if imports.third_party({n})}
    return out


def test_every_direct_import_is_declared_where_it_is_used() -> None:
    declared = _declared()
    index = _module_index()
    missing = []
    for module, names in _imports_by_module().items():
        light = module.startswith(LIGHT) and module not in NOT_LIGHT
        group = "base" if light else NOT_LIGHT.get(module) or (
            "testing" if module.startswith("devslice.testing") else "cli")
        allowed = set().union(*(declared[g] for g in GROUPS[group]))
        for name in names:
            dist = _distribution(name, index)
            if dist not in allowed:
                missing.append(f"{module} imports {name} ({dist}), not declared for {group}")
    assert missing == []


def test_no_declared_dependency_is_unused() -> None:
    declared = _declared()
    index = _module_index()
    used = {_distribution(n, index) for names in _imports_by_module().values() for n in names}
    runtime = declared["base"] | declared["cli"] | declared["kube"] | declared["testing"]
    assert sorted(runtime - used - set(TRANSITIVE_ON_PURPOSE)) == []
    assert "azure-eventhub-checkpointstoreblob-aio" not in runtime


def test_the_imports_script_finds_imports_inside_functions_and_skips_type_checking(
        tmp_path: Path) -> None:
    src = tmp_path / "src" / "devslice"
    src.mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "m.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    import click\n\ndef f():\n    import lightkube.core\n"
                              "    from . import other\n")
    (src / "other.py").write_text("import rich\n")
    seen, outside = imports.closure(["devslice.m"], tmp_path / "src")
    assert seen == {"devslice", "devslice.m", "devslice.other"}
    assert outside == {"lightkube", "rich"}


# -- the light install in a fresh venv (slow: builds the wheel, installs it, ~30 s) ----------

@pytest.mark.slow
def test_the_light_install_imports_the_sdk_without_the_cli_docker_or_kubernetes(
        tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    wheel = build_wheel(tmp_path / "dist")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=clean)
    subprocess.run([venv / "bin" / "pip", "install", "-q", str(wheel)], check=True, env=clean)
    installed = subprocess.run([venv / "bin" / "pip", "list", "--format", "freeze"],
                               capture_output=True, text=True, check=True, env=clean).stdout
    names = {_norm(line.split("==")[0]) for line in installed.splitlines()}
    assert not names & {"click", "rich", "docker", "lightkube", "pydantic", "pytest"}
    check = ("import devslice.sdk.eventhubs, devslice.sdk.storage, devslice.sdk.signalr, "
             "devslice.sdk.dataexplorer, devslice.sdk.aio, devslice.embedded, sys\n"
             "from devslice.sdk import SliceContext\n"
             "assert not any(m.startswith(('click', 'rich', 'docker', 'lightkube')) "
             "for m in sys.modules), sorted(sys.modules)\n")
    subprocess.run([venv / "bin" / "python", "-c", check], check=True, env=clean,
                   cwd=tmp_path)
    # In a pod, without the kube extra: no debug lease, a clear error the consumer survives.
    lease = ("from devslice.errors import DevsliceError\n"
             "from devslice.sdk.kubelease import KubeLeaseStore\n"
             "try:\n    KubeLeaseStore(None, 'ns').kube\n"
             "except DevsliceError as e:\n    print(e.message, '|', e.hint)\n")
    said = subprocess.run([venv / "bin" / "python", "-c", lease], check=True, env=clean,
                          capture_output=True, text=True).stdout
    assert "lightkube is not installed" in said and "devslice[kube]" in said
    done = subprocess.run([venv / "bin" / "devslice", "init"], capture_output=True,
                          text=True, env=clean, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert 'pip install "devslice[cli]"' in done.stderr
