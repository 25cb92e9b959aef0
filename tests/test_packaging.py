"""devslice is two distributions built from one tree, src/devslice (hatch_build.py; issue 16):
devslice-sdk, what a service imports (sdk/pyproject.toml lists its files), and devslice, the
command and library (pyproject.toml). Each declares what its own files import directly; the
SDK's files are the import closure of the SDK, no more; the wheels share no file."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import devslice

from .helpers import REPO, built_wheels, fresh_venv, outside_environ, requirements

sys.path.insert(0, str(REPO / "scripts"))
import imports  # scripts/imports.py, run by hand too

# hatch_build.py, the build's own split (it imports hatchling: the `test` extra has it)
_spec = importlib.util.spec_from_file_location("hatch_build", REPO / "hatch_build.py")
assert _spec is not None and _spec.loader is not None
hatch_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hatch_build)

# Declared without a direct import, each for a reason.
TRANSITIVE_ON_PURPOSE = {"aiohttp": "the async transport azure.*.aio clients need"}
# What a service imports: the SDK (with its contract reader, devslice.sdk.context), the
# embedded event hub, the errors. devslice-sdk ships these and what their imports reach.
SDK_ROOTS = ["devslice.sdk", "devslice.embedded", "devslice.errors"]
# SDK modules that need the `kube` extra (debug leases in a pod; lightkube imported lazily).
KUBE = {"devslice.sdk.kubelease", "devslice.adapters.kube"}
# The packages a service's light install must never carry or load.
HEAVY = {"click", "rich", "pydantic", "docker", "lightkube", "ruamel", "ruamel-yaml", "pytest"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _names(requirements: list[str]) -> set[str]:
    return {_norm(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in requirements
            if not r.startswith(("devslice[", "devslice-sdk"))}


def _declared() -> dict[str, set[str]]:
    """Distribution (with an extra) -> the distributions it declares (not our dev tools)."""
    return {group: _names(declared) for group, declared in requirements().items()
            if group != "devslice[test]"}


def _sdk_modules() -> set[str]:
    """The devslice modules the devslice-sdk wheel ships (hatch_build.py's split)."""
    files = {name for name in hatch_build.wheel_files(sdk=True).values() if name.endswith(".py")}
    return {name for name, path in imports.modules().items()
            if path.relative_to(imports.SRC).as_posix() in files}


def _groups(module: str, sdk: set[str]) -> tuple[str, ...]:
    """Where ``module``'s imports must be declared: its distribution and the extra it needs."""
    if module in sdk:
        return ("devslice-sdk", "devslice-sdk[kube]") if module in KUBE else ("devslice-sdk",)
    if module.startswith("devslice.testing"):
        return "devslice", "devslice[testing]"
    return ("devslice",)


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


def _used_by_module() -> dict[str, set[str]]:
    """devslice module -> the distributions it imports directly."""
    index = _module_index()
    out = {}
    for name, path in imports.modules().items():
        found = imports.imports_of(name, path)
        out[name] = {_distribution(n, index) for n in found if imports.third_party({n})}
    return out


def test_the_sdk_wheel_is_the_import_closure_of_what_a_service_imports() -> None:
    reached, _ = imports.closure(SDK_ROOTS)
    shipped = _sdk_modules()
    assert sorted(reached - shipped) == []  # the SDK works from its own wheel
    assert sorted(shipped - reached) == []  # and carries nothing a service does not run
    assert {"devslice", "devslice.sdk.context", "devslice.embedded.eventhub"} <= shipped


def test_the_example_services_need_only_the_sdk() -> None:
    """examples/shop's images install devslice-sdk alone (their Dockerfiles)."""
    modules, sdk = imports.modules(), _sdk_modules()
    used = set()
    for path in (REPO / "examples" / "shop" / "services").rglob("*.py"):
        for name in imports.imports_of("service", path):
            parts = name.split(".")
            used |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)
                     if ".".join(parts[:i]) in modules}
    assert "devslice.sdk.eventhubs" in used and sorted(used - sdk) == []
    for dockerfile in (REPO / "examples" / "shop" / "services").glob("*/Dockerfile"):
        assert "/tmp/vendor/devslice_sdk-*.whl)[kube]" in dockerfile.read_text()


def test_every_direct_import_is_declared_by_the_distribution_that_imports_it() -> None:
    declared = _declared()
    sdk = _sdk_modules()
    missing = []
    for module, used in _used_by_module().items():
        groups = _groups(module, sdk)
        allowed = set().union(*(declared[g] for g in groups))
        missing += [f"{module} imports {dist}, not declared by {groups[-1]}"
                    for dist in sorted(used - allowed)]
    assert missing == []


def test_no_declared_dependency_is_unused() -> None:
    declared = _declared()
    sdk = _sdk_modules()
    used: dict[str, set[str]] = {g: set() for g in declared}
    for module, dists in _used_by_module().items():
        for group in _groups(module, sdk):
            used[group] |= dists & declared[group]
    unused = {g: sorted(declared[g] - used[g] - set(TRANSITIVE_ON_PURPOSE)) for g in declared}
    assert unused == {g: [] for g in declared}
    assert "azure-eventhub-checkpointstoreblob-aio" not in set().union(*declared.values())
    assert HEAVY & declared["devslice-sdk"] == set()  # a service's line stays light


def test_a_package_both_distributions_declare_has_one_requirement() -> None:
    by_name: dict[str, set[str]] = {}
    for group in ("devslice-sdk", "devslice-sdk[kube]", "devslice"):
        for requirement in requirements()[group]:
            by_name.setdefault(_norm(re.split(r"[<>=!~\[; ]", requirement)[0]), set()).add(
                requirement.split("#")[0].strip())
    assert {n: r for n, r in by_name.items() if len(r) > 1} == {}
    assert "azure-storage-blob" in by_name and "lightkube" in by_name  # both declare these


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


# -- the built wheels (slow: `make wheels` once per state of the sources, then fresh venvs) --

def _wheel(path: Path) -> tuple[set[str], str]:
    """(the files a wheel installs, its METADATA)."""
    with zipfile.ZipFile(path) as z:
        files = {n for n in z.namelist() if ".dist-info/" not in n}
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return files, z.read(meta).decode()


@pytest.mark.slow
def test_the_two_wheels_split_the_tree_and_share_one_version() -> None:
    wheels = built_wheels()
    sdk, sdk_meta = _wheel(wheels.sdk)
    command, command_meta = _wheel(wheels.devslice)
    assert sdk & command == set()  # no file in both
    tree = {p.relative_to(REPO / "src").as_posix() for p in (REPO / "src" / "devslice").rglob("*")
            if p.is_file() and p.suffix in (".py", ".yaml", ".typed")
            and "__pycache__" not in p.parts}
    assert sdk | command == tree  # and none left out
    assert {f.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            for f in sdk if f.endswith(".py")} == imports.closure(SDK_ROOTS)[0]
    assert {"devslice/__init__.py", "devslice/py.typed"} <= sdk
    assert {"devslice/cli/__init__.py", "devslice/testing/fixtures.py",
            "devslice/config/starter.yaml"} <= command
    version = devslice.__version__  # written once, read by both builds
    assert f"\nName: devslice-sdk\nVersion: {version}\n" in sdk_meta
    assert f"\nName: devslice\nVersion: {version}\n" in command_meta
    assert f"\nRequires-Dist: devslice-sdk[kube]=={version}\n" in command_meta


@pytest.mark.slow
def test_the_sdk_alone_imports_without_the_cli_docker_or_kubernetes(tmp_path: Path) -> None:
    clean = outside_environ()
    wheels = built_wheels()
    bin_dir = fresh_venv(tmp_path / "venv", str(wheels.sdk), wheels=wheels)  # a service's line
    installed = subprocess.run([bin_dir / "pip", "list", "--format", "freeze"],
                               capture_output=True, text=True, check=True, env=clean).stdout
    names = {_norm(line.split("==")[0]) for line in installed.splitlines()}
    assert "devslice-sdk" in names and "devslice" not in names
    assert names & HEAVY == set()
    assert not (bin_dir / "devslice").exists()  # the command is devslice's, not the SDK's
    check = ("import devslice.sdk.eventhubs, devslice.sdk.storage, devslice.sdk.signalr, "
             "devslice.sdk.dataexplorer, devslice.sdk.aio, devslice.sdk.leases, "
             "devslice.sdk.kubelease, devslice.embedded, sys\n"
             "from devslice.sdk.context import SliceContext\n"
             f"heavy = {sorted(HEAVY | {'yaml'})!r}\n"
             "assert not [m for m in sys.modules if m.split('.')[0] in heavy], sys.modules\n"
             "try:\n    import devslice.cli\nexcept ModuleNotFoundError as e:\n    print(e.name)\n")
    said = subprocess.run([bin_dir / "python", "-c", check], check=True, capture_output=True,
                          text=True, cwd=tmp_path, env=clean).stdout
    assert said.strip() == "devslice.cli"
    # In a pod, without the kube extra: no debug lease, a clear error the consumer survives.
    lease = ("from devslice.errors import DevsliceError\n"
             "from devslice.sdk.kubelease import KubeLeaseStore\n"
             "try:\n    KubeLeaseStore(None, 'ns').kube\n"
             "except DevsliceError as e:\n    print(e.message, '|', e.hint)\n")
    said = subprocess.run([bin_dir / "python", "-c", lease], check=True, capture_output=True,
                          text=True, cwd=tmp_path, env=clean).stdout
    assert "lightkube is not installed" in said and "devslice-sdk[kube]" in said
