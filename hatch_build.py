"""Two wheels from the one tree src/devslice (hatchling's custom hooks; see pyproject.toml).

``devslice-sdk`` (sdk/pyproject.toml) takes the files its hook config lists; ``devslice`` takes
every other file of src/devslice, so no file is in both and none is left out. An editable
install ships no files: each project puts src/ on sys.path instead (``dev-mode-dirs``). The
``devslice`` metadata hook pins ``devslice-sdk`` at the version both read from
src/devslice/__init__.py. Wheels only (`make wheels`, `pip wheel`, `pip install ./sdk`): an
sdist of sdk/ would not hold ../src.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface
from hatchling.metadata.plugin.interface import MetadataHookInterface

REPO = Path(__file__).resolve().parent
SRC = REPO / "src"
SDK = "devslice-sdk"
DATA = {".py", ".typed", ".yaml"}  # what a wheel ships of src/devslice (no caches, no backups)


def sdk_files() -> list[str]:
    """The SDK's files and folders, relative to src/ (sdk/pyproject.toml)."""
    config = tomllib.loads((REPO / "sdk" / "pyproject.toml").read_text())
    listed: list[str] = config["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["custom"][
        "files"]
    missing = [p for p in listed if not (SRC / p).exists()]
    if missing:
        raise FileNotFoundError(f"sdk/pyproject.toml lists files src/ does not have: {missing}")
    return listed


def wheel_files(sdk: bool) -> dict[str, str]:
    """Source path -> path in the wheel, for the SDK's wheel (``sdk``) or the command's."""
    listed = sdk_files()
    out = {}
    for path in sorted((SRC / "devslice").rglob("*")):
        if not path.is_file() or path.suffix not in DATA or "__pycache__" in path.parts:
            continue
        name = path.relative_to(SRC).as_posix()
        if any(name == p or name.startswith(p + "/") for p in listed) == sdk:
            out[str(path)] = name
    return out


class SplitTree(BuildHookInterface):  # type: ignore[type-arg]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "standard":  # editable: src/ on sys.path (dev-mode-dirs), no copies
            build_data["force_include"].update(wheel_files(self.metadata.name == SDK))


class PinnedSdk(MetadataHookInterface):
    def update(self, metadata: dict[str, Any]) -> None:
        metadata["dependencies"] = [f"{SDK}[kube]=={metadata['version']}",
                                    *self.config["dependencies"]]
