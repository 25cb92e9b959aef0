"""Shell completion: ``devslice completion bash|zsh|fish`` and the values Tab offers.

Click completes commands and options itself (its ``_DEVSLICE_COMPLETE`` protocol); devslice
adds the values only it knows: slice handles wherever a command takes one, service names for
``debug`` and ``logs``, and config keys for ``explain``. Parameters are matched by name
(``handle``, ``service``) when the command tree is built, so a command added later completes
the same way without code of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from click.shell_completion import CompletionItem, get_completion_class

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_DEVSLICE_COMPLETE"
INSTALL = {
    "bash": 'eval "$(devslice completion bash)"    # in ~/.bashrc',
    "zsh": 'eval "$(devslice completion zsh)"     # in ~/.zshrc, after compinit',
    "fish": "devslice completion fish > ~/.config/fish/completions/devslice.fish",
}


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print the script that makes SHELL complete devslice's commands, options, slice
    handles and service names.

    \b
    Examples:
      eval "$(devslice completion bash)"    # in ~/.bashrc
      eval "$(devslice completion zsh)"     # in ~/.zshrc, after compinit
      devslice completion fish > ~/.config/fish/completions/devslice.fish
    """

    cls = get_completion_class(shell)
    assert cls is not None  # every name in SHELLS is one click ships
    root = ctx.find_root().command
    click.echo(cls(root, {}, "devslice", COMPLETE_VAR).source())


def _config(ctx: click.Context) -> str | None:
    """The -f/--file given on the command line being completed (else $DEVSLICE_CONFIG)."""
    value = ctx.find_root().params.get("config")
    return value if isinstance(value, str) else None


def complete_handles(ctx: click.Context, param: click.Parameter, incomplete: str
                     ) -> list[CompletionItem]:
    from devslice.cli.candidates import handles  # lazy: only during tab completion

    return [CompletionItem(h) for h in handles(_config(ctx)) if h.startswith(incomplete)]


def complete_services(ctx: click.Context, param: click.Parameter, incomplete: str
                      ) -> list[CompletionItem]:
    from devslice.cli.candidates import services  # lazy: only during tab completion

    return [CompletionItem(s) for s in services(_config(ctx)) if s.startswith(incomplete)]


COMPLETERS: dict[str, Callable[[click.Context, click.Parameter, str], list[Any]]] = {
    "handle": complete_handles,
    "service": complete_services,
}
NEW_NAMES = {("slice", "claim")}  # a handle given here is usually a new one


def attach(group: click.Group, path: tuple[str, ...] = ()) -> None:
    """Give every ``handle`` and ``service`` parameter in the tree its completion."""
    for name, command in group.commands.items():
        here = (*path, name)
        if isinstance(command, click.Group):
            attach(command, here)
            continue
        if here in NEW_NAMES:
            continue
        for param in command.params:
            completer = COMPLETERS.get(param.name or "")
            # click keeps the shell_complete= callback in this attribute (click 8.x,
            # Parameter.__init__); tests/test_conventions.py completes through it.
            if completer is not None and param._custom_shell_complete is None:
                param._custom_shell_complete = completer


def full_summaries(group: click.Group) -> None:
    """List every command with its whole summary (the first paragraph of its help) instead
    of click's default, which cuts it at 45 characters with "..."."""
    for command in group.commands.values():
        if command.help and not command.short_help:
            first = command.help.split("\n\n", 1)[0]
            command.short_help = " ".join(first.split())
        if isinstance(command, click.Group):
            full_summaries(command)
