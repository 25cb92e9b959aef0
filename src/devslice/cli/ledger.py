"""``devslice ledger ...``: check a ledger, and move a machine's ledger to the team's blob."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from devslice.cli.app import State, pass_state
from devslice.cli.output import console, emit, machine, output_option

if TYPE_CHECKING:
    from devslice.ledger.base import Ledger


@click.group("ledger", context_settings={"help_option_names": ["-h", "--help"]})
def ledger_group() -> None:
    """Inspect the ledger, or move it where the team can share it.

    \b
    Examples:
      devslice ledger check
      devslice ledger migrate --to-account-url https://company1dev.blob.core.windows.net
    """


@ledger_group.command()
@output_option("text")
@pass_state
def check(state: State, fmt: str) -> None:
    """Report the ledger's problems (identity, integrity, invalid records); changes nothing.

    Exits 1 when it finds a problem, so a scheduled job can watch the team's ledger.

    \b
    Example:
      devslice ledger check
    """
    project = state.project()
    ledger = project.ledger
    problems = ledger.check()
    if machine(fmt):
        emit({"ledger": ledger.location, "ok": not problems,
              "problems": [{"subject": p.subject, "problem": p.message} for p in problems]},
             fmt)
    elif not problems:
        console().print(f"[green]ok[/] {ledger.location}: no problems found")
    else:
        from rich.markup import escape  # lazy: rich, only for output

        console().print(f"[red]{len(problems)} problem(s)[/] in {escape(ledger.location)}:")
        for p in problems:
            console().print(f"  {escape(p.subject)}: {escape(p.message)}")
        console().print("nothing was changed; docs/ledger.md says how to repair a ledger")
    if problems:
        raise click.exceptions.Exit(1)


@ledger_group.command()
@click.option("--from", "source_path", metavar="PATH", type=click.Path(dir_okay=False),
              help="The SQLite ledger to copy (default: ledger.path of devslice.yaml, or "
              ".devslice/ledger.db once the config names an azureBlob ledger).")
@click.option("--to-account-url", metavar="URL",
              help="The target's https://ACCOUNT.blob.core.windows.net (signs in with Azure AD).")
@click.option("--to-connection-string-env", metavar="VAR",
              help="The environment variable holding the target account's connection string.")
@click.option("--to-container", metavar="NAME", default="devslice", show_default=True,
              help="The target's container.")
@click.option("--to-blob", metavar="NAME", default="ledger.json", show_default=True,
              help="The target's blob.")
@output_option("text")
@pass_state
def migrate(state: State, source_path: str | None, to_account_url: str | None,
            to_connection_string_env: str | None, to_container: str, to_blob: str,
            fmt: str) -> None:
    """Copy a SQLite ledger's slices and history into an Azure Blob ledger.

    The target is the azureBlob ledger of devslice.yaml, or the one the --to-* options name.
    It must hold no other slices; the SQLite file is only read. Running it again changes
    nothing.

    \b
    Examples:
      # devslice.yaml already names the team's azureBlob ledger:
      devslice ledger migrate
      # or name the target here, then point devslice.yaml at it:
      devslice ledger migrate --to-account-url https://company1dev.blob.core.windows.net
      devslice ledger migrate --to-connection-string-env LEDGER_CONNECTION_STRING
    """
    from devslice.ledger.migrate import migrate as run  # lazy: only when this command runs

    project = state.project()
    source = _source(project, source_path)
    target = _target(project, to_account_url, to_connection_string_env, to_container, to_blob)
    with source, target:
        done = run(source, target, project.clock(), project.actor)
    if machine(fmt):
        emit({"source": done.source, "target": done.target, "slices": list(done.slices),
              "history": done.history, "dropped": done.dropped, "already": done.already}, fmt)
        return
    if done.already:
        console().print(f"{done.target} already holds these {len(done.slices)} slice(s); "
                        "nothing to copy")
    else:
        console().print(f"[green]copied[/] {len(done.slices)} slice(s) "
                        f"({', '.join(done.slices) or 'none'}) and {done.history} history "
                        f"line(s) from {done.source} to {done.target}")
        if done.dropped:
            console().print(f"  the target keeps the newest lines only: the oldest "
                            f"{done.dropped} are not in it (they stay in {done.source})")
    if project.env.ledger.backend == "sqlite":
        console().print(f"[dim]next: point devslice.yaml's ledger at it (backend: azureBlob, "
                        f"container: {to_container}, blob: {to_blob}) and commit[/]")


def _source(project: Any, path: str | None) -> Ledger:
    from devslice.ledger.sqlite import SqliteLedger  # lazy: only when this command runs

    settings = project.env.ledger
    if path is not None:
        file = Path(path)
    else:
        file = project.base_dir / (settings.path if settings.backend == "sqlite"
                                   else ".devslice/ledger.db")
    if not file.is_file():
        raise click.BadParameter(f"no SQLite ledger at {file}", param_hint="--from")
    return SqliteLedger(file, team=project.env.team, handles=project.handle_rule)


def _target(project: Any, account_url: str | None, connection_env: str | None,
            container: str, blob: str) -> Ledger:
    from devslice.config.model import AzureBlobLedger as Settings  # lazy: per command
    from devslice.config.model import SecretRef  # lazy: only when this command runs
    from devslice.ledger.azureblob import AzureBlobLedger  # lazy: only when this command runs

    if account_url and connection_env:
        raise click.UsageError("give one of --to-account-url and --to-connection-string-env")
    if account_url or connection_env:
        settings = Settings(
            backend="azureBlob", account_url=account_url, container=container, blob=blob,
            connection_string=SecretRef(from_env=connection_env) if connection_env else None)
    elif project.env.ledger.backend == "azureBlob":
        settings = project.env.ledger
    else:
        raise click.UsageError(
            "no target: devslice.yaml names a SQLite ledger; give --to-account-url or "
            "--to-connection-string-env, or set ledger.backend: azureBlob in devslice.yaml")
    return AzureBlobLedger.from_settings(settings, team=project.env.team,
                                         base_dir=project.base_dir, handles=project.handle_rule)
