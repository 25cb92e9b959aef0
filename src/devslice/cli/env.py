"""``devslice env``: the environment contract of a slice, in the format a tool wants."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from devslice.cli.app import State, pass_state
from devslice.cli.output import (
    ENV_FORMATS,
    Formats,
    console,
    deprecated,
    dumps,
    emit,
    machine,
    output_option,
)
from devslice.text import plural

if TYPE_CHECKING:
    from devslice.contract.variables import Variable

DEFAULT_FILES = {"dotenv": "{handle}.env", "k8s": "{handle}.k8s.yaml"}


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds secrets), replacing it atomically."""
    from devslice.files import write_atomic  # lazy: only when this command runs

    write_atomic(path, text, 0o600)


class EnvOutput(Formats):
    """env's -o: a format name; or, as before issue 16 gave -o to formats, the file to write:
    a value that is no format name and looks like a path ('-', or with a '/' or a '.') is
    taken as --to-file with a note. A bare word that is neither (``-o ymal``) is refused, so
    a typo never becomes a file of secrets."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        if isinstance(value, LegacyPath) or value in self.choices:
            return value
        if value == "-" or "/" in value or os.sep in value or "." in value:
            return LegacyPath(value)
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as exc:
            self.fail(f"{exc.message.rstrip('.')}; to write a file: --to-file {value}", param, ctx)


class LegacyPath(str):
    """A file given as -o PATH (deprecated: --to-file PATH)."""


@click.command()
@click.option("--slice", "handle", metavar="HANDLE",
              help="Which slice (default: $DEVSLICE_SLICE, devslice.local.yaml, or the one you "
              "claimed last here).")
@click.option("-o", "--output", "fmt", type=EnvOutput(ENV_FORMATS), default="shell",
              metavar="FORMAT",
              help="Output format: shell (export lines for eval, the default), dotenv, json, "
              "yaml (secrets masked in both) or k8s (a ConfigMap and a Secret).")
@click.option("--to-file", metavar="PATH",
              help="Write to PATH (mode 0600) instead of stdout; dotenv and k8s always write a "
              "file (default .devslice/HANDLE.env or .k8s.yaml), '-' sends them to stdout.")
@click.option("--format", "legacy_format", type=Formats(ENV_FORMATS), hidden=True,
              help="Deprecated: -o FORMAT.")
@click.option("--namespace", "k8s_namespace", metavar="NS",
              help="k8s: the Kubernetes namespace of the ConfigMap and Secret.")
@click.option("--explain", is_flag=True,
              help="Show where each value comes from instead of the values alone.")
@click.option("--for", "audience", type=click.Choice(["host", "pods"]), default=None,
              help="host: processes on this machine (127.0.0.1); pods: the cluster's pods, "
              "which reach this machine's emulators at the network gateway. Default: pods for "
              "-o k8s, host otherwise.")
@pass_state
def env(state: State, handle: str | None, fmt: str, to_file: str | None,
        legacy_format: str | None, k8s_namespace: str | None, explain: bool,
        audience: str | None) -> None:
    """Print or write the variables a service reads to learn its slice.

    Secrets never reach the terminal: shell output refers to their source variable or file,
    JSON and YAML mask them, and dotenv/k8s output (which holds them) is written to a 0600
    file.

    \b
    Examples:
      eval "$(devslice env)"                       # shell: export LOCAL_DEV_...
      devslice env -o dotenv                       # writes .devslice/ab.env
      devslice env -o k8s --to-file - | kubectl apply -f -
      devslice env --explain --for pods
    """
    from devslice.contract import render  # lazy: only when this command runs

    fmt, to_file = _output(fmt, legacy_format, to_file)
    project = state.project()
    handle = project.current_handle(handle)
    variables = project.variables(handle)
    if (audience or ("pods" if fmt == "k8s" else "host")) == "pods":
        from devslice.contract.variables import PodsCannotReach, for_pods  # lazy: per command
        from devslice.resources.k3d import cluster_subnet, host_gateway  # lazy: per command

        c = project.env.cluster
        # pods run in k3d, or in a shared cluster with runtime kube (the local runtime and
        # auto without Docker have none: k3d's view is the one a manifest would need)
        cluster = "kube" if (os.environ.get("DEVSLICE_RUNTIME") or c.runtime) == "kube" \
            else "k3d"
        try:
            variables = for_pods(variables, cluster,
                                 host_gateway(cluster_subnet(c, project.base_dir))
                                 if cluster == "k3d" else None)
        except PodsCannotReach as exc:
            exc.hint = f"{exc.hint}; or `devslice env --for host` for processes on this machine"
            raise
    if explain:
        if to_file is not None:
            raise click.UsageError("--explain shows where values come from; it writes no "
                                   "file (leave out --to-file)")
        # which personal overrides apply to this slice, and why (issue 11)
        note = project.overrides(handle).note
        if machine(fmt):
            emit(render.as_data(variables, explain=True), fmt)
            if note:
                click.echo(note, err=True)
            return
        _explain(variables)
        if note:
            console().print(note, markup=False, highlight=False)
        return
    if fmt == "shell":
        text = render.shell(variables)
    elif machine(fmt):
        text = dumps(render.as_data(variables), fmt)
    else:
        text = render.dotenv(variables) if fmt == "dotenv" else render.k8s(
            variables, handle, k8s_namespace)
        if to_file is None:  # they hold secrets: a private file, never the terminal
            to_file = str(project.base_dir / ".devslice" / DEFAULT_FILES[fmt].format(
                handle=handle))
    if to_file is None or to_file == "-":
        sys.stdout.write(text)
        return
    path = Path(to_file)
    write_private(path, text)
    console().print(f"wrote {path} (mode 0600, {plural(len(variables), 'variable')})",
                    style="green", markup=False, highlight=False)


def _output(fmt: str, legacy_format: str | None, to_file: str | None) -> tuple[str, str | None]:
    """The format and file the options ask for, the deprecated spellings included."""
    given = click.get_current_context().get_parameter_source("fmt") \
        is not click.core.ParameterSource.DEFAULT
    if isinstance(fmt, LegacyPath):
        if to_file is not None:
            raise click.UsageError("-o PATH and --to-file PATH name two files; give one "
                                   "(--to-file)")
        deprecated(f"-o {fmt}", f"--to-file {fmt}")
        fmt, to_file, given = "shell", str(fmt), False
    if legacy_format is not None:
        if given and fmt != legacy_format:
            raise click.UsageError(f"--format {legacy_format} and -o {fmt} ask for two "
                                   f"formats; give one (-o {fmt})")
        deprecated(f"--format {legacy_format}", f"-o {legacy_format}")
        fmt = legacy_format
    return fmt, to_file


def _explain(variables: list[Variable]) -> None:
    from rich.table import Table  # lazy: rich, only for output
    from rich.text import Text  # lazy: rich, only for output

    from devslice.secrets import MASK  # lazy: only when this command runs

    t = Table(box=None, header_style="bold")
    t.add_column("variable", no_wrap=True)  # names are what CI logs are searched for
    t.add_column("value", overflow="fold")
    t.add_column("from", no_wrap=True)
    t.add_column("source", overflow="fold")
    for v in variables:
        shown = v.value if isinstance(v.value, str) else MASK
        # Text, not markup: a value such as "[/]" is the team's data (issue 12)
        t.add_row(*(Text(cell) for cell in (v.name, shown, v.origin.value, v.source)))
    console().print(t)


@click.command()
@click.option("--slice", "handle", metavar="HANDLE", help="Which slice (default: yours).")
@output_option("table")
@pass_state
def verify(state: State, handle: str | None, fmt: str) -> None:
    """Check the slice for real: its partitions, what its services use, a canary per partition.

    Compares the contract as services read it (overrides applied), the environment of running
    service processes (local runtime) or the cluster's ConfigMap and Secret (k3d/kube) with
    the ledger; a red check names the slice a conflicting value belongs to. Exits non-zero
    when any check fails.

    \b
    Example:
      devslice verify
    """
    from rich.markup import escape  # lazy: rich, only for output
    from rich.table import Table  # lazy: rich, only for output

    from devslice.verify import verify as run_checks  # lazy: only when this command runs

    project = state.project()
    ledger = project.ledger.read()  # the one read of the command (issue 17)
    checks = run_checks(project, project.current_handle(handle, ledger), state=ledger)
    if machine(fmt):
        emit([{"check": c.name, "status": c.status, "detail": c.detail} for c in checks], fmt)
    else:
        t = Table(box=None, header_style="bold")
        t.add_column("")
        t.add_column("check")
        t.add_column("detail", overflow="fold")  # the detail is the point: never cut it
        marks = {"ok": "[green]ok[/]", "failed": "[red]!![/]", "skipped": "[dim]--[/]"}
        for c in checks:
            t.add_row(marks[c.status], c.name, escape(c.detail))
        console().print(t)
    if not all(c.ok for c in checks):
        raise click.exceptions.Exit(1)
