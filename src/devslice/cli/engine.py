"""``devslice plan``, ``up``, ``status``, ``down`` and ``destroy``: the environment engine."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import click

from devslice.cli.app import State, pass_state
from devslice.cli.output import Table, console, emit, err_console, machine, output_option
from devslice.errors import DevsliceError, SliceNotFound, ToolMissing
from devslice.text import plural

if TYPE_CHECKING:
    from devslice.engine.plan import Resource

SLICE_OPTION = click.option("--slice", "handle", metavar="HANDLE",
                            help="Which slice (default: your current slice).")


@contextmanager
def _resources(state: State, handle: str | None, quiet: bool = False,
               progress: Any = None, lock: bool | None = None, force_conflicts: bool = False,
               adopt: bool = False) -> Iterator[list[Resource]]:
    """The slice's resources over real adapters, closed when the command ends. With ``lock``
    (False: wait for it, True: fail if busy), the local runtime's slice lock is held."""
    # lazy: only when this command runs
    from devslice.engine.environment import Tools, build, runtime

    project = state.project()
    handle = project.current_handle(handle)
    chosen, why = runtime(project)
    if project.env.cluster.runtime == "auto" and not quiet:
        console().print(f"runtime {chosen}: {why}", style="dim", markup=False, highlight=False)
    tools = Tools.real(project, chosen)
    try:
        with ExitStack() as held:
            if lock is not None and chosen == "local":
                from devslice.local.runtime import slice_lock  # lazy: only when this command runs

                held.enter_context(slice_lock(project, handle, "devslice up", lock,
                                              _waiting(progress)))
            yield build(project, handle, tools, chosen, progress,
                        force_conflicts=force_conflicts, adopt=adopt)
    finally:
        tools.close()


def _waiting(progress: Any = None) -> Callable[[str], None]:
    """Where to say whom a busy slice waits for: the live view's row, or stderr."""
    if progress is not None:
        return lambda line: progress("local", line)
    return lambda line: err_console().print(line, markup=False, highlight=False)


BUSY_OPTION = click.option(
    "--fail-if-busy", is_flag=True,
    help="When another `up` or `down` of the slice runs (local runtime), fail with exit code "
    "75 instead of waiting for it.")


@contextmanager
def _tools(state: State) -> Iterator[tuple[Any, Any, str]]:
    from devslice.engine.environment import Tools, runtime  # lazy: only when this command runs

    project = state.project()
    chosen = runtime(project)[0]
    tools = Tools.real(project, chosen)
    try:
        yield project, tools, chosen
    finally:
        tools.close()


@click.command()
@SLICE_OPTION
@output_option("text")
@pass_state
def plan(state: State, handle: str | None, fmt: str) -> None:
    """Show what `devslice up` would change, why, and the exact commands and API calls.

    Reads the world (k3d, the registry, the cluster) and changes nothing. Secrets are masked.

    \b
    Example:
      devslice plan
    """
    from devslice.engine.plan import make_plan  # lazy: only when this command runs

    with _resources(state, handle, quiet=machine(fmt)) as resources:
        result = make_plan(resources)
    if machine(fmt):
        emit(result.as_dict(), fmt)
        return
    console().print(result.render(), end="", markup=False, highlight=False)


@click.command()
@SLICE_OPTION
@output_option("text")
@BUSY_OPTION
@click.option("--force-conflicts", is_flag=True,
              help="Take over manifest fields another field manager owns (e.g. after "
                   "`kubectl apply`), as kubectl apply --server-side --force-conflicts.")
@click.option("--adopt", is_flag=True,
              help="Tag same-named Azure resources made without devslice as this slice's "
                   "(from then on `slice release --delete-resources` deletes them).")
@pass_state
def up(state: State, handle: str | None, fmt: str, fail_if_busy: bool,
       force_conflicts: bool, adopt: bool) -> None:
    """Bring the slice's environment up: registry, cluster, images, slice config, manifests.

    Independent steps run in parallel; each re-reads the world just before it acts, so a
    second `up` on an unchanged environment changes nothing. On the local runtime one `up`
    or `down` of a slice runs at a time: a second waits for the first (and then finds
    nothing to do), or with --fail-if-busy exits with code 75. There an `up` after `down`
    begins the emulators as it starts when nothing they start from changed since the last
    `up` (its plan checks them; DEVSLICE_EARLY_START=0 turns this off).

    \b
    Examples:
      devslice up
      devslice up -o json         # one JSON event per line, for CI
      devslice up --fail-if-busy  # exit 75 if another up/down of the slice runs
      devslice up --force-conflicts   # manifests take fields `kubectl apply` set before
    """
    # lazy: only when this command runs
    from devslice.cli.progress import Events, LiveSteps, print_breakdown
    from devslice.engine import Executor  # lazy: only when this command runs

    started = time.monotonic()
    if machine(fmt):
        events = Events(fmt)
        with _resources(state, handle, quiet=True, progress=lambda key, line: events.line(
                {"event": "progress", "resource": key, "line": line}),
                lock=fail_if_busy, force_conflicts=force_conflicts, adopt=adopt) as resources:
            reports = Executor(on_event=events).apply(resources)
        events.line({"event": "ready", "seconds": round(time.monotonic() - started, 3),
                     "changes": sum(a.changes for r in reports for a in r.actions)})
        return
    with LiveSteps() as view, _resources(state, handle, progress=view.progress,
                                         lock=fail_if_busy,
                                         force_conflicts=force_conflicts,
                                         adopt=adopt) as resources:
        reports = Executor(on_event=view).apply(resources)
    print_breakdown(reports, time.monotonic() - started)


@click.command()
@SLICE_OPTION
@output_option("table")
@pass_state
def status(state: State, handle: str | None, fmt: str) -> None:
    """Each resource's state: ready, or what it needs and why. Exits 0 when every resource
    is ready, 1 when one is not (a service down, crashing or orphaned, a change to apply).

    \b
    Examples:
      devslice status
      devslice status -o json || echo "not ready"
    """
    from devslice.engine.plan import gather, order, plan_of  # lazy: only when this command runs

    rows: list[dict[str, Any]] = []
    with _resources(state, handle, quiet=machine(fmt)) as resources:
        ordered = order(resources)
        facts = gather(ordered)  # each system read once for every resource
        for r in ordered:
            actions = plan_of(r, facts.get(r.key))
            changes = [a for a in actions if a.changes]
            rows.append({"resource": r.key, "ready": not changes,
                         "detail": "; ".join(f"{a.verb}: {a.reason}" for a in changes)
                         or "; ".join(a.reason for a in actions)})
    if machine(fmt):
        emit(rows, fmt)
    else:
        t = Table("", "resource", "state")
        for row in rows:
            t.add_row(("ok", "green") if row["ready"] else ("!", "yellow"), row["resource"],
                      row["detail"])
        console().print(t)
    if not all(row["ready"] for row in rows):
        raise click.exceptions.Exit(1)


@click.command()
@click.argument("service", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", type=int, default=50, show_default=True,
              help="How many earlier lines to show per service.")
@SLICE_OPTION
@pass_state
def logs(state: State, service: str | None, follow: bool, lines: int,
         handle: str | None) -> None:
    """Output of the slice's services, each line prefixed by its service: the processes of
    the local runtime, or the pods of the slice under k3d and kube (the pods/log API).

    \b
    Examples:
      devslice logs
      devslice logs orders -f
    """
    from devslice.engine.environment import runtime  # lazy: start-up time of every command
    from devslice.local.runtime import follow as follow_logs  # lazy: only when this command runs
    from devslice.local.runtime import local_dir, tail  # lazy: only when this command runs
    from devslice.local.state import SPEC, read_json  # lazy: only when this command runs

    project = state.project()
    chosen = runtime(project)[0]
    if chosen != "local":
        _pod_logs(project, chosen, project.current_handle(handle), service, follow, lines)
        return
    directory = local_dir(project, project.current_handle(handle))
    names = [s["name"] for s in (read_json(directory / SPEC) or {}).get("services", [])]
    if service is not None:
        if service not in names:
            raise DevsliceError(f"no service {service!r} in the local runtime "
                                f"(it runs: {', '.join(names) or 'nothing'})",
                                hint="`devslice up` starts them")
        names = [service]
    width = max((len(n) for n in names), default=0)
    for name in names:
        for line in tail(directory, name, lines):
            click.echo(f"{name:<{width}} | {line}")
    if follow:
        try:
            for line in follow_logs(directory, names, follow=True, from_end=True):
                click.echo(line)
        except KeyboardInterrupt:
            return


def _pod_logs(project: Any, chosen: str, handle: str, service: str | None, follow: bool,
              lines: int) -> None:
    # lazy: the Kubernetes client, for `logs` under k3d/kube only
    from devslice.adapters.kube import connect
    from devslice.engine.environment import kube_context  # lazy: as above
    from devslice.podlogs import (  # lazy: as above
        follow_pod_logs,
        prefixes,
        slice_pod_logs,
        slice_pod_streams,
    )

    kube = connect(context=kube_context(project, chosen))
    try:
        if follow:
            streams = slice_pod_streams(project, kube, handle, service)
            found: list[Any] = streams
        else:
            found = slice_pod_logs(project, kube, handle, service, lines)
        if not found:
            click.echo(f"no pods of slice {handle} (`devslice up` deploys them)", err=True)
        names = prefixes(found)
        width = max((len(n) for n in names), default=0)
        if follow:
            try:
                for i, line in follow_pod_logs(kube, streams, lines):
                    if line is None:
                        click.echo(f"{names[i]:<{width}} | (log ended: {streams[i].pod} "
                                   "went away or its container stopped)", err=True)
                    else:
                        click.echo(f"{names[i]:<{width}} | {line}")
            except KeyboardInterrupt:  # Ctrl-C: the usual end of following
                click.get_current_context().exit(130)
            return
    finally:
        kube.close()
    for name, pod in zip(names, found, strict=True):
        if pod.problem:
            click.echo(f"{name:<{width}} | ({pod.problem})")
        for line in pod.lines:
            click.echo(f"{name:<{width}} | {line}")


def _run(actions: list[Any], fmt: str, parallel: bool = False) -> None:
    """Say and execute each action; ``parallel`` for independent ones (`down`'s stops)."""
    for a in actions:
        if machine(fmt):
            emit(a.as_dict(), fmt, stream=True)
        else:
            console().print(f"{a.resource}: {a.verb if a.changes else 'nothing to do'} "
                            f"({a.reason})", markup=False)
        if not parallel and a.changes and a.execute is not None:
            a.execute()
    if parallel:
        from devslice.engine import Executor  # lazy: only when this command runs

        Executor().run_actions(actions)


def _without_docker(actions: Callable[[], list[Any]], names: list[str]) -> list[Any]:
    """The containers' actions; with no Docker engine to ask, none run, and that is said."""
    from devslice.engine.plan import noop  # lazy: only when this command runs

    if not names:
        return []
    try:
        return actions()
    except ToolMissing as exc:
        return [noop("containers", f"{', '.join(names)}: not running, the Docker engine does "
                     f"not answer ({exc.message.split(':')[0]})")]


@click.command()
@SLICE_OPTION
@output_option("text")
@BUSY_OPTION
@pass_state
def down(state: State, handle: str | None, fmt: str, fail_if_busy: bool) -> None:
    """Stop what `up` started; nothing is deleted (`devslice up` starts it again).

    Local processes of the slice are stopped whatever the runtime is now (Docker may have
    started since); a k3d cluster and the containers beside it (emulators, containers:) are
    stopped; a shared (kube) cluster is left alone. The emulators the slices of this checkout
    share stop with the last slice that uses them. Waits for an `up` or `down` of the slice
    that runs (--fail-if-busy: exit 75 instead).

    \b
    Examples:
      devslice down
      devslice down --slice cd --fail-if-busy
    """
    from devslice.local.runtime import stop_slice  # lazy: only when this command runs
    from devslice.resources.k3d import stop_actions  # lazy: only when this command runs

    with _tools(state) as (project, tools, chosen):
        try:
            current = project.current_handle(handle)
            stopped = stop_slice(project, current, fail_if_busy, _waiting())
        except SliceNotFound:
            stopped = []
        if chosen == "local" or stopped:
            if machine(fmt):
                emit({"stopped": stopped}, fmt, stream=True)
            else:
                console().print(f"stopped {plural(len(stopped), 'local process group')}"
                                if stopped else "nothing was running")
        if chosen != "local":
            # lazy: only when this command runs
            from devslice.resources.containers import stop_actions as stop_containers
            from devslice.services import container_names  # lazy: only when this command runs

            names = container_names(project.env)
            actions = _without_docker(lambda: stop_containers(tools.docker, names), names)
            if chosen == "k3d":
                actions = stop_actions(tools.k3d, project.env.cluster) + actions
            if actions:
                _run(actions, fmt, parallel=True)
        if chosen == "kube" and not machine(fmt):
            console().print("runtime kube: the shared cluster keeps running; the slice's "
                            "objects stay in its namespace")


@click.command()
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--keep-data", is_flag=True,
              help="Keep the named volumes of the containers (MongoDB's data, Azurite's blobs).")
@output_option("text")
@pass_state
def destroy(state: State, yes: bool, keep_data: bool, fmt: str) -> None:
    """Delete the cluster, its registry, the containers beside it and their volumes
    (runtime kube: only the containers on this machine).

    \b
    Examples:
      devslice destroy -y
      devslice destroy --keep-data     # containers go, their data volumes stay
    """
    from devslice.resources.containers import remove_actions  # lazy: only when this command runs
    from devslice.resources.k3d import destroy_actions  # lazy: only when this command runs
    from devslice.services import container_names  # lazy: only when this command runs

    with _tools(state) as (project, tools, chosen):
        if chosen == "local":

            raise DevsliceError(
                "destroy deletes a local k3d cluster and containers; the runtime here is "
                "local, which has neither", hint="`devslice down` stops the processes")
        actions: list[Any] = []
        if chosen == "k3d":
            actions = destroy_actions(tools.k3d, project.env.cluster, project.base_dir)
        elif not machine(fmt):  # kube: a shared cluster is the team's; only this machine's part
            console().print("runtime kube: the shared cluster is left alone (delete the "
                            "slice's namespace with kubectl if you mean it)")
        names = container_names(project.env)
        actions += _without_docker(
            lambda: remove_actions(tools.docker, names, project.base_dir, keep_data), names)
        changing = [a for a in actions if a.changes]
        if changing and not yes:
            what = ", ".join(a.resource for a in changing)
            click.confirm(f"Delete {what}? Images in the registry, data in the cluster"
                          + ("" if keep_data else " and in the containers' volumes")
                          + " are lost", abort=True)
        _run(actions, fmt)
