"""``devslice plan``, ``up``, ``status``, ``down`` and ``destroy``: the environment engine."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from devslice.cli.app import State, pass_state
from devslice.cli.output import console, print_json

if TYPE_CHECKING:
    from devslice.engine.plan import Resource

SLICE_OPTION = click.option("--slice", "handle", metavar="HANDLE",
                            help="Which slice (default: your current slice).")
JSON_OPTION = click.option("--json", "as_json", is_flag=True,
                           help="Machine-readable output (up: one JSON event per line).")


@contextmanager
def _resources(state: State, handle: str | None) -> Iterator[list[Resource]]:
    """The slice's resources over real adapters, closed when the command ends."""
    from devslice.engine.environment import Tools, build

    project = state.project()
    handle = project.current_handle(handle)
    tools = Tools.real(project)
    try:
        yield build(project, handle, tools)
    finally:
        tools.close()


@contextmanager
def _tools(state: State) -> Iterator[tuple[Any, Any]]:
    from devslice.engine.environment import Tools

    project = state.project()
    tools = Tools.real(project)
    try:
        yield project, tools
    finally:
        tools.close()


@click.command()
@SLICE_OPTION
@JSON_OPTION
@pass_state
def plan(state: State, handle: str | None, as_json: bool) -> None:
    """Show what `devslice up` would change, why, and the exact commands and API calls.

    Reads the world (k3d, the registry, the cluster) and changes nothing. Secrets are masked.

    \b
    Example:
      devslice plan
    """
    from devslice.engine.plan import make_plan

    with _resources(state, handle) as resources:
        result = make_plan(resources)
    if as_json:
        print_json(result.as_dict())
        return
    console().print(result.render(), end="", markup=False, highlight=False)


@click.command()
@SLICE_OPTION
@JSON_OPTION
@pass_state
def up(state: State, handle: str | None, as_json: bool) -> None:
    """Bring the slice's environment up: registry, cluster, images, slice config, manifests.

    Independent steps run in parallel; each re-reads the world just before it acts, so a
    second `up` on an unchanged environment changes nothing.

    \b
    Examples:
      devslice up
      devslice up --json          # one JSON event per line, for CI
    """
    from devslice.cli.progress import JsonEvents, LiveSteps, print_breakdown
    from devslice.engine import Executor

    started = time.monotonic()
    with _resources(state, handle) as resources:
        if as_json:
            events = JsonEvents()
            reports = Executor(on_event=events).apply(resources)
            events.line({"event": "ready", "seconds": round(time.monotonic() - started, 3),
                         "changes": sum(a.changes for r in reports for a in r.actions)})
            return
        with LiveSteps() as view:
            reports = Executor(on_event=view).apply(resources)
    print_breakdown(reports, time.monotonic() - started)


@click.command()
@SLICE_OPTION
@JSON_OPTION
@pass_state
def status(state: State, handle: str | None, as_json: bool) -> None:
    """Each resource's state: ready, or what it needs and why.

    \b
    Example:
      devslice status
    """
    from rich.markup import escape
    from rich.table import Table

    from devslice.engine.plan import order

    rows: list[dict[str, Any]] = []
    with _resources(state, handle) as resources:
        for r in order(resources):
            actions = r.plan()
            changes = [a for a in actions if a.changes]
            rows.append({"resource": r.key, "ready": not changes,
                         "detail": "; ".join(f"{a.verb}: {a.reason}" for a in changes)
                         or "; ".join(a.reason for a in actions)})
    if as_json:
        print_json(rows)
        return
    t = Table(box=None, header_style="bold")
    for col in ("", "resource", "state"):
        t.add_column(col)
    for row in rows:
        t.add_row("[green]ok[/]" if row["ready"] else "[yellow]![/]", row["resource"],
                  escape(row["detail"]))
    console().print(t)


def _run(actions: list[Any], as_json: bool) -> None:
    for a in actions:
        if as_json:
            print_json(a.as_dict())
        else:
            console().print(f"{a.resource}: {a.verb if a.changes else 'nothing to do'} "
                            f"({a.reason})", markup=False)
        if a.changes and a.execute is not None:
            a.execute()


@click.command()
@JSON_OPTION
@pass_state
def down(state: State, as_json: bool) -> None:
    """Stop the cluster; nothing is deleted (`devslice up` starts it again).

    \b
    Example:
      devslice down
    """
    from devslice.resources.k3d import stop_actions

    with _tools(state) as (project, tools):
        _run(stop_actions(tools.k3d, project.env.cluster), as_json)


@click.command()
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@JSON_OPTION
@pass_state
def destroy(state: State, yes: bool, as_json: bool) -> None:
    """Delete the cluster, its registry and their volumes.

    \b
    Example:
      devslice destroy -y
    """
    from devslice.resources.k3d import destroy_actions

    with _tools(state) as (project, tools):
        actions = destroy_actions(tools.k3d, project.env.cluster, project.base_dir)
        changing = [a for a in actions if a.changes]
        if changing and not yes:
            what = ", ".join(a.resource for a in changing)
            click.confirm(f"Delete {what}? Images in the registry and data in the cluster are "
                          "lost", abort=True)
        _run(actions, as_json)
