"""``devslice adx ...``: the slice's Data Explorer database: apply the schema, start over."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from devslice.cli.app import State, pass_state
from devslice.cli.output import console, emit, machine, output_option
from devslice.sdk.context import SliceContext

if TYPE_CHECKING:
    from devslice.sdk.dataexplorer import AppliedCommand, KqlCommand


@dataclass(frozen=True)
class Target:
    """Where the commands go: the slice's cluster and database, and where the name came from."""

    handle: str
    cluster_url: str
    database: str | None
    database_origin: str  # e.g. "slice allocation (dataExplorer.databaseTemplate)"


def _target(state: State, handle: str | None) -> Target:
    """The slice's contract as its services would read it, overrides included."""
    from devslice.sdk.dataexplorer import DataExplorerNotConfigured  # lazy: per command

    project = state.project()
    handle = project.current_handle(handle)
    variables = project.variables(handle, secrets=False)  # names only: no secret needed
    contract = project.env.contract
    ctx = SliceContext.from_env(
        {v.name: v.value for v in variables if isinstance(v.value, str)},  # secrets not needed
        prefix=contract.prefix, partition_ids_variable=contract.partition_ids_variable,
    )
    if not ctx.data_explorer_cluster_url:
        raise DataExplorerNotConfigured(
            f"slice {handle} has no Data Explorer cluster",
            hint=f"set dataExplorer.clusterUrl in {project.config_path.name}, e.g. "
            "https://company1dev.westeurope.kusto.windows.net (or http://localhost:8080 for the "
            "Kusto emulator)",
        )
    db = next((v for v in variables if v.name == f"{contract.prefix}DATAEXPLORER_DATABASE"), None)
    origin = f"{db.origin.value} ({db.source})" if db is not None else "not set"
    return Target(handle, ctx.data_explorer_cluster_url, ctx.data_explorer_database, origin)


def _read_script(path: Path) -> str:
    from devslice.sdk.dataexplorer import KqlScriptError  # lazy: only when this command runs

    try:
        # utf-8-sig: editors on Windows often start a UTF-8 file with a byte-order mark.
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise KqlScriptError(f"{path}: not UTF-8 text (byte {exc.start})",
                             hint="save the script as UTF-8") from exc


def _command_json(index: int, c: KqlCommand) -> dict[str, object]:
    return {"index": index, "line": c.line, "command": c.text}


def _print_numbered(commands: list[KqlCommand]) -> None:
    width = len(str(len(commands)))
    for i, c in enumerate(commands, start=1):
        lines = c.text.strip("\n").split("\n")
        click.echo(f"{i:>{width}}  {lines[0]}    # {c.where}")
        for line in lines[1:]:
            click.echo(f"{'':>{width}}  {line}")


@click.group("adx", context_settings={"help_option_names": ["-h", "--help"]})
def adx_group() -> None:
    """Your slice's Data Explorer database: apply the team's schema, or start over.

    The cluster is dataExplorer.clusterUrl in devslice.yaml; the database is the slice's
    (dataExplorer.databaseTemplate, e.g. db4ab). Shared databases are never touched.

    \b
    Example:
      devslice adx reset -y && devslice adx apply schema.kql
    """


@adx_group.command()
@click.argument("script", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--slice", "handle", metavar="HANDLE",
              help="Which slice (default: $DEVSLICE_SLICE, devslice.local.yaml, or the one you "
              "claimed last here).")
@click.option("--dry-run", is_flag=True,
              help="Print the commands, numbered, and where they would run; send nothing.")
@output_option("text")
@pass_state
def apply(state: State, script: Path, handle: str | None, dry_run: bool, fmt: str) -> None:
    """Run a KQL schema script in your slice's database, command by command.

    The script follows the Kusto convention: blank lines separate commands, `//` lines are
    comments, and ``` ... ``` holds a multi-line string (JSON mappings, say). Commands run in
    order and the first failure stops the rest; Kusto rolls nothing back, so write the script
    with .create-merge and .create-or-alter and it can be applied again.

    \b
    Examples:
      devslice adx apply schema.kql --dry-run     # what would run, and where
      devslice adx apply schema.kql
      devslice adx apply schema.kql --slice ci1 -o json
    """
    from rich.markup import escape  # lazy: rich, only for output

    from devslice.sdk.dataexplorer import DataExplorer, parse_kql, plan_apply  # lazy: per command

    target = _target(state, handle)
    commands = plan_apply(target.database, parse_kql(_read_script(script), str(script)))
    adx = DataExplorer(target.cluster_url)  # connects on the first command, so not in a dry run
    head = {"slice": target.handle, "cluster": adx.cluster_url, "database": target.database,
            "dryRun": dry_run}
    if dry_run:
        if machine(fmt):
            emit({**head, "commands": [_command_json(i, c)
                                       for i, c in enumerate(commands, start=1)]}, fmt)
            return
        console().print(f"dry run: {len(commands)} command{'s' * (len(commands) != 1)} for "
                        f"database [bold]{escape(str(target.database))}[/] on "
                        f"{escape(adx.cluster_url)} (slice {target.handle}); nothing sent")
        _print_numbered(commands)
        return

    def progress(step: AppliedCommand) -> None:
        if not machine(fmt):
            console().print(f"[green]ok[/] {step.index}/{len(commands)}  "
                            f"{escape(step.command.first_line)}", overflow="ellipsis",
                            no_wrap=True)

    with adx:
        done = adx.apply(target.database, commands, on_applied=progress)
    if machine(fmt):
        emit({**head, "commands": [_command_json(s.index, s.command) for s in done]}, fmt)
        return
    console().print(f"applied {len(done)} command{'s' * (len(done) != 1)} to database "
                    f"[bold]{escape(str(target.database))}[/] on {escape(adx.cluster_url)}")


@adx_group.command()
@click.option("--slice", "handle", metavar="HANDLE",
              help="Which slice (default: $DEVSLICE_SLICE, devslice.local.yaml, or the one you "
              "claimed last here).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--persist", "persist_root", metavar="FOLDER",
              help="Keep the new database in FOLDER on the engine (the Kusto emulator's "
              "/kustodata/dbs, say) instead of creating it volatile.")
@click.option("--no-schema", is_flag=True,
              help="On an Azure cluster: do not run dataExplorer.schemaScript afterwards.")
@pass_state
def reset(state: State, handle: str | None, yes: bool, persist_root: str | None,
          no_schema: bool) -> None:
    """Drop your slice's database and create it again, empty.

    On the Kusto emulator: `.drop database ... ifexists` and `.create database ... volatile`.
    On an Azure Data Explorer cluster (dataExplorer.mode shared, with azure: settings) a
    database is an Azure resource: it is deleted and created again through the management API
    (soft-delete and hot-cache periods from devslice.yaml), then dataExplorer.schemaScript
    runs in it, as `devslice adx apply` would.

    \b
    Examples:
      devslice adx reset                          # asks first
      devslice adx reset -y && devslice adx apply schema.kql
    """
    from rich.markup import escape  # lazy: rich, only for output

    from devslice.sdk.dataexplorer import DataExplorer  # lazy: only when this command runs

    target = _target(state, handle)
    project = state.project()
    from devslice.cloud.plan import provisioning  # lazy: only when this command runs
    from devslice.services.dataexplorer import SERVICE as DATAEXPLORER  # lazy: per command

    if DATAEXPLORER.shared(project.env) and provisioning(project.env):
        _reset_in_azure(project, target, yes, no_schema)
        return
    with DataExplorer(target.cluster_url, persist_root=persist_root) as adx:
        adx.reset_commands(target.database)  # refuses a missing or invalid name before asking
        if not yes:
            click.confirm(
                f"Drop database {target.database!r} on {adx.cluster_url} (slice "
                f"{target.handle}; name from {target.database_origin}) and create it empty? "
                "Everything in it is lost", abort=True)
        adx.reset(target.database)
    console().print(f"re-created database [bold]{escape(str(target.database))}[/] on "
                    f"{escape(adx.cluster_url)}, empty; next: devslice adx apply SCHEMA.kql")


def _reset_in_azure(project: object, target: Target, yes: bool, no_schema: bool) -> None:
    """Delete and create the database through Resource Manager, then the schema script."""
    from rich.markup import escape  # lazy: rich, only for output

    from devslice.access.azure import Azure  # lazy: only when this command runs
    from devslice.cloud.dataexplorer import DatabaseResource  # lazy: only when this command runs
    from devslice.cloud.plan import schema_applier  # lazy: only when this command runs
    from devslice.project import Project  # lazy: only when this command runs

    assert isinstance(project, Project)
    if not target.database:
        from devslice.sdk.dataexplorer import NoSliceDatabase  # lazy: only when this command runs

        raise NoSliceDatabase(f"slice {target.handle} has no Data Explorer database")
    if not yes:
        click.confirm(f"Delete database {target.database!r} in cluster "
                      f"{project.env.data_explorer.azure_cluster_name} (slice {target.handle}; "
                      f"name from {target.database_origin}) and create it again? Everything "
                      "in it is lost", abort=True)
    azure = Azure.from_settings(project.env.azure)
    try:
        db = DatabaseResource(azure, project.env, target.database,
                              apply_schema=None if no_schema else schema_applier(project),
                              progress=lambda line: console().print(f"[dim]{escape(line)}[/]"))
        db.recreate()
    finally:
        azure.close()
    script = project.env.data_explorer.schema_script
    then = f", schema {script} applied" if script and not no_schema else ""
    console().print(f"re-created database [bold]{escape(target.database)}[/] in cluster "
                    f"{escape(str(db.cluster))} through Azure Resource Manager{then}")
