"""The k3d command line, verb by verb, returning typed facts.

Methods mirror k3d's own verbs (``cluster_create``, ``registry_list``). Listings read
``-o json``, whose shapes come from k3d v5.7.4 (``cmd/cluster/clusterList.go`` embeds
``pkg/types.Cluster`` plus ``serversRunning``/``serversCount``/``agentsRunning``/``agentsCount``;
``cmd/registry/registryList.go`` prints ``[]pkg/types.Node``; ``cmd/node/nodeList.go`` prints
every k3d node the same way, registries included, since v5.0.0). Every changing verb has a pure
``argv_for_*`` twin so plans can show the exact command before it runs.

Version gates (checked once per adapter, only before a changing call):

- k3d 4.x spelled node filters ``@server[0]`` and had ``--k3s-server-arg``; devslice speaks
  the 5.x dialect only (``MIN_VERSION``).
- Config files ``apiVersion: k3d.io/v1alpha5`` are read from k3d v5.5.0 on (the
  ``pkg/config/v1alpha5`` package first ships in that tag; 5.3-5.4 read v1alpha4 only).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike, fspath
from typing import Any

from devslice.adapters.runner import CommandRunner, Completed
from devslice.errors import CommandFailed, ToolMissing

EXE = "k3d"
PREFIX = "k3d-"  # k3d.DefaultObjectNamePrefix: every container k3d makes is named k3d-...
REGISTRY_PORT_INTERNAL = "5000/tcp"  # k3d.DefaultRegistryPort, what the registry listens on
IPRANGE_LABEL = "k3d.cluster.network.iprange"  # on every node since k3d 5.0 (cluster.go)

MIN_VERSION = (5, 0, 0)
CONFIG_V1ALPHA5_VERSION = (5, 5, 0)
INSTALL_HINT = ("install k3d 5.5 or newer: https://k3d.io (e.g. `curl -s https://raw."
                "githubusercontent.com/k3d-io/k3d/main/install.sh | bash`)")

# ----------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class K3dVersion:
    """``k3d version``: "k3d version v5.7.4" then "k3s version v1.30.4-k3s1 (default)"."""

    parts: tuple[int, int, int]
    text: str  # as printed, e.g. "v5.7.4" or "v5.8.0-rc.1"
    k3s: str | None = None  # the default k3s image tag this k3d would use

    def at_least(self, minimum: tuple[int, int, int]) -> bool:
        return self.parts >= minimum

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class NodeFact:
    name: str  # container name, e.g. k3d-devslice-server-0
    role: str  # server | agent | loadbalancer | registry
    running: bool  # State.Running
    status: str  # State.Status, as Docker says: running | exited | restarting | ...


@dataclass(frozen=True)
class ClusterFact:
    name: str  # without the k3d- prefix, as `k3d cluster list` prints it
    servers_running: int
    servers_count: int
    agents_running: int
    agents_count: int
    nodes: tuple[NodeFact, ...]
    network: str | None = None  # k3d-NAME unless the cluster joined an existing network
    subnet: str | None = None  # from the k3d.cluster.network.iprange node label

    @property
    def running(self) -> bool:
        """Every server and agent runs (the load balancer is not counted, as in k3d)."""
        return (self.servers_count > 0 and self.servers_running == self.servers_count
                and self.agents_running == self.agents_count)

    @property
    def stopped(self) -> bool:
        return self.servers_running == 0 and self.agents_running == 0

    def describe_state(self) -> str:
        return (f"{self.servers_running}/{self.servers_count} servers, "
                f"{self.agents_running}/{self.agents_count} agents running")


@dataclass(frozen=True)
class RegistryFact:
    name: str  # container name, k3d-NAME
    host_port: int | None  # the host side of 5000/tcp
    host_ip: str | None
    running: bool
    status: str
    networks: tuple[str, ...] = ()  # Docker networks the container is on

    @property
    def short_name(self) -> str:
        """NAME as given to `k3d registry create NAME`."""
        return self.name.removeprefix(PREFIX)


# ------------------------------------------------------------------- pure argv builders


def argv_for_version() -> tuple[str, ...]:
    return (EXE, "version")


def argv_for_cluster_list() -> tuple[str, ...]:
    return (EXE, "cluster", "list", "-o", "json")


def argv_for_node_list() -> tuple[str, ...]:
    return (EXE, "node", "list", "-o", "json")


def argv_for_registry_list() -> tuple[str, ...]:
    return (EXE, "registry", "list", "-o", "json")


def argv_for_registry_create(name: str, port: int) -> tuple[str, ...]:
    # -p takes [HOST:]HOSTPORT; HOST defaults to 0.0.0.0 (k3d.DefaultAPIHost)
    return (EXE, "registry", "create", name, "-p", str(port))


def argv_for_registry_delete(name: str) -> tuple[str, ...]:
    # k3d looks registries up by ^/?(k3d-)?NAME$, so both spellings work; the container name
    # is the unambiguous one and what `registry list` prints.
    return (EXE, "registry", "delete", registry_container(name))


def argv_for_cluster_create(config_path: str | PathLike[str]) -> tuple[str, ...]:
    return (EXE, "cluster", "create", "--config", fspath(config_path))


def argv_for_cluster_start(name: str) -> tuple[str, ...]:
    return (EXE, "cluster", "start", name)


def argv_for_cluster_stop(name: str) -> tuple[str, ...]:
    return (EXE, "cluster", "stop", name)


def argv_for_cluster_delete(name: str) -> tuple[str, ...]:
    return (EXE, "cluster", "delete", name)


def show(argv: Sequence[str]) -> str:
    """An argv as a user would type it, for plans."""
    return shlex.join(argv)


def registry_container(name: str) -> str:
    return name if name.startswith(PREFIX) else PREFIX + name


# ------------------------------------------------------------------------- parsing

_VERSION = re.compile(r"k3d version v?(\d+)\.(\d+)\.(\d+)(\S*)")
_K3S = re.compile(r"k3s version (\S+)")


def parse_version(text: str) -> K3dVersion:
    match = _VERSION.search(text)
    if match is None:
        first = (text.strip().splitlines() or ["(nothing)"])[0]
        raise CommandFailed(f"`k3d version` printed no k3d version: {first}", hint=INSTALL_HINT)
    k3s = _K3S.search(text)
    major, minor, patch = (int(g) for g in match.groups()[:3])
    return K3dVersion((major, minor, patch), f"v{major}.{minor}.{patch}{match.group(4)}",
                      k3s.group(1) if k3s else None)


def _json_list(done: Completed) -> list[dict[str, Any]]:
    text = done.stdout.strip()
    if not text:  # k3d prints "[]"; be lenient with nothing at all
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandFailed(f"`{show(done.argv)}` did not print JSON: {text[:200]}") from exc
    if data is None:  # json.Marshal of a nil slice
        return []
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise CommandFailed(f"`{show(done.argv)}` printed JSON of an unexpected shape: "
                            f"{text[:200]}")
    return data


def _node(raw: dict[str, Any]) -> NodeFact:
    state = raw.get("State") or {}
    return NodeFact(str(raw.get("name", "")), str(raw.get("role", "")),
                    bool(state.get("Running", False)), str(state.get("Status", "")))


def parse_cluster_list(done: Completed) -> list[ClusterFact]:
    clusters = []
    for raw in _json_list(done):
        raw_nodes = raw.get("nodes") or []
        labels = [n.get("runtimeLabels") or {} for n in raw_nodes]
        subnet = next((lb[IPRANGE_LABEL] for lb in labels if lb.get(IPRANGE_LABEL)), None)
        network = (raw.get("network") or {}).get("name") or None
        clusters.append(ClusterFact(
            name=str(raw.get("name", "")),
            servers_running=int(raw.get("serversRunning", 0)),
            servers_count=int(raw.get("serversCount", 0)),
            agents_running=int(raw.get("agentsRunning", 0)),
            agents_count=int(raw.get("agentsCount", 0)),
            nodes=tuple(_node(n) for n in raw_nodes),
            network=network, subnet=subnet,
        ))
    return clusters


def parse_registry_list(done: Completed) -> list[RegistryFact]:
    return [_registry(raw) for raw in _json_list(done)]


CLUSTER_ROLES = ("server", "agent", "loadbalancer")  # k3d.ClusterInternalNodeRoles
CLUSTER_LABEL = "k3d.cluster"  # k3d.LabelClusterName
NETWORK_LABEL = "k3d.cluster.network"  # k3d.LabelNetwork


@dataclass(frozen=True)
class NodeListing:
    """``k3d node list -o json``: the clusters and the registries, from one call."""

    clusters: list[ClusterFact]
    registries: list[RegistryFact]

    def cluster(self, name: str) -> ClusterFact | None:
        return next((c for c in self.clusters if c.name == name), None)

    def registry(self, name: str) -> RegistryFact | None:
        """Registry ``name`` as devslice's config names it (k3d's container: ``k3d-NAME``)."""
        container = registry_container(name)
        return next((r for r in self.registries if r.name == container), None)


def parse_node_list(done: Completed) -> NodeListing:
    """Clusters made as k3d's own ``ClusterList`` makes them from the same nodes
    (``pkg/client/cluster.go``: the cluster-internal roles grouped by the ``k3d.cluster``
    label, the network from the first ``k3d.cluster.network`` label, ``serversRunning`` and
    the other counts from the nodes' roles and ``State.Running``); registries as ``k3d
    registry list`` prints them (the same nodes, filtered by role)."""
    raw_nodes = _json_list(done)
    groups: dict[str, list[dict[str, Any]]] = {}
    for raw in raw_nodes:
        if raw.get("role") in CLUSTER_ROLES:
            name = str((raw.get("runtimeLabels") or {}).get(CLUSTER_LABEL, ""))
            groups.setdefault(name, []).append(raw)
    clusters = []
    for name, members in sorted(groups.items()):
        labels = [n.get("runtimeLabels") or {} for n in members]
        nodes = tuple(_node(n) for n in members)
        servers = [n for n in nodes if n.role == "server"]
        agents = [n for n in nodes if n.role == "agent"]
        clusters.append(ClusterFact(
            name=name,
            servers_running=sum(n.running for n in servers), servers_count=len(servers),
            agents_running=sum(n.running for n in agents), agents_count=len(agents),
            nodes=nodes,
            network=next((lb[NETWORK_LABEL] for lb in labels if lb.get(NETWORK_LABEL)), None),
            subnet=next((lb[IPRANGE_LABEL] for lb in labels if lb.get(IPRANGE_LABEL)), None)))
    return NodeListing(clusters, [_registry(raw) for raw in raw_nodes
                                  if raw.get("role") == "registry"])


def _registry(raw: dict[str, Any]) -> RegistryFact:
    node = _node(raw)
    # portMappings is Docker's HostConfig.PortBindings: {"5000/tcp": [{"HostIp", "HostPort"}]}.
    # The k3s.registry.port.external label would say the same, but k3d only copies labels
    # starting with "k3d" into the listing (docker/translate.go), so it never shows.
    bindings = (raw.get("portMappings") or {}).get(REGISTRY_PORT_INTERNAL) or []
    first = bindings[0] if bindings else {}
    port = str(first.get("HostPort") or "")
    return RegistryFact(node.name, int(port) if port.isdigit() else None,
                        first.get("HostIp") or None, node.running, node.status,
                        tuple(raw.get("Networks") or ()))


# ------------------------------------------------------------------------- adapter


def check_version(found: K3dVersion, minimum: tuple[int, int, int], needed_for: str
                  ) -> K3dVersion:
    """``found``, or ToolMissing saying why an older k3d will not do (no I/O: plans use it)."""
    if not found.at_least(minimum):
        want = ".".join(map(str, minimum))
        raise ToolMissing(f"k3d {found} is installed, but {needed_for} needs k3d {want} "
                          "or newer", hint=INSTALL_HINT)
    return found


class K3d:
    """k3d through an injected :class:`CommandRunner` (the CLI passes a SubprocessRunner)."""

    def __init__(self, runner: CommandRunner, timeout: float = 600,
                 env: Mapping[str, str] | None = None) -> None:
        self.runner = runner
        self.timeout = timeout
        self.env = dict(env) if env else None  # DOCKER_HOST of the engine devslice resolved
        self._version: K3dVersion | None = None

    def _run(self, argv: Sequence[str], timeout: float | None = None) -> Completed:
        try:
            return self.runner.run(argv, timeout=timeout or self.timeout, env=self.env)
        except ToolMissing as exc:
            raise ToolMissing(exc.message, hint=INSTALL_HINT) from exc

    # facts: read the world, never change it

    def version(self) -> K3dVersion:
        """The installed k3d (asked once per adapter; it does not change under a run)."""
        if self._version is None:
            self._version = parse_version(self._run(argv_for_version(), timeout=30).stdout)
        return self._version

    def cluster_list(self) -> list[ClusterFact]:
        return parse_cluster_list(self._run(argv_for_cluster_list(), timeout=60))

    def cluster_get(self, name: str) -> ClusterFact | None:
        # `k3d cluster list NAME` exits 1 for a missing cluster, which reads as a failure;
        # the node listing `up` reads gives it in one call either way.
        return self.node_list().cluster(name)

    def node_list(self) -> NodeListing:
        """Clusters and registries from one ``k3d node list`` (what ``cluster list`` and
        ``registry list`` each derive from the same listing of k3d's containers)."""
        return parse_node_list(self._run(argv_for_node_list(), timeout=60))

    def registry_list(self) -> list[RegistryFact]:
        return parse_registry_list(self._run(argv_for_registry_list(), timeout=60))

    def registry_get(self, name: str) -> RegistryFact | None:
        return self.node_list().registry(name)

    # version gates

    def require(self, minimum: tuple[int, int, int], needed_for: str) -> K3dVersion:
        """The installed version, or ToolMissing saying why an older one will not do."""
        return check_version(self.version(), minimum, needed_for)

    def require_config_support(self) -> K3dVersion:
        return self.require(CONFIG_V1ALPHA5_VERSION, "a k3d.io/v1alpha5 cluster config")

    # verbs that change the world

    def registry_create(self, name: str, port: int) -> None:
        self.require(MIN_VERSION, "devslice")
        self._run(argv_for_registry_create(name, port))

    def registry_delete(self, name: str) -> None:
        self.require(MIN_VERSION, "devslice")
        self._run(argv_for_registry_delete(name))

    def cluster_create(self, config_path: str | PathLike[str]) -> None:
        self.require_config_support()
        self._run(argv_for_cluster_create(config_path))

    def cluster_start(self, name: str) -> None:
        # Starting is also what re-injects host.k3d.internal into CoreDNS (k3d issues 1221,
        # 1360): k3d 5.x does it only on `cluster start`, not when Docker restarts a node.
        self.require(MIN_VERSION, "devslice")
        self._run(argv_for_cluster_start(name))

    def cluster_stop(self, name: str) -> None:
        self.require(MIN_VERSION, "devslice")
        self._run(argv_for_cluster_stop(name))

    def cluster_delete(self, name: str) -> None:
        self.require(MIN_VERSION, "devslice")
        self._run(argv_for_cluster_delete(name))
