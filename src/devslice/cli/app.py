"""The command tree. Each command parses arguments, calls the library, and prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem

from devslice import __version__
from devslice.cli.completion import attach, completion, full_summaries
from devslice.cli.output import (
    FORMAT_NAMES,
    deprecated,
    emit,
    err_console,
    output_option,
    print_error,
)
from devslice.errors import DevsliceError


class State:
    """What every command may need, built lazily from the global options."""

    def __init__(self, config: str | None) -> None:
        self.config = config
        self._project: Any = None

    def project(self) -> Any:
        if self._project is None:
            # lazy: loads the config and pydantic, only for commands that need the project
            from devslice.project import Project

            self._project = Project.load(self.config)
            # lazy: Key Vault access, only once a project is loaded
            from devslice.access.keyvault import VAULTS

            VAULTS.begin(self._project.env.azure.cloud)  # Key Vault reads: this command's only
        return self._project


pass_state = click.make_pass_decorator(State)

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class LazyGroup(click.Group):
    """A group whose commands named in ``lazy`` (``name: "module:attribute"``) are imported
    only when they are looked up (click's lazy-loading pattern): a command does not pay for
    the modules of commands it never runs (issue 17: `debug` loads mirrord's adapter and the
    leases, ~10 ms of every `up`). Listing, ``--help``, completion and ``commands`` (which
    loads them all) see every command."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        self._lazy = dict(lazy or {})
        self._commands: dict[str, click.Command] = {}
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]
    def commands(self) -> dict[str, click.Command]:
        for name in list(self._lazy):
            self._load(name)
        return self._commands

    @commands.setter
    def commands(self, value: Any) -> None:
        self._commands = dict(value or {})

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        if name is None:
            raise TypeError("Command has no name.")
        self._commands[name] = cmd

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self._commands, *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            self._load(cmd_name)
        return self._commands.get(cmd_name)

    def _load(self, name: str) -> None:
        import importlib  # lazy: only when a lazy command is looked up

        module, attribute = self._lazy.pop(name).split(":")
        command = getattr(importlib.import_module(module), attribute)
        prepare = click.Group(commands={name: command})
        attach(prepare)  # as _register does for the others
        full_summaries(prepare)
        self._commands[name] = command


@click.group(context_settings=CONTEXT, cls=LazyGroup,
             lazy={"adx": "devslice.cli.adx:adx_group", "debug": "devslice.cli.debug:debug"})
@click.version_option(__version__, "--version", prog_name="devslice",
                      message="%(prog)s %(version)s")
@click.option("-f", "--file", "config", metavar="PATH", envvar="DEVSLICE_CONFIG",
              help="The config file (default: devslice.yaml here or in a parent folder).")
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """An isolated development environment per developer, carved out of shared services.

    \b
    Start here:
      devslice init              write a starter devslice.yaml
      devslice slice claim       claim your slice (partitions, names) in the ledger
      devslice env               the variables your services read
      devslice slice map         who holds what, and what is free
    """
    ctx.obj = State(config)


@cli.command()
@click.option("--team", default="myteam", show_default=True,
              help="Team prefix used in names (lowercase letters and digits).")
@click.option("--force", is_flag=True, help="Overwrite an existing devslice.yaml.")
@click.option("--to-file", "path", metavar="PATH", type=click.Path(dir_okay=False),
              help="Where to write it (default: devslice.yaml).")
@click.option("-o", "--output", "legacy_path", type=click.Path(dir_okay=False), hidden=True,
              help="Deprecated: --to-file PATH.")
def init(team: str, force: bool, path: str | None, legacy_path: str | None) -> None:
    """Write a commented starter devslice.yaml.

    \b
    Examples:
      devslice init --team company1
      devslice init --to-file config/devslice.yaml
    """
    from devslice.config.starter import write_starter  # lazy: only when this command runs

    if legacy_path is not None:  # -o was the file before -o meant a format (issue 16)
        if path is not None:
            raise click.UsageError("-o PATH and --to-file PATH name two files; give one "
                                   "(--to-file)")
        if legacy_path in FORMAT_NAMES:  # a format name means the format, everywhere
            raise click.UsageError(f"init prints no data, so it has no -o {legacy_path}; "
                                   f"to write a file of that name: --to-file {legacy_path}")
        deprecated(f"-o {legacy_path}", f"--to-file {legacy_path}")
        path = legacy_path
    written = write_starter(Path(path or "devslice.yaml"), team=team, force=force)
    click.echo(f"wrote {written}; next: devslice slice claim")


@cli.command()
@click.option("--kind", type=click.Choice(["Environment", "LocalOverrides"]),
              default="Environment", show_default=True, help="Which document.")
@output_option(human=None)
def schema(kind: str, fmt: str) -> None:
    """Print the JSON Schema of devslice.yaml, for editor completion.

    \b
    Example (VS Code with the YAML extension):
      devslice schema > .devslice.schema.json
      # then in devslice.yaml:  # yaml-language-server: $schema=.devslice.schema.json
    """
    if kind == "Environment":
        # lazy: pydantic models, only when this command runs
        from devslice.config.model import Environment as model
    else:
        # lazy: pydantic models, only when this command runs
        from devslice.config.local import LocalOverrides as model  # type: ignore[assignment]
    data = model.model_json_schema(by_alias=True, mode="validation")
    data["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    emit(data, fmt)


@cli.command()
@click.argument("key", required=False, shell_complete=lambda ctx, param, incomplete:
                _complete_keys(incomplete))
def explain(key: str | None) -> None:
    """Describe a key of devslice.yaml: type, default, example, and the keys under it.

    Like `kubectl explain`, from the schema devslice validates with. Without KEY, lists the
    top-level keys. Items of a list are written KEY[] (or just KEY).

    \b
    Examples:
      devslice explain cluster.registry.port
      devslice explain services
    """
    from devslice.config.explain import explain as describe  # lazy: only when this command runs

    click.echo(describe(key), nl=False)


def _complete_keys(incomplete: str) -> list[Any]:

    from devslice.config.explain import keys  # lazy: only for tab completion

    return [CompletionItem(k.path) for k in keys() if k.path.startswith(incomplete)]


@cli.command()
@output_option("table")
@pass_state
def doctor(state: State, fmt: str) -> None:
    """Check the tools devslice drives and whether the ledger is reachable.

    \b
    Example:
      devslice doctor
    """
    from devslice.cli.doctor import run_doctor  # lazy: only when this command runs

    if not run_doctor(state, fmt):
        raise click.exceptions.Exit(1)


def _register() -> None:
    # Each command module imports State and pass_state from this module, defined above.
    from devslice.cli.engine import destroy, down, logs, plan, status, up  # lazy: imports State
    from devslice.cli.env import env, verify  # lazy: imports State
    from devslice.cli.ledger import ledger_group  # lazy: imports State
    from devslice.cli.slice import slice_group  # lazy: imports State

    for command in (plan, up, status, down, destroy, logs):
        cli.add_command(command)
    cli.add_command(slice_group)
    cli.add_command(ledger_group)
    cli.add_command(env)
    cli.add_command(verify)
    cli.add_command(completion)
    # `adx` and `debug` are LazyGroup's: loaded, and prepared as these, when looked up
    loaded = click.Group(commands=cli._commands)
    attach(loaded)
    full_summaries(loaded)


_register()


def run(args: list[str]) -> int:
    """Run the CLI; every DevsliceError becomes a message and an exit code, not a traceback."""
    try:
        code = cli.main(args=args, prog_name="devslice", standalone_mode=False)
    except DevsliceError as exc:
        print_error(exc)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted; nothing was changed", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # a file we were told to write or read: say which and why
        where = f": {exc.filename}" if exc.filename else ""
        err_console().print(f"[bold red]error:[/] {exc.strerror or exc}{where}", markup=True)
        return 1
    return code if isinstance(code, int) else 0
