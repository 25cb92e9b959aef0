"""Azurite, found where a project put it or installed by devslice into its own cache.

A checkout of devslice has Azurite in node_modules (package.json pins it); a wheel installed
in an empty folder has not. There devslice installs the pinned version on first use with
``npm install --prefix CACHE/azurite-VERSION azurite@VERSION`` (through the runner adapter),
into a temporary folder renamed into place when complete, so an interrupted install is never
taken for a finished one. Planning only *locates*: it never installs, and says what `up` will.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from devslice.adapters.runner import CommandRunner, SubprocessRunner
from devslice.errors import CommandFailed, ToolMissing

# The version package.json pins for devslice's own tests (a test keeps the two equal).
AZURITE_VERSION = "3.37.0"
NODE_HINT = ("install Node.js 20 or newer (https://nodejs.org; it brings npm): devslice then "
             f"installs Azurite {AZURITE_VERSION} into its cache on first use; or set "
             "AZURITE_BIN, or storage.mode: shared")
class AzuriteNotFound(ToolMissing):
    pass


# Where devslice itself lives: in its checkout, node_modules is beside package.json above it.
CHECKOUT = Path(__file__).resolve().parent



def _exe_name() -> str:
    return "azurite.cmd" if sys.platform == "win32" else "azurite"


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """$DEVSLICE_CACHE, else $XDG_CACHE_HOME/devslice, else ~/.cache/devslice."""
    environ = os.environ if environ is None else environ
    if environ.get("DEVSLICE_CACHE"):
        return Path(environ["DEVSLICE_CACHE"])
    if environ.get("XDG_CACHE_HOME"):
        return Path(environ["XDG_CACHE_HOME"]) / "devslice"
    return Path.home() / ".cache" / "devslice"


def cached_azurite(environ: Mapping[str, str] | None = None,
                   version: str = AZURITE_VERSION) -> Path:
    """Where devslice's own copy of Azurite's executable is (or will be, once installed)."""
    return cache_root(environ) / f"azurite-{version}" / "node_modules" / ".bin" / _exe_name()


def locate_azurite(start: Path, environ: Mapping[str, str] | None = None,
                   checkout: Path | None = CHECKOUT) -> Path | None:
    """$AZURITE_BIN, node_modules/.bin in ``start`` or above, in devslice's own checkout
    (``npm ci`` beside its package.json), devslice's cache, then PATH."""
    environ = os.environ if environ is None else environ
    if environ.get("AZURITE_BIN"):
        return Path(environ["AZURITE_BIN"])
    for here in (start.resolve(), *([checkout] if checkout else [])):
        for folder in (here, *here.parents):
            candidate = folder / "node_modules" / ".bin" / _exe_name()
            if candidate.exists():
                return candidate
    cached = cached_azurite(environ)
    if cached.exists():
        return cached
    found = shutil.which("azurite", path=environ.get("PATH"))
    return Path(found) if found else None


def ensure_azurite(start: Path, *, runner: CommandRunner | None = None,
                   environ: Mapping[str, str] | None = None,
                   progress: Callable[[str], None] | None = None,
                   version: str = AZURITE_VERSION, checkout: Path | None = CHECKOUT) -> Path:
    """Azurite's executable, installing the pinned version into the cache when none is found
    and npm is on PATH. Raises AzuriteNotFound, saying how to get Node, when npm is missing."""
    environ = os.environ if environ is None else environ
    found = locate_azurite(start, environ, checkout)
    if found is not None:
        return found
    runner = runner or SubprocessRunner(path=environ.get("PATH"))
    target = cached_azurite(environ, version)
    folder = target.parents[2]
    if shutil.which("npm", path=environ.get("PATH")) is None:
        raise AzuriteNotFound(f"Azurite is needed (storage emulator) and npm is not on PATH "
                              f"to install it into {folder}", hint=NODE_HINT)
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    if progress is not None:
        progress(f"installing Azurite {version} into {folder} (first use; npm install, "
                 "about a minute)")
    try:
        runner.run(["npm", "install", "--prefix", str(partial), f"azurite@{version}",
                    "--no-audit", "--no-fund"], timeout=900)
    except CommandFailed as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise CommandFailed(f"installing Azurite {version} failed: {exc.message}",
                            hint="check npm's network access (npm config get registry), "
                            "or install it yourself and set AZURITE_BIN") from exc
    installed = partial / "node_modules" / ".bin" / _exe_name()
    if not installed.exists():
        shutil.rmtree(partial, ignore_errors=True)
        raise CommandFailed(f"npm installed Azurite {version} but {installed.name} is not in "
                            f"{installed.parent}", hint="set AZURITE_BIN to its executable")
    try:
        os.replace(partial, folder)
    except OSError:  # another `up` finished first: keep its copy
        shutil.rmtree(partial, ignore_errors=True)
    if not target.exists():
        raise CommandFailed(f"Azurite {version} is not at {target} after installing it")
    return target


def azurite_readiness(start: Path, environ: Mapping[str, str] | None = None,
                      checkout: Path | None = CHECKOUT) -> tuple[bool, str]:
    """For `plan`, `status` and `doctor`, which install nothing: whether `up` will have an
    Azurite, and where it is or what `up` will do (or why it cannot, with NODE_HINT)."""
    environ = os.environ if environ is None else environ
    found = locate_azurite(start, environ, checkout)
    if found is not None:
        return True, str(found)
    folder = cached_azurite(environ).parents[2]
    if shutil.which("npm", path=environ.get("PATH")) is None:
        return False, "Azurite is not installed and npm is not on PATH to install it"
    return True, f"Azurite is not installed: `up` installs Azurite {AZURITE_VERSION} into " \
                 f"{folder} with npm"
