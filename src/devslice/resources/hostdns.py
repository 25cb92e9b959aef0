"""The laptop-sleep bug: ``host.k3d.internal`` stops resolving inside the cluster.

k3d 5.x writes ``<gateway> host.k3d.internal`` into CoreDNS's ``NodeHosts`` only on
``k3d cluster start``; when Docker restarts the node containers after a sleep or reboot, k3s
rewrites ``NodeHosts`` without it (k3d issues 1221, 1360). devslice gives manifests the
gateway address itself (``LOCAL_DEV_HOST_ADDRESS``), so its own services never depend on the
name; for everything else this resource notices the missing entry (`devslice status`) and puts
it back (`devslice up`). CoreDNS's ``hosts`` plugin reloads the file by itself.

Its one fact is CoreDNS's ConfigMap (``devslice.facts.kube.get``); ``plan(facts)`` reads
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devslice.adapters.kube import Kube, KubeUnreachable, KubeView
from devslice.facts import kube as kube_facts
from devslice.facts.world import Reader
from devslice.resources.plan import Action, noop

HOST_NAME = "host.k3d.internal"
KEY = "host-dns"


def has_host_entry(node_hosts: str, gateway: str) -> bool:
    for line in node_hosts.splitlines():
        parts = line.split()
        if HOST_NAME in parts[1:] and parts[0] == gateway:
            return True
    return False


@dataclass(frozen=True)
class HostDnsFacts:
    reachable: bool
    coredns: dict[str, Any] | None = None
    view: KubeView | None = None


class HostDnsResource:
    after: tuple[str, ...] = ("cluster",)
    key = KEY

    def __init__(self, kube: Kube, gateway: str) -> None:
        self.kube = kube
        self.gateway = gateway

    def _coredns(self) -> dict[str, Any] | None:
        return self.kube.get("v1", "ConfigMap", "coredns", "kube-system")

    def read(self, reader: Reader) -> HostDnsFacts:
        try:
            coredns = kube_facts.get(reader, self.kube, "v1", "ConfigMap", "coredns",
                                     "kube-system")
            return HostDnsFacts(True, coredns, self.kube.view([("v1", "ConfigMap")]))
        except KubeUnreachable:
            return HostDnsFacts(False)

    def plan(self, facts: HostDnsFacts | None = None) -> list[Action]:
        facts = facts or self.read(Reader())
        if not facts.reachable or facts.view is None:
            return [noop(KEY, "cluster not reachable yet; checked once it runs")]
        coredns = facts.coredns
        if coredns is None:
            return [noop(KEY, "no CoreDNS ConfigMap in kube-system (not a k3s cluster?)")]
        node_hosts = (coredns.get("data") or {}).get("NodeHosts", "")
        if has_host_entry(node_hosts, self.gateway):
            return [noop(KEY, f"{HOST_NAME} resolves to {self.gateway}")]
        patch = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "coredns", "namespace": "kube-system"},
                 "data": {"NodeHosts": node_hosts.rstrip("\n")
                          + f"\n{self.gateway} {HOST_NAME}\n"}}
        return [Action(
            KEY, "repair",
            f"{HOST_NAME} is missing from CoreDNS NodeHosts (the k3d sleep bug, issues 1221 "
            f"and 1360): add {self.gateway}",
            (facts.view.apply_call(patch, force=True),),
            lambda: self._repair(patch),
        )]

    def _repair(self, patch: dict[str, Any]) -> None:
        # Re-read first: k3s may have rewritten NodeHosts since the plan was made.
        current = self._coredns() or {}
        hosts = (current.get("data") or {}).get("NodeHosts", "")
        if not has_host_entry(hosts, self.gateway):
            patch["data"]["NodeHosts"] = hosts.rstrip("\n") + f"\n{self.gateway} {HOST_NAME}\n"
            self.kube.apply(patch, force=True)
