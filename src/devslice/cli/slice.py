"""``devslice slice ...``: claim, release, renew, show, list, gc and map."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import click

from devslice.cli.app import State, pass_state
from devslice.cli.output import console, emit, machine, output_option


def _ttl(value: str | None) -> timedelta | str | None:
    if value is None:
        return "default"
    if value.lower() in ("none", "never"):
        return None  # 0 is not "never": like every duration, it must be positive
    from devslice.config.duration import parse_duration  # lazy: only when this command runs

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from None


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M}Z" if at else "never"


def slice_json(project: Any, s: Any) -> dict[str, Any]:
    from devslice.config.derive import derive_names  # lazy: only when this command runs

    data: dict[str, Any] = s.model_dump(mode="json")
    data["names"] = derive_names(project.env, s.handle).all()
    data["expired"] = s.expired(project.clock())
    return data


def _slice_table(project: Any, s: Any) -> None:
    from rich.table import Table  # lazy: rich, only for output

    from devslice.config.derive import derive_names  # lazy: only when this command runs

    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    t.add_row("slice", s.handle)
    t.add_row("kind", s.kind.value)
    t.add_row("owner", s.owner)
    t.add_row("event hubs", f"{s.event_hubs.namespace} partitions "
              f"{','.join(map(str, s.event_hubs.partitions))}")
    for key, name in derive_names(project.env, s.handle).all().items():
        t.add_row(key, name)
    t.add_row("claimed", f"{_when(s.created_at)} by {s.created_by}"
              + (f" (claim {s.claim})" if s.claim else ""))
    t.add_row("start fences", _fences(s))
    t.add_row("updated", f"{_when(s.updated_at)} by {s.updated_by}")
    expiry = _when(s.expires_at)
    if s.expired(project.clock()):
        expiry += " (expired; `devslice slice gc` will reclaim it)"
    t.add_row("expires", expiry)
    console().print(t)


def _fences(s: Any) -> str:
    """Where the slice's view of each partition begins (issue 11), in one line."""
    if s.claim is None:
        return "none (claimed before start fences existed: release and claim again)"
    if not s.start_fences:
        return "events enqueued from the claim time on"
    parts = [f"{f.event_hub}/{f.partition} "
             + ("from the claim time (not readable then)" if f.sequence_number is None
                else "from its first event (empty when claimed)" if f.sequence_number < 0
                else f"after #{f.sequence_number}")
             for f in s.start_fences]
    return ", ".join(parts)


@click.group("slice", context_settings={"help_option_names": ["-h", "--help"]})
def slice_group() -> None:
    """Claim and manage slices in the team's ledger.

    \b
    Example:
      devslice slice claim            # your initials, 1 partition
      devslice slice map              # who holds which partitions
    """


@slice_group.command()
@click.argument("handle", required=False)
@click.option("--kind", type=click.Choice(["developer", "ci", "shared"]), default="developer",
              show_default=True, help="Who the slice is for; ci slices expire (see slices.ttl).")
@click.option("--partitions", "-p", type=click.IntRange(1, 32), metavar="K",
              help="Partitions per event hub (default: eventHubs.partitionsPerSlice).")
@click.option("--ttl", metavar="DURATION",
              help="Lease length like 4h or 2d (at most 365d); 'none' never expires (default "
              "per kind).")
@click.option("--owner", help="Who the slice is for (default: $DEVSLICE_OWNER or git email).")
@output_option("text")
@pass_state
def claim(state: State, handle: str | None, kind: str, partitions: int | None, ttl: str | None,
          owner: str | None, fmt: str) -> None:
    """Claim a slice: partitions and names of your own. Claiming again returns the same slice.

    Without HANDLE, your initials are used (then ab2, ab3 ... if someone else has them).

    \b
    Examples:
      devslice slice claim
      devslice slice claim ab --partitions 2
      devslice slice claim --kind ci --ttl 2h -o json
    """
    from devslice.project import UNSET  # lazy: only when this command runs
    from devslice.slices.model import SliceKind  # lazy: only when this command runs

    project = state.project()
    lease = _ttl(ttl)
    s, created = project.claim(
        handle, kind=SliceKind(kind), partitions=partitions,
        ttl=UNSET if lease == "default" else lease, owner=owner,
    )
    # Only a developer slice claimed for oneself becomes the current slice here: a ci or
    # shared slice (or one claimed for someone else) must not quietly switch `devslice env`.
    if s.kind is SliceKind.developer and _for_me(owner):
        project.remember(s.handle)
    if machine(fmt):
        emit({**slice_json(project, s), "created": created}, fmt)
        return
    verb = "claimed" if created else "you already hold"
    console().print(f"[green]{verb}[/] slice [bold]{s.handle}[/]")
    _slice_table(project, s)
    console().print("[dim]next: devslice env -o dotenv[/]")


def _for_me(owner: str | None) -> bool:
    from devslice import identity  # lazy: only when this command runs

    return owner is None or owner == identity.owner()


DELETE_OPTIONS = [
    click.option("--delete-resources", is_flag=True,
                 help="Also delete the slice's resources in Azure that devslice created for "
                 "it (tagged with its claim); asks first unless -y."),
    click.option("-y", "--yes", is_flag=True, help="Do not ask before deleting."),
    click.option("--adopt", is_flag=True,
                 help="Also delete same-named resources without devslice's tags."),
]


def _delete_options(f: Any) -> Any:
    for option in reversed(DELETE_OPTIONS):
        f = option(f)
    return f


def _delete_resources(project: Any, slices: list[Any], yes: bool, adopt: bool,
                      retry: bool = False) -> list[dict[str, str]]:
    """Delete the slices' tagged Azure resources (and retry earlier failures with gc)."""
    from devslice.access.azure import Azure  # lazy: only when this command runs
    from devslice.cloud.plan import provisioning  # lazy: only when this command runs
    from devslice.cloud.teardown import delete_slice_resources, retry_leftovers  # lazy: per command

    if not provisioning(project.env):
        console().print("[dim]no Azure resources to delete: nothing is provisioned "
                        "(azure.subscription/resourceGroup unset or no shared service)[/]")
        return []
    if not slices and not retry:
        return []
    if not yes and slices:
        click.confirm(f"Delete the Azure resources devslice created for "
                      f"{', '.join(s.handle for s in slices)} (only those tagged with the "
                      "slice's claim" + (", and same-named untagged ones" if adopt else "")
                      + ")?", abort=True)
    azure = Azure.from_settings(project.env.azure)
    try:
        removals = retry_leftovers(azure, project.env, project.ledger) if retry else []
        for s in slices:
            removals += delete_slice_resources(azure, project.env, s, project.ledger,
                                               adopt=adopt)
    finally:
        azure.close()
    return [r.as_dict() for r in removals]


def _print_removals(removals: list[dict[str, str]]) -> None:
    from rich.markup import escape  # lazy: rich, only for output

    colour = {"deleted": "green", "absent": "dim", "refused": "yellow", "failed": "red"}
    for r in removals:
        console().print(f"[{colour[r['outcome']]}]{r['outcome']}[/] {r['kind']} "
                        f"{escape(r['id'])}: {escape(r['reason'])}")


@slice_group.command()
@click.argument("handle", required=False)
@click.option("--force", is_flag=True, help="Release a slice someone else owns.")
@output_option("text")
@_delete_options
@pass_state
def release(state: State, handle: str | None, force: bool, fmt: str,
            delete_resources: bool, yes: bool, adopt: bool) -> None:
    """Give a slice back; its partitions and names become free.

    With --delete-resources, the slice's Azure resources that devslice created for this claim
    (tagged with it) are deleted too; a same-named resource without devslice's tags is
    refused unless --adopt. A delete that fails is recorded and retried by `slice gc
    --delete-resources`.

    \b
    Examples:
      devslice slice release ab
      devslice slice release ab --delete-resources -y
    """
    project = state.project()
    handle = project.current_handle(handle)
    s = project.release(handle, force=force)
    if project.current_handle_marker() == handle:
        project.remember(None)
    removals = _delete_resources(project, [s], yes, adopt) if delete_resources else []
    if machine(fmt):
        emit({**slice_json(project, s), **({"resources": removals}
                                           if delete_resources else {})}, fmt)
        return
    console().print(f"released slice [bold]{s.handle}[/] ({s.event_hubs.namespace} partitions "
                    f"{','.join(map(str, s.event_hubs.partitions))} are free again)")
    _print_removals(removals)
    if any(r["outcome"] == "failed" for r in removals):
        click.get_current_context().exit(1)


@slice_group.command()
@click.argument("handle", required=False)
@click.option("--ttl", metavar="DURATION", help="New lease length (default: the slice's own).")
@click.option("--force", is_flag=True, help="Renew a slice someone else owns.")
@output_option("text")
@pass_state
def renew(state: State, handle: str | None, ttl: str | None, force: bool, fmt: str) -> None:
    """Extend a slice's lease so gc does not reclaim it.

    Only the slice's owner ($DEVSLICE_OWNER or git email) may renew it; --force renews
    someone else's (the ledger records who did).

    \b
    Example (in a CI job, every hour):
      devslice slice renew ci7 --ttl 2h
    """
    project = state.project()
    lease = _ttl(ttl)
    s = project.renew(project.current_handle(handle),
                      ttl=lease if isinstance(lease, timedelta) else None, force=force)
    if machine(fmt):
        emit(slice_json(project, s), fmt)
        return
    console().print(f"renewed slice [bold]{s.handle}[/]: expires {_when(s.expires_at)}")


@slice_group.command()
@click.argument("handle", required=False)
@click.option("--history", "history", is_flag=True, help="Also show its history.")
@output_option()
@pass_state
def show(state: State, handle: str | None, history: bool, fmt: str) -> None:
    """Show one slice: partitions, names, owner and lease (default: your current slice).

    \b
    Example:
      devslice slice show ab --history
    """
    project = state.project()
    s = project.get(project.current_handle(handle))
    changes = project.ledger.history(s.handle) if history else []
    if machine(fmt):
        data = slice_json(project, s)
        if history:
            data["history"] = [c.model_dump(mode="json") for c in changes]
        emit(data, fmt)
        return
    _slice_table(project, s)
    for c in changes:
        console().print(f"  {_when(c.at)}  {c.action:<8} {c.actor}  [dim]{c.detail}[/]")


@slice_group.command("list")
@output_option()
@pass_state
def list_(state: State, fmt: str) -> None:
    """List the live slices in the ledger.

    \b
    Example:
      devslice slice list -o json | jq '.[].handle'
    """
    from rich.table import Table  # lazy: rich, only for output

    project = state.project()
    slices = project.slices()
    if machine(fmt):
        emit([slice_json(project, s) for s in slices], fmt)
        return
    if not slices:
        console().print(f"no slices in {project.ledger.location}; claim one with "
                        "`devslice slice claim`")
        return
    now = project.clock()
    t = Table(box=None, header_style="bold")
    for col in ("handle", "kind", "owner", "namespace", "partitions", "expires", "claimed"):
        t.add_column(col)
    for s in slices:
        expires = _when(s.expires_at) + (" [red](expired)[/]" if s.expired(now) else "")
        t.add_row(s.handle, s.kind.value, s.owner, s.event_hubs.namespace,
                  ",".join(map(str, s.event_hubs.partitions)), expires, _when(s.created_at))
    console().print(t)


@slice_group.command()
@click.option("--dry-run", is_flag=True, help="Only list what would be reclaimed.")
@output_option("text")
@_delete_options
@pass_state
def gc(state: State, dry_run: bool, fmt: str, delete_resources: bool, yes: bool,
       adopt: bool) -> None:
    """Reclaim slices whose lease expired (CI slices have a TTL).

    With --delete-resources, the reclaimed slices' Azure resources tagged with their claims
    are deleted too, and deletes that failed before are tried again.

    \b
    Examples (a nightly job):
      devslice slice gc
      devslice slice gc --delete-resources -y
    """
    project = state.project()
    removed = project.gc(dry_run=dry_run)
    removals = _delete_resources(project, removed, yes, adopt, retry=True) \
        if delete_resources and not dry_run else []
    if machine(fmt):
        emit({"dryRun": dry_run, "reclaimed": [slice_json(project, s) for s in removed],
              **({"resources": removals} if delete_resources else {})}, fmt)
        return
    _print_removals(removals)
    if not removed:
        console().print("nothing to reclaim: no lease has expired")
        return
    verb = "would reclaim" if dry_run else "reclaimed"
    for s in removed:
        console().print(f"{verb} {s.handle} ({s.kind.value}, {s.owner}, expired "
                        f"{_when(s.expires_at)})")


@slice_group.command("map")
@output_option("text")
@pass_state
def map_(state: State, fmt: str) -> None:
    """Picture the capacity: namespaces by partitions, who holds which, how many are free.

    \b
    Example:
      devslice slice map
    """
    from devslice.cli.capacity import print_map  # lazy: only when this command runs

    project = state.project()
    ledger_state = project.ledger.read()
    namespaces = project.capacity(ledger_state)
    if machine(fmt):
        per_slice = project.env.event_hubs.partitions_per_slice
        emit({
            "partitionsPerSlice": per_slice,
            "free": sum(n.free for n in namespaces),
            "namespaces": [{
                "name": n.name, "partitions": n.partitions, "free": n.free,
                "configured": n.configured,
                "cells": [{"partition": c.partition, "state": c.state, "handle": c.handle}
                          for c in n.cells],
            } for n in namespaces],
            "slices": {h: {"owner": s.owner, "kind": s.kind.value}
                       for h, s in ledger_state.slices.items()},
        }, fmt)
        return
    print_map(project, namespaces, ledger_state)
