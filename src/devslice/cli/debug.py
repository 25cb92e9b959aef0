"""``devslice debug``: run a service locally inside its pod's context, through mirrord."""

from __future__ import annotations

import time

import click

from devslice.adapters.mirrord import FS_MODES, INSTALL, Mirrord, TerminalRunner
from devslice.cli.app import State, pass_state
from devslice.cli.output import err_console
from devslice.sdk.leases import DEFAULT_TTL, HeldLease


def _say(message: str, style: str = "") -> None:
    """To stderr: stdout belongs to the debugged process."""
    from rich.markup import escape  # lazy: rich, only for output


    text = escape(message)
    err_console().print(f"[{style}]{text}[/]" if style else text)


@click.command()
@click.argument("service")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="-- COMMAND [ARGS]...")
@click.option("--steal", is_flag=True,
              help="Steal the pod's incoming traffic instead of mirroring a copy of it.")
@click.option("--exclusive", is_flag=True,
              help="Make the pod's event consumers of this service step aside while the "
                   "session runs (they resume after it, even if it is killed).")
@click.option("--ide", type=click.Choice(["vscode", "jetbrains", "rider"]),
              help="Write an IDE launch/run configuration for COMMAND instead of running it "
                   "(rider and jetbrains write the same .run/SERVICE.run.xml).")
@click.option("--slice", "handle", metavar="HANDLE",
              help="Which slice (default: your current slice).")
@click.option("--fs-mode", type=click.Choice(FS_MODES), default="read", show_default=True,
              help="Which files come from the pod (mirrord's feature.fs.mode).")
@click.option("--env-include", multiple=True, metavar="VAR",
              help="Take only these variables from the pod (repeatable; * wildcards).")
@click.option("--env-exclude", multiple=True, metavar="VAR",
              help="Take all variables from the pod but these (repeatable).")
@click.option("--agent-timeout", type=click.IntRange(min=1), default=60, show_default=True,
              metavar="SECONDS", help="How long mirrord waits for its agent pod to start.")
@click.option("--lease-ttl", type=click.FloatRange(min=0.5), default=DEFAULT_TTL,
              show_default=True, metavar="SECONDS",
              help="--exclusive: how long the pod's consumers stay away after a killed "
                   "session (renewed every third of it while the session runs).")
@pass_state
def debug(state: State, service: str, command: tuple[str, ...], steal: bool, exclusive: bool,
          ide: str | None, handle: str | None, fs_mode: str, env_include: tuple[str, ...],
          env_exclude: tuple[str, ...], agent_timeout: int, lease_ttl: float) -> None:
    """Run COMMAND locally as SERVICE, inside its pod's environment, network and files.

    Checks that the SERVICE Deployment of your slice has a running, ready pod, writes
    .mirrord/SERVICE.mirrord.json (target deployment/SERVICE, so it survives rollouts) and
    runs `mirrord exec -f CONFIG -- COMMAND`; exits with COMMAND's exit code. With --ide,
    writes a VS Code or JetBrains/Rider configuration that runs COMMAND under the debugger
    with that config instead (the mirrord plugins read it). Python, Node and .NET (`dotnet
    run`) commands can be handed to an IDE.

    \b
    Examples:
      devslice debug orders -- python app.py
      devslice debug orders --steal --exclusive -- python -m orders.main
      devslice debug orders --ide vscode -- python app.py
      devslice debug orders --ide rider -- dotnet run --project services/Orders
    """
    from devslice.adapters.kube import KubeConfigError, connect  # lazy: only when this command runs
    from devslice.debug import (  # lazy: only when this command runs
        MirrordSettings,
        hold_lease,
        lease_store,
        prepare,
        run_session,
    )
    from devslice.engine.environment import kube_context, runtime  # lazy: per command

    project = state.project()
    handle = project.current_handle(handle)
    if not command and ide is None:
        raise click.UsageError("give the command to run after `--`, e.g. "
                               "`devslice debug orders -- python app.py`")
    chosen = runtime(project)[0]
    if chosen == "local":
        raise click.UsageError("the slice runs as local processes (the local runtime): debug "
                               "the service directly in your IDE, mirrord needs a cluster")
    context = kube_context(project, chosen)
    try:
        kube = connect(context=context)
    except KubeConfigError as exc:
        up = (" (`devslice up` creates the k3d cluster and its context)"
              if chosen == "k3d" else "")
        raise KubeConfigError(f"{exc.message}: the slice's cluster is kube context {context}",
                              hint=(exc.hint or "") + up) from exc
    settings = MirrordSettings(steal=steal, env_include=env_include, env_exclude=env_exclude,
                               fs_mode=fs_mode, agent_startup_timeout=agent_timeout,
                               kube_context=context)
    try:
        prepared = prepare(project, kube, service, handle=handle, settings=settings,
                           exclusive=exclusive, ide=ide,  # type: ignore[arg-type]
                           command=command)
    finally:
        kube.close()
    t = prepared.target
    _say(f"debug {service}: {t.path} in namespace {t.namespace} (context {context}; its "
         f"newest ready pod now: {t.pod}); config {prepared.config_path}")
    if prepared.event_variables and not exclusive:
        _say(f"warning: {service} sees the slice's Event Hubs variables "
             f"({', '.join(prepared.event_variables)}): if it consumes events, the pod and "
             "this session share its partitions and consumer group and take events from each "
             "other; --exclusive makes the pod's consumers step aside", "yellow")
    lease = hold_lease(lease_store(project, handle), handle, service, lease_ttl) \
        if exclusive else None

    def held(taken: HeldLease) -> None:
        _say(f"the pod's consumers of {service} step aside while this session runs "
             f"(lease {taken.name}, TTL {taken.ttl:g}s)", "dim")

    if ide is not None:
        _say(f"wrote {prepared.ide_file}: start '{service} (devslice debug)' from the IDE with "
             "mirrord enabled")
        if lease is not None:
            with lease:
                held(lease)
                _say("holding the lease for the IDE session; press Ctrl-C when it ends")
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
        return
    mirrord = Mirrord(TerminalRunner(fixes={"mirrord": INSTALL}))
    code = run_session(prepared, mirrord, command, lease=lease, on_lease=held)
    if code:
        raise click.exceptions.Exit(code)
