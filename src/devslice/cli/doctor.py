"""``devslice doctor``: what is installed, what is reachable, and how to fix what is not."""

from __future__ import annotations

import shutil
from typing import Any

from devslice.cli.output import console, emit
from devslice.errors import DevsliceError
from devslice.text import plural


def run_doctor(state: Any, fmt: str) -> bool:
    from devslice.facts.tools import TOOLS, probe_all  # lazy: only when this command runs

    checks: list[dict[str, Any]] = []
    for fact in probe_all(TOOLS):
        checks.append({
            "name": fact.tool.name, "ok": fact.ok or not fact.tool.required,
            "found": fact.path is not None, "version": fact.version,
            "problem": fact.problem, "fix": fact.tool.fix if not fact.ok else None,
            "neededFor": fact.tool.needed_for,
        })
    config_check: dict[str, Any] = {"name": "config", "ok": True, "found": True,
                                    "version": None, "problem": None, "fix": None,
                                    "neededFor": "everything"}
    ledger_check: dict[str, Any] = {"name": "ledger", "ok": False, "found": False,
                                    "version": None, "problem": None, "fix": None,
                                    "neededFor": "slices"}
    try:
        project = state.project()
        config_check["version"] = str(project.config_path)
        try:
            from devslice.ledger.reach import describe, reach_issue  # lazy: per command

            ledger = project.ledger
            slices = ledger.read().slices
            held = plural(len(slices), "slice")
            ledger_check.update(ok=True, found=True, version=f"{ledger.location} "
                                f"({held}; {describe(project.env, ledger)})")
            refused = reach_issue(project.env, project.config_path, ledger)
            if refused is not None:
                ledger_check.update(ok=False, problem=refused.message, fix=refused.hint)
        except DevsliceError as exc:
            ledger_check.update(problem=exc.message, fix=exc.hint)
    except DevsliceError as exc:
        config_check.update(ok=False, problem=exc.message.splitlines()[0], fix=exc.hint)
        ledger_check.update(problem="no valid config to find the ledger from",
                            fix="fix devslice.yaml first")
    checks += [config_check, ledger_check]
    if config_check["ok"]:
        checks += _needed_by_config(project)
    checks += _platform(project if config_check["ok"] else None)

    emit(checks, fmt, human=lambda: _print(checks))
    return all(c["ok"] for c in checks)


def _needed_by_config(project: Any) -> list[dict[str, Any]]:
    """Programs this devslice.yaml asks to run as processes on this machine, as its services
    say."""
    from devslice.services import tools  # lazy: start-up time of every other command

    env = project.env
    processes = env.cluster.runtime in ("local", "auto")  # auto may pick the local runtime
    out = []
    from devslice.services.storage import azurite_check  # lazy: as above

    azurite = azurite_check(env, project.base_dir, processes)
    if azurite is not None:
        out.append(azurite)
    for need in tools(env, processes):
        path = shutil.which(need.tool)
        out.append({"name": need.tool, "ok": path is not None, "found": path is not None,
                    "version": path, "problem": None if path else f"{need.tool} is not on PATH",
                    "fix": None if path else need.fix, "neededFor": need.why})
    return out


def _platform(project: Any) -> list[dict[str, Any]]:
    """WSL and Docker Desktop, when this is one of them (devslice.facts.platform)."""
    from pathlib import Path  # lazy: doctor only

    from devslice.facts.platform import platform_checks, read_inputs  # lazy: doctor only

    if project is None:
        return platform_checks(read_inputs(Path.cwd(), ()))
    images = [(i.name, i.context) for i in project.env.images]
    return platform_checks(read_inputs(project.base_dir, images))


def _print(checks: list[dict[str, Any]]) -> None:
    from rich.markup import escape  # lazy: rich, only for output
    from rich.table import Table  # lazy: rich, only for output

    t = Table(box=None, header_style="bold")
    for col in ("", "check", "version / where", "needed for"):
        t.add_column(col)
    for c in checks:
        if not c["ok"]:
            mark = "[red]!![/]"
        elif c["problem"]:
            mark = "[yellow]![/]" if c["found"] else "[dim]--[/]"
        else:
            mark = "[green]ok[/]"
        detail = escape(c["version"] or (c["problem"] or "not found"))
        t.add_row(mark, c["name"], detail, c["neededFor"])
    console().print(t)
    # Every problem with its fix: required ones, optional tools that are missing, and
    # optional tools that are there but failing (the docker engine not running, say).
    for c in (c for c in checks if c["problem"]):
        if not c["ok"]:
            level = "[red]problem[/]"
        elif c["found"]:
            level = "[yellow]warning[/]"
        else:
            level = "[yellow]optional[/]"
        console().print(f"{level} {c['name']}: {escape(c['problem'])}")
        if c["fix"]:
            console().print(f"  fix: {escape(c['fix'])}")
