"""Which variables a slice's services get, and where each value comes from.

The slice's own variables (handle, team, the host's address) are made here; each shared
service adds its own (:mod:`devslice.services`); the team's names and ``contract.env``
follow, then the developer's overrides. :func:`for_pods` turns the contract into what pods
see, from each variable's reach.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from devslice.config.derive import derive_names
from devslice.errors import DevsliceError
from devslice.sdk.context import (
    DEFAULT_PARTITIONS_VARIABLE,
    DEFAULT_PREFIX,
    PARTITIONS_VARIABLE_VARIABLE,
    PREFIX_VARIABLE,
    variable_key,
)
from devslice.secrets import Secret
from devslice.services import contract_variables
from devslice.services.base import Contract, Origin, Reach, Variable

if TYPE_CHECKING:
    from devslice.config.local import LocalOverrides
    from devslice.config.model import Environment
    from devslice.slices.model import Slice

__all__ = ["Origin", "Overrides", "PodsCannotReach", "Reach", "Variable", "for_pods",
           "overrides_for", "slice_variables"]


@dataclass(frozen=True)
class Overrides:
    """The personal overrides one slice gets from devslice.local.yaml, and why."""

    env: dict[str, str]  # applied to this slice; empty when none are
    source: str  # the file's name, shown as the overrides' source
    note: str | None = None  # what `env --explain` says about the file, when there is one


def overrides_for(local: LocalOverrides | None, path: Path, handle: str) -> Overrides:
    """The overrides of ``local`` that slice ``handle`` gets: all of them when the file names
    this slice, none otherwise (issue 11: aa's override must not reach bb's services)."""
    if local is None or not local.env:
        return Overrides({}, path.name)
    keys = ", ".join(sorted(local.env))
    if local.slice == handle:
        return Overrides(dict(local.env), path.name,
                         f"{path.name} names slice {handle}: its overrides apply ({keys})")
    return Overrides({}, path.name,
                     f"{path.name} names slice {local.slice}, not {handle}: its overrides "
                     f"({keys}) were not applied to {handle}")


def slice_variables(
    env: Environment,
    s: Slice,
    base_dir: Path,
    overrides: dict[str, str] | None = None,
    overrides_source: str = "devslice.local.yaml",
    environ: dict[str, str] | None = None,
    secrets: bool = True,
    host_address: str | None = None,
) -> list[Variable]:
    """The contract for slice ``s``, in a stable order.

    Secrets are resolved (from the environment or files) and wrapped in :class:`Secret`; a
    secret that is not set raises :class:`~devslice.errors.SecretUnavailable`. With
    ``secrets=False`` they are left out, for tools that need only names. ``host_address``:
    this machine as k3d pods reach it (the cluster network's gateway), when the runtime may
    be k3d.
    """
    c = Contract(env, s, derive_names(env, s.handle), base_dir, environ, secrets)
    _slice_own(c, host_address)
    contract_variables(c)
    p = c.prefix
    for key, name in c.names.named.items():
        c.add(f"{p}NAME_{variable_key(key)}", name, Origin.allocation, f"names.{key}.template")
    for name, value in env.contract.env.items():
        c.add(name, value, Origin.team, "devslice.yaml contract.env")
    return _overridden(c.out, overrides or {}, overrides_source)


def _slice_own(c: Contract, host_address: str | None) -> None:
    env, s, p = c.env, c.slice, c.prefix
    if p != DEFAULT_PREFIX:
        c.add(PREFIX_VARIABLE, p, Origin.team, "devslice.yaml contract.prefix")
    if env.contract.partition_ids_variable != DEFAULT_PARTITIONS_VARIABLE:
        c.add(PARTITIONS_VARIABLE_VARIABLE, env.contract.partition_ids_variable, Origin.team,
              "devslice.yaml contract.partitionIdsVariable")
    c.add(f"{p}SLICE", s.handle, Origin.allocation, c.ledger)
    c.add(f"{p}SLICE_KIND", s.kind.value, Origin.allocation, c.ledger)
    c.add(f"{p}TEAM", env.team, Origin.team, "devslice.yaml team")
    if host_address is not None:
        # The developer's machine as pods see it, instead of host.k3d.internal, which stops
        # resolving after the laptop sleeps (k3d issues 1221, 1360).
        c.add(f"{p}HOST_ADDRESS", host_address, Origin.team,
              "devslice.yaml cluster.subnet (its gateway)")


def _overridden(out: list[Variable], overrides: dict[str, str], source: str) -> list[Variable]:
    """``out`` with the developer's overrides: a value replaced keeps its place (and stays a
    secret if it was one), a new one goes last."""
    index = {v.name: i for i, v in enumerate(out)}
    for name, value in overrides.items():
        replaced = out[index[name]] if name in index else None
        shown: str | Secret = value
        if replaced is not None and replaced.is_secret:
            shown = Secret(value, f"override:{name}")  # overriding keeps it a secret
        var = Variable(name, shown, Origin.override, source)
        if name in index:
            out[index[name]] = var
        else:
            out.append(var)
    return out


# The loopback host of a URL or host list: after //, user@ or a comma, before a port, path,
# query, separator or the end.
_LOOPBACK = re.compile(r"(?i)(?:(?<=//)|(?<=[@,]))(?:127\.0\.0\.1|localhost|\[::1\])"
                       r"(?=[:/;?,#]|$)")
# Anything else that still names this machine's loopback after the rewrite.
_LEFT_LOOPBACK = re.compile(r"(?i)(?<![\w-])(?:[\w-]+\.)*localhost(?![\w-])|"
                            r"(?<![\w.])127\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\w.])|\[::1\]")


class PodsCannotReach(DevsliceError):
    """The slice's contract points pods at something only this machine can use."""


def for_pods(variables: list[Variable], runtime: str, gateway: str | None) -> list[Variable]:
    """The contract as pods see it (the slice's ConfigMap and Secret).

    Values that address a port published on this machine (emulator containers) are rewritten
    from 127.0.0.1/localhost to the cluster network's gateway, where k3d pods reach the
    machine (``LOCAL_DEV_HOST_ADDRESS``). An embedded stand-in (a file, a process bound to
    127.0.0.1) has no address pods could use, and neither has this machine for a shared
    cluster (runtime kube): those raise :class:`PodsCannotReach`, naming the mode to change.
    """
    out, unreachable = [], []
    for v in variables:
        if v.reach is None or v.origin is Origin.override:
            out.append(v)
        elif v.reach is Reach.machine or runtime != "k3d" or gateway is None:
            unreachable.append(v)
        else:
            out.append(_at_gateway(v, gateway))
    if unreachable:
        raise _unreachable(unreachable, runtime)
    return out


def _at_gateway(v: Variable, gateway: str) -> Variable:
    """``v`` with this machine's loopback rewritten to the gateway."""
    text = v.value.reveal() if isinstance(v.value, Secret) else v.value
    text = _LOOPBACK.sub(gateway, text)
    left = _LEFT_LOOPBACK.search(text.replace(gateway, ""))
    if left:
        # a host devslice does not know how to rewrite: refuse rather than hand pods an
        # address that is their own loopback
        raise PodsCannotReach(
            f"{v.name} names this machine as {left.group(0)!r}, which devslice does not "
            f"rewrite for pods ({v.source})",
            hint="write the template with 127.0.0.1 or localhost, which devslice rewrites to "
            "the gateway for pods")
    value: str | Secret = Secret(text, v.value.source) if isinstance(v.value, Secret) else text
    return replace(v, value=value, source=f"{v.source}, for pods at the gateway {gateway}")


def _unreachable(unreachable: list[Variable], runtime: str) -> PodsCannotReach:
    """Why pods cannot use these variables, and which modes to change."""
    keys = sorted({v.mode_key or v.name for v in unreachable})
    modes = [k for k in keys if k.endswith(".mode")]
    if runtime == "k3d":
        why = ("embedded stand-ins live in files and processes of this machine, which pods "
               "cannot open")
        fixes = [f"set {', '.join(f'{k}: emulator' for k in modes)} (a container pods reach "
                 "through the gateway), or shared"] if modes else []
        fixes.append("or run the services as processes with cluster.runtime: local")
    else:
        why = "pods of a shared cluster cannot reach emulators or stand-ins on this machine"
        fixes = [f"set {', '.join(f'{k}: shared' for k in modes)} (a slice of the team's "
                 "cloud service)"] if modes else []
        fixes += [f"remove {k} and give pods a {k.split('.')[-1]} they reach (e.g. a shared "
                  "one, in a variable of contract.env)" for k in keys if not k.endswith(".mode")]
    names = [v.name for v in unreachable]
    verb = "points" if len(names) == 1 else "point"
    return PodsCannotReach(f"runtime {runtime}: {', '.join(names)} {verb} at this machine "
                           f"({', '.join(keys)}); {why}", hint="; ".join(fixes))
