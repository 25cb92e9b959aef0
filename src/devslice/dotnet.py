""".NET as `devslice debug --ide` hands it to an IDE: what ``dotnet run`` would build and run.

An IDE's .NET debugger launches a project (Rider's ".NET Project" configuration) or a built
assembly (VS Code's ``coreclr``), not the ``dotnet run`` command line, so devslice reads the
command the way the .NET SDK does: ``--project`` (a project file, or a folder holding exactly
one; the current folder by default), ``-f|--framework`` (else the project's
``TargetFramework``, or its only ``TargetFrameworks`` entry), ``-c|--configuration`` (Debug),
and the program's arguments after ``--``. The assembly is the project's ``AssemblyName`` (else
its file name) under ``bin/CONFIGURATION/FRAMEWORK/``, the SDK's default output path.

These are facts: reading files, never changing them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from devslice.errors import DevsliceError

PROJECT_SUFFIXES = (".csproj", ".fsproj", ".vbproj")
_VALUED = {"--project": "project", "-f": "framework", "--framework": "framework",
           "-c": "configuration", "--configuration": "configuration"}
_FLAGS = {"--no-build", "--no-restore", "--no-dependencies", "--no-launch-profile"}


class DotnetProjectError(DevsliceError):
    """The .NET command cannot be understood as a project an IDE can launch."""


@dataclass(frozen=True)
class DotnetRun:
    """``dotnet run`` resolved to the project it builds and the assembly it runs."""

    project: Path  # the project file, absolute
    framework: str
    configuration: str
    args: tuple[str, ...]  # the program's own arguments
    assembly_name: str

    @property
    def assembly(self) -> Path:
        """The SDK's default output: ``bin/CONFIGURATION/FRAMEWORK/NAME.dll``."""
        return (self.project.parent / "bin" / self.configuration / self.framework
                / f"{self.assembly_name}.dll")


def project_file(path: Path) -> Path:
    """A project file given itself or the folder that holds exactly one (as ``dotnet run``)."""
    if path.is_file():
        if path.suffix not in PROJECT_SUFFIXES:
            raise DotnetProjectError(f"{path} is not a .NET project file",
                                     hint="give a *.csproj, *.fsproj or *.vbproj, or its folder")
        return path.resolve()
    if not path.is_dir():
        raise DotnetProjectError(f"no project at {path}: no such file or folder")
    found = sorted(p for p in path.iterdir() if p.suffix in PROJECT_SUFFIXES and p.is_file())
    if len(found) != 1:
        listed = ", ".join(p.name for p in found) or "none"
        raise DotnetProjectError(
            f"{path.resolve()} must hold exactly one project file for `dotnet run`, it holds "
            f"{listed}", hint="name it with `dotnet run --project PATH`")
    return found[0].resolve()


def _properties(path: Path) -> dict[str, str]:
    """The MSBuild properties set in one file (namespace-agnostic: old projects use one)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise DotnetProjectError(f"cannot read {path}: {exc}") from exc
    out: dict[str, str] = {}
    for group in root:
        if group.tag.rsplit("}", 1)[-1] != "PropertyGroup" or "Condition" in group.attrib:
            continue
        for prop in group:
            if prop.text and prop.text.strip() and "Condition" not in prop.attrib:
                out.setdefault(prop.tag.rsplit("}", 1)[-1], prop.text.strip())
    return out


def _framework(project: Path, stop: Path) -> str | None:
    """TargetFramework(s) from the project, else from Directory.Build.props above it (up to
    ``stop``), as MSBuild imports it."""
    files = [project]
    folder = project.parent
    while True:
        props = folder / "Directory.Build.props"
        if props.is_file():
            files.append(props)
        if folder == stop or folder.parent == folder:
            break
        folder = folder.parent
    for f in files:
        found = _properties(f)
        if "TargetFramework" in found:
            return found["TargetFramework"]
        if "TargetFrameworks" in found:
            many = [t.strip() for t in found["TargetFrameworks"].split(";") if t.strip()]
            if len(many) == 1:
                return many[0]
            raise DotnetProjectError(
                f"{project.name} targets several frameworks ({', '.join(many)})",
                hint=f"pick one, as dotnet run requires: `dotnet run -f {many[0]}`")
    return None


def parse_run(argv: list[str], cwd: Path, stop: Path) -> DotnetRun:
    """``dotnet run ARGS`` (``argv`` after ``run``) as the SDK reads it; ``stop`` bounds the
    search for Directory.Build.props (the project's root)."""
    given: dict[str, str] = {}
    args: tuple[str, ...] = ()
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            args = tuple(argv[i:])
            break
        name, eq, inline = word.partition("=")
        if name in _VALUED:
            if not eq:
                if i >= len(argv):
                    raise DotnetProjectError(f"`dotnet run {name}` needs a value")
                inline = argv[i]
                i += 1
            given[_VALUED[name]] = inline
        elif word in _FLAGS:
            continue
        else:
            raise DotnetProjectError(
                f"an IDE configuration cannot carry `dotnet run {word}`",
                hint="devslice understands dotnet run's --project, -f/--framework, "
                     "-c/--configuration, --no-build and --no-restore; put the program's own "
                     "arguments after `--` (a launch profile's settings are not carried: "
                     "Rider's .NET Project configuration does not read launchSettings.json)")
    project = project_file(cwd / given.get("project", "."))
    framework = given.get("framework") or _framework(project, stop)
    if framework is None:
        raise DotnetProjectError(f"{project.name} names no TargetFramework",
                                 hint="pass it: `dotnet run -f net8.0`")
    name = _properties(project).get("AssemblyName", project.stem)
    return DotnetRun(project, framework, given.get("configuration", "Debug"), args, name)
